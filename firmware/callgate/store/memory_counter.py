"""Verification failures counted in memory too, for when the store cannot count them.

A full disk or a failing SD card must not give a guesser more tries: the lockout
would fail open if a failure the store could not write were simply lost. So
every failure is also kept here (keyed digests, as in the store, never an
identifier), marked once the store holds it. The count the flow decides on is
the store's plus the failures only memory holds; if the store cannot even be
read, memory's own count since the start (the best there is). Only when
neither can count (memory full too) does the counter raise CounterUnavailable,
and the flow ends the security step as failed ("store unavailable").

Memory is bounded (MAX_KEPT failures within the window); the lock is held for
a few list operations only. It runs in the flow's Work, never the audio thread.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading

from .records import StoreError, trouble

log = logging.getLogger("callgate.store")

MAX_KEPT = 10000               # failures held in memory at most (a few hundred kB)


class CounterUnavailable(StoreError):
    """Neither the store nor memory could count a failure: no guess may follow."""


class _Failure:
    __slots__ = ("customer", "number", "at", "stored")

    def __init__(self, customer: bytes, number: bytes | None, at: float) -> None:
        self.customer, self.number, self.at, self.stored = customer, number, at, False


class MemoryFailures:
    """Failures of the last window in memory, by keyed digest of customer and number."""

    def __init__(self, limit: int = MAX_KEPT) -> None:
        self._key = secrets.token_bytes(32)      # this process's own; nothing leaves memory
        self._kept: list[_Failure] = []
        self._lock = threading.Lock()
        self.limit = limit
        self._longest = 0.0                      # services' windows differ: keep the longest

    def _digest(self, kind: str, value: str | None) -> bytes | None:
        if not value:
            return None
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def add(self, customer_id: str, number: str | None, at: float,
            window_s: float) -> _Failure | None:
        """Keep one failure; None if memory is full (older ones still in the window)."""
        entry = _Failure(self._digest("customer", customer_id), self._digest("number", number),
                         at)
        with self._lock:
            self._longest = max(self._longest, window_s)
            self._kept = [f for f in self._kept if f.at > at - self._longest]
            if len(self._kept) >= self.limit:
                return None
            self._kept.append(entry)
        return entry

    def count(self, customer_id: str, number: str | None, window_s: float, at: float,
              unstored_only: bool) -> int:
        """Failures in (at - window_s, at], the larger of the customer's and the number's."""
        cust, num = self._digest("customer", customer_id), self._digest("number", number)
        with self._lock:
            recent = [f for f in self._kept if at - window_s < f.at <= at
                      and not (unstored_only and f.stored)]
        by_customer = sum(f.customer == cust for f in recent)
        by_number = sum(num is not None and f.number == num for f in recent)
        return max(by_customer, by_number)


class SafeCounter:
    """The attempt counter the flow uses in `run`: the store's (through the recorder),
    with every failure kept in memory too, so a store that cannot write or read never
    hands out more tries than the policy allows."""

    def __init__(self, stored, memory: MemoryFailures | None = None) -> None:
        self.stored = stored                    # recorder.RecordedCounter
        self.memory = memory or MemoryFailures()
        self._logged: str | None = None         # the trouble logged (once per outage)

    def recent_failures(self, customer_id: str, number: str | None, window_s: float,
                        at: float) -> int:
        try:
            on_disk = self.stored.recent_failures(customer_id, number, window_s, at)
        except (StoreError, TimeoutError, OSError) as err:
            self._trouble("read", err)
            return self.memory.count(customer_id, number, window_s, at, unstored_only=False)
        return on_disk + self.memory.count(customer_id, number, window_s, at, unstored_only=True)

    def record_failure(self, customer_id: str, number: str | None, at: float,
                       window_s: float) -> int:
        entry = self.memory.add(customer_id, number, at, window_s)
        try:
            on_disk = self.stored.record_failure(customer_id, number, at, window_s)
        except (StoreError, TimeoutError, OSError) as err:
            self._trouble("written", err)
            if entry is None:
                raise CounterUnavailable(
                    f"attempt counter: failure not counted ({trouble(err)}; memory full)") \
                    from None
            return self.recent_failures(customer_id, number, window_s, at)
        if entry is not None:
            entry.stored = True
        self._logged = None
        return on_disk + self.memory.count(customer_id, number, window_s, at, unstored_only=True)

    def _trouble(self, what: str, err: BaseException) -> None:
        why = trouble(err)
        if why != self._logged:
            self._logged = why
            log.error("attempt counter: store not %s (%s); failures are counted in memory "
                      "until it is back", what, why)
