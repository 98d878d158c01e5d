"""The recorder: the one writer of the call-record file, on its own thread.

The audio thread must never wait on a disk: an SD card can stall an fsync for
half a second under wear levelling. So the engine only hands record steps
over (`submit`, which never blocks) and this thread writes them: one SQLite
connection, steps gathered until `group_ms` after the first of them was
handed over and committed together (synchronous=FULL: one fsync per group).

Durability, as a figure: a step is on disk within `group_ms` of being handed
over plus at most two commits (the one in progress, then its own): the
default 50 ms plus a healthy card's 5-30 ms fsyncs, well under 250 ms
(bench/recorder_speed.py: p99 57 ms, max 95 ms on our test machine). A kill -9
or a power cut loses at most the steps of that window, never a committed one.
A stalled card stretches the window by a few stalls (a commit that also
checkpoints the WAL syncs three times); the audio thread does not notice.

Reads that must see every step handed over before them (the attempt counter
that decides a lockout) go through `query`: they run on this thread, in order
after the queued steps, inside their group's transaction. A read-only one is
answered before the fsync (a caller never hears the disk); one that writes
(a failure counted) once its group is committed, so the flow never goes on
believing in a count the disk does not hold. The flow asks for them as Work,
so on a paced line they wait in a worker thread, never on the audio thread.

If the queue is full (the disk is stuck), a step is dropped, counted, and
logged once per outage; the call goes on and reaches an agent. A store that
cannot be written (disk full, read-only) is logged once per outage, in those
words, and its lost steps counted. Started `fail_safe` (as `run` does), a store
that cannot even be opened does not stop the appliance: calls are answered
without records (steps counted as lost, queries refused at once) and the
store is tried again every REOPEN_S. A step the
store refuses (a field that is not masked, a row that is gone) is counted and
logged with the exception's type only; the rest of its group is kept.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..call import LineHealth, LineState, Record
from .health import (BackendProbe, call_open, count_finished_call, guarded,
                     write_backend_request, write_line_health)
from .outbox import Outbox, payload_from_record
from .memory_counter import SafeCounter
from .records import AttemptCounter, CallStore, StoreError, trouble
from .switches import RecordedSwitches

log = logging.getLogger("callgate.store")

GROUP_MS = 50                  # gather steps this long after the first, then commit
QUEUE_STEPS = 4096             # steps waiting at most (a few hundred calls' worth)
QUERY_TIMEOUT_S = 5.0          # a read through the recorder gives up after this
LATENCIES_KEPT = 10000         # step-to-disk latencies kept for the figures
REOPEN_S = 30.0                # a store that could not be opened is tried again this often


class RecorderStopped(StoreError):
    """The recorder is not running (never started, or closed)."""


@dataclass
class RecorderStats:
    """What the recorder did, for `callgate run`'s log, telemetry and the bench."""

    submitted: int = 0
    written: int = 0               # steps committed
    dropped: int = 0               # queue full: never written
    refused: int = 0               # the store refused the step (counted, logged)
    lost: int = 0                  # in a group whose commit failed
    commits: int = 0
    queries: int = 0
    max_queued: int = 0
    commit_ms_max: float = 0.0
    to_disk_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCIES_KEPT))

    def figures(self) -> dict:
        """Counts and the step-to-disk latency p50/p99/max in ms."""
        lat = sorted(self.to_disk_ms)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

        return {"submitted": self.submitted, "written": self.written, "dropped": self.dropped,
                "refused": self.refused, "lost": self.lost, "commits": self.commits,
                "queries": self.queries, "max_queued": self.max_queued,
                "commit_ms_max": round(self.commit_ms_max, 2),
                "to_disk_ms_p50": pct(0.5), "to_disk_ms_p99": pct(0.99),
                "to_disk_ms_max": round(lat[-1], 2) if lat else None}


class _Step:
    __slots__ = ("step", "since")

    def __init__(self, step, since: float) -> None:
        self.step, self.since = step, since


