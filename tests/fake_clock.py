"""A wall clock for tests of paced lines: time moves only when told, or when slept on.

`clock()` is the time in seconds (like time.monotonic); `sleep(s)` moves it on by
exactly `s` and keeps a list of the sleeps; `advance(s)` is the reader's own work
(or a stall). No test that uses it waits or depends on the machine's speed.
"""

from __future__ import annotations


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = float(start)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
