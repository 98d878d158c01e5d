"""A fake of pyalsaaudio (the `alsaaudio` module) over a fake sound card and a fake clock.

It behaves as pyalsaaudio 0.10/0.11 and ALSA do, as far as callgate relies on them:
- PCM(type=, mode=, device=, rate=, channels=, format=, periodsize=, periods=) opens a
  device or raises ALSAAudioError "<reason> [<device>]"; the rate is set "near", so a
  card that cannot do the rate asked runs at its nearest one (info()["rate"] tells);
- capture read() in PCM_NORMAL blocks until a period is complete (the fake clock moves
  on) and returns (frames, bytes); if the application fell more than the buffer behind,
  the stream is in XRUN and read() returns (-EPIPE, b""); the next read() prepares and
  restarts it, the lost audio is gone;
- playback write() returns the frames it took (0 when a PCM_NONBLOCK buffer is full);
  a stream that ran dry is in XRUN (state()) and write() prepares it again itself;
- state() returns the SND_PCM_STATE_* numbers; close() drains playback.
"""

from __future__ import annotations

import errno
import types

import numpy as np

PCM_PLAYBACK, PCM_CAPTURE = 0, 1
PCM_NORMAL, PCM_NONBLOCK, PCM_ASYNC = 0, 1, 2
PCM_FORMAT_S16_LE = 2
(PCM_STATE_OPEN, PCM_STATE_SETUP, PCM_STATE_PREPARED, PCM_STATE_RUNNING, PCM_STATE_XRUN,
 PCM_STATE_DRAINING, PCM_STATE_PAUSED, PCM_STATE_SUSPENDED, PCM_STATE_DISCONNECTED) = range(9)


