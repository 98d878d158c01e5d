"""Watching a call run through the real engine and flow, for the transcript.

Nothing here changes what the engine or the flow do; it only looks:

- a tap on the line sees the rings (and the HTTPS server's answers between frames);
- a player that says which prompt starts (the engine plays through it), so the
  prompts listed are those the caller really heard, barge-ins and hang-ups included;
- a wrapper around the handler sees the answer, the caller ID, each keyed entry
  (its length, never its digits) and each barge-in;
- the flow's record steps (call.Record) are its own account of each step: the
  back-end requests with their result and latency, the outcome, the transfer and
  the hang-up; at the end of the call the row the recorder wrote is read back
  (masked), through the recorder's queue, without waiting on the audio thread;
- on a paced line, how well the engine kept up (overruns, late frames, lag).

Each thing that happened becomes one JSON object with `t`, seconds on the
line's sample clock, and `call`, the number of the call (1, 2, ...).
"""

from __future__ import annotations

import re
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable

from ..call import CallInfo, Digits, Handler, PromptDone, Record
from ..engine.player import Player
from ..line.base import RingStart
from ..privacy import mask

RECORD_WAIT_S = 10.0            # a row read back after the line has ended waits this long

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
        self.now = 0                             # end of the last frame read
        self.calls: list[Call] = []
        self.current: Call | None = None
        self._http_seen = 0
        self._waiting: list[tuple[Call, Future, list[dict], int]] = []  # rows being read back
        self.recorder = None

    # ------------------------------------------------------------------ plumbing

    def tap(self, line) -> "LineTap":
        return LineTap(line, self)

    def handler(self, inner: Handler, recorder=None) -> "ObservedHandler":
        """Watch `inner`; its rows are read back through `recorder` (None: not shown)."""
        self.recorder = recorder
        return ObservedHandler(inner, self)

    def player(self, frame_samples: int) -> "HeardPlayer":
        """A player that tells us each prompt it starts (the engine plays through it)."""
        return HeardPlayer(frame_samples, self)

    def line(self, event: str, sample: int | None = None, call: Call | None = None,
             **fields: Any) -> None:
        """One transcript line. Before the answer, lines wait: caller ID is known only
        at the answer, but it came between the rings, and the lines keep time order."""
        call = call or self._call()
        t = self.now if sample is None else sample
        obj = {"t": round(t / self.rate, 3), "call": call.no, "event": event, **fields}
        if call.answered or call.done:
            self._out(obj)
        else:
            call.before_answer.append(obj)

    def _out(self, obj: dict) -> None:
        """Emit now, or after the rows still being read back (lines keep their order,
        and the frame loop never waits for the recorder)."""
        if self._waiting:
            self._waiting[-1][2].append(obj)
        else:
            self.emit(obj)

    def _flush(self, call: Call) -> None:
        held, call.before_answer = call.before_answer, []
        for obj in sorted(held, key=lambda o: o["t"]):
            self._out(obj)

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

    def barge_in(self, ev: PromptDone, info: CallInfo | None) -> None:
        """A prompt stopped by a key; `after_ms`: from the key's onset to our silence."""
        if not PROMPT_NAME.match(ev.prompt):
            return
        extra = {}
        if info is not None and info.barge_ins:
            onset, stopped = info.barge_ins[-1]
            extra["after_ms"] = round((stopped - onset) * 1000 / self.rate)
        self.line("barge_in", ev.sample, prompt=ev.prompt, **extra)

    def flow_step(self, step: Record) -> None:
        """A record step the flow handed out: its row's id, and each trail event."""
        if step.op == "start":
            self._call().record_id = step.call_id
        elif step.op == "event":
            self.flow_event(step.fields["step"], step.sample, dict(step.fields.get("detail") or {}))

    def flow_event(self, name: str, sample: int, detail: dict) -> None:
        """One step of the flow's trail, as the transcript shows it."""
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

    def _read_back(self, call: Call, at: int) -> None:
        """Ask the recorder for the call's row (after the call's last steps); it is
        shown once written, the lines after it waiting, and the frame loop never waits."""
        recorder = self.recorder
        if call.record_id is None or recorder is None:
            return
        record_id = call.record_id
        self._waiting.append((call, recorder.ask(lambda store, _: store.get(record_id)), [], at))

    def finish_records(self, wait: bool = False) -> None:
        """Show the rows read back so far (all of them with `wait`), each followed by
        the lines that waited for it."""
        while self._waiting:
            call, future, held, at = self._waiting[0]
            if not future.done() and not wait:
                return
            self._waiting.pop(0)
            try:
                row = future.result(RECORD_WAIT_S)
            except (Exception, FutureTimeout) as err:   # noqa: BLE001 - the transcript says so
                self.emit(self._obj(call, at, "record", error=type(err).__name__))
            else:
                call.record = row
                if row is not None:
                    self.emit(self._obj(call, at, "record", **row))
            for obj in held:
                self.emit(obj)

    def _obj(self, call: Call, sample: int, event: str, **fields: Any) -> dict:
        return {"t": round(sample / self.rate, 3), "call": call.no, "event": event, **fields}

    def call_ended(self, info: CallInfo) -> None:
        """The engine's on_call: the call is over, whatever happened."""
        self.poll_http()
        call = self._call()
        call.done = True
        self._flush(call)
        if info.answered_at is not None:
            self._read_back(call, info.ended_at)
        call.end = info.end_reason
        fields: dict[str, Any] = {"reason": info.end_reason, "keys": info.keys}
        if info.hangup_how:
            fields["hangup"] = info.hangup_how
        if info.transfer is not None:
            fields["transfer"] = {"extension": info.transfer.extension,
                                  "mode": info.transfer.mode, "result": info.transfer.outcome}
        if info.handler_error:
            fields["handler_error"] = info.handler_error
        if info.pacing is not None:
            self.line("pacing", info.ended_at, call=call, **info.pacing)
        self.line("end", info.ended_at, call=call, **fields)


