"""The `sim` line: a simulated exchange and far end, checked with the signal core's
decoders and, where it matters, with libspandsp's (an implementation we did not write).

Each test drives the SimLine with a tiny scripted loop (read, then off_hook /
write / flash / on_hook at chosen moments), keeps everything received, and
decodes it afterwards.
"""

from __future__ import annotations

import time
import tomllib

import numpy as np
import pytest

from callgate.config import ConfigError, Table
from callgate.dsp.callerid import CallerIdReceiver, DtmfCallerIdDecoder
from callgate.dsp.dtmf import DtmfReceiver
from callgate.dsp.level import dbm0_to_amplitude, rms_dbm0
from callgate.dsp.tones import CallProgressDetector, tone_tx
from callgate.toneplans import available_toneplans, load_toneplan
from callgate.line import make_line
from callgate.line.base import LineError
from callgate.line.sim import (Agent, CallerIdSpec, CallWaiting, Clear, Press, SimCall, SimLine)

import external

RATE = 8000
FRAME = 160
PROMPT = tone_tx([500, 700], -16.0, [], 1.5)        # a stand-in prompt: 1.5 s, no DTMF


def ms(x: float) -> int:
    return int(round(x * RATE / 1000))


class Bench:
    """A minimal scripted engine: reads every frame, runs one-shot triggers, writes audio."""

    def __init__(self, line: SimLine) -> None:
        self.line = line
        self.frames: list[np.ndarray] = []
        self.events: list = []
        self.triggers: list[list] = []
        self.tx = np.zeros(0, np.int16)
        self.now = 0
        self.writes: list[tuple[int, np.ndarray]] = []   # (index of the frame read before, audio)

    @property
    def rx(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.int16)

    def on(self, cond, action) -> None:
        """When cond(bench, frame) first holds (after a read), run action(bench)."""
        self.triggers.append([cond, action])

    def send(self, audio: np.ndarray) -> None:
        self.tx = np.concatenate([self.tx, np.asarray(audio, np.int16)])

    def kinds(self, kind: str) -> list:
        return [e for e in self.events if e.kind == kind]

    def run(self, max_s: float = 120.0, stop=None) -> "Bench":
        line = self.line
        while (frame := line.read()) is not None:
            assert frame.start == FRAME * len(self.frames)
            assert frame.samples.dtype == np.int16 and frame.samples.size == FRAME
            assert all(frame.start <= e.sample < frame.end for e in frame.events)
            self.frames.append(frame.samples)
            self.events += frame.events
            self.now = frame.end
            for trig in list(self.triggers):
                if trig[0](self, frame):
                    self.triggers.remove(trig)
                    trig[1](self)
            if line.is_off_hook:
                out, self.tx = self.tx[:FRAME], self.tx[FRAME:]
                out = np.concatenate([out, np.zeros(FRAME - out.size, np.int16)])
                self.writes.append((len(self.frames) - 1, out))
                line.write(out)
            assert self.now < max_s * RATE, "the simulated line did not end"
            if stop is not None and stop(self):
                break
        return self


def after_rings(n: int):
    """Condition: the n-th ring burst has ended."""
    return lambda b, f: len(b.kinds("ring_stop")) >= n


def at(sample: int):
    return lambda b, f: b.now >= sample


def answer_and_prompt(b: Bench) -> None:
    b.line.off_hook()
    b.send(PROMPT)


def tones_in(rx: np.ndarray, plan: str, start: int = 0) -> list:
    det = CallProgressDetector(load_toneplan(plan))
    out = det.feed(rx[start:]) + det.flush()
    return [(e.tone, e.sample + start) for e in out if e.tone not in ("cng", "ced")]


def digits_in(rx: np.ndarray, start: int = 0) -> list:
    rx_ = DtmfReceiver()
    return [(e.digit, e.sample + start) for e in rx_.feed(rx[start:]) + rx_.flush()]


