"""The call record, written step by step as the flow goes (store.CallStore).

Each step is its own committed write, so a power cut loses at most the step in
progress. A store that fails (disk full, file gone) must not cost the caller
their call: the write is dropped with one log line (the exception's type
only) and the flow goes on. The one read that matters for security, the
failure count, fails safe: if it cannot be read the customer counts as locked.

Nothing keyed reaches this module unmasked: identifiers and numbers go
through `mask` here, secrets never come here at all. The one unmasked value
is the write-back outbox's payload (the back end's customer id, which the
CRM needs; store/outbox.py clears it once delivered).

The line's live state (idle, ringing, in flow at a step, transferring, down)
goes to the store's line_status table through `LineStatus`, written only when
it changes and with the same rule: a failing write costs one log line, never
the call.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Callable

from ..store.outbox import Outbox, payload_from_record
from ..store.records import AttemptCounter, CallStore, StoreError, mask

log = logging.getLogger("callgate.flow")

_STORE_ERRORS = (StoreError, sqlite3.Error, OSError, KeyError)


class CallRecord:
    """One call's row and trail in the store, plus the attempt counter.

    `fields` mirrors what was written to the call's row (masked, as stored),
    whether or not the store took it: the write-back payload is built from it.
    """

    def __init__(self, store: CallStore | None, counter: AttemptCounter | None = None) -> None:
        self.store = store
        self.counter = counter if counter is not None else (
            AttemptCounter(store) if store is not None else None)
        self.call_id: str | None = None
        self.failed_writes = 0
        self.fields: dict = {}
        self._outbox: Outbox | None = None

    def _safe(self, what: str, fn, *args, **kwargs):
        if self.store is None or (self.call_id is None and what != "start"):
            return None
        try:
            return fn(*args, **kwargs)
        except _STORE_ERRORS as err:
            self.failed_writes += 1
            log.error("call record %s: %s not written (%s)", self.call_id, what,
                      type(err).__name__)
            return None

    def start(self, call_id: str, line: str, service: str, started: float,
              ani: str | None) -> None:
        self.call_id = call_id
        self.fields = {"call_id": call_id, "line": line, "service": service,
                       "started": float(started), "ani_masked": mask(ani)}
        self._safe("start", self.store.start if self.store else None, call_id, line,
                   service, started, mask(ani))

    def update(self, **fields) -> None:
        self.fields.update(fields)
        self._safe("update", self.store.update if self.store else None, self.call_id, **fields)

    def event(self, name: str, at: float, /, **detail) -> None:
        self._safe("event", self.store.event if self.store else None, self.call_id, name,
                   detail, at)

    def backend(self, ms: float, error: bool) -> None:
        self._safe("backend", self.store.add_backend if self.store else None, self.call_id,
                   ms, error)

    def writeback(self, identifier: str | None, at: float, max_age_s: float) -> int | None:
        """Queue the call's outcome for the back end (store/outbox.py); the row id, or
        None when it could not be written (one log line, the call is not affected)."""
        if self.store is None or self.call_id is None:
            return None
        try:
            if self._outbox is None or self._outbox.store is not self.store:
                self._outbox = Outbox(self.store)
            return self._outbox.enqueue(self.call_id, payload_from_record(self.fields, identifier),
                                        at, max_age_s)
        except _STORE_ERRORS as err:
            self.failed_writes += 1
            log.error("call record %s: write-back not queued (%s)", self.call_id,
                      type(err).__name__)
            return None

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


class LineStatus:
    """Each line's live state in the store's line_status table, for the status page.

    Written only when (state, step, call) changes, so a call costs a handful of
    writes. A line reported down stays "down" (whatever a call ending says)
    until `up`. Without a store it does nothing.
    """

    def __init__(self, store: CallStore | None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.last: dict[str, tuple] = {}
        self.down_lines: set[str] = set()
        self.failed_writes = 0

    def set(self, line: str, state: str, step: str | None = None,
            call_id: str | None = None) -> None:
        if line in self.down_lines and state != "down":
            return
        self._write(line, state, step, call_id)

    def down(self, line: str, reason: str | None = None) -> None:
        """The line failed; `reason` (the driver's one line, no digits) goes in `step`."""
        self.down_lines.add(line)
        self._write(line, "down", (reason or None) and str(reason).splitlines()[0][:120], None)

    def up(self, line: str) -> None:
        """The line works again (or the engine just started on it): idle."""
        self.down_lines.discard(line)
        self._write(line, "idle", None, None)

    def _write(self, line: str, state: str, step: str | None, call_id: str | None) -> None:
        key = (state, step, call_id)
        if self.store is None or self.last.get(line) == key:
            return
        try:
            self.store.set_line_status(line, state, step, call_id, at=self.clock())
        except _STORE_ERRORS as err:
            self.failed_writes += 1
            log.error("line status %s: %s not written (%s)", line, state, type(err).__name__)
            self.last.pop(line, None)        # unknown now: write the next state whatever it is
            return
        self.last[line] = key
