"""The ID&V flow driven directly with events: a real directory (SQLite) as the back
end and a real call store, no engine. `Run` plays the engine's part of the contract
(actions run in order, Work replies after its latency on a sample clock, wall times
stamped on the events, record steps written to the store)."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace

import numpy as np
import pytest

from callgate.config import ConfigError, Table
from callgate.dsp.events import CallerIdEvent
from callgate.call import (CallerHungUp, CallInfo, Collect, Digits, HangUp, Pause, Play,
                           PromptDone, SayDigits, Transfer, TransferResult, Work, WorkDone)
from callgate.flow import IdvFlow, load_services, policy_from_table
from callgate.flow.machine import COUNTER_WORK, LOCAL_WORK
from callgate.crm.base import Verdict
from callgate.store.records import AttemptCounter
from steps import KeptSteps, StepsToStore

RATE = 8000
PROMPT_S = 1.0
EXT = {"agent": "200", "verified": "201", "identified": "202", "not_identified": "203",
       "opted_out": "204", "locked": "205", "backend_down": "206"}
JANE_PHONE, JANE_ID, JANE_PIN = "2015550123", "12345678", "4271"
SHARED_PHONE = "3125550176"


def policy(**over):
    data = {"identifier": {"min_digits": 8, "max_digits": 8},
            "transfer": dict(EXT)}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return policy_from_table(Table(data, "service.support"), "support")


def cid(number=None, absent=None, ok=True):
    return CallerIdEvent(100, "MDMF", number, None, None, absent, None, ok, None)


class Run:
    """One call through the flow, the engine's side of the contract done by hand."""

    def __init__(self, flow, callerid=None, keys=(), transfer="completed", latency_ms=40,
                 hang_up_in=None, before_work=None, call_id=1, clock=None, sink=None,
                 stall=()):
        self.flow, self.keys = flow, deque(keys)
        self.stall = stall                       # kinds of Work that never answer (a stall)
        self.transfer_outcome, self.latency = transfer, latency_ms
        self.hang_up_in, self.before_work = hang_up_in, before_work
        self.sink = sink or StepsToStore(flow.counter.store)
        self.t0 = (clock or Clock())()           # wall time of line sample 0
        self.now = 5 * RATE
        self.call = CallInfo(call_id, "line1", started_at=0, answered_at=self.now,
                             callerid=callerid, started_wall=self.t0,
                             answered_wall=self.wall())
        self.queue: deque = deque()
        self.works: list = []
        self.prompts: list[str] = []
        self.transfers: list[Transfer] = []
        self.collects: list[Collect] = []
        self.hung_up_at = None
        self.end_reason = None

    def wall(self):
        return self.t0 + self.now / RATE

    def deliver(self, ev):
        self.queue.extend(self.sink.take(self.flow.on_event(replace(ev, wall=self.wall()))))

    def advance(self, until):
        while True:
            due = [w for w in self.works if w[0] <= until]
            if not due:
                break
            w = min(due, key=lambda x: x[0])
            self.works.remove(w)
            self.now = max(self.now, w[0])
            self.deliver(w[1])
        self.now = max(self.now, until)

    def go(self):
        self.queue.extend(self.sink.take(self.flow.start(self.call)))
        while self.end_reason is None:
            c = self.flow.c
            if self.hang_up_in and c is not None and c.step == self.hang_up_in:
                self.hung_up_at = c.step
                self.deliver(CallerHungUp(self.now, "cpc"))
                self.finish("caller")
                break
            if not self.queue:
                if self.works:
                    self.advance(min(w[0] for w in self.works))
                    continue
                self.finish("hangup" if not self.transfers else "transferred")
                break
            a = self.queue.popleft()
            if isinstance(a, Play):
                n = len(a.prompt) if isinstance(a.prompt, np.ndarray) else int(PROMPT_S * RATE)
                if isinstance(a.prompt, str):
                    self.prompts.append(a.prompt)
                self.advance(self.now + n)
                self.deliver(PromptDone(self.now, a.label))
            elif isinstance(a, (Pause, SayDigits)):
                n = a.ms * RATE // 1000 if isinstance(a, Pause) else len(a.digits) * RATE // 2
                self.advance(self.now + n)
                self.deliver(PromptDone(self.now, a.label))
            elif isinstance(a, Work):
                if self.before_work:
                    self.before_work(a.tag)
                try:
                    result, error = a.fn(), None
                except Exception as err:
                    result, error = None, f"{type(err).__name__} in work"
                latency = 0 if self.flow.c.pending.what in LOCAL_WORK else self.latency
                if latency is not None and self.flow.c.pending.what not in self.stall:
                    due = self.now + latency * RATE // 1000
                    self.works.append((due, WorkDone(due, a.tag, result, error)))
            elif isinstance(a, Collect):
                self.collects.append(a)
                key = self.keys.popleft() if self.keys else ""
                self.advance(self.now + 2 * RATE)
                digits = key[:-1] if key.endswith(a.terminator) and a.terminator else key
                reason = ("terminator" if key != digits else "timeout") if key else "no_input"
                self.deliver(Digits(self.now, digits=digits, reason=reason,
                                    complete=len(digits) >= a.min_digits))
            elif isinstance(a, Transfer):
                self.transfers.append(a)
                self.advance(self.now + 3 * RATE)
                outcome = self.transfer_outcome
                outcome = outcome(a.extension) if callable(outcome) else outcome
                self.deliver(TransferResult(self.now, a.extension, outcome))
                if outcome == "completed":
                    self.finish("transferred")
            elif isinstance(a, HangUp):
                self.finish("hangup")
        return self

    def finish(self, reason):
        self.end_reason = reason
        self.call.ended_at = self.now
        self.call.ended_wall = self.wall()
        self.call.end_reason = reason
        self.sink.take(self.flow.end(self.call))

    @property
    def extension(self):
        return self.transfers[-1].extension if self.transfers else None


