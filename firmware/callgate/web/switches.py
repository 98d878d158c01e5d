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
call records, and switched on: the file is written inside the transaction that
switches it on, so a switch that cannot be written leaves the old file. The
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
from ..store.switches import (MAX_ANNOUNCEMENT_S, announcement_on, closed_at,
                              prepare_announcement, set_announcement, set_closed,
                              write_announcement)
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
        names |= {r[0] for r in db.execute("SELECT service FROM service_switches")}
        lines = [{"service": n, "closed": _switched(closed_at(db, n)),
                  "announcement": announcement_on(db, n)} for n in sorted(names)]
    finally:
        db.close()
    return render_template("switches.html", lines=lines, ready=True,
                           limit_s=MAX_ANNOUNCEMENT_S)


def _valid(name: str) -> str:
    if not is_name(name):
        raise ValueError("a service line is named with letters A-Z, digits, - and _")
    return name


@bp.post("/closed-today")
@require("supervisor")
def closed_today():
    return _switch(True)


@bp.post("/open")
@require("supervisor")
def open_again():
    return _switch(False)


def _switch(closed: bool):
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
        set_closed(db, service, closed, current_user().username, state().clock())
    except sqlite3.Error as err:
        log.error("%s not switched: %s", service, _one_line(err))
        flash("Not changed: the call records could not be written (see the log).", "error")
        return redirect(url_for("switches.page"))
    finally:
        db.close()
    what = "closed for today" if closed else "open as its hours say"
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
        audio, warnings = prepare_announcement(tmp)
        with transaction(db):            # the file is written only if the switch is on
            set_announcement(db, service, True, current_user().username, state().clock())
            write_announcement(state().settings.store, service, audio)
    except WavError:
        flash("Not changed: the recording cannot be used (not a WAV file that can be read: "
              "PCM or float, mono or stereo).", "error")
        return redirect(url_for("switches.page"))
    except PromptError as err:
        flash(f"Not changed: the recording cannot be used ({str(err).splitlines()[0]}).",
              "error")
        return redirect(url_for("switches.page"))
    except (OSError, sqlite3.Error) as err:
        log.error("announcement of %s not stored: %s", service, _one_line(err))
        flash("Not changed: the announcement could not be stored (see the log).", "error")
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
    except sqlite3.Error as err:
        log.error("announcement of %s not switched off: %s", service, _one_line(err))
        flash("Not changed: the call records could not be written (see the log).", "error")
        return redirect(url_for("switches.page"))
    finally:
        db.close()
    log.info("%s switched off the announcement of %s", current_user().username, service)
    flash(f"The announcement of {service} is off.", "info")
    return redirect(url_for("switches.page"))


def _one_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:200]
