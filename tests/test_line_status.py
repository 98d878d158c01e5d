"""Live line status: each line's state in the store's line_status table, as the engine
and the ID&V flow go (idle, ringing, in_flow at a step, transferring, down).

Through the real Engine with the ID&V flow, the embedded directory and a real call
store; the sim line for calls, the replay line (sidecar line_fault/line_restored
events, as a modem or the HAT reports them) for a line that fails.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from callgate.config import Table
from callgate.engine import Engine, EngineConfig, ScriptedHandler
from callgate.flow import IdvFlow, policy_from_table
from callgate.line.replay import ReplayLine
from callgate.line.sim import Agent, CallerIdSpec, Clear, Press, SimCall, SimLine
from callgate.store.recorder import Recorder
from callgate.store.records import AttemptCounter, CallStore
from steps import StepsToStore

FIXTURES = Path(__file__).parent / "fixtures"
JANE_PHONE, JANE_PIN = "2015550123", "4271"


class WatchedStore(CallStore):
    """A real call store that also keeps every line status written, in order."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.states = []

    def set_line_status(self, line, state, step=None, call_id=None, at=None):
        super().set_line_status(line, state, step, call_id, at)
        self.states.append((line, state, step, call_id))


@pytest.fixture()
def store(tmp_path):
    s = WatchedStore(tmp_path / "calls.sqlite", synchronous="NORMAL")
    yield s
    s.close()


def flow(directory, store, mode="supervised", counter=None):
    p = policy_from_table(Table({"identifier": {"min_digits": 8, "max_digits": 8},
                                 "transfer": {"agent": "201", "mode": mode}},
                                "service.s"), "s")
    return IdvFlow(p, directory, counter=counter or AttemptCounter(store))


def compact(states):
    return [(state, step) for _line, state, step, _call in states]


STOPPED = ("down", "callgate stopped")      # the engine's line_down when run() returns


def test_a_call_walks_idle_ringing_each_step_transferring_idle(directory, store):
    calls = [SimCall(callerid=CallerIdSpec(number=JANE_PHONE),
                     script=[Press(JANE_PIN + "#", when="prompt_end", after_ms=700)],
                     agents={"201": Agent(answer_after_rings=1)})]
    line = SimLine(calls, max_seconds=300)
    infos, after_call = [], []

    def ended(info):      # what the status page reads once the call is over
        infos.append(info)
        after_call.extend(store.line_status())

    Engine(line, flow(directory, store), EngineConfig(), name="line1",
           on_call=ended, recorder=StepsToStore(store)).run()
    assert infos[0].end_reason == "transferred"
    seen = compact(store.states)
    assert seen[:2] == [("idle", None), ("ringing", None)]
    flow_steps = [step for state, step in seen if state == "in_flow"]
    assert flow_steps[:4] == ["lookup_number", "security", "verify", "transfer"]
    i = seen.index(("transferring", None))
    assert seen[i - 1] == ("in_flow", "transfer") and seen[-2:] == [("idle", None), STOPPED]
    # written only on change: never the same state twice in a row
    assert all(a != b for a, b in zip(store.states, store.states[1:]))
    assert {line for line, *_ in store.states} == {"line1"}
    # the call's record id is given while in flow, none when idle or ringing
    record_id = store.recent()[0]["call_id"]
    assert {c for _l, s, _st, c in store.states if s in ("in_flow", "transferring")} == {
        record_id}
    (row,) = after_call
    assert row["line"] == "line1" and row["state"] == "idle" and row["call_id"] is None
    (row,) = store.line_status()                     # the engine stopped: the line is down
    assert (row["state"], row["step"], row["call_id"]) == (*STOPPED, None)


def test_an_unanswered_call_rings_then_the_line_is_idle_again(directory, store):
    calls = [SimCall(abandon_after_rings=1)]
    line = SimLine(calls, max_seconds=60)
    Engine(line, flow(directory, store), EngineConfig(rings=3),
           recorder=StepsToStore(store)).run()
    assert compact(store.states) == [("idle", None), ("ringing", None), ("idle", None),
                                     STOPPED]
    assert store.recent() == []                     # no record: never answered


def test_a_busy_agent_puts_the_line_back_in_flow_until_the_goodbye(directory, store):
    calls = [SimCall(callerid=CallerIdSpec(number=JANE_PHONE),
                     script=[Press(JANE_PIN + "#", when="prompt_end", after_ms=700),
                             Clear("cpc", after_ms=60000)],
                     agents={"201": Agent(busy=True)})]
    line = SimLine(calls, max_seconds=300)
    Engine(line, flow(directory, store), EngineConfig(), recorder=StepsToStore(store)).run()
    seen = compact(store.states)
    i = seen.index(("transferring", None))
    assert seen[i + 1] == ("in_flow", "agent_unavailable")
    assert seen[-2:] == [("idle", None), STOPPED]


