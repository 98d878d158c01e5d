"""What the engine and the flow do with what a voice modem reports (issue 17 items 3, 4, 8).

The line here is the engine tests' scripted fake; the modem's own behaviour (what
it prints and when) is in tests/test_line_modem.py against tests/fake_modem.py.
"""

from __future__ import annotations

from callgate.call import Collect, Digits, HangUp, Play
from callgate.config import ConfigError, Table
from callgate.dsp.dtmf import DtmfEvent, dtmf_tx
from callgate.dsp.events import CallerIdEvent
from callgate.engine import Engine, EngineConfig
from callgate.flow import load_services, service_for_line
from callgate.line import RingStart

import pytest

from test_engine_units import MS, FakeScriptedLine, RecordingHandler, prompts  # noqa: F401

CID_AFTER_RING_2_MS = 6000 + 2600          # between ring 2 (6.0 s) and ring 3 (12.0 s)


def test_caller_id_printed_after_ring_two_is_waited_for(prompts):  # noqa: F811
    """Issue 17 item 3: NCID's modem comments: caller ID can come "anytime between 0 and 2
    rings"; with rings = "auto" the engine answered at ring 2 and lost it."""
    line = FakeScriptedLine(16)
    line.ring(2000, 4000, 3)
    line.events.append(CallerIdEvent(CID_AFTER_RING_2_MS * MS, "MODEM", "2015550123",
                                     checksum_ok=True))
    calls = []
    Engine(line, RecordingHandler([HangUp()]), prompts=prompts, on_call=calls.append).run()
    (call,) = calls
    assert call.rings == 3 and call.callerid is not None
    assert call.callerid.number == "2015550123"
    assert call.answered_at >= 12000 * MS


def _keys_call(prompts, reported, audio_keys):  # noqa: F811
    line = FakeScriptedLine(14)
    line.ring(2000, 4000, 2)
    for at_ms, digit in audio_keys:
        line.put(at_ms, dtmf_tx(digit, -9.0, on_ms=90, off_ms=10))
    line.events += [DtmfEvent(at_ms * MS, digit=d) for at_ms, d in reported]
    handler = RecordingHandler([Play("welcome"), Collect()], {"Digits": [HangUp()]})
    Engine(line, handler, EngineConfig(rings=2), prompts=prompts).run()
    return [e.digits for e in handler.events if isinstance(e, Digits)]


def test_keys_the_modem_reports_are_keys(prompts):  # noqa: F811
    """Issue 17 item 4: while a half-duplex modem plays a prompt it sends no audio back,
    only <DLE> key reports (USRobotics reference, Table 6-2): they are the keys."""
    assert _keys_call(prompts, [(7000, "4"), (7300, "2"), (7600, "#")], []) == ["42"]


def test_a_key_heard_by_both_the_modem_and_our_detector_counts_once(prompts):  # noqa: F811
    """In full duplex the Conexant part reports the key (<DLE>4) and the audio carries its
    tone: one key, whichever comes first; two quick presses of one key stay two."""
    audio = [(7000, "4"), (7300, "4"), (7600, "#")]
    assert _keys_call(prompts, [], audio) == ["44"]          # our detector hears each press
    reported = [(7040, "4"), (7340, "4"), (7640, "#")]        # a detection's lag after onset
    assert _keys_call(prompts, reported, audio) == ["44"]
    early = [(6990, "4"), (7290, "4"), (7590, "#")]          # a report ahead of our detector
    assert _keys_call(prompts, early, audio) == ["44"]


def test_distinctive_ring_reaches_the_call_record(prompts):  # noqa: F811
    line = FakeScriptedLine(14)
    line.events += [RingStart(0, pattern="B"), RingStart(6000 * MS, pattern="B")]
    calls = []
    Engine(line, RecordingHandler([HangUp()]), EngineConfig(rings=2), prompts=prompts,
           on_call=calls.append).run()
    assert calls[0].ring_pattern == "B" and calls[0].summary()["ring_pattern"] == "B"


def test_service_line_chosen_by_distinctive_ring():
    """Issue 17 item 8: a second number on the same line rings its own pattern (+VDR,
    RING B) and is its own service line; others go to the plain one."""
    services = load_services(Table({"service": [
        {"name": "sales"},
        {"name": "support", "ring_patterns": ["B", "DRON=8"]},
    ]}))
    assert service_for_line(services, "line", "B").name == "support"
    assert service_for_line(services, "line", "DRON=8").name == "support"
    assert service_for_line(services, "line", "A").name == "sales"
    assert service_for_line(services, "line", None).name == "sales"
    # DRON= is a measured burst length (100 ms steps): 0.8 s reads 7, 8 or 9, not 6 or 20
    assert [service_for_line(services, "line", f"DRON={n}").name
            for n in (6, 7, 9, 20)] == ["sales", "support", "support", "sales"]
    with pytest.raises(ConfigError, match=r"service\[0\]\.x\.ring_patterns|ring_patterns"):
        load_services(Table({"service": [{"name": "x", "ring_patterns": "B"}]}))


def test_the_app_gives_each_call_the_service_of_its_ring(tmp_path, directory):
    from callgate.app import App
    from callgate.call import CallInfo
    from callgate.line.sim import SimLine

    services = load_services(Table({"service": [
        {"name": "sales", "transfer": {"agent": "201"}},
        {"name": "support", "ring_patterns": ["B"], "transfer": {"agent": "202"}},
    ]}))
    app = App(SimLine([]), EngineConfig(), policy=services[0], crm=directory,
              store=tmp_path / "calls.sqlite", services=services)
    with app:
        app.flow.start(CallInfo(1, "line", 0, ring_pattern="B"))
        assert app.flow.policy.name == "support"
        app.flow.start(CallInfo(2, "line", 0))
        assert app.flow.policy.name == "sales"
