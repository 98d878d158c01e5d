"""Signing in and out, sessions that expire, and `require`, the role check of every view.

A session is a row in the users file (users.py); the browser's cookie (Flask's
signed session: HttpOnly, SameSite=Lax, Secure over HTTPS) carries only its
random token and the CSRF secret. Every request checks the row on the server:
it ends when unused for `idle_s`, at `lifetime_s` after sign-in whatever
happens, when the user is disabled or their password changes (the user's
session version moves on), and at sign-out. Requests the open pages make by
themselves (the screen-pop stream, the status refresh) count as use: an agent's
screen-pop must stay signed in for a shift; the absolute lifetime bounds it.

Failed sign-ins are limited per account, per address and per trusted browser
(limits.py); past a limit the form is refused (429) without looking at the
password, so guessing gains nothing, and only a few passwords are checked at once
(checks.py). A wrong name and a wrong password get the same answer in the same
time.
"""

from __future__ import annotations

import logging
import unicodedata
from urllib.parse import unquote, urlsplit
from functools import wraps

from flask import (Blueprint, flash, g, jsonify, redirect, render_template, request, session,
                   url_for)

from .checks import Busy
from .context import state
from .limits import DEVICE_COOKIE, DEVICE_DAYS, Asker, name_key
from .users import User, UserError

log = logging.getLogger("callgate.web")
bp = Blueprint("auth", __name__)

TOUCH_EVERY_S = 5.0          # how stale `seen` may get before it is written again
_ENDED = {"idle": "Your session ended after a while without use. Please sign in again.",
          "expired": "Your session reached its time limit. Please sign in again.",
          "changed": "Your account changed. Please sign in again."}


# ---------------------------------------------------------------- who is asking


def current_user() -> User | None:
    """The signed-in user of this request (checked once per request), or None."""
    if "user" not in g:
        g.user = _session_user()
    return g.user


def _session_user() -> User | None:
    token = session.get("sid")
    if not isinstance(token, str) or not token:
        return None
    st = state()
    now = st.clock()
    found = st.users.session(token)
    if found is None:
        session.pop("sid", None)
        return None
    why = _ended(found, now, st.settings)
    if why:
        st.users.end_session(token)
        session.pop("sid", None)
        g.session_ended = why
        return None
    user, _version, _issued, seen = found
    if now - seen >= TOUCH_EVERY_S:
        st.users.touch_session(token, now)
    return user


def _ended(found, now: float, settings, idle: bool = True) -> str | None:
    """Why a session (as Users.session gives it) is over at `now` (a key of _ENDED), or None."""
    user, version, issued, seen = found
    if user.disabled or version != user.version:
        return "changed"
    if now - issued >= settings.lifetime_s:
        return "expired"
    if idle and now - seen >= settings.idle_s:
        return "idle"
    return None


def session_valid(token: str | None) -> bool:
    """For a long response (an event stream): is its session still alive? An open stream is
    use, so only sign-out, a disabled user, a changed password and the lifetime end it."""
    if not isinstance(token, str) or not token:
        return False
    st = state()
    found = st.users.session(token)
    return found is not None and _ended(found, st.clock(), st.settings, idle=False) is None


def wants_data() -> bool:
    """A request made by a page's script (JSON, event stream) rather than a person."""
    if request.path.endswith((".json", "/stream")):
        return True
    best = request.accept_mimetypes.best
    return best in ("application/json", "text/event-stream")


def require(*roles: str):
    """View decorator: signed in, with one of `roles` (admin passes every check; no roles:
    any signed-in user). Signed out: pages redirect to sign-in, data requests get 401.
    Wrong role: 403."""
    def decorate(view):
        @wraps(view)
        def checked(*args, **kwargs):
            user = current_user()
            if user is None:
                return _signed_out()
            if not user.can(*roles):
                return _forbidden()
            return view(*args, **kwargs)
        return checked
    return decorate


def _signed_out():
    if wants_data():
        return jsonify(error="not signed in"), 401
    why = g.get("session_ended")
    if why:
        flash(_ENDED[why], "info")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.signin", next=target))


def _forbidden():
    if wants_data():
        return jsonify(error="not allowed for your role"), 403
    return render_template("error.html", code=403,
                           message="Your role does not give access to this page."), 403


def home_for(user: User) -> str:
    return url_for("agent.page") if user.role == "agent" else url_for("status.page")