def loud_runs(x: np.ndarray, dbm0: float = -40.0, block: int = 80) -> list[tuple[int, int]]:
    """(start, end) samples of stretches louder than dbm0, in 10 ms blocks."""
    n = x.size // block
    power = np.mean(x[:n * block].astype(float).reshape(n, block) ** 2, axis=1)
    loud = power > dbm0_to_amplitude(dbm0) ** 2 / 2
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(int), [0]])))
    return [(int(a) * block, int(b) * block) for a, b in zip(edges[0::2], edges[1::2])]


# ------------------------------------------------------------------ ringing


@pytest.mark.parametrize("country", available_toneplans())
def test_rings_with_the_country_cadence(country):
    cadence = load_toneplan(country).ring_cadence_ms
    line = SimLine([SimCall(callerid=None, abandon_after_rings=3, gap_ms=500)], country,
                   noise_dbm0=-65.0)
    b = Bench(line).run()
    starts = [e.sample for e in b.kinds("ring_start")]
    stops = [e.sample for e in b.kinds("ring_stop")]
    bursts = len(cadence) // 2
    assert len(starts) == len(stops) == 3 * bursts
    assert starts[0] == ms(500)
    segments = np.diff(np.ravel(list(zip(starts, stops))))
    assert list(segments) == [ms(d) for d in cadence * 3][:-1]
    out = line.outcomes[0]
    assert out.rings == 3 and out.answered_at is None and out.caller_hung_up_at > stops[-1]
    # Ringing is a line event, not audio: with no caller ID the line carries only noise.
    assert rms_dbm0(b.rx) < -60
    assert b.now - out.caller_hung_up_at <= ms(2000) + FRAME     # idle 2 s, then the end


def test_plan_without_ring_cadence_is_a_clear_error(tmp_path):
    plan = tmp_path / "noring.toml"
    plan.write_text('[tones.dial]\nfrequencies = [425]\ncadence_ms = []\n')
    with pytest.raises(ValueError, match=r"no \[ring\] cadence_ms"):
        SimLine([], country=str(plan))
    plan.write_text('[ring]\ncadence = [1]\n[tones.dial]\nfrequencies = [425]\ncadence_ms = []\n')
    with pytest.raises(ValueError, match="ring.cadence: unknown key"):
        load_toneplan(str(plan))


# ------------------------------------------------------------------ caller ID on hook


def test_bell202_callerid_between_first_and_second_ring():
    line = SimLine([SimCall(abandon_after_rings=2)], "us")
    b = Bench(line).run()
    rx = b.rx
    (first_stop, second_start) = b.kinds("ring_stop")[0].sample, b.kinds("ring_start")[1].sample
    events = CallerIdReceiver().feed(rx)
    assert len(events) == 1
    cid = events[0]
    assert cid.checksum_ok and cid.format == "MDMF" and cid.modem == "bell202"
    assert (cid.number, cid.name, cid.datetime) == ("2015550123", "JANE SMITH", "11231000")
    (burst,) = loud_runs(rx)
    assert burst[0] >= first_stop + ms(500)                   # GR-30: >= 500 ms after ring 1
    assert burst[1] <= second_start - ms(200)                 # ... ends >= 200 ms before ring 2
    assert abs(cid.sample - burst[0]) < ms(20)
    # libspandsp's CLASS receiver reads the same message.
    assert external.spandsp_adsi_rx("clip", rx[first_stop:second_start]) == [
        cid.raw[:-1]]


