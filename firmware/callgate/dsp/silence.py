"""Streaming silence and level detection.

The line is measured in short blocks (20 ms by default). A silence is
reported once the level has stayed below the threshold for `min_silence_ms`
(stamped with the first quiet block); sound is reported once the level is at
or above threshold + hysteresis for `min_sound_ms` (stamped with its first
block). Shorter clicks neither end a silence nor break one being timed.

Events alternate: the first is "sound" if the line is heard before
`min_silence_ms` has passed, else "silence" at sample 0. The engine uses
this as the last-resort hang-up detector (a line left silent) and to check
prompt levels (`level_dbm0`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from . import RATE
from .events import Event
from .level import dbm0_to_rms, power_to_dbm0


@dataclass(frozen=True)
class SilenceEvent(Event):
    """The line went quiet at `sample` and stayed quiet long enough."""

    level_dbm0: float = field(default=float("-inf"), repr=False)
    kind: ClassVar[str] = "silence"


@dataclass(frozen=True)
class SoundEvent(Event):
    """Sound came back at `sample` (or was heard first) after a quiet line."""

    level_dbm0: float = field(default=float("-inf"), repr=False)
    silence_ms: int = field(default=0, repr=False)
    kind: ClassVar[str] = "sound"


class SilenceDetector:
    """Streaming silence/sound detector with a live level reading."""

    def __init__(self, threshold_dbm0: float = -45.0, min_silence_ms: int = 1000,
                 block_ms: int = 20, min_sound_ms: int = 40,
                 hysteresis_db: float = 3.0) -> None:
        if not _number(threshold_dbm0) or not -90 <= threshold_dbm0 <= 3:
            raise ValueError("SilenceDetector: threshold_dbm0 must be -90..3 dBm0")
        if not isinstance(block_ms, int) or not 5 <= block_ms <= 100 or (
                RATE * block_ms) % 1000:
            raise ValueError("SilenceDetector: block_ms must be a whole number of ms, 5..100")
        if not _number(min_silence_ms) or min_silence_ms < block_ms:
            raise ValueError("SilenceDetector: min_silence_ms must be at least block_ms")
        if not _number(min_sound_ms) or min_sound_ms < 0:
            raise ValueError("SilenceDetector: min_sound_ms must be >= 0")
        if not _number(hysteresis_db) or not 0 <= hysteresis_db <= 20:
            raise ValueError("SilenceDetector: hysteresis_db must be 0..20 dB")
        self.threshold_dbm0 = float(threshold_dbm0)
        self.block = RATE * block_ms // 1000
        self._block_ms = block_ms
        self._silence_blocks = -(-int(min_silence_ms) // block_ms)
        self._sound_blocks = max(1, -(-int(min_sound_ms) // block_ms))
        self._quiet_below = dbm0_to_rms(threshold_dbm0) ** 2 * self.block
        self._loud_from = dbm0_to_rms(threshold_dbm0 + hysteresis_db) ** 2 * self.block
        self._reset()

    def _reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.float64)
        self._index = 0                 # next block's index
        self._quiet = True              # the line starts out quiet...
        self._reported = False          # ...but that is not yet a silence
        self._quiet_start: int | None = 0
        self._quiet_energy = 0.0
        self._noisy_start = 0
        self._noisy_run = 0
        self._noisy_energy = 0.0
        self._last_energy: float | None = None

    @property
    def level_dbm0(self) -> float:
        """Level of the most recent complete block (-inf before any)."""
        if self._last_energy is None:
            return float("-inf")
        return float(power_to_dbm0(self._last_energy / self.block))

    @property
    def silent(self) -> bool:
        """True while in a reported silence."""
        return self._quiet and self._reported

    def feed(self, frame: np.ndarray) -> list[Event]:
        """Consume samples; return silence/sound events completed by them."""
        x = np.asarray(frame)
        if x.ndim != 1:
            raise ValueError("SilenceDetector.feed: frame must be a 1-D array of samples")
        if self._buf.size:
            x = np.concatenate((self._buf, x))
        nb = x.size // self.block
        cut = nb * self.block
        self._buf = x[cut:].astype(np.float64)
        if nb == 0:
            return []
        blocks = x[:cut].reshape(nb, self.block).astype(np.float64)
        energy = np.einsum("ij,ij->i", blocks, blocks).tolist()
        self._last_energy = energy[-1]
        first = self._index
        self._index += nb
        if self._nothing_can_happen(energy):
            return []
        out: list[Event] = []
        for i, e in enumerate(energy):
            self._step(first + i, e, out)
        return out

    def flush(self) -> list[Event]:
        """End of stream: nothing is pending; start afresh at sample 0."""
        self._reset()
        return []

    def _nothing_can_happen(self, energy: list[float]) -> bool:
        """Skip the per-block walk when no block can change anything."""
        if self._quiet and self._reported:
            return self._noisy_run == 0 and max(energy) < self._loud_from
        if not self._quiet and self._quiet_start is None:
            return min(energy) >= self._quiet_below
        return False

    def _step(self, index: int, energy: float, out: list) -> None:
        # Hysteresis guards a reported silence only; otherwise one threshold.
        loud = self._loud_from if self._quiet and self._reported else self._quiet_below
        if energy >= loud:
            if self._noisy_run == 0:
                self._noisy_start, self._noisy_energy = index, 0.0
            self._noisy_run += 1
            self._noisy_energy += energy
            if self._noisy_run >= self._sound_blocks:
                self._sound(out)
                return
            if self._quiet_start is not None:
                self._quiet_energy += energy     # a click inside a quiet stretch
            return
        self._noisy_run = 0
        if self._quiet_start is None:
            self._quiet_start, self._quiet_energy = index, 0.0
        self._quiet_energy += energy
        self._check_silence(index, out)

    def _sound(self, out: list) -> None:
        """Enough consecutive noisy blocks: sound is back (or never left)."""
        if self._quiet:
            start = self._noisy_start * self.block
            quiet_from = (self._quiet_start or 0) * self.block
            level = float(power_to_dbm0(self._noisy_energy / (self._noisy_run * self.block)))
            out.append(SoundEvent(start, level_dbm0=round(level, 1),
                                  silence_ms=(start - quiet_from) * 1000 // RATE))
            self._quiet = False
        self._quiet_start = None
        self._noisy_run = 0

    def _check_silence(self, index: int, out: list) -> None:
        start = self._quiet_start
        if start is None or (self._quiet and self._reported):
            return
        length = index + 1 - start
        if length >= self._silence_blocks:
            level = float(power_to_dbm0(self._quiet_energy / (length * self.block)))
            out.append(SilenceEvent(start * self.block, level_dbm0=round(level, 1)))
            self._quiet, self._reported = True, True


LevelDetector = SilenceDetector
"""The same detector, by the name the engine's level checks use."""


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
