"""The door of the web server: a request gets a server thread only once it has arrived.

cheroot hands a connection to one of its worker threads as soon as a byte is
readable, and the thread then blocks reading the rest of the request; a TLS
handshake even runs in the thread that accepts connections. Thirty clients
sending one header byte every 10 s therefore held every thread, and one client
that never finished its handshake held the door itself. Here the accepting
thread (cheroot's selector loop) does the waiting without blocking: it finishes
the TLS handshake and reads the request head, and a small body (a form, up to
`PREREAD_BODY` bytes), from non-blocking sockets, and only a complete request
goes to a worker. Whatever has not arrived within `request_s` of the first byte
being awaited is closed. A larger body (an announcement upload) is read by the
worker, but all of it must arrive within `body_s`, and only `bodies_per_address` such
bodies from one address (`bodies` in all) are read at once: past that the request gets
503 at once, so slow uploads (sent without a session: the session is checked only
once the form is read) cannot hold the threads pages are served by.

Connections are counted per address (`connections_per_address`) and in all
(`max_connections`); past either a new connection is closed at once, so one host
cannot take every file descriptor, and the refusal is logged once a minute per
address.

Gate subclasses cheroot's ConnectionManager and uses parts of it that are not its
public API (`_selector`, `_run`, `_expire`, `_stop_requested`, the server's
`_connections`); setup.cfg pins cheroot to the releases this was checked with
(10.0 and 11.x: the tests here pass on 10.0.1 and 11.1.2).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import selectors
import socket
import ssl
import threading
import time
from collections import Counter

from cheroot import connections
from cheroot.makefile import MakeFile
from cheroot.server import HTTPConnection

log = logging.getLogger("callgate.web")

MAX_HEAD = 32 * 1024            # request line and headers
PREREAD_BODY = 64 * 1024        # a body this small is read before a thread takes the request
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LENGTH = re.compile(rb"\ncontent-length:[ \t]*(\d{1,12})[ \t]*\r?\n", re.I)
_HANDS_OVER = re.compile(rb"\n(?:transfer-encoding|expect):", re.I)
_NOT_YET = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
# accept() failing for want of a resource: the client stays in the backlog, so the
# listening socket stays readable
_OUT_OF = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class GatedSocket:
    """A connection's socket as cheroot's reader sees it: first the bytes the gate read
    ahead, then the socket itself, every read ending by the request's deadline; writes
    keep the server's ordinary timeout. Closing it frees its place in the counts."""

    def __init__(self, sock, timeout: float, on_close) -> None:
        self._sock = sock
        self._timeout = timeout
        self._ahead = memoryview(b"")
        self._deadline: float | None = None
        self._on_close = on_close
        self.host = "-"
        self._body_done = None           # frees the request's place among the bodies read

    def __getattr__(self, name):
        return getattr(self._sock, name)

    @property
    def raw(self):
        return self._sock

    def refill(self, data: bytes, deadline: float) -> None:
        """The next request as read so far, and when the rest of it must have come."""
        self._ahead = memoryview(bytes(data))
        self._deadline = deadline

    def take_ahead(self) -> bytes:
        """What was read ahead and not consumed (a pipelined request), handed back."""
        out, self._ahead = bytes(self._ahead), memoryview(b"")
        return out

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        if len(self._ahead):
            n = min(nbytes or len(buffer), len(buffer), len(self._ahead))
            buffer[:n] = self._ahead[:n]
            self._ahead = self._ahead[n:]
            return n
        self._bound()
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if len(self._ahead):
            out = bytes(self._ahead[:bufsize])
            self._ahead = self._ahead[len(out):]
            return out
        self._bound()
        return self._sock.recv(bufsize, flags)

    def _bound(self) -> None:
        left = self._timeout if self._deadline is None else self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self._sock.settimeout(min(self._timeout, left))

    def send(self, data, flags: int = 0) -> int:
        self._sock.settimeout(self._timeout)
        return self._sock.send(data, flags)

    def sendall(self, data, flags: int = 0) -> None:
        self._sock.settimeout(self._timeout)
        self._sock.sendall(data, flags)

    def reading_body(self, done) -> None:
        """A worker reads this request's body; `done` is called once the request is over."""
        self._body_done = done

    def body_over(self) -> None:
        done, self._body_done = self._body_done, None
        if done is not None:
            done()

    def close(self) -> None:
        self.body_over()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
        self._sock.close()


