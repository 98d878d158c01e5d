"""Call outcomes and faults as telemetry events, queued where the records are written.

The engine and the flow know nothing of telemetry: the recorder (store/recorder.py)
shows each step it has written to `EventTap`, on its own thread and inside the
step's transaction, and the tap queues an event in the store's MQTT outbox
(table outbox_mqtt) when the step means one:

- the end of a call (the trail's "end" step): one `call` event built from the
  call's record as written, so it holds only what the record holds, masked;
- a line going down (not the engine's own stop) and coming back: `fault` events.

So an event is on disk with the same durability as the call's record, in the
order things happened, and the telemetry thread (worker.py) delivers the rows
in that order whenever the broker is reachable.

Privacy: the event carries no identifier at all, the caller's number only as
the record masked it (checked again here), and never a keyed digit (the record
has none).
"""

from __future__ import annotations

import time
from typing import Any

from ..call import LineState, Record
from ..privacy import check_masked
from ..store.outbox import Outbox, iso_utc
from ..store.records import CallStore

TABLE = "outbox_mqtt"
MAX_AGE_S = 30 * 86400.0      # an event still undelivered this long is dropped (logged)
STOPPED = "callgate stopped"  # the engine's own line_down reason: not a fault
# what a call event tells, from the call's record (masked columns only; not the menu
# key the caller pressed: no keyed digit leaves the device, not even that one)
CALL_FIELDS = ("line", "service", "status", "reason", "lookup", "identified_by",
               "verify_result", "opted_out", "hours", "transfer_mode",
               "transfer_result", "transfer_tries", "hangup_step", "auth_ms",
               "backend_errors")


def call_event(row: dict, end_reason: str | None) -> dict:
    """The event of one finished call from its record row."""
    out: dict[str, Any] = {"kind": "call", "call_id": row.get("call_id"),
                           "started": iso_utc(row.get("started")),
                           "ended": iso_utc(row.get("ended")), "end": end_reason}
    out.update({name: row.get(name) for name in CALL_FIELDS})
    caller = row.get("ani_masked")
    try:
        check_masked("caller", caller)
    except ValueError:
        caller = None                  # never more than the mask shows
    out["caller"] = caller
    return out


def fault_event(line: str, fault: str, why: str | None, at: float) -> dict:
    return {"kind": "fault", "fault": fault, "line": line, "why": _one_line(why),
            "at": iso_utc(at)}


class EventTap:
    """The recorder's tap: queues telemetry events in the MQTT outbox. True when the
    telemetry thread should look (an event queued, or a line's state written).

    Runs on the recorder's thread only (it keeps each line's last state there)."""

    def __init__(self, max_age_s: float = MAX_AGE_S) -> None:
        self.max_age_s = max_age_s
        self._down: dict[str, bool] = {}
        self.queued = 0

    def __call__(self, store: CallStore, step) -> bool:
        event = self.event_of(store, step)
        if event is None:
            return isinstance(step, LineState)
        at = getattr(step, "at", 0.0) or time.time()
        Outbox(store, TABLE).enqueue(getattr(step, "call_id", None) or "", event, at,
                                     self.max_age_s)
        self.queued += 1
        return True

    def event_of(self, store: CallStore, step) -> dict | None:
        if isinstance(step, Record):
            if step.op != "event" or step.fields.get("step") != "end":
                return None
            row = store.get(step.call_id)
            if row is None:
                return None
            detail = step.fields.get("detail") or {}
            return call_event(row, detail.get("reason"))
        if isinstance(step, LineState):
            was_down = self._down.get(step.line, False)
            if step.state == "down":
                if step.step == STOPPED:
                    return None
                self._down[step.line] = True
                return fault_event(step.line, "line_down", step.step, step.at)
            self._down[step.line] = False
            if was_down:
                return fault_event(step.line, "line_restored", None, step.at)
        return None


def device_fault(store: CallStore, fault: str, why: str | None,
                 max_age_s: float = MAX_AGE_S) -> None:
    """A fault the device itself notices (telemetry's thread): queued like the others."""
    at = time.time()
    Outbox(store, TABLE).enqueue("", fault_event("", fault, why, at), at, max_age_s)


def _one_line(text: str | None) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text.splitlines()[0][:200] if text else ""
