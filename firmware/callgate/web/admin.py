"""Users, for admins: list, add, disable or enable, set extensions, reset a password.

Every change is a POST form with its CSRF token; a reset password or a disabled
user ends that user's sessions at once (users.py). The last enabled admin can be
neither disabled nor removed, so the device can always be managed from here.
"""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for

from .auth import current_user, require
from .context import state
from .users import ROLES, UserError, check_username

log = logging.getLogger("callgate.web")
bp = Blueprint("users", __name__, url_prefix="/users")


@bp.get("/")
@require("admin")
def page():
    return render_template("users.html", users=state().users.all(), roles=ROLES,
                           me=current_user())


def _done(message: str):
    flash(message, "info")
    return redirect(url_for("users.page"))


@bp.errorhandler(UserError)
def _failed(err: UserError):
    """Any change refused (a bad name, the last admin, ...): back to the list, saying why."""
    text = str(err)
    flash(text[:1].upper() + text[1:] + ".", "error")
    return redirect(url_for("users.page"))


def _passwords() -> str:
    new, again = request.form.get("password", ""), request.form.get("again", "")
    if new != again:
        raise UserError("the two passwords differ")
    return new


@bp.post("/add")
@require("admin")
def add():
    f = request.form
    user = state().users.add(f.get("username", ""), f.get("role", ""), _passwords(),
                             f.get("extensions", ""))
    log.info("%s added user %s (%s)", current_user().username, user.username, user.role)
    return _done(f"Added {user.username} ({user.role}).")


@bp.post("/<name>/disable")
@require("admin")
def disable(name: str):
    name = check_username(name)        # the one spelling the users file keeps
    if name == current_user().username:
        raise UserError("you cannot disable yourself")
    state().users.set_disabled(name, True)
    log.info("%s disabled user %s", current_user().username, name)
    return _done(f"Disabled {name}; their sessions have ended.")


@bp.post("/<name>/enable")
@require("admin")
def enable(name: str):
    name = check_username(name)        # the one spelling the users file keeps
    state().users.set_disabled(name, False)
    log.info("%s enabled user %s", current_user().username, name)
    return _done(f"Enabled {name}.")


@bp.post("/<name>/extensions")
@require("admin")
def extensions(name: str):
    name = check_username(name)        # the one spelling the users file keeps
    exts = state().users.set_extensions(name, request.form.get("extensions", ""))
    log.info("%s set the extensions of %s", current_user().username, name)
    return _done(f"Extensions of {name}: {', '.join(exts) or 'none'}.")


@bp.post("/<name>/password")
@require("admin")
def password(name: str):
    name = check_username(name)        # the one spelling the users file keeps
    state().users.set_password(name, _passwords())
    log.info("%s reset the password of %s", current_user().username, name)
    if name == current_user().username:
        return redirect(url_for("auth.signin"))
    return _done(f"New password set for {name}; their sessions have ended.")
