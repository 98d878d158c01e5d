"""Call records and verification-failure counters in one SQLite file.

Written by one writer, the recorder (store/recorder.py), on its own thread:
the engine hands it the flow's record steps and it commits them in groups.
Alone, each `start`, `update` and `event` is its own transaction; inside the
recorder's `transaction` they join its group. The web app and the reports
read the same file from another process; WAL lets them read while it writes.

Durability: journal_mode=WAL with synchronous=FULL. In WAL mode NORMAL already
survives a crash of the process (kill -9), but on a power cut it may drop the
last commits; every commit here is synced (FULL), one fsync per group. The
promise, as a figure: a step is on disk within the recorder's 50 ms gather
plus one commit of happening (stated as 250 ms on a healthy SD card), and a
kill -9 or a power cut loses at most the steps of that window.

Privacy: no keyed digit is ever stored. Identifiers and the caller's number go
into records only masked (`mask`, last 2 digits). The attempt counter has to
match the same customer and number across calls, so it keeps a keyed digest
(HMAC-SHA256 with a random key) instead of the identifier: the counter table
alone, a report or a copy of it, never shows one. The key lives in its own
0600 file beside the store (calls-digest.key, `key_path`), never in it.
The one exception is the write-back outbox (store/outbox.py, only when
[writeback] is configured): the CRM needs the customer's full identifier, so
an undelivered outcome holds it until it is delivered, then it is cleared.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..call import LINE_STATES
from ..privacy import check_masked, mask, secret_details


DEFAULT_PATH = "/var/lib/callgate/calls.sqlite"


def store_path(config) -> str:
    """The call-record file of a configuration: [store] path, else the appliance's.
    [store] holds nothing else: any other key is refused, named."""
    table = config.sub("store")
    path = table.get("path", str, DEFAULT_PATH)
    table.reject_unknown(("path",))
    return path


class StoreError(Exception):
    """The record file cannot be opened or used; str() is one line."""


# name -> SQL type; the order is the column order of the calls table (v1, then v4).
_V1_COLUMNS: dict[str, str] = {
    "call_id": "TEXT PRIMARY KEY",
    "line": "TEXT",
    "service": "TEXT",
    "started": "REAL NOT NULL",       # unix seconds
    "ended": "REAL",                  # unix seconds
    "ani_masked": "TEXT",
    "lookup": "TEXT",                 # hit | miss | ambiguous | error | withheld | disabled
    "identified_by": "TEXT",          # number | keyed | NULL
    "customer_id_masked": "TEXT",
    "customer_name": "TEXT",
    "id_attempts": "INTEGER",
    "opted_out": "TEXT",              # the step the caller opted out at, or NULL
    "verify_kind": "TEXT",
    "verify_result": "TEXT",          # verified | failed | locked | error | skipped | no_secret
    "verify_attempts": "INTEGER",
    "assurance": "TEXT",
    "status": "TEXT",                 # verified | identified | not_identified
    "reason": "TEXT",                 # locked | opted_out | backend_down | no_secret | NULL
    "auth_ms": "INTEGER",
    "transfer_target": "TEXT",
    "transfer_mode": "TEXT",
    "transfer_result": "TEXT",
    "hangup_step": "TEXT",
    "backend_ms_total": "REAL",
    "backend_errors": "INTEGER",
}
_V4_COLUMNS: dict[str, str] = {
    "hours": "TEXT",                  # open | closed | holiday | override | NULL (no hours)
    "menu_choice": "TEXT",            # the menu key chosen, no_input | invalid, or NULL
    "transfer_tries": "INTEGER",      # destinations tried (more than 1: a fallback took it)
    "announcement": "INTEGER",        # 1: the supervisor's announcement was played
}
CALL_COLUMNS: dict[str, str] = {**_V1_COLUMNS, **_V4_COLUMNS}
UPDATABLE = frozenset(CALL_COLUMNS) - {"call_id"}
_MASKED = ("ani_masked", "customer_id_masked")


def _v1(db: sqlite3.Connection) -> None:
    cols = ",\n  ".join(f"{name} {kind}" for name, kind in _V1_COLUMNS.items())
    db.execute(f"CREATE TABLE calls (\n  {cols}\n)")
    db.execute("CREATE INDEX calls_started ON calls(started)")
    db.execute("CREATE INDEX calls_service ON calls(service, started)")
    db.execute("CREATE INDEX calls_status ON calls(status, started)")
    db.execute("""CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
        at REAL NOT NULL,
        step TEXT NOT NULL,
        detail TEXT NOT NULL)""")
    db.execute("CREATE INDEX events_call ON events(call_id, id)")
    db.execute("""CREATE TABLE verify_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        customer_key BLOB NOT NULL,
        number_key BLOB,
        customer_masked TEXT,
        at REAL NOT NULL)""")
    db.execute("CREATE INDEX failures_customer ON verify_failures(customer_key, at)")
    db.execute("CREATE INDEX failures_number ON verify_failures(number_key, at)")
    db.execute("CREATE INDEX failures_at ON verify_failures(at)")
    db.execute("""CREATE TABLE verify_successes (
        customer_key BLOB PRIMARY KEY,
        at REAL NOT NULL)""")
    db.execute("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
    db.execute("INSERT INTO store_meta VALUES ('digest_key', ?)", (secrets.token_bytes(32),))


def _v2(db: sqlite3.Connection) -> None:
    """Each line's live state, for the supervisor's status page (one row per line)."""
    db.execute("""CREATE TABLE line_status (
        line TEXT PRIMARY KEY,
        state TEXT NOT NULL,          -- idle | ringing | in_flow | transferring | down
        step TEXT,                    -- the flow's step while in_flow
        call_id TEXT,
        since REAL NOT NULL,          -- unix seconds the state began
        updated REAL NOT NULL)""")


def _v3(db: sqlite3.Connection) -> None:
    """The write-back outbox (store/outbox.py): one row per call outcome to deliver.

    `payload` (JSON) holds the back end's full customer identifier, which the
    CRM needs; it is set to NULL once the row is delivered.
    """
    db.execute("""CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        created REAL NOT NULL,        -- unix seconds the outcome was queued
        expires REAL NOT NULL,        -- give up (dead) after this
        state TEXT NOT NULL,          -- pending | delivered | dead
        payload TEXT,                 -- JSON; NULL once delivered
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,        -- next attempt (or the end of a claim)
        last_at REAL,
        last_status INTEGER,          -- HTTP status of the last answer; NULL: none
        last_error TEXT,              -- one line, never the payload
        delivered REAL)""")
    db.execute("CREATE INDEX outbox_due ON outbox(state, next_at)")
    db.execute("CREATE INDEX outbox_call ON outbox(call_id)")


def _v4(db: sqlite3.Connection) -> None:
    """Business hours, the menu after ID&V and the transfer fallback chain (columns), and
    the supervisor's switches per service line, set from the web app (switches.py)."""
    for name, kind in _V4_COLUMNS.items():
        db.execute(f"ALTER TABLE calls ADD COLUMN {name} {kind}")
    db.execute("""CREATE TABLE service_switches (
        service TEXT PRIMARY KEY,
        closed_on TEXT,               -- YYYY-MM-DD the line is closed ("closed today"), or NULL
        announcement INTEGER NOT NULL DEFAULT 0,   -- 1: play announcements/<service>.wav
        updated REAL NOT NULL,
        updated_by TEXT)""")


