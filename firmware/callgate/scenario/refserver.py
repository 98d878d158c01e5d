"""Our reference REST API (docs/openapi.yaml) on a real HTTPS server on loopback.

A tester's tool, not part of the appliance: `callgate simulate` points the
connector's "reference" preset at it so a simulated call crosses a real TLS
connection, real HTTP and real JSON, and the server can misbehave the way
back ends do (slow, 5xx, 429 with Retry-After, malformed JSON, a certificate
nobody trusts). Answers come from an embedded Directory, so the customers
are the same as in a directory scenario.

Certificates come from `trustme` (a test extra). The server never logs a
path (it holds identifiers); what it serves is kept as (operation, status)
pairs for the transcript. `TlsServer` and `TlsHandler`, the HTTPS core, are
the test suite's loopback server too (tests/https_server.py).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..crm.base import Customer, Lookup

PREFIX = "/callgate/v1"                 # the path of the API, as in the OpenAPI `servers`
OPERATIONS = ("lookup_phone", "lookup_identifier", "verify")
BEHAVIOURS = ("ok", "slow", "down", "status", "garbage", "untrusted")


class TrustmeMissing(RuntimeError):
    """The `https` back end needs trustme for its certificates."""


@dataclass(frozen=True)
class Misbehaviour:
    """How the server answers the operations it `affects` (the rest are answered well)."""

    behaviour: str = "ok"
    delay_ms: int = 0                   # slow: before the status line
    status: int = 500                   # status: the HTTP status answered
    retry_after: str | None = None      # status: the Retry-After header, if any
    times: int = 0                      # only the first N requests it affects (0: all)
    affects: tuple[str, ...] = OPERATIONS


def _trustme():
    try:
        import trustme
    except ImportError:
        raise TrustmeMissing("the https back end needs trustme: pip install callgate[test]") \
            from None
    return trustme


def free_port() -> int:
    """A loopback port with nothing listening on it (a back end that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TlsHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 over the TLS socket; subclasses answer in `serve()`. Never logs a path."""

    protocol_version = "HTTP/1.1"
    server: "TlsServer"

    def setup(self) -> None:
        super().setup()
        self.request.do_handshake()        # in this thread, so a refused handshake stays here

    def log_message(self, *args: Any) -> None:
        pass                               # paths hold identifiers: never logged

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def respond(self, status: int, headers: dict[str, str], data: bytes) -> None:
        """Send the answer; a client that went away is no error of ours."""
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.write_body(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def write_body(self, data: bytes) -> None:
        self.wfile.write(data)

    def serve(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self.serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


class TlsServer(ThreadingHTTPServer):
    """A threaded HTTPS server on 127.0.0.1 with a certificate from `ca` (a trustme CA).

    The TLS handshake runs in the handler's thread, so a client that refuses
    the certificate never holds up the accept loop. `owner` is what the
    handlers answer for.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, ca, handler: type[TlsHandler], owner: Any, port: int = 0,
                 name: str = "callgate-https") -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self.context)
        self.owner = owner
        super().__init__(("127.0.0.1", port), handler)      # port 0: any free one
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address) -> None:
        pass                               # a client that refused our certificate


class _Handler(TlsHandler):
    def serve(self) -> None:
        status, headers, data, delay = self.server.owner.answer(
            self.command, urlsplit(self.path).path, self.headers.get("Authorization", ""),
            self.body())
        if delay:
            time.sleep(delay)
        self.respond(status, headers, data)