class Clock:
    def __init__(self, t=1_700_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def make(directory, store, **over):
    """The flow over the directory, counting failures in `store` (read and written
    within Work, as through the recorder)."""
    return IdvFlow(policy(**over), directory, counter=AttemptCounter(store))


def record(store, flow):
    return store.get(flow.record_id)


def steps(store, flow):
    return [e["step"] for e in store.events(flow.record_id)]


# ---------------------------------------------------------------- the main paths


def test_identified_by_number_then_verified(directory, store):
    flow = make(directory, store)
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"]).go()
    assert run.extension == EXT["verified"]
    assert run.transfers[-1].mode == "blind"
    assert "enter_identifier" not in run.prompts
    assert run.prompts[:1] == ["welcome"]
    assert "enter_pin" in run.prompts and "verified_transfer" in run.prompts
    assert flow.last.outcome.status == "verified"
    r = record(store, flow)
    assert r["lookup"] == "hit" and r["identified_by"] == "number"
    assert r["customer_id_masked"] == "******78" and r["customer_name"] == "Jane Smith"
    assert r["ani_masked"] == "**********23"
    assert r["status"] == "verified" and r["reason"] is None
    assert r["verify_kind"] == "pin" and r["verify_result"] == "verified"
    assert r["verify_attempts"] == 1 and r["assurance"] == "high"
    assert r["transfer_target"] == "201" and r["transfer_result"] == "completed"
    assert r["transfer_mode"] == "blind"
    assert r["auth_ms"] > 0 and r["ended"] > r["started"]
    assert r["backend_errors"] == 0 and r["backend_ms_total"] > 0
    assert r["hangup_step"] is None
    assert steps(store, flow)[0] == "lookup" and steps(store, flow)[-1] == "end"


def test_a_matching_caller_id_alone_never_verifies(directory, store):
    """Security off: the number identifies, the call goes on as identified only."""
    flow = make(directory, store, security={"enabled": False})
    run = Run(flow, cid(JANE_PHONE)).go()
    r = record(store, flow)
    assert r["status"] == "identified" and r["verify_result"] == "skipped"
    assert run.extension == EXT["identified"] and "enter_pin" not in run.prompts


def test_number_lookup_disabled_always_asks(directory, store):
    flow = make(directory, store, number_lookup=False)
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_ID + "#", JANE_PIN + "#"]).go()
    assert run.prompts[:3] == ["welcome", "enter_identifier", "opt_out_hint"]
    r = record(store, flow)
    assert r["lookup"] == "disabled" and r["identified_by"] == "keyed"
    assert r["id_attempts"] == 1 and r["status"] == "verified"
    assert r["ani_masked"] == "**********23"          # still kept, masked, for the counter
    assert run.extension == EXT["verified"]


@pytest.mark.parametrize("callerid, why", [
    (None, "no caller id"),
    (cid(None, "P"), "private"),
    (cid(None, "O"), "unavailable"),
    (cid(JANE_PHONE, ok=False), "caller id unreadable"),
])
def test_withheld_or_unusable_number_asks_for_the_identifier(directory, store, callerid, why):
    flow = make(directory, store)
    run = Run(flow, callerid, keys=[JANE_ID + "#", JANE_PIN + "#"]).go()
    r = record(store, flow)
    assert r["lookup"] == "withheld" and r["identified_by"] == "keyed"
    assert r["ani_masked"] is None and r["status"] == "verified"
    assert store.events(flow.record_id)[0]["detail"]["why"] == why
    assert run.extension == EXT["verified"]


def test_two_customers_on_one_number_are_not_identified_by_it(directory, store):
    flow = make(directory, store)
    run = Run(flow, cid(SHARED_PHONE), keys=["56789012#", "9052#"]).go()
    r = record(store, flow)
    assert r["lookup"] == "ambiguous" and r["identified_by"] == "keyed"
    assert r["customer_name"] == "Lena Okafor" and r["status"] == "verified"
    assert "enter_identifier" in run.prompts and run.extension == EXT["verified"]


def test_number_miss_then_keyed_identifier(directory, store):
    flow = make(directory, store)
    run = Run(flow, cid("6175550199"), keys=[JANE_ID + "#", JANE_PIN + "#"]).go()
    r = record(store, flow)
    assert r["lookup"] == "miss" and r["identified_by"] == "keyed"
    assert r["customer_id_masked"] == "******78" and run.extension == EXT["verified"]


@pytest.mark.parametrize("wrong", [1, 2])
def test_wrong_identifier_then_right(directory, store, wrong):
    flow = make(directory, store)
    keys = ["99999999#"] * wrong + [JANE_ID + "#", JANE_PIN + "#"]
    run = Run(flow, None, keys=keys).go()
    r = record(store, flow)
    assert r["id_attempts"] == wrong + 1 and r["status"] == "verified"
    assert run.prompts.count("no_match") == wrong
    assert run.extension == EXT["verified"]