class LineTap:
    """The line as the engine sees it, with the rings and the server's answers noted."""

    def __init__(self, line, observer: Observer) -> None:
        self._line = line
        self._obs = observer

    def __getattr__(self, name: str):
        return getattr(self._line, name)

    @property
    def inner(self):
        """The line tapped (the engine's health names its backend)."""
        return self._line

    def read(self):
        frame = self._line.read()
        obs = self._obs
        obs.poll_http()
        obs.finish_records()
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


class ObservedHandler(Handler):
    """The call handler (the ID&V flow) with its events and record steps watched; what
    it answers is passed on unchanged."""

    def __init__(self, inner: Handler, observer: Observer) -> None:
        self._inner = inner
        self._obs = observer
        self._info: CallInfo | None = None

    @property
    def prompts_needed(self) -> tuple[str, ...]:
        return tuple(self._inner.prompts_needed)

    def _seen(self, actions) -> list:
        for a in actions or ():
            if isinstance(a, Record):
                self._obs.flow_step(a)
        return actions

    def start(self, call: CallInfo) -> list:
        self._info = call
        self._obs.answered(call)
        return self._seen(self._inner.start(call))

    def on_event(self, event) -> list:
        if isinstance(event, Digits):
            c = getattr(self._inner, "c", None)
            self._obs.keys(event, getattr(c, "step", None))
        elif isinstance(event, PromptDone) and event.interrupted:
            self._obs.barge_in(event, self._info)
        return self._seen(self._inner.on_event(event))

    def end(self, call: CallInfo) -> list:
        return self._seen(self._inner.end(call))

    def ringing(self, call: CallInfo) -> list:
        return self._inner.ringing(call)

    def line_up(self, line: str, at: float) -> list:
        return self._inner.line_up(line, at)

    def line_down(self, line: str, reason: str | None, at: float) -> list:
        return self._inner.line_down(line, reason, at)