class _Query:
    __slots__ = ("fn", "future", "read_only")

    def __init__(self, fn: Callable, future: Future, read_only: bool = False) -> None:
        self.fn, self.future, self.read_only = fn, future, read_only


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class Recorder:
    """Writes record steps (call.Record, call.LineState, call.LineHealth) to a CallStore on
    its own thread. `backend` names the back end (and holds its breaker) in the health
    tables (store/health.py)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", group_ms: int = GROUP_MS,
                 queue_steps: int = QUEUE_STEPS,
                 on_writeback: Callable[[], None] | None = None,
                 backend: BackendProbe | None = None,
                 tap: Callable[[CallStore, Any], bool] | None = None,
                 on_tap: Callable[[], None] | None = None) -> None:
        self.path = Path(path)
        self.backend = backend               # the back end whose requests are recorded
        # telemetry's tap (telemetry/events.py): sees each step once it is written, in
        # the step's transaction, and may queue a row of its own outbox (True: it did);
        # on_tap is told after such a group is committed
        self.tap = tap
        self.on_tap = on_tap
        self.synchronous = synchronous
        self.group_s = max(0, group_ms) / 1000
        self.on_writeback = on_writeback     # told after a write-back row is committed
        self.stats = RecorderStats()
        self.counter = SafeCounter(RecordedCounter(self))   # counts in memory as well
        self.switches = RecordedSwitches(self)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_steps)
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._full = False                   # an outage is being counted (logged once)
        self._dropped_logged = 0
        self.fail_safe = False
        self.trouble: str | None = None      # why the store cannot be written, if so
        self._trouble_lost = 0               # steps lost since that was logged
        self.store: CallStore | None = None  # the recorder thread's own; others: hands off
        self._tapped = False

    # ------------------------------------------------------------------ lifecycle

    def start(self, fail_safe: bool = False) -> "Recorder":
        """Open the store (on the recorder's thread) and start; StoreError if it cannot,
        unless `fail_safe`: then it runs without a store (no records) and keeps trying."""
        if self._thread is not None:
            return self
        self.fail_safe = fail_safe
        self._thread = threading.Thread(target=self._run, name="callgate-recorder", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            self._thread = None
            raise self._open_error
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (up to `timeout_s`), then stop and close the store."""
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            log.error("call records: recorder stuck on close; %d steps not written",
                      self._queue.qsize())
        thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> "Recorder":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the audio thread's side

    def submit(self, step: Record | LineState | LineHealth) -> bool:
        """Hand a step over; never blocks. False if it was dropped (queue full)."""
        self.stats.submitted += 1
        try:
            self._queue.put_nowait(_Step(step, time.monotonic()))
        except queue.Full:
            self.stats.dropped += 1
            if not self._full:
                self._full = True
                log.error("call records: queue full (is the disk stuck?); steps are being "
                          "dropped and counted, calls go on")
            return False
        queued = self._queue.qsize()
        if queued > self.stats.max_queued:
            self.stats.max_queued = queued
        return True

    # ------------------------------------------------------------------ other threads' side

    def query(self, fn: Callable[[CallStore, AttemptCounter], Any],
              timeout_s: float = QUERY_TIMEOUT_S, *, read_only: bool = False) -> Any:
        """Run `fn(store, counter)` on the recorder's thread after every step handed
        over before it, and return its result: a `read_only` one at once (before the
        group's fsync), one that writes once its group is committed. Blocks: never
        call it from the audio thread of a paced line (the flow asks as Work)."""
        if not self.running:
            raise RecorderStopped(f"{self.path}: call records: recorder not running")
        future: Future = Future()
        try:
            self._queue.put(_Query(fn, future, read_only), timeout=timeout_s)
        except queue.Full:
            raise TimeoutError("call records: recorder queue full") from None
        return future.result(timeout_s)

    def ask(self, fn: Callable[[CallStore, AttemptCounter], Any]) -> Future:
        """`query` without the wait, for the audio thread: the answer comes in the
        Future. A full queue or a stopped recorder fails the Future at once."""
        future: Future = Future()
        if not self.running:
            future.set_exception(RecorderStopped(f"{self.path}: recorder not running"))
            return future
        try:
            self._queue.put_nowait(_Query(fn, future, True))
        except queue.Full:
            future.set_exception(TimeoutError("call records: recorder queue full"))
        return future

    def flush(self, timeout_s: float = QUERY_TIMEOUT_S) -> bool:
        """Wait until every step handed over so far is committed; False on timeout."""
        if not self.running:
            return False
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout_s)
        except queue.Full:
            return False
        return marker.done.wait(timeout_s)

    # ------------------------------------------------------------------ the recorder's thread

    def _run(self) -> None:
        opened = self._open()
        if opened is None and not (self.fail_safe and _survivable(self._open_error)):
            self._opened.set()
            return
        why = None
        if opened is None:
            # told before start() is woken: it must not see the error and wait for us
            why, self._open_error = str(self._open_error), None
            self.trouble = why
        self._opened.set()
        try:
            if opened is None:
                opened = self._without_store(why)
                if opened is None:
                    return                   # stopped before the store could be opened
            counter, outbox = opened
            while True:
                batch, stop = self._gather()
                if batch:
                    try:
                        self._commit(batch, counter, outbox)
                    except Exception as err:     # noqa: BLE001 - the one writer must live on
                        self._failed(batch, err)
                if stop:
                    return
        finally:
            if self.store is not None:
                self.store.close()

    def _open(self):
        """(counter, outbox) on a freshly opened store, or None (the error kept)."""
        try:
            self.store = CallStore(self.path, synchronous=self.synchronous)
            return AttemptCounter(self.store), Outbox(self.store)
        except BaseException as err:        # noqa: BLE001 - told to start()
            if self.store is not None:
                self.store.close()
                self.store = None
            self._open_error = err if isinstance(err, StoreError) else StoreError(
                f"{self.path}: cannot open the call records ({trouble(err)})")
            return None

    def _without_store(self, why: str):
        """Calls go on while the store cannot be opened: every step is counted as lost,
        every query refused at once; the store is tried again every REOPEN_S."""
        log.error("call records: %s; answering calls without records (fail safe) until "
                  "it can be opened", why)
        refused = StoreError(f"call records unavailable ({why})")
        retry = time.monotonic() + REOPEN_S
        lost = 0
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, retry - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                return None
            if isinstance(item, _Step):
                self.stats.lost += 1
                lost += 1
            elif isinstance(item, _Query):
                _answer([(item.future, None, refused)])
            elif isinstance(item, _Flush):
                item.done.set()
            if time.monotonic() >= retry:
                retry = time.monotonic() + REOPEN_S
                opened = self._open()
                if opened is not None:
                    self.trouble = None
                    log.warning("call records: %s opened; writing again (%d steps were not "
                                "written)", self.path, lost)
                    return opened
                self._open_error = None

    def _failed(self, batch: list, err: Exception) -> None:
        """A group that failed in a way the commit did not foresee: counted, logged, its
        askers told; the recorder goes on with the next group."""
        _rollback(self.store.db)
        lost = sum(isinstance(i, _Step) for i in batch)
        self.stats.lost += lost
        self._lost(lost, trouble(err))
        failed = StoreError(f"call records: not written ({trouble(err)})")
        _answer([(i.future, None, failed) for i in batch if isinstance(i, _Query)])
        for item in batch:
            if isinstance(item, _Flush):
                item.done.set()

    def _lost(self, steps: int, why: str) -> None:
        """Steps not written: logged once per outage (and kind of trouble), counted."""
        self._trouble_lost += steps
        if why != self.trouble:
            self.trouble = why
            log.error("call records: %d steps not written (%s); calls go on, lost steps are "
                      "counted", steps, why)

    def _written_again(self) -> None:
        if self.trouble is not None:
            log.warning("call records: writing again; %d steps were not written (%s)",
                        self._trouble_lost, self.trouble)
            self.trouble, self._trouble_lost = None, 0

    def _gather(self) -> tuple[list, bool]:
        """The next group: what arrives within group_ms of its first item. A query or a
        flush ends the gathering at once (someone waits for it)."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        if isinstance(first, (_Query, _Flush)):
            return batch, False
        deadline = first.since + self.group_s       # from its hand-over: the window is kept
        while True:
            left = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if item is _STOP:
                return batch, True
            batch.append(item)
            if isinstance(item, (_Query, _Flush)):
                return batch, False

    def _commit(self, batch: list, counter: AttemptCounter, outbox: Outbox) -> None:
        db = self.store.db
        answers: list[tuple[Future, Any, BaseException | None]] = []
        queries: list[_Query] = []
        steps = 0
        writeback = False
        self._tapped = False
        began = time.monotonic()
        try:
            with self.store.lock:
                db.execute("BEGIN IMMEDIATE")
                for n, item in enumerate(batch):
                    if isinstance(item, _Step):
                        if self._apply(db, n, item.step, counter, outbox):
                            steps += 1
                            writeback = writeback or (isinstance(item.step, Record)
                                                      and item.step.op == "writeback")
                    elif isinstance(item, _Query):
                        answers.append(self._ask(db, n, item, counter))
                        queries.append(item)
                # a read sees the group's steps already, in this connection: it is answered
                # before the fsync, so a caller waiting on the lockout count never waits
                # for the disk; a query that wrote (a failure counted) waits for the commit
                _answer([a for a, q in zip(answers, queries) if q.read_only])
                answers = [a for a, q in zip(answers, queries) if not q.read_only]
                db.execute("COMMIT")
        except (sqlite3.Error, OSError) as err:
            _rollback(db)
            lost = sum(isinstance(i, _Step) for i in batch)
            self.stats.lost += lost
            self._lost(lost, trouble(err))
            failed = StoreError(f"call records: not written ({trouble(err)})")
            answers = [(item.future, None, failed) for item in batch
                       if isinstance(item, _Query) and not item.future.done()]
            steps = 0
        else:
            if steps:
                self._written_again()
        done = time.monotonic()
        self.stats.commits += 1
        self.stats.commit_ms_max = max(self.stats.commit_ms_max, (done - began) * 1000)
        if steps:
            self.stats.written += steps
            lat = self.stats.to_disk_ms
            for item in batch:
                if isinstance(item, _Step):
                    lat.append((done - item.since) * 1000)
        _answer(answers)
        for item in batch:
            if isinstance(item, _Flush):
                item.done.set()
        if self._full and self._queue.qsize() == 0:
            self._full = False
            log.warning("call records: writing again; %d steps were dropped",
                        self.stats.dropped - self._dropped_logged)
            self._dropped_logged = self.stats.dropped
        if writeback and self.on_writeback is not None:
            try:
                self.on_writeback()
            except Exception as err:        # noqa: BLE001 - delivery is not worth a record
                log.error("call records: write-back wake failed (%s)", type(err).__name__)
        if self._tapped and steps and self.on_tap is not None:
            try:
                self.on_tap()
            except Exception as err:        # noqa: BLE001 - telemetry is not worth a record
                log.error("call records: telemetry wake failed (%s)", type(err).__name__)

    def _apply(self, db, n: int, step, counter: AttemptCounter, outbox: Outbox) -> bool:
        """One step in its own savepoint: refused alone, the rest of the group kept."""
        db.execute(f"SAVEPOINT step{n}")
        try:
            apply_step(self.store, counter, outbox, step, self.backend)
        except (sqlite3.Error, Exception) as err:     # noqa: BLE001 - refused alone
            if not db.in_transaction:
                raise                        # the error ended the group's transaction
            db.execute(f"ROLLBACK TO step{n}")
            db.execute(f"RELEASE step{n}")
            self.stats.refused += 1
            what = step.op if isinstance(step, Record) else (
                "line health" if isinstance(step, LineHealth) else "line status")
            why = trouble(err) if isinstance(err, (sqlite3.Error, OSError)) \
                else type(err).__name__
            if why in ("disk full", "read-only") or self.trouble is not None:
                # the outage's one line, not one per step (an update of a call whose
                # start was lost in it is refused too: counted, not logged again)
                self._lost(1, self.trouble if why not in ("disk full", "read-only") else why)
            else:
                log.error("call record %s: %s not written (%s)",
                          getattr(step, "call_id", None), what, why)
            return False
        db.execute(f"RELEASE step{n}")
        if self.tap is not None:
            self._tap(db, n, step)
        return True

    def _tap(self, db, n: int, step) -> None:
        """Telemetry's look at a written step, in its own savepoint: a tap that fails
        costs its event (logged), never the step."""
        db.execute(f"SAVEPOINT tap{n}")
        try:
            self._tapped = bool(self.tap(self.store, step)) or self._tapped
        except Exception as err:            # noqa: BLE001 - the record matters more
            if not db.in_transaction:
                raise
            db.execute(f"ROLLBACK TO tap{n}")
            log.error("call record %s: telemetry event not queued (%s)",
                      getattr(step, "call_id", None), type(err).__name__)
        db.execute(f"RELEASE tap{n}")

    def _ask(self, db, n: int, item: _Query, counter: AttemptCounter):
        self.stats.queries += 1
        db.execute(f"SAVEPOINT query{n}")
        try:
            result = item.fn(self.store, counter)
        except Exception as err:            # noqa: BLE001 - the asker decides
            db.execute(f"ROLLBACK TO query{n}")
            db.execute(f"RELEASE query{n}")
            return item.future, None, err
        db.execute(f"RELEASE query{n}")
        return item.future, result, None


def apply_step(store: CallStore, counter: AttemptCounter, outbox: Outbox,
               step: Record | LineState | LineHealth,
               backend: BackendProbe | None = None) -> None:
    """Write one record step to the store (inside the caller's transaction, if any);
    a back-end request also goes into the health tables, under `backend`'s name, and an
    ending call into the totals (each guarded: their failure never refuses the step)."""
    if isinstance(step, LineState):
        store.set_line_status(step.line, step.state, step.step, step.call_id, at=step.at)
        return
    if isinstance(step, LineHealth):
        write_line_health(store.db, step)
        return
    f, call_id = step.fields, step.call_id
    if step.op == "start":
        store.start(call_id, f["line"], f["service"], f["started"], f.get("ani_masked"))
    elif step.op == "update":
        ending = "ended" in f and call_open(store.db, call_id)
        store.update(call_id, **f)
        if ending:
            guarded(store.db, count_finished_call, call_id)
    elif step.op == "event":
        store.event(call_id, f["step"], dict(f.get("detail") or {}), step.at)
    elif step.op == "backend":
        store.add_backend(call_id, f["ms"], bool(f.get("error")))
        probe = backend or BackendProbe()
        kind = (f.get("kind") or "other") if f.get("error") else None
        breaker, until = probe.breaker_now(step.at)
        guarded(store.db, write_backend_request, probe.name, step.at, f["ms"], kind, breaker,
                until)
    elif step.op == "success":
        counter.success(f["customer_id"], step.at)
    elif step.op == "writeback":
        outbox.enqueue(call_id, payload_from_record(f["record"], f.get("identifier")),
                       step.at, f["max_age_s"])
    else:
        raise ValueError(f"not a record step: {step.op}")


class RecordedCounter:
    """The attempt counter as the flow's Work sees it: reads and counts through the
    recorder, so they see every step handed over before them (lockout stays exact)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def recent_failures(self, customer_id: str, number: str | None, window_s: float,
                        at: float) -> int:
        return self.recorder.query(
            lambda store, counter: counter.recent_failures(customer_id, number, window_s, at),
            read_only=True)

    def record_failure(self, customer_id: str, number: str | None, at: float,
                       window_s: float) -> int:
        return self.recorder.query(
            lambda store, counter: counter.record_failure(customer_id, number, at, window_s))


def _answer(answers: list) -> None:
    for future, result, error in answers:
        if future.done():
            continue                         # answered already, or given up by its asker
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _rollback(db: sqlite3.Connection) -> None:
    try:
        if db.in_transaction:
            db.execute("ROLLBACK")
    except sqlite3.Error:
        pass



SURVIVABLE = ("disk full", "read-only", "disk I/O error")


def _survivable(err: BaseException | None) -> bool:
    """A store trouble calls can be answered through (the disk, not the configuration):
    full, read-only or failing. A wrong path or a newer schema still stops `run`."""
    return err is not None and any(f"({why}" in str(err) for why in SURVIVABLE)
