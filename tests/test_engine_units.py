"""The engine's parts on their own, and the engine on a tiny fake line.

The end-to-end behaviour (every hang-up, transfers, call waiting...) is
tested through the simulated exchange in test_engine_sim.py; here each part
is pinned down where it is easiest to see: ring counting, digit collection,
hang-up signals, work on the sample clock, handler failures.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from callgate.config import ConfigError, Table
from callgate.dsp.events import CallerIdEvent
from callgate.dsp.dtmf import dtmf_tx
from callgate.call import (CallerHungUp, Collect, Digits, Handler, HangUp, Play, PromptDone, Work,
                           WorkDone)
from callgate.engine import Engine, EngineConfig
from callgate.engine.collect import Collector
from callgate.engine.hangup import HangupDetector
from callgate.engine.prompts import PromptSet
from callgate.toneplans import load_toneplan
from callgate.engine.ring import Abandoned, Ring, RingCounter, ring_cadence
from callgate.engine.work import WorkRunner
from callgate.line.base import (Capabilities, FlashDone, Frame, Line, LineFault, LineTone,
                                LoopCurrent, PolarityReversal, RingStart, RingStop)

MS = 8


# ---------------------------------------------------------------- a fake line


class FakeScriptedLine(Line):
    """A fake line for unit tests: events and audio placed at given samples.

    It rings only if told to, never echoes, and records what was written and
    when the hook moved. Hook changes take effect from the next frame, as the
    interface says.
    """

    capabilities = Capabilities(loop_current=True, polarity=True, onhook_audio=True)

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.total = int(seconds * 8000)
        self.events: list = []
        self.audio = np.zeros(self.total, np.int16)
        self.written = np.zeros(self.total + 160, np.int16)
        self.hook_log: list[tuple[int, str]] = []
        self.country = "us"

    def ring(self, on_ms: int, off_ms: int, count: int, start_ms: int = 0) -> None:
        t = start_ms
        for _ in range(count):
            self.events += [RingStart(t * MS), RingStop((t + on_ms) * MS)]
            t += on_ms + off_ms

    def put(self, at_ms: int, samples: np.ndarray) -> None:
        a = at_ms * MS
        self.audio[a:a + len(samples)] += samples

    def read(self) -> Frame | None:
        s = self._sample
        if s >= self.total:
            return None
        e = s + self.frame_samples
        self._sample = e
        evs = sorted((ev for ev in self.events if s <= ev.sample < e), key=lambda ev: ev.sample)
        return Frame(s, self.audio[s:e].copy(), evs)

    def write(self, samples) -> None:
        if self._off_hook:
            s = self._sample
            self.written[s:s + len(samples)] = samples

    def off_hook(self) -> None:
        self._off_hook = True
        self.hook_log.append((self._sample, "off"))

    def on_hook(self) -> None:
        self._off_hook = False
        self.hook_log.append((self._sample, "on"))

    def flash(self, ms: float) -> None:
        self.hook_log.append((self._sample, "flash"))
        self.events.append(FlashDone(self._sample + int(ms * MS)))


class RecordingHandler(Handler):
    """Plays what it is told to at start, records every event."""

    prompts_needed = ()

    def __init__(self, first=None, replies=None) -> None:
        self.first = first or []
        self.replies = replies or {}
        self.events: list = []
        self.ended = []

    def start(self, call):
        return list(self.first)

    def on_event(self, event):
        self.events.append(event)
        reply = self.replies.get(type(event).__name__)
        return reply(event) if callable(reply) else list(reply or [])

    def end(self, call):
        self.ended.append(call)


@pytest.fixture(scope="module")
def prompts():
    return PromptSet("en")


def cid_event(sample: int) -> CallerIdEvent:
    return CallerIdEvent(sample, "MDMF", "2015550123", "JANE SMITH", "11231000",
                         checksum_ok=True)


# ---------------------------------------------------------------- ring counting


def run_rings(events, until_ms, **kw):
    rc = RingCounter((2000, 4000), **kw)
    out, pending = [], sorted(events, key=lambda e: e.sample)
    for start in range(0, until_ms * MS, 160):
        while pending and pending[0].sample < start + 160:
            rc.event(pending.pop(0))
        out += rc.poll(start + 160)
    return out, rc


def test_rings_counted_during_the_burst_and_blips_ignored():
    evs = [RingStart(0), RingStop(2000 * MS),               # ring 1
           RingStart(3000 * MS), RingStop(3050 * MS),       # 50 ms blip: noise
           RingStart(6000 * MS), RingStop(8000 * MS)]       # ring 2
    out, rc = run_rings(evs, 9000)
    rings = [o for o in out if isinstance(o, Ring)]
    assert [r.number for r in rings] == [1, 2]
    assert rings[0].sample == 0 and rings[1].sample == 6000 * MS
    assert rc.blips == 1


def test_chatter_and_dropouts_do_not_split_a_ring():
    evs = [RingStart(0), RingStop(500 * MS), RingStart(540 * MS),   # 40 ms chatter
           RingStop(1200 * MS), RingStart(1500 * MS), RingStop(2000 * MS)]   # 300 ms dropout
    out, _ = run_rings(evs, 3000)
    assert [o.number for o in out if isinstance(o, Ring)] == [1]


def test_uk_double_ring_is_one_ring():
    cadence = ring_cadence(load_toneplan("uk"))
    assert cadence == (400, 200, 400, 2000)
    rc = RingCounter(cadence)
    evs = []
    for k in range(3):
        t = k * 3000
        evs += [RingStart(t * MS), RingStop((t + 400) * MS), RingStart((t + 600) * MS),
                RingStop((t + 1000) * MS)]
    got = []
    for start in range(0, 9000 * MS, 160):
        for ev in [e for e in evs if start <= e.sample < start + 160]:
            rc.event(ev)
        got += rc.poll(start + 160)
    assert [g.number for g in got if isinstance(g, Ring)] == [1, 2, 3]


def test_abandoned_after_8_s_without_a_ring_and_noise_never_starts_a_call():
    out, _ = run_rings([RingStart(0), RingStop(2000 * MS)], 12000)
    ab = [o for o in out if isinstance(o, Abandoned)]
    assert len(ab) == 1 and 9990 * MS <= ab[0].sample <= 10030 * MS
    noise = []
    for k in range(20):
        noise += [RingStart(k * 400 * MS), RingStop((k * 400 + 30) * MS)]
    out, rc = run_rings(noise, 10000)
    assert out == [] and rc.blips == 20


def test_start_only_backend_counts_each_ring_start():
    out, _ = run_rings([RingStart(0), RingStart(6000 * MS), RingStart(12000 * MS)], 13000)
    assert [o.number for o in out if isinstance(o, Ring)] == [1, 2, 3]


# ---------------------------------------------------------------- digit collection


def keys(col: Collector, seq):
    for digit, ms in seq:
        done = col.key(digit, ms * MS)
        if done:
            return done
    return None


def test_collect_terminator_clear_max_and_timeouts():
    c = Collector(Collect(min_digits=4, max_digits=8), 0)
    done = keys(c, [("1", 100), ("2", 200), ("*", 300), ("4", 400), ("2", 500), ("7", 600),
                    ("1", 700), ("#", 800)])
    assert (done.digits, done.reason, done.complete) == ("4271", "terminator", True)
    c = Collector(Collect(max_digits=3), 0)
    assert keys(c, [("5", 10), ("6", 20), ("7", 30)]).reason == "max"
    c = Collector(Collect(first_timeout_ms=5000), 0)
    assert c.poll(4999 * MS) is None
    assert c.poll(5000 * MS).reason == "no_input"
    c = Collector(Collect(min_digits=4, inter_timeout_ms=3000), 0)
    keys(c, [("9", 1000), ("8", 2000)])
    assert c.poll(4999 * MS) is None
    d = c.poll(5000 * MS)
    assert (d.digits, d.reason, d.complete) == ("98", "timeout", False)
    assert "98" not in repr(d)                  # keyed digits never show in a log line


def test_star_first_is_the_opt_out_and_after_digits_clears():
    """Issue 15: with the opt-out and the clear key both "*"."""
    spec = Collect(min_digits=4, max_digits=16, clear="*", opt_out="*", overflow=True)
    done = keys(Collector(spec, 0), [("*", 100)])
    assert (done.digits, done.reason) == ("*", "opt_out")
    done = keys(Collector(spec, 0), [(k, 100 + i * 100) for i, k in enumerate("8100*81000017#")])
    assert (done.digits, done.reason, done.complete) == ("81000017", "terminator", True)
    pin = Collect(min_digits=4, max_digits=4, clear="*", opt_out="*")
    done = keys(Collector(pin, 0), [(k, 100 + i * 100) for i, k in enumerate("39*3917")])
    assert (done.digits, done.reason) == ("3917", "max")
    no_opt_out = Collect(min_digits=4, max_digits=8, clear="*")
    assert keys(Collector(no_opt_out, 0), [("*", 100)]) is None       # just a clear


def test_star_on_an_empty_entry_opts_out_even_after_a_clear():
    """`1**`: the first `*` clears the 1, the second finds nothing keyed: the opt-out
    (as README says: `*` with nothing keyed in the entry)."""
    spec = Collect(min_digits=4, max_digits=16, clear="*", opt_out="*", overflow=True)
    done = keys(Collector(spec, 0), [("1", 100), ("*", 200), ("*", 300)])
    assert done is not None and (done.digits, done.reason) == ("*", "opt_out")
    done = keys(Collector(spec, 0), [("1", 100), ("*", 200), ("2", 300), ("*", 400),
                                     ("3", 500), ("#", 600)])
    assert (done.digits, done.reason) == ("3", "terminator")


def test_an_over_long_entry_is_one_try_with_its_keys_thrown_away():
    """Issue 15: 30 digits then "#" is one "too_long" entry, no digits kept; without the
    terminator it ends at the inter-digit timeout; exactly the maximum is still fine."""
    spec = Collect(min_digits=4, max_digits=16, inter_timeout_ms=3000, overflow=True)
    c = Collector(spec, 0)
    assert keys(c, [("1", 100 + i * 100) for i in range(30)]) is None
    done = c.key("#", 3200 * MS)
    assert (done.digits, done.reason, done.complete) == ("", "too_long", False)
    c = Collector(spec, 0)
    keys(c, [("2", 100 + i * 100) for i in range(20)])
    assert c.poll(2000 * MS + 2999 * MS) is None             # still keying: same entry
    assert c.poll(2000 * MS + 3000 * MS).reason == "too_long"
    c = Collector(spec, 0)
    keys(c, [("3", 100 + i * 100) for i in range(16)])
    done = c.key("#", 1800 * MS)
    assert (done.digits, done.reason) == ("3" * 16, "terminator")
    c = Collector(spec, 0)
    keys(c, [("4", 100 + i * 100) for i in range(16)])
    assert c.poll(1600 * MS + 3000 * MS).digits == "4" * 16   # the timeout ends it too


def test_typeahead_keys_time_from_the_start_of_collection():
    c = Collector(Collect(inter_timeout_ms=3000), 10000 * MS)
    c.key("4", 1000 * MS)                       # keyed long before, during a prompt
    assert c.poll(12999 * MS) is None and c.poll(13000 * MS).reason == "timeout"


# ---------------------------------------------------------------- hang-up signals


def test_cpc_needs_the_configured_drop():
    h = HangupDetector(cpc_ms=250)
    assert h.line_event(LoopCurrent(0, present=False)) is None
    assert h.line_event(LoopCurrent(200 * MS, present=True)) is None and h.blips == 1
    assert h.poll(1000 * MS, False, False) is None
    h.line_event(LoopCurrent(2000 * MS, present=False))
    assert h.poll(2249 * MS, False, False) is None
    assert h.poll(2250 * MS, False, False) == "cpc"


def test_other_hangup_signals_and_pause_during_flash():
    h = HangupDetector(silence_ms=30000)
    assert h.line_event(PolarityReversal(5)) == "polarity"
    assert h.line_event(LineTone(5, tone="busy")) == "busy"
    assert h.tone("reorder") == "reorder" and h.tone("unobtainable") == "reorder"
    assert h.tone("dial") == "dial" and h.tone("ringback") is None
    assert h.line_event(LineFault(5, reason="x")) == "fault"
    h.pause(True)
    assert h.line_event(PolarityReversal(5)) is None
    assert h.line_event(LoopCurrent(5, present=False)) is None and h.poll(10**6, True, False) is None
    h.pause(False)
    t = 0
    while (got := h.poll(t, True, False)) is None and t < 40000 * MS:
        t += 160
    assert got == "silence" and abs(t - 30000 * MS) <= 160
    h.reset(0)
    assert all(h.poll(k * 160, True, True) is None for k in range(2000))   # we are talking


# ---------------------------------------------------------------- work


def test_work_on_the_sample_clock_and_errors_without_their_message():
    w = WorkRunner(paced=False)
    w.start(Work("crm", lambda: {"ok": 1}, simulated_latency_ms=700), 1000)
    w.start(Work("bad", lambda: 1 / 0, simulated_latency_ms=0), 1000)
    first = w.poll(1000)
    assert [d.tag for d in first] == ["bad"] and first[0].error == "ZeroDivisionError in work"
    assert w.poll(1000 + 700 * MS - 1) == []
    done = w.poll(1000 + 700 * MS)
    assert done[0].result == {"ok": 1} and done[0].sample == 1000 + 700 * MS


def test_work_with_measured_latency_replies_after_the_wall_time_it_took():
    import time

    w = WorkRunner(paced=False)
    w.start(Work("slow", lambda: time.sleep(0.25) or "late", simulated_latency_ms=None), 0)
    assert w.poll(200 * MS) == []                      # it took at least 250 ms
    assert w.poll(240 * MS) == []
    got = w.poll(60_000 * MS)
    assert got[0].result == "late" and got[0].sample >= 250 * MS


def test_work_in_a_thread_on_a_paced_line():
    w = WorkRunner(paced=True)
    w.start(Work("crm", lambda: 42), 0)
    got = []
    for k in range(2000):
        got += w.poll(k)
        if got:
            break
    w.close()
    assert got and got[0].result == 42


# ---------------------------------------------------------------- the engine on a fake line


def test_answers_on_the_ring_after_caller_id_and_attaches_it(prompts):
    line = FakeScriptedLine(20)
    line.ring(2000, 4000, 3)
    line.events.append(cid_event(2600 * MS))          # a modem's NMBR= between rings
    line.events.append(LoopCurrent(15000 * MS, present=False))
    handler = RecordingHandler()
    calls = []
    Engine(line, handler, prompts=prompts, on_call=calls.append).run()
    (call,) = calls
    assert call.rings == 2 and call.callerid.number == "2015550123"
    assert 6200 * MS <= call.answered_at <= 6240 * MS
    assert call.end_reason == "caller" and call.hangup_how == "cpc"
    assert line.hook_log[-1][1] == "on" and not line.is_off_hook


def test_answers_after_three_rings_without_caller_id_or_as_configured(prompts):
    for cfg, expect in ((EngineConfig(), 3), (EngineConfig(rings=2), 2),
                        (EngineConfig(rings=4), 4)):
        line = FakeScriptedLine(22)
        line.ring(2000, 4000, 4)
        calls = []
        Engine(line, RecordingHandler([HangUp()]), cfg, prompts=prompts,
               on_call=calls.append).run()
        assert calls[0].rings == expect and calls[0].callerid is None
        assert calls[0].end_reason == "hangup"


def test_barge_in_stops_the_prompt_within_a_frame_and_keeps_the_key(prompts):
    line = FakeScriptedLine(16)
    line.ring(2000, 4000, 2)
    line.put(6200 + 700, dtmf_tx("5", -9.0, on_ms=90, off_ms=10))     # during "enter_digits"
    line.put(6200 + 1200, dtmf_tx("#", -9.0, on_ms=90, off_ms=10))
    handler = RecordingHandler([Play("enter_digits"), Play("welcome"), Collect()],
                               {"Digits": [HangUp()]})
    calls = []
    Engine(line, handler, EngineConfig(rings=2), prompts=prompts, on_call=calls.append).run()
    done = [e for e in handler.events if isinstance(e, PromptDone)]
    assert [(d.prompt, d.interrupted) for d in done] == [("enter_digits", True), ("welcome", True)]
    digits = [e for e in handler.events if isinstance(e, Digits)]
    assert digits[0].digits == "5" and digits[0].reason == "terminator"
    (onset, stopped), = calls[0].barge_ins
    assert (stopped - onset) / MS <= 60
    # nothing of the prompt is written after the frame that recognised the key
    assert not line.written[stopped:stopped + 4000].any()


def test_handler_exception_goes_to_the_fallback_extension(prompts, caplog):
    class Broken(RecordingHandler):
        def on_event(self, event):
            raise ValueError("secret 4271 in the message")

    line = FakeScriptedLine(20)
    line.ring(2000, 4000, 2)
    line.put(6300, dtmf_tx("4271#", -9.0, on_ms=90, off_ms=110))
    calls = []
    cfg = EngineConfig(fallback_extension="299", rings=2)
    with caplog.at_level(logging.ERROR, logger="callgate.engine"):
        Engine(line, Broken([Collect()]), cfg, prompts=prompts, on_call=calls.append).run()
    (call,) = calls
    assert call.transfer.extension == "299" and call.handler_error.startswith("ValueError at")
    assert "4271" not in caplog.text and len(caplog.records) == 1
    assert [h for _, h in line.hook_log][:2] == ["off", "flash"]
    assert line.hook_log[-1][1] == "on"


def test_handler_exception_without_fallback_hangs_up(prompts):
    class Broken(RecordingHandler):
        def start(self, call):
            raise RuntimeError("boom")

    line = FakeScriptedLine(12)
    line.ring(2000, 4000, 2)
    calls = []
    Engine(line, Broken(), EngineConfig(rings=1), prompts=prompts, on_call=calls.append).run()
    assert calls[0].end_reason == "error" and not line.is_off_hook


def test_work_reply_comes_after_its_latency_on_the_sample_clock(prompts):
    line = FakeScriptedLine(16)
    line.ring(2000, 4000, 1)
    handler = RecordingHandler([Work("crm", lambda: "found", 1500), Play("one_moment")],
                               {"WorkDone": [HangUp()]})
    calls = []
    Engine(line, handler, EngineConfig(rings=1), prompts=prompts, on_call=calls.append).run()
    done = [e for e in handler.events if isinstance(e, WorkDone)]
    assert done[0].result == "found"
    assert done[0].sample - calls[0].answered_at == 1500 * MS
    assert calls[0].ended_at - calls[0].answered_at >= 1500 * MS


def test_unknown_prompt_is_a_config_error_at_start(prompts):
    class Needs(RecordingHandler):
        prompts_needed = ("welcome", "no_such_prompt")

    with pytest.raises(ConfigError, match="no_such_prompt"):
        Engine(FakeScriptedLine(1), Needs())


def test_engine_config_names_bad_keys():
    assert EngineConfig.from_table(Table({})).rings is None
    assert EngineConfig.from_table(Table({"rings": 3})).rings == 3
    for data, key in (({"rings": "two"}, "engine.rings"), ({"cpc_ms": 5}, "engine.cpc_ms"),
                      ({"cpc_msec": 5}, "engine.cpc_msec"),
                      ({"fallback_extension": "12a"}, "engine.fallback_extension"),
                      ({"toneplan": "mars"}, "engine.toneplan"),
                      ({"silence_ms": "long"}, "engine.silence_ms"),
                      ({"dtmf_min_level_dbm0": -60}, "engine.dtmf_min_level_dbm0")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            EngineConfig.from_table(Table(data, "engine"))


def test_the_weakest_key_tone_heard_is_configurable():
    """[engine] dtmf_min_level_dbm0 reaches the call loop's DTMF receiver (default -40)."""
    assert EngineConfig.from_table(Table({})).dtmf_min_level_dbm0 == -40.0
    cfg = EngineConfig.from_table(Table({"dtmf_min_level_dbm0": -30}))
    from callgate.dsp.bank import DetectorBank
    from callgate.dsp.dtmf import dtmf_tx
    weak = np.concatenate([dtmf_tx("159#", -34.0, on_ms=60, off_ms=60), np.zeros(800, np.int16)])
    for level, want in ((cfg.dtmf_min_level_dbm0, ""), (-40.0, "159#")):
        bank = DetectorBank(dtmf=True, dtmf_min_level_dbm0=level)
        events = bank.feed(weak) + bank.flush()
        assert "".join(e.digit for e in events if e.kind == "dtmf") == want


