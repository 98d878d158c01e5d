"""Paced capture: a line that renders on demand, handed out at the wall-clock rate
through a capture ring, as a device's codec hands out periods (line/paced.py).

All but the last test run on a fake clock (tests/fake_clock.py): time moves only
when the reader works, stalls or sleeps, so the counts are exact and nothing
depends on the machine's speed. The last one runs a paced SimLine on the real
clock for 0.3 s and asserts counts only.
"""

from __future__ import annotations

import time
import tomllib

import numpy as np
import pytest

from callgate.config import ConfigError, Table
from callgate.line import make_line
from callgate.line.base import UNPACED, Frame, Pacing, RingStart
from callgate.line.modem import ModemLine
from callgate.line.paced import PacedCapture
from callgate.line.recording import RecordingLine
from callgate.line.replay import ReplayLine
from callgate.line.sim import CallerIdSpec, Clear, Press, SimCall, SimLine

from fake_clock import FakeClock

RATE = 8000
FRAME = 160
PERIOD = 0.02


class Counter:
    """A frame source whose frame k holds the value k + 1, with one RingStart in each."""

    def __init__(self, limit: int | None = None) -> None:
        self.made = 0
        self.limit = limit

    def __call__(self) -> Frame | None:
        if self.limit is not None and self.made >= self.limit:
            return None
        k = self.made
        self.made += 1
        return Frame(k * FRAME, np.full(FRAME, k + 1, np.int16), [RingStart(k * FRAME + 7)])


def capture(periods: int = 4, limit: int | None = None):
    clock = FakeClock()
    source = Counter(limit)
    return PacedCapture(source, PERIOD, periods, clock=clock, sleep=clock.sleep), clock, source


# ------------------------------------------------------------------ the ring on a fake clock


def test_a_reader_that_keeps_up_gets_every_frame_on_time_and_loses_none():
    cap, clock, _ = capture()
    start = clock.now
    for k in range(100):
        frame = cap.read()
        assert frame.start == k * FRAME and frame.samples.size == FRAME
        assert frame.samples[0] == k + 1
        assert clock.now == pytest.approx(start + (k + 1) * PERIOD)   # taken as captured
        clock.advance(0.006)                                          # the engine's work
    assert cap.pacing == Pacing(True, 0, 0, 0.0)
    assert len(clock.sleeps) == 100 and cap.held == 0


def test_a_200_ms_stall_with_4_periods_loses_6_frames_and_the_clock_does_not_skip():
    cap, clock, source = capture(periods=4)
    for _ in range(3):
        cap.read()                                 # frames 0..2, on time
    clock.advance(0.200)                           # 10 more periods captured, 4 kept
    frame = cap.read()
    assert cap.overruns == 6 and source.made == 13
    # the lost stretch comes back as silence before the oldest period kept (frame 9)
    assert frame.start == 3 * FRAME and frame.samples.size == 7 * FRAME
    assert not frame.samples[:6 * FRAME].any()
    assert (frame.samples[6 * FRAME:] == 10).all()
    assert [e.sample for e in frame.events] == [k * FRAME + 7 for k in range(3, 10)]
    sleeps = len(clock.sleeps)
    rest = [cap.read() for _ in range(3)]          # frames 10..12: there already
    assert len(clock.sleeps) == sleeps
    assert [f.start for f in rest] == [10 * FRAME, 11 * FRAME, 12 * FRAME]
    assert cap.read().start == 13 * FRAME and len(clock.sleeps) == sleeps + 1
    got = cap.pacing
    # lags: 180 ms (the stall less the period that was owed), 40, 20, 0 ms: two late
    assert (got.overruns, got.late_frames) == (6, 2)
    assert got.max_lag_ms == pytest.approx(180.0)


def test_the_first_read_starts_the_stream_and_waits_one_period():
    cap, clock, source = capture()
    clock.advance(5.0)                 # built long before it is read: no overrun
    start = clock.now
    assert cap.read().start == 0 and clock.now == pytest.approx(start + PERIOD)
    assert cap.overruns == 0 and source.made == 1