def _v5(db: sqlite3.Connection) -> None:
    """"Closed today" as the moment it was switched (unix seconds, NULL: not switched):
    the flow works out the date in the service line's own time zone, which the web app
    does not know. closed_on (a date in the web app's zone) is no longer read."""
    db.execute("ALTER TABLE service_switches ADD COLUMN closed_at REAL")


def _v6(db: sqlite3.Connection) -> None:
    """The device's health, for telemetry and /metrics (store/health.py): each line's
    hardware and engine counts, the back end's last answers and breaker, and a histogram
    of its request times. Written by the recorder only, one row per line / back end."""
    db.execute("""CREATE TABLE line_health (
        line TEXT PRIMARY KEY,
        interface TEXT,               -- sim | replay | modem | hat
        present INTEGER NOT NULL,     -- 1: the line interface works; 0: a fault stands
        fault TEXT,                   -- the standing fault's one line
        calls INTEGER NOT NULL,       -- calls since the engine started on the line
        rang INTEGER NOT NULL,        -- of the last `window` calls that rang ...
        callerid INTEGER NOT NULL,    -- ... how many brought caller ID
        window INTEGER NOT NULL,
        audio_faults INTEGER NOT NULL,    -- playback underruns, since started
        overruns INTEGER NOT NULL,        -- capture overruns, since started
        engine_faults INTEGER NOT NULL,   -- engine faults survived, since started
        started REAL NOT NULL,        -- unix seconds the engine started on the line
        updated REAL NOT NULL)""")
    db.execute("""CREATE TABLE backend_health (
        backend TEXT PRIMARY KEY,     -- the [crm] kind: directory, rest, a preset's name
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        last_success REAL,            -- unix seconds of the last answer that was not an error
        last_error REAL,
        last_error_kind TEXT,         -- crm/failure.py KINDS
        breaker TEXT,                 -- closed | open | half-open; NULL: no breaker
        breaker_until REAL,           -- an open breaker lets a trial through from then
        seconds_total REAL NOT NULL,  -- the sum of request times, seconds
        updated REAL NOT NULL)""")
    db.execute("""CREATE TABLE backend_latency (
        backend TEXT NOT NULL,
        le TEXT NOT NULL,             -- the bucket's upper bound as Prometheus writes it
        count INTEGER NOT NULL,       -- requests in this bucket alone (not cumulative)
        PRIMARY KEY (backend, le))""")
    db.execute("""CREATE TABLE backend_errors (
        backend TEXT NOT NULL,
        kind TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (backend, kind))""")


