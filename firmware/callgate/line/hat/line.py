"""The `hat` backend: an FXO DAA on a Raspberry Pi's pins, audio through ALSA.

The board is data: hw/<board>.toml names the GPIO lines (ring detect, hook
relay, caller-ID path enable, LEDs, optional loop current and polarity
inputs), their active levels, the ring and relay timing and the codec
(board.py reads it). This file turns that into the Line interface of base.py:

- the codec's capture stream is the clock: read() blocks for one 20 ms period,
  so the backend is paced by the hardware, and every sample count is real time;
- GPIO edges carry kernel CLOCK_MONOTONIC stamps; they are mapped to line
  samples through the moments each capture period completed (the earliest
  completion in the last second is the least delayed, so it anchors the map);
- a hook flash is timed on that same map, to the millisecond, not the frame.

gpiod and alsaaudio are imported only by open(), so the package (and every
other backend) works on a machine that has neither.
"""

from __future__ import annotations

import time
from collections import deque
from importlib import import_module

import numpy as np

from ...config import Table
from ...dsp import RATE
from ..base import (FRAME_SAMPLES, Capabilities, FlashDone, Frame, Line, LineError, LineFault,
                    LineRestored, LoopCurrent, PolarityReversal)
from .alsa import AlsaAudio
from .board import DEFAULT_BOARD, Board, audio_spec, find_board, load_board
from .gpio import GpioLines, RingBursts

REOPEN_S = 1.0          # retry a lost audio device this often


# ----------------------------------------------------------------- clocks


class SampleClock:
    """Maps CLOCK_MONOTONIC nanoseconds to line samples through capture completions.

    A capture read returns at (or just after) the moment its last sample was
    taken, so `t - n/rate` is the stream's start time plus scheduling delay;
    the smallest value over the last second is the best estimate and follows
    the slow drift between the codec's crystal and the CPU's.
    """

    def __init__(self, rate: int = RATE, window: int = 50) -> None:
        self.rate = rate
        self._offsets: deque[float] = deque(maxlen=window)

    @property
    def ready(self) -> bool:
        return bool(self._offsets)

    def mark(self, sample: int, t_ns: int) -> None:
        """Sample `sample` (the end of a frame just read) was taken at `t_ns`."""
        self._offsets.append(t_ns - sample * 1e9 / self.rate)

    def restart(self) -> None:
        self._offsets.clear()

    def to_sample(self, t_ns: int) -> int:
        return int(round((t_ns - min(self._offsets)) * self.rate / 1e9))

    def to_ns(self, sample: int) -> int:
        return int(min(self._offsets) + sample * 1e9 / self.rate)


# ----------------------------------------------------------------- the line


def _ms(ms: float) -> int:
    return int(round(ms * RATE / 1000.0))


