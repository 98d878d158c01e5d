"""The composition root (app.py) and the layering it keeps: `run` builds what the
config asks for, and the flow stays pure (DESIGN.md: flow imports no store, no
sqlite3, no numpy, no engine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from callgate import cli
from callgate.app import App, Settings
from callgate.config import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("module", ["callgate.flow", "callgate.call", "callgate.privacy"])
def test_the_flow_and_the_contract_import_no_store_no_numpy_no_engine(module):
    code = (f"import sys, {module}; "
            "print(','.join(m for m in ('numpy', 'sqlite3', 'callgate.store', "
            "'callgate.engine', 'callgate.line') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_line_record_enabled_records_the_call_through_callgate_run(tmp_path, capsys):
    """[line.record] enabled = true: `callgate run` writes the call as a replay fixture
    (it once built the recorder nowhere and wrote nothing)."""
    recordings = tmp_path / "recordings"
    config = tmp_path / "callgate.toml"
    config.write_text(f'[line]\nbackend = "sim"\n[line.record]\nenabled = true\n'
                      f'dir = "{recordings}"\n')
    assert cli.main(["run", "--config", str(config), "--calls", "1", "--json"]) == 0
    call = json.loads(capsys.readouterr().out.splitlines()[0])
    assert call["end_reason"] in ("transferred", "caller", "hangup")
    wavs = sorted(recordings.glob("call-*.wav"))
    assert [w.name for w in wavs] == ["call-0001.wav"]
    sidecar = json.loads(wavs[0].with_suffix(".events.json").read_text())
    assert sidecar                                       # the line's events, for replay
    assert wavs[0].stat().st_size > 8000 * 2             # more than a second of audio
    assert recordings.stat().st_mode & 0o777 == 0o700


def test_check_config_and_run_read_the_same_settings(tmp_path):
    config = tmp_path / "callgate.toml"
    config.write_text('[line]\nbackend = "sim"\n[engine]\nrings = 2\n')
    settings = Settings.load(config)
    assert settings.engine.rings == 2 and settings.policy is None
    config.write_text('[line]\nbackend = "sim"\n[telemetry]\nhost = "x"\n')
    with pytest.raises(ConfigError, match=r"telemetry\.host: unknown key"):
        Settings.load(config)
    assert cli.check_config  # the command goes through the same Settings.load
    with pytest.raises(ConfigError, match=r"telemetry\.host: unknown key"):
        cli.check_config(str(config))


def test_the_app_writes_its_records_through_the_recorder_and_closes_clean(tmp_path, directory):
    from callgate.flow import policy_from_table
    from callgate.config import Table
    from callgate.engine import EngineConfig
    from callgate.line.sim import CallerIdSpec, Press, SimCall, SimLine, Agent
    from callgate.store.records import CallStore

    policy = policy_from_table(Table({"transfer": {"agent": "201"}}, "service.s"), "s")
    calls = [SimCall(callerid=CallerIdSpec(number="2015550123"),
                     script=[Press("4271#", when="prompt_end", after_ms=500)],
                     agents={"201": Agent()})]
    app = App(SimLine(calls, max_seconds=300), EngineConfig(), policy=policy, crm=directory,
              store=tmp_path / "calls.sqlite")
    with app:
        assert app.run() == 1
        recorder = app.recorder
    assert not recorder.running
    assert recorder.stats.written == recorder.stats.submitted > 10
    assert recorder.stats.dropped == recorder.stats.refused == recorder.stats.lost == 0
    with CallStore(tmp_path / "calls.sqlite") as store:
        row = store.recent()[0]
    assert row["status"] == "verified" and row["transfer_target"] == "201"


def test_every_table_refuses_unknown_keys_and_the_scripted_prompts_are_checked(tmp_path):
    config = tmp_path / "callgate.toml"
    config.write_text('[store]\npath = "x.sqlite"\nbogus = 1\n')
    with pytest.raises(ConfigError, match=r"store\.bogus: unknown key"):
        Settings.load(config)
    empty = tmp_path / "prompts"
    (empty / "en").mkdir(parents=True)
    config.write_text(f'[engine]\nprompts = "{empty}"\n')
    with pytest.raises(ConfigError, match=r"engine\.prompts: no prompt .*welcome\.wav"):
        Settings.load(config)