def _v7(db: sqlite3.Connection) -> None:
    """Finished calls by outcome for /metrics (store/health.py), counted by the recorder as
    each ends, so a scrape reads a row per outcome, not every call; the calls finished
    before are counted here once. Its own step: v6 went out without it."""
    db.execute("""CREATE TABLE call_totals (
        line TEXT NOT NULL,
        status TEXT NOT NULL,         -- the record's status, "none" when it has none
        reason TEXT NOT NULL,         -- the record's reason, "none" when it has none
        count INTEGER NOT NULL,
        PRIMARY KEY (line, status, reason))""")
    db.execute("INSERT INTO call_totals SELECT COALESCE(line, ''), COALESCE(status, 'none'), "
               "COALESCE(reason, 'none'), COUNT(*) FROM calls WHERE ended IS NOT NULL "
               "GROUP BY 1, 2, 3")


def _v8(db: sqlite3.Connection) -> None:
    """Telemetry's outbox (store/outbox.py, table outbox_mqtt): call outcomes and faults
    waiting for the MQTT broker, in order. Same columns as the write-back's; its payloads
    are masked (never a full identifier or number)."""
    db.execute("""CREATE TABLE outbox_mqtt (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,        -- the call, or "" for a fault of the device
        created REAL NOT NULL,
        expires REAL NOT NULL,
        state TEXT NOT NULL,          -- pending | delivered | dead
        payload TEXT,                 -- JSON; NULL once delivered
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        last_at REAL,
        last_status INTEGER,
        last_error TEXT,
        delivered REAL)""")
    db.execute("CREATE INDEX outbox_mqtt_state ON outbox_mqtt(state, id)")


# MIGRATIONS[i] takes the schema from version i to i + 1. Add, never edit.
MIGRATIONS = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8]
SCHEMA_VERSION = len(MIGRATIONS)


