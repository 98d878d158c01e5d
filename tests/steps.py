"""Record steps written at once, on the caller's thread: the tests' stand-in for the
recorder's thread (store/recorder.py) where timing is not what is tested.

It writes each step with the same `apply_step` the recorder runs, so a test
that reads the store afterwards sees what the recorder would have written.
The recorder's own behaviour (grouping, a full queue, kill -9) is tested
against the real one in test_recorder.py.
"""

from __future__ import annotations

from callgate.call import RECORD_STEPS
from callgate.store.outbox import Outbox
from callgate.store.records import AttemptCounter, CallStore, transaction
from callgate.store.recorder import apply_step


class StepsToStore:
    """`submit(step)` like the Recorder, written before it returns."""

    def __init__(self, store: CallStore) -> None:
        self.store = store
        self.counter = AttemptCounter(store)
        self.outbox = Outbox(store)
        self.steps: list = []

    def submit(self, step) -> bool:
        self.steps.append(step)
        with transaction(self.store.db):
            apply_step(self.store, self.counter, self.outbox, step)
        return True

    def take(self, actions) -> list:
        """Write the record steps among `actions`; the rest, for the caller to run."""
        rest = []
        for a in actions or ():
            if isinstance(a, RECORD_STEPS):
                self.submit(a)
            else:
                rest.append(a)
        return rest


class KeptSteps:
    """Record steps kept in a list, written nowhere (a store that is gone)."""

    def __init__(self) -> None:
        self.steps: list = []

    def submit(self, step) -> bool:
        self.steps.append(step)
        return True

    def take(self, actions) -> list:
        rest = []
        for a in actions or ():
            (self.steps if isinstance(a, RECORD_STEPS) else rest).append(a)
        return rest
