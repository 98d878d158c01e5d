"""The write-back outbox: call outcomes waiting to be POSTed to the business's back end.

A row is written when a call ends, in the call-record file and with the same
durability (its own committed, synced transaction before the call handler
returns), so an outcome survives the back end being down, a power cut or a
kill -9. crm/writeback.py delivers the rows; this module only keeps them.

Life of a row: pending -> delivered (payload cleared, HTTP status kept), or
pending -> dead (the back end refused it for good, or it was still undelivered
after the configured age; kept with its payload until `callgate outbox retry`
or `purge`, never dropped silently). A sender *claims* a row before sending by
moving its next attempt to the end of a lease, so two senders never send the
same row at once and a sender killed mid-request leaves the row to be tried
again once the lease has run out.

Privacy: the payload carries the back end's full customer identifier (the CRM
needs it to file the activity) and never anything the caller keyed. It is the
only place the store keeps an identifier unmasked, and only until delivery.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .records import CallStore

STATES = ("pending", "delivered", "dead")

# What an outcome says, in this order: the names of the default JSON body and the
# placeholders a body template may use (plus outbox_id and idempotency_key).
PAYLOAD_FIELDS = ("call_id", "line", "service", "started", "ended", "status", "reason",
                  "identifier", "identified_by", "verify_result", "transfer_target",
                  "transfer_mode", "transfer_result", "auth_ms", "hangup_step", "opted_out")
_FROM_RECORD = tuple(f for f in PAYLOAD_FIELDS if f not in ("identifier", "started", "ended"))


def iso_utc(unix: float | None) -> str | None:
    """Unix seconds as ISO 8601 in UTC with milliseconds ("2024-05-01T09:30:00.250Z")."""
    if unix is None:
        return None
    moment = datetime.fromtimestamp(float(unix), timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def payload_from_record(fields: dict, identifier: str | None) -> dict:
    """The outcome of one call from its record's fields and the identified customer's id.

    `fields` are the call record's columns as written (masked); the identifier
    is the back end's id of the identified customer (None when not identified).
    """
    out: dict[str, Any] = {name: fields.get(name) for name in _FROM_RECORD}
    out["started"] = iso_utc(fields.get("started"))
    out["ended"] = iso_utc(fields.get("ended"))
    out["identifier"] = identifier
    return {name: out[name] for name in PAYLOAD_FIELDS}


@dataclass(frozen=True)
class OutboxItem:
    """One pending row, as a sender sees it."""

    id: int
    call_id: str
    payload: dict
    attempts: int
    created: float
    expires: float

    def __repr__(self) -> str:            # the payload holds a full identifier
        return f"OutboxItem(id={self.id}, call_id={self.call_id!r}, attempts={self.attempts})"


DESTINATIONS = {"writeback": "outbox", "mqtt": "outbox_mqtt"}
"""One table per destination, the same columns and the same life of a row: the
write-back's (HTTPS to the back end) and telemetry's (MQTT events, masked only)."""


class Outbox:
    """An outbox table of a CallStore (same file, same connection and lock); `table` is
    one of DESTINATIONS' tables (the write-back's by default)."""

    def __init__(self, store: CallStore, table: str = "outbox") -> None:
        if table not in DESTINATIONS.values():
            raise ValueError(f"no outbox table {table!r}")
        self.store = store
        self.db = store.db
        self.lock = store.lock
        self.table = table

    def _txn(self, sql: str, params: tuple) -> int:
        """One committed statement (the store's own write); its rowcount (or lastrowid
        for an INSERT)."""
        cur = self.store._write(sql, params)
        return cur.lastrowid if sql.lstrip().upper().startswith("INSERT") else cur.rowcount

    # -- writing ----------------------------------------------------------------------

    def enqueue(self, call_id: str, payload: dict, at: float | None = None,
                max_age_s: float = 72 * 3600.0) -> int:
        """Queue one outcome, due now; its row id."""
        at = time.time() if at is None else float(at)
        body = json.dumps(payload, separators=(",", ":"))
        return self._txn(f"INSERT INTO {self.table} (call_id, created, expires, state, payload, "
                         "next_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                         (call_id, at, at + float(max_age_s), body, at))

    def claim(self, row_id: int, now: float, until: float) -> bool:
        """Take a due row for one attempt (next attempt moves to `until`); False if
        another sender has it or it is no longer pending."""
        return self._txn(f"UPDATE {self.table} SET next_at = ?, attempts = attempts + 1, "
                         "last_at = ? "
                         "WHERE id = ? AND state = 'pending' AND next_at <= ?",
                         (float(until), float(now), row_id, float(now))) == 1

    def delivered(self, row_id: int, status: int, at: float | None = None) -> None:
        """Delivered: the payload (with the full identifier) is cleared, the status kept."""
        at = time.time() if at is None else float(at)
        self._txn(f"UPDATE {self.table} SET state = 'delivered', payload = NULL, delivered = ?, "
                  "last_status = ?, last_error = NULL WHERE id = ?", (at, int(status), row_id))

    def later(self, row_id: int, next_at: float, status: int | None, error: str) -> None:
        """Not delivered this time: try again at `next_at`."""
        self._txn(f"UPDATE {self.table} SET next_at = ?, last_status = ?, last_error = ? "
                  "WHERE id = ? AND state = 'pending'",
                  (float(next_at), status, _one_line(error), row_id))

    def dead(self, row_id: int, status: int | None, error: str) -> None:
        """Given up: kept (with its payload) for `retry` or `purge`, never sent again alone."""
        self._txn(f"UPDATE {self.table} SET state = 'dead', last_status = ?, last_error = ? "
                  "WHERE id = ?", (status, _one_line(error), row_id))

    def retry(self, row_ids: list[int] | None = None, now: float | None = None,
              max_age_s: float = 72 * 3600.0) -> int:
        """Dead (or pending) rows with a payload are due again now, for another
        `max_age_s`; all of them when `row_ids` is None. How many."""
        now = time.time() if now is None else float(now)
        sql = (f"UPDATE {self.table} SET state = 'pending', next_at = ?, expires = ? "
               "WHERE state IN ('dead', 'pending') AND payload IS NOT NULL")
        params: tuple = (now, now + float(max_age_s))
        if row_ids is not None:
            if not row_ids:
                return 0
            sql += f" AND id IN ({', '.join('?' * len(row_ids))})"
            params += tuple(int(i) for i in row_ids)
        return self._txn(sql, params)

    def expire(self, now: float) -> int:
        """Delete pending rows past their age (a destination whose rows lose their worth
        with time: telemetry's); how many."""
        return self._txn(f"DELETE FROM {self.table} WHERE state = 'pending' AND expires < ?",
                         (float(now),))

    def purge(self, dead: bool = False) -> int:
        """Delete delivered rows (and dead ones, with their payload, if asked). How many."""
        states = ("delivered", "dead") if dead else ("delivered",)
        marks = ", ".join("?" * len(states))
        return self._txn(f"DELETE FROM {self.table} WHERE state IN ({marks})", states)

    # -- reading ----------------------------------------------------------------------

    def due(self, now: float | None = None, limit: int = 20) -> list[OutboxItem]:
        """Pending rows whose time has come, oldest first."""
        now = time.time() if now is None else float(now)
        with self.lock:
            rows = self.db.execute(
                f"SELECT id, call_id, payload, attempts, created, expires FROM {self.table} "
                "WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
                (now, int(limit))).fetchall()
        return [OutboxItem(i, c, json.loads(p), a, cr, ex) for i, c, p, a, cr, ex in rows
                if p is not None]

    def pending(self, limit: int = 50) -> list[OutboxItem]:
        """Pending rows in the order they were queued (a destination that must keep the
        order, as telemetry's events do, sends them so)."""
        with self.lock:
            rows = self.db.execute(
                f"SELECT id, call_id, payload, attempts, created, expires FROM {self.table} "
                "WHERE state = 'pending' AND payload IS NOT NULL ORDER BY id LIMIT ?",
                (int(limit),)).fetchall()
        return [OutboxItem(i, c, json.loads(p), a, cr, ex) for i, c, p, a, cr, ex in rows]

    def next_due(self) -> float | None:
        """When the next pending row is due (None: nothing pending)."""
        with self.lock:
            row = self.db.execute(f"SELECT MIN(next_at) FROM {self.table} "
                                  "WHERE state = 'pending'").fetchone()
        return row[0]

    def rows(self, state: str | None = None, limit: int = 100) -> list[dict]:
        """Rows for people (newest first), without the payload: only whether one is held."""
        if state is not None and state not in STATES:
            raise ValueError(f"outbox state {state!r} is not one of {', '.join(STATES)}")
        sql = ("SELECT id, call_id, created, expires, state, attempts, next_at, last_at, "
               "last_status, last_error, delivered, payload IS NOT NULL AS holds_payload "
               f"FROM {self.table}")
        params: tuple = ()
        if state is not None:
            sql += " WHERE state = ?"
            params = (state,)
        sql += " ORDER BY id DESC LIMIT ?"
        with self.lock:
            cur = self.db.execute(sql, (*params, int(limit)))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        with self.lock:
            got = dict(self.db.execute(f"SELECT state, COUNT(*) FROM {self.table} "
                                       "GROUP BY state"))
        return {s: got.get(s, 0) for s in STATES}


def _one_line(text: str | None) -> str | None:
    if text is None:
        return None
    return str(text).splitlines()[0][:300] if str(text) else ""