def open_db(path: str | Path, migrations: list, what: str,
            synchronous: str = "FULL") -> sqlite3.Connection:
    """Open (creating 0600, parent 0700) a SQLite file in WAL mode and migrate its schema.

    Shared with the customer directory. Raises StoreError with one line.
    """
    path = Path(path)
    try:
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # create the file ourselves so it is 0600 from its first byte; SQLite
            # gives the -wal and -shm files the same mode as the database
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        elif path.stat().st_mode & 0o077:
            try:
                os.chmod(path, 0o600)
            except PermissionError:
                pass
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as err:
        raise StoreError(f"{path}: cannot open {what} ({_why(err, path)})") from None
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{path}: cannot switch {what} to WAL mode (got {mode})")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db, migrations, path, what)
    except sqlite3.Error as err:
        db.close()
        raise StoreError(f"{path}: cannot use {what} ({_why(err, path)})") from None
    except StoreError:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, migrations: list, path: Path, what: str) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if version > len(migrations):
            raise StoreError(f"{path}: {what} schema version {version} is newer than this "
                             f"firmware knows ({len(migrations)})")
        for step in migrations[version:]:
            step(db)
        if row is None:
            db.execute("INSERT INTO schema_version VALUES (?)", (len(migrations),))
        elif version != len(migrations):
            db.execute("UPDATE schema_version SET version = ?", (len(migrations),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One committed write transaction, or part of the one already open.

    Alone, each write is its own committed transaction; the recorder
    (store/recorder.py) opens one around a group of steps, and then the writes
    inside it join that group and are committed with it.
    """
    if db.in_transaction:
        yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL = 8, 10, 13


def trouble(err: BaseException) -> str:
    """What went wrong with the store, in the words an operator acts on: "disk full"
    (SQLITE_FULL, ENOSPC), "read-only" (SQLITE_READONLY, EROFS), else one line."""
    code = getattr(err, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    number = getattr(err, "errno", None)
    text = str(err).splitlines()[0] if str(err) else ""
    if primary == _SQLITE_FULL or number == errno.ENOSPC or "disk is full" in text \
            or "disk full" in text:
        return "disk full"
    if primary == _SQLITE_READONLY or number == errno.EROFS or "readonly" in text \
            or "read-only" in text:
        return "read-only"
    if isinstance(err, OSError):
        return err.strerror or text or type(err).__name__
    if primary == _SQLITE_IOERR:
        return f"disk I/O error ({text})" if text and "disk I/O" not in text else text
    return text or type(err).__name__


def _why(err: BaseException, path: Path | None = None) -> str:
    """`trouble`, told by the file system itself when SQLite only says it cannot open."""
    why = trouble(err)
    if path is not None and why not in ("disk full", "read-only"):
        try:
            fs = os.statvfs(path.parent if not path.is_dir() else path)
        except OSError:
            return why
        if fs.f_flag & os.ST_RDONLY:
            return "read-only"
        if fs.f_bavail == 0 or fs.f_favail == 0:
            return "disk full"
    return why


def time_to_authenticate(started: float, at: float) -> int:
    """Milliseconds from the start of the call to the verdict (never negative)."""
    return max(0, round((at - started) * 1000))


class CallStore:
    """One row per call plus a step-by-step trail of events."""

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self.db = open_db(self.path, MIGRATIONS, "the call records", synchronous.upper())
        # freed space is zeroed: a delivered outbox payload (a full identifier) does not
        # linger in free pages of the file once it is cleared
        self.db.execute("PRAGMA secure_delete=ON")
        self.lock = threading.RLock()

    # -- writing: each method is one committed transaction --------------------------

    def start(self, call_id: str, line: str, service: str, started: float,
              ani_masked: str | None) -> None:
        check_masked("ani_masked", ani_masked)
        self._write("INSERT INTO calls (call_id, line, service, started, ani_masked) "
                    "VALUES (?, ?, ?, ?, ?)", (call_id, line, service, float(started), ani_masked))

    def update(self, call_id: str, **fields: Any) -> None:
        if not fields:
            return
        bad = sorted(set(fields) - UPDATABLE)
        if bad:
            raise ValueError(f"not a call record field: {', '.join(bad)}")
        for name in _MASKED:
            if name in fields:
                check_masked(name, fields[name])
        sets = ", ".join(f"{name} = ?" for name in fields)
        self._write(f"UPDATE calls SET {sets} WHERE call_id = ?",
                    (*fields.values(), call_id), must_match=call_id)

    def event(self, call_id: str, step: str, detail: dict | None = None,
              at: float | None = None) -> None:
        detail = dict(detail or {})
        leaked = secret_details(detail)
        if leaked:
            raise ValueError(f"event detail must not hold keyed digits: {', '.join(leaked)}")
        self._write("INSERT INTO events (call_id, at, step, detail) VALUES (?, ?, ?, ?)",
                    (call_id, time.time() if at is None else float(at), step,
                     json.dumps(detail, sort_keys=True)))

    def add_backend(self, call_id: str, ms: float, error: bool = False) -> None:
        """Add one back-end request's latency (and error) to the call's totals."""
        self._write("UPDATE calls SET backend_ms_total = COALESCE(backend_ms_total, 0) + ?, "
                    "backend_errors = COALESCE(backend_errors, 0) + ? WHERE call_id = ?",
                    (float(ms), 1 if error else 0, call_id), must_match=call_id)

    def authenticated(self, call_id: str, at: float) -> int:
        """Set auth_ms from the call's start to `at` (the verdict); returns it."""
        with self.lock:
            row = self.db.execute("SELECT started FROM calls WHERE call_id = ?",
                                  (call_id,)).fetchone()
            if row is None:
                raise KeyError(call_id)
            ms = time_to_authenticate(row[0], at)
            self.update(call_id, auth_ms=ms)
            return ms

    def _write(self, sql: str, params: tuple,
               must_match: str | None = None) -> sqlite3.Cursor:
        """One statement in its own committed transaction (or the open one); its cursor."""
        with self.lock, transaction(self.db):
            cur = self.db.execute(sql, params)
            if must_match is not None and cur.rowcount == 0:
                raise KeyError(must_match)
        return cur

    def set_line_status(self, line: str, state: str, step: str | None = None,
                        call_id: str | None = None, at: float | None = None) -> None:
        """Publish a line's state; `since` moves only when the state or step changes."""
        if state not in LINE_STATES:
            raise ValueError(f"line state {state!r} is not one of {', '.join(LINE_STATES)}")
        at = time.time() if at is None else float(at)
        self._write("INSERT INTO line_status (line, state, step, call_id, since, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(line) DO UPDATE SET "
                    "since = CASE WHEN state = excluded.state AND step IS excluded.step "
                    "THEN since ELSE excluded.since END, state = excluded.state, "
                    "step = excluded.step, call_id = excluded.call_id, "
                    "updated = excluded.updated", (line, state, step, call_id, at, at))

    # -- reading --------------------------------------------------------------------

    def line_status(self) -> list[dict]:
        """Every line's last published state, by line name."""
        with self.lock:
            cur = self.db.execute("SELECT * FROM line_status ORDER BY line")
            return [_row(cur, r) for r in cur.fetchall()]

    def get(self, call_id: str) -> dict | None:
        with self.lock:
            cur = self.db.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,))
            row = cur.fetchone()
            return _row(cur, row) if row else None

    def events(self, call_id: str) -> list[dict]:
        """The trail of one call, oldest first; detail decoded from JSON."""
        with self.lock:
            rows = self.db.execute("SELECT at, step, detail FROM events WHERE call_id = ? "
                                   "ORDER BY id", (call_id,)).fetchall()
        return [{"at": at, "step": step, "detail": json.loads(detail)}
                for at, step, detail in rows]

    def recent(self, limit: int = 50, since: float | None = None, until: float | None = None,
               **filters: Any) -> list[dict]:
        """Newest calls first; `filters` match columns exactly (service=..., status=...);
        `since`/`until` bound `started` (unix seconds, until exclusive)."""
        bad = sorted(set(filters) - set(CALL_COLUMNS))
        if bad:
            raise ValueError(f"not a call record field: {', '.join(bad)}")
        where, params = [], []
        for name, value in filters.items():
            if value is None:
                where.append(f"{name} IS NULL")
            else:
                where.append(f"{name} = ?")
                params.append(value)
        if since is not None:
            where.append("started >= ?")
            params.append(since)
        if until is not None:
            where.append("started < ?")
            params.append(until)
        sql = "SELECT * FROM calls" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY started DESC, rowid DESC LIMIT ?"
        with self.lock:
            cur = self.db.execute(sql, (*params, int(limit)))
            return [_row(cur, r) for r in cur.fetchall()]

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def __enter__(self) -> "CallStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def key_path(store: Path) -> Path:
    """The digest key's own file, beside the store: calls.sqlite -> calls-digest.key (a
    name `cp calls.sqlite*` does not take along)."""
    return store.with_name(f"{store.stem}-digest.key")