class Arriving:
    """A connection whose next request is still arriving, read without a thread."""

    def __init__(self, sock: GatedSocket, deadline: float, conn: HTTPConnection | None = None,
                 address=("", 0), handshake: bool = False) -> None:
        self.sock, self.deadline, self.conn = sock, deadline, conn
        self.address, self.handshake = address, handshake
        self.data = bytearray()
        self.body_left = False                   # a worker will read (part of) the body
        self.last_used = float("inf")            # cheroot's own expiry leaves it alone

    def advance(self) -> str:
        """Read what has come: "ready" (a whole request), "wait" or "closed"."""
        raw = self.sock.raw
        if self.handshake:
            try:
                raw.do_handshake()
            except _NOT_YET:
                return "wait"
            except ssl.SSLError as err:
                if "http request" in str(err).lower():
                    self._plain_http_refused(raw)
                return "closed"
            except (OSError, ValueError):
                return "closed"
            self.handshake = False
        while True:
            try:
                chunk = raw.recv(16384)
            except _NOT_YET:
                return "wait"
            except (ssl.SSLError, OSError, ValueError):
                return "closed"
            if not chunk:
                return "closed"
            self.data += chunk
            state = self._state()
            if state != "wait":
                return state

    @staticmethod
    def _plain_http_refused(raw) -> None:
        """Someone typed http:// for this HTTPS port: say so, in plain HTTP, once."""
        text = b"This device speaks HTTPS only: use https:// in the address.\n"
        answer = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(text), text))
        try:
            os.write(raw.fileno(), answer)
        except OSError:
            pass

    def _state(self) -> str:
        end = _HEAD_END.search(self.data)
        if end is None:
            return "closed" if len(self.data) > MAX_HEAD else "wait"
        head = bytes(self.data[:end.end()])
        if _HANDS_OVER.search(head):
            self.body_left = True                # chunked or 100-continue: the worker reads it
            return "ready"
        found = _LENGTH.search(head)
        length = int(found.group(1)) if found else 0
        if len(self.data) >= end.end() + length:
            return "ready"
        if length > PREREAD_BODY:
            self.body_left = True
            return "ready"
        return "wait"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        else:
            self.sock.close()


