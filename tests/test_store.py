"""Call records and attempt counters on a real SQLite file."""

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from callgate.privacy import mask
from callgate.store import AttemptCounter, CallStore, StoreError, time_to_authenticate
from callgate.store.records import SCHEMA_VERSION

T0 = 1_700_000_000.0


def db_bytes(path) -> bytes:
    """The database and its WAL/SHM files as they are on disk, together."""
    out = b""
    for suffix in ("", "-wal", "-shm"):
        p = f"{path}{suffix}"
        if os.path.exists(p):
            with open(p, "rb") as f:
                out += f.read()
    return out


@pytest.fixture
def store(tmp_path):
    s = CallStore(tmp_path / "calls.sqlite")
    yield s
    s.close()


def test_wal_mode_full_sync_and_private_file(tmp_path, store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2      # FULL
    other = sqlite3.connect(tmp_path / "calls.sqlite")                    # a reader (web app)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    assert os.stat(tmp_path / "calls.sqlite").st_mode & 0o777 == 0o600


def test_schema_version_recorded_and_data_survives_reopen(tmp_path):
    path = tmp_path / "calls.sqlite"
    with CallStore(path) as s:
        s.start("c1", "line1", "support", T0, mask("2015550123"))
    with CallStore(path) as s:
        assert s.db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert s.get("c1")["service"] == "support"


def test_newer_schema_or_garbage_file_is_one_line_error(tmp_path):
    path = tmp_path / "calls.sqlite"
    CallStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this firmware") as err:
        CallStore(path)
    assert "\n" not in str(err.value)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="junk.sqlite") as err:
        CallStore(junk)
    assert "\n" not in str(err.value)


