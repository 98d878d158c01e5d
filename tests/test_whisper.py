"""The agent whisper: on a supervised transfer the agent who answers hears the outcome
and (if the policy says so) the customer's id digit by digit, before we let go.

Through the real Engine on the sim line with the ID&V flow, the embedded directory
and a real call store. The sim exchange keeps what the agent heard from us
(SimOutcome.agent_audio); the test decodes it by matching it against the prompt
WAVs, so it checks what was said, not only that something was said.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from callgate import cli
from callgate.call import RECORD_STEPS, Handler, Pause, Play, SayDigits
from callgate.call import HangUp as HangUpAction
from callgate.config import ConfigError, Table
from callgate.engine import Engine, EngineConfig, PromptSet
from callgate.engine.readback import render_digits
from callgate.flow import IdvFlow, policy_from_table
from callgate.flow.policy import PROMPT_ROLES
from callgate.line.sim import Agent, CallerIdSpec, Press, SimCall, SimLine
from callgate.store.records import AttemptCounter
from steps import StepsToStore

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = PromptSet("en")
JANE_PHONE, JANE_ID, JANE_PIN = "2015550123", "12345678", "4271"
AGENT = "201"


def policy(whisper=None, mode="supervised"):
    data = {"identifier": {"min_digits": 8, "max_digits": 8},
            "transfer": {"agent": AGENT, "mode": mode}}
    if whisper is not None:
        data["whisper"] = whisper
    return policy_from_table(Table(data, "service.support"), "support")


def make_flow(directory, store, whisper=None):
    return IdvFlow(policy(whisper), directory, counter=AttemptCounter(store))


class Spy(Handler):
    """Wraps the flow and keeps the actions it gave back (the handler's side), record
    steps left out; every hook is passed on unchanged."""

    def __init__(self, flow):
        self.flow = flow
        self.actions = []

    @property
    def prompts_needed(self):
        return self.flow.prompts_needed

    def _seen(self, out):
        self.actions += [a for a in out if not isinstance(a, RECORD_STEPS)]
        return out

    def start(self, call):
        return self._seen(self.flow.start(call))

    def on_event(self, ev):
        return self._seen(self.flow.on_event(ev))

    def end(self, call):
        return self.flow.end(call)

    def ringing(self, call):
        return self.flow.ringing(call)

    def line_up(self, line, at):
        return self.flow.line_up(line, at)

    def line_down(self, line, reason, at):
        return self.flow.line_down(line, reason, at)


def run_call(flow, call, store):
    line = SimLine([call], max_seconds=300)
    spy = Spy(flow)
    infos = []
    Engine(line, spy, EngineConfig(), on_call=infos.append,
           recorder=StepsToStore(store)).run()
    assert not line.is_off_hook
    return infos[0], line.outcomes[0], spy.actions


def jane_calls_and_keys_her_pin(agent=None):
    return SimCall(callerid=CallerIdSpec(number=JANE_PHONE, name="JANE SMITH"),
                   script=[Press(JANE_PIN + "#", when="prompt_end", after_ms=700)],
                   agents={AGENT: agent or Agent(answer_after_rings=2)})


def find(audio, prompt, start=0):
    """Where `prompt` sits, sample-exact, in `audio` at or after `start` (-1: nowhere)."""
    n = len(prompt)
    for at in np.flatnonzero(audio[start:len(audio) - n + 1] == prompt[0]) + start:
        if np.array_equal(audio[at:at + n], prompt):
            return int(at)
    return -1


def decode_digits(audio, start):
    """The digits spoken from `start` on: each slot matched against digit_0..digit_9."""
    digits = [PROMPTS[f"digit_{d}"] for d in range(10)]
    slot = max(len(a) for a in digits) + 120 * 8
    out = ""
    at = start
    while at + min(len(a) for a in digits) <= len(audio):
        piece = audio[at:at + slot]
        if not np.any(piece):
            break
        hits = [d for d, a in enumerate(digits) if np.array_equal(piece[:len(a)], a)]
        assert len(hits) == 1, f"slot at {at} is no single digit prompt"
        out += str(hits[0])
        at += slot
    return out


# ---------------------------------------------------------------- through the engine


def test_the_agent_hears_verified_and_the_customer_number_then_we_let_go(
        directory, store, caplog):
    caplog.set_level(logging.DEBUG)
    flow = make_flow(directory, store, {"enabled": True, "read_identifier": True})
    info, outcome, actions = run_call(flow, jane_calls_and_keys_her_pin(), store)
    assert info.transfer.outcome == "answered" and info.end_reason == "transferred"
    assert outcome.transferred_to == AGENT          # the exchange joined caller and agent

    # what the agent heard, decoded: the status, "customer number", the id's digits
    heard = outcome.agent_audio
    assert heard is not None and outcome.agent_heard_ms > 0
    status_at = find(heard, PROMPTS["whisper_verified"])
    assert status_at >= 8 * 450                       # after the pause for the agent's hello
    number_at = find(heard, PROMPTS["customer_number"], status_at)
    assert number_at >= status_at + len(PROMPTS["whisper_verified"])
    first_digit = number_at + len(PROMPTS["customer_number"]) + 250 * 8
    assert decode_digits(heard, first_digit) == JANE_ID
    for other in ("whisper_identified", "whisper_not_identified", "whisper_locked"):
        assert find(heard, PROMPTS[other]) == -1
    # we hung up once it was said: the sound the agent heard is the whisper, no more
    spoken = len(PROMPTS["whisper_verified"]) + len(PROMPTS["customer_number"]) + 8 * len(
        PROMPTS["digit_0"])
    assert outcome.released_at - outcome.answered_at > 0
    assert outcome.agent_heard_ms * 8 >= 0.6 * spoken
    assert len(heard) < status_at + 4 * spoken

    # the handler's side: the whisper came after the answer, as prompts, then a hang-up
    names = [a.label for a in actions if isinstance(a, Play)]
    assert names.index("whisper_verified") > names.index("transferring")
    assert isinstance(actions[-1], HangUpAction)
    assert not any(n.startswith("digit_") or n == "customer_number" for n in names)
    assert all(JANE_ID not in n for n in names)
    # the pause for the agent's hello, the status, then the digits as one SayDigits
    at = next(i for i, a in enumerate(actions)
              if isinstance(a, Play) and a.label == "whisper_verified")
    assert isinstance(actions[at - 1], Pause) and actions[at - 1].ms >= 450
    (say,) = [a for a in actions if isinstance(a, SayDigits)]
    assert actions[at + 1:] == [say, actions[-1]]
    assert say.label == f"<digits {len(JANE_ID)}>" and say.lead == "customer_number"
    assert say.digits == JANE_ID and JANE_ID not in repr(say)
    # what the agent heard is what the engine renders for it
    rendered = render_digits(say, PROMPTS)
    assert np.array_equal(heard[number_at:number_at + len(rendered)], rendered)

    row = store.recent()[0]
    assert row["status"] == "verified" and row["transfer_result"] == "answered"
    assert row["transfer_mode"] == "supervised"
    whisper = [e for e in store.events(row["call_id"]) if e["step"] == "whisper"]
    assert whisper and whisper[0]["detail"] == {"status": "verified", "reason": None,
                                                "identifier_read": True}
    assert JANE_ID not in caplog.text and JANE_PIN not in caplog.text
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    blob = b"".join(p.read_bytes() for p in store.path.parent.glob("calls.sqlite*"))
    assert JANE_ID.encode() not in blob and JANE_PIN.encode() not in blob


def test_without_read_identifier_the_agent_hears_only_the_status(directory, store):
    flow = make_flow(directory, store, {"enabled": True})
    info, outcome, actions = run_call(flow, jane_calls_and_keys_her_pin(), store)
    heard = outcome.agent_audio
    status_at = find(heard, PROMPTS["whisper_verified"])
    assert status_at > 0
    assert find(heard, PROMPTS["customer_number"]) == -1
    after = heard[status_at + len(PROMPTS["whisper_verified"]):]
    assert not np.any(after)                         # nothing more was said
    assert not any(isinstance(a, SayDigits) for a in actions)
    (w,) = [e for e in store.events(store.recent()[0]["call_id"]) if e["step"] == "whisper"]
    assert w["detail"]["identifier_read"] is False and w["detail"]["why"] == "policy"


def test_an_opted_out_caller_is_announced_as_such_and_no_number_is_read(directory, store):
    flow = make_flow(directory, store, {"enabled": True, "read_identifier": True})
    call = SimCall(callerid=CallerIdSpec(absent="P"), script=[Press("*", after_ms=300)],
                   agents={AGENT: Agent(answer_after_rings=1)})
    info, outcome, actions = run_call(flow, call, store)
    heard = outcome.agent_audio
    assert find(heard, PROMPTS["whisper_opted_out"]) > 0
    assert find(heard, PROMPTS["customer_number"]) == -1
    assert not any(isinstance(a, SayDigits) for a in actions)
    row = store.recent()[0]
    assert row["reason"] == "opted_out" and row["transfer_result"] == "answered"
    (w,) = [e for e in store.events(row["call_id"]) if e["step"] == "whisper"]
    assert w["detail"] == {"status": "not_identified", "reason": "opted_out",
                           "identifier_read": False, "why": "not identified"}


def test_a_busy_agent_means_no_whisper_and_the_caller_is_told(directory, store):
    flow = make_flow(directory, store, {"enabled": True, "read_identifier": True})
    info, outcome, actions = run_call(flow, jane_calls_and_keys_her_pin(Agent(busy=True)),
                                      store)
    assert info.transfer.outcome == "busy"
    assert outcome.agent_audio is None and outcome.agent_heard_ms == 0
    names = [a.label for a in actions if isinstance(a, Play)]
    assert "agent_busy" in names and not any(n.startswith("whisper_") for n in names)


def test_whisper_off_hangs_up_as_soon_as_the_agent_answers(directory, store):
    flow = make_flow(directory, store)
    info, outcome, actions = run_call(flow, jane_calls_and_keys_her_pin(), store)
    assert info.transfer.outcome == "answered" and outcome.transferred_to == AGENT
    assert outcome.agent_heard_ms == 0
    assert not any(e["step"] == "whisper" for e in store.events(store.recent()[0]["call_id"]))


# ---------------------------------------------------------------- configuration


def test_whisper_needs_a_supervised_transfer():
    with pytest.raises(ConfigError, match=r"service\.support\.whisper\.enabled: .*supervised"):
        policy({"enabled": True}, mode="blind")


def test_whisper_keys_are_checked_and_named():
    with pytest.raises(ConfigError, match=r"service\.support\.whisper\.read_identifer: unknown"):
        policy({"enabled": True, "read_identifer": True})
    with pytest.raises(ConfigError, match=r"service\.support\.whisper\.pause_ms: 9000 is outside"):
        policy({"enabled": True, "pause_ms": 9000})
    data = {"transfer": {"mode": "supervised"}, "whisper": {"enabled": True,
                                                           "read_identifier": True},
            "prompts": {"digit_7": ""}}
    with pytest.raises(ConfigError, match=r"service\.s\.prompts\.digit_7: the whisper needs"):
        policy_from_table(Table(data, "service.s"), "s")


def test_whisper_prompts_are_needed_only_when_it_is_on():
    off = set(policy().prompt_names())
    status_only = set(policy({"enabled": True}).prompt_names())
    full = set(policy({"enabled": True, "read_identifier": True}).prompt_names())
    whisper = {PROMPT_ROLES[r][0] for r in PROMPT_ROLES if r.startswith("whisper_")}
    digits = {f"digit_{d}" for d in range(10)}
    assert not off & (whisper | digits)
    assert status_only - off == whisper - {"customer_number"}
    assert full - off == whisper | digits


def test_check_config_knows_the_whisper_keys_and_prompts(tmp_path, capsys):
    prompts = tmp_path / "prompts" / "en"
    prompts.mkdir(parents=True)
    for wav in (ROOT / "prompts_wav" / "en").glob("*.wav"):
        if wav.stem != "digit_3":
            (prompts / wav.name).write_bytes(wav.read_bytes())
    config = tmp_path / "callgate.toml"
    base = (f'[engine]\nprompts = "{tmp_path / "prompts"}"\n'
            '[[service]]\nname = "support"\n[service.transfer]\nmode = "supervised"\n'
            '[service.whisper]\nenabled = true\n')
    config.write_text(base)
    assert cli.main(["check-config", str(config)]) == 0     # digits not needed yet
    config.write_text(base + "read_identifier = true\n")
    assert cli.main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "service.support.prompts.digit_3" in err
    assert "digit_3.wav" in err


def test_a_recorded_call_does_not_keep_the_whisper_that_reads_the_identifier(
        directory, store, tmp_path):
    """Recording on: the echo of what we say on the agent's leg (the id, digit by digit)
    is scrubbed like a keyed digit; the caller's leg before the flash is kept."""
    import json

    from callgate.dsp.level import rms_dbm0
    from callgate.wav import read_wav
    from callgate.line.recording import RecordingLine

    flow = make_flow(directory, store, {"enabled": True, "read_identifier": True})
    sim = SimLine([jane_calls_and_keys_her_pin()], max_seconds=300)
    line = RecordingLine(sim, tmp_path / "rec")
    Engine(line, flow, EngineConfig(), recorder=StepsToStore(store)).run()
    line.close()                                       # the recording's last writes land
    assert sim.outcomes[0].agent_heard_ms > 3000       # the whisper was said to the agent
    (wav,) = line.files
    audio = read_wav(wav)
    controls = json.loads(wav.with_suffix("").with_suffix(".events.json").read_text())["controls"]
    at = {c["control"]: round(c["t"] * 8000) for c in reversed(controls)}  # first of each
    whisper = audio[at["on_hook"] - 2 * 8000: at["on_hook"]]
    assert rms_dbm0(whisper) < -55                      # only comfort noise is left
    greeting = audio[at["off_hook"] + 4000: at["off_hook"] + 12000]
    assert rms_dbm0(greeting) > -40                     # the caller's leg is still there
