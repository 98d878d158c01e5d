"""The generic HTTPS REST connector: templates in, customers and verdicts out.

One call step (a lookup or a verify) has an overall budget (default 3 s, the
time the caller hears "one moment"): the OAuth2 token fetch, every attempt and
every wait between attempts fit inside it, and each attempt runs in a worker so
that even a server dripping bytes cannot hold the caller past the budget.

Lookups are idempotent and retried on 5xx, 429 (honouring Retry-After when it
fits in what is left of the budget) and refused connections. A verify is never
retried: the back end may count it as an attempt. A 401 with OAuth2 fetches a
new token and asks once more (the request was refused, not processed).

TLS verification is always on; a CA bundle may be named, nothing can turn it
off. Redirects are not followed (a redirect could carry an API-key header to
another host). Errors are one line and carry no URL, identifier or secret.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, Callable
from urllib.parse import quote, urlencode

import requests

from ..config import ConfigError, Table
from .auth import Auth, AuthFailed, make_auth
from .base import Customer, Lookup, Verdict, lookup_of, mask
from .breaker import CircuitBreaker
from .https import MAX_BODY, REFUSED, failure, retry_after, session
from .jsonpath import Path
from .phone import normalise_phone, phone_forms
from .template import Template, body_names, compile_body, render_body

log = logging.getLogger("callgate.crm")

_FIELD_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_METHODS = ("GET", "POST", "PUT", "PATCH")

PHONE_NAMES = frozenset({"e164", "digits", "national", "country_code"})
IDENT_NAMES = frozenset({"kind", "value", "field"})
VERIFY_NAMES = frozenset({"id", "kind", "secret", "field"})


class _Fail(Exception):
    """A call step failed; str() is the one-line reason for Lookup/Verdict.error."""


# --- keep identifiers out of urllib3's debug lines --------------------------------------

def _redact_url(text: str) -> str:
    path, _, query = text.partition("?")
    path = re.sub(r"\d{3,}", lambda m: mask(m.group(0)), path)
    return path + ("?<redacted>" if query else "")


class _RedactUrls(logging.Filter):
    """urllib3 logs each request line at DEBUG; the path may hold a keyed identifier."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_url(a) if isinstance(a, str) and a.startswith("/") else a
                                for a in record.args)
        return True


_pool_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _RedactUrls) for f in _pool_log.filters):
    _pool_log.addFilter(_RedactUrls())


# --- configuration ---------------------------------------------------------------------

@dataclass
class Step:
    """One configured request and how to read its answer."""
    name: str
    method: str
    url: Template
    query: list[tuple[str, Template]]
    headers: dict[str, Template]
    body: Any
    miss_status: frozenset[int]
    results: Path | None = None
    id: Path | None = None
    name_paths: tuple[Path, ...] = ()
    secrets: Path | None = None       # the kinds of secret on file; None: the CRM does not say
    verified: Path | None = None
    value: str | None = None          # fetch-mode verify: path text, may hold {field}
    names: frozenset[str] = frozenset()   # every placeholder the request uses


