"""The web server under slow and crowding clients (issue 16 item 2), served for real by
cheroot on loopback: slow heads and bodies cost no thread and are closed at their
deadline, a TLS handshake never finished does not hold the door, connections are capped
per address, and event streams have threads of their own."""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import types
from contextlib import ExitStack, closing

import pytest
import requests
import trustme

from browser import USERS, csrf_of, make_app, serve
from callgate.web.gate import Gate
from test_web_server import device_certificate

WAIT_S = 20.0        # how long a test waits for an answer that must come (never reached)


@pytest.fixture()
def served(tmp_path, request):
    """A live app with the settings the test gives (`with_settings`)."""
    app = make_app(tmp_path, **getattr(request, "param", {}))
    server, url = serve(app, app.extensions["callgate"].settings)
    yield app, server, url
    app.extensions["callgate"].stopping.set()
    server.stop()


def with_settings(**over):
    return pytest.mark.parametrize("served", [over], indirect=True, ids=["settings"])


def connect(url: str, source: str = "127.0.0.1") -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=WAIT_S, source_address=(source, 0))
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def raw_get(url: str, source: str, path: str = "/signin") -> bytes:
    with closing(connect(url, source)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n"
                     .encode())
        return read_all(sock)


@with_settings(threads=4, streams=1)
def test_slow_heads_hold_no_server_thread(served):
    _, _, url = served
    with ExitStack() as stack:
        for i in range(12):                      # three times the threads, from many hosts
            sock = stack.enter_context(closing(connect(url, f"127.0.0.{i + 2}")))
            sock.sendall(b"GET /signin HTTP/1.1\r\nHost: dev")       # ... and no more
        r = requests.get(url + "/signin", timeout=WAIT_S)
        assert r.status_code == 200 and b"csrf_token" in r.content


@with_settings(request_s=0.5)
def test_a_head_that_never_ends_is_closed_at_its_deadline(served):
    _, _, url = served
    with closing(connect(url)) as sock:
        sock.sendall(b"GET /signin HTTP/1.1\r\nHost: device\r\n")
        assert read_all(sock) == b""             # closed, not answered, not kept waiting


@with_settings(request_s=0.5)
def test_a_small_body_that_never_ends_is_closed_at_its_deadline(served):
    _, _, url = served
    with closing(connect(url)) as sock:
        sock.sendall(b"POST /signin HTTP/1.1\r\nHost: device\r\nContent-Type: "
                     b"application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nuser")
        assert read_all(sock) == b""


