"""The call record, written step by step as the flow goes (store.CallStore).

Each step is its own committed write, so a power cut loses at most the step in
progress. A store that fails (disk full, file gone) must not cost the caller
their call: the write is dropped with one log line (the exception's type
only) and the flow goes on. The one read that matters for security, the
failure count, fails safe: if it cannot be read the customer counts as locked.

Nothing keyed reaches this module unmasked: identifiers and numbers go
through `mask` here, secrets never come here at all.
"""

from __future__ import annotations

import logging
import sqlite3

from ..store.records import AttemptCounter, CallStore, StoreError, mask

log = logging.getLogger("callgate.flow")


class CallRecord:
    """One call's row and trail in the store, plus the attempt counter."""

    def __init__(self, store: CallStore | None, counter: AttemptCounter | None = None) -> None:
        self.store = store
        self.counter = counter if counter is not None else (
            AttemptCounter(store) if store is not None else None)
        self.call_id: str | None = None
        self.failed_writes = 0

    def _safe(self, what: str, fn, *args, **kwargs):
        if self.store is None or (self.call_id is None and what != "start"):
            return None
        try:
            return fn(*args, **kwargs)
        except (StoreError, sqlite3.Error, OSError, KeyError) as err:
            self.failed_writes += 1
            log.error("call record %s: %s not written (%s)", self.call_id, what,
                      type(err).__name__)
            return None

    def start(self, call_id: str, line: str, service: str, started: float,
              ani: str | None) -> None:
        self.call_id = call_id
        self._safe("start", self.store.start if self.store else None, call_id, line,
                   service, started, mask(ani))

    def update(self, **fields) -> None:
        self._safe("update", self.store.update if self.store else None, self.call_id, **fields)

    def event(self, name: str, at: float, /, **detail) -> None:
        self._safe("event", self.store.event if self.store else None, self.call_id, name,
                   detail, at)

    def backend(self, ms: float, error: bool) -> None:
        self._safe("backend", self.store.add_backend if self.store else None, self.call_id,
                   ms, error)

    # -- the attempt counter ------------------------------------------------------------

    def failures(self, customer_id: str, number: str | None, window_s: float,
                 at: float, limit: int) -> int:
        """Recent failures; `limit` (locked) when the counter cannot be read."""
        if self.counter is None:
            return 0
        try:
            return self.counter.recent_failures(customer_id, number, window_s, at)
        except (StoreError, sqlite3.Error, OSError) as err:
            log.error("attempt counter unreadable (%s): treating the customer as locked",
                      type(err).__name__)
            return limit

    def failure(self, customer_id: str, number: str | None, at: float) -> None:
        if self.counter is None:
            return
        try:
            self.counter.failure(customer_id, number, at)
        except (StoreError, sqlite3.Error, OSError) as err:
            log.error("attempt counter: failure not counted (%s)", type(err).__name__)

    def success(self, customer_id: str, at: float) -> None:
        if self.counter is None:
            return
        try:
            self.counter.success(customer_id, at)
        except (StoreError, sqlite3.Error, OSError) as err:
            log.error("attempt counter: success not noted (%s)", type(err).__name__)
