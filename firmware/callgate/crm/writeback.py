"""Back-end write-back: each call's outcome POSTed over HTTPS, from the on-device outbox.

The ID&V flow queues one row per answered call in the store's outbox
(store/outbox.py) before the call is over; `Delivery` sends the rows, and
`DeliveryWorker` runs it in a thread of `callgate run`. So an outcome is never
lost to a back end that is down, slow or refusing, nor to a restart or a
kill -9: it stays in the outbox and is sent when the back end answers.

Delivery is at least once. Over HTTP "exactly once" cannot be had: a request
may reach the back end and its answer be lost (a timeout, the process killed
mid-request), and then the row is sent again. Every request carries an
idempotency key (`Idempotency-Key: callgate-<row id>-<call id>`, the same on
every attempt) so a back end can recognise a repeat.

What an answer means:
- 2xx: delivered. The row's payload (it holds the customer's full
  identifier) is cleared; the time and the HTTP status are kept.
- 408, 429, 5xx, no answer (refused, timed out, TLS failure, token endpoint
  down): tried again with exponential back-off and jitter (retry_min_s
  doubling up to retry_max_s, each wait drawn from its upper half), never
  sooner than a Retry-After asks; once the row is older than max_age_s it is
  marked dead (one error line).
- any other 4xx, and 3xx (redirects are not followed: one could carry the
  credentials to another host): refused for good, marked dead with the status
  at once, not retried. A 401 with OAuth2 first fetches a new token and asks
  once more.
Dead rows keep their payload for `callgate outbox retry`; nothing is dropped
silently.

TLS verification is always on (a CA bundle may be named, nothing turns it
off); credentials come from the connector's auth profiles (crm/auth.py), read
from 0600 files. Log lines name the outbox row, the call id and the HTTP
status, never the payload.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import requests
import urllib3

from ..config import ConfigError, Table
from ..store.outbox import PAYLOAD_FIELDS, Outbox, OutboxItem
from ..store.records import CallStore
from .auth import Auth, AuthFailed, make_auth
from .https import MAX_BODY, check_headers, failure, reason, retry_after, session
from .https import deadline as cut_at
from .template import compile_body, render_body

log = logging.getLogger("callgate.writeback")

METHODS = ("POST", "PUT", "PATCH")
TEMPLATE_NAMES = frozenset(PAYLOAD_FIELDS) | {"outbox_id", "idempotency_key"}
DRAIN_S = 5.0                  # on stop, what is due gets this long to be sent
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")      # an HTTP header name


@dataclass
class WritebackSettings:
    """The [writeback] table."""

    url: str
    method: str = "POST"
    ca_bundle: str | None = None
    timeout_s: float = 10.0
    max_age_s: float = 3 * 86400.0
    retry_min_s: float = 5.0
    retry_max_s: float = 900.0
    headers: dict | None = None
    body: Any = None               # a compiled JSON body template, or None: the payload
    auth: Auth | None = None
    idempotency_header: str = "Idempotency-Key"

    @property
    def lease_s(self) -> float:
        """How long a claimed row is left alone: longer than any one attempt can take."""
        return 2 * self.timeout_s + 1.0


def load_writeback(table: Table) -> WritebackSettings | None:
    """Read and check [writeback]; None when it is absent or `enabled = false`.

    ConfigError names the bad key. Credential files are read here, so a loose
    one is refused at start.
    """
    if not table.data:
        return None
    enabled = table.get("enabled", bool, True)
    url = table.get("url", str)
    if not url.startswith("https://") or len(url) <= len("https://"):
        raise ConfigError(f"{table.key('url')}: must be an https:// URL (TLS is always on)")
    if any(ch in url for ch in " \r\n\t"):
        raise ConfigError(f"{table.key('url')}: holds white space")
    method = table.choice("method", METHODS, "POST")
    ca = table.get("ca_bundle", str, None)
    if ca is not None and not Path(ca).is_file():
        raise ConfigError(f"{table.key('ca_bundle')}: {ca} is not a readable file")
    timeout = table.number("timeout_s", 10.0, 0.5, 120.0)
    max_age = table.number("max_age_s", 3 * 86400.0, 1.0, 30 * 86400.0)
    low = table.number("retry_min_s", 5.0, 0.05, 3600.0)
    high = table.number("retry_max_s", max(900.0, low), low, 86400.0)
    headers = {}
    for name, value in table.get("headers", dict, {}).items():
        key = f"{table.key('headers')}.{name}"
        if not _TOKEN.match(name):
            raise ConfigError(f"{key}: not a header name")
        if not isinstance(value, str) or any(ch in value for ch in "\r\n\0"):
            raise ConfigError(f"{key}: expected a string on one line")
        headers[name] = value
    check_headers(headers, table.key("headers"))
    idem = table.get("idempotency_header", str, "Idempotency-Key")
    if not _TOKEN.match(idem):
        raise ConfigError(f"{table.key('idempotency_header')}: {idem!r} is not a header name")
    body = table.get("body", (dict, list), None)
    if body is not None:
        body = compile_body(body, TEMPLATE_NAMES, table.key("body"))
    auth_table = table.sub("auth")
    if "api_base_from" in auth_table.data:       # the write-back posts to its own url
        raise ConfigError(f"{auth_table.key('api_base_from')}: not for the write-back "
                          f"(it sends to writeback.url)")
    auth = make_auth(auth_table, url)
    bad = table.unknown()
    if bad:
        raise ConfigError(f"{bad[0]}: unknown key")
    if not enabled:
        return None
    return WritebackSettings(url, method, ca, timeout, max_age,
                             low, high, headers, body, auth, idem)


def idempotency_key(item: OutboxItem) -> str:
    """Same on every attempt of one row; safe in a header."""
    return "callgate-" + re.sub(r"[^A-Za-z0-9._-]", "_", f"{item.id}-{item.call_id}")


# ---------------------------------------------------------------------- one attempt


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to: delivered, retry or dead; the status and a safe line."""

    result: str
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


