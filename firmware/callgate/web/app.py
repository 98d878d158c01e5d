"""The Flask application: blueprints, CSRF, cookies and the security headers of every answer.

Pages are Jinja templates with small script files from web/static/ (no build
step, nothing from another site). The Content-Security-Policy allows only this
site's own files and no inline script at all, so a name a CRM sends cannot
become script; frames are refused, no Referer leaves the device, and nothing
but static files may be cached.

CSRF: Flask-WTF checks the token of every POST (form field `csrf_token`, or the
X-CSRFToken header for a script's fetch). Its HTTPS Referer check is off: the
pages send no Referer at all (Referrer-Policy: no-referrer), so that check
would refuse every form; the token and SameSite=Lax cookies do the work.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, Request, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.routing import BuildError

from ..config import Table
from .checks import PasswordChecks
from .context import WebState
from .context import state as app_state
from .keyfile import read_secret_key
from .limits import SigninLimits
from .memory import keep_big_blocks_apart
from .reader import StoreReader
from .settings import WebSettings
from .users import SCRYPT_N, Users

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
MAX_FORM_BYTES = 64 * 1024


class _Request(Request):
    """Forms are small (MAX_FORM_BYTES), but for the announcement upload; the limit is
    known before any part of the body is read (the CSRF check reads the form)."""

    @property
    def max_content_length(self) -> int | None:
        from .switches import MAX_UPLOAD_BYTES, UPLOAD_PATH

        if self.path == UPLOAD_PATH and self.method == "POST":
            return MAX_UPLOAD_BYTES
        return MAX_FORM_BYTES


def create_app(config: Table | WebSettings, clock=time.time, secret_key: bytes | None = None,
               scrypt_n: int = SCRYPT_N) -> Flask:
    """The web app for a configuration ([web] of a Table, or WebSettings).

    `secret_key` defaults to the contents of [web] secret_key_file (KeyFileError if it is
    missing or not 0600); `clock` is the wall clock of sessions and sign-in limits.
    """
    settings = config if isinstance(config, WebSettings) else WebSettings.from_table(config)
    keep_big_blocks_apart()          # password checks' 16 MiB go back when done (memory.py)
    key = secret_key if secret_key is not None else read_secret_key(settings.secret_key_file)
    app = Flask("callgate.web", template_folder=str(HERE / "templates"),
                static_folder=str(HERE / "static"), static_url_path="/static")
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_NAME="callgate_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.https,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.lifetime_s),
        WTF_CSRF_TIME_LIMIT=None,          # valid for the session, which has its own limits
        WTF_CSRF_SSL_STRICT=False,         # see the module doc
        MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
    )
    checks = PasswordChecks(settings.hash_checks, settings.hash_queue, settings.hash_wait_s)
    users = Users(settings.db, scrypt_n=scrypt_n, clock=clock, checks=checks)
    app.extensions["callgate"] = WebState(settings, users, StoreReader(settings.store), clock,
                                          SigninLimits(users, settings, key))
    app.request_class = _Request
    CSRFProtect(app)

    from .admin import bp as users_bp
    from .agent import bp as agent_bp
    from .auth import bp as auth_bp
    from .reports import bp as reports_bp
    from .setup import bp as setup_bp
    from .status import bp as status_bp
    from .switches import bp as switches_bp
    for bp in (auth_bp, agent_bp, status_bp, users_bp, reports_bp, switches_bp, setup_bp):
        app.register_blueprint(bp)
    from .metrics import install as install_metrics
    install_metrics(app, settings)                 # /metrics, when [web.metrics] is on

    app.after_request(_security_headers)
    app.context_processor(_template_globals)
    app.register_error_handler(CSRFError, _csrf_refused)
    for code, message in ((400, "The request was not understood."),
                          (403, "Your role does not give access to this page."),
                          (404, "There is no such page."),
                          (405, "That is not how this page is used."),
                          (413, "That form is too large."),
                          (500, "Something went wrong on the device.")):
        app.register_error_handler(code, _error_page(code, message))
    return app


def _security_headers(response):
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h["X-Frame-Options"] = "DENY"
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint == "static":
        h["Cache-Control"] = "no-cache"            # revalidate: a firmware update shows at once
    else:
        h["Cache-Control"] = "no-store"            # call data never lands in a browser cache
    return response


def _template_globals() -> dict:
    from .auth import current_user

    from .. import __version__
    from .setup import code_file, pending

    user = current_user()
    st = app_state()
    return {"me": user, "nav": _nav(user) if user else [], "version": __version__,
            "setup_pending": user is None and pending(code_file(st.settings.db), st.users)}


def _nav(user) -> list[tuple[str, str, bool]]:
    """(label, url, current) for the links this user's role may follow."""
    links = [("Agent", "agent.page", ("agent", "supervisor")),
             ("Status", "status.page", ("supervisor",)),
             ("Reports", "reports.page", ("supervisor",)),
             ("Closed today", "switches.page", ("supervisor",)),
             ("Users", "users.page", ("admin",))]
    out = []
    for label, endpoint, roles in links:
        if not user.can(*roles):
            continue
        try:
            url = url_for(endpoint)
        except BuildError:
            continue
        out.append((label, url, (request.endpoint or "").split(".")[0] == endpoint.split(".")[0]))
    return out


def _csrf_refused(err: CSRFError):
    return render_template("error.html", code=400,
                           message="The form had expired or was not sent by this site "
                                   "(missing or wrong CSRF token). Reload the page and try "
                                   "again."), 400


def _error_page(code: int, message: str):
    def handler(err):
        if request.path.endswith((".json", "/stream")):
            return {"error": message}, code
        return render_template("error.html", code=code, message=message), code
    return handler