class HatLine(Line):
    """A DAA HAT: GPIO ring detect and hook relay via libgpiod v2, audio via ALSA."""

    def __init__(self, board: Board, *, gpiod=None, alsaaudio=None, chips: list[str] | None = None,
                 now_ns=time.monotonic_ns, sleep=time.sleep) -> None:
        super().__init__()
        self.board = board
        self.frame_samples = FRAME_SAMPLES
        self.capabilities = Capabilities(
            loop_current="loop_current" in board.pins, polarity="polarity" in board.pins,
            parallel_handset=False, full_duplex=True, onhook_audio=board.onhook_audio,
            paced=True)
        self._gpiod_module = gpiod
        self._alsa_module = alsaaudio
        self._chips = chips
        self._now_ns = now_ns
        self._sleep = sleep
        self.gpio: GpioLines | None = None
        self.audio: AlsaAudio | None = None
        self.clock = SampleClock()
        self.ring = RingBursts(_ms(board.ring.gap_ms), board.ring.min_edges)
        self._edges: list = []              # GPIO edges not yet inside a frame
        self._events: list = []             # events for the next frame
        self._listen_cid = False
        self._led_ring = False
        self._flash_end: int | None = None  # sample the relay closes again
        self._ring_quiet_until = 0          # ring input ignored before this sample
        self._loop_quiet_until = 0
        self._fault: str | None = None
        self._next_reopen = 0
        self._opened = False

    # ------------------------------------------------------------ config
    @classmethod
    def from_config(cls, table: Table) -> "HatLine":
        """[line.hat]: board (name or path), hw_dir, and codec overrides: device, rate,
        periods, rx_gain_db, tx_gain_db (they replace the board file's [audio] values)."""
        hw_dir = table.get("hw_dir", str, None)
        board = load_board(find_board(table.get("board", str, DEFAULT_BOARD), hw_dir))
        audio = audio_spec(table, board.audio)
        for key in ("period_ms", "capture_channels", "capture_channel", "playback_channels"):
            table.used.discard(key)      # board properties, not overrides: flag them below
        table.reject_unknown()
        return cls(Board(board.name, board.path, board.pins, board.ring, board.hook, audio,
                         board.onhook_audio))

    # ------------------------------------------------------------ lifecycle
    def _module(self, name: str, given, extra: str):
        if given is not None:
            return given
        try:
            return import_module(name)
        except ImportError:
            raise LineError(f"hat line needs the Python module {name!r} ({extra}); "
                            f"install callgate[hat]") from None

    def open(self) -> None:
        if self._opened:
            return
        gpiod = self._module("gpiod", self._gpiod_module, "PyPI gpiod >= 2, libgpiod v2")
        alsa = self._module("alsaaudio", self._alsa_module, "PyPI pyalsaaudio")
        if not hasattr(gpiod, "request_lines"):
            raise LineError("hat line needs gpiod >= 2 (libgpiod v2 API); the installed one "
                            "is the old v1 binding")
        self.gpio = GpioLines(gpiod, self.board.pins, self._chips)
        self.gpio.open()
        self.audio = AlsaAudio(alsa, self.board.audio, self.frame_samples)
        try:
            self.audio.open()
        except LineError:
            self.gpio.close()
            raise
        self._opened = True
        self._off_hook = False
        self._apply_outputs()

    def close(self) -> None:
        if not self._opened:
            return
        try:
            self.gpio.set("hook", False)
            self.gpio.set("cid_enable", False)
            self.gpio.set("led_ring", False)
            self.gpio.set("led_call", False)
        finally:
            self.gpio.close()
            self.audio.close()
            self._opened = False
            self._off_hook = False

    @property
    def overruns(self) -> int:
        return self.audio.overruns if self.audio else 0

    @property
    def underruns(self) -> int:
        return self.audio.underruns if self.audio else 0

    # ------------------------------------------------------------ controls
    def _apply_outputs(self) -> None:
        closed = self._off_hook and self._flash_end is None
        self.gpio.set("hook", closed)
        self.gpio.set("cid_enable", self._listen_cid and not self._off_hook)
        self.gpio.set("led_call", self._off_hook)

    def _hook_moved(self) -> None:
        self._ring_quiet_until = self._sample + _ms(self.board.ring.settle_ms)
        self._loop_quiet_until = self._sample + _ms(self.board.hook.loop_settle_ms)

    def off_hook(self) -> None:
        self._require_open()
        if self._off_hook and self._flash_end is None:
            return
        self._off_hook = True
        self._flash_end = None
        self._events += self.ring.cut(self._sample)
        self._led_ring = False
        self.gpio.set("led_ring", False)
        self._hook_moved()
        self._apply_outputs()

    def on_hook(self) -> None:
        self._require_open()
        if not self._off_hook:
            return
        self._off_hook = False
        self._flash_end = None
        self._hook_moved()
        self._apply_outputs()

    def flash(self, ms: float) -> None:
        """Release the relay now; it closes again `ms` later on the line's clock."""
        self._require_open()
        if ms <= 0:
            raise ValueError(f"flash length must be positive, got {ms} ms")
        if not self._off_hook:
            self.off_hook()
        # from now, on the line's clock: the audio of this moment is still in the codec
        now = self.clock.to_sample(self._now_ns()) if self.clock.ready else self._sample
        self._flash_end = max(now, self._sample) + _ms(ms)
        self._hook_moved()
        self._apply_outputs()

    def listen_callerid(self, on: bool) -> None:
        """Switch the DAA's on-hook caller ID path (only connected while on hook)."""
        self._require_open()
        self._listen_cid = bool(on)
        self._apply_outputs()

    def _require_open(self) -> None:
        if not self._opened:
            self.open()

    def _end_flash(self, at: int) -> None:
        self._flash_end = None
        self.gpio.set("hook", True)
        self._hook_moved()
        self._events.append(FlashDone(at + _ms(self.board.hook.operate_ms)))

    # ------------------------------------------------------------ audio
    def write(self, samples: np.ndarray) -> None:
        self._require_open()
        if not self._off_hook or self._flash_end is not None or self._fault:
            return
        try:
            self.audio.write(samples)
        except self.audio.alsa.ALSAAudioError as err:
            self._lose_audio(err)

    def read(self) -> Frame | None:
        self._require_open()
        start = self._sample
        n = self.frame_samples
        # a flash that ends inside this frame: wait for its moment, then close the relay
        if self._flash_end is not None and self._flash_end <= start + n and self.clock.ready:
            wait = (self.clock.to_ns(self._flash_end) - self._now_ns()) / 1e9
            if wait > 0:
                self._sleep(wait)
            self._end_flash(max(self._flash_end, start))
        samples = self._capture()
        n = len(samples)               # longer after an overrun: the lost stretch, as silence
        end = start + n
        self._gpio_events(end)
        self._events += self.ring.advance(end)
        if self.ring.ringing != self._led_ring:
            self._led_ring = self.ring.ringing
            self.gpio.set("led_ring", self._led_ring)
        if self._flash_end is not None and self._flash_end <= end:
            self._end_flash(self._flash_end)
        events, self._events = self._events, []
        events.sort(key=lambda e: e.sample)
        self._sample = end
        return Frame(start, samples, events)

    def _capture(self) -> np.ndarray:
        n = self.frame_samples
        if self._fault:
            return self._faulted()
        overruns = self.audio.overruns
        try:
            frame = self.audio.read()
        except self.audio.alsa.ALSAAudioError as err:
            self._lose_audio(err)
            return self._faulted()
        now = self._now_ns()
        delay = self.audio.delay
        if self.audio.overruns != overruns:
            # Overrun: audio was lost for as long as we were late. Put that stretch back
            # as silence so the sample clock keeps real time, and anchor the map afresh.
            got = 0 if frame is None else len(frame)
            lost = self.clock.to_sample(now) - delay - self._sample - got if self.clock.ready else 0
            lost = min(max(lost, 0 if got else n), 10 * RATE)
            parts = [np.zeros(lost, dtype=np.int16)] + ([frame] if got else [])
            frame = np.concatenate(parts)
            self.clock.restart()
        elif frame is None:
            frame = np.zeros(n, dtype=np.int16)      # non-blocking and nothing yet
        self.clock.mark(self._sample + len(frame) + delay, now)
        return frame

    def _lose_audio(self, err: Exception) -> None:
        self._fault = f"audio device {self.board.audio.device}: {str(err).strip() or err}"
        self.audio.close()
        self._events.append(LineFault(self._sample, reason=self._fault))
        self._next_reopen = self._now_ns() + int(REOPEN_S * 1e9)

    def _faulted(self) -> np.ndarray:
        """No audio device: pace silence on the wall clock and try to reopen now and then."""
        n = self.frame_samples
        self._sleep(n / RATE)
        now = self._now_ns()
        if now >= self._next_reopen:
            try:
                self.audio.open()
            except LineError:
                self._next_reopen = now + int(REOPEN_S * 1e9)
            else:
                self._fault = None
                self.clock.restart()
                self._events.append(LineRestored(self._sample + n))
        self.clock.mark(self._sample + n, now)
        return np.zeros(n, dtype=np.int16)

    # ------------------------------------------------------------ signalling
    def _gpio_events(self, end: int) -> None:
        try:
            self._edges += self.gpio.edges()
        except OSError as err:
            if not self._fault:
                self._events.append(LineFault(self._sample, reason=f"gpio: {err}"))
            return
        keep = []
        floor = self._sample - 10 * self.frame_samples   # never stamp far before this frame
        for edge in self._edges:
            at = max(self.clock.to_sample(edge.timestamp_ns), floor)
            if at >= end:
                keep.append(edge)         # belongs to the next frame
                continue
            self._signal(edge, at)
        self._edges = keep

    def _signal(self, edge, at: int) -> None:
        if edge.signal == "ring":
            if self._off_hook or at < self._ring_quiet_until:
                return
            self._events += self.ring.edge(at)
        elif edge.signal == "loop_current":
            if self._off_hook and self._flash_end is None and at >= self._loop_quiet_until:
                self._events.append(LoopCurrent(at, present=edge.active))
        elif edge.signal == "polarity":
            if self._flash_end is None:
                self._events.append(PolarityReversal(at))


__all__ = ["HatLine", "SampleClock"]
