"""Watching a call run through the real engine and flow, for the transcript.

Nothing here changes what the engine or the flow do; it only looks:

- a tap on the line sees the rings (and the HTTPS server's answers between frames);
- a player that says which prompt starts (the engine plays through it), so the
  prompts listed are those the caller really heard, barge-ins and hang-ups included;
- a wrapper around the handler sees the answer, the caller ID, each keyed entry
  (its length, never its digits) and each barge-in;
- the call record (flow/record.py) is the flow's own account of each step: the
  back-end requests with their result and latency, the outcome, the transfer and
  the hang-up; at the end of the call the row it wrote is read back (masked).

Each thing that happened becomes one JSON object with `t`, seconds on the
line's sample clock, and `call`, the number of the call (1, 2, ...).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..engine.actions import CallInfo, Digits, PromptDone
from ..engine.player import Player
from ..flow.record import CallRecord
from ..line.base import RingStart
from ..store.records import CallStore, mask

PROMPT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")    # hold silence and dialling are not prompts


@dataclass
class Call:
    """What was seen of one call."""

    no: int
    rings: int = 0
    answered: bool = False
    done: bool = False
    prompts: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)   # (what, result)
    http: list[tuple[str, int]] = field(default_factory=list)       # (operation, status)
    keys: int = 0
    end: str | None = None
    agent: str | None = None
    record_id: str | None = None
    record: dict | None = None
    before_answer: list[dict] = field(default_factory=list)   # held back to sort by time


class Observer:
    """Collects what happens, call by call, and hands each line to `emit`."""

    def __init__(self, emit: Callable[[dict], None], rate: int = 8000,
                 served: Callable[[], list] | None = None) -> None:
        self.emit = emit
        self.rate = rate
        self.served = served
        self.base = float(int(time.time()))      # wall time of line sample 0
        self.now = 0                             # end of the last frame read
        self.calls: list[Call] = []
        self.current: Call | None = None
        self._http_seen = 0

    # ------------------------------------------------------------------ plumbing

    def clock(self) -> float:
        """The flow's wall clock: the sample clock from `base`, so record times line up."""
        return self.base + self.now / self.rate

    def tap(self, line) -> "LineTap":
        return LineTap(line, self)

    def record(self, store: CallStore) -> "ObservedRecord":
        return ObservedRecord(store, self)

    def handler(self, inner) -> "ObservedHandler":
        return ObservedHandler(inner, self)

    def attach(self, engine) -> None:
        """Let the engine play through a player that tells us each prompt it starts."""
        engine.player = HeardPlayer(engine.line.frame_samples, self)

    def line(self, event: str, sample: int | None = None, call: Call | None = None,
             **fields: Any) -> None:
        """One transcript line. Before the answer, lines wait: caller ID is known only
        at the answer, but it came between the rings, and the lines keep time order."""
        call = call or self._call()
        t = self.now if sample is None else sample
        obj = {"t": round(t / self.rate, 3), "call": call.no, "event": event, **fields}
        if call.answered or call.done:
            self.emit(obj)
        else:
            call.before_answer.append(obj)

    def _flush(self, call: Call) -> None:
        held, call.before_answer = call.before_answer, []
        for obj in sorted(held, key=lambda o: o["t"]):
            self.emit(obj)

    def _call(self) -> Call:
        if self.current is None or self.current.done:
            self.current = Call(len(self.calls) + 1)
            self.calls.append(self.current)
        return self.current

    # ------------------------------------------------------------------ what happened

    def ring(self, sample: int) -> None:
        call = self._call()
        if call.answered:
            return
        call.rings += 1
        self.line("ring", sample, n=call.rings)

    def poll_http(self) -> None:
        if self.served is None:
            return
        served = self.served()
        for op, status in served[self._http_seen:]:
            self._call().http.append((op, status))
            self.line("http", operation=op, status=status)
        self._http_seen = len(served)

    def answered(self, info: CallInfo) -> None:
        call = self._call()
        cid = info.callerid
        if cid is not None:
            self.line("callerid", cid.sample, number=mask(cid.number), name=cid.name,
                      absent=cid.number_absent, checksum_ok=cid.checksum_ok)
        else:
            self.line("callerid", info.answered_at, heard=False, error=info.callerid_error)
        call.answered = True
        self._flush(call)
        self.line("answer", info.answered_at, rings=info.rings)

    def prompt(self, name: str) -> None:
        if PROMPT_NAME.match(name):
            self._call().prompts.append(name)
            self.line("prompt", prompt=name)

    def keys(self, ev: Digits, step: str | None) -> None:
        self._call().keys += len(ev.digits)
        self.line("keys", ev.sample, step=step, count=len(ev.digits), reason=ev.reason)

    def barge_in(self, ev: PromptDone) -> None:
        if PROMPT_NAME.match(ev.prompt):
            self.line("barge_in", ev.sample, prompt=ev.prompt)

    def flow_event(self, name: str, at: float, detail: dict) -> None:
        """One step of the flow's trail, as the transcript shows it."""
        sample = round((at - self.base) * self.rate)
        if name in ("lookup", "identifier", "verify") and "ms" in detail:
            what = {"lookup": "lookup_phone", "identifier": "lookup_identifier"}.get(name, name)
            result = detail.get("result")
            self._call().requests.append((what, str(result)))
            extra = {k: detail[k] for k in ("error",) if k in detail}
            self.line("backend", sample, what=what, result=result, ms=detail["ms"], **extra)
        elif name == "lookup":
            extra = {k: detail[k] for k in ("why",) if k in detail}
            self.line("lookup", sample, result=detail.get("result"), **extra)
        elif name in ("identifier", "verify"):
            self.line("entry", sample, step="security" if name == "verify" else name,
                      attempt=detail.get("attempt"), result=detail.get("result"))
        elif name == "end":
            return                                   # the engine's end line says it
        else:
            self.line(name, sample, **detail)

    def handler_ended(self, flow) -> None:
        call = self._call()
        store = getattr(getattr(flow, "record", None), "store", None)
        if call.record_id is None or store is None:
            return
        try:
            row = store.get(call.record_id)
        except Exception as err:                    # noqa: BLE001 - the transcript says so
            self.line("record", error=type(err).__name__)
            return
        call.record = row
        if row is not None:
            self.line("record", **row)

    def call_ended(self, info: CallInfo) -> None:
        """The engine's on_call: the call is over, whatever happened."""
        self.poll_http()
        call = self._call()
        call.done = True
        self._flush(call)
        call.end = info.end_reason
        fields: dict[str, Any] = {"reason": info.end_reason, "keys": info.keys}
        if info.hangup_how:
            fields["hangup"] = info.hangup_how
        if info.transfer is not None:
            fields["transfer"] = {"extension": info.transfer.extension,
                                  "mode": info.transfer.mode, "result": info.transfer.outcome}
        if info.handler_error:
            fields["handler_error"] = info.handler_error
        self.line("end", info.ended_at, call=call, **fields)


