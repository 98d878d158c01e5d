"""The device's state snapshot (telemetry/health.py), built from what the real engine, flow
and recorder wrote: each line's state and health, the back end's, the outbox, the board's.

Calls run through the real Engine with the ID&V flow and the real Recorder (its own
thread, as in `callgate run`) on the sim line; a line fault through the replay line
(its sidecar's line_fault/line_restored, as a modem reports them). The board's files
come from a fake sysfs tree (tmp_path) laid out as the kernel and the Pi firmware do.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from callgate.config import Table
from callgate.crm.base import Lookup
from callgate.crm.breaker import CircuitBreaker
from callgate.crm.failure import KINDS, failure_kind
from callgate.engine import Engine, EngineConfig
from callgate.flow import IdvFlow, policy_from_table
from callgate.line.replay import ReplayLine
from callgate.line.sim import Agent, CallerIdSpec, Press, SimCall, SimLine
from callgate.store.health import (LATENCY_BUCKETS_S, BackendProbe, bucket_label,
                                   read_backend_latency)
from callgate.store.outbox import Outbox
from callgate.store.recorder import Recorder
from callgate.store.records import CallStore
from callgate.telemetry.board import Board, disk_space
from callgate.telemetry.health import SCHEMA, device_state

JANE_PHONE, JANE_PIN, JANE_ID = "2015550123", "4271", "12345678"
NO_BOARD = Board("/nonexistent-board-root", vcgencmd="")


def policy():
    return policy_from_table(Table({"identifier": {"min_digits": 8, "max_digits": 8},
                                    "transfer": {"agent": "201", "mode": "supervised"}},
                                   "service.s"), "s")


def run_calls(line, crm, path, name="line1", probe=None):
    """The engine with the ID&V flow over `crm`, records through the real recorder."""
    recorder = Recorder(path, synchronous="NORMAL",
                        backend=probe or BackendProbe.of(crm)).start()
    infos = []
    try:
        Engine(line, IdvFlow(policy(), crm, counter=recorder.counter), EngineConfig(),
               name=name, on_call=infos.append, recorder=recorder).run()
    finally:
        recorder.close()
    return infos


def jane_verified():
    return SimCall(callerid=CallerIdSpec(number=JANE_PHONE),
                   script=[Press(JANE_PIN + "#", when="prompt_end", after_ms=700)],
                   agents={"201": Agent(answer_after_rings=1)})


def test_calls_through_the_real_engine_show_in_the_snapshot(directory, tmp_path):
    """Two callers with caller ID verified, one without caller ID who gives up ringing
    between them: 3 calls, caller ID on 2 of 3, the back end answered every request."""
    path = tmp_path / "calls.sqlite"
    later = jane_verified()
    later.gap_ms = 20000                       # well past the engine's abandon time
    line = SimLine([jane_verified(), SimCall(callerid=None, abandon_after_rings=1), later],
                   max_seconds=600)
    infos = run_calls(line, directory, path)
    assert [i.end_reason for i in infos] == ["transferred", "abandoned", "transferred"]

    state = device_state(path, board=NO_BOARD, now=2e9)
    assert state["schema"] == SCHEMA and state["at"] == 2e9
    (ln,) = state["lines"]
    assert ln["line"] == "line1" and ln["interface"] == "sim"
    assert ln["state"] == "down" and ln["step"] == "callgate stopped"    # run() returned
    assert ln["up"] is False and ln["modem_present"] is True and ln["fault"] is None
    assert ln["calls"] == 3
    assert ln["callerid"] == {"rang": 3, "received": 2, "window": 10}
    assert (ln["audio_faults"], ln["overruns"], ln["engine_faults"]) == (0, 0, 0)
    assert ln["running_since"] <= ln["updated"]
    backend = state["backend"]
    store = CallStore(path)
    try:
        rows = store.recent(status="verified")
        assert len(rows) == 2 and {r["backend_errors"] for r in rows} == {0}
        # one request per lookup and verify the flow waited on, as the trails say
        requests = len([e for r in rows for e in store.events(r["call_id"])
                        if e["step"] in ("lookup", "identifier", "verify")])
    finally:
        store.close()
    assert backend["name"] == "directory" and backend["requests"] == requests == 4
    assert backend["errors"] == 0 and backend["errors_by_kind"] == {}
    assert backend["last_success"] is not None and backend["last_error"] is None
    assert backend["breaker"] is None                     # the directory has no breaker
    assert state["outbox"] == {"pending": 0, "dead": 0, "oldest_pending_s": None}
    assert state["storage"]["free_bytes"] > 0
    assert state["storage"]["total_bytes"] >= state["storage"]["free_bytes"]
    # plain JSON, and no number, identifier or PIN anywhere in it
    text = json.dumps(state)
    assert json.loads(text) == state
    for secret in (JANE_PHONE, JANE_PIN, JANE_ID, "5550123"):
        assert secret not in text


class FailingCrm:
    """A back end whose every lookup fails as a connector reports a timeout, guarded by the
    real circuit breaker (opens after 2 failures; the cool-down is long)."""

    name = "rest"

    def __init__(self) -> None:
        self.breaker = CircuitBreaker(failures=2, cooldown=600.0)
        self.asked = 0

    def lookup_phone(self, e164):
        self.asked += 1
        if not self.breaker.allow():
            return Lookup("error", latency_ms=0.0,
                          error="circuit open after repeated failures")
        self.breaker.failure()
        return Lookup("error", latency_ms=3000.0, error="no answer within the 3 s budget")

    def lookup_identifier(self, kind, digits):
        return self.lookup_phone(digits)

    def verify(self, customer, kind, secret):
        raise AssertionError("never reached: no one is identified")


def test_back_end_failures_give_their_kinds_the_breaker_and_the_histogram(tmp_path):
    path = tmp_path / "calls.sqlite"
    crm = FailingCrm()
    calls = [SimCall(callerid=CallerIdSpec(number=JANE_PHONE),
                     agents={"201": Agent(answer_after_rings=1)}) for _ in range(3)]
    run_calls(SimLine(calls, max_seconds=600), crm, path)
    assert crm.asked == 3

    before = device_state(path, board=NO_BOARD)
    b = before["backend"]
    assert (b["name"], b["requests"], b["errors"]) == ("rest", 3, 3)
    assert b["errors_by_kind"] == {"timeout": 2, "circuit_open": 1}
    assert b["last_error_kind"] == "circuit_open" and b["last_success"] is None
    assert b["breaker"] == "open" and b["breaker_until"] > before["at"]
    # once the cool-down has passed, the stored "open" reads as half-open
    later = device_state(path, board=NO_BOARD, now=b["breaker_until"] + 1)
    assert later["backend"]["breaker"] == "half-open"
    assert later["backend"]["breaker_until"] is None

    db = sqlite3.connect(path)
    try:
        (hist,) = read_backend_latency(db).values()
    finally:
        db.close()
    # 2 requests of 3 s (the 3.0 bucket), 1 of 0 s (the first bucket); cumulative
    assert hist["count"] == 3 and hist["sum"] == pytest.approx(6.0)
    bounds = dict(hist["buckets"])
    assert bounds[repr(LATENCY_BUCKETS_S[0])] == 1
    assert bounds["2.0"] == 1 and bounds["3.0"] == 3 and bounds["+Inf"] == 3


def test_a_line_fault_shows_the_interface_gone_until_restored(directory, tmp_path):
    """The replay line reports the modem gone at 2 s and back at 9 s; the snapshot taken
    during the fault (the engine's watchdog, once a second) says so."""
    path = tmp_path / "calls.sqlite"
    rate = 8000
    line = ReplayLine(np.zeros(12 * rate, dtype=np.int16),
                      {"events": [{"t": 2.0, "event": "line_fault", "reason": "modem gone"},
                                  {"t": 9.0, "event": "line_restored"}]})
    recorder = Recorder(path, synchronous="NORMAL", backend=BackendProbe.of(directory)).start()
    seen = {}

    def look():
        recorder.flush()
        seen[line.sample // rate] = device_state(path, board=NO_BOARD)["lines"]

    try:
        Engine(line, IdvFlow(policy(), directory, counter=recorder.counter), EngineConfig(),
               name="fxo0", watchdog=look, recorder=recorder).run()
    finally:
        recorder.close()
    (during,) = seen[5]
    assert during["interface"] == "replay" and during["state"] == "down"
    assert during["modem_present"] is False and during["fault"] == "modem gone"
    assert during["up"] is False
    (after,) = seen[11]
    assert after["state"] == "idle" and after["modem_present"] is True and after["up"]
    assert after["fault"] is None


def test_the_outbox_depth_and_age(tmp_path):
    path = tmp_path / "calls.sqlite"
    store = CallStore(path)
    try:
        box = Outbox(store)
        first = box.enqueue("c1", {"x": 1}, at=1000.0)
        box.enqueue("c2", {"x": 2}, at=1100.0)
        dead = box.enqueue("c3", {"x": 3}, at=1200.0)
        box.dead(dead, 400, "HTTP 400")
        box.delivered(first, 200, at=1300.0)
    finally:
        store.close()
    assert device_state(path, board=NO_BOARD, now=1400.0)["outbox"] == {
        "pending": 1, "dead": 1, "oldest_pending_s": 300.0}


def test_no_store_yet_and_an_old_store_read_as_nothing_known(tmp_path):
    state = device_state(tmp_path / "none.sqlite", board=NO_BOARD)
    assert state["lines"] == [] and state["backend"] is None
    assert state["outbox"] == {"pending": 0, "dead": 0, "oldest_pending_s": None}
    assert state["storage"]["free_bytes"] > 0               # the folder's filesystem
    old = tmp_path / "old.sqlite"                           # a v2 store: line_status only
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE line_status (line TEXT PRIMARY KEY, state TEXT, step TEXT, "
               "call_id TEXT, since REAL, updated REAL)")
    db.execute("INSERT INTO line_status VALUES ('a', 'idle', NULL, NULL, 5.0, 6.0)")
    db.commit()
    db.close()
    (ln,) = device_state(old, board=NO_BOARD)["lines"]
    assert ln["state"] == "idle" and ln["up"] is True and ln["modem_present"] is None
    assert ln["callerid"] is None and ln["calls"] is None


# ---------------------------------------------------------------- the board


def fake_sysfs(root: Path, zones=(("acpitz", "31000"), ("cpu-thermal", "48312")),
               throttled: str | None = "50005\n", uptime="12345.67 40000.00\n") -> Path:
    """A board's /proc and /sys as the kernel lays them out (temps in millidegrees; the
    firmware's get_throttled in hex without 0x)."""
    for i, (kind, temp) in enumerate(zones):
        zone = root / f"sys/class/thermal/thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(temp + "\n")
    if throttled is not None:
        f = root / "sys/devices/platform/soc/soc:firmware/get_throttled"
        f.parent.mkdir(parents=True)
        f.write_text(throttled)
    (root / "proc").mkdir(parents=True)
    (root / "proc/uptime").write_text(uptime)
    return root


def test_a_pi_reports_temperature_throttling_and_uptime(tmp_path):
    board = Board(fake_sysfs(tmp_path / "pi"), vcgencmd="")
    assert board.cpu_temp_c() == 48.3                    # the cpu zone, not the first
    assert board.uptime_s() == 12345.7
    t = board.throttled()
    assert t["raw"] == 0x50005
    assert t["under_voltage"] and t["throttled"]
    assert not t["freq_capped"] and not t["soft_temp_limit"]
    assert t["under_voltage_since_boot"] and t["throttled_since_boot"]
    assert not t["freq_capped_since_boot"] and not t["soft_temp_limit_since_boot"]
    state = device_state(tmp_path / "calls.sqlite", board=board)
    assert state["uptime_s"] == 12345.7
    assert state["board"]["cpu_temp_c"] == 48.3 and state["board"]["throttled"]["raw"] == 0x50005


def test_a_board_that_reports_nothing_gives_none(tmp_path):
    root = tmp_path / "pc"
    root.mkdir()
    board = Board(root, vcgencmd="")
    assert board.cpu_temp_c() is None and board.throttled() is None
    assert board.uptime_s() is None
    other = Board(fake_sysfs(tmp_path / "x86", zones=(("x86_pkg_temp", "55000"),),
                             throttled=None), vcgencmd="")
    assert other.cpu_temp_c() == 55.0 and other.throttled() is None


def test_without_the_firmware_file_vcgencmd_is_asked(tmp_path):
    fake_vcgencmd = tmp_path / "fake_vcgencmd"
    fake_vcgencmd.write_text('#!/bin/sh\n[ "$1" = get_throttled ] && echo throttled=0x80000\n')
    fake_vcgencmd.chmod(stat.S_IRWXU)
    board = Board(fake_sysfs(tmp_path / "pi", throttled=None), vcgencmd=str(fake_vcgencmd))
    t = board.throttled()
    assert t["raw"] == 0x80000 and t["soft_temp_limit_since_boot"] and not t["throttled"]
    broken = tmp_path / "fake_vcgencmd_broken"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(stat.S_IRWXU)
    assert Board(tmp_path / "pi", vcgencmd=str(broken)).throttled() is None


def test_free_space_is_of_the_partition_holding_the_data(tmp_path):
    got = disk_space(tmp_path / "not-yet" / "made")
    st = os.statvfs(tmp_path)
    assert got["total_bytes"] == st.f_blocks * st.f_frsize
    assert 0 < got["free_bytes"] <= got["total_bytes"]


# ---------------------------------------------------------------- kinds and buckets


@pytest.mark.parametrize("text, kind", [
    ("no answer within the 3 s budget", "timeout"),
    ("no answer within the 3 s budget (HTTP 503)", "timeout"),
    ("timeout", "timeout"),                                  # the flow's own limit
    ("connect timed out", "timeout"),
    ("circuit open after repeated failures", "circuit_open"),
    ("TLS handshake failed (certificate not trusted or invalid)", "tls"),
    ("connection failed (refused)", "connection"),
    ("connection failed (host not found)", "connection"),
    ("response broken off (ChunkedEncodingError)", "connection"),
    ("HTTP 401", "auth"), ("HTTP 403 after 2 attempts", "auth"),
    ("oauth2 token endpoint answered HTTP 400 (invalid_grant)", "auth"),
    ("oauth2 token endpoint sent no access_token", "auth"),
    ("HTTP 429 rate limited", "rate_limited"),
    ("HTTP 503; retry-after 5 s exceeds the budget", "http_5xx"),
    ("HTTP 500 after 3 attempts", "http_5xx"),
    ("HTTP 404: customer not found at verify", "http_4xx"),
    ("malformed JSON in response", "malformed"),
    ("response is text/html, not JSON", "malformed"),
    ("HTTP 200 with an empty body", "malformed"),
    ("HTTP 302: redirects are not followed", "config"),
    ("no field configured for identifier kind 'acct' (crm.identifier_fields)", "config"),
    ("directory: database is locked", "store"),
    ("ValueError in work", "other"),
])
def test_a_connector_error_has_one_kind(text, kind):
    assert failure_kind(text) == kind and kind in KINDS


def test_no_error_has_no_kind():
    assert failure_kind(None) is None


def test_bucket_labels_are_prometheus_upper_bounds():
    assert bucket_label(0.0) == "0.05" and bucket_label(0.05) == "0.05"
    assert bucket_label(0.051) == "0.1" and bucket_label(3.0) == "3.0"
    assert bucket_label(10.5) == "+Inf"