def _step(table: Table, name: str, allowed: frozenset[str], role: str) -> Step:
    t = table.sub(name)
    if not t.data:
        raise ConfigError(f"{t.path}: missing (the request for this step)")
    method = t.choice("method", _METHODS, "GET")
    url_text = t.get("url", str)
    if not url_text.startswith("/"):
        raise ConfigError(f"{t.key('url')}: must be a path starting with '/' (joined to base_url)")
    url = Template(url_text, allowed, t.key("url"))
    query = [(k, Template(_str(v, f"{t.key('query')}.{k}"), allowed, f"{t.key('query')}.{k}"))
             for k, v in t.get("query", dict, {}).items()]
    headers = {k: Template(_str(v, f"{t.key('headers')}.{k}"), allowed, f"{t.key('headers')}.{k}")
               for k, v in t.get("headers", dict, {}).items()}
    body = t.get("body", (dict, list), None)
    body = compile_body(body, allowed, t.key("body")) if body is not None else None
    if "secret" in url.names or any("secret" in q.names for _, q in query) \
            or any("secret" in h.names for h in headers.values()):
        raise ConfigError(f"{t.path}: {{secret}} may only appear in the body "
                          f"(URLs and headers end up in server logs)")
    if body is not None and method == "GET":
        raise ConfigError(f"{t.key('body')}: a GET request has no body")
    miss = t.get("miss_status", list, [404])
    if not all(isinstance(s, int) and 200 <= s < 500 for s in miss):
        raise ConfigError(f"{t.key('miss_status')}: expected a list of HTTP statuses")
    names = frozenset(url.names).union(body_names(body), *(q.names for _, q in query),
                                        *(h.names for h in headers.values()))
    step = Step(name, method, url, query, headers, body, frozenset(miss), names=names)
    if role == "lookup":
        step.results = Path(t.get("results", str), t.key("results"))
        step.id = Path(t.get("id", str, "id"), t.key("id"))
        names = t.get("name", (str, list), "name")
        names = [names] if isinstance(names, str) else names
        step.name_paths = tuple(Path(_str(n, t.key("name")), t.key("name")) for n in names)
        secrets = t.get("secrets", str, "")
        step.secrets = Path(secrets, t.key("secrets")) if secrets else None
    else:
        mode = t.choice("mode", ("call", "fetch"), "call")
        if mode == "call":
            step.verified = Path(t.get("verified", str, "verified"), t.key("verified"))
        else:
            step.value = t.get("value", str)
            Path(step.value.replace("{field}", "x"), t.key("value"))
    bad = t.unknown()
    if bad:
        raise ConfigError(f"{bad[0]}: unknown key")
    return step


def _kinds(step: Step, record: dict) -> frozenset[str] | None:
    """The kinds of secret on file from a lookup record, if the CRM's answer says."""
    if step.secrets is None:
        return None
    found = step.secrets.first(record)
    if found is None:
        return None                   # not said for this record: ask, as before
    if not isinstance(found, list) or not all(isinstance(k, str) for k in found):
        raise _Fail(f"response: {step.secrets.text!r} is not a list of kinds")
    return frozenset(k.strip().lower() for k in found)


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _fields(table: Table, name: str) -> dict[str, str]:
    out = table.get(name, dict, {})
    for kind, field in out.items():
        if not isinstance(field, str) or not _FIELD_NAME.match(field):
            raise ConfigError(f"{table.key(name)}.{kind}: {field!r} is not a field name")
    return dict(out)


@dataclass
class RestSettings:
    base_url: str
    ca_bundle: str | None
    connect_timeout: float
    read_timeout: float
    budget: float
    retries: int
    default_country: str
    headers: dict[str, str]
    identifier_fields: dict[str, str]
    verify_fields: dict[str, str]
    dob_format: str
    suffix_kinds: tuple[str, ...]


# --- the connector ---------------------------------------------------------------------