@with_settings(body_s=0.5, request_s=30)
def test_a_large_body_that_never_ends_is_cut_off_at_its_deadline(served):
    _, _, url = served
    with closing(connect(url)) as sock:
        sock.sendall(b"POST /switches/announcement HTTP/1.1\r\nHost: device\r\nContent-Type: "
                     b"application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n"
                     b"csrf_token=x&a=" + b"1" * 1000)
        answer = read_all(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert requests.get(url + "/signin", timeout=WAIT_S).status_code == 200


SLOW_UPLOAD = (b"POST /switches/announcement HTTP/1.1\r\nHost: device\r\nContent-Type: "
               b"multipart/form-data; boundary=xx\r\nContent-Length: 1000000\r\n\r\n--xx\r\n")


@with_settings(threads=4, streams=1, body_s=30)
def test_slow_large_bodies_cannot_take_every_server_thread(served):
    """A body too large to be read ahead (an upload, no session needed to send one) is read
    by a server thread for up to body_s: a few at a time from one address, and a few in
    all, so the threads pages are served by stay free."""
    _, _, url = served
    with ExitStack() as stack:
        for i in range(8):                       # more than every thread, many hosts
            sock = stack.enter_context(closing(connect(url, f"127.0.0.{i + 2}")))
            sock.sendall(SLOW_UPLOAD)            # ... and the body never comes
        r = requests.get(url + "/signin", timeout=WAIT_S)
        assert r.status_code == 200 and b"csrf_token" in r.content


@with_settings(threads=8, streams=1, body_s=30)
def test_one_address_gets_only_a_few_slow_bodies_read_at_once(served):
    _, _, url = served
    with ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(closing(connect(url, "127.0.0.5"))).sendall(SLOW_UPLOAD)
        # answered only after the gate has seen the two uploads (their bytes came first)
        assert raw_get(url, "127.0.0.6").startswith(b"HTTP/1.1 200")
        with closing(connect(url, "127.0.0.5")) as third:
            third.sendall(SLOW_UPLOAD)
            answer = read_all(third)             # at once, not after body_s
        assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer[:80]


@with_settings(connections_per_address=3)
def test_connections_are_capped_per_address(served):
    _, _, url = served
    with ExitStack() as stack:
        held = [stack.enter_context(closing(connect(url))) for _ in range(3)]
        with closing(connect(url)) as fourth:
            assert read_all(fourth) == b""       # closed at once
        assert raw_get(url, "127.0.0.7").startswith(b"HTTP/1.1 200")   # another host: served
        held[0].close()
        # the freed place is taken again as soon as the server has seen the close
        for _ in range(200):
            answer = raw_get(url, "127.0.0.1")
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 200")


def test_requests_sent_back_to_back_on_one_connection_are_all_answered(served):
    _, _, url = served
    with closing(connect(url)) as sock:
        one = b"GET /signin HTTP/1.1\r\nHost: device\r\nX-Pad: " + b"p" * 9000 + b"\r\n\r\n"
        last = b"GET /signin HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n"
        sock.sendall(one + one + last)
        answers = read_all(sock)
    assert answers.count(b"HTTP/1.1 200 OK") == 3


def test_an_unfinished_tls_handshake_does_not_hold_the_door(tmp_path):
    ca = trustme.CA()
    cert, key, ca_file = device_certificate(ca, tmp_path)
    app = make_app(tmp_path, tls_cert=cert, tls_key=key)
    server, url = serve(app, app.extensions["callgate"].settings)
    try:
        with ExitStack() as stack:
            for i in range(5):                   # TCP connections that never say hello
                stack.enter_context(closing(connect(url, f"127.0.0.{i + 2}")))
            r = requests.get(url + "/signin", verify=ca_file, timeout=WAIT_S)
            assert r.status_code == 200
        # plain HTTP to the HTTPS port is told so, not left hanging
        answer = raw_get(url.replace("https://", "http://"), "127.0.0.9")
        assert answer.startswith(b"HTTP/1.1 400") and b"HTTPS only" in answer
        with pytest.raises((ssl.SSLError, requests.exceptions.SSLError)):
            requests.get(url + "/signin", verify=True, timeout=WAIT_S)
    finally:
        server.stop()


@with_settings(streams=1, stream_s=1.0)
def test_event_streams_are_capped_apart_from_pages(served):
    _, _, url = served
    with requests.Session() as s:
        page = s.get(url + "/signin", timeout=WAIT_S).text
        r = s.post(url + "/signin", data={"csrf_token": csrf_of(page), "username": "ann",
                                          "password": USERS["ann"][1]},
                   allow_redirects=False, timeout=WAIT_S)
        assert r.status_code == 302
        first = s.get(url + "/agent/stream", stream=True, timeout=WAIT_S)
        assert first.status_code == 200
        lines = first.iter_lines()
        assert next(lines) == b"retry: 1000"
        second = s.get(url + "/agent/stream", stream=True, timeout=WAIT_S)
        assert second.status_code == 503 and second.headers["Retry-After"]
        assert "screen-pops" in second.json()["error"]
        assert s.get(url + "/agent/history.json", timeout=WAIT_S).status_code == 200
        for _ in lines:                          # the first stream ends at stream_s ...
            pass
        third = s.get(url + "/agent/stream", stream=True, timeout=WAIT_S)
        assert third.status_code == 200          # ... and its place is free again
        third.close()


class FakeListenerAtFdLimit:
    """A listening socket as the kernel gives it when the process has no file descriptor
    left: always readable (a client waits in the backlog), accept() fails with EMFILE."""

    def __init__(self) -> None:
        self.readable, self._peer = socket.socketpair()
        self._peer.send(b"x")
        self.accepts = 0

    def fileno(self) -> int:
        return self.readable.fileno()

    def accept(self):
        self.accepts += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def close(self) -> None:
        self.readable.close()
        self._peer.close()


def test_at_the_fd_limit_the_gate_stops_accepting_for_a_while_instead_of_spinning(caplog):
    """Left registered, a listening socket whose accept() keeps failing is readable at
    every select(): the selector thread would spin at 100 % CPU. The gate takes it out of
    the selector until its next expiry round, and says so once."""
    listener = FakeListenerAtFdLimit()
    server = types.SimpleNamespace(socket=listener, timeout=30, ssl_adapter=None)
    gate = Gate(server, request_s=1, body_s=1, per_address=4, most=8)

    def listening() -> bool:
        return any(item is server for _, item in gate._selector.connections)

    try:
        caplog.set_level(logging.WARNING, "callgate.web")
        assert listening()
        gate._admit()
        assert listener.accepts == 1 and not listening()
        gate._resume_accepting()
        assert listening()
        gate._admit()                                # still at the limit: out again
        assert not listening()
        notes = [r.getMessage() for r in caplog.records if "file descriptors" in r.getMessage()]
        assert len(notes) == 1, notes                # said once, not per try
    finally:
        gate._selector.close()
        listener.close()
