"""Frame-level listening the engine needs beside the signal core's detectors.

`ToneShare` measures how much of a frame's energy sits at given frequencies
(a least-squares fit onto sines and cosines: one small matrix product per
frame). Two uses:

- answer detection in a supervised transfer: after dialling, the line
  carries ringback or busy (all energy at the tone plan's frequencies) until
  the agent answers; a voice puts energy everywhere else. Cadence-based
  tone detection needs seconds to tell ringback from an answer, this needs
  a few frames;
- the call-waiting alert (CAS / DT-AS, 2130 + 2750 Hz) that announces an
  off-hook caller ID burst, so the FSK receiver runs only when one may come.
"""

from __future__ import annotations

import numpy as np

from ..dsp import RATE
from ..dsp.level import dbm0_to_rms
from ..dsp.tones import TonePlan

CAS_FREQS = (2130.0, 2750.0)


class ToneShare:
    """Share (0..1) of a frame's energy at the given frequencies."""

    def __init__(self, freqs, rate: int = RATE) -> None:
        self.freqs = tuple(sorted(set(float(f) for f in freqs)))
        self.rate = rate
        self._bases: dict[int, np.ndarray] = {}

    def _basis(self, n: int) -> np.ndarray:
        q = self._bases.get(n)
        if q is None:
            t = np.arange(n) / self.rate
            cols = []
            for f in self.freqs:
                cols += [np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]
            q, _ = np.linalg.qr(np.column_stack(cols))
            q = q.astype(np.float32)
            self._bases[n] = q
        return q

    def share(self, x: np.ndarray, energy: float) -> float:
        """`x` float32 samples, `energy` their sum of squares."""
        if energy <= 0.0:
            return 0.0
        c = x @ self._basis(len(x))
        return float(c @ c) / energy


def plan_frequencies(plan: TonePlan) -> tuple[float, ...]:
    return tuple(sorted({f for t in plan.tones for f in t.frequencies}))


class VoiceGate:
    """Frames loud enough and not made of the plan's tones: someone speaking.

    Voice is declared after `need` such frames among the last `window`, so a
    click or a burst of line noise does not count as an answer.
    """

    def __init__(self, plan: TonePlan, rate: int = RATE, level_dbm0: float = -42.0,
                 max_tone_share: float = 0.5, need: int = 5, window: int = 10) -> None:
        self.tones = ToneShare(plan_frequencies(plan), rate)
        self.floor = dbm0_to_rms(level_dbm0) ** 2
        self.max_share = max_tone_share
        self.need, self.window = need, window
        self.reset()

    def reset(self) -> None:
        self._hist: list[bool] = []

    def feed(self, x: np.ndarray, energy: float) -> bool:
        voiced = (energy >= self.floor * len(x)
                  and self.tones.share(x, energy) < self.max_share)
        self._hist.append(voiced)
        if len(self._hist) > self.window:
            del self._hist[0]
        return sum(self._hist) >= self.need


class CasGate:
    """The call-waiting alert tone: 2130 + 2750 Hz (GR-30 CAS, ETSI DT-AS)."""

    def __init__(self, rate: int = RATE, level_dbm0: float = -40.0, min_share: float = 0.5) -> None:
        self.tones = ToneShare(CAS_FREQS, rate)
        self.floor = dbm0_to_rms(level_dbm0) ** 2
        self.min_share = min_share
        self._run = 0

    def feed(self, x: np.ndarray, energy: float) -> bool:
        """True on the frame that completes 40 ms of alert tone."""
        if energy >= self.floor * len(x) and self.tones.share(x, energy) >= self.min_share:
            self._run += 1
            return self._run == 2
        self._run = 0
        return False
