"""The ID&V call flow: identify by caller ID or a keyed identifier, verify a secret,
send the call on with what was learned.

A call handler for the engine (engine/actions.py): events in, actions out. It
does no I/O of its own: back-end requests leave as `Work` actions whose reply
comes back as `WorkDone`, and the record goes to the store step by step
through `CallRecord`. Its only clock is the line's: times come from the
samples of the events (wall time is the answer time plus elapsed samples).

The steps (the customer's "Customer Authentication" use case):

    answer -> lookup_number (caller ID, if on and usable)
           -> identifier (keyed, retries) -> lookup_identifier
           -> security (keyed secret, retries, lockout) -> verify
           -> transfer (extension of the outcome)

Security rules kept here:
- a matching caller ID identifies, it never verifies;
- only the back end's "verified" verifies; any error, timeout or answer we do
  not understand sends the caller to an agent, never verified;
- verification failures are counted across calls (per customer and per
  calling number); past the limit the caller is sent to an agent as locked;
- keyed digits live only in the closure of one Work; they are never logged,
  recorded or put in an exception (identifiers are recorded masked).

Beyond the contract, three optional parts (all off unless configured):
- the line's live state (idle / ringing / in_flow at `step` / transferring /
  down) goes to the store through `LineStatus`, fed by the engine's optional
  hooks (`ringing`, `line_up`, `line_down`) and by the flow's own steps;
- the agent whisper ([service.whisper]): when the agent answers a supervised
  transfer they hear the outcome and, if the policy says so, the customer's
  id digit by digit, before we hang up and the exchange joins the call. The
  digits are played as one piece of audio (`use_prompts` gives the flow the
  engine's prompt set), in equal slots, so no prompt name, label or event
  ever spells the id out;
- the write-back: at the end of a call its outcome is queued in the store's
  outbox (`writeback_max_age_s`), delivered by crm/writeback.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..crm.base import Customer, Lookup, Verdict
from ..crm.phone import normalise_phone
from ..engine.actions import (CallerHungUp, CallInfo, Collect, Digits, HangUp, Play, PromptDone,
                              Transfer, TransferResult, Work, WorkDone)
from ..store.records import CallStore, mask
from .outcome import Outcome, outcome_for
from .policy import Entry, Policy
from .record import CallRecord, LineStatus

log = logging.getLogger("callgate.flow")

HOLD_CHUNK_MS = 20             # silence while waiting for the back end, per piece: one
                               # frame, so a reply is acted on at once, not after the piece
NUMBER_GAP_MS = 250            # "customer number" -> first digit
DIGIT_GAP_MS = 120             # between digits (each digit has a slot as long as the longest)
MAX_READ_DIGITS = 20           # a longer (or non-numeric) id is not read back


@dataclass
class _Pending:
    """The back-end request in flight."""

    tag: str
    what: str                  # lookup_phone | lookup_identifier | verify
    since: int                 # sample it was sent at


class _Call:
    """Everything the flow knows about the call in progress."""

    def __init__(self, info: CallInfo, t0: float, s0: int) -> None:
        self.info = info
        self.t0 = t0               # wall time at answer (unix seconds)
        self.s0 = s0               # line sample at answer
        self.step = "answer"
        self.ani: str | None = None            # E.164 of a good caller ID
        self.customer: Customer | None = None
        self.identified_by: str | None = None
        self.id_tries = 0
        self.sec_tries = 0
        self.plays = 0             # prompts queued whose PromptDone has not come
        self.pending: _Pending | None = None
        self.moment_played = False
        self.seq = 0
        self.outcome: Outcome | None = None
        self.assurance: str | None = None
        self.hung_up = False
        self.now = s0


class IdvFlow:
    """The ID&V handler of one service line (a Policy) over one back end."""

    def __init__(self, policy: Policy, backend, store: CallStore | None = None, *,
                 clock: Callable[[], float] = time.time, rate: int = 8000,
                 record: CallRecord | None = None, status: LineStatus | None = None,
                 writeback_max_age_s: float | None = None) -> None:
        self.policy = policy
        self.backend = backend
        self.record = record or CallRecord(store)
        self.clock = clock
        self.rate = rate
        self.status = status if status is not None else LineStatus(self.record.store, clock)
        self.writeback_max_age_s = writeback_max_age_s   # None: no write-back
        self.prompt_audio = None             # the engine's PromptSet (use_prompts)
        self.c: _Call | None = None
        self.last: _Call | None = None       # the call that ended last (tests, simulate)

    @property
    def prompts_needed(self) -> tuple[str, ...]:
        return tuple(self.policy.prompt_names())

    # ------------------------------------------------------------------ optional engine hooks

    def use_prompts(self, prompts) -> None:
        """The engine's prompt set: the whisper reads the customer's id from its audio."""
        self.prompt_audio = prompts

    def ringing(self, call: CallInfo) -> None:
        self.status.set(call.line, "ringing")

    def line_up(self, line: str) -> None:
        self.status.up(line)
        self._publish()

    def line_down(self, line: str, reason: str | None = None) -> None:
        self.status.down(line, reason)

    def _publish(self) -> None:
        """The line's state from the step of the call in progress (written on change)."""
        c = self.c
        if c is None:
            return
        if c.step in ("transferred", "whisper"):
            state, step = "transferring", ("whisper" if c.step == "whisper" else None)
        elif c.step == "transfer" and c.plays == 0:
            state, step = "transferring", None     # the announcements are over: dialling
        else:
            state, step = "in_flow", c.step
        self.status.set(c.info.line, state, step, getattr(c, "record_id", None))

    # ------------------------------------------------------------------ the contract

    def start(self, call: CallInfo) -> list:
        actions = self._start(call)
        self._publish()
        return actions

    def on_event(self, ev) -> list:
        actions = self._on_event(ev)
        self._publish()
        return actions

    def end(self, call: CallInfo) -> None:
        try:
            self._end(call)
        finally:
            self.status.set(call.line, "idle")

    def _start(self, call: CallInfo) -> list:
        s0 = call.answered_at if call.answered_at is not None else call.started_at
        c = self.c = _Call(call, self.clock(), s0)
        p = self.policy
        number, why = self._caller_number(call)
        c.ani = number
        c.record_id = f"{call.line}-{int(c.t0 * 1000)}-{call.call_id}"
        self.record.start(c.record_id, call.line, p.name, c.t0, number)
        greeting = self._plays("greeting")
        if p.number_lookup and number is not None:
            c.step = "lookup_number"
            work = self._work("lookup_phone", lambda b=self.backend, n=number: b.lookup_phone(n))
            return [work, *greeting] if greeting else [work, self._hold_first()]
        lookup = "disabled" if not p.number_lookup else "withheld"
        self.record.update(lookup=lookup)
        self._event("lookup", source="number", result=lookup,
                    **({"why": why} if lookup == "withheld" else {}))
        return [*greeting, *self._ask_identifier()]

    def _on_event(self, ev) -> list:
        c = self.c
        if c is None:
            return []
        c.now = max(c.now, ev.sample)
        if isinstance(ev, PromptDone):
            c.plays = max(0, c.plays - 1)
            if c.pending is not None and c.plays == 0 and c.outcome is None:
                return self._still_waiting(ev.sample)
            return []
        if isinstance(ev, WorkDone):
            if c.pending is None or ev.tag != c.pending.tag or c.outcome is not None:
                return []                    # a reply after we gave up on it
            pending, c.pending = c.pending, None
            if self._waited_ms(pending, ev.sample) > self.policy.backend_timeout_ms:
                # past the flow's limit while a prompt was still playing: a late answer
                # is no answer, whatever it says (the limit must not stretch with prompts)
                return self._reply(pending, None, "timeout", ev.sample)
            return self._reply(pending, ev.result, ev.error, ev.sample)
        if isinstance(ev, Digits):
            if c.step == "identifier":
                return self._on_identifier(ev)
            if c.step == "security":
                return self._on_secret(ev)
            return []
        if isinstance(ev, TransferResult):
            return self._on_transfer(ev)
        if isinstance(ev, CallerHungUp):
            c.hung_up = True
            self.record.update(hangup_step=c.step)
            self._event("hangup", step=c.step, how=ev.how)
            if c.outcome is None:
                known = outcome_for(c.customer is not None)
                self.record.update(status=known.status)
            return []
        return []

    def _end(self, call: CallInfo) -> None:
        c = self.c
        if c is None or (c.info.call_id, c.info.line) != (call.call_id, call.line):
            return                          # abandoned before answer: no record was started
        end = call.ended_at if call.ended_at is not None else c.now
        fields = {"ended": self._wall(end)}
        if c.outcome is None and not c.hung_up:
            fields["status"] = outcome_for(c.customer is not None).status
            fields["hangup_step"] = None if call.end_reason != "caller" else c.step
        self.record.update(**fields)
        self._event("end", step=c.step, reason=call.end_reason)
        c.pending = None
        self.last, self.c = c, None
        if self.writeback_max_age_s is not None:
            identifier = c.customer.id if c.customer is not None else None
            self.record.writeback(identifier, self.clock(), self.writeback_max_age_s)

    # ------------------------------------------------------------------ identification

    def _caller_number(self, call: CallInfo) -> tuple[str | None, str]:
        """The caller's number in E.164 from a checksum-good caller ID, or (None, why)."""
        cid = call.callerid
        if cid is None:
            return None, "no caller id"
        if not cid.checksum_ok or cid.error:
            return None, "caller id unreadable"
        if not cid.number:
            return None, {"P": "private", "O": "unavailable"}.get(cid.number_absent or "",
                                                                  "absent")
        number = normalise_phone(cid.number, self.policy.default_country)
        return (number, "") if number else (None, "not a phone number")

    def _ask_identifier(self) -> list:
        c, e = self.c, self.policy.identifier
        c.step = "identifier"
        plays = self._plays("identifier")
        if self.policy.opt_out_key:
            plays += self._plays("opt_out_hint")
        return [*plays, self._collect(e)]

    def _on_identifier(self, ev: Digits) -> list:
        c, p = self.c, self.policy
        if self._is_opt_out(ev.digits):
            return self._opted_out("identifier")
        c.id_tries += 1
        self.record.update(id_attempts=c.id_tries)
        problem = self._entry_problem(ev, p.identifier)
        if problem is None:
            c.step = "lookup_identifier"
            kind, digits = p.identifier.kind, ev.digits
            work = self._work("lookup_identifier",
                              lambda b=self.backend, k=kind, d=digits: b.lookup_identifier(k, d))
            return [work, self._hold_first()]
        self._event("identifier", attempt=c.id_tries, result=problem)
        return self._retry_identifier(problem)

    def _retry_identifier(self, problem: str) -> list:
        c, p = self.c, self.policy
        if c.id_tries >= p.identifier.retries:
            return self._finish(outcome_for(False))
        role = {"no_input": "no_input", "invalid": "invalid"}.get(problem, "no_match")
        return [*self._plays(role, barge_in=True), *self._ask_identifier()]

    def _on_lookup(self, what: str, result, error: str | None, ms: float) -> list:
        c = self.c
        status, customer = _lookup_status(result, error)
        self.record.backend(ms, status == "error")
        if what == "lookup_phone":
            self.record.update(lookup=status)
            self._event("lookup", source="number", result=status, ms=round(ms, 1),
                        **_why(result, error, status))
            if status == "hit":
                return self._identified(customer, "number")
            if status == "error":
                return self._finish(outcome_for(False, reason="backend_down"))
            return self._ask_identifier()        # miss, ambiguous: ask for the identifier
        self._event("identifier", attempt=c.id_tries, result=status, ms=round(ms, 1),
                    **_why(result, error, status))
        if status == "hit":
            return self._identified(customer, "keyed")
        if status == "error":
            return self._finish(outcome_for(False, reason="backend_down"))
        if status == "ambiguous":
            return self._finish(outcome_for(False))   # asking again cannot tell them apart
        c.step = "identifier"
        return self._retry_identifier("no_match")

    def _identified(self, customer: Customer, by: str) -> list:
        c, p = self.c, self.policy
        c.customer, c.identified_by = customer, by
        self.record.update(identified_by=by, customer_id_masked=mask(customer.id),
                           customer_name=customer.name)
        log.info("call %s: identified by %s as %s", c.info.call_id, by, mask(customer.id))
        greet = []
        if by == "number" and p.greet_by_name and customer.name:
            greet = self._plays("welcome_back")
        if not p.security.enabled:
            self.record.update(verify_result="skipped")
            return [*greet, *self._finish(outcome_for(True))]
        self.record.update(verify_kind=p.security.entry.kind)
        if self._locked():
            self.record.update(verify_result="locked")
            return [*greet, *self._finish(outcome_for(True, reason="locked"))]
        return [*greet, *self._ask_secret()]

    # ------------------------------------------------------------------ verification

    def _locked(self) -> bool:
        c, s = self.c, self.policy.security
        n = self.record.failures(c.customer.id, c.ani, s.lockout_window_s,
                                 self._wall(c.now), s.lockout_limit)
        return n >= s.lockout_limit

    def _ask_secret(self) -> list:
        self.c.step = "security"
        return [*self._plays("security"), self._collect(self.policy.security.entry)]

    def _on_secret(self, ev: Digits) -> list:
        c, s = self.c, self.policy.security
        if self._is_opt_out(ev.digits):
            return self._opted_out("security")
        c.sec_tries += 1
        self.record.update(verify_attempts=c.sec_tries)
        problem = self._entry_problem(ev, s.entry)
        if problem is None:
            c.step = "verify"
            customer, kind, secret = c.customer, s.entry.kind, ev.digits
            work = self._work("verify",
                              lambda b=self.backend, cu=customer, k=kind, x=secret:
                              b.verify(cu, k, x))
            return [work, self._hold_first()]
        self._event("verify", attempt=c.sec_tries, result=problem)
        return self._retry_secret(problem)

    def _retry_secret(self, problem: str) -> list:
        c, s = self.c, self.policy.security
        if c.sec_tries >= s.entry.retries:
            self.record.update(verify_result="failed")
            return self._finish(outcome_for(True))
        role = {"no_input": "no_input", "invalid": "invalid"}.get(problem, "wrong_secret")
        return [*self._plays(role, barge_in=True), *self._ask_secret()]

    def _on_verdict(self, result, error: str | None, ms: float) -> list:
        c = self.c
        status = _verdict_status(result, error)
        self.record.backend(ms, status == "error")
        self._event("verify", attempt=c.sec_tries, result=status, ms=round(ms, 1),
                    **_why(result, error, status))
        at = self._wall(c.now)
        if status == "verified":
            c.assurance = result.assurance if result.assurance in ("high", "low") else "low"
            self.record.success(c.customer.id, at)
            self.record.update(verify_result="verified", assurance=c.assurance)
            return self._finish(outcome_for(True, verified=True))
        if status == "error":
            self.record.update(verify_result="error")
            return self._finish(outcome_for(True, reason="backend_down"))
        self.record.failure(c.customer.id, c.ani, at)
        if self._locked():
            self.record.update(verify_result="locked")
            return self._finish(outcome_for(True, reason="locked"))
        c.step = "security"
        return self._retry_secret("rejected")

    # ------------------------------------------------------------------ the way out

    def _opted_out(self, step: str) -> list:
        self.record.update(opted_out=step)
        self._event("opt_out", step=step)
        if step == "security":
            self.record.update(verify_result="skipped")
        return self._finish(outcome_for(self.c.customer is not None, reason="opted_out"))

    def _finish(self, outcome: Outcome) -> list:
        c, p = self.c, self.policy
        c.outcome = outcome
        c.pending = None
        ext = p.extension(outcome.route)
        c.step = "transfer"
        auth_ms = max(0, round((c.now - c.s0) * 1000 / self.rate))
        self.record.update(status=outcome.status, reason=outcome.reason, auth_ms=auth_ms,
                           transfer_target=ext, transfer_mode=p.transfer_mode)
        self._event("outcome", status=outcome.status, reason=outcome.reason, extension=ext)
        log.info("call %s: %s%s -> %s", c.info.call_id, outcome.status,
                 f" ({outcome.reason})" if outcome.reason else "", ext)
        role = "verified" if outcome.status == "verified" else outcome.reason
        plays = self._plays(role, barge_in=False) if role else []
        return [*plays, *self._plays("transferring", barge_in=False),
                Transfer(ext, p.transfer_mode)]

    def _on_transfer(self, ev: TransferResult) -> list:
        c = self.c
        self.record.update(transfer_result=ev.outcome)
        self._event("transfer", extension=ev.extension, result=ev.outcome)
        if ev.outcome in ("completed", "answered"):
            c.step = "transferred"
            return self._whisper() if ev.outcome == "answered" else []
        c.step = "agent_unavailable"
        return [*self._plays("agent_busy", barge_in=False),
                *self._plays("goodbye", barge_in=False), HangUp()]

    # ------------------------------------------------------------------ the whisper

    def _whisper(self) -> list:
        """The agent answered: a pause, the outcome, maybe the customer's id; then let go."""
        c, w = self.c, self.policy.whisper
        if not w.enabled or c.outcome is None:
            return []
        c.step = "whisper"
        o = c.outcome
        actions = []
        if w.pause_ms:
            c.plays += 1
            actions.append(Play(_silence(w.pause_ms, self.rate), barge_in=False))
        actions += self._plays(f"whisper_{o.reason or o.status}", barge_in=False)
        why = "policy"
        if w.read_identifier:
            number, why = self._number_audio()
            if number is not None:
                c.plays += 1
                actions.append(Play(number, barge_in=False))
        read = why is None
        self._event("whisper", status=o.status, reason=o.reason, identifier_read=read,
                    **({} if read else {"why": why}))
        log.info("call %s: whisper to the agent (%s%s, identifier %s)", c.info.call_id,
                 o.status, f", {o.reason}" if o.reason else "",
                 "read back" if read else f"not read: {why}")
        return [*actions, HangUp()]

    def _number_audio(self) -> tuple[np.ndarray | None, str | None]:
        """"Customer number" and the id's digits as one piece of audio, each digit in a
        slot as long as the longest digit prompt (so its length says only how many);
        (None, why) when it cannot be read back."""
        c, p = self.c, self.policy
        if c.customer is None:
            return None, "not identified"
        ident = c.customer.id
        if not (ident.isascii() and ident.isdigit()) or len(ident) > MAX_READ_DIGITS:
            return None, f"not 1-{MAX_READ_DIGITS} digits"
        if self.prompt_audio is None:
            return None, "no prompt audio"
        try:
            digits = [np.asarray(self.prompt_audio[p.prompt(f"digit_{d}")], dtype=np.int16)
                      for d in range(10)]
            lead_name = p.prompt("whisper_number")
            lead = (np.asarray(self.prompt_audio[lead_name], dtype=np.int16) if lead_name
                    else np.zeros(0, np.int16))
        except (KeyError, TypeError):
            return None, "prompt missing"
        ms = self.rate // 1000
        start = len(lead) + (NUMBER_GAP_MS * ms if len(lead) else 0)
        slot = max(len(a) for a in digits) + DIGIT_GAP_MS * ms
        out = np.zeros(start + slot * len(ident), dtype=np.int16)
        out[:len(lead)] = lead
        for i, ch in enumerate(ident):
            audio = digits[ord(ch) - 48]
            at = start + i * slot
            out[at:at + len(audio)] = audio
        return out, None

    # ------------------------------------------------------------------ helpers

    def _plays(self, role: str | None, barge_in: bool = True) -> list:
        name = self.policy.prompt(role) if role else None
        if not name:
            return []
        self.c.plays += 1
        return [Play(name, barge_in=barge_in)]

    def _collect(self, e: Entry) -> Collect:
        clear = "" if self.policy.opt_out_key == "*" else "*"
        return Collect(min_digits=e.min_digits, max_digits=e.max_digits,
                       first_timeout_ms=e.first_timeout_ms, inter_timeout_ms=e.inter_timeout_ms,
                       terminator=e.terminator, clear=clear)

    def _is_opt_out(self, digits: str) -> bool:
        key = self.policy.opt_out_key
        if not key:
            return False
        return digits == key if key.isdigit() else digits.startswith(key)

    @staticmethod
    def _entry_problem(ev: Digits, e: Entry) -> str | None:
        """None when the entry can go to the back end; else no_input / invalid."""
        d = ev.digits
        if not d:
            return "no_input"
        if not d.isdigit() or not d.isascii() or not e.min_digits <= len(d) <= e.max_digits:
            return "invalid"
        return None

    def _work(self, what: str, fn) -> Work:
        c = self.c
        c.seq += 1
        c.pending = _Pending(f"{what}#{c.seq}", what, c.now)
        c.moment_played = False
        return Work(c.pending.tag, fn, self.policy.simulated_latency_ms)

    def _hold_first(self) -> Play:
        """What the caller hears right after a request goes out: silence for hold_ms (a
        fast back end answers within it), or "one moment" at once when hold_ms is 0."""
        c = self.c
        c.plays += 1
        if self.policy.hold_ms <= 0:
            c.moment_played = True
            return Play(self.policy.prompt("one_moment"), barge_in=False)
        return Play(_silence(HOLD_CHUNK_MS, self.rate), barge_in=False)

    def _still_waiting(self, now: int) -> list:
        """Every prompt is done and the back end has not answered: "one moment", then
        silence, until it answers or the flow's own limit passes (then: back end down)."""
        c, p = self.c, self.policy
        waited_ms = self._waited_ms(c.pending, now)
        if waited_ms >= p.backend_timeout_ms:
            pending, c.pending = c.pending, None
            return self._reply(pending, None, "timeout", now)
        c.plays += 1
        if not c.moment_played and waited_ms >= p.hold_ms:
            c.moment_played = True
            return [Play(p.prompt("one_moment"), barge_in=False)]
        return [Play(_silence(HOLD_CHUNK_MS, self.rate), barge_in=False)]

    def _waited_ms(self, pending: _Pending, now: int) -> float:
        """How long the back end has had the request, on the line's clock."""
        return (now - pending.since) * 1000 / self.rate

    def _reply(self, pending: _Pending, result, error: str | None, now: int) -> list:
        c = self.c
        waited = self._waited_ms(pending, now)
        ms = getattr(result, "latency_ms", None)
        ms = float(ms) if isinstance(ms, (int, float)) and not isinstance(ms, bool) \
            and ms >= 0 else waited
        if error == "timeout":
            ms = waited
        if pending.what == "verify":
            return self._on_verdict(result, error, ms)
        if c.step not in ("lookup_number", "lookup_identifier"):
            return []
        return self._on_lookup(pending.what, result, error, ms)

    def _wall(self, sample: int) -> float:
        c = self.c
        return c.t0 + (sample - c.s0) / self.rate

    def _event(self, name: str, /, **detail) -> None:
        self.record.event(name, self._wall(self.c.now), **detail)

    @property
    def record_id(self) -> str | None:
        c = self.c or self.last
        return getattr(c, "record_id", None)


