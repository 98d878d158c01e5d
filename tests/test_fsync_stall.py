"""The fsync-stall shim itself: it stalls, it logs the right thread, it still syncs,
and it sees SQLite's own fsyncs, so tests built on it prove what they claim."""

import errno
import json
import subprocess
import sys
import textwrap

import pytest

from fsync_stall import fsync_calls, fsync_stall_env


def _child(code: str, env: dict) -> dict:
    """Run code in a fresh Python with env; it prints one JSON object as its last line."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_fsync_stalls_and_logs_the_main_thread(tmp_path):
    env = fsync_stall_env(tmp_path, ms=200)
    got = _child(f"""
        import json, os, time
        fd = os.open({str(tmp_path / "f")!r}, os.O_WRONLY | os.O_CREAT)
        os.write(fd, b"x")
        t0 = time.monotonic()
        os.fsync(fd)
        print(json.dumps({{"s": time.monotonic() - t0, "fd": fd, "pid": os.getpid()}}))
        """, env)
    assert got["s"] >= 0.200          # sleep is never shorter; no upper bound on a busy box
    assert fsync_calls(env["FSYNC_STALL_LOG"]) == [(got["pid"], got["pid"], got["fd"], 200)]


def test_other_threads_are_told_apart_and_fdatasync_is_caught(tmp_path):
    env = fsync_stall_env(tmp_path, ms=20)
    got = _child(f"""
        import json, os, threading
        fd = os.open({str(tmp_path / "f")!r}, os.O_WRONLY | os.O_CREAT)
        os.write(fd, b"x")
        tids = []
        def writer():
            tids.append(threading.get_native_id())
            os.fdatasync(fd)
        t = threading.Thread(target=writer)
        t.start(); t.join()
        print(json.dumps({{"tid": tids[0], "fd": fd, "pid": os.getpid()}}))
        """, env)
    assert got["tid"] != got["pid"]
    assert fsync_calls(env["FSYNC_STALL_LOG"]) == [(got["tid"], got["pid"], got["fd"], 20)]


def test_sync_file_range_is_caught(tmp_path):
    env = fsync_stall_env(tmp_path, ms=10)
    got = _child(f"""
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open({str(tmp_path / "f")!r}, os.O_WRONLY | os.O_CREAT)
        os.write(fd, b"x")
        rc = libc.sync_file_range(fd, ctypes.c_int64(0), ctypes.c_int64(0), 2)
        print(json.dumps({{"rc": rc, "fd": fd}}))
        """, env)
    assert got["rc"] == 0
    assert [c[2] for c in fsync_calls(env["FSYNC_STALL_LOG"])] == [got["fd"]]


def test_the_real_fsync_still_runs_and_its_error_comes_back(tmp_path):
    """A bad descriptor still fails with EBADF: the shim calls through and keeps errno."""
    env = fsync_stall_env(tmp_path, ms=0)
    got = _child("""
        import json, os
        try:
            os.fsync(987)
            err = None
        except OSError as e:
            err = e.errno
        print(json.dumps({"errno": err}))
        """, env)
    assert got["errno"] == errno.EBADF
    assert [c[2:] for c in fsync_calls(env["FSYNC_STALL_LOG"])] == [(987, 0)]


@pytest.mark.parametrize("sync", ["FULL", "NORMAL"])
def test_sqlite_wal_commits_sync_through_the_shim(tmp_path, sync):
    """SQLite's own fsyncs reach the shim: in WAL mode FULL syncs the WAL on every
    commit, NORMAL only at a checkpoint (here: none before the connection closes)."""
    env = fsync_stall_env(tmp_path, ms=100)
    got = _child(f"""
        import json, os, sqlite3, time
        def logged():
            log = os.environ["FSYNC_STALL_LOG"]
            return len(open(log).readlines()) if os.path.exists(log) else 0
        db = sqlite3.connect({str(tmp_path / "calls.sqlite")!r}, isolation_level=None)
        assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        db.execute("PRAGMA synchronous={sync}")
        db.execute("CREATE TABLE t (x)")
        before = logged()
        t0 = time.monotonic()
        db.execute("INSERT INTO t VALUES (1)")
        s = time.monotonic() - t0
        print(json.dumps({{"s": s, "before": before, "after": logged(), "pid": os.getpid()}}))
        """, env)
    calls = fsync_calls(env["FSYNC_STALL_LOG"])[got["before"]:got["after"]]
    if sync == "FULL":
        assert calls and all(c[:2] == (got["pid"], got["pid"]) for c in calls)
        assert got["s"] >= 0.100 * len(calls)
    else:
        assert calls == []
