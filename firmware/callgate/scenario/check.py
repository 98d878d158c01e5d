"""Expectations of a call, and checking them against what was observed.

    [calls.expect]                     # or [expect] for a scenario of one call / a replay
    status = "identified"              # the record's columns, compared exactly;
    reason = "none"                    #   "none" means the column is empty (NULL)
    identifier = "******78"            # customer_id_masked (the masked form)
    transfer = "202"                   # transfer_target (the last destination tried)
    transfer_tries = 2                 # destinations tried (2: the first fallback took it)
    hours = "closed"                   # open | closed | holiday | override
    menu_choice = "1"                  # the menu key chosen, or no_input | invalid
    prompts = ["enter_pin", "wrong_pin", "enter_pin", "verified_transfer", "transferring"]
    prompts_include = ["one_moment"]   # heard, in this order, among others
    prompts_exclude = ["enter_pin"]    # never heard
    requests = ["lookup_phone:hit", "verify:rejected", "verify"]   # back-end requests in order
    http = ["lookup_phone:429", "lookup_phone:200"]   # what the HTTPS server answered
    end = "transferred"                # the engine's end of the call
    agent = "201"                      # the extension the exchange put the caller through to
    keys = 5                           # keys heard by the engine
    record = true                      # a call record was written
    max_auth_ms = 20000                # the record's auth_ms is at most this

A key that is not known, or a value that cannot be right (a status that is
not a status), is a ConfigError naming the key, so a typo never passes as a
check that "held".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import ConfigError, Table
from ..flow.hours import HOURS_STATES
from ..flow.outcome import REASONS, STATUSES
from ..store.records import CALL_COLUMNS

NONE = "none"
# expect key -> record column (the column's own name works as well)
ALIASES = {"identifier": "customer_id_masked", "ani": "ani_masked", "transfer": "transfer_target"}
HIDDEN = {"call_id", "started", "ended", "line", "auth_ms", "backend_ms_total"}
RECORD_KEYS = tuple(k for k in CALL_COLUMNS if k not in HIDDEN) + tuple(ALIASES)
CHOICES = {
    "status": STATUSES,
    "reason": REASONS + (NONE,),
    "lookup": ("hit", "miss", "ambiguous", "error", "withheld", "disabled", NONE),
    "identified_by": ("number", "keyed", NONE),
    "verify_result": ("verified", "failed", "locked", "error", "skipped", "no_secret", NONE),
    "hours": (*HOURS_STATES, NONE),
    "transfer_mode": ("blind", "supervised", NONE),
    "transfer_result": ("completed", "answered", "busy", "no_answer", "no_recall", "failed", NONE),
    "assurance": ("high", "hashed", "low", NONE),
}
INTEGER_COLUMNS = {k for k, v in CALL_COLUMNS.items() if v.startswith("INTEGER")}
LISTS = ("prompts", "prompts_include", "prompts_exclude", "requests", "http")
END_REASONS = ("abandoned", "caller", "hangup", "transferred", "error", "fault", "line_ended")
SIM_ONLY = ("agent",)
OTHER = LISTS + ("end", "agent", "keys", "record", "max_auth_ms")


@dataclass
class Check:
    what: str
    expected: Any
    got: Any
    ok: bool


def parse_expect(table: Table, sim: bool = True) -> dict[str, Any]:
    """The expectations of one call; ConfigError names a bad or unknown key."""
    out: dict[str, Any] = {}
    for key in table.data:
        if key in RECORD_KEYS:
            column = ALIASES.get(key, key)
            if column in INTEGER_COLUMNS:
                value = table.get(key, (int, str))
                if isinstance(value, str) and value != NONE:
                    raise ConfigError(f"{table.key(key)}: expected a number or \"none\"")
            else:
                value = table.get(key, str)
                choices = CHOICES.get(column)
                if choices and value not in choices:
                    raise ConfigError(f"{table.key(key)}: {value!r} is not one of "
                                      f"{', '.join(choices)}")
            if any(ALIASES.get(k, k) == column for k in out):
                raise ConfigError(f"{table.key(key)}: {column} is expected twice")
            out[key] = value
        elif key in LISTS:
            value = table.get(key, list)
            if not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{table.key(key)}: expected a list of names")
            out[key] = value
        elif key == "end":
            out[key] = table.choice(key, END_REASONS)
        elif key == "agent":
            if not sim:
                raise ConfigError(f"{table.key(key)}: only a simulated exchange can tell")
            out[key] = table.get(key, str)
        elif key in ("keys", "max_auth_ms"):
            value = table.get(key, int)
            if value < 0:
                raise ConfigError(f"{table.key(key)}: {value} is below 0")
            out[key] = value
        elif key == "record":
            out[key] = table.get(key, bool)
        else:
            raise ConfigError(f"{table.key(key)}: unknown key (known: "
                              f"{', '.join(RECORD_KEYS + OTHER)})")
    return out


def _subsequence(want: list, got: list) -> bool:
    it = iter(got)
    return all(any(w == g for g in it) for w in want)


def _request_matches(want: list[str], got: list[str]) -> bool:
    """"what" matches any result of that request; "what:result" matches exactly."""
    if len(want) != len(got):
        return False
    return all(w == g or (":" not in w and g.split(":")[0] == w) for w, g in zip(want, got))


def check_call(expect: dict[str, Any], seen) -> list[Check]:
    """Every expectation of one call against `seen` (transcript.Call): a Check each."""
    out = []
    row = seen.record or {}
    for key, want in expect.items():
        if key in RECORD_KEYS:
            got = row.get(ALIASES.get(key, key)) if seen.record is not None else None
            shown = NONE if got is None else got
            out.append(Check(key, want, shown, shown == want))
        elif key == "record":
            got = seen.record is not None
            out.append(Check(key, want, got, got == want))
        elif key == "prompts":
            out.append(Check(key, want, seen.prompts, seen.prompts == want))
        elif key == "prompts_include":
            out.append(Check(key, want, seen.prompts, _subsequence(want, seen.prompts)))
        elif key == "prompts_exclude":
            heard = [p for p in want if p in seen.prompts]
            out.append(Check(key, want, heard, not heard))
        elif key == "requests":
            got = [f"{w}:{r}" for w, r in seen.requests]
            out.append(Check(key, want, got, _request_matches(want, got)))
        elif key == "http":
            got = [f"{op}:{status}" for op, status in seen.http]
            out.append(Check(key, want, got, _request_matches(want, got)))
        elif key == "end":
            out.append(Check(key, want, seen.end, seen.end == want))
        elif key == "agent":
            got = seen.agent or NONE
            out.append(Check(key, want, got, got == want))
        elif key == "keys":
            out.append(Check(key, want, seen.keys, seen.keys == want))
        elif key == "max_auth_ms":
            got = row.get("auth_ms")
            out.append(Check(key, want, got, got is not None and got <= want))
    return out
