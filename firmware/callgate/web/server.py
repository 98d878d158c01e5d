"""Serving the app with cheroot: a pure-Python threaded WSGI server with TLS built in.

HTTP by default; HTTPS when [web] tls_cert and tls_key name the device
certificate and its key (the key 0600, TLS 1.2 or newer). Each open agent page
holds one server thread for its event stream, so `threads` bounds how many
screen-pops can be open at once.
"""

from __future__ import annotations

import ssl

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

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


def make_server(app, settings: WebSettings) -> wsgi.Server:
    """A cheroot server for `app`, not yet listening (call prepare() or start())."""
    server = wsgi.Server((settings.host, settings.port), app, numthreads=settings.threads,
                         server_name="callgate", timeout=30, shutdown_timeout=2)
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
