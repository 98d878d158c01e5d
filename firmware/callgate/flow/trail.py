"""The call record as the flow writes it: record steps, handed out as actions.

The flow does no I/O. Each step of a call (the row's start, a field set, a
trail event, a back-end request's latency) becomes a `call.Record` that the
engine hands to the recorder (store/recorder.py, its own thread) as soon as
the flow returns it. `fields` mirrors what the row should hold, whether or
not the store took it: the write-back payload is built from it.

Nothing keyed reaches a record: identifiers and numbers are masked here or
by the caller, secrets never come here at all. The write-back step is the one
that carries the back end's full customer id (the CRM needs it; the outbox
clears it once delivered).
"""

from __future__ import annotations

from ..call import LineState, Record
from ..privacy import mask


class CallTrail:
    """The record steps of the call in progress, collected until the flow returns."""

    def __init__(self) -> None:
        self.call_id: str | None = None
        self.fields: dict = {}
        self.steps: list = []
        self.at = 0.0                # wall time of the moment being handled
        self.sample = 0              # and its line sample

    def moment(self, at: float, sample: int) -> None:
        """The time of what the flow is handling now: the steps that follow carry it."""
        self.at, self.sample = float(at), int(sample)

    def take(self) -> list:
        """The steps collected since the last take (the flow puts them first in its actions)."""
        steps, self.steps = self.steps, []
        return steps

    def start(self, call_id: str, line: str, service: str, ani: str | None) -> None:
        """The call's row, started at the current moment."""
        self.call_id = call_id
        self.fields = {"call_id": call_id, "line": line, "service": service,
                       "started": self.at, "ani_masked": mask(ani)}
        self._add("start", line=line, service=service, started=self.at, ani_masked=mask(ani))

    def update(self, **fields) -> None:
        self.fields.update(fields)
        self._add("update", **fields)

    def event(self, name: str, /, **detail) -> None:
        self._add("event", step=name, detail=detail)

    def backend(self, ms: float, error: bool, kind: str | None = None) -> None:
        """One request's time; a failed one's kind (crm/failure.py) for the health tables."""
        if error:
            self._add("backend", ms=float(ms), error=True, kind=kind or "other")
        else:
            self._add("backend", ms=float(ms), error=False)

    def success(self, customer_id: str) -> None:
        self._add("success", customer_id=customer_id)

    def writeback(self, identifier: str | None, max_age_s: float) -> None:
        self._add("writeback", record=dict(self.fields), identifier=identifier,
                  max_age_s=float(max_age_s))

    def _add(self, op: str, **fields) -> None:
        if self.call_id is not None:
            self.steps.append(Record(op, self.call_id, self.at, fields, self.sample))


class LineStatus:
    """Each line's live state, as LineState steps, only when (state, step, call) changes.

    A line reported down stays "down" (whatever a call ending says) until `up`.
    """

    def __init__(self) -> None:
        self.last: dict[str, tuple] = {}
        self.down_lines: set[str] = set()

    def set(self, line: str, state: str, at: float, step: str | None = None,
            call_id: str | None = None) -> list:
        if line in self.down_lines and state != "down":
            return []
        return self._state(line, state, step, call_id, at)

    def down(self, line: str, reason: str | None, at: float) -> list:
        """The line failed; `reason` (the driver's one line, no digits) goes in `step`."""
        self.down_lines.add(line)
        why = (reason or None) and str(reason).splitlines()[0][:120]
        return self._state(line, "down", why, None, at)

    def up(self, line: str, at: float) -> list:
        """The line works again (or the engine just started on it): idle."""
        self.down_lines.discard(line)
        return self._state(line, "idle", None, None, at)

    def _state(self, line: str, state: str, step: str | None, call_id: str | None,
               at: float) -> list:
        key = (state, step, call_id)
        if self.last.get(line) == key:
            return []
        self.last[line] = key
        return [LineState(line, state, step, call_id, float(at))]
