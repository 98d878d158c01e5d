"""The ID&V call flow: identify by caller ID or a keyed identifier, verify a secret,
send the call on with what was learned.

A call handler for the engine (callgate/call.py): events in, actions out. It
does no I/O and reads no clock of its own: back-end requests and reads of the
attempt counter leave as `Work` actions whose reply comes back as `WorkDone`,
and the record leaves step by step as `Record` and `LineState` actions that
the engine hands to the recorder's thread. Durations are counted in the
samples of the events; wall times are the ones the engine stamped on them.

The steps (the customer's "Customer Authentication" use case):

    answer -> hours (open / closed / holiday / override, if [service.hours])
           -> lookup_number (caller ID, if on and usable)
           -> identifier (keyed, retries) -> lookup_identifier
           -> security (keyed secret, retries, lockout; skipped, no secret on file)
           -> verify
           -> menu (a key per destination, if [service.menu])
           -> transfer (extension of the outcome or the menu, then its fallbacks,
              then the final destination; all failing: "call again later", goodbye)

Out of hours the caller hears the closed message and goes to the after-hours
extension (or hears goodbye), after ID&V when `idv_first` asks for it.

Security rules kept here:
- a matching caller ID identifies, it never verifies;
- only the back end's "verified" verifies; any error, timeout or answer we do
  not understand sends the caller to an agent, never verified;
- verification failures are counted across calls (per customer and per
  calling number); past the limit the caller is sent to an agent as locked.
  The count is read (and each failure counted) through the recorder, after
  every step handed over before it, so it is never stale; a count that
  cannot be read or written treats the customer as locked (fail closed);
- keyed digits live only in the closure of one Work; they are never logged,
  recorded or put in an exception (identifiers are recorded masked).

Beyond the contract, three optional parts (all off unless configured):
- the line's live state (idle / ringing / in_flow at `step` / transferring /
  down) leaves as LineState steps (written on change), fed by the engine's
  hooks (`ringing`, `line_up`, `line_down`) and by the flow's own steps;
- the agent whisper ([service.whisper]): when the agent answers a supervised
  transfer they hear the outcome and, if the policy says so, the customer's
  id digit by digit, before we hang up and the exchange joins the call. The
  digits leave as one `SayDigits` action that the engine renders from its
  prompt set in equal slots, so no prompt name, label or event ever spells
  the id out;
- the write-back: at the end of a call its outcome is queued in the store's
  outbox (`writeback_max_age_s`), delivered by crm/writeback.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol

from ..call import (CallerHungUp, CallInfo, Collect, Digits, Handler, HangUp, Pause, Play,
                    PromptDone, SayDigits, Transfer, TransferResult, Work, WorkDone)
from ..crm.base import ASSURANCES, Customer, Lookup, Verdict
from ..crm.phone import normalise_phone
from ..privacy import mask
from .menu import MAX_PROMPT_CHOICES
from .outcome import Outcome, outcome_for
from .policy import Entry, Policy
from .trail import CallTrail, LineStatus

log = logging.getLogger("callgate.flow")

HOLD_CHUNK_MS = 20             # silence while waiting for the back end, per piece: one
                               # frame, so a reply is acted on at once, not after the piece
NUMBER_GAP_MS = 250            # "customer number" -> first digit
DIGIT_GAP_MS = 120             # between digits (each digit has a slot as long as the longest)
MAX_READ_DIGITS = 20           # a longer (or non-numeric) id is not read back
COUNTER_WORK = ("lockout", "count_failure")    # reads of the attempt counter, not the CRM
SWITCHES_WAIT_MS = 1000        # the supervisor's switches: past this, go by the config
                               # (the caller hears silence before the greeting, no "one moment")
ANNOUNCEMENT_WAIT_MS = 1000    # the announcement's audio (a file, kept in memory once read):
                               # past this, none is played; "closed today" is known by then
STORE_WAIT_MS = {"switches": SWITCHES_WAIT_MS, "announcement": ANNOUNCEMENT_WAIT_MS}
"""Work the store answers (not the CRM), and how long the flow waits for each."""
LOCAL_WORK = (*COUNTER_WORK, *STORE_WAIT_MS)   # answered by the store, not the CRM


class AttemptCounter(Protocol):
    """Verification failures across calls (store.recorder.RecordedCounter in `run`).
    Called only inside Work, so never on the audio thread of a paced line."""

    def recent_failures(self, customer_id: str, number: str | None, window_s: float,
                        at: float) -> int: ...

    def record_failure(self, customer_id: str, number: str | None, at: float,
                       window_s: float) -> int: ...


class Switches(Protocol):
    """The supervisor's switches (store.switches.RecordedSwitches in `run`); called only
    inside Work. `today` answers with `.closed_at` (unix seconds "closed today" was
    switched, or None) and `.announcement` (whether one is on); `announcement` with its
    audio samples (or None). Two reads, each with its own time limit, so a slow audio
    file never costs the caller the "closed today" switch."""

    def today(self, service: str): ...

    def announcement(self, service: str): ...


@dataclass
class _Pending:
    """The back-end request in flight."""

    tag: str
    what: str                  # lookup_phone | lookup_identifier | verify | lockout |
                               # count_failure | switches
    since: int                 # sample it was sent at (or, if queued behind prompts, the
                               # sample the last of them ended: when the engine started it)
    ahead: int = 0             # prompts queued before it that have not ended yet


class _Call:
    """Everything the flow knows about the call in progress."""

    def __init__(self, info: CallInfo, t0: float, s0: int) -> None:
        self.info = info
        self.t0 = t0               # wall time at answer (unix seconds, stamped by the engine)
        self.s0 = s0               # line sample at answer
        self.wall = t0             # wall time of the event being handled
        self.step = "answer"
        self.ani: str | None = None            # E.164 of a good caller ID
        self.ani_why: str | None = None        # ... or why there is none
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
        self.queued = 0            # prompts still queued when the event came (ahead of new work)
        self.record_id: str | None = None
        self.hours: str | None = None      # open | closed | holiday | override (with hours)
        self.menu_tries = 0
        self.menu_prompts = 0              # prompt keys heard (capped: MAX_PROMPT_CHOICES)
        self.menu_choice: str | None = None
        self.chain: tuple[str, ...] = ()   # the destinations of the transfer, in order
        self.tried = 0                     # how many of them failed so far
        self.closed_today = False          # the supervisor's switch, once read
        self.heard: list[tuple[str, str]] = []   # (prompt, step) of the announcement and
                                           # the closed message while they play: a hang-up
                                           # then is recorded at that step
        self.auth_from = s0                # ID&V is timed from here (after the announcement)


class IdvFlow(Handler):
    """The ID&V handler of one service line (a Policy) over one CRM.

    `counter` counts verification failures across calls (None: no lockout,
    for tests of the steps alone); `switches` answers the supervisor's
    "closed today" (None: only the configured hours); `writeback_max_age_s` queues each call's
    outcome for the write-back (None: no write-back).
    """

    def __init__(self, policy: Policy, crm, *, counter: AttemptCounter | None = None,
                 switches: Switches | None = None, rate: int = 8000,
                 writeback_max_age_s: float | None = None,
                 choose: Callable[[CallInfo], Policy] | None = None,
                 services: tuple[Policy, ...] = ()) -> None:
        self.policy = policy
        self.choose = choose              # the service line of each call (its distinctive ring)
        self.services = services or (policy,)
        self.crm = crm
        self.counter = counter
        self.switches = switches
        self.rate = rate
        self.writeback_max_age_s = writeback_max_age_s
        self.trail = CallTrail()
        self.status = LineStatus()
        self.c: _Call | None = None
        self.last: _Call | None = None       # the call that ended last (tests, simulate)

    @property
    def prompts_needed(self) -> tuple[str, ...]:
        names = [n for p in self.services for n in p.prompt_names()]
        return tuple(dict.fromkeys(names))

    # ------------------------------------------------------------------ engine hooks

    def ringing(self, call: CallInfo) -> list:
        return self.status.set(call.line, "ringing", call.started_wall)

    def line_up(self, line: str, at: float) -> list:
        return [*self.status.up(line, at), *self._publish()]

    def line_down(self, line: str, reason: str | None, at: float) -> list:
        return self.status.down(line, reason, at)

    def _publish(self) -> list:
        """The line's state from the step of the call in progress (a step on change)."""
        c = self.c
        if c is None:
            return []
        where = _where(c)
        if where in ("transferred", "whisper"):
            state, step = "transferring", ("whisper" if where == "whisper" else None)
        elif where == "transfer" and c.plays == 0:
            state, step = "transferring", None     # the announcements are over: dialling
        else:
            state, step = "in_flow", where
        return self.status.set(c.info.line, state, c.wall, step, c.record_id)

    # ------------------------------------------------------------------ the contract

    def start(self, call: CallInfo) -> list:
        actions = self._start(call)
        return [*self.trail.take(), *self._publish(), *actions]

    def on_event(self, ev) -> list:
        actions = self._on_event(ev)
        return [*self.trail.take(), *self._publish(), *actions]

    def end(self, call: CallInfo) -> list:
        at = call.ended_wall if call.ended_wall is not None else call.started_wall
        try:
            self._end(call)
        finally:
            steps = [*self.trail.take(), *self.status.set(call.line, "idle", at)]
            if self.c is None:
                self.trail.call_id = None        # nothing more belongs to the call that ended
        return steps

    def _start(self, call: CallInfo) -> list:
        s0 = call.answered_at if call.answered_at is not None else call.started_at
        t0 = call.answered_wall if call.answered_wall is not None else call.started_wall
        c = self.c = _Call(call, t0, s0)
        if self.choose is not None:
            self.policy = self.choose(call)
        p = self.policy
        c.ani, c.ani_why = self._caller_number(call)
        number = c.ani
        c.record_id = f"{call.line}-{int(c.t0 * 1000)}-{call.call_id}"
        self.trail.moment(c.wall, c.now)
        self.trail.start(c.record_id, call.line, p.name, number)
        if self.switches is not None:
            c.step = "hours"
            switches, service = self.switches, p.name
            work = self._work("switches", lambda: switches.today(service), latency_ms=0)
            return [work, self._hold()]
        return self._begin()

    def _begin(self, announcement=None) -> list:
        """The announcement, the greeting and the first step, once the line knows whether
        it is open."""
        c, p = self.c, self.policy
        greeting = []
        c.auth_from = c.now
        if announcement is not None:
            c.plays += 1
            c.heard.append(("announcement", "announcement"))
            c.auth_from = c.now + len(announcement)       # corrected when it ends
            greeting.append(Play(announcement, barge_in=False, name="announcement"))
            self._set(announcement=1)
            self._event("announcement", seconds=round(len(announcement) / self.rate, 2))
        greeting += self._plays("greeting")
        if p.hours is not None:
            c.hours = p.hours.state(c.t0, c.closed_today)
            self._set(hours=c.hours)
            self._event("hours", state=c.hours, zone=p.hours.zone_name)
            if c.hours != "open":
                closed = self._plays("closed", barge_in=False)    # heard whole
                if closed:
                    c.heard.append((closed[0].label, "closed"))
                greeting += closed
                if not p.hours.idv_first:
                    c.outcome = outcome_for(False)
                    self._set(status=c.outcome.status)
                    return [*greeting, *self._after_hours()]
        number = c.ani
        if p.number_lookup and number is not None:
            c.step = "lookup_number"
            work = self._work("lookup_phone", lambda b=self.crm, n=number: b.lookup_phone(n))
            return [work, *greeting] if greeting else [work, self._hold_first()]
        lookup = "disabled" if not p.number_lookup else "withheld"
        self._set(lookup=lookup)
        self._event("lookup", source="number", result=lookup,
                    **({"why": c.ani_why} if lookup == "withheld" else {}))
        return [*greeting, *self._ask_identifier()]

    def _on_event(self, ev) -> list:
        c = self.c
        if c is None:
            return []
        c.now = max(c.now, ev.sample)
        c.wall = max(c.wall, ev.wall)
        self.trail.moment(c.wall, c.now)
        if isinstance(ev, PromptDone):
            c.plays = max(0, c.plays - 1)
            c.queued = c.plays
            if c.heard and ev.prompt == c.heard[0][0]:
                if c.heard.pop(0)[1] == "announcement":
                    c.auth_from = ev.sample
            pending = c.pending
            if pending is not None and pending.ahead > 0:
                pending.ahead -= 1
                if pending.ahead == 0:
                    pending.since = ev.sample       # the engine starts it now
            if c.pending is not None and c.plays == 0 and c.outcome is None:
                return self._still_waiting(ev.sample)
            return []
        c.queued = c.plays
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
            if c.step == "menu":
                return self._on_menu(ev)
            return []
        if isinstance(ev, TransferResult):
            return self._on_transfer(ev)
        if isinstance(ev, CallerHungUp):
            c.hung_up = True
            self._set(hangup_step=_where(c))
            self._event("hangup", step=_where(c), how=ev.how)
            if c.outcome is None:
                known = outcome_for(c.customer is not None)
                self._set(status=known.status)
            return []
        return []

    def _end(self, call: CallInfo) -> None:
        c = self.c
        if c is None or (c.info.call_id, c.info.line) != (call.call_id, call.line):
            return                          # abandoned before answer: no record was started
        if call.ended_wall is not None:
            c.wall = max(c.wall, call.ended_wall)
        if call.ended_at is not None:
            c.now = max(c.now, call.ended_at)
        self.trail.moment(c.wall, c.now)
        fields = {"ended": c.wall}
        if c.outcome is None and not c.hung_up:
            fields["status"] = outcome_for(c.customer is not None).status
            fields["hangup_step"] = None if call.end_reason != "caller" else _where(c)
        self._set(**fields)
        self._event("end", step=_where(c), reason=call.end_reason)
        c.pending = None
        self.last, self.c = c, None
        if self.writeback_max_age_s is not None:
            identifier = c.customer.id if c.customer is not None else None
            self.trail.writeback(identifier, self.writeback_max_age_s)

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
        if self._is_opt_out(ev):
            return self._opted_out("identifier")
        c.id_tries += 1
        self._set(id_attempts=c.id_tries)
        problem = self._entry_problem(ev, p.identifier)
        if problem is None:
            c.step = "lookup_identifier"
            kind, digits = p.identifier.kind, ev.digits
            work = self._work("lookup_identifier",
                              lambda b=self.crm, k=kind, d=digits: b.lookup_identifier(k, d))
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
        self.trail.backend(ms, status == "error")
        if what == "lookup_phone":
            self._set(lookup=status)
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
        self._set(identified_by=by, customer_id_masked=mask(customer.id),
                  customer_name=customer.name)
        log.info("call %s: identified by %s as %s", c.info.call_id, by, mask(customer.id))
        greet = []
        if by == "number" and p.greet_by_name and customer.name:
            greet = self._plays("welcome_back")
        if not p.security.enabled:
            self._set(verify_result="skipped")
            return [*greet, *self._finish(outcome_for(True))]
        self._set(verify_kind=p.security.entry.kind)
        if customer.secrets is not None and p.security.entry.kind not in customer.secrets:
            return [*greet, *self._no_secret("lookup")]
        if self.counter is None:
            return [*greet, *self._ask_secret()]
        # the security step starts with the lockout check: a read through the recorder
        c.step = "security"
        counter, s = self.counter, p.security
        cid, ani, at = customer.id, c.ani, c.wall
        work = self._work("lockout", lambda: counter.recent_failures(
            cid, ani, s.lockout_window_s, at), latency_ms=0)
        return [work, *greet] if greet else [work, self._hold()]

    # ------------------------------------------------------------------ verification

    def _on_failures(self, what: str, count, error: str | None) -> list:
        """The attempt counter answered (before asking for the secret, or after a wrong
        one): past the limit the caller goes to an agent as locked. A count that could
        not be read or written counts as locked: fail closed, never one guess more."""
        c, s = self.c, self.policy.security
        if error is not None or not isinstance(count, int) or isinstance(count, bool):
            log.error("call %s: attempt counter %s (%s): treating the customer as locked",
                      c.info.call_id, "unreadable" if what == "lockout" else "not written",
                      error or f"unexpected reply {type(count).__name__}")
            count = s.lockout_limit
        if count >= s.lockout_limit:
            self._set(verify_result="locked")
            return self._finish(outcome_for(True, reason="locked"))
        if what == "lockout":
            return self._ask_secret()
        c.step = "security"
        return self._retry_secret("rejected")

    def _ask_secret(self) -> list:
        self.c.step = "security"
        return [*self._plays("security"), self._collect(self.policy.security.entry)]

    def _on_secret(self, ev: Digits) -> list:
        c, s = self.c, self.policy.security
        if self._is_opt_out(ev):
            return self._opted_out("security")
        c.sec_tries += 1
        self._set(verify_attempts=c.sec_tries)
        problem = self._entry_problem(ev, s.entry)
        if problem is None:
            c.step = "verify"
            customer, kind, secret = c.customer, s.entry.kind, ev.digits
            work = self._work("verify",
                              lambda b=self.crm, cu=customer, k=kind, x=secret:
                              b.verify(cu, k, x))
            return [work, self._hold_first()]
        self._event("verify", attempt=c.sec_tries, result=problem)
        return self._retry_secret(problem)

    def _retry_secret(self, problem: str) -> list:
        c, s = self.c, self.policy.security
        if c.sec_tries >= s.entry.retries:
            self._set(verify_result="failed")
            return self._finish(outcome_for(True))
        role = {"no_input": "no_input", "invalid": "invalid"}.get(problem, "wrong_secret")
        return [*self._plays(role, barge_in=True), *self._ask_secret()]

    def _on_verdict(self, result, error: str | None, ms: float) -> list:
        c = self.c
        status = _verdict_status(result, error)
        self.trail.backend(ms, status == "error")
        self._event("verify", attempt=c.sec_tries, result=status, ms=round(ms, 1),
                    **_why(result, error, status))
        if status == "verified":
            c.assurance = result.assurance if result.assurance in ASSURANCES else "low"
            self.trail.success(c.customer.id)
            self._set(verify_result="verified", assurance=c.assurance)
            return self._finish(outcome_for(True, verified=True))
        if status == "error":
            self._set(verify_result="error")
            return self._finish(outcome_for(True, reason="backend_down"))
        if status == "no_secret":
            return self._no_secret("verify")
        if self.counter is None:
            c.step = "security"
            return self._retry_secret("rejected")
        counter, s = self.counter, self.policy.security
        cid, ani, at = c.customer.id, c.ani, c.wall
        work = self._work("count_failure", lambda: counter.record_failure(
            cid, ani, at, s.lockout_window_s), latency_ms=0)
        return [work, self._hold()]

    def _no_secret(self, said_by: str) -> list:
        """Nothing of the asked kind on file: nothing to guess, nothing to count.
        Identified only, reason no_secret ("no secret on file" on the screen-pop)."""
        c = self.c
        self._set(verify_result="no_secret")
        self._event("verify", result="no_secret", said_by=said_by,
                    kind=self.policy.security.entry.kind)
        log.info("call %s: no %s on file for %s: security step skipped", c.info.call_id,
                 self.policy.security.entry.kind, mask(c.customer.id))
        return self._finish(outcome_for(True, reason="no_secret"))

    # ------------------------------------------------------------------ the way out

    def _opted_out(self, step: str) -> list:
        self._set(opted_out=step)
        self._event("opt_out", step=step)
        if step == "security":
            self._set(verify_result="skipped")
        return self._finish(outcome_for(self.c.customer is not None, reason="opted_out"))

    def _finish(self, outcome: Outcome) -> list:
        """ID&V is over: record the outcome, then the menu, the after-hours way, or the
        transfer."""
        c, p = self.c, self.policy
        c.outcome = outcome
        c.pending = None
        auth_ms = max(0, round((c.now - c.auth_from) * 1000 / self.rate))
        self._set(status=outcome.status, reason=outcome.reason, auth_ms=auth_ms)
        role = "verified" if outcome.status == "verified" else outcome.reason
        plays = self._plays(role, barge_in=False) if role else []
        if c.hours not in (None, "open"):
            return [*plays, *self._after_hours()]
        if p.offers_menu(outcome.route):
            return [*plays, *self._ask_menu()]
        return [*plays, *self._transfer(p.chain(outcome.route))]

    def _after_hours(self) -> list:
        """Out of hours: the after-hours extension, or goodbye (the closed message has
        been played)."""
        c, p = self.c, self.policy
        ext = p.hours.after_hours
        if not ext:
            c.step = "closed"
            self._outcome(None)
            log.info("call %s: %s: closed message, goodbye", c.info.call_id, c.hours)
            return [*self._plays("call_in_hours", barge_in=False),
                    *self._plays("goodbye", barge_in=False), HangUp()]
        return self._transfer((ext,))

    def _transfer(self, chain: tuple[str, ...]) -> list:
        """Send the call to the first of `chain`; the rest are tried if it fails."""
        c, p = self.c, self.policy
        c.chain, c.tried = chain, 0
        c.step = "transfer"
        ext = chain[0]
        self._set(transfer_target=ext, transfer_mode=p.transfer_mode, transfer_tries=1)
        self._outcome(ext)
        o = c.outcome
        log.info("call %s: %s%s -> %s", c.info.call_id, o.status,
                 f" ({o.reason})" if o.reason else "", ext)
        return [*self._plays("transferring", barge_in=False), Transfer(ext, p.transfer_mode)]

    def _on_transfer(self, ev: TransferResult) -> list:
        c, p = self.c, self.policy
        self._set(transfer_result=ev.outcome)
        fault = ev.outcome == "failed"
        self._event("transfer", extension=ev.extension, result=ev.outcome,
                    **({"fault": "configuration"} if fault else {}))
        if ev.outcome in ("completed", "answered"):
            c.step = "transferred"
            return self._whisper() if ev.outcome == "answered" else []
        if fault:
            log.error("call %s: configuration fault: the exchange refused extension %s "
                      "(reorder: no such extension?); check service.%s.transfer",
                      c.info.call_id, ev.extension, p.name)
        c.tried += 1
        if ev.outcome == "no_recall":
            # no dial tone after the flash: the line's fault, not the extension's; every
            # other destination would need a flash too, each costing the recall timeout
            log.error("call %s: no recall dial tone after the hook flash (line %s): not "
                      "trying the other destinations; check the line (flash_ms, the "
                      "exchange's recall service)", c.info.call_id, c.info.line)
        elif c.tried < len(c.chain):
            ext = c.chain[c.tried]
            self._set(transfer_target=ext, transfer_tries=c.tried + 1)
            self._event("fallback", extension=ext, after=ev.extension, why=ev.outcome)
            self._outcome(ext)
            log.info("call %s: %s %s, trying %s", c.info.call_id, ev.extension,
                     ev.outcome, ext)
            return [*self._plays("transferring", barge_in=False),
                    Transfer(ext, p.transfer_mode)]
        c.step = "agent_unavailable"
        log.warning("call %s: no destination took the call (%s tried): caller told to "
                    "call again", c.info.call_id, len(c.chain))
        return [*self._plays("agent_busy", barge_in=False),
                *self._plays("unavailable", barge_in=False),
                *self._plays("goodbye", barge_in=False), HangUp()]

    def _outcome(self, ext: str | None) -> None:
        """The "outcome" event: where the call goes now and what the agent is told (the
        screen-pop of that extension shows it). One per destination dialled: a fallback
        pops up on the screen of the extension that is ringing."""
        c, o = self.c, self.c.outcome
        extra = {}
        if c.hours not in (None, "open"):
            extra["hours"] = c.hours
        if c.menu_choice is not None:
            extra["menu_choice"] = c.menu_choice
        if c.tried:
            extra["fallback"] = c.tried
        self._event("outcome", status=o.status, reason=o.reason, extension=ext, **extra)

    # ------------------------------------------------------------------ the menu

    def _ask_menu(self) -> list:
        c, m = self.c, self.policy.menu
        c.step = "menu"
        c.plays += 1
        spec = Collect(min_digits=1, max_digits=1, first_timeout_ms=m.first_timeout_ms,
                       inter_timeout_ms=1000, terminator="", clear="")
        return [Play(m.prompt, barge_in=True), spec]

    def _on_menu(self, ev: Digits) -> list:
        c, p = self.c, self.policy
        m = p.menu
        choice = m.choice(ev.digits) if ev.digits else None
        if choice is not None and choice.prompt and c.menu_prompts >= MAX_PROMPT_CHOICES:
            choice = None                # heard enough: on as if no key was chosen
            self._event("menu", key=ev.digits, result="prompt_limit")
            c.menu_tries = m.retries - 1
        if choice is not None and choice.prompt:
            c.menu_prompts += 1
            self._event("menu", key=ev.digits, prompt=choice.prompt)
            c.plays += 1
            return [Play(choice.prompt, barge_in=True), *self._ask_menu()]
        if choice is not None:
            c.menu_choice = choice.key
            self._set(menu_choice=choice.key)
            self._event("menu", key=choice.key, extension=choice.extension)
            return self._transfer(p.chain(c.outcome.route, first=choice.extension))
        problem = "no_input" if not ev.digits else "invalid"
        c.menu_tries += 1
        self._event("menu", attempt=c.menu_tries, result=problem)
        if c.menu_tries >= m.retries:
            c.menu_choice = problem
            self._set(menu_choice=problem)
            return self._transfer(p.chain(c.outcome.route, first=m.default or None))
        return [*self._plays(problem, barge_in=True), *self._ask_menu()]

    # ------------------------------------------------------------------ the whisper

    def _whisper(self) -> list:
        """The agent answered: a pause, the outcome, maybe the customer's id; then let go."""
        c, w = self.c, self.policy.whisper
        if not w.enabled or c.outcome is None:
            return []
        c.step = "whisper"
        o = c.outcome
        actions: list = []
        if w.pause_ms:
            c.plays += 1
            actions.append(Pause(w.pause_ms))
        role = f"whisper_{o.reason}" if f"whisper_{o.reason}" in self.policy.prompts \
            else f"whisper_{o.status}"
        actions += self._plays(role, barge_in=False)
        why = "policy"
        if w.read_identifier:
            say, why = self._read_back()
            if say is not None:
                c.plays += 1
                actions.append(say)
        read = why is None
        self._event("whisper", status=o.status, reason=o.reason, identifier_read=read,
                    **({} if read else {"why": why}))
        log.info("call %s: whisper to the agent (%s%s, identifier %s)", c.info.call_id,
                 o.status, f", {o.reason}" if o.reason else "",
                 "read back" if read else f"not read: {why}")
        return [*actions, HangUp()]

    def _read_back(self) -> tuple[SayDigits | None, str | None]:
        """"Customer number" and the id's digits, rendered by the engine as one piece of
        audio in equal slots; (None, why) when the id cannot be read back."""
        c, p = self.c, self.policy
        if c.customer is None:
            return None, "not identified"
        ident = c.customer.id
        if not (ident.isascii() and ident.isdigit()) or len(ident) > MAX_READ_DIGITS:
            return None, f"not 1-{MAX_READ_DIGITS} digits"
        digit_prompts = tuple(p.prompt(f"digit_{d}") or "" for d in range(10))
        if not all(digit_prompts):
            return None, "prompt missing"
        return SayDigits(ident, digit_prompts, lead=p.prompt("whisper_number") or "",
                         lead_gap_ms=NUMBER_GAP_MS, digit_gap_ms=DIGIT_GAP_MS), None

    # ------------------------------------------------------------------ helpers

    def _plays(self, role: str | None, barge_in: bool = True) -> list:
        name = self.policy.prompt(role) if role else None
        if not name:
            return []
        self.c.plays += 1
        return [Play(name, barge_in=barge_in)]

    def _collect(self, e: Entry) -> Collect:
        """`*` clears the entry; a non-digit opt-out key ends it as the first key (so
        with the default "*": first key opt-out, after digits clear). A variable-length
        entry with a terminator runs past its maximum as one over-long try."""
        key = self.policy.opt_out_key
        clear = "*" if e.terminator != "*" else ""
        opt_out = key if key and not key.isdigit() else ""
        return Collect(min_digits=e.min_digits, max_digits=e.max_digits,
                       first_timeout_ms=e.first_timeout_ms, inter_timeout_ms=e.inter_timeout_ms,
                       terminator=e.terminator, clear=clear, opt_out=opt_out,
                       overflow=bool(e.terminator) and e.min_digits < e.max_digits)

    def _is_opt_out(self, ev: Digits) -> bool:
        key = self.policy.opt_out_key
        if not key:
            return False
        if key.isdigit():
            return ev.digits == key
        return ev.reason == "opt_out" or ev.digits.startswith(key)

    @staticmethod
    def _entry_problem(ev: Digits, e: Entry) -> str | None:
        """None when the entry can go to the back end; else no_input / invalid (an
        over-long entry is invalid: its keys were thrown away, nothing is looked up)."""
        d = ev.digits
        if ev.reason == "too_long":
            return "invalid"
        if not d:
            return "no_input"
        if not d.isdigit() or not d.isascii() or not e.min_digits <= len(d) <= e.max_digits:
            return "invalid"
        return None

    def _work(self, what: str, fn, latency_ms: int | None | str = "policy") -> Work:
        """Work for the reply the flow waits on (one at a time). A CRM request is
        modelled with the policy's simulated latency; a counter read is local (0)."""
        c = self.c
        c.seq += 1
        # a Work returned for an event queues behind the prompts still pending: the back
        # end's time limit starts when the engine reaches it, not before
        c.pending = _Pending(f"{what}#{c.seq}", what, c.now, ahead=c.queued)
        c.moment_played = False
        latency = self.policy.simulated_latency_ms if latency_ms == "policy" else latency_ms
        # a failure being counted is counted even if the caller hangs up meanwhile
        return Work(c.pending.tag, fn, latency, outlives_call=(what == "count_failure"))

    def _hold_first(self) -> Play | Pause:
        """What the caller hears right after a request goes out: silence for hold_ms (a
        fast back end answers within it), or "one moment" at once when hold_ms is 0."""
        c = self.c
        if self.policy.hold_ms <= 0:
            c.plays += 1
            c.moment_played = True
            return Play(self.policy.prompt("one_moment"), barge_in=False)
        return self._hold()

    def _hold(self) -> Pause:
        """One piece of hold silence (a frame): a reply is acted on as soon as it comes."""
        self.c.plays += 1
        return Pause(HOLD_CHUNK_MS)

    def _still_waiting(self, now: int) -> list:
        """Every prompt is done and the back end has not answered: "one moment", then
        silence, until it answers or the flow's own limit passes (then: back end down)."""
        c, p = self.c, self.policy
        waited_ms = self._waited_ms(c.pending, now)
        limit = STORE_WAIT_MS.get(c.pending.what)
        if limit is not None:
            if waited_ms >= limit:
                pending, c.pending = c.pending, None
                return self._reply(pending, None, "timeout", now)
            return [self._hold()]
        if waited_ms >= p.backend_timeout_ms:
            pending, c.pending = c.pending, None
            return self._reply(pending, None, "timeout", now)
        if not c.moment_played and waited_ms >= p.hold_ms:
            c.plays += 1
            c.moment_played = True
            return [Play(p.prompt("one_moment"), barge_in=False)]
        return [self._hold()]

    def _waited_ms(self, pending: _Pending, now: int) -> float:
        """How long the back end has had the request, on the line's clock."""
        if pending.ahead > 0:
            return 0.0
        return (now - pending.since) * 1000 / self.rate

    def _reply(self, pending: _Pending, result, error: str | None, now: int) -> list:
        c = self.c
        waited = self._waited_ms(pending, now)
        ms = getattr(result, "latency_ms", None)
        ms = float(ms) if isinstance(ms, (int, float)) and not isinstance(ms, bool) \
            and ms >= 0 else waited
        if error == "timeout":
            ms = waited
        if pending.what == "switches":
            return self._on_switches(result, error)
        if pending.what == "announcement":
            return self._on_announcement(result, error)
        if pending.what in COUNTER_WORK:
            return self._on_failures(pending.what, result, error)
        if pending.what == "verify":
            return self._on_verdict(result, error, ms)
        if c.step not in ("lookup_number", "lookup_identifier"):
            return []
        return self._on_lookup(pending.what, result, error, ms)

    def _on_switches(self, result, error: str | None) -> list:
        """The supervisor's switches answered; switches that cannot be read leave the line
        as its hours say, with no announcement (the caller still gets through, the log
        says why). "Closed today" holds while the moment it was switched and the answer
        fall on the same date in the service line's zone; then the announcement's audio,
        if one is on, is read as Work of its own."""
        c, hours = self.c, self.policy.hours
        at = getattr(result, "closed_at", None)
        on = getattr(result, "announcement", None)
        if error is not None or not isinstance(on, bool) or not (
                at is None or isinstance(at, (int, float)) and not isinstance(at, bool)):
            log.error("call %s: the supervisor's switches could not be read (%s): going by "
                      "the configured hours", c.info.call_id,
                      error or f"unexpected reply {type(result).__name__}")
            return self._begin()
        c.closed_today = (hours is not None and at is not None
                          and hours.local_date(at) == hours.local_date(c.t0))
        if not on:
            return self._begin()
        switches, service = self.switches, self.policy.name
        work = self._work("announcement", lambda: switches.announcement(service),
                          latency_ms=0)
        return [work, self._hold()]

    def _on_announcement(self, audio, error: str | None) -> list:
        """The announcement's audio, or none (unreadable, too slow: logged) and on."""
        c = self.c
        if error is not None:
            log.error("call %s: the announcement could not be read in time (%s): not "
                      "played", c.info.call_id, error)
            audio = None
        return self._begin(announcement=audio if audio is not None and len(audio) else None)

    def _set(self, **fields) -> None:
        """Columns of the call's record (masked values only), as a record step."""
        self.trail.update(**fields)

    def _event(self, name: str, /, **detail) -> None:
        self.trail.event(name, **detail)

    @property
    def record_id(self) -> str | None:
        c = self.c or self.last
        return None if c is None else c.record_id


def _where(c: _Call) -> str:
    """The step a hang-up is recorded at: the announcement or the closed message while it
    plays (the flow's own step may be ahead of what the caller hears), else the step."""
    return c.heard[0][1] if c.heard else c.step


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
    return result.status if result.status in ("verified", "rejected", "no_secret") else "error"


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
