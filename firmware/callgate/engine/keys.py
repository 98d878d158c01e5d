"""Keys heard twice: a line that reports keys itself, and our own DTMF detector.

A voice modem reports each key it hears as a <DLE> digit, and while it
transmits (half duplex, a prompt playing) that report is the only way a key
is heard at all. In full duplex our detector hears the same key in the audio.
Each key is taken from whichever reports it first, and the other's report of
the same digit close to it on the sample clock is dropped, one for one, so two
quick presses of one key stay two keys.
"""

from __future__ import annotations

from collections import deque

WINDOW_MS = 250           # the two reports of one key land this close (onset vs detection)


class KeyMerge:
    """One key per press from two sources ("line", "audio"), stamped in line samples."""

    def __init__(self, rate: int, window_ms: int = WINDOW_MS) -> None:
        self.window = window_ms * rate // 1000
        self._seen: deque[list] = deque()      # [digit, sample, source, matched]

    def reset(self) -> None:
        self._seen.clear()

    def take(self, digit: str, sample: int, source: str) -> bool:
        """True if this report is a new key; False if the other source already gave it."""
        while self._seen and self._seen[0][1] < sample - 2 * self.window:
            self._seen.popleft()
        for entry in self._seen:
            if (entry[0] == digit and entry[2] != source and not entry[3]
                    and abs(entry[1] - sample) <= self.window):
                entry[3] = True
                return False
        self._seen.append([digit, sample, source, False])
        return True
