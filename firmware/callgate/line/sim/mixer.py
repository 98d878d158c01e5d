"""The exchange's sample clock and audio mixer.

Everything the simulated exchange does happens at a sample time: timers sit
in a heap and fire while a frame is rendered. Audio is a list of sources
(pre-rendered arrays, some looped, each with a start and a stop sample)
mixed into each frame with a few slice additions, plus line noise. One tone
at a time may loop (dial, ringback, busy...); it is remembered while we are
on hook, so it can go on when we come back.

`Mixer` is the base of `Exchange`, which supplies `signals` (the tone plan's
audio) and `_audible(leg)` (whether we hear that leg now).
"""

from __future__ import annotations

import heapq
from typing import Callable

import numpy as np

from ...dsp import RATE
from ...dsp.events import Event

NOISE_BLOCK = 4 * RATE       # line noise is drawn this many samples at a time


def ms(value: float) -> int:
    """Milliseconds to samples."""
    return int(round(value * RATE / 1000))


class Timer:
    """Something to do at a sample time; cancelled timers stay in the heap, unrun."""

    __slots__ = ("fn", "args", "cancelled")

    def __init__(self, fn: Callable, args: tuple) -> None:
        self.fn, self.args, self.cancelled = fn, args, False

    def cancel(self) -> None:
        self.cancelled = True


class Source:
    """Audio from `start` (looped when `loop`) until `stop` (None: its end)."""

    __slots__ = ("start", "stop", "data", "loop", "leg")

    def __init__(self, start: int, data: np.ndarray, leg: str, loop: bool = False) -> None:
        self.start, self.data, self.leg, self.loop = start, data, leg, loop
        self.stop: int | None = None if loop else start + len(data)


class Mixer:
    """Timers and audio sources on the sample clock; see the module docstring."""

    def __init__(self, rng: np.random.Generator, noise_rms: float | None) -> None:
        self.rng = rng
        self.noise_rms = noise_rms
        self._noise_buf = np.zeros(0, np.float32)
        self._noise_pos = 0
        self.now = 0
        self._heap: list = []
        self._seq = 0
        self._sources: list[Source] = []
        self._events: list[Event] = []
        self._loop: tuple[str, str] | None = None    # (tone, leg) of the tone now looping

    # ------------------------------------------------------------- the clock

    def at(self, t: int, fn: Callable, *args) -> Timer:
        timer = Timer(fn, args)
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, timer))
        return timer

    def render(self, start: int, n: int) -> tuple[np.ndarray, list[Event]]:
        """The received audio of [start, start + n) and the line events in it."""
        end = start + n
        heap = self._heap
        while heap and heap[0][0] < end:
            t, _, timer = heapq.heappop(heap)
            if not timer.cancelled:
                self.now = max(t, start)
                timer.fn(*timer.args)
        buf = self._noise(n)
        keep = []
        for src in self._sources:
            stop = end if src.stop is None else src.stop
            if stop <= start:
                continue              # played out or cut: gone for good
            keep.append(src)
            a, b = max(src.start, start), min(stop, end)
            if a < b:
                if src.loop:
                    buf[a - start:b - start] += src.data.take(
                        np.arange(a - src.start, b - src.start), mode="wrap")
                else:
                    buf[a - start:b - start] += src.data[a - src.start:b - src.start]
        self._sources = keep
        events = self._events
        self._events = []
        if len(events) > 1:
            events.sort(key=lambda e: e.sample)
        np.rint(buf, out=buf)
        np.minimum(buf, 32767, out=buf)
        np.maximum(buf, -32768, out=buf)
        return buf.astype(np.int16), events

    def _noise(self, n: int) -> np.ndarray:
        """The next n samples of line noise (float32), drawn a few seconds at a time."""
        if not self.noise_rms:
            return np.zeros(n, np.float32)
        if self._noise_pos + n > self._noise_buf.size:
            fresh = self.rng.standard_normal(max(NOISE_BLOCK, n), dtype=np.float32)
            fresh *= np.float32(self.noise_rms)
            self._noise_buf = np.concatenate([self._noise_buf[self._noise_pos:], fresh])
            self._noise_pos = 0
        out = self._noise_buf[self._noise_pos:self._noise_pos + n].copy()
        self._noise_pos += n
        return out

    # ------------------------------------------------------------- sources and events

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _audible(self, leg: str) -> bool:
        raise NotImplementedError      # the exchange knows the hook state

    def _play(self, t: int, data: np.ndarray, leg: str) -> int:
        """Add a one-shot source; returns its end sample."""
        if self._audible(leg):
            self._sources.append(Source(t, data, leg))
        return t + len(data)

    def _play_loop(self, t: int, tone: str | None, leg: str) -> None:
        """Make `tone` the looping tone (None: silence) from t, replacing any other.

        On hook it is only remembered, and starts when we are back off hook.
        """
        self._stop_loop(t)
        self._loop = (tone, leg) if tone else None
        if tone and self._audible(leg):
            self._sources.append(Source(t, self.signals.loop(tone), leg, loop=True))

    def _stop_loop(self, t: int) -> None:
        if self._loop is not None:
            for src in self._sources:
                if src.loop and (src.stop is None or src.stop > t):
                    src.stop = t
            self._loop = None

    def _cut(self, t: int, legs: tuple[str, ...]) -> None:
        """Silence every source of these legs from t (loops too, but remember the loop)."""
        for src in self._sources:
            if src.leg in legs and (src.stop is None or src.stop > t):
                src.stop = t

    def _resume_loop(self, t: int) -> None:
        """Back off hook after a glitch or an ignored flash: the looping tone goes on."""
        if self._loop is not None:
            tone, leg = self._loop
            self._play_loop(t, tone, leg)
