"""The recorder (store/recorder.py): the one writer of the call records, on its own thread.

Its promises: `submit` never blocks (a full queue drops and counts, logged once);
steps are committed in groups; a read through it sees every step handed over
before it; a kill -9 never loses a committed step and leaves a sound file. The
time a step takes to reach the disk is a figure for bench/recorder_speed.py,
not a test (it depends on the machine).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from callgate.call import LineState, Record
from callgate.privacy import mask
from callgate.store.records import CallStore
from callgate.store.recorder import Recorder

T0 = 1_700_000_000.0


def start(call_id: str, at: float = T0) -> Record:
    return Record("start", call_id, at, {"line": "line1", "service": "support", "started": at,
                                         "ani_masked": mask("2015550123")})


def update(call_id: str, **fields) -> Record:
    return Record("update", call_id, T0 + 1, fields)


def event(call_id: str, step: str) -> Record:
    return Record("event", call_id, T0 + 2, {"step": step, "detail": {"n": 1}})


@pytest.fixture()
def recorder(tmp_path):
    r = Recorder(tmp_path / "calls.sqlite", synchronous="NORMAL").start()
    yield r
    r.close()


def hold(recorder: Recorder) -> threading.Event:
    """Keep the recorder's thread busy (as a stuck disk would) until the event is set."""
    release, busy = threading.Event(), threading.Event()

    def stuck(store, counter):
        busy.set()
        release.wait(30)

    recorder.ask(stuck)
    assert busy.wait(30)
    return release


def test_steps_reach_the_store_and_a_query_sees_every_step_before_it(recorder, tmp_path):
    recorder.submit(start("c1"))
    recorder.submit(update("c1", lookup="hit", id_attempts=1))
    recorder.submit(event("c1", "lookup"))
    recorder.submit(LineState("line1", "in_flow", "security", "c1", T0 + 3))
    row = recorder.query(lambda store, counter: store.get("c1"))
    assert row["lookup"] == "hit" and row["id_attempts"] == 1
    assert recorder.flush()                                 # committed: others see it too
    assert recorder.stats.written == 4 and recorder.stats.dropped == 0
    with CallStore(tmp_path / "calls.sqlite") as other:       # another process's view
        assert [e["step"] for e in other.events("c1")] == ["lookup"]
        assert other.line_status()[0]["state"] == "in_flow"


def test_steps_waiting_together_are_committed_as_one_group(recorder):
    release = hold(recorder)
    for i in range(100):
        assert recorder.submit(start(f"c{i}"))
    commits = recorder.stats.commits
    release.set()
    assert recorder.flush()
    assert recorder.stats.written == 100
    assert recorder.stats.commits - commits <= 2     # one group (and the flush marker's)


def test_a_full_queue_drops_counts_and_logs_once_and_never_blocks(tmp_path, caplog):
    r = Recorder(tmp_path / "calls.sqlite", queue_steps=5).start()
    try:
        release = hold(r)
        with caplog.at_level(logging.ERROR, logger="callgate.store"):
            taken = [r.submit(start(f"c{i}")) for i in range(20)]
        assert taken == [True] * 5 + [False] * 15
        assert r.stats.dropped == 15
        assert caplog.text.count("queue full") == 1
        release.set()
        assert r.flush()
        assert r.stats.written == 5
    finally:
        r.close()


def test_the_attempt_counter_through_the_recorder_is_never_stale(recorder):
    """Lockout stays exact: each failure counted through the recorder is seen by the
    next read, with nothing waiting in between."""
    counter = recorder.counter
    for n in range(1, 4):
        assert counter.record_failure("12345678", "+12015550123", T0 + n, 86400) == n
        assert counter.recent_failures("12345678", None, 86400, T0 + n) == n
    assert counter.recent_failures("99999999", "+12015550123", 86400, T0 + 9) == 3


def test_a_step_the_store_refuses_is_counted_and_the_rest_of_its_group_kept(recorder,
                                                                            caplog):
    release = hold(recorder)
    recorder.submit(start("c1"))
    recorder.submit(update("c1", ani_masked="2015550123"))      # not masked: refused
    recorder.submit(update("c1", lookup="miss"))
    with caplog.at_level(logging.ERROR, logger="callgate.store"):
        release.set()
        row = recorder.query(lambda store, counter: store.get("c1"))
    assert row["lookup"] == "miss" and row["ani_masked"] == mask("2015550123")
    assert recorder.stats.refused == 1
    assert "2015550123" not in caplog.text


def test_ask_answers_without_waiting_and_a_stopped_recorder_fails_at_once(tmp_path):
    r = Recorder(tmp_path / "calls.sqlite").start()
    r.submit(start("c1"))
    future = r.ask(lambda store, counter: store.get("c1")["line"])
    assert future.result(30) == "line1"
    r.close()
    late = r.ask(lambda store, counter: 1)
    assert late.done() and late.exception() is not None


CHILD = textwrap.dedent("""
    import os, signal, sys
    from callgate.call import Record
    from callgate.store.recorder import Recorder
    r = Recorder(sys.argv[1]).start()
    fields = {"line": "line1", "service": "support", "started": 1.0, "ani_masked": None}
    r.submit(Record("start", "call-1", 1.0, fields))
    r.submit(Record("update", "call-1", 2.0, {"lookup": "miss", "id_attempts": 2}))
    r.submit(Record("event", "call-1", 2.0, {"step": "lookup", "detail": {}}))
    assert r.flush()
    print("committed", flush=True)
    # steps handed over just before the power goes: in flight, a group or none of it
    for i in range(50):
        r.submit(Record("start", f"late-{i}", 3.0, fields))
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_kill_9_never_loses_a_committed_step_and_leaves_a_sound_file(tmp_path):
    path = tmp_path / "calls.sqlite"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "committed"
    assert os.path.exists(f"{path}-wal")              # never closed cleanly
    with CallStore(path) as s:
        assert s.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        row = s.get("call-1")
        assert row["lookup"] == "miss" and row["id_attempts"] == 2
        assert [e["step"] for e in s.events("call-1")] == ["lookup"]
        late = s.db.execute("SELECT COUNT(*) FROM calls WHERE call_id LIKE 'late-%'").fetchone()
        assert late[0] in range(0, 51)               # whole groups only, never a torn row


def test_a_step_sqlite_cannot_bind_is_refused_alone_and_the_recorder_lives_on(recorder):
    """A CRM mapping that hands back a dict for a name: sqlite cannot bind it. Only that
    step is lost; another call's steps in the same group, and later groups, are kept."""
    release = hold(recorder)
    recorder.submit(start("c1"))
    recorder.submit(update("c1", customer_name={"first": "Jane"}))
    recorder.submit(start("c2"))
    release.set()
    assert recorder.flush()
    recorder.submit(update("c2", lookup="hit"))
    row = recorder.query(lambda store, counter: store.get("c2"))
    assert row["lookup"] == "hit" and recorder.running
    assert recorder.query(lambda store, counter: store.get("c1")) is not None
    assert recorder.stats.refused == 1 and recorder.stats.lost == 0