def test_wrong_identifier_three_times_goes_to_an_agent_not_identified(directory, store):
    flow = make(directory, store)
    run = Run(flow, None, keys=["99999999#"] * 3 + [JANE_ID + "#"]).go()
    r = record(store, flow)
    assert r["id_attempts"] == 3 and r["status"] == "not_identified" and r["reason"] is None
    assert r["identified_by"] is None and r["verify_result"] is None
    assert run.prompts.count("enter_identifier") == 3 and "enter_pin" not in run.prompts
    assert run.extension == EXT["not_identified"]
    assert [e["detail"]["result"] for e in store.events(flow.record_id)
            if e["step"] == "identifier"] == ["miss"] * 3


def test_retries_is_configurable(directory, store):
    flow = make(directory, store, identifier={"retries": 1})
    run = Run(flow, None, keys=["99999999#"]).go()
    assert record(store, flow)["id_attempts"] == 1 and run.extension == EXT["not_identified"]


def test_no_input_and_wrong_input_have_their_own_prompts(directory, store):
    flow = make(directory, store, identifier={"retries": 4})
    run = Run(flow, None, keys=["", "99999999#", "123#", JANE_ID + "#", ""]).go()
    heard = [p for p in run.prompts if p in ("no_input", "no_match", "invalid")]
    # identifier: nothing, unknown, too short, right; PIN: nothing three times
    assert heard == ["no_input", "no_match", "invalid", "no_input", "no_input"]
    r = record(store, flow)
    assert r["id_attempts"] == 4 and r["identified_by"] == "keyed"
    assert r["verify_attempts"] == 3 and r["verify_result"] == "failed"
    assert r["status"] == "identified" and run.extension == EXT["identified"]
    assert [e["detail"]["result"] for e in store.events(flow.record_id)
            if e["step"] == "identifier"] == ["no_input", "miss", "invalid", "hit"]


def test_collect_follows_the_digit_rules(directory, store):
    flow = make(directory, store, identifier={"min_digits": 6, "max_digits": 10,
                                              "terminator": "#", "first_timeout_ms": 8000})
    run = Run(flow, None, keys=[JANE_ID + "#", JANE_PIN + "#"]).go()
    ident, pin = run.collects
    assert (ident.min_digits, ident.max_digits, ident.first_timeout_ms) == (6, 10, 8000)
    # "*" first is the opt-out, "*" after digits clears (issue 15)
    assert (ident.opt_out, ident.clear) == ("*", "*")
    assert ident.overflow                     # 6..10 with "#": past 10 is one invalid try
    assert (pin.min_digits, pin.max_digits) == (4, 4)
    assert not pin.overflow                   # a fixed-length PIN ends at its 4th key


# ---------------------------------------------------------------- opting out


def test_opt_out_at_the_identifier(directory, store):
    flow = make(directory, store)
    run = Run(flow, None, keys=["*"]).go()
    r = record(store, flow)
    assert r["opted_out"] == "identifier" and r["status"] == "not_identified"
    assert r["reason"] == "opted_out" and r["id_attempts"] is None
    assert "opted_out" in run.prompts and run.extension == EXT["opted_out"]


def test_opt_out_at_the_security_step(directory, store):
    flow = make(directory, store)
    run = Run(flow, cid(JANE_PHONE), keys=["*#"]).go()
    r = record(store, flow)
    assert r["opted_out"] == "security" and r["status"] == "identified"
    assert r["reason"] == "opted_out" and r["verify_result"] == "skipped"
    assert run.extension == EXT["opted_out"]


def test_a_digit_opt_out_key_counts_only_alone(directory, store):
    flow = make(directory, store, opt_out_key="0")
    run = Run(flow, None, keys=["0#"]).go()
    assert record(store, flow)["opted_out"] == "identifier"
    assert run.collects[0].clear == "*"
    flow2 = make(directory, store, opt_out_key="0", identifier={"min_digits": 1})
    Run(flow2, None, keys=["01234567#", JANE_ID + "#", JANE_PIN + "#"], call_id=2).go()
    r = record(store, flow2)
    assert r["opted_out"] is None and r["id_attempts"] == 2 and r["status"] == "verified"


def test_opted_out_callers_go_to_the_agent_when_no_own_extension(directory, store):
    ext = {k: v for k, v in EXT.items() if k != "opted_out"}
    flow = IdvFlow(policy_from_table(Table({"transfer": ext}, "service.s"), "s"), directory,
                   counter=AttemptCounter(store))
    run = Run(flow, None, keys=["*"]).go()
    assert run.extension == EXT["agent"]


# ---------------------------------------------------------------- verification


def test_verify_fails_then_succeeds(directory, store):
    flow = make(directory, store)
    run = Run(flow, cid(JANE_PHONE), keys=["1111#", JANE_PIN + "#"]).go()
    r = record(store, flow)
    assert r["verify_attempts"] == 2 and r["verify_result"] == "verified"
    assert run.prompts.count("wrong_pin") == 1 and run.extension == EXT["verified"]


def test_verify_fails_every_try_goes_to_an_agent_identified_only(directory, store):
    flow = make(directory, store)
    run = Run(flow, cid(JANE_PHONE), keys=["1111#", "2222#", "3333#", JANE_PIN + "#"]).go()
    r = record(store, flow)
    assert r["verify_attempts"] == 3 and r["verify_result"] == "failed"
    assert r["status"] == "identified" and r["reason"] is None
    assert run.extension == EXT["identified"] and "verified_transfer" not in run.prompts