class RestConnector:
    """A `Crm` over HTTPS, shaped entirely by its [crm] table."""

    def __init__(self, table: Table, name: str = "rest",
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self.clock = clock
        self.sleep = sleep
        base_url = table.get("base_url", str)
        if not base_url.startswith("https://"):
            raise ConfigError(f"{table.key('base_url')}: must start with https:// "
                              f"(TLS is always on)")
        ca = table.get("ca_bundle", str, None)
        if ca is not None and not FilePath(ca).is_file():
            raise ConfigError(f"{table.key('ca_bundle')}: {ca} is not a readable file")
        budget = table.number("budget", 3.0, 0.05, 30.0)
        headers = {k: _str(v, f"{table.key('headers')}.{k}")
                   for k, v in table.get("headers", dict, {}).items()}
        dob_format = table.get("dob_format", str, "MMDDYYYY")
        if sorted(dob_format.replace("YYYY", "Y").replace("MM", "M").replace("DD", "D")) != ["D", "M", "Y"]:
            raise ConfigError(f"{table.key('dob_format')}: use YYYY, MM and DD once each, "
                              f"e.g. MMDDYYYY")
        self.settings = RestSettings(
            base_url=base_url.rstrip("/"),
            ca_bundle=ca,
            connect_timeout=table.number("connect_timeout", min(1.0, budget), 0.01, 30.0),
            read_timeout=table.number("read_timeout", budget, 0.01, 60.0),
            budget=budget,
            retries=int(table.number("retries", 2, 0, 5)),
            default_country=table.get("default_country", str, "US"),
            headers=headers,
            identifier_fields=_fields(table, "identifier_fields"),
            verify_fields=_fields(table, "verify_fields"),
            dob_format=dob_format,
            suffix_kinds=tuple(table.get("suffix_kinds", list, ["last_digits"])),
        )
        self.auth: Auth = make_auth(table.sub("auth"), self.settings.base_url, clock=clock)
        self.steps = {
            "lookup_phone": _step(table, "lookup_phone", PHONE_NAMES, "lookup"),
            "lookup_identifier": _step(table, "lookup_identifier", IDENT_NAMES, "lookup"),
            "verify": _step(table, "verify", VERIFY_NAMES, "verify"),
        }
        self.breaker = CircuitBreaker(int(table.number("breaker_failures", 5, 1, 1000)),
                                      table.number("breaker_cooldown", 30.0, 0.0, 3600.0),
                                      clock=clock)
        table.get("kind", str, "rest")
        bad = table.unknown()
        if bad:
            raise ConfigError(f"{bad[0]}: unknown key")
        self._session = session()
        self._verify: str | bool = ca if ca is not None else True
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="callgate-crm")
        self._closed = False
        self._lock = threading.Lock()

    # -- the Crm interface --

    def lookup_phone(self, e164: str) -> Lookup:
        start = self.clock()
        number = normalise_phone(e164, self.settings.default_country)
        if number is None:
            return Lookup("miss", latency_ms=0.0)
        values = phone_forms(number)
        return self._lookup("lookup_phone", values, start, f"number={mask(number)}")

    def lookup_identifier(self, kind: str, digits: str) -> Lookup:
        start = self.clock()
        if kind == "phone" and "phone" not in self.settings.identifier_fields:
            number = normalise_phone(digits, self.settings.default_country)
            if number is None:
                return Lookup("miss")
            return self._lookup("lookup_phone", phone_forms(number), start,
                                f"kind=phone value={mask(digits)}")
        values = {"kind": kind, "value": digits,
                  "field": self.settings.identifier_fields.get(kind, kind)}
        if "field" in self.steps["lookup_identifier"].names \
                and kind not in self.settings.identifier_fields:
            return self._error_lookup(start, f"no field configured for identifier kind {kind!r} "
                                             f"(crm.identifier_fields)")
        return self._lookup("lookup_identifier", values, start,
                            f"kind={kind} value={mask(digits)}")

    def verify(self, customer: Customer, kind: str, secret: str) -> Verdict:
        start = self.clock()
        step = self.steps["verify"]
        field = self.settings.verify_fields.get(kind, kind)
        low = step.value is not None
        if ("field" in step.names or low) and kind not in self.settings.verify_fields:
            return self._verdict("error", start, low,
                                 f"no field configured for verification kind {kind!r} "
                                 f"(crm.verify_fields)", customer)
        values = {"id": customer.id, "kind": kind, "secret": secret, "field": field}
        try:
            status, doc = self._exchange(step, values, idempotent=False)
            if status in step.miss_status:
                raise _Fail(f"HTTP {status}: customer not found at verify")
            if low:
                found = Path(step.value.replace("{field}", field), "verify.value").find(doc)
                if not found:
                    raise _Fail(f"response: no field for verification kind {kind!r}")
                result = self._compare(kind, secret, found[0])
            else:
                flag = step.verified.first(doc)
                if not isinstance(flag, bool):
                    raise _Fail(f"response: {step.verified.text!r} is not true or false")
                result = "verified" if flag else "rejected"
        except _Fail as err:
            self.breaker.failure()
            return self._verdict("error", start, low, str(err), customer)
        self.breaker.success()
        return self._verdict(result, start, low, None, customer)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    # -- lookups --

    def _lookup(self, step_name: str, values: dict[str, str], start: float, what: str) -> Lookup:
        step = self.steps[step_name]
        try:
            status, doc = self._exchange(step, values, idempotent=True)
            customers = [] if status in step.miss_status else self._customers(step, doc)
        except _Fail as err:
            self.breaker.failure()
            return self._error_lookup(start, str(err), step_name, what)
        self.breaker.success()
        result = lookup_of(customers, self._ms(start))
        log.info("crm %s %s -> %s (%d) in %.0f ms", step_name, what, result.status,
                 len(result.customers), result.latency_ms)
        return result

    def _customers(self, step: Step, doc: Any) -> list[Customer]:
        found = step.results.find(doc)
        if not found:
            raise _Fail(f"response has no {step.results.text!r}")
        if len(found) == 1 and not step.results.fans_out:
            found = found[0] if isinstance(found[0], list) else ([] if found[0] is None else found)
        out = []
        for record in found:
            if not isinstance(record, dict):
                raise _Fail(f"response: a record under {step.results.text!r} is not an object")
            cid = step.id.first(record)
            if isinstance(cid, bool) or not isinstance(cid, (str, int)) or cid == "":
                raise _Fail(f"response: a record has no usable {step.id.text!r}")
            parts = [p.first(record) for p in step.name_paths]
            parts = [str(p).strip() for p in parts if isinstance(p, (str, int, float))
                     and not isinstance(p, bool) and str(p).strip()]
            out.append(Customer(str(cid), " ".join(parts) or None, _kinds(step, record)))
        return out

    def _error_lookup(self, start: float, reason: str, step_name: str = "lookup",
                      what: str = "") -> Lookup:
        result = Lookup("error", latency_ms=self._ms(start), error=reason)
        log.warning("crm %s %s -> error: %s (%.0f ms)", step_name, what, reason, result.latency_ms)
        return result

    # -- verify --

    def _compare(self, kind: str, secret: str, stored: Any) -> str:
        """Compare a keyed secret with the stored value, in constant time."""
        if stored is None or (isinstance(stored, str) and stored.strip() == ""):
            hmac.compare_digest(b"x", b"y")
            return "no_secret"         # an empty field: nothing on file to compare with
        if isinstance(stored, bool) or not isinstance(stored, (str, int)):
            raise _Fail(f"no stored value for verification kind {kind!r}")
        text = str(stored).strip()
        if kind == "dob":
            m = re.match(r"^(\d{4})-(\d{2})-(\d{2})", text)
            if m:
                y, mo, d = m.groups()
                text = (self.settings.dob_format.replace("YYYY", y).replace("MM", mo)
                        .replace("DD", d))
        digits = re.sub(r"\D", "", text)
        expected = digits if digits else text
        if kind in self.settings.suffix_kinds:
            if len(secret) < 2 or len(secret) > len(expected):
                hmac.compare_digest(b"x", b"y")
                return "rejected"
            expected = expected[-len(secret):]
        same = hmac.compare_digest(expected.encode("utf-8"), secret.encode("utf-8"))
        return "verified" if same else "rejected"

    def _verdict(self, status: str, start: float, low: bool, error: str | None,
                 customer: Customer) -> Verdict:
        verdict = Verdict(status, "low" if low else "high", self._ms(start), error)
        line = ("crm verify customer=%s -> %s (%s assurance) in %.0f ms"
                + (": %s" if error else ""))
        args = [mask(customer.id), status, verdict.assurance, verdict.latency_ms]
        if error:
            args.append(error)
        (log.warning if error else log.info)(line, *args)
        return verdict

    # -- HTTP --

    def _ms(self, start: float) -> float:
        return round((self.clock() - start) * 1000.0, 1)

    def _exchange(self, step: Step, values: dict[str, str], idempotent: bool) -> tuple[int, Any]:
        """Send the step's request within the budget; (status, parsed JSON or None)."""
        if self._closed:
            raise _Fail("back end closed")
        if not self.breaker.allow():
            raise _Fail("circuit open after repeated failures")
        s = self.settings
        deadline = self.clock() + s.budget
        url = s.base_url + step.url.render(values, lambda v: quote(v, safe=""))
        if step.query:
            url += ("&" if "?" in url else "?") + urlencode(
                [(k, t.render(values)) for k, t in step.query], quote_via=quote, safe="$")
        headers = {"Accept": "application/json", "User-Agent": "callgate"}
        headers.update(s.headers)
        for k, t in step.headers.items():
            v = t.render(values)
            if any(ch in v for ch in "\r\n\0"):
                raise _Fail(f"header {k} would hold a line break")
            headers[k] = v
        data = None
        if step.body is not None:
            data = json.dumps(render_body(step.body, values), ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        attempt = 0
        refreshed = False
        last = ""
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise _Fail(f"no answer within the {s.budget:g} s budget" + (f" ({last})" if last else ""))
            status, reply_headers, body, ctype = self._attempt(step.method, url, headers, data,
                                                               deadline)
            if status == 401 and self.auth.refreshable and not refreshed:
                self.auth.invalidate()
                refreshed = True
                continue
            retryable = status >= 500 or status == 429 or status == -1
            if retryable and idempotent and attempt < s.retries:
                last = "connection refused" if status == -1 else f"HTTP {status}"
                wait = retry_after(reply_headers.get("Retry-After"))
                if wait is None:
                    wait = min(0.1 * (2 ** attempt), 1.0) * (0.5 + random.random() / 2)
                if wait >= deadline - self.clock():
                    raise _Fail(f"{last}; retry-after {wait:g} s exceeds the budget")
                self.sleep(wait)
                attempt += 1
                continue
            if status == -1:
                raise _Fail("connection refused")
            return status, self._parse(status, body, ctype, step, attempt)

    def _parse(self, status: int, body: bytes, ctype: str, step: Step, attempt: int) -> Any:
        tries = f" after {attempt + 1} attempts" if attempt else ""
        if status in step.miss_status:
            return None
        if 300 <= status < 400:
            raise _Fail(f"HTTP {status}: redirects are not followed")
        if status == 429:
            raise _Fail(f"HTTP 429 rate limited{tries}")
        if status >= 400:
            raise _Fail(f"HTTP {status}{tries}")
        if status == 204 or not body:
            raise _Fail(f"HTTP {status} with an empty body")
        if "json" not in ctype.lower():
            raise _Fail(f"response is {ctype.split(';')[0].strip() or 'untyped'}, not JSON")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Fail("malformed JSON in response") from None

    def _attempt(self, method: str, url: str, headers: dict, data: bytes | None,
                 deadline: float) -> tuple[int, dict, bytes, str]:
        """One request in a worker, waited for no longer than the budget allows."""
        remaining = deadline - self.clock()
        try:
            future = self._pool.submit(self._send, method, url, headers, data, deadline)
        except RuntimeError:
            raise _Fail("back end closed") from None
        try:
            return future.result(timeout=max(0.0, remaining))
        except FutureTimeout:
            future.cancel()
            raise _Fail(f"no answer within the {self.settings.budget:g} s budget") from None

    def _send(self, method: str, url: str, headers: dict, data: bytes | None,
              deadline: float) -> tuple[int, dict, bytes, str]:
        """Runs in a worker: auth, request, body read; every failure becomes a safe _Fail."""
        try:
            auth_headers = self.auth.headers(self._token_fetch, deadline)
        except AuthFailed as err:
            raise _Fail(str(err)) from None
        return self._http(method, url, {**headers, **auth_headers}, data, deadline)

    def _token_fetch(self, url: str, form: dict, headers: dict, deadline: float
                     ) -> tuple[int, bytes, str]:
        body = urlencode(form).encode("ascii")
        headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        status, _h, data, ctype = self._http("POST", url, headers, body, deadline, token=True)
        return status, data, ctype

    def _http(self, method: str, url: str, headers: dict, data: bytes | None, deadline: float,
              token: bool = False) -> tuple[int, dict, bytes, str]:
        s = self.settings
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise _Fail(f"no answer within the {s.budget:g} s budget")
        what = "oauth2 token endpoint: " if token else ""
        try:
            resp = self._session.request(
                method, url, headers=headers, data=data, stream=True, allow_redirects=False,
                verify=self._verify,
                timeout=(min(s.connect_timeout, remaining), min(s.read_timeout, remaining)))
        except requests.exceptions.RequestException as err:
            why = failure(err, f"no answer within the {s.budget:g} s budget")
            if why == REFUSED and not token:
                return -1, {}, b"", ""         # retried like a 5xx when idempotent
            raise _Fail(what + why) from None
        try:
            chunks, size = [], 0
            for chunk in resp.iter_content(16384):
                size += len(chunk)
                if size > MAX_BODY:
                    raise _Fail(f"{what}response larger than {MAX_BODY} bytes")
                chunks.append(chunk)
                if self.clock() > deadline:
                    raise _Fail(f"no answer within the {s.budget:g} s budget")
            return (resp.status_code, dict(resp.headers), b"".join(chunks),
                    resp.headers.get("Content-Type", ""))
        except requests.exceptions.RequestException as err:
            raise _Fail(f"{what}response broken off ({type(err).__name__})") from None
        finally:
            resp.close()