def _silence(ms: float, rate: int) -> np.ndarray:
    return np.zeros(max(1, int(ms * rate / 1000)), dtype=np.int16)


def _lookup_status(result, error: str | None) -> tuple[str, Customer | None]:
    """hit (with its one customer) / miss / ambiguous / error; anything odd is an error."""
    if error or not isinstance(result, Lookup):
        return "error", None
    if result.status == "hit":
        if (len(result.customers) == 1 and isinstance(result.customers[0], Customer)
                and isinstance(result.customers[0].id, str) and result.customers[0].id):
            return "hit", result.customers[0]
        return ("ambiguous", None) if len(result.customers) > 1 else ("error", None)
    if result.status in ("miss", "ambiguous"):
        return result.status, None
    return "error", None


def _verdict_status(result, error: str | None) -> str:
    if error or not isinstance(result, Verdict):
        return "error"
    return result.status if result.status in ("verified", "rejected") else "error"


def _why(result, error: str | None, status: str) -> dict:
    """The one-line reason of a back-end error for the trail (never digits: the back
    end's reason is one line without them by contract, ours names types only)."""
    if status != "error":
        return {}
    if error:
        return {"error": error}
    if isinstance(result, (Lookup, Verdict)) and result.error:
        return {"error": str(result.error).splitlines()[0][:200]}
    return {"error": f"unexpected reply ({type(result).__name__})"}