def test_a_customer_without_that_secret_is_not_asked_and_nothing_is_counted(directory, store):
    """Tom Okafor has no PIN in the directory (issue 15): he is not asked for one, goes to
    an agent identified only with the reason no_secret, and no failure is counted against
    him or his number."""
    flow = make(directory, store)
    run = Run(flow, cid(SHARED_PHONE), keys=["45678901#", "0000#", "4271#", "1234#"]).go()
    r = record(store, flow)
    assert r["status"] == "identified" and r["reason"] == "no_secret"
    assert r["verify_result"] == "no_secret" and r["verify_attempts"] is None
    assert "enter_pin" not in run.prompts and len(run.collects) == 1   # the id only
    assert run.extension == EXT["identified"]     # no no_secret extension: identified only
    assert AttemptCounter(store).recent_failures("45678901", "+13125550176",
                                                 at=run.wall()) == 0


def test_no_secret_from_the_verify_answer_counts_nothing(directory, store):
    """A fetch-mode CRM with an empty PIN field answers no_secret at verify: identified
    only, nothing counted, the caller is not asked again."""
    class EmptyField:
        name = "fake-empty-field"

        def lookup_phone(self, e164):
            return directory.lookup_phone(e164)

        def lookup_identifier(self, kind, digits):
            return directory.lookup_identifier(kind, digits)

        def verify(self, customer, kind, secret):
            return Verdict("no_secret", "low")

    flow = IdvFlow(policy(transfer={**EXT, "no_secret": "207"}), EmptyField(),
                   counter=AttemptCounter(store))
    run = Run(flow, cid(JANE_PHONE), keys=["9999#", "4271#"]).go()
    r = record(store, flow)
    assert (r["status"], r["reason"], r["verify_result"]) == ("identified", "no_secret",
                                                             "no_secret")
    assert run.prompts.count("enter_pin") == 1 and run.extension == "207"
    assert AttemptCounter(store).recent_failures(JANE_ID, "+12015550123", at=run.wall()) == 0


def test_lockout_across_calls_per_customer_and_per_number(directory, store):
    clock = Clock()
    # call 1: three failures (the call's own limit), call 2: two more -> the fifth locks
    flow = make(directory, store)
    Run(flow, cid(JANE_PHONE), keys=["1111#"] * 3, clock=clock).go()
    assert record(store, flow)["verify_result"] == "failed"
    clock.t += 600
    run = Run(flow, cid(JANE_PHONE), keys=["1111#", "1111#", JANE_PIN + "#"], call_id=2,
              clock=clock).go()
    r = record(store, flow)
    assert r["verify_result"] == "locked" and r["status"] == "identified"
    assert r["reason"] == "locked" and r["verify_attempts"] == 2
    assert run.extension == EXT["locked"] and "locked" in run.prompts
    # call 3: locked before being asked, even with the right PIN ready
    clock.t += 600
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"], call_id=3, clock=clock).go()
    r = record(store, flow)
    assert r["verify_result"] == "locked" and "enter_pin" not in run.prompts
    assert r["verify_attempts"] is None and run.extension == EXT["locked"]
    # per customer: from another number, keying Jane's id
    run = Run(flow, cid("6175550199"), keys=[JANE_ID + "#", JANE_PIN + "#"], call_id=4,
              clock=clock).go()
    assert record(store, flow)["reason"] == "locked"
    # per calling number: another customer calling from Jane's number
    run = Run(make(directory, store, number_lookup=False), cid(JANE_PHONE),
              keys=["23456789#", "8305#"], call_id=5, clock=clock)
    run.go()
    r = record(store, run.flow)
    assert r["customer_name"] == "Carlos Diaz" and r["reason"] == "locked"
    # and a day later the failures have aged out
    clock.t += 25 * 3600
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"], call_id=6, clock=clock).go()
    assert record(store, flow)["status"] == "verified" and run.extension == EXT["verified"]


def test_lockout_limit_is_configurable(directory, store):
    flow = make(directory, store, security={"lockout_limit": 2})
    run = Run(flow, cid(JANE_PHONE), keys=["1111#", "2222#", JANE_PIN + "#"]).go()
    r = record(store, flow)
    assert r["verify_attempts"] == 2 and r["reason"] == "locked"


# ---------------------------------------------------------------- the back end failing


def test_lookup_error_goes_to_an_agent_as_backend_down(directory, store):
    directory.close()                      # every query now fails inside the directory
    flow = make(directory, store)
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_ID + "#"]).go()
    r = record(store, flow)
    assert r["lookup"] == "error" and r["status"] == "not_identified"
    assert r["reason"] == "backend_down" and r["backend_errors"] == 1
    assert run.extension == EXT["backend_down"] and "backend_down" in run.prompts
    ev = [e for e in store.events(flow.record_id) if e["step"] == "lookup"][0]
    assert ev["detail"]["error"].startswith("directory:")


def test_verify_error_is_never_verified(directory, store):
    def break_it(tag):
        if tag.startswith("verify"):
            directory.close()
    flow = make(directory, store)
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"], before_work=break_it).go()
    r = record(store, flow)
    assert r["status"] == "identified" and r["reason"] == "backend_down"
    assert r["verify_result"] == "error" and run.extension == EXT["backend_down"]


