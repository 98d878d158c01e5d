"""Levels in dBm0 and a streaming silence/level detector.

Level convention (ITU-T G.711): a full-scale sine in 16-bit linear audio is
+3.14 dBm0, so 0 dBm0 is a sine of peak 32767 * 10**(-3.14/20) ~= 22828.
"""

from __future__ import annotations

import numpy as np

FULL_SCALE_SINE_DBM0 = 3.14
FULL_SCALE = 32767.0


def dbm0_to_amplitude(dbm0: float) -> float:
    """Peak amplitude (int16 units) of a sine at the given level."""
    return FULL_SCALE * 10.0 ** ((dbm0 - FULL_SCALE_SINE_DBM0) / 20.0)


def dbm0_to_rms(dbm0: float) -> float:
    """RMS (int16 units) of any signal at the given power level."""
    return dbm0_to_amplitude(dbm0) / np.sqrt(2.0)


def power_to_dbm0(mean_square: float | np.ndarray) -> float | np.ndarray:
    """Mean-square power (int16 units squared) to dBm0; -inf-safe."""
    ref = dbm0_to_rms(0.0) ** 2
    return 10.0 * np.log10(np.maximum(mean_square, 1e-12) / ref)


def rms_dbm0(x: np.ndarray) -> float:
    """Level of a block of samples in dBm0."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return float("-inf")
    return float(power_to_dbm0(np.mean(x * x)))
