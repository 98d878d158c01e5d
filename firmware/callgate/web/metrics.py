"""/metrics: the device's state and its calls for a Prometheus on the LAN to scrape.

Off unless [web.metrics] enabled = true:

    [web.metrics]
    enabled = true
    token_file = "/etc/callgate/metrics.token"   # optional; 0600, one line (>= 16 chars)

A scrape shows the bearer token (`Authorization: Bearer <token>`, what
Prometheus sends from `authorization: credentials_file`), or comes from a
signed-in supervisor's session (a person looking). Off: 404, as for any page
that does not exist. No or a wrong token: 401; a signed-in user of another
role: 403.

What it shows and how it is read (at each scrape, from the call-record file
and the board, never from the engine's process) is telemetry/prometheus.py's.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, Table
from .keyfile import KeyFileError, check_private

# Flask and prometheus_client are imported when /metrics is installed: `check-config`
# reads this module (through settings.py) without either.

log = logging.getLogger("callgate.web")

PATH = "/metrics"
# the classic text format (0.0.4): every Prometheus reads it; what we write fits it
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MIN_TOKEN = 16


@dataclass
class MetricsSettings:
    """[web.metrics]: `enabled` (false), `token_file` (none: supervisors' sessions only)."""

    enabled: bool = False
    token_file: str | None = None

    @classmethod
    def from_table(cls, table: Table) -> "MetricsSettings":
        enabled = table.get("enabled", bool, False)
        token_file = table.get("token_file", str, "") or None
        table.reject_unknown(("enabled", "token_file"))
        if token_file is not None and not enabled:
            raise ConfigError(f"{table.key('token_file')}: set enabled = true as well "
                              "(/metrics is off)")
        return cls(enabled, token_file)


def read_token(path: str | Path, key: str = "web.metrics.token_file") -> str:
    """The scrape token: one line of a 0600 file; KeyFileError (one line) otherwise."""
    p = check_private(path, key)
    try:
        token = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise KeyFileError(f"{key}: {p}: cannot read ({type(err).__name__})") from None
    if len(token) < MIN_TOKEN or any(c.isspace() for c in token):
        raise KeyFileError(f"{key}: {p} must hold one token of at least {MIN_TOKEN} "
                           "characters, no spaces")
    return token


def install(app, settings) -> None:
    """Route /metrics on `app` when [web.metrics] is on (WebSettings `settings`)."""
    metrics = settings.metrics
    if not metrics.enabled:
        return
    from prometheus_client import CollectorRegistry, generate_latest

    from ..telemetry.prometheus import DeviceCollector

    token = read_token(metrics.token_file) if metrics.token_file else None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeviceCollector(settings.store))

    def page():
        from flask import Response

        refused = _check(token)
        if refused is not None:
            return refused
        return Response(generate_latest(registry), content_type=CONTENT_TYPE)

    app.add_url_rule(PATH, "metrics", page, methods=["GET"])


def _check(token: str | None):
    """None if the request may read /metrics; else the refusal (401 or 403)."""
    from flask import request

    from .auth import current_user

    shown = _bearer()
    if shown is not None:
        if token is None or not hmac.compare_digest(shown.encode(), token.encode()):
            log.warning("/metrics: wrong token from %s", request.remote_addr)
            return _refused(401, "wrong token")
        return None
    user = current_user()
    if user is None:
        return _refused(401, "a token or a supervisor's session is needed")
    if not user.can("supervisor"):
        return _refused(403, "not allowed for your role")
    return None


def _bearer() -> str | None:
    """The bearer token of the request, if it shows one."""
    from flask import request

    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def _refused(code: int, why: str):
    from flask import jsonify

    resp = jsonify(error=why)
    resp.status_code = code
    if code == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="callgate metrics"'
    return resp
