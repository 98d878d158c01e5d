"""The [web] table: where the web app listens, its files, and how long sessions live.

    [web]
    listen = "0.0.0.0:8080"          # host:port ("[::]:8080" for IPv6)
    tls_cert = "/etc/callgate/web.crt"   # both or neither: HTTPS with the device
    tls_key = "/etc/callgate/web.key"    # certificate (the key file must be 0600)
    db = "/var/lib/callgate/web.sqlite"  # users and sessions
    secret_key_file = "/var/lib/callgate/web-secret.key"   # made by `callgate web init`
    store = "/var/lib/callgate/calls.sqlite"   # the call records (default: [store] path)
    idle_minutes = 30                # a session unused this long ends
    session_hours = 12               # and none outlives this, used or not
    signin_attempts = 5              # failed sign-ins per name and address ...
    signin_window_minutes = 5        # ... within this window, then refused until it passes;
                                     # an account's own tries slow down after as many
                                     # failures, 1 s doubling up to the window
    signin_address_attempts = 20     # failed sign-ins from one address, any names
    threads = 24                     # server threads for pages
    streams = 24                     # and for open agent pages' event streams, apart
    request_seconds = 10             # a request's head (and a form) must arrive within this
    body_seconds = 30                # a larger body (an announcement upload) within this
    connections_per_address = 32     # open connections from one address
    [web.metrics]                    # /metrics for Prometheus (web/metrics.py), off by default

Parsing here reads no file, so `check-config` can run it on a build machine;
the files are checked when the server starts (`server.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ConfigError, Table
from ..store.records import DEFAULT_PATH as DEFAULT_STORE
from ..store.records import store_path
from .metrics import MetricsSettings

DEFAULT_DB = "/var/lib/callgate/web.sqlite"
DEFAULT_SECRET = "/var/lib/callgate/web-secret.key"


@dataclass
class WebSettings:
    """Everything the web app and its server need; tests build it directly."""

    store: str = DEFAULT_STORE
    db: str = DEFAULT_DB
    secret_key_file: str = DEFAULT_SECRET
    host: str = "0.0.0.0"
    port: int = 8080
    tls_cert: str | None = None
    tls_key: str | None = None
    idle_s: float = 30 * 60
    lifetime_s: float = 12 * 3600
    signin_attempts: int = 5
    signin_window_s: float = 5 * 60
    threads: int = 24
    streams: int = 24               # event streams open at once, on threads of their own
    signin_address_attempts: int = 20
    request_s: float = 10.0         # the head and a small body, read before a thread takes it
    body_s: float = 30.0            # the rest of a large body, read by the request's thread
    connections_per_address: int = 32
    max_connections: int = 512      # open connections in all (file descriptors, buffers)
    hash_checks: int = 2            # password checks at once (checks.py)
    hash_queue: int = 4             # and waiting for a turn, at most
    hash_wait_s: float = 5.0
    stream_s: float = 60.0          # an event stream ends after this; the browser reconnects
    poll_s: float = 0.5             # how often a stream looks for new transfers
    recheck_s: float = 5.0          # how often a stream checks its session is still alive
    metrics: MetricsSettings = field(default_factory=MetricsSettings)   # [web.metrics]

    @property
    def https(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    @classmethod
    def from_table(cls, config: Table) -> "WebSettings":
        """From a whole configuration ([web], and [store] path for the default store)."""
        web = config.sub("web")
        store_default = store_path(config)
        host, port = parse_listen(web.get("listen", str, "0.0.0.0:8080"), web.key("listen"))
        cert = web.get("tls_cert", str, None) or None
        key = web.get("tls_key", str, None) or None
        if bool(cert) != bool(key):
            missing = "tls_key" if cert else "tls_cert"
            raise ConfigError(f"{web.key(missing)}: give tls_cert and tls_key together")
        s = cls(
            store=web.get("store", str, store_default),
            db=web.get("db", str, DEFAULT_DB),
            secret_key_file=web.get("secret_key_file", str, DEFAULT_SECRET),
            host=host, port=port, tls_cert=cert, tls_key=key,
            idle_s=web.number("idle_minutes", 30, 1, 24 * 60) * 60,
            lifetime_s=web.number("session_hours", 12, 0.1, 24 * 31) * 3600,
            signin_attempts=int(_int(web, "signin_attempts", 5, 1, 100)),
            signin_window_s=web.number("signin_window_minutes", 5, 1, 24 * 60) * 60,
            threads=int(_int(web, "threads", 24, 4, 256)),
            streams=int(_int(web, "streams", 24, 1, 256)),
            signin_address_attempts=int(_int(web, "signin_address_attempts", 20, 1, 1000)),
            request_s=web.number("request_seconds", 10, 1, 300),
            body_s=web.number("body_seconds", 30, 1, 3600),
            connections_per_address=int(_int(web, "connections_per_address", 32, 1, 1000)),
            metrics=MetricsSettings.from_table(web.sub("metrics")))
        if s.idle_s > s.lifetime_s:
            raise ConfigError(f"{web.key('idle_minutes')}: longer than session_hours")
        bad = web.unknown()
        if bad:
            raise ConfigError(f"{bad[0]}: unknown key")
        return s


def _int(table: Table, name: str, default: int, low: int, high: int) -> int:
    value = table.get(name, int, default)
    if not low <= value <= high:
        raise ConfigError(f"{table.key(name)}: {value} is outside {low}..{high}")
    return value


def parse_listen(text: str, key: str = "web.listen") -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port); ConfigError naming `key` otherwise."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{key}: {text!r} is not host:port (e.g. \"0.0.0.0:8080\")")
    return host, int(port)
