"""Work that leaves the loop (a CRM request) and comes back as an event.

On a paced line (real hardware) the loop must keep its 20 ms rhythm, so the
work runs in a worker thread and its reply is picked up by the first frame
after it finished. On the sample clock (sim, replay) there is no wall clock
to keep: the work runs at once and its reply is delivered after the modelled
latency, counted in samples, so a simulated call is deterministic.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

from ..call import Work, WorkDone


def _error_line(err: BaseException) -> str:
    """The exception's type only: its message may hold what the caller keyed."""
    return f"{type(err).__name__} in work"


class WorkRunner:
    def __init__(self, paced: bool, rate: int = 8000, threads: int = 2) -> None:
        self.paced = paced
        self.rate = rate
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._running: list[tuple[Work, Future]] = []
        self._timed: list[tuple[int, WorkDone]] = []

    @property
    def pending(self) -> bool:
        return bool(self._running or self._timed)

    def start(self, work: Work, now: int) -> None:
        if self.paced:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="callgate-work")
            self._running.append((work, self._pool.submit(work.fn)))
            return
        began = time.monotonic()
        try:
            result, error = work.fn(), None
        except Exception as err:           # noqa: BLE001 - the flow decides what a failure means
            result, error = None, _error_line(err)
        latency_ms = work.simulated_latency_ms
        if latency_ms is None:
            latency_ms = round((time.monotonic() - began) * 1000)
        due = now + max(0, latency_ms) * self.rate // 1000
        self._timed.append((due, WorkDone(due, work.tag, result, error)))

    def poll(self, now: int) -> list[WorkDone]:
        out: list[WorkDone] = []
        if self._timed:
            ready = [w for due, w in self._timed if due <= now]
            if ready:
                self._timed = [(due, w) for due, w in self._timed if due > now]
                out += ready
        if self._running:
            still = []
            for work, fut in self._running:
                if not fut.done():
                    still.append((work, fut))
                    continue
                err = fut.exception()
                out.append(WorkDone(now, work.tag, None if err else fut.result(),
                                    _error_line(err) if err else None))
            self._running = still
        return out

    def cancel(self) -> None:
        """The call is over: replies still to come are dropped; work that must outlive
        the call (a failure being counted) still runs, its reply unheard."""
        for work, fut in self._running:
            if not work.outlives_call:
                fut.cancel()
        self._running = []
        self._timed = []

    def close(self) -> None:
        self.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=False)
            self._pool = None
