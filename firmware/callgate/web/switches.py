"""The supervisor's switches per service line: "closed today" and the announcement.

A supervisor (or an admin) switches a service line closed for the rest of its
day (a storm, an office outing): its calls then go the after-hours way of its
[service.hours] until midnight in that service line's time zone
([service.hours] timezone), when the switch ends by itself. It can be switched
open again at once. What is written into the call-record file
(store/switches.py) is the moment it was switched; the engine reads it at the
start of each call (as Work, through its recorder) and compares dates in the
service line's zone, which the web app does not know: the page shows when the
line was switched, not whether that day is over there. A service line without
[service.hours] has no after-hours way, so the switch does nothing there; the
page says so as a hint only, since the web app does not read the line's config.

The announcement (a holiday, an outage) is played before the greeting of every
call of the service line while it is on. A supervisor uploads a recording (any
WAV, up to MAX_UPLOAD_BYTES, at most MAX_ANNOUNCEMENT_S seconds once trimmed); it
is converted on the spot by the rules of `callgate prompts convert` (8 kHz,
telephone band, -19 dBm0, trimmed) into `announcements/<service>.wav` beside the
call records, and switched on: the file is written beside its name first and put in
place inside the transaction that switches it on, so a switch that cannot be
written leaves the old file, and the recorder never waits on the write. The
conversion's warnings (clipping, a low level) are shown; a recording that cannot
be used is refused with one line and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import tempfile

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ..config import is_name
from ..report import ReportError
from ..report.figures import services
from ..store.records import transaction
from ..store.switches import (MAX_ANNOUNCEMENT_S, all_switches, announcements_folder,
                              prepare_announcement, set_announcement, set_closed,
                              stage_announcement)
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


def _switched(at: float | None) -> str | None:
    """When "closed today" was switched, for the page (UTC: the line's zone is not known
    here); None when it is not switched or was switched over a day ago (over by now in
    every zone)."""
    if at is None or state().clock() - at > 86400 + 3600:
        return None
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


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
        switched = all_switches(db)
    finally:
        db.close()
    lines = [{"service": n, "closed": _switched(switched.get(n, (None, False))[0]),
              "announcement": switched.get(n, (None, False))[1]}
             for n in sorted(names | set(switched))]
    return render_template("switches.html", lines=lines, ready=True,
                           limit_s=MAX_ANNOUNCEMENT_S)


def _back():
    return redirect(url_for("switches.page"))


def _form_service() -> str | None:
    """The service line the form names; None (and a message) when it is not a name."""
    name = request.form.get("service", "").strip()
    if not is_name(name):
        flash("Not changed: a service line is named with letters A-Z, digits, - and _.",
              "error")
        return None
    return name


def _open_store() -> sqlite3.Connection | None:
    db = _connect()
    if db is None:
        flash("Not changed: the call records are not ready (has the engine run?).", "error")
    return db


def _write(service: str, write, failed: str) -> bool:
    """Run `write(db)` on the call records; False (logged as `failed`, a message shown)
    when the store is not ready or the write fails."""
    db = _open_store()
    if db is None:
        return False
    try:
        write(db)
        return True
    except sqlite3.Error as err:
        log.error(failed, service, _one_line(err))
        flash("Not changed: the call records could not be written (see the log).", "error")
        return False
    finally:
        db.close()


@bp.post("/closed-today")
@require("supervisor")
def closed_today():
    return _switch(True)


@bp.post("/open")
@require("supervisor")
def open_again():
    return _switch(False)


def _switch(closed: bool):
    service = _form_service()
    if service is None or not _write(
            service, lambda db: set_closed(db, service, closed, current_user().username,
                                           state().clock()),
            "%s not switched: %s"):
        return _back()
    what = "closed for today" if closed else "open as its hours say"
    log.info("%s switched %s %s", current_user().username, service, what)
    flash(f"{service} is {what}.", "info")
    return _back()


@bp.post("/announcement")
@require("supervisor")
def announcement():
    """Upload a recording: converted, stored as the service line's announcement, on."""
    from ..prompts_tool import PromptError
    from ..wav import WavError

    service = _form_service()
    if service is None:
        return _back()
    upload = request.files.get("recording")
    if upload is None or not upload.filename:
        flash("Not changed: choose a WAV recording to upload.", "error")
        return _back()
    db = _open_store()
    if db is None:
        return _back()
    store = state().settings.store
    fd, tmp = tempfile.mkstemp(prefix="callgate-upload-", suffix=".wav")
    staged = None
    try:
        with os.fdopen(fd, "wb") as f:
            upload.save(f)
        audio, warnings = prepare_announcement(tmp)
        staged = stage_announcement(store, service, audio)
        with transaction(db):            # in place only if the switch is on
            set_announcement(db, service, True, current_user().username, state().clock())
            os.replace(staged, announcements_folder(store) / f"{service}.wav")
    except WavError:
        flash("Not changed: the recording cannot be used (not a WAV file that can be read: "
              "PCM or float, mono or stereo).", "error")
        return _back()
    except PromptError as err:
        flash(f"Not changed: the recording cannot be used ({str(err).splitlines()[0]}).",
              "error")
        return _back()
    except (OSError, sqlite3.Error) as err:
        log.error("announcement of %s not stored: %s", service, _one_line(err))
        flash("Not changed: the announcement could not be stored (see the log).", "error")
        return _back()
    finally:
        db.close()
        os.unlink(tmp)
        if staged is not None:
            staged.unlink(missing_ok=True)
    log.info("%s set the announcement of %s", current_user().username, service)
    flash(f"The announcement of {service} is on." + (f" Warning: {warnings}." if warnings
                                                       else ""), "info")
    return _back()


@bp.post("/announcement/off")
@require("supervisor")
def announcement_off():
    service = _form_service()
    if service is None or not _write(
            service, lambda db: set_announcement(db, service, False, current_user().username,
                                                 state().clock()),
            "announcement of %s not switched off: %s"):
        return _back()
    log.info("%s switched off the announcement of %s", current_user().username, service)
    flash(f"The announcement of {service} is off.", "info")
    return _back()


def _one_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:200]
