"""[telemetry.mqtt] is checked like every table: unknown keys named, TLS always, a login
from a 0600 file, and `callgate check-config` knows it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callgate import cli
from callgate.app import Settings
from callgate.config import ConfigError, Table
from callgate.telemetry.settings import load_mqtt

FIXTURES = Path(__file__).parent / "fixtures"


def secret(tmp_path, mode=0o600, name="mqtt.secret") -> str:
    path = tmp_path / name
    path.write_text("s3cret-pass\n")
    os.chmod(path, mode)
    return str(path)


def table(tmp_path, **over) -> Table:
    data = {"host": "broker.example.net", "username": "office-1",
            "password_file": secret(tmp_path)}
    data.update(over)
    return Table(data, "telemetry.mqtt")


def test_the_defaults_are_the_issues(tmp_path):
    s = load_mqtt(table(tmp_path))
    assert (s.port, s.prefix, s.discovery, s.state_interval_s) == (8883, "callgate", False, 60)
    assert s.device_id and "/" not in s.device_id            # the host name by default
    assert s.config_key is None                               # remote config off
    assert s.password == "s3cret-pass" and "s3cret" not in repr(s)
    assert s.topics.state == f"callgate/{s.device_id}/state"


@pytest.mark.parametrize("over, message", [
    ({"hots": "x"}, r"telemetry\.mqtt\.hots: unknown key"),
    ({"port": 0}, r"telemetry\.mqtt\.port: 0 is outside"),
    ({"host": "mqtt://broker"}, r"telemetry\.mqtt\.host: .* not a host name"),
    ({"device_id": "a/b"}, r"telemetry\.mqtt\.device_id: .* not one topic level"),
    ({"device_id": "+"}, r"telemetry\.mqtt\.device_id"),
    ({"prefix": "callgate/#"}, r"telemetry\.mqtt\.prefix: .* not a topic prefix"),
    ({"ca_file": "/no/such.pem"}, r"telemetry\.mqtt\.ca_file: .* not a readable file"),
    ({"password_file": None}, r"telemetry\.mqtt\.password_file: missing"),
    ({"state_interval_s": 1}, r"telemetry\.mqtt\.state_interval_s: 1\.0 is outside"),
    ({"discovery": "yes"}, r"telemetry\.mqtt\.discovery: expected true or false"),
])
def test_a_bad_key_is_named(tmp_path, over, message):
    data = table(tmp_path).data
    data.update(over)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        load_mqtt(Table(data, "telemetry.mqtt"))


def test_a_password_file_others_may_read_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"password_file: .*open to group or others"):
        load_mqtt(table(tmp_path, password_file=secret(tmp_path, 0o644, "loose.secret")))


def test_check_config_knows_telemetry_and_names_its_keys(tmp_path, capsys):
    db = tmp_path / "directory.sqlite"
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"), "--db",
                     str(db)]) == 0
    config = tmp_path / "callgate.toml"
    base = (f'[crm]\ndirectory = "{db}"\n[store]\npath = "{tmp_path / "c.sqlite"}"\n'
            '[[service]]\nname = "support"\n[service.transfer]\nagent = "201"\n'
            f'[telemetry.mqtt]\nhost = "broker.example.net"\nusername = "office-1"\n'
            f'password_file = "{secret(tmp_path)}"\n')
    config.write_text(base)
    capsys.readouterr()
    assert cli.main(["check-config", str(config)]) == 0
    assert Settings.load(config).telemetry.host == "broker.example.net"
    config.write_text(base + "qos = 2\n")
    assert cli.main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "telemetry.mqtt.qos: unknown key" in err
    config.write_text(base.replace("[telemetry.mqtt]", "[telemetry.prometheus]"))
    assert cli.main(["check-config", str(config)]) == 2
    assert "telemetry.prometheus: unknown key" in capsys.readouterr().err


def test_telemetry_needs_the_call_records(tmp_path):
    config = tmp_path / "callgate.toml"
    config.write_text(f'[telemetry.mqtt]\nhost = "b"\nusername = "u"\n'
                      f'password_file = "{secret(tmp_path)}"\n')
    with pytest.raises(ConfigError, match="telemetry.mqtt: telemetry needs the ID&V flow"):
        Settings.load(config)