def digest_key(db: sqlite3.Connection, path: Path) -> bytes:
    """The counter's HMAC key, kept in its own 0600 file so a copy of the store alone
    gives up no identifier or number (the digests cannot be tried without it).

    A store made before issue 16 holds its key in store_meta: it is moved out on
    first open (same key, so every digest stays valid), then deleted from the file
    (secure_delete zeroes its page). A store that cannot be written keeps using the
    key it holds until it can be."""
    row = db.execute("SELECT value FROM store_meta WHERE key = 'digest_key'").fetchone()
    key = _read_key(path)
    if key is None:
        key = row[0] if row else secrets.token_bytes(32)
        try:
            _write_key(path, key)
        except FileExistsError:
            key = _read_key(path) or key     # another process wrote it first: theirs
        except OSError as err:
            if row is None:
                raise StoreError(f"{path}: cannot write the digest key ({trouble(err)})") \
                    from None
            return key                       # moved out once the disk allows
    if row is not None:
        try:
            with transaction(db):
                db.execute("DELETE FROM store_meta WHERE key = 'digest_key'")
            # the main file still holds the key's page until a checkpoint, and the WAL
            # its old frames: zero it in the file now and empty the WAL
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            pass                             # read-only or full: deleted on a later open
    return key


def _read_key(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StoreError(f"{path}: cannot read the digest key ({trouble(err)})") from None
    with os.fdopen(fd, "rb") as f:
        if os.fstat(f.fileno()).st_mode & 0o077:
            raise StoreError(f"{path}: the digest key must be 0600 or tighter "
                             "(chmod 600 it)")
        key = f.read(65)
    if len(key) != 32:
        raise StoreError(f"{path}: not a digest key (expected 32 bytes)")
    return key


def _write_key(path: Path, key: bytes) -> None:
    """Written whole or not at all: a temporary 0600 file, synced, then linked in place
    (never over an existing key)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


class AttemptCounter:
    """Verification failures across calls, per customer and per calling number.

    Policy: a success does NOT clear the count. The counter exists to stop
    guessing; if the genuine customer's success wiped it, an attacker would get
    a fresh set of guesses after every genuine call. Failures simply age out of
    the window (24 h by default); the success is recorded (`last_success`) for
    reports, and `clear` is the deliberate unlock for an administrator or agent.
    """

    KEEP_S = 30 * 86400   # failures older than this are deleted on the next write

    def __init__(self, store: "CallStore | str | Path") -> None:
        self.store = store if isinstance(store, CallStore) else None
        if isinstance(store, CallStore):
            self.db, self.lock, self._own = store.db, store.lock, False
            path = store.path
        else:
            path = Path(store)
            self.db = open_db(path, MIGRATIONS, "the call records")
            self.lock, self._own = threading.RLock(), True
        with self.lock:
            self._key = digest_key(self.db, key_path(path))

    def _digest(self, kind: str, value: str | None) -> bytes | None:
        if value is None or value == "":
            return None
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def failure(self, customer_id: str, calling_number: str | None,
                at: float | None = None) -> None:
        at = time.time() if at is None else float(at)
        with self.lock, transaction(self.db):
            self.db.execute("INSERT INTO verify_failures (customer_key, number_key, "
                            "customer_masked, at) VALUES (?, ?, ?, ?)",
                            (self._digest("customer", customer_id),
                             self._digest("number", calling_number), mask(customer_id), at))
            self.db.execute("DELETE FROM verify_failures WHERE at < ?", (at - self.KEEP_S,))

    def record_failure(self, customer_id: str, calling_number: str | None, at: float,
                       window_s: float = 86400) -> int:
        """Count one failure and return the recent failures with it (one round trip
        through the recorder: the flow decides on the count that includes this one)."""
        with self.lock, transaction(self.db):
            self.failure(customer_id, calling_number, at)
            return self.recent_failures(customer_id, calling_number, window_s, at)

    def recent_failures(self, customer_id: str, calling_number: str | None,
                        window_s: float = 86400, at: float | None = None) -> int:
        """Failures in (at - window_s, at]: the larger of the customer's count (from any
        number) and the calling number's count (against any customer)."""
        at = time.time() if at is None else float(at)
        low = at - window_s
        with self.lock:
            by_customer = self.db.execute(
                "SELECT COUNT(*) FROM verify_failures WHERE customer_key = ? AND at > ? "
                "AND at <= ?", (self._digest("customer", customer_id), low, at)).fetchone()[0]
            number = self._digest("number", calling_number)
            by_number = 0
            if number is not None:
                by_number = self.db.execute(
                    "SELECT COUNT(*) FROM verify_failures WHERE number_key = ? AND at > ? "
                    "AND at <= ?", (number, low, at)).fetchone()[0]
        return max(by_customer, by_number)

    def success(self, customer_id: str, at: float | None = None) -> None:
        """Record a verification success (does not clear failures; see the class doc)."""
        at = time.time() if at is None else float(at)
        with self.lock, transaction(self.db):
            self.db.execute("INSERT INTO verify_successes VALUES (?, ?) ON CONFLICT(customer_key)"
                            " DO UPDATE SET at = excluded.at",
                            (self._digest("customer", customer_id), at))

    def last_success(self, customer_id: str) -> float | None:
        with self.lock:
            row = self.db.execute("SELECT at FROM verify_successes WHERE customer_key = ?",
                                  (self._digest("customer", customer_id),)).fetchone()
        return row[0] if row else None

    def clear(self, customer_id: str) -> int:
        """Unlock a customer on purpose (an agent checked them): delete their failures."""
        with self.lock, transaction(self.db):
            cur = self.db.execute("DELETE FROM verify_failures WHERE customer_key = ?",
                                  (self._digest("customer", customer_id),))
        return cur.rowcount

    def close(self) -> None:
        if self._own:
            with self.lock:
                self.db.close()


def _row(cur: sqlite3.Cursor, row: tuple) -> dict:
    return {d[0]: v for d, v in zip(cur.description, row)}