@pytest.mark.parametrize("country", ["etsi", "uk"])
def test_v23_callerid_after_polarity_reversal_and_dtas(country):
    spec = CallerIdSpec(number="01632960123", name="A N OTHER", kind="v23")
    line = SimLine([SimCall(callerid=spec, abandon_after_rings=1)], country)
    b = Bench(line).run()
    rx = b.rx
    assert b.events[0].kind == "polarity_reversal"
    reversal = b.events[0].sample
    first_ring = b.kinds("ring_start")[0].sample
    dtas, fsk = loud_runs(rx)[:2]
    assert dtas[0] > reversal and abs((dtas[1] - dtas[0]) - ms(100)) <= ms(10)
    spectrum = np.abs(np.fft.rfft(rx[dtas[0]:dtas[1]].astype(float), 8000))
    assert set(np.argsort(spectrum)[-2:]) == {2130, 2750}        # 1 Hz bins
    assert fsk[0] > dtas[1]
    assert first_ring >= fsk[1] + ms(500)
    # V.23, not Bell 202: the mark signal after the seizure is 1300 Hz.
    mark = rx[fsk[0] + ms(260):fsk[0] + ms(310)].astype(float)
    assert abs(np.argmax(np.abs(np.fft.rfft(mark, 8000))) - 1300) <= 10
    (cid,) = CallerIdReceiver().feed(rx)
    assert cid.checksum_ok
    assert (cid.number, cid.name) == ("01632960123", "A N OTHER")
    assert external.spandsp_adsi_rx("etsi", rx[dtas[1]:first_ring]) == [cid.raw[:-1]]


def test_dtmf_callerid_before_the_first_ring():
    spec = CallerIdSpec(number="4512345678", kind="dtmf")
    b = Bench(SimLine([SimCall(callerid=spec, abandon_after_rings=1)], "etsi")).run()
    rx = b.rx
    assert b.events[0].kind == "polarity_reversal"
    first_ring = b.kinds("ring_start")[0].sample
    events = DtmfReceiver().feed(rx)
    (cid,) = DtmfCallerIdDecoder().feed(events, now=first_ring)   # judged before the ring
    assert cid.checksum_ok and cid.number == "4512345678"
    last_digit_end = loud_runs(rx)[-1][1]
    assert last_digit_end <= first_ring - ms(500)
    assert external.spandsp_dtmf_rx(rx) == "A4512345678C"


def test_withheld_and_damaged_callerid():
    calls = [SimCall(callerid=CallerIdSpec(absent="P"), abandon_after_rings=2),
             SimCall(callerid=CallerIdSpec(corrupt=True), abandon_after_rings=2),
             SimCall(callerid=CallerIdSpec(format="sdmf"), abandon_after_rings=2)]
    b = Bench(SimLine(calls)).run(max_s=60)
    withheld, damaged, sdmf = CallerIdReceiver().feed(b.rx)
    assert withheld.checksum_ok and withheld.number is None and withheld.number_absent == "P"
    assert withheld.name_absent == "P"
    assert not damaged.checksum_ok and damaged.error == "bad checksum"
    assert sdmf.checksum_ok and sdmf.format == "SDMF" and sdmf.number == "2015550123"


# ------------------------------------------------------------------ the caller keys


def test_press_after_the_end_of_our_prompt():
    call = SimCall(script=[Press("4271#", after_ms=700), Clear("silence", after_ms=1000)])
    line = SimLine([call], echo_db=-10.0)
    b = Bench(line)
    b.on(after_rings(2), answer_and_prompt)
    b.on(at(ms(30000)), lambda b: b.line.on_hook())
    b.run()
    out = line.outcomes[0]
    prompt_end = out.answered_at + PROMPT.size
    heard = digits_in(b.rx, out.answered_at)
    # Our prompt's echo (-10 dB) is no key; the caller's keys start 700 ms after it ends.
    assert "".join(d for d, _ in heard) == "4271#"
    assert abs(heard[0][1] - (prompt_end + ms(700))) <= ms(10)
    assert np.allclose(np.diff([s for _, s in heard]), ms(200), atol=ms(10))   # 90 on + 110 off
    assert out.prompt_audio_ms == 1500
    assert abs(out.caller_hung_up_at - (heard[-1][1] + ms(90 + 110 + 1000))) <= ms(5)


def test_press_timed_from_answer_and_from_the_previous_step():
    call = SimCall(callerid=None, script=[Press("1", after_ms=1000, when="answer"),
                                          Press("2", after_ms=500, when="previous"),
                                          Clear("polarity", after_ms=300)])
    line = SimLine([call])
    b = Bench(line)
    b.on(after_rings(1), lambda b: b.line.off_hook())
    b.on(lambda b, f: b.kinds("polarity_reversal"), lambda b: b.line.on_hook())
    b.run()
    t = line.outcomes[0].answered_at
    heard = digits_in(b.rx, t)
    assert [d for d, _ in heard] == ["1", "2"]
    assert abs(heard[0][1] - (t + ms(1000))) <= ms(10)
    assert abs(heard[1][1] - (t + ms(1000 + 200 + 500))) <= ms(10)
    assert b.kinds("polarity_reversal")[0].sample == t + ms(1000 + 200 + 500 + 200 + 300)


