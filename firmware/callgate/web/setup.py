"""The first web admin, made with a one-time setup code instead of a default password.

Provisioning (appliance/provision.py) makes the code while the device has no
admin, prints it once on the console and keeps only its scrypt hash, in a
0600 file beside the users file. The page /setup asks for the code, a name and
a password; the first right answer makes that admin, signs them in and deletes
the file, so the code works once. Wrong codes count as failed sign-ins for the
address, with the same limits. `callgate web init` remains the terminal way.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Blueprint, redirect, render_template, request, url_for

from ..crm import hashed
from .context import state
from .users import UserError, check_password, check_username

log = logging.getLogger("callgate.web")
bp = Blueprint("setup", __name__)

FILE_NAME = "web-setup.code"
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"     # no 0/O, 1/I: read off a screen
GROUPS, GROUP = 3, 4                              # 12 symbols, 60 bits


def code_file(db: str | Path) -> Path:
    """Where the hash of the setup code lives: beside the users file ([web] db)."""
    return Path(db).with_name(FILE_NAME)


def new_code(path: Path, owner: tuple[int, int] | None = None) -> str:
    """A fresh code; its hash replaces any earlier one (0600, `owner` (uid, gid) if given).
    The code itself is returned to be shown once, and is written nowhere."""
    code = "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP))
                    for _ in range(GROUPS))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)           # provisioning runs as root in callgate's folder:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:   # never through a link left there
        f.write(hashed.make(_plain(code)) + "\n")
        if owner is not None:
            os.fchown(f.fileno(), *owner)
    os.replace(tmp, path)
    return code


def _plain(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def code_matches(path: Path, code: str) -> bool:
    try:
        stored = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    try:
        return bool(code) and hashed.check(_plain(code), stored)
    except hashed.NotAHash:
        return False


def pending(path: Path, users) -> bool:
    """A setup code waits and no admin can sign in yet."""
    return path.is_file() and not users.enabled_admins()


@bp.route("/setup", methods=["GET", "POST"])
def page():
    st = state()
    path = code_file(st.settings.db)
    if not pending(path, st.users):            # used, or never needed: the sign-in page
        return redirect(url_for("auth.signin"))
    if request.method == "GET":
        return render_template("setup.html", username="")
    now = st.clock()
    key = f"setup|{request.remote_addr or '-'}"
    window = st.settings.signin_window_s
    name = request.form.get("username", "").strip().lower()[:64]
    if len(st.users.failures(key, now - window)) >= st.settings.signin_attempts:
        return render_template("setup.html", username=name,
                               error="Too many wrong setup codes. Try again later."), 429
    if not code_matches(path, request.form.get("code", "")):
        st.users.add_failure(key, now, keep_s=max(window, 86400))
        log.warning("setup code refused from %s", request.remote_addr)
        return render_template("setup.html", username=name,
                               error="That setup code is not right."), 401
    try:
        name = check_username(name)
        password = check_password(request.form.get("password", ""))
        if password != request.form.get("again", ""):
            raise UserError("the two passwords differ")
    except UserError as err:
        return render_template("setup.html", username=name,
                               error=f"{str(err)[0].upper()}{str(err)[1:]}."), 400
    try:
        path.unlink()                     # used once: a second request finds no code
    except FileNotFoundError:
        return redirect(url_for("auth.signin"))
    user = st.users.add(name, "admin", password)
    st.users.clear_failures(key)
    from .auth import _start_session, home_for
    _start_session(user, now)
    log.info("first admin %s made with the setup code from %s", user.username,
             request.remote_addr)
    return redirect(home_for(user))
