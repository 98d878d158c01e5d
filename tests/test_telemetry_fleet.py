"""`callgate fleet`: what the broker holds of every device, read as the installer."""

from __future__ import annotations

import json

from callgate import cli
from callgate.telemetry.fleet import Fleet, table_text
from mosquitto import Broker
from test_telemetry_mqtt import make_app, mqtt_settings, three_calls


def fleet_file(tmp_path, broker):
    inst = broker.table("installer")
    path = tmp_path / "fleet.toml"
    path.write_text("[telemetry.mqtt]\n" + "\n".join(
        f"{k} = {json.dumps(v)}" for k, v in inst.items()
        if k in ("host", "port", "ca_file", "username", "password_file")) + "\n")
    return path


def test_fleet_lists_every_device_from_the_broker_alone(tmp_path, directory, capsys):
    with Broker(tmp_path / "broker") as broker:
        one = make_app(tmp_path / "a", directory, mqtt_settings(broker, "office-1"))
        (tmp_path / "a").mkdir()
        with one:
            assert one.run() == 3                     # ends with a clean stop: offline
        two = make_app(tmp_path / "b", directory, mqtt_settings(broker, "office-2"),
                       calls=three_calls()[:1])
        (tmp_path / "b").mkdir()
        two.start()
        try:
            assert two.run() == 1
            assert two.recorder.flush()
            two.telemetry.wake()
            # office-2 is still running: its state after the call is retained
            assert wait_for_fleet(tmp_path, broker, capsys, lambda rows: any(
                r["id"] == "office-2" and r["calls_today"].get("total") == 1 for r in rows))
            capsys.readouterr()
            assert cli.main(["fleet", "--config", str(fleet_file(tmp_path, broker)),
                             "--json"]) == 0
            rows = json.loads(capsys.readouterr().out)
            assert cli.main(["fleet", "--config", str(fleet_file(tmp_path, broker))]) == 0
            table = capsys.readouterr().out
        finally:
            two.close()
    by = {r["id"]: r for r in rows}
    assert set(by) == {"office-1", "office-2"}
    assert by["office-1"]["online"] is False and by["office-2"]["online"] is True
    assert by["office-1"]["calls_today"]["total"] == 3
    assert by["office-1"]["calls_today"]["verified"] == 1
    # its sim line has ended, so the engine stopped: the line is not answered
    assert by["office-2"]["lines"] == 1 and by["office-2"]["lines_up"] == 0
    assert "line_down" in by["office-2"]["alarms"]
    assert by["office-2"]["version"] and by["office-2"]["last_seen"].endswith("Z")
    head, *lines = table.splitlines()
    assert head.split()[:2] == ["DEVICE", "VERSION"] and len(lines) == 2
    assert lines[0].startswith("office-1") and " NO " in lines[0]
    assert lines[1].startswith("office-2") and " yes " in lines[1]


def wait_for_fleet(tmp_path, broker, capsys, predicate, tries=50):
    """Ask the broker again until what it holds satisfies `predicate` (a hang guard)."""
    for _ in range(tries):
        capsys.readouterr()
        assert cli.main(["fleet", "--config", str(fleet_file(tmp_path, broker)),
                         "--json"]) == 0
        if predicate(json.loads(capsys.readouterr().out)):
            return True
    return False


def test_fleet_with_a_wrong_login_or_no_config_says_so_in_one_line(tmp_path, capsys):
    with Broker(tmp_path / "broker") as broker:
        path = fleet_file(tmp_path, broker)
        (broker.folder / "installer.secret").write_text("wrong\n")
        assert cli.main(["fleet", "--config", str(path)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "refused the login" in err
    assert cli.main(["fleet"]) == 2
    assert "--config" in capsys.readouterr().err


def test_the_fleet_view_takes_what_devices_say_and_nothing_else():
    fleet = Fleet("callgate")
    fleet.hear("callgate/office-7/availability", b"online")
    fleet.hear("callgate/office-7/state", json.dumps({
        "version": "1.2.0", "at": "2026-01-01T10:00:00.000Z",
        "lines": {"a": {"state": "idle"}, "b": {"state": "down"}},
        "alarms": [{"alarm": "line_down", "line": "b", "why": "modem gone"}],
        "calls_today": {"verified": 2, "identified": 1, "not_identified": 0,
                        "total": 3}}).encode())
    fleet.hear("callgate/office-7/state", b"not json")          # ignored, state kept
    fleet.hear("callgate/.fleet/abc", b"")                       # not a device
    fleet.hear("other/office-8/state", b"{}")                    # another prefix
    (row,) = fleet.rows()
    assert row["id"] == "office-7" and row["online"] is True
    assert (row["lines_up"], row["lines"]) == (1, 2) and row["alarms"] == ["line_down"]
    text = table_text([row])
    assert "1/2" in text and "3 (2/1/0)" in text and "line_down" in text


def test_push_config_for_a_device_id_that_is_no_topic_level_says_so_in_one_line(
        tmp_path, capsys):
    from callgate.telemetry.remote import make_keys

    make_keys(str(tmp_path / "k.pem"), str(tmp_path / "k.pub"))
    conf = tmp_path / "fleet.toml"
    conf.write_text('[telemetry.mqtt]\nhost = "localhost"\n')
    (tmp_path / "office.toml").write_text("[engine]\nrings = 2\n")
    for bad in ("office/#", "+", "office 1", ""):
        assert cli.main(["fleet", "push-config", "--config", str(conf), "--key",
                         str(tmp_path / "k.pem"), "--device", bad, "--serial", "1",
                         str(tmp_path / "office.toml")]) == 2, bad
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--device" in err, err