def classify(status: int) -> str:
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 429) or status >= 500:
        return "retry"
    return "dead"


class Sender:
    """Sends one outbox row over HTTPS with the configured auth; never raises."""

    def __init__(self, settings: WritebackSettings) -> None:
        self.s = settings
        self.auth = settings.auth or Auth()
        self.session = session()
        self.verify: str | bool = settings.ca_bundle or True

    def close(self) -> None:
        self.session.close()

    def send(self, item: OutboxItem) -> Attempt:
        key = idempotency_key(item)
        values = {**item.payload, "outbox_id": item.id, "idempotency_key": key}
        body = (render_body(self.s.body, values, typed=True) if self.s.body is not None
                else item.payload)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "callgate", **(self.s.headers or {}),
                   self.s.idempotency_header: key}
        got = self._authorised(headers, data)
        if got.status == 401 and self.auth.refreshable:
            self.auth.invalidate()                    # a stale token: once more with a new one
            got = self._authorised(headers, data)
        return got

    def _authorised(self, headers: dict, data: bytes) -> Attempt:
        try:
            auth = self.auth.headers(self._token_fetch, time.monotonic() + 2 * self.s.timeout_s)
        except AuthFailed as err:
            return Attempt("retry", None, str(err))
        return self._request({**headers, **auth}, data)

    def _request(self, headers: dict, data: bytes) -> Attempt:
        with cut_at(2 * self.s.timeout_s) as watch:    # a dripping answer is cut
            got = self._request_once(headers, data)
        if watch.cuts and got.result == "retry":
            return Attempt("retry", None, f"no answer within {2 * self.s.timeout_s:g} s")
        return got

    def _request_once(self, headers: dict, data: bytes) -> Attempt:
        s = self.s
        try:
            resp = self.session.request(s.method, s.url, headers=headers, data=data,
                                        timeout=(s.timeout_s, s.timeout_s), verify=self.verify,
                                        allow_redirects=False, stream=True)
        except requests.exceptions.RequestException as err:
            return Attempt("retry", None, failure(err, f"no answer within {s.timeout_s:g} s"))
        try:
            status = resp.status_code
            wait = retry_after(resp.headers.get("Retry-After"))
        finally:
            resp.close()
        result = classify(status)
        error = None if result == "delivered" else f"HTTP {status}" + (
            " (redirects are not followed)" if 300 <= status < 400 else "")
        return Attempt(result, status, error, wait)

    def _token_fetch(self, url: str, form: dict, headers: dict, deadline: float
                     ) -> tuple[int, bytes, str]:
        """OAuth2 token requests for crm/auth.py, with the same TLS rules."""
        left = max(0.1, min(self.s.timeout_s, deadline - time.monotonic()))
        with cut_at(2 * left):
            return self._token_once(url, form, headers, left)

    def _token_once(self, url: str, form: dict, headers: dict, left: float
                    ) -> tuple[int, bytes, str]:
        try:
            resp = self.session.post(url, data=urlencode(form).encode("ascii"),
                                     headers={**headers, "Content-Type":
                                              "application/x-www-form-urlencoded"},
                                     timeout=(left, left), verify=self.verify,
                                     allow_redirects=False, stream=True)
        except requests.exceptions.RequestException as err:
            raise AuthFailed(f"oauth2 token endpoint: connection failed ({reason(err)})") \
                from None
        try:
            body = resp.raw.read(MAX_BODY + 1, decode_content=True)
            if len(body) > MAX_BODY:
                raise AuthFailed("oauth2 token endpoint: answer too large")
            return resp.status_code, body, resp.headers.get("Content-Type", "")
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                OSError) as err:
            raise AuthFailed(f"oauth2 token endpoint: answer broken off "
                             f"({type(err).__name__})") from None
        finally:
            resp.close()