def _safe_next(target: str | None) -> str | None:
    """Only a path of this site, so sign-in is no open redirect: it starts with one "/",
    and neither it nor its percent-decoded form holds "//", a backslash or a control
    character (browsers drop a tab or a newline, so "/<TAB>/host" would become "//host";
    a newline in a Location header is an error)."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return None
    for form in (target, unquote(target)):
        if "//" in form or "\\" in form or any(unicodedata.category(c) == "Cc" for c in form):
            return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


# ---------------------------------------------------------------- pages


@bp.get("/")
def home():
    user = current_user()
    return redirect(home_for(user) if user else url_for("auth.signin"))


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    nxt = _safe_next(request.values.get("next"))
    if request.method == "GET":
        user = current_user()
        if user is not None:
            return redirect(nxt or home_for(user))
        return render_template("signin.html", next=nxt, username="")
    st = state()
    name = request.form.get("username", "").strip().lower()[:64]
    password = request.form.get("password", "")
    now = st.clock()
    known = st.users.get(name)
    who = Asker(name_key(name, known is not None), name if known else "an unknown name",
                request.remote_addr or "-",
                st.limits.device_of(request.cookies.get(DEVICE_COOKIE), known))
    wait = st.limits.wait(who, now)
    if wait:
        return _refused(nxt, name, f"Too many failed sign-ins. Try again in {_in(wait)}.",
                        wait)
    try:
        user = st.users.authenticate(name, password, priority=who.device is not None)
        if user is None:
            st.limits.failed(who, now)
        else:
            st.limits.succeeded(who)
    except Busy as busy:
        return _refused(nxt, name, "Too many sign-ins at once. Try again in a few seconds.",
                        busy.retry_after_s)
    finally:
        st.limits.done(who)              # counted: the account's next try may be checked
    if user is None:
        log.warning("sign-in failed for %s from %s", who.shown, request.remote_addr)
        return render_template("signin.html", next=nxt, username=name,
                               error="Wrong user name or password."), 401
    st.users.end_sessions_before(now - st.settings.lifetime_s, now - st.settings.idle_s)
    _start_session(user, now)
    log.info("%s signed in from %s", user.username, request.remote_addr)
    response = redirect(nxt or home_for(user))
    response.set_cookie(DEVICE_COOKIE, st.limits.device_cookie(user, who.device),
                        max_age=DEVICE_DAYS * 86400, path=url_for("auth.signin"),
                        secure=st.settings.https, httponly=True, samesite="Strict")
    return response


def _refused(nxt, name: str, message: str, wait_s: int):
    """429: the form again, saying how long to wait; the password was not looked at."""
    page = render_template("signin.html", next=nxt, username=name, error=message)
    return page, 429, {"Retry-After": str(int(wait_s))}


def _in(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' * (seconds != 1)}"
    minutes = (seconds + 59) // 60
    return f"{minutes} minute{'s' * (minutes != 1)}"


def _start_session(user: User, now: float) -> None:
    """A fresh session (a new token, never the one from before sign-in)."""
    session.clear()
    session.permanent = True
    session["sid"] = state().users.new_session(user, now)
    g.user = user


@bp.post("/signout")
def signout():
    token = session.get("sid")
    if isinstance(token, str):
        state().users.end_session(token)
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("auth.signin"))


@bp.route("/password", methods=["GET", "POST"])
@require()
def password():
    """Change one's own password: every other session of the user ends, this one goes on."""
    user = current_user()
    if request.method == "GET":
        return render_template("password.html")
    st = state()
    new, again = request.form.get("new", ""), request.form.get("again", "")
    try:
        known = st.users.authenticate(user.username, request.form.get("current", ""),
                                      priority=True)
    except Busy as busy:
        return (render_template("password.html", error="Too many sign-ins at once. Try "
                                "again in a few seconds."), 429,
                {"Retry-After": str(busy.retry_after_s)})
    if known is None:
        return render_template("password.html", error="The current password is wrong."), 400
    if new != again:
        return render_template("password.html", error="The two new passwords differ."), 400
    try:
        st.users.set_password(user.username, new)
    except UserError as err:
        return render_template("password.html", error=f"{str(err)[0].upper()}{str(err)[1:]}."), 400
    _start_session(st.users.get(user.username), st.clock())
    log.info("%s changed their password", user.username)
    flash("Password changed. Your other sessions have ended.", "info")
    return redirect(home_for(user))
