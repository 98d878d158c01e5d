"""The device's health in the call-record file: written by the recorder, read by anyone.

What a fleet needs to know lives in the engine's process (the line's counters,
the connector's circuit breaker), but the web app's /metrics and the MQTT
state are read from elsewhere and must never reach into the audio path. So
the recorder writes it here on its own thread, with the call records: a
`call.LineHealth` step per line (at start, at each fault and after each
call) and, for every back-end request the flow waited on, the request's time
into a histogram, its failure kind and the breaker's state as the recorder
found it, and each call as it ends into the totals by outcome (tables of
schemas v6 and v7, store/records.py).

The reads take a plain read-only connection (the web app's, telemetry's) and
give plain dicts; a table the store has not got yet (a store older than v6 or v7,
or none at all) reads as empty.
"""

from __future__ import annotations

import logging
import math
import sqlite3

from ..call import LineHealth

log = logging.getLogger("callgate.store")

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
"""Upper bounds of the back-end request histogram, seconds: a caller waits on each
request, so the interesting range is tens of milliseconds to the few-second budget."""

_LINE_COLUMNS = ("line", "interface", "present", "fault", "calls", "rang", "callerid",
                 "window", "audio_faults", "overruns", "engine_faults", "started", "updated")


def bucket_label(seconds: float) -> str:
    """The histogram bucket (its `le`, as Prometheus writes it) that `seconds` falls in."""
    for bound in LATENCY_BUCKETS_S:
        if seconds <= bound:
            return _le(bound)
    return "+Inf"


def _le(bound: float) -> str:
    return repr(float(bound))


# ---------------------------------------------------------------- writing (the recorder)


def guarded(db: sqlite3.Connection, write, *args) -> bool:
    """`write(db, *args)` in its own savepoint, inside a call record's step: health that
    cannot be written costs its row and a log line, never the call record it rides with."""
    db.execute("SAVEPOINT health")
    try:
        write(db, *args)
    except Exception as err:            # noqa: BLE001 - health is never worth a record
        if not db.in_transaction:
            raise                        # the error ended the transaction: the step's own
        db.execute("ROLLBACK TO health")
        db.execute("RELEASE health")
        log.error("device health not written (%s: %s)", getattr(write, "__name__", "write"),
                  type(err).__name__)
        return False
    db.execute("RELEASE health")
    return True


class BackendProbe:
    """What the recorder knows of the back end: its name and, if it has one, its circuit
    breaker (crm/breaker.py), read on the recorder's thread as each request is recorded."""

    def __init__(self, name: str = "crm", breaker=None) -> None:
        self.name = name
        self.breaker = breaker

    @classmethod
    def of(cls, crm) -> "BackendProbe":
        """The probe of a connector: its `name` (RestConnector's kind or preset), else its
        class's ("directory"), and its `breaker`."""
        name = getattr(crm, "name", None)
        if not isinstance(name, str) or not name:
            name = type(crm).__name__.lower() if crm is not None else "crm"
        return cls(name, getattr(crm, "breaker", None))

    def breaker_now(self, wall: float) -> tuple[str | None, float | None]:
        """(state, unix time an open circuit lets a trial through) or (None, None)."""
        status = getattr(self.breaker, "status", None)
        if status is None:
            return None, None
        try:
            state, left = status()
        except Exception:               # noqa: BLE001 - health is never worth a record
            return None, None
        return state, (None if left is None else wall + left)


def write_line_health(db: sqlite3.Connection, step: LineHealth) -> None:
    """One line's health, replacing what was there (inside the recorder's group)."""
    db.execute(f"INSERT OR REPLACE INTO line_health ({', '.join(_LINE_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(_LINE_COLUMNS))})",
               (step.line, step.interface, 1 if step.present else 0,
                step.fault and str(step.fault).splitlines()[0][:120], int(step.calls),
                int(step.rang), int(step.callerid), int(step.window), int(step.audio_faults),
                int(step.overruns), int(step.engine_faults), float(step.started),
                float(step.at)))


