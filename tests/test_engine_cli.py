"""`callgate run`: the engine on the configured backend, one line per call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from callgate.cli import main

CONFIG = """
[engine]
cpc_ms = 300
[engine.script]
extension = "202"
mode = "supervised"
[line]
backend = "sim"
[line.sim]
country = "uk"
[[line.sim.calls]]
script = [{press = "4271#"}]
agents = {"202" = {answer_after_rings = 1}}
[[line.sim.calls]]
callerid = {kind = "v23", absent = "P", name = false}
script = [{hangup = "busy", when = "answer", after_ms = 500}]
[[line.sim.calls]]
callerid = false
script = [{press = "99#"}]
agents = {"202" = {busy = true}}
"""


def callgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callgate.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_run_default_sim_scenario_prints_one_line_per_call():
    res = callgate("run")
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()
    assert line.startswith("call 1") and "********23 JANE SMITH" in line
    assert "keys=5" in line and "transfer 201 blind completed" in line
    assert "4271" not in res.stdout + res.stderr          # what was keyed is never shown
    assert "5550123" not in res.stdout + res.stderr       # nor the full calling number


def test_run_json_from_config(tmp_path: Path):
    cfg = tmp_path / "callgate.toml"
    cfg.write_text(CONFIG)
    res = callgate("run", "--config", str(cfg), "--json")
    assert res.returncode == 0, res.stderr
    calls = [json.loads(x) for x in res.stdout.splitlines()]
    assert [c["call"] for c in calls] == [1, 2, 3]
    assert calls[0]["transfer"] == {"extension": "202", "mode": "supervised",
                                    "outcome": "answered"}
    assert calls[0]["keys"] == 5 and calls[0]["callerid"]["number"] == "********23"
    assert calls[1]["callerid"]["number_absent"] == "P"
    assert (calls[1]["end_reason"], calls[1]["hangup"]) == ("caller", "busy")
    assert calls[2]["callerid"] is None and calls[2]["transfer"]["outcome"] == "busy"
    assert "4271" not in res.stdout and "99" not in json.dumps([c["keys"] for c in calls])



def test_run_stops_after_n_calls(tmp_path: Path, capsys):
    cfg = tmp_path / "callgate.toml"
    cfg.write_text(CONFIG)
    assert main(["run", "--config", str(cfg), "--calls", "1", "--json"]) == 0
    out, _ = capsys.readouterr()
    assert [json.loads(x)["call"] for x in out.splitlines()] == [1]
    assert main(["run", "--calls", "0"]) == 2


@pytest.mark.parametrize("text,key", [
    ('[engine]\nrings = "two"\n', "engine.rings"),
    ("[engine]\ncpc = 3\n", "engine.cpc"),
    ('[engine]\nlanguage = "xx"\n', "engine.language"),
    ('[engine.script]\nmode = "warm"\n', "engine.script.mode"),
    ('[engine.script]\nextension = "12a"\n', "engine.script.extension"),
    ('[line]\nbackend = "pigeon"\n', "line.backend"),
])
def test_run_config_errors_name_the_key(tmp_path: Path, text: str, key: str, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert main(["run", "--config", str(cfg)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"callgate run: {key}:") and len(err.splitlines()) == 1


def test_a_forged_caller_id_name_is_escaped_in_the_call_line_and_the_log():
    """Issue 16: ESC, CR and LF in a name never reach the terminal or the journal raw."""
    import io
    import logging

    from callgate.app import logs_off_the_audio_thread
    from callgate.cli import _call_text
    forged = "EVIL\x1b[2J\r\ncall 2  t=0.0s\u2028x"
    record = {"call": 1, "start": 0.0, "rings": 1, "answered": 1.0, "keys": 0,
              "callerid": {"number": "********23", "number_absent": None, "name": forged},
              "callerid_error": None, "transfer": None, "callwaiting": [],
              "end_reason": "caller", "hangup": None, "handler_error": None}
    line = _call_text(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "EVIL\\x1b[2J\\r\\ncall 2  t=0.0s\\u2028x" in line
    out = io.StringIO()
    with logs_off_the_audio_thread(out, "callgate run: %(message)s"):
        logging.getLogger("callgate.test").info("caller says %s", forged)
    assert out.getvalue() == "callgate run: caller says EVIL\\x1b[2J\\r\\ncall 2  t=0.0s\\u2028x\n"