# ------------------------------------------------------------------ hanging up


@pytest.mark.parametrize("how", ["cpc", "polarity", "busy", "reorder", "dial", "silence"])
def test_every_hang_up_is_observable(how):
    hang = Clear(how, after_ms=2000, when="answer", drop_ms=600)
    line = SimLine([SimCall(callerid=None, script=[hang])], noise_dbm0=-60.0)
    b = Bench(line)
    b.on(after_rings(1), lambda b: b.line.off_hook())
    b.on(lambda b, f: line.outcomes[0].caller_hung_up_at is not None
         and b.now > line.outcomes[0].caller_hung_up_at + ms(6000), lambda b: b.line.on_hook())
    b.run()
    out = line.outcomes[0]
    gone = out.answered_at + ms(2000)
    assert out.caller_hung_up_at == gone
    loop = b.kinds("loop_current")
    tones = tones_in(b.rx, "us", out.answered_at)
    if how == "cpc":
        assert [(e.present, e.sample) for e in loop] == [(False, gone), (True, gone + ms(600))]
        assert [t for t, _ in tones] == ["dial"] and tones[0][1] >= gone + ms(600)
    else:
        assert loop == []
    assert [e.sample for e in b.kinds("polarity_reversal")] == ([gone] if how == "polarity"
                                                                else [])
    if how in ("busy", "reorder", "dial"):
        assert [t for t, _ in tones] == [how] and abs(tones[0][1] - gone) <= ms(20)
    elif how != "cpc":
        assert tones == [] and rms_dbm0(b.rx[gone:gone + ms(5000)]) < -55
    assert ms(6000) < out.released_at - gone <= ms(6000) + FRAME
    assert b.now <= out.released_at + ms(2000) + FRAME            # idle 2 s, then the end


def test_abandoned_before_answer_then_the_next_call():
    calls = [SimCall(callerid=None, abandon_after_rings=2, gap_ms=0),
             SimCall(callerid=None, abandon_after_rings=1, gap_ms=3000)]
    line = SimLine(calls)
    b = Bench(line).run()
    first, second = line.outcomes
    assert first.rings == 2 and first.answered_at is None and first.released_at is None
    stops = b.kinds("ring_stop")
    assert stops[1].sample < first.caller_hung_up_at < b.kinds("ring_start")[2].sample
    assert b.kinds("ring_start")[2].sample == first.caller_hung_up_at + ms(3000)
    assert second.rings == 1


def test_on_hook_glitch_is_ignored_and_a_long_one_releases_the_call():
    script = [Press("5", after_ms=3000, when="answer"), Press("6", 2000, when="previous")]
    calls = [SimCall(callerid=None, script=script), SimCall(callerid=None, script=[],
                                                              abandon_after_rings=1)]
    line = SimLine(calls)
    b = Bench(line)
    b.on(after_rings(1), lambda b: b.line.off_hook())
    b.on(at(ms(10000)), lambda b: b.line.on_hook())              # 40 ms: a glitch
    b.on(at(ms(10040)), lambda b: b.line.off_hook())
    b.on(at(ms(14000)), lambda b: b.line.on_hook())               # and for good
    b.run()
    first = line.outcomes[0]
    assert first.flashes == 0
    assert first.released_at == ms(14000)
    assert [d for d, _ in digits_in(b.rx)] == ["5", "6"]
    assert line.outcomes[1].rings == 1
    # Cleared once on hook longer than a flash (1000 ms), then the next call's 1 s gap.
    assert b.kinds("ring_start")[-1].sample == ms(14000) + ms(1000) + 1 + ms(1000)


