"""The scenario library: every branch of the ID&V flow as a `callgate simulate` file.

Each file in tests/scenarios/ runs through `callgate simulate` (the cli's main,
in this process; two of them through the installed console command) on the
real engine, sim exchange, flow, SQLite store and back end (the embedded
directory, or our reference API on a real HTTPS server on loopback), and
must pass every expectation it states. Every call in the library states at
least its status and reason (what the record says) or that no record exists.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from callgate import cli

HERE = Path(__file__).parent
SCENARIOS = sorted((HERE / "scenarios").glob("*.toml"))
CONSOLE = Path(sys.executable).parent / "callgate"


def simulate(capsys, *args: str) -> tuple[int, list[dict], str]:
    capsys.readouterr()
    code = cli.main(["simulate", *args])
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines()], out.err


def keyed_strings(path: Path) -> set[str]:
    """Every run of 3 or more digits a caller keys in the scenario."""
    data = tomllib.loads(path.read_text())
    found = set()
    for call in data.get("calls", []):
        for step in call.get("script", []):
            found |= set(re.findall(r"\d{3,}", step.get("press", "")))
    return found


def strings(obj) -> list[str]:
    """Every string value in a transcript object (numbers are times and counts)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() if k != "call_id" for s in strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in strings(v)]
    return []


def test_the_library_covers_every_branch_the_issue_lists():
    names = {p.stem for p in SCENARIOS}
    for branch in ("verified_by_number", "number_miss_then_keyed", "identifier_second_try",
                   "identifier_third_try", "identifier_all_wrong", "identifier_retries_configured",
                   "security_second_try", "security_third_try", "security_all_wrong",
                   "security_retries_configured", "opt_out_at_identifier", "opt_out_at_security",
                   "identifier_no_input", "security_no_input", "identifier_invalid_vs_no_match",
                   "multiple_matches_on_number", "number_withheld_private",
                   "number_withheld_unavailable", "callerid_unreadable", "lookup_disabled",
                   "backend_slow_one_moment", "backend_too_slow_budget",
                   "backend_too_slow_timeout", "backend_down", "backend_status_500",
                   "backend_429_then_ok", "backend_malformed_json", "backend_untrusted_tls",
                   "lockout_across_calls", "hangup_at_greeting", "hangup_at_identifier",
                   "hangup_during_lookup", "hangup_at_security", "hangup_at_transfer",
                   "agent_busy", "supervised_transfer_answered"):
        assert branch in names


def test_the_library_covers_issue_15():
    """The four defects, and every new branch of issue 15's Proof section."""
    names = {p.stem for p in SCENARIOS}
    for branch in (
            # the defects
            "no_secret_on_file", "agent_busy", "clear_with_star", "identifier_too_long",
            "identifier_too_long_timeout",
            # each fallback taken, all failing (and a hang-up while one rings)
            "transfer_fallback_each", "transfer_all_fail", "agent_no_answer",
            "hangup_at_fallback",
            # hours open, closed, holiday, override (and ID&V first, message only)
            "hours_open", "hours_closed", "hours_lunch_break", "hours_zone_offset",
            "hours_holiday", "hours_override", "hours_closed_idv_first",
            "hours_closed_message_only", "hangup_at_closed",
            # each menu choice, no input and invalid input, hang-up at the menu
            "menu_choices", "menu_no_input_invalid", "hangup_at_menu",
            # announcements on and off, hang-up during one
            "announcement_on", "announcement_off", "hangup_at_announcement"):
        assert branch in names, branch


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """Every scenario runs with telemetry on, to a real Mosquitto (tests/mosquitto.py)."""
    from mosquitto import Broker, Spy

    with Broker(tmp_path_factory.mktemp("broker")) as b, Spy(b, ("#",)) as spy:
        b.spy = spy
        yield b