class LineTap:
    """The line as the engine sees it, with the rings and the server's answers noted."""

    def __init__(self, line, observer: Observer) -> None:
        self._line = line
        self._obs = observer

    def __getattr__(self, name: str):
        return getattr(self._line, name)

    def read(self):
        frame = self._line.read()
        obs = self._obs
        obs.poll_http()
        if frame is not None:
            obs.now = frame.end
            for ev in frame.events:
                if isinstance(ev, RingStart):
                    obs.ring(ev.sample)
        return frame


class HeardPlayer(Player):
    """The engine's player; tells the observer the name of each prompt it starts."""

    def __init__(self, frame_samples: int, observer: Observer) -> None:
        super().__init__(frame_samples)
        self._obs = observer

    def start(self, audio, label: str = "", barge_in: bool = False) -> None:
        super().start(audio, label, barge_in)
        self._obs.prompt(label)


class ObservedRecord(CallRecord):
    """The flow's call record, each trail event also shown in the transcript."""

    def __init__(self, store: CallStore, observer: Observer) -> None:
        super().__init__(store)
        self._obs = observer

    def start(self, call_id: str, line: str, service: str, started: float,
              ani: str | None) -> None:
        self._obs._call().record_id = call_id
        super().start(call_id, line, service, started, ani)

    def event(self, name: str, at: float, /, **detail) -> None:
        self._obs.flow_event(name, at, detail)
        super().event(name, at, **detail)


class ObservedHandler:
    """The call handler (the ID&V flow) with its events watched; anything else passes
    straight through (prompts_needed and any hook a newer engine looks for)."""

    def __init__(self, inner, observer: Observer) -> None:
        self._inner = inner
        self._obs = observer

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def start(self, call: CallInfo) -> list:
        self._obs.answered(call)
        return self._inner.start(call)

    def on_event(self, event) -> list:
        if isinstance(event, Digits):
            c = getattr(self._inner, "c", None)
            self._obs.keys(event, getattr(c, "step", None))
        elif isinstance(event, PromptDone) and event.interrupted:
            self._obs.barge_in(event)
        return self._inner.on_event(event)

    def end(self, call: CallInfo) -> None:
        self._inner.end(call)
        if call.answered_at is not None:
            self._obs.handler_ended(self._inner)