# ------------------------------------------------------------------ flash and transfer


def transfer_bench(agent: Agent, dial: str, then, script=(), recall=True,
                   agents=None, country="us") -> Bench:
    """Answer, flash at 3 s, dial `dial` (libspandsp's DTMF) once dial tone has run 1.5 s."""
    call = SimCall(callerid=None, script=list(script), recall_dial_tone=recall,
                   agents=agents or {"201": agent})
    line = SimLine([call], country, echo_db=-10.0)
    b = Bench(line)
    b.on(after_rings(1), lambda b: b.line.off_hook())
    b.on(at(ms(9000)), lambda b: b.line.flash(600))
    b.on(at(ms(11500)), lambda b: b.send(external.spandsp_dtmf_tx(dial, -8, 80, 80)))
    then(b)
    return b.run(max_s=150)


def test_flash_gives_recall_dial_tone_and_the_agent_answers():
    def then(b):
        b.on(lambda b, f: b.line.outcomes[0].transferred_to is None
             and b.now >= ms(30000), lambda b: b.line.on_hook())
    b = transfer_bench(Agent(answer_after_rings=2), "201", then)
    out = b.line.outcomes[0]
    (done,) = b.kinds("flash_done")
    assert done.sample == ms(9000) + ms(600)
    assert out.flashes == 1 and out.heard_digits == "201"
    tones = tones_in(b.rx, "us", done.sample)
    assert [t for t, _ in tones] == ["dial", "ringback"]
    assert tones[0][1] - done.sample <= ms(150)
    # Two ringback bursts, then the agent's "hello"; the caller is transferred when we hang up.
    runs = [r for r in loud_runs(b.rx, -35) if r[1] > ms(12000)]
    ringback = [r for r in runs if r[1] - r[0] >= ms(1900)]
    assert len(ringback) == 2 and ringback[1][1] - ringback[1][0] == ms(2000)
    hello = [r for r in runs if r[0] > ringback[1][1]]
    assert hello[0][0] - ringback[1][1] < ms(1000)
    assert ms(300) <= hello[-1][1] - hello[0][0] <= ms(700)
    assert out.transferred_to == "201" and out.released_at == ms(30000)


def test_blind_transfer_hangs_up_after_dialling():
    def then(b):
        b.on(at(ms(11500) + ms(160 * 3) + ms(100)), lambda b: b.line.on_hook())
    b = transfer_bench(Agent(answer_after_rings=None), "201", then)
    out = b.line.outcomes[0]
    assert out.heard_digits == "201" and out.transferred_to == "201"
    assert out.released_at == ms(11500) + ms(580)


@pytest.mark.parametrize("country", ["fr", "au"])
def test_unknown_extension_gets_busy_where_the_plan_has_no_reorder(country):
    """France and Australia list no congestion tone of their own (it sounds like busy)."""
    assert "reorder" not in load_toneplan(country).names
    b = transfer_bench(Agent(answer_after_rings=2), "301", lambda b: b.on(
        at(ms(16000)), lambda b: b.line.on_hook()), country=country)
    heard = [t for t, s in tones_in(b.rx, country, ms(11500))]
    assert heard == ["busy"]


@pytest.mark.parametrize("case", ["busy", "no_answer", "unknown", "no_recall"])
def test_failed_transfer_and_flash_back_to_the_caller(case):
    agent = Agent(busy=case == "busy", answer_after_rings=None if case == "no_answer" else 2)
    dial = "301" if case == "unknown" else "201"
    script = [Press("7", after_ms=25000, when="answer"), Clear("busy", after_ms=1000)]

    def then(b):
        b.on(at(ms(21000)), lambda b: b.line.flash(600))           # back to the caller
        b.on(lambda b, f: b.line.outcomes[0].caller_hung_up_at is not None
             and b.now > b.line.outcomes[0].caller_hung_up_at + ms(4000),
             lambda b: b.line.on_hook())
    b = transfer_bench(agent, dial, then, script, recall=case != "no_recall")
    out = b.line.outcomes[0]
    heard = tones_in(b.rx, "us", ms(9600))
    expected = {"busy": ["dial", "busy"], "no_answer": ["dial", "ringback"],
                "unknown": ["dial", "reorder"], "no_recall": []}[case]
    assert [t for t, _ in heard if t != "busy" or _ < ms(21000)] == expected
    assert out.flashes == 2 and out.transferred_to is None
    assert out.heard_digits == {"unknown": "3", "no_recall": ""}.get(case, "201")
    # Back with the caller: their key is heard, and so is their hang-up.
    assert "7" in [d for d, s in digits_in(b.rx, ms(21600))]
    assert any(t == "busy" and s > ms(21600) for t, s in heard) or case == "busy"


