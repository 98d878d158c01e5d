"""Digit collection: first-digit and inter-digit timeouts, min/max, terminator, clear,
opt-out, and over-long entries thrown away whole.

The opt-out key counts when nothing is keyed in the entry: as its first key, or
the first after a clear. With both "*" (the default), `*` after digits clears
them and `*` on an empty entry opts out, so `1**` clears, then opts out.

Keys pressed before the collection starts (type-ahead: during a prompt that
they barged into, or while the handler was busy) are taken first, in order,
as if pressed now: the timers run from the later of the key and the start,
so a key pressed during a long prompt does not time out before it is read.
"""

from __future__ import annotations

from ..call import Collect, Digits


class Collector:
    """One Collect in progress; keys in, a Digits event out when it ends."""

    def __init__(self, spec: Collect, start: int, rate: int = 8000) -> None:
        self.spec = spec
        ms = rate // 1000
        self.first = spec.first_timeout_ms * ms
        self.inter = spec.inter_timeout_ms * ms
        self.digits = ""
        self.keyed = False           # any key seen (a clear key counts)
        self.too_long = False        # past max_digits with `overflow`: discarding
        self.deadline = start + self.first
        self.start = start

    def key(self, digit: str, sample: int) -> Digits | None:
        """A key pressed at `sample` (type-ahead keys may be older than the start)."""
        at = max(sample, self.start)
        spec = self.spec
        self.keyed = True
        if self.too_long:
            if spec.terminator and digit == spec.terminator:
                return self._done(at, "too_long")
            self.deadline = at + self.inter      # still keying: still the same entry
            return None
        if spec.opt_out and digit == spec.opt_out and not self.digits:
            # nothing keyed in the entry (its first key, or the first after a clear)
            self.digits = digit
            return self._done(at, "opt_out")
        if spec.clear and digit == spec.clear:
            self.digits = ""
            self.deadline = at + self.first
            return None
        if spec.terminator and digit == spec.terminator:
            return self._done(at, "terminator")
        if spec.overflow and len(self.digits) >= spec.max_digits:
            self.too_long, self.digits = True, ""
            self.deadline = at + self.inter
            return None
        self.digits += digit
        if len(self.digits) >= spec.max_digits and not spec.overflow:
            return self._done(at, "max")
        self.deadline = at + self.inter
        return None

    def poll(self, now: int) -> Digits | None:
        if now < self.deadline:
            return None
        if self.too_long:
            return self._done(now, "too_long")
        if not self.digits:
            return self._done(now, "no_input")
        return self._done(now, "timeout")

    def _done(self, sample: int, reason: str) -> Digits:
        if reason == "too_long":
            return Digits(sample, digits="", reason=reason, complete=False)
        return Digits(sample, digits=self.digits, reason=reason,
                      complete=len(self.digits) >= self.spec.min_digits)
