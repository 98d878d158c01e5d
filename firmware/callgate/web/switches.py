"""The supervisor's switches per service line: "closed today" and the announcement.

A supervisor (or an admin) switches a service line closed for the rest of the
device's local day (a storm, an office outing): its calls then go the
after-hours way of its [service.hours] until midnight, when the switch ends by
itself. It can be switched open again at once. The switch is written into the
call-record file (store/switches.py), where the engine reads it at the start of
each call (as Work, through its recorder). A service line without
[service.hours] has no after-hours way, so the switch does nothing there; the
page says so as a hint only, since the web app does not read the line's config.

The announcement (a holiday, an outage) is played before the greeting of every
call of the service line while it is on. A supervisor uploads a recording (any
WAV, up to MAX_UPLOAD_BYTES); it is converted on the spot by the rules of
`callgate prompts convert` (8 kHz, telephone band, -19 dBm0, trimmed) into
`announcements/<service>.wav` beside the call records, and switched on. The
conversion's warnings (clipping, a low level) are shown; a recording that
cannot be used is refused with one line and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import tempfile

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ..report import ReportError
from ..report.figures import services
from ..store.switches import (announcement_on, closed_on, install_announcement,
                              set_announcement, set_closed)
from .auth import current_user, require
from .context import state

log = logging.getLogger("callgate.web")
bp = Blueprint("switches", __name__, url_prefix="/switches")
UPLOAD_PATH = "/switches/announcement"
MAX_UPLOAD_BYTES = 8 * 1024 * 1024      # a minute of 44.1 kHz stereo 16-bit is ~10 MB: plenty


def _connect() -> sqlite3.Connection | None:
    path = state().settings.store
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5.0,
                             isolation_level=None)
        have = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'service_switches'")
        if have.fetchone() is None:
            db.close()
            return None
        return db
    except sqlite3.Error:
        return None


def _today() -> dt.date:
    return dt.datetime.fromtimestamp(state().clock()).astimezone().date()


@bp.get("/")
@require("supervisor")
def page():
    db = _connect()
    if db is None:
        return render_template("switches.html", lines=[], ready=False)
    try:
        names = set(services(state().settings.store))
    except ReportError:
        names = set()
    try:
        names |= {r[0] for r in db.execute("SELECT service FROM service_switches")}
        today = _today().isoformat()
        lines = [{"service": n, "closed": closed_on(db, n) == today,
                  "announcement": announcement_on(db, n)} for n in sorted(names)]
    finally:
        db.close()
    return render_template("switches.html", lines=lines, ready=True)


def _valid(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError("a service line is named with letters, digits, - and _")
    return name


@bp.post("/closed-today")
@require("supervisor")
def closed_today():
    return _switch(_today())


@bp.post("/open")
@require("supervisor")
def open_again():
    return _switch(None)


def _switch(date: dt.date | None):
    try:
        service = _valid(request.form.get("service", "").strip())
    except ValueError as err:
        flash(f"Not changed: {err}.", "error")
        return redirect(url_for("switches.page"))
    db = _connect()
    if db is None:
        flash("Not changed: the call records are not ready (has the engine run?).", "error")
        return redirect(url_for("switches.page"))
    try:
        set_closed(db, service, date, current_user().username, state().clock())
    except sqlite3.Error as err:
        flash(f"Not changed: the call records could not be written ({err}).", "error")
        return redirect(url_for("switches.page"))
    finally:
        db.close()
    what = "closed for today" if date is not None else "open as its hours say"
    log.info("%s switched %s %s", current_user().username, service, what)
    flash(f"{service} is {what}.", "info")
    return redirect(url_for("switches.page"))


@bp.post("/announcement")
@require("supervisor")
def announcement():
    """Upload a recording: converted, stored as the service line's announcement, on."""
    from ..prompts_tool import PromptError
    from ..wav import WavError

    try:
        service = _valid(request.form.get("service", "").strip())
    except ValueError as err:
        flash(f"Not changed: {err}.", "error")
        return redirect(url_for("switches.page"))
    upload = request.files.get("recording")
    if upload is None or not upload.filename:
        flash("Not changed: choose a WAV recording to upload.", "error")
        return redirect(url_for("switches.page"))
    db = _connect()
    if db is None:
        flash("Not changed: the call records are not ready (has the engine run?).", "error")
        return redirect(url_for("switches.page"))
    fd, tmp = tempfile.mkstemp(prefix="callgate-upload-", suffix=".wav")
    try:
        with os.fdopen(fd, "wb") as f:
            upload.save(f)
        warnings = install_announcement(state().settings.store, service, tmp)
        set_announcement(db, service, True, current_user().username, state().clock())
    except (WavError, PromptError) as err:
        flash(f"Not changed: the recording cannot be used ({str(err).splitlines()[0]}).",
              "error")
        return redirect(url_for("switches.page"))
    except (OSError, sqlite3.Error) as err:
        flash(f"Not changed: the announcement could not be stored ({err}).", "error")
        return redirect(url_for("switches.page"))
    finally:
        db.close()
        os.unlink(tmp)
    log.info("%s set the announcement of %s", current_user().username, service)
    flash(f"The announcement of {service} is on." + (f" Warning: {warnings}." if warnings
                                                       else ""), "info")
    return redirect(url_for("switches.page"))


@bp.post("/announcement/off")
@require("supervisor")
def announcement_off():
    try:
        service = _valid(request.form.get("service", "").strip())
    except ValueError as err:
        flash(f"Not changed: {err}.", "error")
        return redirect(url_for("switches.page"))
    db = _connect()
    if db is None:
        flash("Not changed: the call records are not ready (has the engine run?).", "error")
        return redirect(url_for("switches.page"))
    try:
        set_announcement(db, service, False, current_user().username, state().clock())
    finally:
        db.close()
    log.info("%s switched off the announcement of %s", current_user().username, service)
    flash(f"The announcement of {service} is off.", "info")
    return redirect(url_for("switches.page"))