def telemetry_file(tmp_path, broker, device: str) -> str:
    path = tmp_path / "telemetry.toml"
    table = broker.table("office-1", device_id=device, discovery=True)
    path.write_text("[telemetry.mqtt]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                   for k, v in table.items()))
    return str(path)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_passes(path, capsys, tmp_path, broker):
    data = tomllib.loads(path.read_text())
    expects = [c.get("expect", {}) for c in data["calls"]]
    if "expect" in data:
        expects = [data["expect"]]
    for e in expects:                        # every call asserts what its record says
        assert ("status" in e and "reason" in e) or e.get("record") is False, path.name
    code, lines, err = simulate(capsys, str(path), "--telemetry",
                                telemetry_file(tmp_path, broker, path.stem))
    checks = [x for x in lines if x["event"] == "check"]
    failed = [c for c in checks if not c["pass"]]
    assert code == 0 and not failed and err == "", (failed, err)
    assert len(checks) == sum(len(e) for e in expects)
    # the transcript: time-ordered per call, one record per answered call, no keyed digits
    for n in {x["call"] for x in lines}:
        times = [x["t"] for x in lines if x["call"] == n and "t" in x]
        assert times == sorted(times)
    answered = {x["call"] for x in lines if x["event"] == "answer"}
    assert {x["call"] for x in lines if x["event"] == "record"} == answered
    keyed = keyed_strings(path)
    for x in lines:
        for s in strings(x):
            assert not any(k in s for k in keyed), (x, keyed)
    # what the broker received of this run: one event per record, and no keyed digit,
    # full identifier or full calling number in any topic or message (tests/leaks.py)
    from leaks import leaks, library_secrets

    mine = f"callgate/{path.stem}/"

    def sent(messages):
        return [m for m in messages if m.topic.startswith(mine)
                or f"/{path.stem}/" in m.topic]
    calls = broker.spy.wait(lambda m: len([x for x in sent(m) if x.topic.endswith("/event")
                                           and b'"kind":"call"' in x.payload]) >= len(answered))
    assert calls, "fewer call events than records"
    got = broker.spy.wait(lambda m: any(x.topic == mine + "availability"
                                        and x.payload == b"offline" for x in m))
    assert got
    messages = sent(broker.spy.messages)
    assert not leaks(messages, library_secrets(SCENARIOS)), leaks(messages,
                                                                  library_secrets(SCENARIOS))


def test_the_console_command_runs_a_directory_and_an_https_scenario(tmp_path):
    assert CONSOLE.is_file(), "the callgate console script is not installed (tools/test)"
    paths = [HERE / "scenarios" / "security_second_try.toml",
             HERE / "scenarios" / "backend_https_ok.toml"]
    proc = subprocess.run([str(CONSOLE), "simulate", *map(str, paths), "--keep", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert {x["file"] for x in lines} == set(map(str, paths))
    assert all(x["pass"] for x in lines if x["event"] == "check")
    # --keep: the records stay, one folder per scenario, and hold no PIN
    for p in paths:
        kept = tmp_path / p.stem / "calls.sqlite"
        assert kept.is_file()
        blob = b"".join(f.read_bytes() for f in kept.parent.glob("calls.sqlite*"))
        assert b"4271" not in blob and b"1111" not in blob and b"12345678" not in blob


def _write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = (HERE / "scenarios" / "security_second_try.toml").read_text().replace(
    '"../fixtures/customers.csv"', json.dumps(str(HERE / "fixtures" / "customers.csv")))


def test_a_wrong_expectation_exits_1_and_names_it(tmp_path, capsys):
    path = _write(tmp_path, BASE.replace('status = "verified"', 'status = "identified"'))
    code, lines, err = simulate(capsys, str(path))
    assert code == 1
    assert err.count("\n") == 1 and "call 1: status: expected 'identified', got 'verified'" in err
    bad = [x for x in lines if x["event"] == "check" and not x["pass"]]
    assert [(x["what"], x["expected"], x["got"]) for x in bad] == [
        ("status", "identified", "verified")]


def test_a_wrong_prompt_list_is_a_mismatch_too(tmp_path, capsys):
    path = _write(tmp_path, BASE.replace('"wrong_pin", ', ""))
    code, lines, err = simulate(capsys, str(path))
    assert code == 1 and "prompts" in err


@pytest.mark.parametrize("change, key", [
    (('status = "verified"', 'statuz = "verified"'), "calls[0].expect.statuz: unknown key"),
    (('status = "verified"', 'status = "verifed"'), "calls[0].expect.status: 'verifed'"),
    (('name = "support"', 'name = "support"\nretriez = 2'), "service.support.retriez"),
    (('press = "1111"', 'pres = "1111"'), "calls[0].script[0]"),
    (('scrypt_n = 16', 'scrypt_n = 15'), "backend.scrypt_n"),
    (('[backend]', '[backend]\nbehaviour = "slow"'), "backend.behaviour: only for kind"),
    (('"../fixtures/customers.csv"', '"no-such.csv"'), "backend.customers"),
    (('[[calls]]', '[bogus]\n[[calls]]'), "bogus: unknown key"),
    (('verify_attempts = 2', 'verify_attempts = "two"'), "calls[0].expect.verify_attempts"),
])
def test_a_bad_scenario_exits_2_naming_the_key(tmp_path, capsys, change, key):
    text = (HERE / "scenarios" / "security_second_try.toml").read_text()
    assert change[0] in text
    path = tmp_path / "scenarios" / "bad.toml"
    path.parent.mkdir()
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "customers.csv").write_text(
        (HERE / "fixtures" / "customers.csv").read_text())
    path.write_text(text.replace(*change))
    code, lines, err = simulate(capsys, str(path))
    assert code == 2 and lines == []
    assert err.count("\n") == 1 and key in err and "Traceback" not in err


def test_not_toml_and_a_missing_file_are_one_line_each(tmp_path, capsys):
    bad = _write(tmp_path, "[calls\n")
    code, _, err = simulate(capsys, str(bad), str(tmp_path / "missing.toml"))
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 2 and "not valid TOML" in lines[0] and "cannot read" in lines[1]


def test_keep_refuses_a_folder_with_records_from_an_earlier_run(tmp_path, capsys):
    path = _write(tmp_path, BASE)
    keep = tmp_path / "kept"
    assert simulate(capsys, str(path), "--keep", str(keep))[0] == 0
    code, _, err = simulate(capsys, str(path), "--keep", str(keep))
    assert code == 2 and "already holds calls.sqlite" in err


def test_without_trustme_the_https_back_end_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "trustme", None)       # import trustme -> ImportError
    code, _, err = simulate(capsys, str(HERE / "scenarios" / "backend_https_ok.toml"))
    assert code == 2 and "pip install callgate[test]" in err and err.count("\n") == 1


def test_text_output_for_people(capsys):
    capsys.readouterr()
    assert cli.main(["simulate", "--text",
                     str(HERE / "scenarios" / "opt_out_at_identifier.toml")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+\d+\.\d{3}  call 1  answer", out, re.M)
    assert "check     what=status pass=True" in out