class Gate(connections.ConnectionManager):
    """cheroot's connection manager, with the waiting done here (see the module doc)."""

    def __init__(self, server, request_s: float, body_s: float, per_address: int,
                 most: int, bodies_per_address: int = 2, bodies: int = 4) -> None:
        super().__init__(server)
        self.request_s, self.body_s = request_s, body_s
        self.per_address, self.most = per_address, most
        self.bodies_per_address, self.bodies = bodies_per_address, bodies
        self.open: Counter[str] = Counter()
        self.reading: Counter[str] = Counter()  # bodies workers are reading, per address
        self._lock = threading.Lock()
        self._noted: dict[str, float] = {}
        self._accepting = True
        self._noted_out_of = -1e9

    # -- admitting --------------------------------------------------------------------

    def _admit(self) -> None:
        try:
            sock, addr = self.server.socket.accept()
        except (socket.timeout, BlockingIOError, InterruptedError):
            return
        except OSError as err:
            if err.errno in _OUT_OF:
                self._pause_accepting(err)
            return
        host = addr[0] if isinstance(addr, tuple) and addr else "-"
        with self._lock:
            crowded = self.open[host] >= self.per_address or sum(self.open.values()) >= self.most
            if not crowded:
                self.open[host] += 1
        if crowded:
            self._refused(host)
            sock.close()
            return
        connections.prevent_socket_inheritance(sock)
        sock.setblocking(False)
        handshake = False
        if self.server.ssl_adapter is not None:
            try:
                sock = self.server.ssl_adapter.context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False)
            except (ssl.SSLError, OSError):
                self._forget(host)
                sock.close()
                return
            handshake = True
        gated = GatedSocket(sock, self.server.timeout, lambda: self._forget(host))
        gated.host = host
        self._watch(Arriving(gated, time.monotonic() + self.request_s, None, addr, handshake))

    def _pause_accepting(self, err: OSError) -> None:
        """Out of file descriptors (or kernel memory): the listening socket would be
        readable at every select() and the loop would spin, so it leaves the selector
        until the next expiry round (`_resume_accepting`), which may have freed some."""
        if self._accepting:
            self._accepting = False
            self._selector.unregister(self.server.socket.fileno())
        now = time.monotonic()
        if now - self._noted_out_of >= 60:
            self._noted_out_of = now
            log.warning("cannot accept connections (%s): out of file descriptors or "
                        "memory; pausing new connections for a moment", err.strerror or err)

    def _resume_accepting(self) -> None:
        if not self._accepting:
            self._accepting = True
            self._selector.register(self.server.socket.fileno(), selectors.EVENT_READ,
                                    data=self.server)

    def _refused(self, host: str) -> None:
        now = time.monotonic()
        if now - self._noted.get(host, -1e9) >= 60:
            if len(self._noted) > 10_000:
                self._noted.clear()
            self._noted[host] = now
            log.warning("too many connections from %s (at most %d from one address, %d in "
                        "all): refusing more for now", host, self.per_address, self.most)

    def _forget(self, host: str) -> None:
        with self._lock:
            self.open[host] -= 1
            if self.open[host] <= 0:
                del self.open[host]

    def _watch(self, item: Arriving) -> None:
        try:
            self._selector.register(item.sock.raw.fileno(), selectors.EVENT_READ,
                                    data=item)
        except (ValueError, KeyError, OSError):
            item.close()

    # -- reading ----------------------------------------------------------------------

    def _advance(self, fd: int, item: Arriving) -> None:
        state = item.advance()
        if state == "wait":
            return
        self._selector.unregister(fd)
        if state == "closed":
            item.close()
            return
        self._hand_over(item)

    def _hand_over(self, item: Arriving) -> None:
        """A whole request (or a head that hands over its body): to a worker thread."""
        raw = item.sock.raw
        if item.body_left and not self._may_read_body(item.sock):
            self._too_many_bodies(item)
            return
        raw.settimeout(self.server.timeout)
        item.sock.refill(item.data, time.monotonic() + self.body_s)
        conn = item.conn
        if conn is None:
            conn = self.server.ConnectionClass(self.server, item.sock, MakeFile)
            conn.remote_addr, conn.remote_port = item.address[0], item.address[1]
            conn.ssl_env = (self.server.ssl_adapter.get_environ(raw)
                            if self.server.ssl_adapter is not None else {})
        self.server.process_conn(conn)

    def _may_read_body(self, sock: GatedSocket) -> bool:
        """Take a place among the bodies read by workers, if one is free."""
        host = sock.host
        with self._lock:
            if (self.reading[host] >= self.bodies_per_address
                    or sum(self.reading.values()) >= self.bodies):
                return False
            self.reading[host] += 1
        sock.reading_body(lambda: self._body_read(host))
        return True

    def _body_read(self, host: str) -> None:
        with self._lock:
            self.reading[host] -= 1
            if self.reading[host] <= 0:
                del self.reading[host]

    def _too_many_bodies(self, item: Arriving) -> None:
        """503 without reading the body (best effort: the socket is non-blocking), then
        close; noted once a minute per address."""
        text = b"Too many uploads at once; try again shortly.\n"
        answer = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\nContent-Type: "
                  b"text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (len(text), text))
        try:
            item.sock.raw.send(answer)
        except (OSError, ValueError):
            pass
        host = item.sock.host
        now = time.monotonic()
        if now - self._noted.get("body " + host, -1e9) >= 60:
            self._noted["body " + host] = now
            log.warning("too many large request bodies at once from %s (at most %d from one "
                        "address, %d in all): refusing more for now", host,
                        self.bodies_per_address, self.bodies)
        item.close()

    def put(self, conn: HTTPConnection) -> None:
        """A kept-alive connection back from its worker; bytes already read ahead (the
        client sent its next request without waiting) are its next request's start."""
        if isinstance(conn.socket, GatedSocket):
            conn.socket.body_over()              # its request is over, body and all
        ahead = conn.socket.take_ahead() if isinstance(conn.socket, GatedSocket) else b""
        if not ahead or conn.rfile.has_data():
            if ahead:
                conn.socket.refill(ahead, time.monotonic() + self.body_s)
            super().put(conn)
            return
        conn.last_used = time.time()
        item = Arriving(conn.socket, time.monotonic() + self.request_s, conn)
        item.data += ahead
        if item._state() == "ready":
            self._hand_over(item)
        else:
            conn.socket.raw.setblocking(False)
            self._watch(item)

    def _next_request(self, fd: int, conn: HTTPConnection) -> None:
        """A kept-alive connection became readable: read its next request here too."""
        self._selector.unregister(fd)
        conn.socket.raw.setblocking(False)
        item = Arriving(conn.socket, time.monotonic() + self.request_s, conn)
        self._watch(item)
        self._advance(fd, item)

    def _run(self, expiration_interval: float) -> None:
        last_check = time.monotonic()
        while not self._stop_requested:
            try:
                ready = list(self._selector.select(timeout=expiration_interval))
            except OSError:
                self._remove_invalid_sockets()
                continue
            for fd, item in ready:
                if item is self.server:
                    self._admit()
                elif isinstance(item, Arriving):
                    self._advance(fd, item)
                else:
                    self._next_request(fd, item)
            now = time.monotonic()
            if now - last_check >= expiration_interval:
                self._expire(threshold=time.time() - self.server.timeout)
                self._resume_accepting()
                last_check = now

    def _expire(self, threshold: float) -> None:
        """Close requests that did not arrive in time, and kept-alive connections left
        unused since `threshold`."""
        now = time.monotonic()
        late = [(fd, item) for fd, item in self._selector.connections
                if item is not self.server and (
                    now >= item.deadline if isinstance(item, Arriving)
                    else item.last_used < threshold)]
        for fd, item in late:
            self._selector.unregister(fd)
            item.close()

    @property
    def can_add_keepalive_connection(self) -> bool:
        """Kept-alive idle connections are bounded; requests still arriving do not count."""
        limit = self.server.keep_alive_conn_limit
        idle = sum(1 for _, c in self._selector.connections if isinstance(c, HTTPConnection))
        return limit is None or idle < limit