def test_back_end_that_never_answers_times_out(directory, store):
    flow = make(directory, store, backend_timeout_ms=2000)
    run = Run(flow, cid(JANE_PHONE), latency_ms=None).go()
    r = record(store, flow)
    assert r["status"] == "not_identified" and r["reason"] == "backend_down"
    assert r["lookup"] == "error" and run.extension == EXT["backend_down"]
    assert "one_moment" in run.prompts
    assert 1900 <= r["backend_ms_total"] <= 2500


def test_slow_back_end_hears_one_moment_and_a_fast_one_does_not(directory, store):
    slow = Run(make(directory, store), None, keys=[JANE_ID + "#", JANE_PIN + "#"],
               latency_ms=1500).go()
    assert slow.prompts.count("one_moment") == 2 and slow.extension == EXT["verified"]
    fast = Run(make(directory, store), None, keys=[JANE_ID + "#", JANE_PIN + "#"],
               latency_ms=50, call_id=2).go()
    assert "one_moment" not in fast.prompts and fast.extension == EXT["verified"]


def test_late_reply_after_the_timeout_is_ignored(directory, store):
    flow = make(directory, store, backend_timeout_ms=1000)
    run = Run(flow, cid(JANE_PHONE), latency_ms=4000).go()
    assert record(store, flow)["reason"] == "backend_down"
    assert len(run.transfers) == 1


@pytest.mark.parametrize("result, error", [
    (None, "RuntimeError in work"),
    ("<html>oops</html>", None),
    ({"status": "verified"}, None),
])
def test_work_errors_and_garbage_are_backend_down_never_verified(directory, store, result,
                                                                 error):
    flow, sink = make(directory, store), StepsToStore(store)
    call = CallInfo(1, "line1", 0, answered_at=0, callerid=cid(JANE_PHONE))
    acts = sink.take(flow.start(call))
    work = next(a for a in acts if isinstance(a, Work))
    acts = sink.take(flow.on_event(WorkDone(400, work.tag, work.fn(), None)))  # the real hit
    work = next(a for a in acts if isinstance(a, Work))        # her failures, read first
    acts = sink.take(flow.on_event(WorkDone(400, work.tag, work.fn(), None)))
    assert any(isinstance(a, Collect) for a in acts)
    acts = sink.take(flow.on_event(Digits(9000, digits=JANE_PIN, reason="terminator")))
    work = next(a for a in acts if isinstance(a, Work))
    acts = sink.take(flow.on_event(WorkDone(9400, work.tag, result, error)))
    transfer = [a for a in acts if isinstance(a, Transfer)]
    assert transfer and transfer[0].extension == EXT["backend_down"]
    assert flow.c.outcome.status == "identified" and flow.c.outcome.reason == "backend_down"
    r = store.get(flow.record_id)
    assert r["verify_result"] == "error" and r["backend_errors"] == 1


def test_an_attempt_counter_that_cannot_count_ends_security_as_failed(directory, store,
                                                                     caplog):
    """Issue 16: neither the store nor memory can count (here a bare store counter whose
    file is gone): no guess is asked for, the call goes to an agent as identified only,
    and the trail says "store unavailable"."""
    flow = make(directory, store)
    sink = KeptSteps()
    store.close()
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"], sink=sink).go()
    assert run.extension == EXT["identified"] and "enter_pin" not in run.prompts
    assert "security step ended as failed (store unavailable)" in caplog.text
    steps = [s for s in sink.steps if hasattr(s, "op")]
    assert any(s.op == "update" and s.fields.get("verify_result") == "failed" for s in steps)
    assert any(s.op == "event" and s.fields["detail"].get("reason") == "store unavailable"
               for s in steps)


# ---------------------------------------------------------------- hanging up


@pytest.mark.parametrize("step, callerid, keys", [
    ("lookup_number", cid(JANE_PHONE), []),
    ("identifier", None, []),
    ("lookup_identifier", None, [JANE_ID + "#"]),
    ("security", cid(JANE_PHONE), []),
    ("verify", cid(JANE_PHONE), [JANE_PIN + "#"]),
    ("transfer", cid(JANE_PHONE), [JANE_PIN + "#"]),
])
def test_caller_hangs_up_at_each_step(directory, store, step, callerid, keys):
    flow = make(directory, store)
    run = Run(flow, callerid, keys=keys, hang_up_in=step).go()
    r = record(store, flow)
    assert r["hangup_step"] == step and r["ended"] is not None
    identified = step in ("security", "verify", "transfer")
    if step == "transfer":
        assert r["status"] == "verified" and r["transfer_target"] == EXT["verified"]
        assert r["transfer_result"] is None
    else:
        assert r["status"] == ("identified" if identified else "not_identified")
        assert r["transfer_target"] is None and not run.transfers
    assert "hangup" in steps(store, flow)


@pytest.mark.parametrize("outcome", ["busy", "no_answer", "failed"])
def test_agent_unreachable_is_recorded_and_the_caller_told(directory, store, outcome):
    flow = make(directory, store, transfer={"mode": "supervised"})
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"], transfer=outcome).go()
    r = record(store, flow)
    assert r["transfer_mode"] == "supervised" and r["transfer_result"] == outcome
    # 201 (verified), then the default fallback, the agent (200): both fail
    assert [t.extension for t in run.transfers] == [EXT["verified"], EXT["agent"]]
    assert r["transfer_target"] == EXT["agent"] and r["transfer_tries"] == 2
    assert run.prompts[-3:] == ["agent_busy", "call_back_later", "goodbye"]
    assert run.end_reason == "hangup"


