"""Serving the app with cheroot: a pure-Python threaded WSGI server with TLS built in.

HTTP by default; HTTPS when [web] tls_cert and tls_key name the device
certificate and its key (the key 0600, TLS 1.2 or newer). Requests reach a
server thread only once they have arrived whole (gate.py: slow clients cost a
socket, not a thread; connections capped per address). The pool has `threads`
threads for pages plus `streams` for the agents' event streams: each open agent
page holds one of those, and the app refuses a stream past `streams` (agent.py),
so screen-pops can never take the threads pages are served by.
"""

from __future__ import annotations

import ssl

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from .gate import Gate
from .keyfile import KeyFileError, check_private
from .settings import WebSettings


class ServerError(Exception):
    """The server cannot start (TLS files, the address); str() is one line."""


def tls_adapter(settings: WebSettings) -> BuiltinSSLAdapter | None:
    """The TLS adapter for the configured certificate, or None for plain HTTP."""
    if not settings.https:
        return None
    try:
        check_private(settings.tls_key, "web.tls_key")
    except KeyFileError as err:
        raise ServerError(str(err)) from None
    try:
        with open(settings.tls_cert, "rb"):
            pass
    except OSError as err:
        raise ServerError(f"web.tls_cert: {settings.tls_cert}: {err.strerror or err}") from None
    try:
        adapter = BuiltinSSLAdapter(settings.tls_cert, settings.tls_key)
    except (ssl.SSLError, OSError) as err:
        raise ServerError(f"web.tls_cert: {settings.tls_cert} and {settings.tls_key} are not "
                          f"a PEM certificate and its key ({err.__class__.__name__})") from None
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    return adapter


class GatedServer(wsgi.Server):
    """cheroot's WSGI server with gate.py's connection manager in place of its own."""

    def __init__(self, *args, settings: WebSettings, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    def prepare(self) -> None:
        super().prepare()
        s = self.settings
        plain = self._connections
        self._connections = Gate(self, s.request_s, s.body_s, s.connections_per_address,
                                 s.max_connections, bodies_per_address=2,
                                 bodies=max(2, s.threads // 2))
        plain._selector.close()


def make_server(app, settings: WebSettings) -> wsgi.Server:
    """A cheroot server for `app`, not yet listening (call prepare() or start())."""
    server = GatedServer((settings.host, settings.port), app,
                         numthreads=settings.threads + settings.streams,
                         server_name="callgate", timeout=30, shutdown_timeout=2,
                         settings=settings)
    adapter = tls_adapter(settings)
    if adapter is not None:
        server.ssl_adapter = adapter
    return server


def listen(server: wsgi.Server, settings: WebSettings) -> None:
    """Bind and start the worker threads; ServerError naming web.listen if it cannot."""
    try:
        server.prepare()
    except OSError as err:
        raise ServerError(f"web.listen: cannot listen on {settings.host}:{settings.port} "
                          f"({err.strerror or err})") from None


def url(settings: WebSettings, server: wsgi.Server | None = None) -> str:
    host, port = settings.host, settings.port
    if server is not None and isinstance(server.bind_addr, tuple):
        host, port = server.bind_addr[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if settings.https else 'http'}://{host}:{port}"
