"""The device's state in one plain dict: what MQTT's `.../state` and the web app's /metrics
both say about the appliance.

Every fact is read from where it already lives, never from the audio path:
the call-record file (store/records.py: `line_status`, and the health tables
the recorder writes on its own thread, store/health.py; `outbox`), and the
board's own reports (board.py). So any process may take a snapshot (the web
app, the telemetry thread of `callgate run`) while the engine runs, and a
snapshot costs the engine nothing. A store not yet made reads as no lines,
no back end and an empty outbox.

The shape (schema 1; keys are only ever added). Times are unix seconds;
None means "not known" (not reported by the board, or not happened yet):

    {
      "schema": 1,
      "version": "0.1.0",              # the firmware
      "at": 1733280000.0,              # when this snapshot was taken
      "uptime_s": 86400.0,             # since the board booted
      "lines": [{
          "line": "line",
          "state": "idle",             # idle | ringing | in_flow | transferring | down
          "step": None,                # the flow's step in_flow, the reason when down
          "since": 1733270000.0,       # the state began
          "up": True,                  # not down, and the line interface works
          "interface": "modem",        # sim | replay | modem | hat
          "modem_present": True,       # the line interface (modem, HAT) works
          "fault": None,               # the standing line fault, one line
          "calls": 12,                 # since the engine started on the line
          "callerid": {"rang": 10, "received": 9, "window": 10},   # last `window` calls
          "audio_faults": 0,           # playback underruns since the engine started
          "overruns": 0,               # capture overruns (audio lost) since then
          "engine_faults": 0,          # engine faults survived since then
          "running_since": 1733200000.0,
          "updated": 1733279990.0}],   # the engine's last health report on the line:
                                       #   at least every 60 s while it runs
      "backend": {                     # None until a request was made
          "name": "rest",              # the [crm] kind (directory, rest, a preset)
          "requests": 40, "errors": 2,
          "errors_by_kind": {"timeout": 2},    # crm/failure.py KINDS
          "last_success": 1733279000.0, "last_error": 1733278000.0,
          "last_error_kind": "timeout",
          "breaker": "closed",         # closed | open | half-open; None: no breaker
          "breaker_until": None,       # an open breaker lets a trial through from then
          "updated": 1733279000.0},
      "outbox": {"pending": 0, "dead": 0, "oldest_pending_s": None},
      "storage": {"path": "/var/lib/callgate", "free_bytes": 1, "total_bytes": 2},
      "board": {"cpu_temp_c": 48.3, "throttled": {"raw": 0, "under_voltage": False, ...}}
    }

Nothing in it is a keyed digit, an identifier or a calling number: lines,
counts, kinds and times only.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from .. import __version__
from ..store.health import read_backend_health, read_line_health, rows_of
from .board import Board, disk_space

log = logging.getLogger("callgate.telemetry")

SCHEMA = 1


def device_state(store: str | Path, *, data_dir: str | Path | None = None,
                 board: Board | None = None, now: float | None = None) -> dict:
    """The snapshot, reading the call-record file at `store` read-only. `data_dir` is the
    data partition whose free space counts (default: the store's folder)."""
    store = Path(store)
    db = open_read_only(store)
    try:
        return state_from(db, data_dir=data_dir or store.parent, board=board, now=now)
    finally:
        if db is not None:
            db.close()


def state_from(db: sqlite3.Connection | None, *, data_dir: str | Path,
               board: Board | None = None, now: float | None = None) -> dict:
    """The snapshot from an open connection to the store (None: no store yet)."""
    now = time.time() if now is None else float(now)
    board = board or Board()
    try:
        lines = _lines(db)
        backend = _backend(db, now)
        outbox = _outbox(db, now)
    except sqlite3.Error as err:
        log.error("device state: the call records could not be read (%s)",
                  str(err).splitlines()[0] if str(err) else type(err).__name__)
        lines, backend, outbox = [], None, {"pending": None, "dead": None,
                                            "oldest_pending_s": None}
    return {
        "schema": SCHEMA,
        "version": __version__,
        "at": now,
        "uptime_s": board.uptime_s(),
        "lines": lines,
        "backend": backend,
        "outbox": outbox,
        "storage": disk_space(data_dir),
        "board": {"cpu_temp_c": board.cpu_temp_c(), "throttled": board.throttled()},
    }


def open_read_only(path: Path) -> sqlite3.Connection | None:
    """A read-only connection that never writes nor holds the engine up (None: no file)."""
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=2.0,
                             isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA query_only = 1")
    except sqlite3.Error as err:
        log.error("device state: %s unreadable (%s)", path, type(err).__name__)
        return None
    return db


def _lines(db: sqlite3.Connection | None) -> list[dict]:
    status = {r["line"]: r for r in rows_of(
        db, "SELECT line, state, step, since FROM line_status ORDER BY line")}
    health = read_line_health(db) if db is not None else {}
    out = []
    for name in sorted(set(status) | set(health)):
        s, h = status.get(name, {}), health.get(name)
        state = s.get("state")
        present = h["present"] if h else None
        out.append({
            "line": name,
            "state": state,
            "step": s.get("step"),
            "since": s.get("since"),
            "up": state is not None and state != "down" and present is not False,
            "interface": h["interface"] if h else None,
            "modem_present": present,
            "fault": h["fault"] if h else None,
            "calls": h["calls"] if h else None,
            "callerid": ({"rang": h["rang"], "received": h["callerid"], "window": h["window"]}
                         if h else None),
            "audio_faults": h["audio_faults"] if h else None,
            "overruns": h["overruns"] if h else None,
            "engine_faults": h["engine_faults"] if h else None,
            "running_since": h["started"] if h else None,
            "updated": h["updated"] if h else None,
        })
    return out


def _backend(db: sqlite3.Connection | None, now: float) -> dict | None:
    """The back end this device used last (a config that changed kind leaves the old row)."""
    rows = read_backend_health(db) if db is not None else []
    if not rows:
        return None
    r = max(rows, key=lambda row: row["updated"])
    breaker, until = r["breaker"], r["breaker_until"]
    if breaker == "open" and until is not None and until <= now:
        breaker, until = "half-open", None          # the cool-down has passed since
    return {"name": r["backend"], "requests": r["requests"], "errors": r["errors"],
            "errors_by_kind": r["errors_by_kind"], "last_success": r["last_success"],
            "last_error": r["last_error"], "last_error_kind": r["last_error_kind"],
            "breaker": breaker, "breaker_until": until, "updated": r["updated"]}


def _outbox(db: sqlite3.Connection | None, now: float) -> dict:
    # delivered rows stay until `callgate outbox purge` (one per call written back): only
    # the two states counted are read, through the (state, next_at) index
    rows = rows_of(db, "SELECT state, COUNT(*) AS n, MIN(created) AS oldest FROM outbox "
                     "WHERE state IN ('pending', 'dead') GROUP BY state")
    by = {r["state"]: r for r in rows}
    oldest = by.get("pending", {}).get("oldest")
    return {"pending": by.get("pending", {}).get("n", 0), "dead": by.get("dead", {}).get("n", 0),
            "oldest_pending_s": None if oldest is None else round(max(0.0, now - oldest), 1)}