class FakeClock:
    """CLOCK_MONOTONIC for the fakes: moves only when a device blocks or someone sleeps."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self.ns = start_ns

    def now_ns(self) -> int:
        return self.ns

    def sleep(self, seconds: float) -> None:
        self.ns += max(0, int(round(seconds * 1e9)))

    def advance_to(self, ns: int) -> None:
        self.ns = max(self.ns, int(ns))


class FakeSoundCard:
    """One card: what its ADC hears (a function of absolute frame index) and what its DAC played.

    `line` is the capture signal at the card's rate, indexed from clock time `t0_ns`
    (int16, mono; silence outside it). Playback is recorded the same way into `played`.
    """

    def __init__(self, clock: FakeClock, rates=(8000,), channels=(1, 2)) -> None:
        self.clock = clock
        self.rates = tuple(rates)
        self.channels = tuple(channels)
        self.line = np.zeros(0, dtype=np.int16)
        self.t0_ns = clock.now_ns()
        self.played: dict[int, np.ndarray] = {}     # absolute start frame -> samples (ch 0)
        self.present = True

    def frame_at(self, rate: int, ns: int) -> int:
        return int((ns - self.t0_ns) * rate // 1_000_000_000)

    def capture(self, rate: int, start: int, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        lo, hi = max(start, 0), min(start + n, len(self.line))
        if hi > lo:
            out[lo - start:hi - start] = self.line[lo:hi]
        return out

    def playback_signal(self) -> np.ndarray:
        """Everything played, placed at its time (silence in gaps), channel 0."""
        if not self.played:
            return np.zeros(0, dtype=np.int16)
        end = max(k + len(v) for k, v in self.played.items())
        out = np.zeros(end, dtype=np.int16)
        for k, v in sorted(self.played.items()):
            out[k:k + len(v)] = v
        return out


def make_module(cards: dict[str, FakeSoundCard]) -> types.ModuleType:
    """A module object that stands in for `alsaaudio`, serving `cards` by device name."""
    mod = types.ModuleType("fake_alsaaudio_module")

    class ALSAAudioError(Exception):
        pass

    class PCM:
        def __init__(self, type=PCM_PLAYBACK, mode=PCM_NORMAL, rate=44100, channels=2,
                     format=PCM_FORMAT_S16_LE, periodsize=32, periods=4, device="default",
                     cardindex=-1):
            card = cards.get(device)
            if card is None or not card.present:
                raise ALSAAudioError(f"No such file or directory [{device}]")
            if format != PCM_FORMAT_S16_LE:
                raise ALSAAudioError(f"Invalid argument [{device}]")
            if channels not in card.channels:
                raise ALSAAudioError(f"Invalid argument [{device}]")
            self.card = card
            self.device = device
            self.type, self.mode = type, mode
            self.rate = min(card.rates, key=lambda r: abs(r - rate))    # set_rate_near
            self.channels = channels
            self.periodsize = periodsize
            self.periods = periods
            self.buffer = periodsize * periods
            self.framesize = 2 * channels
            self._state = PCM_STATE_PREPARED
            self._start = 0          # absolute card frame where the running stream began
            self._done = 0           # frames read / written since then
            self.open_ = True
            self.writes = 0

        def _check(self):
            if not self.open_:
                raise ALSAAudioError("PCM device is closed")
            if not self.card.present:
                self._state = PCM_STATE_DISCONNECTED
                raise ALSAAudioError(f"No such device [{self.device}]")

        def _now(self) -> int:
            return self.card.frame_at(self.rate, self.card.clock.now_ns())

        def _ns(self, frame: int) -> int:
            return self.card.t0_ns + -(-frame * 1_000_000_000 // self.rate)

        def _update(self):
            if self._state != PCM_STATE_RUNNING:
                return
            elapsed = self._now() - self._start
            if self.type == PCM_CAPTURE and elapsed - self._done > self.buffer:
                self._state = PCM_STATE_XRUN
            if self.type == PCM_PLAYBACK and elapsed > self._done:
                self._state = PCM_STATE_XRUN

        def info(self):
            return {"rate": self.rate, "channels": self.channels,
                    "period_size": self.periodsize, "periods": self.periods,
                    "buffer_size": self.buffer, "name": self.device}

        def state(self):
            self._check()
            self._update()
            return self._state

        def pcmtype(self):
            return self.type

        def pcmmode(self):
            return self.mode

        def cardname(self):
            return self.device

        def read(self):
            self._check()
            if self.type != PCM_CAPTURE:
                raise ALSAAudioError(f"Cannot read from playback PCM [{self.device}]")
            self._update()
            if self._state in (PCM_STATE_XRUN, PCM_STATE_SETUP):
                self._state = PCM_STATE_PREPARED
            if self._state == PCM_STATE_PREPARED:       # readi starts the stream
                self._state = PCM_STATE_RUNNING
                self._start, self._done = self._now(), 0
            ready = self._start + self._done + self.periodsize
            if self._now() < ready:
                if self.mode == PCM_NONBLOCK:
                    return 0, b""
                self.card.clock.advance_to(self._ns(ready))    # block for the period
            self._update()
            if self._state == PCM_STATE_XRUN:
                return -errno.EPIPE, b""
            first = self._start + self._done
            mono = self.card.capture(self.rate, first, self.periodsize)
            self._done += self.periodsize
            data = np.repeat(mono[:, None], self.channels, axis=1)
            return self.periodsize, data.astype("<i2").tobytes()

        def write(self, data):
            self._check()
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("a bytes-like object is required")
            if len(data) % self.framesize:
                raise ALSAAudioError("Data size must be a multiple of framesize")
            self._update()
            if self._state in (PCM_STATE_XRUN, PCM_STATE_SETUP):
                self._state = PCM_STATE_PREPARED
            frames = len(data) // self.framesize
            if self._state == PCM_STATE_PREPARED:
                self._state = PCM_STATE_RUNNING
                self._start, self._done = self._now(), 0
            room = self.buffer - (self._done - (self._now() - self._start))
            if frames > room:
                if self.mode == PCM_NONBLOCK:
                    frames = max(room, 0)
                else:
                    wait = self._start + self._done + frames - self.buffer
                    self.card.clock.advance_to(self._ns(wait))
            if frames == 0:
                return 0
            pcm = np.frombuffer(bytes(data[:frames * self.framesize]), dtype="<i2")
            self.card.played[self._start + self._done] = pcm.reshape(-1, self.channels)[:, 0]
            self._done += frames
            self.writes += 1
            return frames

        def close(self):
            self.open_ = False

    mod.PCM = PCM
    mod.ALSAAudioError = ALSAAudioError
    for name, value in globals().items():
        if name.startswith("PCM_"):
            setattr(mod, name, value)
    mod.pcms = lambda type=PCM_PLAYBACK: list(cards)
    mod.cards = lambda: list(cards)
    return mod
