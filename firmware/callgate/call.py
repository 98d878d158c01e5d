"""The contract between the engine and whatever runs a call (the call handler).

The engine owns the line and the clocks; the handler owns the decisions. The
handler never touches the line, a file or the network: it answers each event
with a list of actions, and the engine carries them out in order, reporting
back with events. So a flow can be tested with no line at all, and the engine
with a scripted flow.

    handler.start(call)     -> [Action]   the call was answered
    handler.on_event(event) -> [Action]   something the handler asked for finished,
                                          or the caller hung up
    handler.end(call)       -> [Action]   the call is over, whatever happened (also
                                          for calls abandoned before answer, where
                                          call.answered_at is None): record steps only

Actions run one after another: a Play or a Pause finishes (or is barged into)
before the next action starts, a Collect ends with Digits, a Transfer with a
TransferResult. Work is started as soon as it is reached and does not hold the
queue: its WorkDone comes back whenever the work is done. Record steps
(`Record`, `LineState`) hold nothing either: the engine hands them to the
recorder (store/recorder.py, its own thread) the moment the handler returns
them, so the audio thread never waits on a disk. Actions returned for an event
are queued after those still pending.

Times: `sample` is the line's sample clock (every duration is counted on it);
`wall` is the wall-clock time the engine stamped when the event happened (unix
seconds), for records only. The handler keeps no clock of its own.

This module holds small shared types only: it imports no numpy, no store and
no engine part, so the flow that imports it stays pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Union

from .dsp.events import CallerIdEvent
from .privacy import mask

if TYPE_CHECKING:                       # for type hints only: no numpy at run time
    import numpy as np

DTMF_KEYS = "0123456789*#ABCD"

# ----------------------------------------------------------------- actions


@dataclass(frozen=True)
class Play:
    """Play a prompt: a name in the prompt set, or int16 audio at 8 kHz.

    With `barge_in` a key pressed during the prompt stops it (and any queued
    barge-in prompts after it, up to the next non-Play action); the key is
    kept as type-ahead for the next Collect.
    """

    prompt: Union[str, "np.ndarray"]
    barge_in: bool = True
    name: str = ""                   # what to call audio given as samples (an announcement)

    @property
    def label(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        return self.name or f"<audio {len(self.prompt)}>"


@dataclass(frozen=True)
class Pause:
    """Silence that holds the queue like a prompt (hold while the back end works, the
    pause before a whisper); reported with PromptDone like a Play without barge-in."""

    ms: int

    def __post_init__(self) -> None:
        if not isinstance(self.ms, int) or isinstance(self.ms, bool) or not 1 <= self.ms <= 60000:
            raise ValueError(f"Pause: {self.ms!r} is not 1..60000 ms")

    @property
    def label(self) -> str:
        return f"<pause {self.ms} ms>"

    barge_in: ClassVar[bool] = False


@dataclass(frozen=True)
class SayDigits:
    """Read digits to the line from the prompt set, as one piece of audio.

    `digit_prompts` names the prompts of 0..9; `lead` (a prompt name, or "") is
    played first, `lead_gap_ms` after it. Every digit gets a slot as long as the
    longest digit prompt plus `digit_gap_ms`, so the audio's length tells only how
    many digits there are. The digits never appear in a label, a log or a repr.
    """

    digits: str = field(repr=False)
    digit_prompts: tuple[str, ...] = tuple(f"digit_{d}" for d in range(10))
    lead: str = ""
    lead_gap_ms: int = 250
    digit_gap_ms: int = 120

    def __post_init__(self) -> None:
        if not (self.digits.isascii() and self.digits.isdigit()):
            raise ValueError("SayDigits: digits must be 0-9")
        if len(self.digit_prompts) != 10:
            raise ValueError("SayDigits: digit_prompts names the 10 prompts of 0..9")

    @property
    def label(self) -> str:
        return f"<digits {len(self.digits)}>"

    barge_in: ClassVar[bool] = False


@dataclass(frozen=True)
class Collect:
    """Collect keyed digits; ends with a Digits event.

    `first_timeout_ms` runs from the start of collection until the first key;
    `inter_timeout_ms` from each key to the next. The `terminator` ends the
    entry (it is not part of the digits); `clear` throws away what was keyed
    so far and starts the entry again. `max_digits` ends it at once, unless
    `overflow`: then a key past the maximum makes the entry over-long, every
    key up to the terminator or the inter-digit timeout is thrown away, and it
    ends as one Digits with reason "too_long" and no digits (one try, nothing
    looked up). `opt_out`, as the first key of the entry, ends it at once with
    reason "opt_out"; the same key later is the clear key if it is `clear`.
    Entries shorter than `min_digits` are reported with `complete` False.
    """

    min_digits: int = 1
    max_digits: int = 16
    first_timeout_ms: int = 5000
    inter_timeout_ms: int = 3000
    terminator: str = "#"
    clear: str = "*"
    opt_out: str = ""
    overflow: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_digits <= self.max_digits or self.max_digits < 1:
            raise ValueError(f"Collect: need 0 <= min_digits <= max_digits, max_digits >= 1 "
                             f"(got {self.min_digits}, {self.max_digits})")
        if self.first_timeout_ms <= 0 or self.inter_timeout_ms <= 0:
            raise ValueError("Collect: timeouts must be > 0 ms")
        for key in (self.terminator, self.clear, self.opt_out):
            if len(key) > 1 or (key and key not in DTMF_KEYS):
                raise ValueError(f"Collect: {key!r} is not one DTMF key")


TRANSFER_MODES = ("blind", "supervised")


@dataclass(frozen=True)
class Transfer:
    """Hook-flash transfer to `extension`.

    blind: flash, wait for recall dial tone, dial, hang up (the exchange
    connects the caller to the ringing extension). supervised: flash, dial,
    listen: answer -> TransferResult("answered") and, once the actions given
    for it are done, we hang up; busy / no answer / unknown extension ->
    flash back to the caller and report it, the call goes on.
    """

    extension: str
    mode: str = "blind"
    recall_timeout_ms: int = 3000
    answer_timeout_ms: int = 20000

    def __post_init__(self) -> None:
        if self.mode not in TRANSFER_MODES:
            raise ValueError(f"Transfer: mode must be blind or supervised, got {self.mode!r}")
        if not self.extension or any(c not in DTMF_KEYS for c in self.extension):
            raise ValueError("Transfer: extension must be DTMF digits")


@dataclass(frozen=True)
class Work:
    """Work that leaves the loop (a CRM request, a read of the attempt counter);
    WorkDone(tag, ...) comes back.

    On a paced line `fn` runs in a worker thread. On an unpaced sample clock
    (sim, replay) it runs at once and its reply is delivered
    `simulated_latency_ms` later on that clock, so runs stay deterministic;
    None delivers it after the wall time `fn` really took (a simulation
    against a real server, slow or not, hears what a caller would).
    """

    tag: str
    fn: Callable[[], Any]
    simulated_latency_ms: int | None = 0
    outlives_call: bool = False      # runs to its end even if the call ends first


@dataclass(frozen=True)
class HangUp:
    """Go on hook: the call ends."""


RECORD_OPS = ("start", "update", "event", "backend", "success", "writeback")


@dataclass(frozen=True, eq=False)
class Record:
    """A step of the call record, for the recorder (store/recorder.py).

    op        fields
    start     line, service, started, ani_masked
    update    any call record columns (masked values only)
    event     step (the trail's step name), detail (no keyed digit)
    backend   ms, error: one back-end request's latency and whether it failed
    success   customer_id: a verification success (for the counter)
    writeback record (the call's fields as written), identifier, max_age_s

    `at` is the wall time of the step, `sample` its line sample. Only `success`
    and `writeback` carry a full identifier (the counter keys it by digest; the
    write-back must send it), so the repr never shows the fields.
    """

    op: str
    call_id: str
    at: float
    fields: Mapping[str, Any] = field(default_factory=dict, repr=False)
    sample: int = 0

    def __post_init__(self) -> None:
        if self.op not in RECORD_OPS:
            raise ValueError(f"Record: op {self.op!r} is not one of {', '.join(RECORD_OPS)}")


LINE_STATES = ("idle", "ringing", "in_flow", "transferring", "down")


@dataclass(frozen=True)
class LineState:
    """A line's live state for the status page (idle, ringing, in_flow at `step`,
    transferring, down with the reason in `step`), for the recorder."""

    line: str
    state: str
    step: str | None = None
    call_id: str | None = None
    at: float = 0.0

    def __post_init__(self) -> None:
        if self.state not in LINE_STATES:
            raise ValueError(f"LineState: {self.state!r} is not one of {', '.join(LINE_STATES)}")


RECORD_STEPS = (Record, LineState)
"""Actions that hold nothing: handed to the recorder at once."""

Action = Union[Play, Pause, SayDigits, Collect, Transfer, Work, HangUp, Record, LineState]
ACTIONS = (Play, Pause, SayDigits, Collect, Transfer, Work, HangUp, Record, LineState)

# ----------------------------------------------------------------- events to the handler


@dataclass(frozen=True)
class HandlerEvent:
    """Base of what the engine tells the handler; `sample` is the line's clock and
    `wall` the wall time the engine stamped (unix seconds; 0.0 if none was)."""

    sample: int
    wall: float = field(default=0.0, kw_only=True, compare=False)
    kind: ClassVar[str] = "event"


@dataclass(frozen=True)
class PromptDone(HandlerEvent):
    prompt: str = ""                 # the prompt's name (or its label)
    interrupted: bool = False        # barged into by a key
    kind: ClassVar[str] = "prompt_done"


DIGIT_REASONS = ("terminator", "max", "timeout", "no_input", "opt_out", "too_long")


@dataclass(frozen=True)
class Digits(HandlerEvent):
    digits: str = field(default="", repr=False)    # keyed: never logged (repr hides it)
    reason: str = "no_input"
    complete: bool = True            # at least min_digits
    kind: ClassVar[str] = "digits"


TRANSFER_OUTCOMES = ("completed", "answered", "busy", "no_answer", "no_recall", "failed")


@dataclass(frozen=True)
class TransferResult(HandlerEvent):
    extension: str = ""
    outcome: str = "failed"
    kind: ClassVar[str] = "transfer_result"


@dataclass(frozen=True)
class WorkDone(HandlerEvent):
    tag: str = ""
    result: Any = field(default=None, repr=False)
    error: str | None = None         # one line: the exception's type (never its message)
    kind: ClassVar[str] = "work_done"


HANGUP_SIGNALS = ("cpc", "polarity", "busy", "reorder", "dial", "silence", "fault")


@dataclass(frozen=True)
class CallerHungUp(HandlerEvent):
    how: str = "cpc"
    kind: ClassVar[str] = "caller_hung_up"


# ----------------------------------------------------------------- the call


@dataclass
class TransferInfo:
    extension: str
    mode: str
    outcome: str | None = None


@dataclass
class CallInfo:
    """One call, from its first ring to the line being back on hook.

    `end_reason`: "abandoned" (rang, never answered), "caller" (the caller hung
    up; `hangup_how` says which signal told us), "hangup" (the handler hung
    up), "transferred", "error" (the handler failed and the call was sent
    on or hung up safely), "fault" (the line failed), "line_ended", "stopped"
    (callgate was told to stop during the call).
    `keys` counts the digits keyed during the call; the digits themselves
    stay with the handler. The `*_wall` times are stamped by the engine when
    each thing happened; `pacing` (paced lines only) says how well the engine
    kept up with the line during the call.
    """

    call_id: int
    line: str
    started_at: int
    answered_at: int | None = None
    ended_at: int | None = None
    rings: int = 0
    ring_pattern: str | None = None   # the distinctive ring the line reported (a second number)
    callerid: CallerIdEvent | None = None
    callerid_error: str | None = None
    callwaiting: list[CallerIdEvent] = field(default_factory=list)
    end_reason: str | None = None
    hangup_how: str | None = None
    transfer: TransferInfo | None = None
    keys: int = 0
    handler_error: str | None = None
    barge_ins: list[tuple[int, int]] = field(default_factory=list)  # (key onset, audio stopped)
    started_wall: float = 0.0
    answered_wall: float | None = None
    ended_wall: float | None = None
    pacing: dict | None = None

    def summary(self, rate: int = 8000) -> dict:
        """What `callgate run` prints (under systemd: the journal). No keyed digit, only
        their count; calling numbers masked as in the call records."""
        cid = self.callerid
        out = {
            "call": self.call_id,
            "line": self.line,
            "start": round(self.started_at / rate, 3),
            "answered": None if self.answered_at is None else round(self.answered_at / rate, 3),
            "end": None if self.ended_at is None else round(self.ended_at / rate, 3),
            "rings": self.rings,
            "callerid": None if cid is None else {
                "number": mask(cid.number), "name": cid.name, "number_absent": cid.number_absent,
                "name_absent": cid.name_absent, "format": cid.format},
            "callerid_error": self.callerid_error,
            "callwaiting": [mask(c.number) or c.number_absent for c in self.callwaiting],
            "keys": self.keys,
            "transfer": None if self.transfer is None else {
                "extension": self.transfer.extension, "mode": self.transfer.mode,
                "outcome": self.transfer.outcome},
            "end_reason": self.end_reason,
            "hangup": self.hangup_how,
            "handler_error": self.handler_error,
        }
        if self.pacing is not None:
            out["pacing"] = dict(self.pacing)
        if self.ring_pattern is not None:
            out["ring_pattern"] = self.ring_pattern
        return out


class Handler:
    """What runs a call: events in, actions out, no I/O and no clock of its own.

    Subclasses override what they need; every method here is a no-op that asks
    for nothing. The optional hooks feed the live line status; their actions
    may only be record steps (Record, LineState).
    """

    prompts_needed: tuple[str, ...] = ()
    """Prompts the handler may play: the engine checks them before the first call."""

    def start(self, call: CallInfo) -> list:
        return []

    def on_event(self, event: HandlerEvent) -> list:
        return []

    def end(self, call: CallInfo) -> list:
        return []

    def ringing(self, call: CallInfo) -> list:
        """The first ring of a call (not answered yet)."""
        return []

    def line_up(self, line: str, at: float) -> list:
        """The engine started on the line, or a failed line works again."""
        return []

    def line_down(self, line: str, reason: str | None, at: float) -> list:
        """The line failed (`reason`: the driver's one line), or the engine stopped."""
        return []
