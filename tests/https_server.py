"""A real HTTPS server on loopback for the CRM tests.

`http.server.ThreadingHTTPServer` with TLS from a `trustme` CA: the client under
test trusts that CA through its config's `ca_bundle`, exactly as an appliance
trusts a business's private CA. Every request is recorded (method, path, query,
headers, body) so a test can assert the shape a connector sent; the answer comes
from `server.handler(request) -> Reply`, which a test sets.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

import trustme


@dataclass
class Request:
    method: str
    target: str                 # as sent on the request line (still percent-encoded)
    path: str                   # decoded path
    raw_path: str               # encoded path
    query: dict[str, str]       # decoded query (last value wins)
    headers: dict[str, str]     # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("ascii")))


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0          # seconds before the status line
    drip: float = 0.0           # seconds between body bytes (a server that trickles)

    @classmethod
    def json(cls, obj: Any, status: int = 200, **kw: Any) -> "Reply":
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        return cls(status, json.dumps(obj).encode("utf-8"), headers, **kw)


def _not_found(req: Request) -> Reply:
    return Reply.json({"error": {"code": "not_found", "message": "no route"}}, 404)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        self.request.do_handshake()      # in the handler thread, not the accept loop

    def log_message(self, *args: Any) -> None:   # keep test output quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        req = Request(self.command, self.path, unquote(parts.path), parts.path,
                      dict(parse_qsl(parts.query, keep_blank_values=True)),
                      {k.lower(): v for k, v in self.headers.items()}, body)
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(req)
        reply = owner.handler(req)
        if reply.delay:
            time.sleep(reply.delay)
        try:
            self.send_response(reply.status)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.drip:
                for i in range(len(reply.body)):
                    self.wfile.write(reply.body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(reply.drip)
            else:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: "HttpsServer"

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.owner.context.wrap_socket(sock, server_side=True,
                                              do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address) -> None:   # refused handshakes etc.
        pass


class HttpsServer:
    """`with HttpsServer(tmp_path) as srv:` then point a connector at `srv.url`."""

    def __init__(self, directory: Path, ca: trustme.CA | None = None,
                 handler: Callable[[Request], Reply] = _not_found, port: int = 0) -> None:
        self.ca = ca or trustme.CA()
        self.handler = handler
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(self.context)
        self.ca_path = Path(directory) / f"ca-{id(self)}.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self._server = _Server(("127.0.0.1", port), _Handler)   # port 0: any free one
        self._server.owner = self
        self.port = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "HttpsServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def route(self, table: dict[tuple[str, str], Callable[[Request], Reply] | Reply | list]) -> None:
        """Answer by (method, decoded path); a list is played in order, its last reply repeats."""
        queues = {k: (list(v) if isinstance(v, list) else [v]) for k, v in table.items()}

        def handle(req: Request) -> Reply:
            q = queues.get((req.method, req.path))
            if q is None:
                return _not_found(req)
            item = q.pop(0) if len(q) > 1 else q[0]
            return item(req) if callable(item) else item

        self.handler = handle

    def sent(self, method: str | None = None, path: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or r.path == path)]
