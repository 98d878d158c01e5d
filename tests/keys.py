"""Scoring DTMF receivers: the digits one hears, and how many of those sent it got."""

from __future__ import annotations

import numpy as np

from callgate.dsp.dtmf import DtmfReceiver


def heard(x: np.ndarray, frame: int = 160) -> str:
    """Our receiver's digits for the audio, fed in frames of `frame` samples."""
    rx = DtmfReceiver()
    out = []
    for i in range(0, x.size, frame):
        out += rx.feed(x[i:i + frame])
    return "".join(e.digit for e in out + rx.flush())


def matched(got: str, want: str) -> int:
    """Digits of `want` heard in order (longest common subsequence)."""
    row = [0] * (len(want) + 1)
    for h in got:
        prev = 0
        for j, w in enumerate(want):
            prev, row[j + 1] = row[j + 1], (prev + 1 if h == w else max(row[j + 1], row[j]))
    return row[-1]