def test_flash_back_to_a_caller_who_hung_up_on_hold():
    script = [Clear("cpc", after_ms=12000, when="answer")]

    def then(b):
        b.on(at(ms(25000)), lambda b: b.line.flash(600))
        b.on(lambda b, f: b.kinds("loop_current"), lambda b: b.line.on_hook())
    b = transfer_bench(Agent(answer_after_rings=None), "201", then, script)
    out = b.line.outcomes[0]
    assert out.caller_hung_up_at == out.answered_at + ms(12000)
    assert b.kinds("loop_current")[0].sample == ms(25600)          # noticed on return
    assert out.transferred_to is None


# ------------------------------------------------------------------ call waiting


@pytest.mark.parametrize("country, modem", [("us", "bell202"), ("etsi", "v23")])
def test_call_waiting_alert_and_offhook_callerid(country, modem):
    call = SimCall(callerid=None, script=[CallWaiting(after_ms=2000), Clear("cpc", 2000)])
    line = SimLine([call], country)
    b = Bench(line)
    b.on(after_rings(1), lambda b: b.line.off_hook())
    b.on(lambda b, f: b.kinds("loop_current"), lambda b: b.line.on_hook())
    b.run()
    t = line.outcomes[0].answered_at
    rx = b.rx
    runs = loud_runs(rx[t:], -40)
    alert = runs[-2] if country == "us" else runs[0]
    spectrum = np.abs(np.fft.rfft(rx[t + alert[0]:t + alert[1]].astype(float), 8000))
    assert set(np.argsort(spectrum)[-2:]) == {2130, 2750} and alert[1] - alert[0] == ms(80)
    if country == "us":
        assert runs[0] == (ms(2000), ms(2300))                       # SAS 440 Hz, 300 ms
    (cid,) = CallerIdReceiver().feed(rx[t:])
    assert cid.checksum_ok and cid.number == "2125550199"
    # Off-hook FSK has no channel seizure: it starts with the mark signal of its modem.
    start = t + runs[-1][0]
    mark = rx[start + ms(10):start + ms(60)].astype(float)
    peak = np.argmax(np.abs(np.fft.rfft(mark, 8000)))
    assert abs(peak - {"bell202": 1200, "v23": 1300}[modem]) <= 10
    assert len(b.kinds("ring_start")) == 1                         # no ringing during the call


# ------------------------------------------------------------------ echo, noise, clock


def test_echo_comes_back_one_frame_later_at_echo_db():
    line = SimLine([SimCall(callerid=None, script=[Clear("cpc", 4000, when="answer")])],
                   echo_db=-12.0, noise_dbm0=None)
    b = Bench(line)
    b.on(after_rings(1), lambda b: (b.line.off_hook(), b.send(tone_tx([1000], -10.0, [], 2.0))))
    b.on(lambda b, f: b.kinds("loop_current"), lambda b: b.line.on_hook())
    b.run()
    rx = b.rx
    t = line.outcomes[0].answered_at
    assert abs(rms_dbm0(rx[t + ms(100):t + ms(1900)]) - (-22.0)) < 0.2
    # Every frame written comes back, scaled, in the next frame read.
    gain = 10 ** (-12 / 20)
    for index, out in b.writes[:50]:
        got = b.frames[index + 1].astype(float)
        assert np.abs(got - out * gain).max() <= 1.0


