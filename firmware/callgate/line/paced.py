"""A capture ring buffer on the wall clock, in front of a line that renders on demand.

Real hardware hands the engine one 20 ms period of audio every 20 ms, into a
ring of `periods` of them (ALSA's capture buffer). An engine that falls
further behind than the ring holds loses the oldest audio (an overrun), and
the line's clock goes on without it. `PacedCapture` puts that discipline in
front of a frame source that would otherwise run as fast as it is read (the
sim exchange), so the engine can be run, and measured, under the real-time
pressure of a device without the device.

The model is lazy, with no producer thread. Period k is captured (complete
in the ring) at ``t0 + k * period``; the stream starts at the first look
(`start()`, or the first read or control), and t0 is one period after that:
a period is there once its last sample is. Whenever someone looks, every
period captured by then is rendered from the source into the ring; beyond
`periods` held, the oldest are overruns: rendered and thrown away, so the
source's own clock (the exchange's sample clock, its caller's timers) stays
on the wall clock while their audio is lost. A read with nothing captured
sleeps until the next period is.

The frame read after an overrun covers the lost stretch as silence followed
by the oldest period kept, as HatLine returns one after an ALSA overrun, and
carries the line events of the lost stretch at their own samples: a reader
never sees the sample clock skip nor an event go missing (ring voltage and
loop current do not travel with the audio on real hardware either).

Measures (see base.Pacing): a frame's lag is the moment it is taken less the
capture time of its first period (for the frame after an overrun, that of
the first period lost: how far behind the reader had fallen); a frame is late
when its lag exceeds one period; `max_lag_ms` is kept per window, reset by
`mark()`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .base import Frame, Pacing

EPSILON_S = 1e-9
"""Clock arithmetic slack: a period due "now" by float rounding is due."""


@dataclass
class _Lost:
    """Periods overrun since the last read: one contiguous stretch before the ring's first."""

    first: int                   # index of the first period lost
    start: int                   # its first line sample
    samples: int = 0
    events: list = field(default_factory=list)


class PacedCapture:
    """Hands out the frames of `source` at the wall-clock rate, through a ring of `periods`.

    `source()` renders the next frame (or None once the line has ended); it is
    called only for periods the hardware would have captured by then.
    `clock` (seconds, monotonic) and `sleep` are injectable for tests.
    """

    def __init__(self, source: Callable[[], Frame | None], period_s: float = 0.02,
                 periods: int = 4, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
            raise ValueError(f"periods: {periods!r} is not a whole number of periods >= 1")
        if not period_s > 0:
            raise ValueError(f"period_s: {period_s!r} must be above 0")
        self.source = source
        self.period = float(period_s)
        self.periods = periods
        self.clock = clock
        self.sleep = sleep
        self.overruns = 0            # periods lost, from the start
        self.late_frames = 0         # frames taken more than one period after capture
        self._max_lag = 0.0          # seconds, this window
        self._ring: deque[tuple[int, Frame]] = deque()
        self._lost: _Lost | None = None
        self._t0: float | None = None
        self._next = 0               # index of the next period to capture
        self._ended = False          # the source has no more frames

    # ------------------------------------------------------------------ the wall clock

    def start(self) -> None:
        """Start the stream now, if it has not started; the first period is due in one."""
        if self._t0 is None:
            self._t0 = self.clock() + self.period

    def captured_at(self, k: int) -> float:
        """The wall time period `k` is complete in the ring."""
        self.start()
        return self._t0 + k * self.period

    def _due(self, now: float) -> int:
        """How many periods the hardware has captured by `now`."""
        if now + EPSILON_S < self._t0:
            return 0
        return int((now - self._t0 + EPSILON_S) // self.period) + 1

    def catch_up(self) -> float:
        """Capture every period due by now (the oldest beyond the ring are lost); the time."""
        self.start()
        now = self.clock()
        due = self._due(now)
        while self._next < due and not self._ended:
            frame = self.source()
            if frame is None:
                self._ended = True
                break
            self._ring.append((self._next, frame))
            self._next += 1
            if len(self._ring) > self.periods:
                self._overrun(*self._ring.popleft())
        return now

    def _overrun(self, k: int, frame: Frame) -> None:
        """Period `k` was overwritten before the reader took it: its audio is gone."""
        self.overruns += 1
        if self._lost is None:
            self._lost = _Lost(k, frame.start)
        self._lost.samples += len(frame.samples)
        self._lost.events += frame.events

    # ------------------------------------------------------------------ the reader

    @property
    def held(self) -> int:
        """Periods captured and not yet taken."""
        return len(self._ring)

    def read(self) -> Frame | None:
        """The oldest frame captured, waiting for the next period if none is; None at the end."""
        now = self.catch_up()
        while not self._ring and not self._ended:
            wait = self.captured_at(self._next) - now
            if wait > 0:
                self.sleep(wait)
            now = self.catch_up()
        if not self._ring:
            return None
        k, frame = self._ring.popleft()
        lost, self._lost = self._lost, None
        if lost is not None:
            k = lost.first
            frame = Frame(lost.start,
                          np.concatenate([np.zeros(lost.samples, np.int16), frame.samples]),
                          lost.events + frame.events)
        self._taken(k, now)
        return frame

    def _taken(self, k: int, now: float) -> None:
        lag = max(0.0, now - self.captured_at(k))
        if lag > self.period + EPSILON_S:
            self.late_frames += 1
        self._max_lag = max(self._max_lag, lag)

    # ------------------------------------------------------------------ measures

    @property
    def pacing(self) -> Pacing:
        return Pacing(True, self.overruns, self.late_frames, self._max_lag * 1000.0)

    def mark(self) -> Pacing:
        """`pacing` now, then a new max-lag window (see base.Pacing)."""
        now = self.pacing
        self._max_lag = 0.0
        return now
