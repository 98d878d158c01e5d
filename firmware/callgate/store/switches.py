"""The supervisor's switches per service line, set from the web app: "closed today".

The web app writes them into the call-record file (its own connection; WAL lets
the recorder keep writing); the flow reads them at the start of a call as Work,
through the recorder (RecordedSwitches), never from the audio thread. A switch
holds for one date only, so "closed today" ends by itself at midnight.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time

from .records import transaction


def closed_on(db: sqlite3.Connection, service: str) -> str | None:
    """The date (YYYY-MM-DD) the service line was switched closed, or None."""
    row = db.execute("SELECT closed_on FROM service_switches WHERE service = ?",
                     (service,)).fetchone()
    return None if row is None else row[0]


def closed_today(db: sqlite3.Connection, service: str, date: str) -> bool:
    return closed_on(db, service) == date


def set_closed(db: sqlite3.Connection, service: str, date: dt.date | None, by: str,
               at: float | None = None) -> None:
    """Switch `service` closed for `date` (None: open again as its hours say)."""
    with transaction(db):
        db.execute("INSERT INTO service_switches (service, closed_on, updated, updated_by) "
                   "VALUES (?, ?, ?, ?) ON CONFLICT(service) DO UPDATE SET "
                   "closed_on = excluded.closed_on, updated = excluded.updated, "
                   "updated_by = excluded.updated_by",
                   (service, None if date is None else date.isoformat(),
                    time.time() if at is None else at, by))


class RecordedSwitches:
    """The switches as the flow's Work reads them, through the recorder's thread."""

    def __init__(self, recorder) -> None:
        self.recorder = recorder

    def closed_today(self, service: str, date: str) -> bool:
        return self.recorder.query(lambda store, counter: closed_today(store.db, service, date),
                                   read_only=True)