def test_no_echo_and_no_noise_when_switched_off():
    line = SimLine([SimCall(callerid=None, script=[Clear("cpc", 2000, when="answer")])],
                   echo_db=None, noise_dbm0=None)
    b = Bench(line)
    b.on(after_rings(1), lambda b: (b.line.off_hook(), b.send(PROMPT)))
    b.on(lambda b, f: b.kinds("loop_current"), lambda b: b.line.on_hook())
    b.run()
    assert not b.rx.any()


def test_same_seed_same_samples():
    def run(seed):
        call = SimCall(script=[Press("12", when="answer"), Clear("busy", 1000)])
        b = Bench(SimLine([call], seed=seed))
        b.on(after_rings(2), answer_and_prompt)
        b.on(at(ms(30000)), lambda b: b.line.on_hook())
        return b.run()
    a, a2, other = run(7), run(7), run(8)
    assert np.array_equal(a.rx, a2.rx) and a.events == a2.events
    assert not np.array_equal(a.rx, other.rx) and a.events == other.events


def test_speed_seconds_of_line_per_cpu_second():
    calls = [SimCall(script=[Press("4271#", 1000, "answer"), Clear("cpc", 20000)])] * 3
    line = SimLine(calls, max_seconds=300)
    silence = np.zeros(FRAME, np.int16)
    cpu = time.process_time()
    n = 0
    answered = 0
    while (frame := line.read()) is not None:
        n += 1
        for e in frame.events:
            if e.kind == "ring_stop" and not line.is_off_hook and answered < 3:
                if line.outcomes[answered].rings >= 2:
                    line.off_hook()
                    answered += 1
            elif e.kind == "loop_current" and not e.present:
                line.on_hook()
        if line.is_off_hook:
            line.write(silence)
    cpu = time.process_time() - cpu
    speed = n * FRAME / RATE / cpu
    print(f"sim line: {n * FRAME / RATE:.0f} s of line in {cpu:.2f} s CPU = {speed:.0f}x")
    assert all(o.released_at for o in line.outcomes)
    assert speed > 50


# ------------------------------------------------------------------ configuration


def sim_table(text: str) -> Table:
    return Table(tomllib.loads(text)).sub("line").sub("sim")


def test_default_config_runs_one_ordinary_call():
    line = make_line(Table({}).sub("line"))
    assert isinstance(line, SimLine) and line.country == "us"
    assert line.capabilities.loop_current and line.capabilities.onhook_audio
    assert not line.capabilities.paced and line.frame_samples == 160
    b = Bench(line)
    b.on(after_rings(2), answer_and_prompt)
    b.on(lambda b, f: b.kinds("loop_current"), lambda b: b.line.on_hook())
    b.run()
    (cid,) = CallerIdReceiver().feed(b.rx)
    assert cid.checksum_ok and cid.number == "2015550123"
    out = line.outcomes[0]
    heard = digits_in(b.rx, out.answered_at)
    assert "".join(d for d, _ in heard) == "4271#"
    drop = b.kinds("loop_current")[0]
    assert abs(drop.sample - (heard[-1][1] + ms(200) + ms(8000))) <= ms(5)
    assert out.released_at is not None


def test_config_with_calls():
    line = SimLine.from_config(sim_table('''
        [line.sim]
        country = "uk"
        echo_db = false
        noise_dbm0 = -70
        seed = 3
        repeat = 2
        [[line.sim.calls]]
        gap_ms = 200
        callerid = { number = "01632960123", kind = "v23", name = "BOB" }
        script = [
          { press = "12#", after_ms = 300, when = "answer" },
          { callwaiting = "2125550199", after_ms = 100, when = "previous" },
          { hangup = "cpc", drop_ms = 400, tone_after = "unobtainable" },
        ]
        [line.sim.calls.agents.300]
        answer_after_rings = false
        [[line.sim.calls]]
        callerid = false
        abandon_after_rings = 2
        recall_dial_tone = false
    '''))
    assert line.country == "uk" and len(line.calls) == 4 and line.seed == 3
    first, second = line.calls[:2]
    assert first.callerid.kind == "v23" and first.callerid.name == "BOB" and first.gap_ms == 200
    assert first.script == [Press("12#", 300, "answer"), CallWaiting(100, "previous", "2125550199"),
                            Clear("cpc", drop_ms=400, tone_after="unobtainable")]
    assert first.agents == {"300": Agent(answer_after_rings=None)}
    assert second.callerid is None and second.abandon_after_rings == 2
    assert not second.recall_dial_tone


