"""The supervisor's switches per service line, set from the web app: "closed today" and
the announcement played before the greeting.

The web app writes them into the call-record file (its own connection; WAL lets
the recorder keep writing) and puts an uploaded announcement, converted by the
rules of `callgate prompts convert`, in `announcements/<service>.wav` beside
that file. The flow reads them at the start of a call as Work, through the
recorder (RecordedSwitches), never from the audio thread; the announcement's
audio is read in that same Work. "Closed today" holds for one date only, so it
ends by itself at midnight; an announcement stays on until it is switched off.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import transaction

log = logging.getLogger("callgate.store")
ANNOUNCEMENTS = "announcements"          # the folder beside the call-record file


@dataclass(frozen=True)
class DaySwitches:
    """What the flow is told at the start of a call."""

    closed: bool = False                 # the supervisor's "closed today"
    announcement: Any = field(default=None, repr=False)    # int16 8 kHz samples, or None


def announcements_folder(store_path: str | Path) -> Path:
    return Path(store_path).resolve().parent / ANNOUNCEMENTS


def _row(db: sqlite3.Connection, service: str) -> tuple[str | None, bool]:
    row = db.execute("SELECT closed_on, announcement FROM service_switches WHERE service = ?",
                     (service,)).fetchone()
    return (None, False) if row is None else (row[0], bool(row[1]))


def closed_on(db: sqlite3.Connection, service: str) -> str | None:
    """The date (YYYY-MM-DD) the service line was switched closed, or None."""
    return _row(db, service)[0]


def closed_today(db: sqlite3.Connection, service: str, date: str) -> bool:
    return closed_on(db, service) == date


def announcement_on(db: sqlite3.Connection, service: str) -> bool:
    return _row(db, service)[1]


def _upsert(db: sqlite3.Connection, service: str, column: str, value, by: str,
            at: float | None) -> None:
    with transaction(db):
        db.execute(f"INSERT INTO service_switches (service, {column}, updated, updated_by) "
                   f"VALUES (?, ?, ?, ?) ON CONFLICT(service) DO UPDATE SET "
                   f"{column} = excluded.{column}, updated = excluded.updated, "
                   f"updated_by = excluded.updated_by",
                   (service, value, time.time() if at is None else at, by))


def set_closed(db: sqlite3.Connection, service: str, date: dt.date | None, by: str,
               at: float | None = None) -> None:
    """Switch `service` closed for `date` (None: open again as its hours say)."""
    _upsert(db, service, "closed_on", None if date is None else date.isoformat(), by, at)


def set_announcement(db: sqlite3.Connection, service: str, on: bool, by: str,
                     at: float | None = None) -> None:
    _upsert(db, service, "announcement", 1 if on else 0, by, at)


class RecordedSwitches:
    """The switches as the flow's Work reads them: the row through the recorder's thread,
    then the announcement's audio from its file (in the same worker thread)."""

    def __init__(self, recorder, folder: Path | None = None) -> None:
        self.recorder = recorder
        self.folder = folder if folder is not None else announcements_folder(recorder.path)

    def closed_today(self, service: str, date: str) -> bool:
        return self.today(service, date).closed

    def today(self, service: str, date: str) -> DaySwitches:
        closed, on = self.recorder.query(
            lambda store, counter: (closed_today(store.db, service, date),
                                    announcement_on(store.db, service)), read_only=True)
        audio = self._audio(service) if on else None
        return DaySwitches(closed, audio)

    def _audio(self, service: str):
        from ..wav import WavError, read_wav

        path = self.folder / f"{service}.wav"
        try:
            audio = read_wav(path)
        except (WavError, OSError) as err:
            log.error("announcement of %s: %s: not played", service, err)
            return None
        return audio if len(audio) else None


def install_announcement(store_path: str | Path, service: str, recording: str | Path) -> str:
    """Convert `recording` (any WAV) by the rules of `callgate prompts convert` into the
    announcement of `service`; returns the warnings (one line, "" if none). Raises
    WavError / PromptError (one line) for a recording that cannot be used."""
    from ..prompts_tool import convert, write_prompt
    from ..wav import read_source

    samples, rate = read_source(recording)
    result = convert(samples, rate)
    folder = announcements_folder(store_path)
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    write_prompt(folder / f"{service}.wav", result.audio)
    return "; ".join(result.warnings)