def test_line_fault_during_a_call_ends_it_on_hook(prompts):
    line = FakeScriptedLine(14)
    line.ring(2000, 4000, 2)
    line.events.append(LineFault(9000 * MS, reason="modem gone"))
    handler = RecordingHandler([Collect(first_timeout_ms=20000)])
    calls = []
    Engine(line, handler, EngineConfig(rings=1), prompts=prompts, on_call=calls.append).run()
    assert calls[0].end_reason == "fault" and calls[0].hangup_how == "fault"
    assert isinstance(handler.events[-1], CallerHungUp) and not line.is_off_hook


def test_a_failing_detector_is_restarted_and_the_call_goes_on(prompts, caplog):
    line = FakeScriptedLine(16)
    line.ring(2000, 4000, 1)
    line.put(4000, dtmf_tx("7#", -9.0, on_ms=90, off_ms=110))
    handler = RecordingHandler([Collect(first_timeout_ms=8000)], {"Digits": [HangUp()]})
    engine = Engine(line, handler, EngineConfig(rings=1), prompts=prompts)
    real = engine.bank.feed
    state = {"n": 0}

    def flaky(x, at=None):
        state["n"] += 1
        if state["n"] == 10:
            raise IndexError("detector bug")
        return real(x, at)

    engine.bank.feed = flaky
    with caplog.at_level(logging.ERROR, logger="callgate.engine"):
        engine.run()
    assert "detectors failed (IndexError); restarted" in caplog.text
    digits = [e for e in handler.events if isinstance(e, Digits)]
    assert digits[0].digits == "7" and not line.is_off_hook


@pytest.mark.parametrize("toneplan, rings", [(None, 1), ("file", 2)])
def test_a_tone_plan_given_as_a_file_keeps_its_own_ring_cadence(tmp_path, prompts, toneplan,
                                                                rings):
    """A plan in a file of our own name (a copy of the UK plan: 0.4 on 0.2 off 0.4 on 2.0
    off) counts two bursts 1.5 s apart as two rings; the US 2 s / 4 s cadence it once
    fell back to hears them as one ring with a dropout."""
    from importlib import resources

    path = tmp_path / "my-office.toml"
    path.write_text(resources.files("callgate.toneplans").joinpath("uk.toml").read_text())
    line = FakeScriptedLine(4)
    line.events += [RingStart(0), RingStop(400 * MS), RingStart(1900 * MS),
                    RingStop(2300 * MS)]
    handler = RecordingHandler()
    cfg = EngineConfig(rings=5, toneplan=str(path) if toneplan else None)
    engine = Engine(line, handler, cfg, prompts=prompts)
    engine.run()
    assert [c.rings for c in engine.finished] == [rings]