@pytest.mark.parametrize("text, message", [
    ('colour = "red"', "line.sim.colour: unknown key"),
    ('country = "mars"',
     "line.sim.country: 'mars' is not one of au, ca, de, es, etsi, fr, it, nl, nz, uk, us"),
    ('echo_db = 5', "line.sim.echo_db: 5.0 is outside -80..0"),
    ('[[line.sim.calls]]\ngapms = 3', "line.sim.calls[0].gapms: unknown key"),
    ('[[line.sim.calls]]\ncallerid = { kind = "v22" }',
     "line.sim.calls[0].callerid.kind: 'v22' is not one of bell202, v23, dtmf"),
    ('[[line.sim.calls]]\ncallerid = { number = "12ab" }', "line.sim.calls[0].callerid: "),
    ('[[line.sim.calls]]\nscript = [{ press = "12", afterms = 3 }]',
     "line.sim.calls[0].script[0].afterms: unknown key"),
    ('[[line.sim.calls]]\nscript = [{ press = "1x" }]',
     "line.sim.calls[0].script[0].press: '1x' is not a string of DTMF keys"),
    ('[[line.sim.calls]]\nscript = [{ hangup = "boom" }]',
     "line.sim.calls[0].script[0].hangup: 'boom' is not one of cpc, polarity, silence"),
    ('[[line.sim.calls]]\nscript = [{ press = "1", hangup = "cpc" }]',
     "line.sim.calls[0].script[0]: give exactly one of press, hangup or callwaiting"),
    ('[[line.sim.calls]]\nscript = [{ press = "1", when = "later" }]',
     "line.sim.calls[0].script[0].when: 'later' is not one of answer, prompt_end, previous"),
    ('[[line.sim.calls]]\n[line.sim.calls.agents.201]\nbusy = "yes"',
     "line.sim.calls[0].agents.201.busy: expected true or false"),
])
def test_config_errors_name_the_key(text, message):
    with pytest.raises(ConfigError) as err:
        SimLine.from_config(sim_table("[line.sim]\n" + text if not text.startswith("[[")
                                      else text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_controls_misuse_and_a_long_flash(tmp_path):
    line = SimLine([SimCall(callerid=None, script=[Press("1", 5000, "answer")])], noise_dbm0=None)
    with pytest.raises(LineError, match="off hook"):
        line.flash(500)
    line.write(np.full(160, 1000, np.int16))             # on hook: nothing is sent
    b = Bench(line)
    b.on(after_rings(1), lambda b: b.line.off_hook())
    b.on(at(ms(6000)), lambda b: b.line.flash(1500))      # longer than a flash: hangs up
    b.on(lambda b, f: b.kinds("flash_done"), lambda b: b.line.on_hook())
    b.run()
    out = line.outcomes[0]
    assert out.released_at == ms(6000) and out.flashes == 0
    (done,) = b.kinds("flash_done")
    assert done.sample == ms(7500)
    # Back off hook with no call: the exchange offers dial tone.
    assert [t for t, _ in tones_in(b.rx, "us", ms(7500))] == []   # 1 frame is too short to tell
    assert rms_dbm0(b.rx[ms(7500):ms(7500) + 140]) > -25
    with pytest.raises(ValueError, match=r"script\[0\].how: 'howler'"):
        SimLine([SimCall(script=[Clear("howler")])])
    short = tmp_path / "short.toml"
    short.write_text('[ring]\ncadence_ms = [2000, 1200]\n'
                     '[tones.dial]\nfrequencies = [425]\ncadence_ms = []\n')
    with pytest.raises(ValueError, match="does not fit between the rings"):
        SimLine([SimCall()], str(short))