class ReferenceServer:
    """The reference API over `backend` (a Directory) at `url`, misbehaving as told.

    `ca_path` is the CA bundle a client should trust: for "untrusted" it is a
    CA that did not sign the server's certificate. For "down" nothing listens.
    """

    def __init__(self, backend, folder: Path, token: str,
                 misbehaviour: Misbehaviour = Misbehaviour()) -> None:
        trustme = _trustme()
        self.backend = backend
        self.token = token
        self.mis = misbehaviour
        self.served: list[tuple[str, int]] = []    # (operation, status), in order
        self.lock = threading.Lock()
        self._affected = 0                         # requests for the affected operations
        ca = trustme.CA()
        trusted = trustme.CA() if misbehaviour.behaviour == "untrusted" else ca
        self.ca_path = Path(folder) / "reference-ca.pem"
        trusted.cert_pem.write_to_path(str(self.ca_path))
        self._server: TlsServer | None = None
        if misbehaviour.behaviour == "down":
            self.port = free_port()
        else:
            self._server = TlsServer(ca, _Handler, self, name="callgate-refserver")
            self.port = self._server.port
            self._server.start()
        self.url = f"https://127.0.0.1:{self.port}{PREFIX}"

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "ReferenceServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ answering

    def answer(self, method: str, raw_path: str, authorization: str,
               body: bytes) -> tuple[int, dict, bytes, float]:
        """(status, headers, body, delay in s) for one request; notes (operation, status)."""
        op, args = _route(method, raw_path)
        if op is None:
            return self._note("unknown", _error(404, "not_found", "no such operation"))
        if authorization != f"Bearer {self.token}":
            return self._note(op, _error(401, "unauthorized", "bad or missing token"))
        mis = self.mis
        with self.lock:
            if op in mis.affects:
                self._affected += 1
            n = self._affected
        delay = 0.0
        if op in mis.affects and (mis.times == 0 or n <= mis.times):
            if mis.behaviour == "slow":
                delay = mis.delay_ms / 1000.0
            elif mis.behaviour == "status":
                reply = _error(mis.status, "internal" if mis.status >= 500 else "rate_limited"
                               if mis.status == 429 else "error", "simulated failure")
                if mis.retry_after is not None:
                    reply[1]["Retry-After"] = mis.retry_after
                return self._note(op, reply)
            elif mis.behaviour == "garbage":
                return self._note(op, (200, {"Content-Type": "application/json"},
                                       b'{"customers": [{"id": "1", "name": ', 0.0))
        status, headers, data, _ = self._note(op, self._operation(op, args, body))
        return status, headers, data, delay

    def _note(self, op: str, reply: tuple) -> tuple[int, dict, bytes, float]:
        with self.lock:
            self.served.append((op, reply[0]))
        return reply

    def _operation(self, op: str, args: list[str], body: bytes) -> tuple:
        b = self.backend
        if op == "lookup_phone":
            return _customers(b.lookup_phone(args[0]))
        if op == "lookup_identifier":
            kind, value = args
            if not value.isdigit():
                return _error(400, "bad_request", "the value must be digits")
            return _customers(b.lookup_identifier(kind, value))
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error(400, "bad_request", "the body is not JSON")
        if (not isinstance(doc, dict) or set(doc) != {"kind", "secret"}
                or not all(isinstance(doc[k], str) for k in doc)):
            return _error(400, "bad_request", "expected {kind, secret}")
        cid = args[0]
        if b.lookup_identifier("customer_id", cid).status != "hit":
            return _error(404, "not_found", "no such customer")
        verdict = b.verify(Customer(cid), doc["kind"], doc["secret"])
        if verdict.status == "error":
            return _error(500, "internal", "directory unavailable")
        return _json({"verified": verdict.status == "verified"})


def _route(method: str, raw_path: str) -> tuple[str | None, list[str]]:
    if not raw_path.startswith(PREFIX + "/"):
        return None, []
    parts = [unquote(p) for p in raw_path[len(PREFIX) + 1:].split("/")]
    if method == "GET" and len(parts) == 3 and parts[:2] == ["customers", "by-phone"]:
        return "lookup_phone", parts[2:]
    if method == "GET" and len(parts) == 4 and parts[:2] == ["customers", "by-identifier"]:
        return "lookup_identifier", parts[2:]
    if method == "POST" and len(parts) == 3 and parts[0] == "customers" and parts[2] == "verify":
        return "verify", parts[1:2]
    return None, []


def _json(obj: Any, status: int = 200) -> tuple[int, dict, bytes, float]:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode(), 0.0


def _error(status: int, code: str, message: str) -> tuple[int, dict, bytes, float]:
    return _json({"error": {"code": code, "message": message}}, status)


def _customers(result: Lookup) -> tuple:
    if result.status == "error":
        return _error(500, "internal", "directory unavailable")
    return _json({"customers": [
        {"id": c.id, "name": c.name,
         **({} if c.secrets is None else {"secrets": sorted(c.secrets)})}
        for c in result.customers]})