def test_a_slow_reader_within_the_ring_is_late_but_loses_nothing():
    cap, clock, _ = capture(periods=4)
    cap.read()
    clock.advance(0.065)               # 3 periods captured while we were away: they fit
    frames = [cap.read() for _ in range(3)]
    assert [f.samples.size for f in frames] == [FRAME] * 3
    assert cap.overruns == 0 and cap.late_frames == 2      # lags 45, 25 and 5 ms
    assert cap.pacing.max_lag_ms == pytest.approx(45.0)


def test_the_source_ending_drains_the_ring_then_ends_without_waiting():
    cap, clock, _ = capture(limit=5)
    cap.read()
    clock.advance(1.0)
    frames = []
    while (f := cap.read()) is not None:
        frames.append(f)
    assert frames[-1].end == 5 * FRAME and cap.read() is None
    assert sum(f.samples.size for f in frames) == 4 * FRAME


def test_since_takes_deltas_and_mark_opens_a_new_max_lag_window():
    cap, clock, _ = capture(periods=2)
    cap.read()
    clock.advance(0.1)
    cap.read()
    first = cap.mark()
    assert first.overruns == 3 and first.max_lag_ms == pytest.approx(80.0)
    assert cap.pacing.max_lag_ms == 0.0            # the window was reset by the mark
    for _ in range(5):
        cap.read()
    clock.advance(0.045)
    cap.read()                         # its period was due 20 ms after the last read
    call = cap.pacing.since(first)
    assert call.paced and call.overruns == 0
    assert call.late_frames == 1 == cap.late_frames - first.late_frames
    assert call.max_lag_ms == pytest.approx(25.0)


def test_pacing_since_is_plain_arithmetic():
    later, earlier = Pacing(True, 9, 5, 12.5), Pacing(True, 4, 1, 99.0)
    assert later.since(earlier) == Pacing(True, 5, 4, 12.5)
    with pytest.raises(AttributeError):
        later.overruns = 0                      # frozen


def test_ring_size_is_checked():
    with pytest.raises(ValueError, match="periods"):
        PacedCapture(Counter(), PERIOD, 0)


# ------------------------------------------------------------------ the paced sim line


def one_call(**kw) -> list[SimCall]:
    return [SimCall(callerid=CallerIdSpec(), gap_ms=100,
                    script=[Press("12#", when="answer", after_ms=300), Clear("cpc")], **kw)]


def paced_sim(calls=None, periods: int = 4, **kw):
    clock = FakeClock()
    line = SimLine(calls or one_call(abandon_after_rings=3), paced=True, periods=periods,
                   clock=clock, sleep=clock.sleep, **kw)
    return line, clock


def test_paced_sim_keeps_the_exchanges_clock_on_the_wall_clock_across_overruns():
    """A reader that stalls now and then gets the same line events, at the same samples,
    as an unpaced reader, and the same audio wherever none was lost."""
    calls = one_call(abandon_after_rings=3)
    plain = SimLine(calls, seed=5)
    ref_audio, ref_events = [], []
    while (f := plain.read()) is not None:
        ref_audio.append(f.samples)
        ref_events += f.events
    ref = np.concatenate(ref_audio)

    line, clock = paced_sim(calls, seed=5)
    start = clock.now
    got_events, lost_at = [], []
    reads = 0
    while (f := line.read()) is not None:
        reads += 1
        if f.samples.size > FRAME:
            lost_at.append((f.start, f.end - FRAME))
        else:
            assert (f.samples == ref[f.start:f.end]).all()
        got_events += f.events
        # the codec's clock is the wall clock: this frame and what the ring still holds
        # are every period captured by now
        captured = int((clock.now - start) / PERIOD + 1e-9)
        assert f.end + FRAME * line._capture.held == FRAME * captured
        clock.advance(0.3 if reads % 40 == 0 else 0.004)   # a 300 ms stall every 0.8 s
    assert [(e.kind, e.sample) for e in got_events] == [(e.kind, e.sample) for e in ref_events]
    assert lost_at and line.pacing.overruns == len(lost_at) * 11
    assert line.sample == len(ref)
    assert line.outcomes[0].rings == 3 and line.outcomes[0].caller_hung_up_at is not None


