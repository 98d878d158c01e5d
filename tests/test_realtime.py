"""The audio thread never waits on the disk: proved with a disk that stalls.

The fsync-stall shim (tests/helpers/fsync_stall.c, LD_PRELOADed) makes every
fsync and fdatasync of the child process sleep, as a worn SD card does, and
logs which thread asked. With the call records written by the recorder's own
thread, the audio thread (the process's main thread: tid == pid) asks for
none, and a call on a paced line (`simulate --realtime`: frames through a
capture buffer of 4 x 20 ms, lost when not taken in time) loses no frame.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fsync_stall import fsync_calls, fsync_stall_env

HERE = Path(__file__).parent
SCENARIO = HERE / "scenarios" / "barge_in_keyed_identifier.toml"
KEYED = 12                                   # 8 identifier digits + 4 PIN digits


def _cli(*args: str, env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callgate.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_no_fsync_on_the_audio_thread_during_callgate_run(tmp_path):
    """`callgate run` with the ID&V flow and a store at synchronous=FULL: the store's
    fsyncs all happen, on the recorder's thread, none on the audio thread."""
    directory = tmp_path / "directory.sqlite"
    subprocess.run([sys.executable, "-m", "callgate.cli", "directory", "import",
                    str(HERE / "fixtures" / "customers.csv"), "--db", str(directory)],
                   check=True, capture_output=True, timeout=120)
    config = tmp_path / "callgate.toml"
    config.write_text(f'[line]\nbackend = "sim"\n[crm]\ndirectory = "{directory}"\n'
                      f'[store]\npath = "{tmp_path / "calls.sqlite"}"\n'
                      '[[service]]\nname = "support"\n[service.transfer]\nagent = "201"\n')
    env = fsync_stall_env(tmp_path, ms=50)
    run = _cli("run", "--config", str(config), "--calls", "1", "--json", env=env)
    assert run.returncode == 0, run.stderr
    call = json.loads(run.stdout.splitlines()[0])
    assert call["transfer"]["outcome"] == "completed"
    calls = fsync_calls(env["FSYNC_STALL_LOG"])
    assert calls, "the store did not fsync at all: the shim saw nothing"
    on_audio_thread = [c for c in calls if c[0] == c[1]]
    assert on_audio_thread == []


STALL_MS = 1000
PERIODS, PERIOD_MS = 4, 20          # the paced line's capture ring (line/paced.py)
STALL_LOSS = (STALL_MS - PERIODS * PERIOD_MS) // PERIOD_MS
"""Periods one fsync on the audio thread would lose: 46. A busy test machine that
starves the process for a moment loses a few; a stall on the audio thread many more."""


def test_a_verified_call_at_real_speed_keeps_up_while_every_fsync_stalls(tmp_path):
    """The issue's proof: with 1 s fsync stalls a complete verified call under
    `callgate simulate --realtime` loses less audio than a single stall on the audio
    thread would (none on an idle machine), every key decoded, barge-in in its usual
    time, and the record complete on disk."""
    env = fsync_stall_env(tmp_path, ms=STALL_MS)
    keep = tmp_path / "kept"
    sim = _cli("simulate", "--realtime", "--keep", str(keep), str(SCENARIO), env=env)
    assert sim.returncode == 0, sim.stderr                   # every expectation held
    lines = [json.loads(x) for x in sim.stdout.splitlines()]
    by = {}
    for x in lines:
        by.setdefault(x["event"], []).append(x)
    pacing = by["pacing"][0]
    assert pacing["overruns"] < STALL_LOSS, pacing
    assert sum(k["count"] for k in by["keys"]) == KEYED
    barge = by["barge_in"][0]
    assert barge["prompt"] == "enter_identifier" and barge["after_ms"] <= 120
    # the recorder's fsyncs stalled (on its thread), and the record is on disk
    calls = fsync_calls(env["FSYNC_STALL_LOG"])
    writer = [c for c in calls if c[0] != c[1]]
    assert len(writer) >= 3
    from callgate.store.records import CallStore
    with CallStore(keep / "calls.sqlite") as store:
        row = store.recent()[0]
        steps = [e["step"] for e in store.events(row["call_id"])]
    assert row["status"] == "verified" and row["transfer_result"] == "completed"
    assert row["ended"] is not None and row["ended"] > row["started"]
    assert steps[-1] == "end"
    assert os.environ.get("LD_PRELOAD", "") == ""            # the shim stayed in the child


def test_sigterm_mid_call_on_a_paced_line_ends_the_call_cleanly(tmp_path):
    """systemd stops callgate while a caller is in the flow, on a paced line with a disk
    that stalls: the call is ended on hook and its record finished, STOPPING=1 is sent,
    the exit status is 0, and the audio thread asked for no fsync all along."""
    import signal
    import socket
    import time

    from callgate.store.records import CallStore

    directory = tmp_path / "directory.sqlite"
    subprocess.run([sys.executable, "-m", "callgate.cli", "directory", "import",
                    str(HERE / "fixtures" / "customers.csv"), "--db", str(directory)],
                   check=True, capture_output=True, timeout=120)
    store = tmp_path / "calls.sqlite"
    config = tmp_path / "callgate.toml"
    config.write_text(f'[engine]\nrings = 1\n[line]\nbackend = "sim"\n[line.sim]\n'
                      f'paced = true\n[crm]\ndirectory = "{directory}"\n'
                      f'[store]\npath = "{store}"\n'
                      '[[service]]\nname = "support"\n[service.transfer]\nagent = "201"\n')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(120)
    env = fsync_stall_env(tmp_path, ms=50)
    env["NOTIFY_SOCKET"] = str(tmp_path / "notify")
    proc = subprocess.Popen([sys.executable, "-m", "callgate.cli", "run", "--config",
                             str(config), "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert b"READY=1" in sock.recv(4096)
        deadline = time.monotonic() + 120               # a guard, not a measurement
        in_flow = False
        while not in_flow and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if store.exists():
                with CallStore(store) as s:
                    in_flow = any(r["state"] == "in_flow" for r in s.line_status())
        assert in_flow, "the call never reached the flow"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    messages = []
    sock.settimeout(5)
    try:
        while True:
            messages.append(sock.recv(4096))
    except OSError:
        pass
    assert any(b"STOPPING=1" in m for m in messages)
    call = json.loads(out.splitlines()[0])
    assert call["end_reason"] == "stopped"
    with CallStore(store) as s:
        row = s.recent()[0]
        steps = [e["step"] for e in s.events(row["call_id"])]
        assert row["ended"] is not None and steps[-1] == "end"
        assert s.line_status()[0]["state"] == "down"           # "callgate stopped"
    assert [c for c in fsync_calls(env["FSYNC_STALL_LOG"]) if c[0] == c[1]] == []
