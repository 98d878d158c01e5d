"""Quick gates on 20 ms blocks: a voice on the line, and the call-waiting alert.

Both measure how much of a block's energy sits at given frequencies (a
least-squares fit onto sines and cosines: one small matrix product for all
the blocks of a frame):

- `VoiceGate`, answer detection in a supervised transfer: after dialling, the
  line carries ringback or busy (all energy at the tone plan's frequencies)
  until the agent answers; a voice puts energy everywhere else. Cadence-based
  tone detection needs seconds to tell ringback from an answer, this needs a
  tenth of one;
- `CasGate`, the call-waiting alert (GR-30 CAS, ETSI DT-AS: 2130 + 2750 Hz)
  that announces an off-hook caller ID burst, so the FSK receiver need run
  only when one may come.

Blocks are GATE_BLOCK samples counted from the last reset, and every time
is a count of blocks, so the result does not depend on how the audio was
split into frames (with 20 ms frames it is the frame-by-frame answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterable

import numpy as np

from . import RATE
from .events import Event
from .level import dbm0_to_rms
from .tones import TonePlan

GATE_BLOCK = 160
"""Samples per gate block: 20 ms."""

CAS_FREQS = (2130.0, 2750.0)

_BLOCK_MS = 1000 * GATE_BLOCK // RATE


@dataclass(frozen=True)
class VoiceEvent(Event):
    """Someone speaks (or at least: loud audio that is not the plan's tones) from `sample`."""

    kind: ClassVar[str] = "voice"


@dataclass(frozen=True)
class CasEvent(Event):
    """The call-waiting alert, from `sample`; recognised at line sample `confirmed`."""

    confirmed: int = 0
    kind: ClassVar[str] = "cas"


def _blocks_of(ms: int) -> int:
    return max(1, -(-int(ms) // _BLOCK_MS))


class BlockCutter:
    """Cuts a stream into GATE_BLOCK blocks counted from `reset(at)`, as float32.

    One buffer is reused feed after feed (it grows only for a larger feed than
    any before), so 20 ms frames cost a copy and two dot products, not fresh
    arrays. The blocks returned are views into it: valid until the next cut.
    """

    def __init__(self) -> None:
        self._buf = np.empty(4 * GATE_BLOCK, dtype=np.float32)
        self.reset()

    def reset(self, at: int = 0) -> None:
        """Drop a part-filled block; the next sample cut is line sample `at`."""
        self._first = int(at)     # line sample of the block being filled
        self._fill = 0            # samples of it held
        self._tail = 0            # where in _buf they sit (moved down lazily)

    @property
    def position(self) -> int:
        """Line sample of the next sample to be cut."""
        return self._first + self._fill

    def cut(self, frame: np.ndarray, energies: bool = True) -> tuple[int, np.ndarray,
                                                                     list[float], float]:
        """(line sample of the first complete block, the blocks (m, GATE_BLOCK), their
        energies (sums of squares; [] unless `energies`), the frame's sum of squares)."""
        n = frame.size
        fill = self._fill
        buf = self._buf
        if self._tail:
            buf[:fill] = buf[self._tail:self._tail + fill]
            self._tail = 0
        need = fill + n
        if need > buf.size:
            grown = np.empty(max(need, 2 * buf.size), dtype=np.float32)
            grown[:fill] = buf[:fill]
            self._buf = buf = grown
        seg = buf[fill:need]
        np.copyto(seg, frame)
        frame_energy = float(np.dot(seg, seg))
        m = need // GATE_BLOCK
        used = m * GATE_BLOCK
        first = self._first
        blocks = buf[:used].reshape(m, GATE_BLOCK)
        if not energies or m == 0:
            energy = []
        elif m == 1:                      # the usual 20 ms frame: one block, often the frame
            energy = [frame_energy if fill == 0 and n == GATE_BLOCK
                      else float(np.dot(blocks[0], blocks[0]))]
        else:
            energy = np.einsum("ij,ij->i", blocks, blocks).tolist()
        self._first += used
        self._fill = need - used
        self._tail = used if self._fill else 0
        return first, blocks, energy, frame_energy


class ToneShare:
    """How much of each block's energy lies at the given frequencies."""

    def __init__(self, freqs: Iterable[float]) -> None:
        self.freqs = tuple(sorted({float(f) for f in freqs}))
        t = np.arange(GATE_BLOCK) / RATE
        cols = []
        for f in self.freqs:
            cols += [np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]
        q, _ = np.linalg.qr(np.column_stack(cols))
        self.basis = q.astype(np.float32)

    def captured(self, blocks: np.ndarray) -> list[float]:
        """Energy of each block (m, GATE_BLOCK) inside the frequencies' subspace."""
        if blocks.shape[0] == 1:
            c = blocks[0] @ self.basis
            return [float(np.dot(c, c))]
        c = blocks @ self.basis
        return np.einsum("ij,ij->i", c, c).tolist()


def plan_frequencies(plan: TonePlan) -> tuple[float, ...]:
    """Every frequency the plan's tones use."""
    return tuple(sorted({f for t in plan.tones for f in t.frequencies}))


class VoiceGate:
    """Blocks loud enough and not made of the plan's tones: someone speaking.

    Voice is declared once `need_ms` of such blocks fall within the last
    `window_ms`, so a click or a burst of line noise is not an answer.
    `voiced` says whether the last complete block leaves voice declared; a
    VoiceEvent marks each time it becomes so, stamped with the first voiced
    block of the window.
    """

    def __init__(self, plan: TonePlan, level_dbm0: float = -42.0,
                 max_tone_share: float = 0.5, need_ms: int = 100, window_ms: int = 200) -> None:
        if not isinstance(plan, TonePlan):
            raise TypeError("VoiceGate: give a TonePlan (callgate.toneplans.load_toneplan)")
        if not 0.0 < max_tone_share <= 1.0:
            raise ValueError(f"VoiceGate: max_tone_share must be within 0..1, got {max_tone_share}")
        self.need = _blocks_of(need_ms)
        self.window = _blocks_of(window_ms)
        if self.need > self.window:
            raise ValueError("VoiceGate: need_ms must not exceed window_ms")
        self.tones = ToneShare(plan_frequencies(plan))
        self.floor = float(dbm0_to_rms(level_dbm0) ** 2 * GATE_BLOCK)
        self.max_share = float(max_tone_share)
        self._mask = (1 << self.window) - 1
        self._cutter = BlockCutter()
        self.reset()

    def reset(self, at: int = 0) -> None:
        """Forget what was heard; the next sample fed is line sample `at`."""
        self._cutter.reset(at)
        self.clear()

    def clear(self) -> None:
        """Forget what was heard, keeping the block grid (listening starts again)."""
        self._hist = 0            # bit k: block k blocks ago was voiced
        self.voiced = False

    def feed(self, frame: np.ndarray) -> list[VoiceEvent]:
        first, blocks, energy, _ = self._cutter.cut(np.asarray(frame))
        return self.feed_blocks(first, blocks, energy)

    def flush(self) -> list[VoiceEvent]:
        """End of stream: a part-filled block is dropped."""
        self._cutter.reset(self._cutter.position)
        return []

    def feed_blocks(self, first: int, blocks: np.ndarray,
                    energy: list[float]) -> list[VoiceEvent]:
        """Judge complete blocks starting at line sample `first` (a BlockCutter's cut)."""
        if not energy:
            return []
        floor = self.floor
        if max(energy) < floor:
            if self._hist == 0:
                return []
            voiced = [False] * len(energy)
        else:
            limit = self.max_share
            voiced = [e >= floor and cap < limit * e
                      for e, cap in zip(energy, self.tones.captured(blocks))]
        out: list[VoiceEvent] = []
        hist, mask, need = self._hist, self._mask, self.need
        for k, v in enumerate(voiced):
            hist = ((hist << 1) | v) & mask
            now = hist.bit_count() >= need
            if now and not self.voiced:
                back = hist.bit_length() - 1
                out.append(VoiceEvent(first + (k - back) * GATE_BLOCK))
            self.voiced = now
        self._hist = hist
        return out


class CasGate:
    """The call-waiting alert tone: 2130 + 2750 Hz (GR-30 CAS, ETSI DT-AS).

    Recognised once it has lasted `min_ms` (GR-30 sends 75-85 ms); one
    CasEvent per alert, however long it lasts.
    """

    def __init__(self, level_dbm0: float = -40.0, min_share: float = 0.5,
                 min_ms: int = 40) -> None:
        if not 0.0 < min_share <= 1.0:
            raise ValueError(f"CasGate: min_share must be within 0..1, got {min_share}")
        self.tones = ToneShare(CAS_FREQS)
        self.floor = float(dbm0_to_rms(level_dbm0) ** 2 * GATE_BLOCK)
        self.min_share = float(min_share)
        self.need = _blocks_of(min_ms)
        self._cutter = BlockCutter()
        self.reset()

    def reset(self, at: int = 0) -> None:
        """Forget an alert in progress; the next sample fed is line sample `at`."""
        self._cutter.reset(at)
        self._run = 0

    def feed(self, frame: np.ndarray) -> list[CasEvent]:
        first, blocks, energy, _ = self._cutter.cut(np.asarray(frame))
        return self.feed_blocks(first, blocks, energy)

    def flush(self) -> list[CasEvent]:
        """End of stream: a part-filled block is dropped."""
        self._cutter.reset(self._cutter.position)
        self._run = 0
        return []

    def feed_blocks(self, first: int, blocks: np.ndarray, energy: list[float]) -> list[CasEvent]:
        """Judge complete blocks starting at line sample `first` (a BlockCutter's cut)."""
        if not energy:
            return []
        floor = self.floor
        if max(energy) < floor:
            self._run = 0
            return []
        share = self.min_share
        out: list[CasEvent] = []
        for k, (e, cap) in enumerate(zip(energy, self.tones.captured(blocks))):
            if e < floor or cap < share * e:
                self._run = 0
                continue
            self._run += 1
            if self._run == self.need:
                end = first + (k + 1) * GATE_BLOCK
                out.append(CasEvent(end - self.need * GATE_BLOCK, confirmed=end))
        return out