def test_a_line_fault_shows_down_until_the_line_is_restored(directory, store, tmp_path):
    rate = 8000
    audio = np.zeros(20 * rate, dtype=np.int16)
    events = {"events": [{"t": 2.0, "event": "line_fault", "reason": "modem gone"},
                         {"t": 9.0, "event": "line_restored"}]}
    line = ReplayLine(audio, events)
    seen_at = {}

    def look():          # every 50 frames (1 s): what the status page would read now
        row = store.line_status()
        seen_at[line.sample // rate] = (row[0]["state"], row[0]["step"]) if row else None

    Engine(line, flow(directory, store), EngineConfig(), name="fxo0", watchdog=look,
           recorder=StepsToStore(store)).run()
    assert compact(store.states) == [("idle", None), ("down", "modem gone"), ("idle", None),
                                     STOPPED]
    assert seen_at[1] == ("idle", None) and seen_at[5] == ("down", "modem gone")
    assert seen_at[15] == ("idle", None)


def test_a_fault_during_a_call_keeps_the_line_down_after_the_call_ends(directory, store):
    """The call ends (the line failed) and its record says so, but the line shows down,
    not idle, until the line is restored."""
    rate = 8000
    audio = np.zeros(30 * rate, dtype=np.int16)
    events = {"capabilities": {"loop_current": True},
              "events": [{"t": 1.0, "event": "ring_start"}, {"t": 3.0, "event": "ring_stop"},
                         {"t": 7.0, "event": "ring_start"}, {"t": 9.0, "event": "ring_stop"},
                         {"t": 14.0, "event": "line_fault", "reason": "audio device lost"},
                         {"t": 20.0, "event": "line_restored"}]}
    line = ReplayLine(audio, events)
    infos = []
    Engine(line, flow(directory, store), EngineConfig(rings=2), name="hat",
           on_call=infos.append, recorder=StepsToStore(store)).run()
    assert infos[0].end_reason == "fault"
    seen = compact(store.states)
    assert seen[:2] == [("idle", None), ("ringing", None)]
    assert ("in_flow", "identifier") in seen          # no caller ID: asked for the id
    assert seen[-3:] == [("down", "audio device lost"), ("idle", None), STOPPED]
    assert store.recent()[0]["hangup_step"] == "identifier"


def test_a_failing_status_table_never_costs_the_caller_the_call(directory, store, caplog):
    """The status table is gone: the real recorder (its own thread, as in `run`) refuses
    each line status step, counts and logs it; the call and its record go on."""
    store.db.execute("DROP TABLE line_status")
    calls = [SimCall(callerid=CallerIdSpec(number=JANE_PHONE),
                     script=[Press(JANE_PIN + "#", when="prompt_end", after_ms=700)],
                     agents={"201": Agent(answer_after_rings=1)})]
    line = SimLine(calls, max_seconds=300)
    infos = []
    recorder = Recorder(store.path, synchronous="NORMAL").start()
    f = flow(directory, store, counter=recorder.counter)       # as `run`: via the recorder
    try:
        with caplog.at_level(logging.ERROR):
            Engine(line, f, EngineConfig(), on_call=infos.append, recorder=recorder).run()
    finally:
        recorder.close()
    assert infos[0].end_reason == "transferred" and line.outcomes[0].transferred_to == "201"
    assert store.recent()[0]["status"] == "verified"
    stats = recorder.stats
    assert stats.refused >= 3 and stats.lost == 0 and stats.dropped == 0
    assert stats.written + stats.refused == stats.submitted
    assert "line status not written (OperationalError)" in caplog.text
    assert JANE_PIN not in caplog.text


def test_a_handler_without_the_hooks_needs_nothing(tmp_path):
    """The scripted handler has no status hooks: the engine runs it as before."""
    line = SimLine([SimCall(script=[Press("4271#"), Clear("cpc", after_ms=8000)])],
                   max_seconds=60)
    handler = ScriptedHandler()
    Engine(line, handler, EngineConfig()).run()
    assert handler.calls[0].transfer.outcome == "completed"


def test_a_hook_that_raises_costs_a_log_line_not_the_call(directory, store, caplog):
    class Broken(IdvFlow):
        def ringing(self, call):
            raise RuntimeError("status bug 12345678")

    p = policy_from_table(Table({"transfer": {"agent": "201"}}, "service.s"), "s")
    calls = [SimCall(callerid=CallerIdSpec(number=JANE_PHONE),
                     script=[Press(JANE_PIN + "#", when="prompt_end", after_ms=700)],
                     agents={"201": Agent()})]
    line = SimLine(calls, max_seconds=300)
    infos = []
    with caplog.at_level(logging.ERROR, logger="callgate.engine"):
        Engine(line, Broken(p, directory, counter=AttemptCounter(store)), EngineConfig(),
               on_call=infos.append, recorder=StepsToStore(store)).run()
    assert infos[0].end_reason == "transferred"
    assert "handler hook ringing failed (RuntimeError at" in caplog.text
    assert "12345678" not in caplog.text


def test_callgate_run_publishes_the_line_and_marks_it_down_when_it_stops(tmp_path, capsys):
    from callgate import cli

    db, calls = tmp_path / "directory.sqlite", tmp_path / "calls.sqlite"
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"), "--db", str(db)]) == 0
    config = tmp_path / "callgate.toml"
    config.write_text(f'[line]\nbackend = "sim"\n[crm]\ndirectory = "{db}"\n'
                      f'[store]\npath = "{calls}"\n[[service]]\nname = "support"\n'
                      '[service.transfer]\nagent = "201"\n')
    assert cli.main(["run", "--config", str(config)]) == 0
    with CallStore(calls) as store:
        (row,) = store.line_status()
        assert row["line"] == "line" and row["state"] == "down"
        assert row["step"] == "callgate stopped"
        assert store.recent()[0]["status"] == "verified"