def test_fallback_chain_then_final_and_reorder_is_a_configuration_fault(directory, store,
                                                                       caplog):
    flow = make(directory, store, transfer={"mode": "supervised", "fallback": ["210", "211"],
                                            "final": "0"})
    results = iter(["failed", "busy", "no_answer", "answered"])
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"],
              transfer=lambda ext: next(results))
    with caplog.at_level(logging.ERROR, logger="callgate.flow"):
        run.go()
    r = record(store, flow)
    assert [t.extension for t in run.transfers] == ["201", "210", "211", "0"]
    assert r["transfer_target"] == "0" and r["transfer_tries"] == 4
    assert r["transfer_result"] == "answered"
    assert any("configuration fault" in m and "201" in m for m in caplog.messages)
    assert "call_back_later" not in run.prompts


def test_abandoned_call_before_answer_writes_nothing(directory, store):
    flow = make(directory, store)
    flow.end(CallInfo(9, "line1", 0, end_reason="abandoned"))
    assert store.recent() == []


# ---------------------------------------------------------------- nothing keyed leaks


def test_keyed_digits_never_reach_the_record_or_the_log(directory, store, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong_pin = "9137"
    flow = make(directory, store, number_lookup=False)
    Run(flow, cid(JANE_PHONE), keys=[JANE_ID + "#", wrong_pin + "#", JANE_PIN + "#"]).go()
    assert record(store, flow)["status"] == "verified"
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("calls.sqlite*"))
    for secret in (JANE_PIN, wrong_pin, JANE_ID, JANE_PHONE):
        assert secret.encode() not in blob, secret
        assert secret not in caplog.text, secret
    assert "******78" in caplog.text


def test_digits_event_and_work_reprs_hide_the_digits(directory, store):
    flow = make(directory, store)
    flow.start(CallInfo(1, "line1", 0, answered_at=0, callerid=cid(JANE_PHONE)))
    acts = flow.on_event(WorkDone(100, "lookup_phone#1",
                                  directory.lookup_phone("+12015550123")))
    acts = flow.on_event(Digits(9000, digits=JANE_PIN, reason="terminator"))
    assert JANE_PIN not in repr(acts)


# ---------------------------------------------------------------- policy


def test_policy_defaults_and_prompts():
    p = policy_from_table(Table({}, "service.x"), "x")
    assert p.identifier.retries == 3 and p.security.entry.retries == 3
    assert p.security.lockout_limit == 5 and p.security.lockout_window_s == 86400
    assert p.opt_out_key == "*" and p.transfer_mode == "blind" and p.number_lookup
    assert p.extension("verified") == "200"
    assert "welcome_back" not in p.prompt_names() and "enter_pin" in p.prompt_names()


@pytest.mark.parametrize("data, key", [
    ({"retries": 3}, "service.s.retries: unknown key"),
    ({"identifier": {"retries": 0}}, "service.s.identifier.retries: 0 is outside"),
    ({"identifier": {"kind": "shoe_size"}}, "service.s.identifier.kind"),
    ({"identifier": {"min_digits": 9, "max_digits": 8}}, "service.s.identifier.min_digits"),
    ({"security": {"kind": "pin", "lockout_limit": "5"}}, "service.s.security.lockout_limit"),
    ({"security": {"pin": 4}}, "service.s.security.pin: unknown key"),
    ({"transfer": {"verified": "20x"}}, "service.s.transfer.verified"),
    ({"transfer": {"mode": "warm"}}, "service.s.transfer.mode"),
    ({"opt_out_key": "**"}, "service.s.opt_out_key"),
    ({"identifier": {"terminator": "*"}}, "service.s.identifier.terminator"),
    ({"prompts": {"identifier": ""}}, "service.s.prompts.identifier"),
    ({"prompts": {"identifer": "x"}}, "service.s.prompts.identifer: unknown key"),
    ({"prompts": {"greeting": "../etc"}}, "service.s.prompts.greeting"),
    ({"greet_by_name": True, "prompts": {"welcome_back": ""}}, "service.s.greet_by_name"),
])
def test_policy_errors_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        policy_from_table(Table(data, "service.s"), "s")
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_services_as_array_or_named_tables():
    arr = load_services(Table({"service": [{"name": "a", "lines": ["l1"]},
                                           {"name": "b", "number_lookup": False}]}))
    assert [p.name for p in arr] == ["a", "b"] and not arr[1].number_lookup
    named = load_services(Table({"service": {"sales": {"transfer": {"agent": "300"}}}}))
    assert named[0].name == "sales" and named[0].agent == "300"
    with pytest.raises(ConfigError, match=r"^service.b.lines: line 'l1' is already served by 'a'"):
        load_services(Table({"service": [{"name": "a", "lines": ["l1"]},
                                         {"name": "b", "lines": ["l1"]}]}))
    with pytest.raises(ConfigError, match=r"^service\[0\].name: missing"):
        load_services(Table({"service": [{}]}))
    assert load_services(Table({}))[0].name == "default"