# ---------------------------------------------------------------------- the outbox


class Delivery:
    """Sends what is due in an outbox and writes down what became of each row."""

    def __init__(self, outbox: Outbox, settings: WritebackSettings,
                 sender: Sender | None = None, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        self.outbox = outbox
        self.s = settings
        self.sender = sender or Sender(settings)
        self.clock = clock
        self.rng = rng

    def backoff(self, attempts: int) -> float:
        """The wait after the `attempts`-th failure: doubling, capped, upper-half jitter."""
        base = min(self.s.retry_max_s, self.s.retry_min_s * 2 ** max(0, attempts - 1))
        return base / 2 + self.rng() * base / 2

    def run_once(self, stop_at: float | None = None) -> dict[str, int]:
        """Send every row due now (until `stop_at`, a time.monotonic()); counts by result."""
        counts = {"delivered": 0, "retry": 0, "dead": 0}
        while True:
            items = self.outbox.due(self.clock())
            sent = 0
            for item in items:
                if stop_at is not None and time.monotonic() >= stop_at:
                    return counts
                now = self.clock()
                if not self.outbox.claim(item.id, now, now + self.s.lease_s):
                    continue                 # another sender has it, or it changed
                counts[self._one(item)] += 1
                sent += 1
            if not sent:
                return counts

    def _one(self, item: OutboxItem) -> str:
        got = self.sender.send(item)
        tries = item.attempts + 1
        where = f"writeback: outbox {item.id} (call {item.call_id})"
        if got.result == "delivered":
            self.outbox.delivered(item.id, got.status, self.clock())
            log.info("%s delivered (HTTP %s, attempt %d)", where, got.status, tries)
            return "delivered"
        if got.result == "dead":
            self.outbox.dead(item.id, got.status, f"refused: {got.error}")
            log.error("%s refused for good: %s; kept as dead (callgate outbox retry)", where,
                      got.error)
            return "dead"
        now = self.clock()
        if now >= item.expires:
            self.outbox.dead(item.id, got.status, f"gave up after {self.s.max_age_s:g} s: "
                                                  f"{got.error}")
            log.error("%s undelivered after %d attempts (%s); gave up, kept as dead "
                      "(callgate outbox retry)", where, tries, got.error)
            return "dead"
        wait = self.backoff(tries)
        if got.retry_after is not None:
            wait = max(wait, got.retry_after)
        next_at = min(now + wait, item.expires)
        self.outbox.later(item.id, next_at, got.status, got.error)
        log.warning("%s not delivered (%s); attempt %d, next in %.1f s", where, got.error,
                    tries, next_at - now)
        return "retry"


class DeliveryWorker:
    """The delivery loop in a thread of `callgate run`, on its own store connection.

    It sends what is due, then sleeps until the next row is due, `wake()` is
    called (a call just ended) or `poll_s` passes. `stop()` gives what is due
    DRAIN_S to be sent; whatever is left stays in the outbox for the next start.
    """

    def __init__(self, store_path: str | Path, settings: WritebackSettings,
                 poll_s: float = 5.0) -> None:
        self.store = CallStore(store_path)
        self.delivery = Delivery(Outbox(self.store), settings)
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stop_at: float | None = None
        self.passes = 0
        self._thread = threading.Thread(target=self._run, name="callgate-writeback",
                                        daemon=True)

    def start(self) -> "DeliveryWorker":
        self._thread.start()
        return self

    def wake(self, *_: Any) -> None:
        self._wake.set()

    def stop(self, drain_s: float = DRAIN_S) -> None:
        self._stop_at = time.monotonic() + drain_s
        self._stop.set()
        self._wake.set()
        self._thread.join(drain_s + 1.0)
        if not self._thread.is_alive():
            self.delivery.sender.close()
            self.store.close()

    def _run(self) -> None:
        outbox = self.delivery.outbox
        while True:
            try:
                self.delivery.run_once(self._stop_at)
                wait = self.poll_s
                due = outbox.next_due()
                if due is not None:
                    wait = min(wait, max(0.0, due - self.delivery.clock()))
            except Exception as err:        # noqa: BLE001 - keep delivering after a fault
                log.error("writeback: delivery pass failed (%s); trying again",
                          type(err).__name__)
                wait = self.poll_s
            self.passes += 1
            if self._stop.is_set():
                return
            self._wake.wait(max(0.01, wait))
            self._wake.clear()
