"""Signed remote configuration (telemetry/remote.py): refused unless signed for this device
with the provisioned Ed25519 key, newer, and passing check-config's rules; applied
atomically, run at the next start, reported on state. Over a real Mosquitto too."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from callgate import cli
from callgate.app import App, Settings
from callgate.config import ConfigError, Table
from callgate.store.records import CallStore
from callgate.telemetry.remote import (RemoteConfig, RemoteConfigError, load_private_key,
                                       load_public_key, sign, verify)
from mosquitto import Broker, Spy

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture()
def keys(tmp_path):
    private, public = tmp_path / "signing.pem", tmp_path / "signing.pub"
    assert cli.main(["fleet", "keygen", str(private), str(public)]) == 0
    assert private.stat().st_mode & 0o777 == 0o600
    return load_private_key(str(private)), str(public), str(private)


def base_config(tmp_path, rings: int = 1) -> str:
    """Tables a remote config carries (no [telemetry]): the sim line, the flow, a store."""
    db = tmp_path / "directory.sqlite"
    if not db.exists():
        assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"),
                         "--db", str(db)]) == 0
    return (f'[engine]\nrings = {rings}\n[line]\nbackend = "sim"\n'
            f'[crm]\ndirectory = "{db}"\n[store]\npath = "{tmp_path / "calls.sqlite"}"\n'
            '[[service]]\nname = "support"\n[service.transfer]\nagent = "201"\n')


def device_file(tmp_path, mqtt: dict) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in mqtt.items()]
    path = tmp_path / "callgate.toml"
    path.write_text(base_config(tmp_path) + "[telemetry.mqtt]\n" + "\n".join(lines) + "\n")
    return path


def local_mqtt(tmp_path, public, device="office-4") -> dict:
    pw = tmp_path / "pw.secret"
    pw.write_text("x\n")
    os.chmod(pw, 0o600)
    return {"host": "localhost", "username": device, "password_file": str(pw),
            "device_id": device, "config_key": public,
            "remote_config": str(tmp_path / "state" / "remote-config.json")}


def remote_for(tmp_path, public, device="office-4"):
    path = device_file(tmp_path, local_mqtt(tmp_path, public, device))
    local = Settings.load(path)
    applied = []
    rc = RemoteConfig(load_public_key(public, "k"), device, local.telemetry.remote_config,
                      local.table, Settings.from_table, on_applied=lambda: applied.append(1))
    return rc, applied, path


def test_a_signed_valid_config_is_applied_and_run_at_the_next_start(tmp_path, keys):
    private, public, _ = keys
    rc, applied, path = remote_for(tmp_path, public)
    got = rc.handle(sign(private, "office-4", 1, base_config(tmp_path, rings=3)))
    assert (got.result, got.serial, got.why) == ("applied", 1, None) and applied == [1]
    stored = Path(rc.path)
    assert stored.stat().st_mode & 0o777 == 0o600
    # `run` reads it at start: the remote tables, the device's own [telemetry] kept
    settings = Settings.load(path).with_remote_config()
    assert settings.engine.rings == 3 and settings.remote_serial == 1
    assert settings.telemetry.config_key == public
    # check-config still checks the local file alone
    assert Settings.load(path).engine.rings == 1
    # the broker sends the retained message again on every connect: nothing changes
    again = rc.handle(sign(private, "office-4", 1, base_config(tmp_path, rings=3)))
    assert again.result == "applied" and applied == [1]
    # a tampered file on disk is not run
    data = json.loads(stored.read_text())
    data["config"] = data["config"].replace("rings = 3", "rings = 4")
    stored.write_text(json.dumps(data))
    assert Settings.load(path).with_remote_config().engine.rings == 1


def test_a_remote_config_that_passes_the_checks_but_cannot_start_runs_the_local_file(
        tmp_path, keys, capsys):
    """A modem port that is not there passes check-config (it opens no line): `run` falls
    back to the local file rather than fail at every start, off its broker for good."""
    private, public, _ = keys
    rc, _, path = remote_for(tmp_path, public)
    absent = base_config(tmp_path).replace(
        'backend = "sim"\n', 'backend = "modem"\n[line.modem]\nport = "/dev/callgate-none"\n')
    assert rc.handle(sign(private, "office-4", 1, absent)).result == "applied"
    assert Settings.load(path).with_remote_config().remote_serial == 1
    assert cli.main(["run", "--config", str(path), "--calls", "1"]) == 0
    err = capsys.readouterr().err
    assert "remote config 1 does not start (modem port /dev/callgate-none" in err
    assert len([x for x in err.splitlines() if "remote config" in x]) == 1


@pytest.mark.parametrize("case, why", [
    ("bad_signature", "bad signature"),
    ("other_device", "meant for another device"),
    ("other_key", "bad signature"),
    ("unknown_key", "check-config: engine.bogus: unknown key"),
    ("telemetry", "telemetry: not settable remotely"),
    ("not_json", "not a JSON object"),
    ("bad_toml", "not valid TOML"),
])
def test_what_is_refused_is_never_written_and_says_why(tmp_path, keys, case, why):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private, public, _ = keys
    rc, applied, _ = remote_for(tmp_path, public)
    good = base_config(tmp_path)
    payload = {
        "bad_signature": lambda: _tamper(sign(private, "office-4", 5, good)),
        "other_device": lambda: sign(private, "office-5", 5, good),
        "other_key": lambda: sign(Ed25519PrivateKey.generate(), "office-4", 5, good),
        "unknown_key": lambda: sign(private, "office-4", 5,
                                    good.replace("rings = 1", "rings = 1\nbogus = 1")),
        "telemetry": lambda: sign(private, "office-4", 5,
                                  good + "[telemetry.mqtt]\nhost = \"evil\"\n"),
        "not_json": lambda: b"\xff{",
        "bad_toml": lambda: sign(private, "office-4", 5, "[engine\n"),
    }[case]()
    got = rc.handle(payload)
    assert got.result == "refused" and why in got.why
    assert not Path(rc.path).exists() and applied == []
    assert len(got.why.splitlines()) == 1


def _tamper(payload: bytes) -> bytes:
    msg = json.loads(payload)
    msg["config"] = msg["config"].replace('agent = "201"', 'agent = "666"')
    return json.dumps(msg).encode()


def test_an_older_or_replayed_serial_is_refused(tmp_path, keys):
    private, public, _ = keys
    rc, applied, _ = remote_for(tmp_path, public)
    assert rc.handle(sign(private, "office-4", 7, base_config(tmp_path, 2))).result == "applied"
    older = rc.handle(sign(private, "office-4", 6, base_config(tmp_path, 3)))
    assert older.result == "refused" and "not newer than the applied 7" in older.why
    same_serial = rc.handle(sign(private, "office-4", 7, base_config(tmp_path, 3)))
    assert same_serial.result == "refused"
    assert verify(Path(rc.path).read_bytes(), rc.public, "office-4").serial == 7
    assert applied == [1]


def test_keys_are_checked_when_the_config_is(tmp_path, keys):
    private, public, private_path = keys
    mqtt = local_mqtt(tmp_path, private_path)             # the private half by mistake
    with pytest.raises(ConfigError, match="config_key: .* not a PEM public key"):
        Settings.load(device_file(tmp_path, mqtt))
    os.chmod(public, 0o666)
    with pytest.raises(ConfigError, match="config_key: .*changed by group or others"):
        Settings.load(device_file(tmp_path, local_mqtt(tmp_path, public)))
    os.chmod(private_path, 0o644)
    with pytest.raises(RemoteConfigError, match="open to group or others"):
        load_private_key(private_path)


def test_a_new_config_waits_for_the_call_in_progress(tmp_path, directory):
    """request_restart (the remote config's on_applied) ends `run` between calls."""
    from test_telemetry_mqtt import make_app, three_calls

    app = make_app(tmp_path, directory, None, calls=three_calls(),
                   on_call=lambda call: app.request_restart())
    with app:
        assert app.run() == 1                  # the first call ran to its end; no other
    assert app.restart_requested


def test_a_new_config_waits_for_a_call_that_is_ringing_in(tmp_path, directory):
    """Asked while the first ring is only starting (no call counted yet): the restart
    waits for that call too, else its caller ID and the call itself would be lost."""
    from callgate.line.base import RingStart
    from test_telemetry_mqtt import make_app, three_calls

    app = make_app(tmp_path, directory, None, calls=three_calls()[:2])
    line, read = app.engine.line, app.engine.line.read

    def read_and_ask():
        frame = read()
        if frame is not None and any(isinstance(e, RingStart) for e in frame.events):
            app.request_restart()
        return frame
    line.read = read_and_ask
    with app:
        assert app.run() == 1                  # the call ringing in ran; not the next
    assert app.restart_requested
    with CallStore(tmp_path / "calls.sqlite") as store:
        (row,) = store.db.execute("SELECT status FROM calls").fetchall()
    assert row[0] == "verified"


# ---------------------------------------------------------------- over the broker


def test_over_the_broker_applied_then_a_bad_signature_refused_and_reported(tmp_path, keys):
    private, public, private_path = keys
    with Broker(tmp_path / "broker") as broker:
        mqtt = {**broker.table("office-1"), "config_key": public,
                "remote_config": str(tmp_path / "state" / "remote-config.json")}
        local = device_file(tmp_path, mqtt)
        fleet = tmp_path / "fleet.toml"
        inst = broker.table("installer")
        fleet.write_text("[telemetry.mqtt]\n" + "\n".join(
            f"{k} = {json.dumps(v)}" for k, v in inst.items()
            if k in ("host", "port", "ca_file", "username", "password_file")) + "\n")
        remote = tmp_path / "office-1.toml"
        remote.write_text(base_config(tmp_path, rings=2))
        app = App.from_settings(Settings.load(local).with_remote_config())
        with Spy(broker, ("callgate/office-1/state",)) as spy, app:
            assert cli.main(["fleet", "push-config", "--config", str(fleet), "--key",
                             private_path, "--device", "office-1", "--serial", "1",
                             str(remote)]) == 0
            assert spy.wait(lambda m: any((json.loads(x.payload)["remote_config"] or {})
                                          .get("result") == "applied" for x in m))
            assert app.restart_requested
            bad = _tamper(sign(private, "office-1", 2, base_config(tmp_path, rings=5)))
            spy.client.publish("callgate/office-1/config", bad, qos=1, retain=True)
            assert spy.wait(lambda m: (json.loads(m[-1].payload)["remote_config"] or {})
                            .get("result") == "refused")
            state = json.loads(spy.messages[-1].payload)
        assert state["remote_config"]["why"] == "bad signature"
        assert state["remote_config"]["serial"] is None      # an unverified serial is not told
        assert state["remote_config"]["running"] is None     # this run started on the local file
        assert {"alarm": "remote_config_refused", "why": "bad signature"} in state["alarms"]
        assert verify(Path(mqtt["remote_config"]).read_bytes(),
                      load_public_key(public, "k"), "office-1").serial == 1
        assert Settings.load(local).with_remote_config().engine.rings == 2


def test_without_a_key_the_device_does_not_listen_for_configs(tmp_path):
    with Broker(tmp_path / "broker") as broker:
        local = device_file(tmp_path, broker.table("office-1"))
        app = App.from_settings(Settings.load(local))
        with app:
            assert app.telemetry.remote is None
            assert app.telemetry.link.subscribe == ()