def test_indexes_for_reports(store):
    names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"calls_started", "calls_service", "calls_status"} <= names
    plan = " ".join(str(r) for r in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM calls WHERE service = 'x' ORDER BY started DESC"))
    assert "calls_service" in plan


def test_record_steps_events_and_helpers(store):
    store.start("c1", "line1", "support", T0, mask("2015550123"))
    store.update("c1", lookup="hit", identified_by="number",
                 customer_id_masked=mask("12345678"), customer_name="Jane Smith")
    store.event("c1", "lookup", {"status": "hit", "ms": 12.5}, at=T0 + 1)
    store.add_backend("c1", 12.5)
    store.add_backend("c1", 3000.0, error=True)
    assert store.authenticated("c1", T0 + 9.25) == 9250
    store.update("c1", verify_kind="pin", verify_result="verified", verify_attempts=1,
                 status="verified", ended=T0 + 30)
    rec = store.get("c1")
    assert rec["ani_masked"] == "********23"
    assert rec["customer_id_masked"] == "******78"
    assert rec["backend_ms_total"] == 3012.5 and rec["backend_errors"] == 1
    assert rec["auth_ms"] == 9250 and rec["status"] == "verified" and rec["ended"] == T0 + 30
    assert store.events("c1") == [{"at": T0 + 1, "step": "lookup",
                                   "detail": {"ms": 12.5, "status": "hit"}}]
    assert store.get("nope") is None
    assert time_to_authenticate(T0, T0 - 1) == 0


def test_bad_fields_and_unknown_call_raise(store):
    store.start("c1", "line1", "support", T0, None)
    with pytest.raises(ValueError, match="colour"):
        store.update("c1", colour="red")
    with pytest.raises(KeyError):
        store.update("missing", status="verified")
    with pytest.raises(sqlite3.IntegrityError):
        store.start("c1", "line1", "support", T0, None)


def test_recent_filters_and_order(store):
    for i, (service, status) in enumerate([("sales", "verified"), ("support", "identified"),
                                           ("support", "verified"), ("support", None)]):
        store.start(f"c{i}", "line1", service, T0 + i, None)
        if status:
            store.update(f"c{i}", status=status)
    assert [r["call_id"] for r in store.recent()] == ["c3", "c2", "c1", "c0"]
    assert [r["call_id"] for r in store.recent(service="support", status="verified")] == ["c2"]
    assert [r["call_id"] for r in store.recent(status=None)] == ["c3"]
    assert [r["call_id"] for r in store.recent(limit=2)] == ["c3", "c2"]
    assert [r["call_id"] for r in store.recent(since=T0 + 1, until=T0 + 3)] == ["c2", "c1"]
    with pytest.raises(ValueError):
        store.recent(secret="x")


CHILD = textwrap.dedent("""
    import os, signal, sys
    from callgate.privacy import mask
    from callgate.store import CallStore
    s = CallStore(sys.argv[1])
    s.start("call-1", "line1", "support", 1700000000.0, mask("2015550123"))
    s.update("call-1", lookup="miss")
    s.event("call-1", "lookup", {"status": "miss"})
    s.update("call-1", identified_by="keyed", customer_id_masked=mask("12345678"),
             id_attempts=2)
    s.event("call-1", "identified", {"attempts": 2})
    # the step in progress: written but not committed when the power goes
    s.db.execute("BEGIN IMMEDIATE")
    s.db.execute("UPDATE calls SET verify_result = 'verified' WHERE call_id = 'call-1'")
    s.db.execute("INSERT INTO events (call_id, at, step, detail) "
                 "VALUES ('call-1', 1, 'verify', '{}')")
    print("ready", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_committed_steps_survive_kill_9(tmp_path):
    path = tmp_path / "calls.sqlite"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "ready"
    assert os.path.exists(f"{path}-wal")          # the child never closed the database
    with CallStore(path) as s:
        assert s.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rec = s.get("call-1")
        assert rec["lookup"] == "miss"
        assert rec["identified_by"] == "keyed" and rec["id_attempts"] == 2
        assert rec["customer_id_masked"] == "******78"
        assert rec["verify_result"] is None       # the step in progress is lost, only it
        assert [e["step"] for e in s.events("call-1")] == ["lookup", "identified"]


def test_attempts_per_customer_across_numbers(store):
    counter = AttemptCounter(store)
    for i, number in enumerate(["+12015550123", "+12015550199", None]):
        counter.failure("12345678", number, at=T0 + i)
    assert counter.recent_failures("12345678", "+14155550100", at=T0 + 10) == 3
    assert counter.recent_failures("12345678", None, at=T0 + 10) == 3
    assert counter.recent_failures("23456789", None, at=T0 + 10) == 0


def test_attempts_per_number_across_customers(store):
    counter = AttemptCounter(store)
    for i, cid in enumerate(["11111111", "22222222", "33333333", "44444444"]):
        counter.failure(cid, "+12015550123", at=T0 + i)
    # a fresh customer called from a number that already failed against four others
    assert counter.recent_failures("55555555", "+12015550123", at=T0 + 10) == 4
    assert counter.recent_failures("55555555", "+12015550124", at=T0 + 10) == 0
    assert counter.recent_failures("11111111", "+12015550124", at=T0 + 10) == 1


def test_attempts_window_slides(store):
    counter = AttemptCounter(store)
    counter.failure("12345678", "+12015550123", at=T0)
    counter.failure("12345678", "+12015550123", at=T0 + 3600)
    assert counter.recent_failures("12345678", "+12015550123", at=T0 + 3600) == 2
    assert counter.recent_failures("12345678", "+12015550123", at=T0 + 86400 - 1) == 2
    assert counter.recent_failures("12345678", "+12015550123", at=T0 + 86400) == 1
    assert counter.recent_failures("12345678", "+12015550123", at=T0 + 86400 + 3600) == 0
    assert counter.recent_failures("12345678", None, window_s=600, at=T0 + 3700) == 1
    assert counter.recent_failures("12345678", None, at=T0 - 1) == 0     # not yet happened


def test_success_does_not_clear_but_clear_does(tmp_path, store):
    counter = AttemptCounter(store)
    for i in range(3):
        counter.failure("12345678", "+12015550123", at=T0 + i)
    counter.success("12345678", at=T0 + 5)
    assert counter.last_success("12345678") == T0 + 5
    assert counter.recent_failures("12345678", None, at=T0 + 6) == 3
    # a second connection (another process) sees the same counts
    other = AttemptCounter(tmp_path / "calls.sqlite")
    assert other.recent_failures("12345678", None, at=T0 + 6) == 3
    other.close()
    assert counter.clear("12345678") == 3
    assert counter.recent_failures("12345678", "+12015550123", at=T0 + 6) == 0


def test_old_failures_are_pruned(store):
    counter = AttemptCounter(store)
    counter.failure("12345678", None, at=T0)
    counter.failure("12345678", None, at=T0 + AttemptCounter.KEEP_S + 10)
    assert store.db.execute("SELECT COUNT(*) FROM verify_failures").fetchone()[0] == 1


@pytest.mark.parametrize("value, keep, expected", [
    ("12345678", 2, "******78"),
    ("+12015550123", 2, "**********23"),
    ("12345678", 3, "*****678"),
    ("1234", 2, "****"),          # too short to show anything
    ("12345", 2, "****5"),
    ("", 2, ""),
    ("1234 5678", 2, "******78"),
])
def test_mask(value, keep, expected):
    assert mask(value, keep) == expected


def test_mask_none():
    assert mask(None) is None


def test_guards_refuse_unmasked_and_keyed_digits(store):
    store.start("c1", "line1", "support", T0, None)
    with pytest.raises(ValueError, match="masked"):
        store.update("c1", customer_id_masked="12345678")
    with pytest.raises(ValueError, match="masked"):
        store.start("c2", "line1", "support", T0, "2015550123")
    with pytest.raises(ValueError, match="keyed"):
        store.event("c1", "verify", {"digits": "4271"})
    store.event("c1", "verify", {"digits": 4})        # a count is fine
    assert store.get("c2") is None


def test_no_keyed_digits_in_the_file_after_a_flow(tmp_path):
    """A whole identify-and-verify call's writes, then the raw bytes are searched."""
    path = tmp_path / "calls.sqlite"
    ani, customer_id, pin, wrong_pin = "2015550123", "12345678", "4271", "9630"
    store = CallStore(path)
    counter = AttemptCounter(store)
    store.start("call-7", "line1", "support", T0, mask(ani))
    store.update("call-7", lookup="miss")
    store.event("call-7", "lookup", {"status": "miss", "by": "number"}, at=T0 + 1)
    store.update("call-7", identified_by="keyed", customer_id_masked=mask(customer_id),
                 customer_name="Jane Smith", id_attempts=1)
    store.event("call-7", "identified", {"customer": mask(customer_id), "keys": 8}, at=T0 + 5)
    counter.failure(customer_id, ani, at=T0 + 8)         # the wrong PIN
    store.event("call-7", "verify", {"result": "rejected", "keys": len(wrong_pin)}, at=T0 + 8)
    counter.success(customer_id, at=T0 + 12)             # the right PIN
    store.update("call-7", verify_kind="pin", verify_result="verified", verify_attempts=2,
                 status="verified", assurance="high")
    store.authenticated("call-7", T0 + 12)
    store.update("call-7", transfer_target="201", transfer_mode="blind", transfer_result="ok",
                 ended=T0 + 20)
    raw = db_bytes(path)
    assert b"Jane Smith" in raw                          # the search does see the records
    store.close()
    raw += db_bytes(path)                                # and after the checkpoint
    for secret in (pin, wrong_pin, customer_id, ani):
        assert secret.encode() not in raw, secret


def test_line_status_keeps_since_while_the_state_holds(tmp_path):
    from callgate.store.records import CallStore

    with CallStore(tmp_path / "c.sqlite", synchronous="NORMAL") as store:
        store.set_line_status("line", "ringing", at=100.0)
        store.set_line_status("line", "ringing", at=103.0)
        store.set_line_status("line", "in_flow", "identifier", "c1", at=105.0)
        (row,) = store.line_status()
        assert (row["state"], row["step"], row["call_id"], row["since"], row["updated"]) == \
            ("in_flow", "identifier", "c1", 105.0, 105.0)
        store.set_line_status("line", "in_flow", "identifier", "c1", at=107.0)
        assert store.line_status()[0]["since"] == 105.0
        store.set_line_status("line", "in_flow", "security", "c1", at=109.0)
        assert store.line_status()[0]["since"] == 109.0
        with pytest.raises(ValueError, match="line state 'busy'"):
            store.set_line_status("line", "busy")


# -- issue 16: the counter when the store cannot count; the store's trouble in words ------

class _BrokenStoreCounter:
    """A store counter whose writes fail as on a full disk; reads as the store says."""

    def __init__(self, on_disk=0, readable=True):
        self.on_disk, self.readable = on_disk, readable

    def recent_failures(self, *a):
        if not self.readable:
            raise StoreError("call records unavailable (disk full)")
        return self.on_disk

    def record_failure(self, *a):
        raise StoreError("call records: not written (disk full)")


def test_failures_the_store_cannot_write_are_counted_in_memory(caplog):
    from callgate.store.memory_counter import CounterUnavailable, MemoryFailures, SafeCounter
    c = SafeCounter(_BrokenStoreCounter(on_disk=3))
    assert c.recent_failures("12345678", "+12015550123", 86400, 1000.0) == 3
    assert c.record_failure("12345678", "+12015550123", 1001.0, 86400) == 4
    assert c.record_failure("12345678", None, 1002.0, 86400) == 5    # same customer
    assert c.recent_failures("99999999", "+12015550123", 86400, 1003.0) == 3 + 1  # same number
    assert c.recent_failures("12345678", None, 86400, 1001.0 + 86400) == 3 + 1    # aged out
    assert "store not written (disk full)" in caplog.text
    assert caplog.text.count("counted in memory") == 1
    unreadable = SafeCounter(_BrokenStoreCounter(readable=False))
    for n in range(1, 4):
        assert unreadable.record_failure("12345678", None, 10.0 + n, 86400) == n
    full = SafeCounter(_BrokenStoreCounter(), MemoryFailures(limit=1))
    assert full.record_failure("1", None, 1.0, 86400) == 1
    with pytest.raises(CounterUnavailable, match="not counted .disk full; memory full"):
        full.record_failure("1", None, 2.0, 86400)


def test_a_short_window_does_not_drop_failures_a_longer_one_still_counts():
    # two services, a 30-day and a 1-hour lockout window: a failure on the short one must
    # not prune from memory what the long one still counts while the store cannot write
    from callgate.store.memory_counter import SafeCounter
    c = SafeCounter(_BrokenStoreCounter())
    month, hour = 30 * 86400.0, 3600.0
    assert c.record_failure("12345678", None, 1000.0, month) == 1
    assert c.record_failure("87654321", None, 1000.0 + 2 * hour, hour) == 1
    assert c.recent_failures("12345678", None, month, 1000.0 + 3 * hour) == 1


def test_a_written_failure_is_not_counted_twice(tmp_path):
    from callgate.store.memory_counter import SafeCounter
    with CallStore(tmp_path / "c.sqlite") as store:
        c = SafeCounter(AttemptCounter(store))
        assert [c.record_failure("12345678", None, 10.0 + n, 86400) for n in range(3)] == \
            [1, 2, 3]
        assert c.recent_failures("12345678", None, 86400, 20.0) == 3


@pytest.mark.parametrize("err, said", [
    (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only"),
    (sqlite3.OperationalError("database or disk is full"), "disk full"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
    (sqlite3.OperationalError("no such table: calls"), "no such table: calls"),
])
def test_store_trouble_says_disk_full(err, said):
    from callgate.store.records import trouble
    assert trouble(err) == said


# -- issue 16: the digest key in its own 0600 file, outside the store ------------------------

def _raw(path) -> bytes:
    return b"".join(Path(f"{path}{s}").read_bytes() for s in ("", "-wal", "-shm")
                    if Path(f"{path}{s}").exists())


def test_the_digest_key_lives_in_its_own_private_file(tmp_path):
    from callgate.store.records import key_path
    path = tmp_path / "calls.sqlite"
    with CallStore(path) as store:
        counter = AttemptCounter(store)
        counter.failure("12345678", "+12015550123", at=100.0)
        key = key_path(path).read_bytes()
    assert key_path(path) == tmp_path / "calls-digest.key"
    assert len(key) == 32 and os.stat(key_path(path)).st_mode & 0o777 == 0o600
    assert key not in _raw(path)
    with CallStore(path) as store:           # the same key again: the count is kept
        assert AttemptCounter(store).recent_failures("12345678", None, 86400, 101.0) == 1
        assert store.db.execute("SELECT COUNT(*) FROM store_meta WHERE key = "
                                "'digest_key'").fetchone()[0] == 0


def test_an_old_store_has_its_key_moved_out_and_keeps_its_counts(tmp_path):
    import hashlib
    import hmac
    from callgate.store.records import key_path
    path = tmp_path / "calls.sqlite"
    with CallStore(path) as store:           # as before issue 16: the key in the file
        old_key = store.db.execute("SELECT value FROM store_meta WHERE key = "
                                   "'digest_key'").fetchone()[0]
        digest = hmac.new(old_key, b"customer:12345678", hashlib.sha256).digest()
        store.db.execute("INSERT INTO verify_failures (customer_key, number_key, "
                         "customer_masked, at) VALUES (?, NULL, '******78', 100.0)", (digest,))
    assert old_key in _raw(path) and not key_path(path).exists()
    with CallStore(path) as store:
        counter = AttemptCounter(store)
        assert counter.recent_failures("12345678", None, 86400, 101.0) == 1
        assert old_key not in _raw(path)     # a copy taken while it runs holds no key either
    assert key_path(path).read_bytes() == old_key
    assert old_key not in _raw(path)


def test_a_loose_digest_key_is_refused(tmp_path):
    from callgate.store.records import key_path
    path = tmp_path / "calls.sqlite"
    with CallStore(path) as store:
        AttemptCounter(store)
    os.chmod(key_path(path), 0o644)
    with CallStore(path) as store, pytest.raises(StoreError, match="0600 or tighter"):
        AttemptCounter(store)
