"""Reading the engine's call store from the web process, without ever getting in its way.

The store is the engine's (store/records.py): a SQLite file in WAL mode. Here it
is opened read-only (`mode=ro`, `PRAGMA query_only`) and every query is its own
short read transaction in autocommit mode, fetched in full at once, so the web
app holds no snapshot open between queries: WAL readers never block the
engine's writes, and short ones do not hold back its checkpoints either.

A store that does not exist yet (the engine never ran) or has an older schema
reads as empty, never as an error page.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

log = logging.getLogger("callgate.web")

# the calls columns a screen-pop shows (all stored masked or harmless)
POP_COLUMNS = ("call_id", "line", "service", "started", "ani_masked", "identified_by",
               "customer_id_masked", "customer_name", "lookup", "verify_result",
               "transfer_target", "transfer_mode", "transfer_result", "hours", "menu_choice",
               "transfer_tries")


class StoreReader:
    """Opens read-only views of the call store at `path`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def open(self) -> "StoreView":
        if not self.path.is_file():
            return StoreView(None)
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            db = sqlite3.connect(uri, uri=True, timeout=2.0, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA query_only = 1")
        except sqlite3.Error as err:
            log.error("call store %s unreadable (%s)", self.path, _first_line(err))
            return StoreView(None)
        return StoreView(db)


class StoreView:
    """One read-only connection; each method is one short read."""

    def __init__(self, db: sqlite3.Connection | None) -> None:
        self.db = db

    def _rows(self, sql: str, params: tuple = ()) -> list[dict]:
        if self.db is None:
            return []
        try:
            cur = self.db.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        except sqlite3.Error as err:
            if "no such table" not in str(err):
                log.error("call store read failed (%s)", _first_line(err))
            return []

    # -- transfers to extensions (the screen-pop) ----------------------------------------

    def last_event_id(self) -> int:
        rows = self._rows("SELECT COALESCE(MAX(id), 0) AS id FROM events")
        return rows[0]["id"] if rows else 0

    def transfers_after(self, after: int, extensions: tuple[str, ...],
                        limit: int = 50) -> list[dict]:
        """Outcomes sent to `extensions` with event id above `after`, oldest first."""
        return self._outcomes(extensions, after, limit, newest_first=False)

    def recent_transfers(self, extensions: tuple[str, ...], limit: int = 10) -> list[dict]:
        """The last `limit` outcomes sent to `extensions`, newest first."""
        return self._outcomes(extensions, 0, limit, newest_first=True)   # event ids start at 1

    def _outcomes(self, extensions: tuple[str, ...], after: int, limit: int,
                  newest_first: bool) -> list[dict]:
        if not extensions:
            return []
        marks = ",".join("?" * len(extensions))
        rows = self._rows(
            f"SELECT e.id AS id, e.at AS at, e.detail AS detail, "
            f"{', '.join('c.' + c for c in POP_COLUMNS)}, c.status AS row_status, "
            f"c.reason AS row_reason FROM events e JOIN calls c ON c.call_id = e.call_id "
            f"WHERE e.step = 'outcome' AND e.id > ? "
            f"AND json_extract(e.detail, '$.extension') IN ({marks}) "
            f"ORDER BY e.id {'DESC' if newest_first else 'ASC'} LIMIT ?",
            (int(after), *extensions, int(limit)))
        return [_transfer(r) for r in rows]

    def known_extensions(self, limit: int = 500) -> list[str]:
        """Extensions calls went to lately (for a supervisor choosing one to watch)."""
        rows = self._rows("SELECT DISTINCT transfer_target AS ext FROM (SELECT transfer_target "
                          "FROM calls WHERE transfer_target IS NOT NULL "
                          "ORDER BY started DESC LIMIT ?)", (int(limit),))
        return sorted(r["ext"] for r in rows)

    # -- live status -------------------------------------------------------------------

    def line_status(self) -> list[dict]:
        return self._rows("SELECT line, state, step, call_id, since, updated FROM line_status "
                          "ORDER BY line")

    def in_progress(self, now: float, within_s: float = 4 * 3600) -> list[dict]:
        """Calls started in the last `within_s` that have not ended, newest first, with the
        step of their latest event (a call left open by a crash ages out of the list)."""
        return self._rows(
            "SELECT c.call_id, c.line, c.service, c.started, c.ani_masked, c.identified_by, "
            "c.customer_id_masked, c.customer_name, c.status, c.reason, c.transfer_target, "
            "(SELECT step FROM events e WHERE e.call_id = c.call_id ORDER BY e.id DESC LIMIT 1)"
            " AS last_step FROM calls c WHERE c.ended IS NULL AND c.started >= ? "
            "ORDER BY c.started DESC LIMIT 50", (now - within_s,))

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> "StoreView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _transfer(row: dict) -> dict:
    """One screen-pop: the outcome as decided (event detail), with the call's fields."""
    try:
        detail = json.loads(row.pop("detail") or "{}")
    except ValueError:
        detail = {}
    row_status, row_reason = row.pop("row_status", None), row.pop("row_reason", None)
    row["extension"] = detail.get("extension") or row.get("transfer_target")
    row["status"] = detail.get("status") or row_status
    row["reason"] = detail.get("reason") if "status" in detail else row_reason
    for key in ("hours", "menu_choice", "fallback"):       # as it was when this one was sent
        if key in detail:
            row[key] = detail[key]
    return row


def _first_line(err: BaseException) -> str:
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__
