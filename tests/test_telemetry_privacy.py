"""The search for secrets in what the broker received (tests/leaks.py), which
test_scenarios.py runs over the whole scenario library with telemetry on, finds a
secret when one is there: the search itself is checked here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from leaks import leaks, library_secrets

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.toml"))


@dataclass
class Message:
    topic: str
    payload: bytes


def test_the_secrets_are_the_librarys():
    secrets = library_secrets(SCENARIOS)
    # Jane's PIN, identifier, phone and account; a number a scenario presents
    assert {"4271", "12345678", "2015550123", "55501234"} <= secrets


def test_the_search_finds_each_kind_of_leak_and_passes_what_may_travel():
    secrets = library_secrets(SCENARIOS)
    ok = Message("callgate/office-1/event",
                 b'{"kind":"call","call_id":"line-1764820000123-1","caller":"**********23",'
                 b'"auth_ms":17250,"seq":42,"ended":"2026-12-04T03:12:34.567Z"}')
    assert leaks([ok], secrets) == []
    for bad in (Message("callgate/office-1/event", b'{"digits":"4271"}'),          # keyed
                Message("callgate/office-1/event", b'{"customer":"12345678"}'),    # id
                Message("callgate/office-1/event", b'{"caller":"+12015550123"}'),  # number
                Message("callgate/12345678/state", b"{}"),                         # topic
                Message("callgate/office-1/event", b"pin 4271 raw")):              # not JSON
        assert leaks([bad], secrets), bad
