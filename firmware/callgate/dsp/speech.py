"""Active speech level (the idea of ITU-T P.56 method B) and clipping, for prompts.

A prompt's loudness is the level of its speech, not of its pauses and not of
its loudest peak: two recordings normalised to the same active level sound
equally loud on the line whatever their pauses or crest factor. So, as P.56
method B does:

- the envelope is the rectified signal smoothed twice with a 0.03 s time
  constant;
- for each activity threshold c (octaves of one int16 step), a sample is
  active while the envelope is at or above c, or was so within the last
  0.2 s (the hangover, so that the gaps between syllables count as speech);
- the active level at c is the signal's energy over the active samples only;
  the speech level is the one where it is 15.9 dB (the margin) above c.

The crossing is found between two octave thresholds and then refined by
bisection on the same function, so that a gain change moves the measured
level by the gain (to within a few hundredths of a dB), not by an
interpolation error. Levels are in dBm0 with the project's convention
(dsp/level.py: a full-scale sine is +3.14 dBm0). Pure: arrays in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from . import RATE
from .level import power_to_dbm0

TIME_CONSTANT_S = 0.03
HANGOVER_S = 0.2
MARGIN_DB = 15.9
THRESHOLDS = 2.0 ** np.arange(16)          # int16 units: 1, 2, 4 ... 32768
REFINE_STEPS = 14                            # bisection steps inside the octave
INT16_FULL_SCALE = 32768.0


@dataclass(frozen=True)
class SpeechLevel:
    """What the level meter found in one piece of audio."""

    level_dbm0: float        # active speech level; -inf when nothing is active
    activity: float          # share of the samples that are active speech, 0..1
    threshold: float         # the envelope threshold (int16 units) at the crossing
    peak_dbfs: float         # largest sample, dB relative to int16 full scale
    seconds: float

    @property
    def active_seconds(self) -> float:
        return self.activity * self.seconds


def envelope(x: np.ndarray, rate: int = RATE, backward: bool = False) -> np.ndarray:
    """|x| smoothed twice with the P.56 time constant; `backward` runs it from the end,
    so that it rises ahead of an onset instead of after it (for trimming)."""
    g = math.exp(-1.0 / (rate * TIME_CONSTANT_S))
    a = np.abs(np.asarray(x, dtype=np.float64))
    if backward:
        a = a[::-1]
    q = lfilter([(1.0 - g) ** 2], [1.0, -2.0 * g, g * g], a)
    return q[::-1] if backward else q


def active_mask(q: np.ndarray, threshold: float, rate: int = RATE) -> np.ndarray:
    """Samples whose envelope is at or above `threshold`, or was within the hangover."""
    n = q.size
    hang = math.ceil(HANGOVER_S * rate)
    idx = np.arange(n)
    last = np.maximum.accumulate(np.where(q >= threshold, idx, -hang - 2))
    return idx - last <= hang


def _active_count(q: np.ndarray, threshold: float, rate: int) -> int:
    return int(np.count_nonzero(active_mask(q, threshold, rate)))


def _excess_db(energy: float, count: int, threshold: float) -> float:
    """Active level at this threshold minus the threshold, in dB (-inf: no activity)."""
    if count == 0:
        return -math.inf
    return 10.0 * math.log10(energy / count) - 20.0 * math.log10(threshold)


def measure(samples: np.ndarray, rate: int = RATE) -> SpeechLevel:
    """Active speech level, activity, threshold and peak of int16-scaled samples."""
    x = np.asarray(samples, dtype=np.float64)
    n = x.size
    seconds = n / rate
    peak = float(np.max(np.abs(x))) if n else 0.0
    peak_dbfs = 20.0 * math.log10(peak / INT16_FULL_SCALE) if peak > 0 else -math.inf
    energy = float(x @ x)
    if n == 0 or energy <= 0.0:
        return SpeechLevel(-math.inf, 0.0, 0.0, peak_dbfs, seconds)
    q = envelope(x, rate)
    counts = [_active_count(q, c, rate) for c in THRESHOLDS]
    excess = [_excess_db(energy, a, c) for a, c in zip(counts, THRESHOLDS)]
    j = next((k for k, d in enumerate(excess) if d <= MARGIN_DB), None)
    if j is None:                       # louder than every threshold allows: take the top
        j = len(THRESHOLDS) - 1
    if j == 0 or counts[j] == 0:
        k = j if counts[j] else max(j - 1, 0)
        return _result(energy, counts[k], THRESHOLDS[k], n, peak_dbfs, seconds)
    lo, hi = THRESHOLDS[j - 1], THRESHOLDS[j]       # excess(lo) > margin >= excess(hi)
    count = counts[j]
    for _ in range(REFINE_STEPS):
        mid = math.sqrt(lo * hi)
        a = _active_count(q, mid, rate)
        if a and _excess_db(energy, a, mid) <= MARGIN_DB:
            hi, count = mid, a
        else:
            lo = mid
    return _result(energy, count, hi, n, peak_dbfs, seconds)


def _result(energy: float, count: int, threshold: float, n: int, peak_dbfs: float,
            seconds: float) -> SpeechLevel:
    if count == 0:
        return SpeechLevel(-math.inf, 0.0, float(threshold), peak_dbfs, seconds)
    level = float(power_to_dbm0(energy / count))
    return SpeechLevel(level, count / n, float(threshold), peak_dbfs, seconds)


def active_speech_level_dbm0(samples: np.ndarray, rate: int = RATE) -> tuple[float, float]:
    """(active speech level in dBm0, activity fraction 0..1) of int16-scaled samples."""
    m = measure(samples, rate)
    return m.level_dbm0, m.activity


def clipped_runs(samples: np.ndarray, full_scale: float = INT16_FULL_SCALE,
                 near: float = 0.98, min_run: int = 3) -> int:
    """How many times the audio sits flat at (or near) full scale for `min_run` samples.

    Clipping flattens the waveform against the limit: the same extreme value
    sample after sample. Requiring the samples to be equal, not merely large,
    keeps a loud but clean peak at a high sample rate (which changes a little
    from sample to sample) from counting.
    """
    x = np.asarray(samples)
    if x.size < min_run:
        return 0
    loud = np.abs(x.astype(np.float64)) >= near * full_scale
    flat = loud[1:] & loud[:-1] & (x[1:] == x[:-1])
    if not flat.any():
        return 0
    edges = np.diff(np.concatenate(([0], flat.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int(np.count_nonzero(ends - starts >= min_run - 1))

