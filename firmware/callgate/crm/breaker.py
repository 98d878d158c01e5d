"""A circuit breaker: a back end that keeps failing is left alone for a while.

Closed: calls go through; N consecutive failed steps open it. Open: every call
answers "error" at once (the caller goes to an agent without waiting out a
budget). After the cool-down one trial call is let through (half-open): success
closes the circuit, failure opens it for another cool-down.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class CircuitBreaker:
    def __init__(self, failures: int = 5, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, int(failures))
        self.cooldown = float(cooldown)
        self.clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def status(self) -> tuple[str, float | None]:
        """(state, seconds until an open circuit lets a trial through; None unless open),
        read together: for the device's health, off the audio path."""
        with self._lock:
            state = self._state()
            if state != "open":
                return state, None
            return state, max(0.0, self.cooldown - (self.clock() - self._opened_at))

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self.clock() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a call go to the back end now?"""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self._trial:
                self._trial = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial or self._failures >= self.threshold:
                self._opened_at = self.clock()
            self._trial = False