def test_greet_by_name_says_welcome_back(directory, store):
    flow = make(directory, store, greet_by_name=True)
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"]).go()
    assert run.prompts.index("welcome_back") < run.prompts.index("enter_pin")
    assert "welcome_back" in flow.prompts_needed


# ---------------------------------------------------------------- end to end: engine + sim line


def test_end_to_end_through_the_engine_and_the_sim_line(directory, store, tmp_path, caplog):
    """Caller ID identifies Jane; she keys her PIN after the prompt; the call is flashed
    and dialled through to the verified extension, and the record says so."""
    from callgate.engine import Engine, EngineConfig
    from callgate.line.sim import Agent, CallerIdSpec, Clear as HangUp, Press, SimCall, SimLine

    caplog.set_level(logging.DEBUG)
    flow = make(directory, store)
    calls = [SimCall(callerid=CallerIdSpec(number=JANE_PHONE, name="JANE SMITH"),
                     script=[Press(JANE_PIN + "#", when="prompt_end", after_ms=700)],
                     agents={ext: Agent() for ext in EXT.values()}),
             SimCall(callerid=CallerIdSpec(absent="P"),
                     script=[Press("*", after_ms=300), HangUp("cpc", after_ms=30000)],
                     agents={ext: Agent() for ext in EXT.values()})]
    line = SimLine(calls, max_seconds=600)
    infos = []
    Engine(line, flow, EngineConfig(), on_call=infos.append, recorder=StepsToStore(store)).run()
    assert not line.is_off_hook
    first, second = infos
    assert first.transfer.extension == EXT["verified"] and first.end_reason == "transferred"
    assert line.outcomes[0].transferred_to == EXT["verified"]
    r = store.recent(status="verified")[0]
    assert r["identified_by"] == "number" and r["verify_result"] == "verified"
    assert r["transfer_result"] == "completed" and r["ani_masked"] == "**********23"
    assert 0 < r["auth_ms"] < 30000
    # the second caller withholds the number and opts out at the identifier
    assert second.transfer.extension == EXT["opted_out"]
    assert line.outcomes[1].transferred_to == EXT["opted_out"]
    o = store.recent(reason="opted_out")[0]
    assert o["lookup"] == "withheld" and o["opted_out"] == "identifier"
    assert len(store.recent()) == 2
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("calls.sqlite*"))
    assert JANE_PIN.encode() not in blob and JANE_PIN not in caplog.text


def test_a_terminator_after_a_full_length_entry_does_not_cost_the_next_try(directory, store):
    """A 4-digit PIN ends on its 4th key; the '#' the caller adds out of habit must not
    end the next entry empty (heard as 'no input', a try lost). Through the real engine."""
    from callgate.engine import Engine, EngineConfig
    from callgate.line.sim import Agent, CallerIdSpec, Press, SimCall, SimLine

    flow = make(directory, store)
    calls = [SimCall(callerid=CallerIdSpec(number=JANE_PHONE, name="JANE SMITH"),
                     script=[Press("1111#", when="prompt_end", after_ms=500),
                             Press(JANE_PIN + "#", when="prompt_end", after_ms=500)],
                     agents={ext: Agent() for ext in EXT.values()})]
    line = SimLine(calls, max_seconds=600)
    Engine(line, flow, EngineConfig(), recorder=StepsToStore(store)).run()
    r = store.recent()[0]
    assert (r["verify_attempts"], r["verify_result"], r["status"]) == (2, "verified", "verified")
    assert [e["detail"].get("problem") for e in store.events(r["call_id"])
            if e["step"] == "verify"].count("no_input") == 0


def test_a_reply_later_than_the_limit_is_a_timeout_even_while_one_moment_plays(directory,
                                                                               store):
    """The limit is the flow's, not 'whenever the hold prompts are over': a reply 1.7 s
    after a 1.5 s limit, arriving while 'one moment' (1.0-2.0 s here) plays, is too late."""
    flow = make(directory, store, backend_timeout_ms=1500, hold_ms=100)
    run = Run(flow, cid(JANE_PHONE), latency_ms=1700).go()
    r = record(store, flow)
    assert (r["status"], r["reason"], r["lookup"]) == ("not_identified", "backend_down", "error")
    assert "one_moment" in run.prompts and len(run.transfers) == 1


def test_prompts_ahead_of_a_request_do_not_use_up_its_time_limit(directory, store):
    """A request queued behind prompts starts its time limit when the engine reaches it.
    Out of hours with idv_first: greeting and closed message (1 s each here) are queued
    when the number lookup answers, so the lockout read waits 2 s behind them, longer
    than backend_timeout_ms; it is still answered, and Jane is asked for her PIN instead
    of being treated as locked (fail closed on a read that never timed out)."""
    flow = make(directory, store, backend_timeout_ms=1500,
                hours={"timezone": "UTC", "mon": "09:00-17:00", "after_hours": "300",
                       "idv_first": True})
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"]).go()    # Tuesday 22:13 UTC
    r = record(store, flow)
    assert r["hours"] == "closed" and run.prompts[:3] == ["welcome", "closed", "enter_pin"]
    assert r["status"] == "verified" and r["verify_result"] == "verified", r
    assert run.extension == "300"


