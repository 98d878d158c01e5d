"""A real HTTPS server on loopback for the CRM tests.

The package's loopback HTTPS core (`callgate.scenario.refserver.TlsServer`,
`http.server.ThreadingHTTPServer` with TLS) with a certificate from a `trustme`
CA: the client under test trusts that CA through its config's `ca_bundle`,
exactly as an appliance trusts a business's private CA. Every request is
recorded (method, path, query, headers, body) so a test can assert the shape a
connector sent; the answer comes from `server.handler(request) -> Reply`, which
a test sets. `secret_file` writes the 0600 credential files the auth profiles read.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

import trustme

from callgate.scenario.refserver import TlsHandler, TlsServer


def secret_file(tmp_path: Path, name: str, text: str, mode: int = 0o600) -> str:
    """A credential file (one line) with `mode`, as the auth profiles read them."""
    path = tmp_path / name
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return str(path)


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


class _Handler(TlsHandler):
    drip = 0.0

    def serve(self) -> None:
        parts = urlsplit(self.path)
        req = Request(self.command, self.path, unquote(parts.path), parts.path,
                      dict(parse_qsl(parts.query, keep_blank_values=True)),
                      {k.lower(): v for k, v in self.headers.items()}, self.body())
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(req)
        reply = owner.handler(req)
        if reply.delay:
            time.sleep(reply.delay)
        self.drip = reply.drip
        self.respond(reply.status, reply.headers, reply.body)

    def write_body(self, data: bytes) -> None:
        if not self.drip:
            super().write_body(data)
            return
        for i in range(len(data)):             # a server that trickles its answer
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(self.drip)


class HttpsServer:
    """`with HttpsServer(tmp_path) as srv:` then point a connector at `srv.url`."""

    def __init__(self, directory: Path, ca: trustme.CA | None = None,
                 handler: Callable[[Request], Reply] = _not_found, port: int = 0) -> None:
        self.ca = ca or trustme.CA()
        self.handler = handler
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.ca_path = Path(directory) / f"ca-{id(self)}.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self._server = TlsServer(self.ca, _Handler, self, port)   # port 0: any free one
        self.port = self._server.port
        self.url = f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> "HttpsServer":
        self._server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._server.stop()

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