def write_backend_request(db: sqlite3.Connection, backend: str, at: float, ms: float,
                          kind: str | None, breaker: str | None = None,
                          breaker_until: float | None = None) -> None:
    """One back-end request the flow waited `ms` for; `kind` its failure kind (None: it
    answered). `breaker` is the connector's circuit as it stands now (None: it has none)."""
    seconds = max(0.0, float(ms) / 1000.0)
    if not math.isfinite(seconds):
        seconds = 0.0
    failed = kind is not None
    db.execute(
        "INSERT INTO backend_health (backend, requests, errors, last_success, last_error, "
        "last_error_kind, breaker, breaker_until, seconds_total, updated) "
        "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(backend) DO UPDATE SET "
        "requests = requests + 1, errors = errors + excluded.errors, "
        "last_success = COALESCE(excluded.last_success, last_success), "
        "last_error = COALESCE(excluded.last_error, last_error), "
        "last_error_kind = COALESCE(excluded.last_error_kind, last_error_kind), "
        "breaker = excluded.breaker, breaker_until = excluded.breaker_until, "
        "seconds_total = seconds_total + excluded.seconds_total, updated = excluded.updated",
        (backend, int(failed), None if failed else at, at if failed else None, kind,
         breaker, breaker_until, seconds, at))
    db.execute("INSERT INTO backend_latency (backend, le, count) VALUES (?, ?, 1) "
               "ON CONFLICT(backend, le) DO UPDATE SET count = count + 1",
               (backend, bucket_label(seconds)))
    if failed:
        db.execute("INSERT INTO backend_errors (backend, kind, count) VALUES (?, ?, 1) "
                   "ON CONFLICT(backend, kind) DO UPDATE SET count = count + 1",
                   (backend, kind))


def call_open(db: sqlite3.Connection, call_id: str) -> bool:
    """The call's record has not been ended yet (so ending it now counts it once)."""
    row = db.execute("SELECT ended FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    return row is not None and row[0] is None


def count_finished_call(db: sqlite3.Connection, call_id: str) -> None:
    """Add the call that just ended to the totals by line, status and reason."""
    row = db.execute("SELECT COALESCE(line, ''), COALESCE(status, 'none'), "
                     "COALESCE(reason, 'none') FROM calls WHERE call_id = ?",
                     (call_id,)).fetchone()
    if row is not None:
        db.execute("INSERT INTO call_totals (line, status, reason, count) VALUES (?, ?, ?, 1) "
                   "ON CONFLICT(line, status, reason) DO UPDATE SET count = count + 1", row)


# ---------------------------------------------------------------- reading (anyone)


def read_call_totals(db: sqlite3.Connection) -> list[tuple[str, str, str, int]]:
    """(line, status, reason, finished calls), "none" for a status or reason not set."""
    return [(r["line"], r["status"], r["reason"], r["count"]) for r in rows_of(
        db, "SELECT line, status, reason, count FROM call_totals ORDER BY 1, 2, 3")]


def read_line_health(db: sqlite3.Connection) -> dict[str, dict]:
    """Each line's last health row, by line name."""
    rows = rows_of(db, f"SELECT {', '.join(_LINE_COLUMNS)} FROM line_health ORDER BY line")
    for r in rows:
        r["present"] = bool(r["present"])
    return {r["line"]: r for r in rows}


def read_backend_health(db: sqlite3.Connection) -> list[dict]:
    """Each back end's counts, last answers and breaker, with its errors by kind."""
    rows = rows_of(db, "SELECT backend, requests, errors, last_success, last_error, "
                     "last_error_kind, breaker, breaker_until, seconds_total, updated "
                     "FROM backend_health ORDER BY backend")
    errors = rows_of(db, "SELECT backend, kind, count FROM backend_errors ORDER BY kind")
    for r in rows:
        r["errors_by_kind"] = {e["kind"]: e["count"] for e in errors
                               if e["backend"] == r["backend"]}
    return rows


def read_backend_latency(db: sqlite3.Connection) -> dict[str, dict]:
    """Each back end's request-time histogram: {"buckets": [(le, cumulative count)...,
    ("+Inf", total)], "count": total, "sum": seconds}, buckets in LATENCY_BUCKETS_S order."""
    sums = {r["backend"]: r["seconds_total"]
            for r in rows_of(db, "SELECT backend, seconds_total FROM backend_health")}
    counts: dict[str, dict[str, int]] = {}
    for r in rows_of(db, "SELECT backend, le, count FROM backend_latency"):
        counts.setdefault(r["backend"], {})[r["le"]] = r["count"]
    out = {}
    for backend, by_le in counts.items():
        running, buckets = 0, []
        for label in [*map(_le, LATENCY_BUCKETS_S), "+Inf"]:
            running += by_le.get(label, 0)
            buckets.append((label, running))
        out[backend] = {"buckets": buckets, "count": running,
                        "sum": float(sums.get(backend) or 0.0)}
    return out


def rows_of(db: sqlite3.Connection | None, sql: str) -> list[dict]:
    """Rows as dicts; none from a table an older store does not have yet (or no store)."""
    if db is None:
        return []
    try:
        cur = db.execute(sql)
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return []                    # a store the engine has not brought to v7 yet
        raise
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