class FakeSwitches:
    """The supervisor's switches as the flow's Work sees them (store.switches in `run`);
    `fail` raises as a recorder that is gone would."""

    def __init__(self, closed_at=None, audio=None, fail=False):
        self.closed_at, self.audio, self.fail = closed_at, audio, fail
        self.asked = []

    def today(self, service):
        self.asked.append(service)
        if self.fail:
            raise TimeoutError("call records: recorder queue full")
        from callgate.store.switches import DaySwitches
        return DaySwitches(self.closed_at, self.audio is not None)

    def announcement(self, service):
        self.asked.append(f"{service}.wav")
        return self.audio


def test_switches_that_cannot_be_read_leave_the_line_as_configured(directory, store, caplog):
    flow = IdvFlow(policy(hours={"timezone": "UTC", "tue": "00:00-24:00",
                                 "after_hours": "300"}),
                   directory, counter=AttemptCounter(store), switches=FakeSwitches(fail=True))
    with caplog.at_level(logging.ERROR, logger="callgate.flow"):
        run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"]).go()     # a Tuesday
    r = record(store, flow)
    assert r["hours"] == "open" and r["status"] == "verified" and run.extension == "201"
    assert flow.switches.asked == ["support"]
    assert any("switches could not be read" in m for m in caplog.messages)
    assert "one_moment" not in run.prompts


def test_a_stalled_announcement_read_still_leaves_the_line_closed_today(directory, store,
                                                                       caplog):
    """The announcement's file read stalls (an SD card's fsync stall): the caller hears no
    announcement, but "closed today", read before it, still holds."""
    audio = np.zeros(800, dtype=np.int16)
    flow = IdvFlow(policy(hours={"timezone": "UTC", "tue": "00:00-24:00",
                                 "after_hours": "300"}), directory,
                   counter=AttemptCounter(store),
                   switches=FakeSwitches(closed_at=1_700_000_000.0, audio=audio))
    with caplog.at_level(logging.ERROR, logger="callgate.flow"):
        run = Run(flow, cid(JANE_PHONE), stall=("announcement",)).go()
    r = record(store, flow)
    assert (r["hours"], r["announcement"]) == ("override", None)
    assert run.extension == "300" and run.prompts[:2] == ["welcome", "closed"]
    assert any("announcement could not be read in time" in m for m in caplog.messages)


def test_hours_and_auth_time_start_after_the_announcement(directory, store):
    """A 20 s announcement: ID&V's time (auth_ms) is counted from its end."""
    audio = np.zeros(20 * RATE, dtype=np.int16)
    plain = IdvFlow(policy(), directory, counter=AttemptCounter(store))
    Run(plain, cid(JANE_PHONE), keys=[JANE_PIN + "#"]).go()
    flow = IdvFlow(policy(), directory, counter=AttemptCounter(store),
                   switches=FakeSwitches(audio=audio))
    Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"], call_id=2).go()
    with_it, without = record(store, flow), record(store, plain)
    assert with_it["announcement"] == 1 and with_it["status"] == "verified"
    assert abs(with_it["auth_ms"] - without["auth_ms"]) < 100, (with_it["auth_ms"],
                                                                without["auth_ms"])


def test_closed_today_and_the_announcement_from_the_switches(directory, store):
    audio = np.zeros(800, dtype=np.int16)
    flow = IdvFlow(policy(hours={"timezone": "UTC", "tue": "00:00-24:00"}), directory,
                   counter=AttemptCounter(store),
                   switches=FakeSwitches(closed_at=1_700_000_000.0, audio=audio))
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"]).go()
    r = record(store, flow)
    assert (r["hours"], r["status"], r["announcement"]) == ("override", "not_identified", 1)
    assert run.prompts == ["welcome", "closed", "call_in_hours", "goodbye"]   # after the audio
    assert run.transfers == [] and run.end_reason == "hangup"


def test_a_prompt_key_in_the_menu_cannot_loop_for_ever(directory, store):
    """Pressing the "opening hours" key again and again: heard MAX_PROMPT_CHOICES times,
    then the call goes on as if no key was chosen (menu.default)."""
    from callgate.flow.menu import MAX_PROMPT_CHOICES

    menu = {"prompt": "menu", "default": "230",
            "keys": {"1": "210", "2": "prompt:opening_hours"}}
    flow = make(directory, store, menu=menu)
    run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"] + ["2"] * 50).go()
    assert run.prompts.count("opening_hours") == MAX_PROMPT_CHOICES
    assert run.extension == "230" and len(run.collects) == 1 + MAX_PROMPT_CHOICES + 1


def test_no_recall_dial_tone_stops_the_chain(directory, store, caplog):
    """No dial tone after the flash is the line's fault: the other destinations would each
    cost the recall timeout for nothing. The caller is told to call again."""
    flow = make(directory, store, transfer={**EXT, "mode": "supervised",
                                            "fallback": ["210", "220"], "final": "0"})
    with caplog.at_level(logging.ERROR, logger="callgate.flow"):
        run = Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"], transfer="no_recall").go()
    assert [t.extension for t in run.transfers] == ["201"]
    assert run.prompts[-3:] == ["agent_busy", "call_back_later", "goodbye"]
    assert any("no recall dial tone" in m for m in caplog.messages)
    busy = make(directory, store, transfer={**EXT, "mode": "supervised",
                                            "fallback": ["210", "220"], "final": "0"})
    run = Run(busy, cid(JANE_PHONE), keys=[JANE_PIN + "#"], transfer="busy", call_id=2).go()
    assert [t.extension for t in run.transfers] == ["201", "210", "220", "0"]