def test_a_control_while_behind_takes_effect_at_the_codecs_now_not_the_readers():
    line, clock = paced_sim(one_call())
    while not any(e.kind == "ring_stop" for e in line.read().events):
        pass
    read_to = line.sample
    clock.advance(0.050)               # 2 more periods captured, not yet read
    line.off_hook()
    assert line.outcomes[0].answered_at == read_to + 2 * FRAME
    assert line.read().start == read_to       # the ring still hands them out in order


def test_writes_on_a_paced_sim_line_never_wait():
    line, clock = paced_sim(one_call())
    line.read()
    line.off_hook()
    sleeps = len(clock.sleeps)
    for _ in range(50):
        line.write(np.zeros(FRAME, np.int16))
    assert len(clock.sleeps) == sleeps


def test_capabilities_and_pacing_of_each_kind_of_line():
    line, _ = paced_sim()
    assert line.capabilities.paced and line.paced
    assert line.capabilities.loop_current                # the rest as unpaced
    assert line.pacing == Pacing(True, 0, 0, 0.0)
    plain = SimLine(one_call())
    assert not plain.capabilities.paced and plain.pacing == UNPACED
    assert plain.pacing_mark() == UNPACED
    replay = ReplayLine(np.zeros(800, np.int16))
    assert not replay.capabilities.paced and replay.pacing == UNPACED
    assert ModemLine.capabilities.paced


def test_the_call_recorder_passes_pacing_through(tmp_path):
    line, clock = paced_sim()
    rec = RecordingLine(line, tmp_path)
    rec.read()
    clock.advance(0.2)
    rec.read()
    assert rec.pacing == line.pacing and rec.pacing.overruns == 6
    assert rec.pacing_mark().overruns == 6 and line.pacing.max_lag_ms == 0.0
    rec.close()


# ------------------------------------------------------------------ configuration


def sim_table(text: str) -> Table:
    return Table(tomllib.loads(text)).sub("line")


def test_config_paced_and_periods():
    line = make_line(sim_table('[line.sim]\npaced = true\nperiods = 8'))
    assert isinstance(line, SimLine) and line.paced and line.capabilities.paced
    assert line._capture.periods == 8
    line = make_line(sim_table('[line.sim]\nseed = 1'))
    assert not line.paced and not line.capabilities.paced


@pytest.mark.parametrize("text, message", [
    ("paced = 1", "line.sim.paced: expected true or false, got 1"),
    ('paced = "yes"', "line.sim.paced: expected true or false"),
    ("periods = 1", "line.sim.periods: 1 is outside 2..32"),
    ("periods = 33", "line.sim.periods: 33 is outside 2..32"),
    ("periods = 4.5", "line.sim.periods: expected an integer"),
    ("periods = true", "line.sim.periods: expected an integer"),
])
def test_bad_pacing_config_names_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        make_line(sim_table(f"[line.sim]\n{text}"))


def test_bad_pacing_arguments_name_the_field():
    with pytest.raises(ValueError, match="periods"):
        SimLine(one_call(), paced=True, periods=1)
    with pytest.raises(ValueError, match="paced"):
        SimLine(one_call(), paced="yes")


# ------------------------------------------------------------------ the real clock


def test_a_paced_sim_line_on_the_real_clock_delivers_promptly_read_frames_without_loss():
    line = SimLine(one_call(), paced=True, periods=16)
    began = time.monotonic()
    frames = [line.read() for _ in range(15)]
    elapsed = time.monotonic() - began
    assert [f.start for f in frames] == [k * FRAME for k in range(15)]
    assert all(f.samples.size == FRAME for f in frames)
    assert line.pacing.overruns == 0
    assert elapsed >= 15 * PERIOD - 0.005      # it can never run ahead of the wall clock
