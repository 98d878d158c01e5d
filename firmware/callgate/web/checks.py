"""How many password checks run at once: a few, the rest wait briefly or are refused.

A check is one scrypt run at the device's cost (16 MiB, about a second on a Pi
Zero 2), and anyone who can reach the sign-in form can ask for one without an
account. Run unbounded on every server thread at once they exhausted the
board's memory; here `limit` run at once, up to `queue` more wait at most
`wait_s` for a turn, and any beyond that are refused at once (Busy: the page
answers 429), so a flood of wrong passwords costs a fixed amount of memory and
leaves the other server threads to the people already signed in.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager


class Busy(Exception):
    """Every check slot and every place in the queue is taken; try again shortly."""

    retry_after_s = 2


class PasswordChecks:
    """A counting gate with a bounded queue; safe to share between threads."""

    def __init__(self, limit: int = 2, queue: int = 4, wait_s: float = 5.0) -> None:
        if limit < 1 or queue < 0 or wait_s < 0:
            raise ValueError("limit must be 1 or more, queue and wait_s 0 or more")
        self.limit, self.queue, self.wait_s = limit, queue, wait_s
        self.running = 0
        self.waiting = 0
        self._cond = threading.Condition()

    @contextmanager
    def held(self, priority: bool = False):
        """One check slot for the block; Busy if none comes in time. With `priority` (a
        browser the user signed in from before) it may wait even when the queue is full,
        so a flood of strangers' tries cannot keep a known user from signing in."""
        self._enter(priority)
        try:
            yield
        finally:
            with self._cond:
                self.running -= 1
                self._cond.notify_all()

    def _enter(self, priority: bool) -> None:
        with self._cond:
            if self.running < self.limit and self.waiting == 0:
                self.running += 1
                return
            if self.waiting >= self.queue and not priority:
                raise Busy()
            self.waiting += 1
            self._cond.notify_all()
            try:
                got = self._cond.wait_for(lambda: self.running < self.limit, self.wait_s)
            finally:
                self.waiting -= 1
            if not got:
                raise Busy()
            self.running += 1

    def wait_until_queued(self, n: int, timeout: float) -> bool:
        """Block until `n` checks are waiting for a slot (tests and bench/hostile.py)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.waiting >= n, timeout)
