"""HTTPS plumbing shared by the REST connector (rest.py) and the write-back (writeback.py).

Both talk to the business's back end under the same rules: TLS verification is
always on and nothing is taken from the environment (no proxy, netrc or CA
override); a request that got no answer is told in one line that names
neither the URL nor a header; Retry-After is read the same way.

requests bounds the connect and each wait between bytes, never a whole
exchange: a server that drips one byte a second keeps a request (and the
thread sending it) for ever. Every request here runs under a `deadline`: at
its end the watchdog shuts the request's socket down, which ends the blocked
read in the sending thread at once, whatever phase it is in.
"""

from __future__ import annotations

import email.utils
import heapq
import itertools
import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..config import ConfigError

MAX_BODY = 1 << 20                     # an answer larger than 1 MiB is not an answer
# header names that carry a credential: those belong in the 0600 files of [crm.auth]
# (the config file is 0640 and is copied around), never in a [crm] headers table
_CREDENTIAL_WORDS = ("auth", "token", "secret", "password", "passwd", "cookie", "session",
                     "key", "signature", "credential", "bearer", "jwt")
REFUSED = "connection failed (refused)"


def session() -> requests.Session:
    """A session that takes no proxy, netrc or CA override from the environment, whose
    requests a `deadline` can cut."""
    s = requests.Session()
    s.trust_env = False
    adapter = _WatchedAdapter()
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    return s


RECHECK_S = 0.25                       # a cut request is cut again until it lets go

_current = threading.local()           # the deadline of the request this thread sends


class _Watch:
    """One request's deadline and the connection it is using (set by the pool)."""

    __slots__ = ("at", "conn", "cuts", "done")

    def __init__(self, at: float) -> None:
        self.at, self.conn, self.cuts, self.done = at, None, 0, False

    def cut(self) -> None:
        sock = getattr(self.conn, "sock", None)
        if sock is None:
            return
        self.cuts += 1
        try:
            sock.shutdown(socket.SHUT_RDWR)   # wakes a recv blocked in the sender
        except OSError:
            pass


class _Watchdog:
    """One daemon thread that cuts every request still running at its deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, w: _Watch) -> None:
        with self._wake:
            heapq.heappush(self._heap, (w.at, next(self._order), w))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="callgate-https-watchdog",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                at, _, w = self._heap[0]
                left = at - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                heapq.heappop(self._heap)
                w.cut()
                # its socket may not exist yet (still connecting): look again soon
                heapq.heappush(self._heap, (time.monotonic() + RECHECK_S, next(self._order), w))


_WATCHDOG = _Watchdog()


@contextmanager
def deadline(seconds: float) -> Iterator[_Watch]:
    """The requests this thread sends inside are cut `seconds` from now (wall time:
    the watchdog's own monotonic clock, whatever clock the caller paces with)."""
    w = _Watch(time.monotonic() + max(0.0, seconds))
    outer = getattr(_current, "watch", None)
    _current.watch = w
    _WATCHDOG.watch(w)
    try:
        yield w
    finally:
        w.done = True
        _current.watch = outer


def _attach(conn) -> None:
    w = getattr(_current, "watch", None)
    if w is not None:
        w.conn = conn
        if time.monotonic() >= w.at:
            w.cut()


class _WatchedHttpsPool(HTTPSConnectionPool):
    def _make_request(self, conn, *args, **kw):
        _attach(conn)
        return super()._make_request(conn, *args, **kw)


class _WatchedHttpPool(HTTPConnectionPool):
    def _make_request(self, conn, *args, **kw):
        _attach(conn)
        return super()._make_request(conn, *args, **kw)


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose pools tell the thread's deadline which connection a
    request took (a kept-alive one included)."""

    def init_poolmanager(self, *args, **kw) -> None:
        super().init_poolmanager(*args, **kw)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHttpPool,
                                                   "https": _WatchedHttpsPool}


def credential_header(name: str) -> bool:
    """True for a header name that carries a credential (Authorization, X-Api-Key,
    Cookie, X-Auth-Token, ...): the config must not hold one."""
    low = name.lower()
    return any(word in low for word in _CREDENTIAL_WORDS)


def check_headers(headers: dict, key: str) -> None:
    """ConfigError naming the first credential-like header of a config table."""
    for name in headers:
        if credential_header(str(name)):
            raise ConfigError(f"{key}.{name}: a credential header is not taken from the config "
                              "file; put the credential in a 0600 file named in [crm.auth]")


def failure(err: requests.exceptions.RequestException, timed_out: str) -> str:
    """Why a request got no answer, in one line; `timed_out` is what a read timeout says.

    A refused connection is exactly REFUSED (the connector retries those).
    """
    if isinstance(err, requests.exceptions.SSLError):
        return "TLS handshake failed (certificate not trusted or invalid)"
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return "connect timed out"
    if isinstance(err, requests.exceptions.ReadTimeout):
        return timed_out
    if isinstance(err, requests.exceptions.ConnectionError):
        return f"connection failed ({reason(err)})"
    return f"request failed ({type(err).__name__})"


def reason(err: Exception) -> str:
    """A connection failure in a word or two (the exception text may hold the URL)."""
    text = repr(err).lower()
    for word, why in (("refused", "refused"), ("reset", "reset"),
                      ("name or service", "host not found"), ("unreachable", "unreachable"),
                      ("timed out", "timed out")):
        if word in text:
            return why
    return type(err).__name__


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date); None if absent or odd."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return None if when is None else max(0.0, when.timestamp() - time.time())
