"""`callgate run` with services configured runs the ID&V flow on the embedded directory."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from callgate import cli

FIXTURES = Path(__file__).parent / "fixtures"


def test_run_with_a_service_verifies_the_sim_caller_and_writes_the_record(tmp_path, capsys):
    db, calls = tmp_path / "directory.sqlite", tmp_path / "calls.sqlite"
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"), "--db", str(db)]) == 0
    config = tmp_path / "callgate.toml"
    config.write_text(f'[line]\nbackend = "sim"\n[crm]\ndirectory = "{db}"\n'
                      f'[store]\npath = "{calls}"\n[[service]]\nname = "support"\n'
                      '[service.transfer]\nagent = "201"\n')
    capsys.readouterr()
    assert cli.main(["run", "--config", str(config), "--json"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out.splitlines()[0])
    assert summary["transfer"] == {"extension": "201", "mode": "blind", "outcome": "completed"}
    assert "4271" not in out.out + out.err          # the PIN keyed by the sim caller
    row = sqlite3.connect(calls).execute(
        "select status, identified_by, verify_result, transfer_target, customer_id_masked "
        "from calls").fetchone()
    assert row == ("verified", "number", "verified", "201", "******78")
    assert b"4271" not in calls.read_bytes()


def test_run_with_a_bad_service_key_names_it(tmp_path, capsys):
    config = tmp_path / "callgate.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "c.sqlite"}"\n[[service]]\nname = "s"\nretriez = 2\n')
    assert cli.main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "retriez" in err
