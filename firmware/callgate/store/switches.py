"""The supervisor's switches per service line, set from the web app: "closed today" and
the announcement played before the greeting.

The web app writes them into the call-record file (its own connection; WAL lets
the recorder keep writing) and puts an uploaded announcement, converted by the
rules of `callgate prompts convert` and at most MAX_ANNOUNCEMENT_S long, in
`announcements/<service>.wav` beside that file. The flow reads them at the start
of a call as Work, through the recorder (RecordedSwitches), never from the audio
thread: first the row (is the line closed, is an announcement on), then, as Work
of its own with its own time limit, the announcement's audio, kept decoded in
memory while its file is unchanged. "Closed today" is stored as the moment it was
switched; the flow closes the line while that moment and the call fall on the
same date in the service line's time zone ([service.hours] timezone), so the switch
ends by itself at that zone's midnight. An announcement stays on until it is
switched off.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .records import transaction

log = logging.getLogger("callgate.store")
ANNOUNCEMENTS = "announcements"          # the folder beside the call-record file


MAX_ANNOUNCEMENT_S = 60                  # longer is refused: every caller hears it whole
QUERY_TIMEOUT_S = 1.0                    # the flow waits no longer (flow.machine.SWITCHES_WAIT_MS)


@dataclass(frozen=True)
class DaySwitches:
    """What the flow is told at the start of a call."""

    closed_at: float | None = None       # unix seconds "closed today" was switched, or None
    announcement: bool = False           # an announcement is switched on


def announcements_folder(store_path: str | Path) -> Path:
    return Path(store_path).resolve().parent / ANNOUNCEMENTS


def _row(db: sqlite3.Connection, service: str) -> tuple[float | None, bool]:
    row = db.execute("SELECT closed_at, announcement FROM service_switches WHERE service = ?",
                     (service,)).fetchone()
    return (None, False) if row is None else (row[0], bool(row[1]))


def all_switches(db: sqlite3.Connection) -> dict[str, tuple[float | None, bool]]:
    """Every service line's (closed_at, announcement on), in one read."""
    return {r[0]: (r[1], bool(r[2])) for r in db.execute(
        "SELECT service, closed_at, announcement FROM service_switches")}


def closed_at(db: sqlite3.Connection, service: str) -> float | None:
    """When the service line was switched closed (unix seconds), or None."""
    return _row(db, service)[0]


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


def set_closed(db: sqlite3.Connection, service: str, closed: bool, by: str,
               at: float | None = None) -> None:
    """Switch `service` closed for the rest of its day, as of `at` (False: open again as
    its hours say)."""
    when = time.time() if at is None else at
    _upsert(db, service, "closed_at", when if closed else None, by, when)


def set_announcement(db: sqlite3.Connection, service: str, on: bool, by: str,
                     at: float | None = None) -> None:
    _upsert(db, service, "announcement", 1 if on else 0, by, at)


class RecordedSwitches:
    """The switches as the flow's Work reads them: the row through the recorder's thread
    (`today`), then the announcement's audio from its file (`announcement`), decoded
    once and kept while the file's size and modification time stay the same."""

    def __init__(self, recorder, folder: Path | None = None,
                 timeout_s: float = QUERY_TIMEOUT_S) -> None:
        self.recorder = recorder
        self.folder = folder if folder is not None else announcements_folder(recorder.path)
        self.timeout_s = timeout_s
        self._kept: dict[str, tuple[tuple[int, int], Any]] = {}

    def today(self, service: str) -> DaySwitches:
        at, on = self.recorder.query(lambda store, counter: _row(store.db, service),
                                     timeout_s=self.timeout_s, read_only=True)
        return DaySwitches(at, on)

    def announcement(self, service: str):
        """int16 8 kHz samples of the announcement, or None (logged) if it cannot be used."""
        from ..wav import WavError, read_wav

        path = self.folder / f"{service}.wav"
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            kept = self._kept.get(service)
            if kept is not None and kept[0] == stamp:
                return kept[1]
            audio = read_wav(path)
        except (WavError, OSError) as err:
            log.error("announcement of %s: %s: not played", service, err)
            return None
        if len(audio) > MAX_ANNOUNCEMENT_S * 8000:
            log.error("announcement of %s: longer than %d s: not played", service,
                      MAX_ANNOUNCEMENT_S)
            audio = audio[:0]
        audio = audio if len(audio) else None
        self._kept[service] = (stamp, audio)
        return audio


def prepare_announcement(recording: str | Path):
    """Convert `recording` (any WAV) by the rules of `callgate prompts convert`; returns
    (audio, warnings: one line, "" if none). Raises WavError / PromptError (one line) for
    a recording that cannot be used, one longer than MAX_ANNOUNCEMENT_S among them."""
    from ..prompts_tool import PromptError, convert
    from ..wav import read_source

    samples, rate = read_source(recording)
    result = convert(samples, rate)
    seconds = len(result.audio) / 8000
    if seconds > MAX_ANNOUNCEMENT_S:
        raise PromptError(f"{seconds:.0f} s long, the limit is {MAX_ANNOUNCEMENT_S} s "
                          "(every caller hears it whole)")
    return result.audio, "; ".join(result.warnings)


def install_announcement(store_path: str | Path, service: str, recording: str | Path) -> str:
    """Convert `recording` into the announcement of `service` (prepare_announcement) and
    write it in place; returns the warnings. For tools and scenarios: the web app writes
    the file only once the switch is on (web/switches.py)."""
    audio, warnings = prepare_announcement(recording)
    write_announcement(store_path, service, audio)
    return warnings


def write_announcement(store_path: str | Path, service: str, audio) -> None:
    os.replace(stage_announcement(store_path, service, audio),
               announcements_folder(store_path) / f"{service}.wav")


def stage_announcement(store_path: str | Path, service: str, audio) -> Path:
    """Write the converted audio beside the announcement's own name, for an os.replace:
    the slow part (the file) is done before any transaction is opened."""
    from ..prompts_tool import write_prompt

    folder = announcements_folder(store_path)
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    staged = folder / f".{service}.wav.part"
    write_prompt(staged, audio)
    return staged
