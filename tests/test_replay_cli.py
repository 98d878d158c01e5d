"""`callgate replay`: a recorded call through the engine, the ID&V flow and a back end.

The fixture (tools/make-fixtures) is made with generators we did not write:
caller ID by libspandsp, the PIN and the exchange's recall dial tone by sox;
the rings are sidecar events. Its expectations sit beside it
(replay-verified.expect.toml).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from callgate import cli
from callgate.wav import read_wav
from external import spandsp_dtmf_rx

FIXTURES = Path(__file__).parent / "fixtures"
WAV = FIXTURES / "replay-verified.wav"
EXPECT = FIXTURES / "replay-verified.expect.toml"
PIN = "4271"


def replay(capsys, *args: str) -> tuple[int, list[dict], str]:
    capsys.readouterr()
    code = cli.main(["replay", *map(str, args)])
    out = capsys.readouterr()
    return code, [json.loads(x) for x in out.out.splitlines()], out.err


def events(lines: list[dict]) -> list[str]:
    return [x["event"] for x in lines]


def test_the_fixture_is_small_and_its_keys_are_heard_by_libspandsp():
    assert WAV.stat().st_size < 300_000
    assert spandsp_dtmf_rx(read_wav(WAV)) == PIN       # what the recording carries


def test_replay_runs_the_recorded_call_and_checks_the_sidecar_expectations(capsys):
    code, lines, err = replay(capsys, WAV)
    assert code == 0 and err == ""
    flow = [e for e in events(lines) if e != "prompt"]
    assert flow[:4] == ["ring", "callerid", "ring", "answer"]
    # the recorded PIN comes while "enter PIN ..., or star to start again" still plays
    assert flow[4:] == ["backend", "barge_in", "keys", "backend", "outcome", "transfer",
                        "record", "end"] + ["check"] * 14
    by = {x["event"]: x for x in lines}
    assert by["callerid"]["number"] == "********23" and by["callerid"]["checksum_ok"] is True
    assert by["keys"]["count"] == 4 and by["keys"]["step"] == "security"
    assert by["outcome"] == {**by["outcome"], "status": "verified", "extension": "201"}
    assert by["transfer"]["result"] == "completed"
    assert by["record"]["customer_id_masked"] == "******78"
    assert all(x["pass"] for x in lines if x["event"] == "check")
    text = "\n".join(json.dumps(x) for x in lines)
    assert PIN not in text and "12345678" not in text and "2015550123" not in text


def test_a_replay_is_not_interactive_so_it_runs_the_same_every_time(capsys):
    def shape(lines):
        return [(x.get("t"), x["event"], x.get("prompt"), x.get("result"))
                for x in lines if x["event"] != "record"]
    first, second = replay(capsys, WAV)[1], replay(capsys, WAV)[1]
    assert shape(first) == shape(second)


def test_the_engine_does_what_the_recorded_engine_did(tmp_path):
    """The sidecar's controls are what the engine did when the fixture was made: the same
    controls in the same order, the answer at the same sample; the flash may move a little
    with the prompt set (the recall dial tone waits 1 s after it; make-fixtures re-makes it)."""
    from callgate.scenario.run import replay as run_replay

    result = run_replay(WAV, lambda line: None)
    now, recorded = result.line.controls, result.line.recorded_controls
    assert [c.control for c in now] == [c.control for c in recorded]
    assert [c.sample for c in now if c.control == "off_hook"] == \
        [c.sample for c in recorded if c.control == "off_hook"]
    flash = [(a.sample, b.sample) for a, b in zip(now, recorded) if a.control == "flash"]
    assert len(flash) == 1 and abs(flash[0][0] - flash[0][1]) <= 8000


def test_a_wrong_expectation_exits_1_and_names_it(tmp_path, capsys):
    expect = tmp_path / "wrong.toml"
    expect.write_text(EXPECT.read_text().replace('"customers.csv"',
                                                 json.dumps(str(FIXTURES / "customers.csv")))
                      .replace('transfer = "201"', 'transfer = "202"'))
    code, lines, err = replay(capsys, WAV, "--expect", expect)
    assert code == 1
    assert err.count("\n") == 1 and "transfer: expected '202', got '201'" in err


def test_settings_from_a_run_config_and_expectations_from_the_sidecar(tmp_path, capsys):
    """--config takes a run config as `callgate run` reads it: [crm] directory, services."""
    db = tmp_path / "directory.sqlite"
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"), "--db", str(db)]) == 0
    config = tmp_path / "callgate.toml"
    config.write_text(f'[line]\nbackend = "sim"\n[crm]\ndirectory = "{db}"\n'
                      f'[store]\npath = "{tmp_path / "unused.sqlite"}"\n'
                      '[[service]]\nname = "support"\n[service.transfer]\nagent = "200"\n'
                      'verified = "201"\n')
    code, lines, err = replay(capsys, WAV, "--config", config, "--keep", tmp_path / "kept")
    assert code == 0, err
    assert (tmp_path / "kept" / "calls.sqlite").is_file()
    assert not (tmp_path / "unused.sqlite").exists()      # a replay never writes the real store


def test_bad_inputs_are_one_line_each(tmp_path, capsys):
    missing = tmp_path / "none.wav"
    code, lines, err = replay(capsys, missing, "--expect", EXPECT)
    assert code == 2 and lines == [] and err.count("\n") == 1 and "none.wav" in err
    # a sidecar with a typo
    wav = tmp_path / "call.wav"
    shutil.copy(WAV, wav)
    sidecar = json.loads(WAV.with_suffix(".events.json").read_text())
    sidecar["events"][0]["evnt"] = "ring_start"
    wav.with_suffix(".events.json").write_text(json.dumps(sidecar))
    code, lines, err = replay(capsys, wav, "--expect", EXPECT)
    assert code == 2 and err.count("\n") == 1 and "events[0]" in err
    # expectations a replay cannot check
    expect = tmp_path / "sim-only.toml"
    expect.write_text('[expect]\nagent = "201"\n')
    code, lines, err = replay(capsys, WAV, "--expect", expect, "--config", EXPECT)
    assert code == 2 and "expect.agent" in err
    # a replay's file has no calls
    expect.write_text('[[calls]]\n[expect]\nstatus = "verified"\n')
    code, lines, err = replay(capsys, WAV, "--expect", expect)
    assert code == 2 and "calls: unknown key" in err and "recording" in err
    # no settings at all
    shutil.copy(WAV, tmp_path / "bare.wav")
    code, lines, err = replay(capsys, tmp_path / "bare.wav")
    assert code == 2 and "--config" in err


def test_the_console_command(tmp_path):
    console = Path(sys.executable).parent / "callgate"
    proc = subprocess.run([str(console), "replay", str(WAV), "--text"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "transfer  extension=201 result=completed" in proc.stdout
