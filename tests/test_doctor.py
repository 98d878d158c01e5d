"""`callgate doctor` on sim and replay lines and on the fake modem over a pty, each with
a healthy and a broken setup; its back end, clock, zone and space checks; --json."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import fake_alsaaudio
import fake_gpiod
import fake_modem
from callgate import cli
from callgate.doctor import line as doctor_line
from callgate.doctor import system
from callgate.doctor.cli import run_checks
from callgate.dsp.tones import plan_tone_tx
from callgate.line.modem import audio as modem_audio
from callgate.toneplans import load_toneplan
from callgate.wav import write_wav
from crm_fakes import VENDORS
from fake_modem import FakeModem
from https_server import secret_file

FIXTURES = Path(__file__).parent / "fixtures"
LINE_CHECKS = ("device", "caller ID", "audio in", "loop current", "dial tone",
               "dial tone level", "audio out")


@pytest.fixture(autouse=True)
def device(monkeypatch):
    """The device the checks run on, whatever machine runs the tests: a local zone, a
    clock systemd calls synchronised, a roomy data partition."""
    monkeypatch.setenv("TZ", "Europe/London")
    monkeypatch.setattr(system, "ntp_synchronised", lambda: True)
    monkeypatch.setattr(system, "disk_usage", lambda folder: (8 * 2 ** 30, 2 ** 30,
                                                              7 * 2 ** 30))


def config(tmp_path, text: str, name: str = "callgate.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def by_name(checks, line: str | None = "line") -> dict:
    return {c.name: c for c in checks if c.line == line}


def statuses(checks, line: str | None = "line") -> dict:
    return {name: c.status for name, c in by_name(checks, line).items()}


def doctor(capsys, path: str, *args) -> tuple[int, str]:
    code = cli.main(["doctor", "--config", path, *args])
    out = capsys.readouterr()
    return code, out.out + out.err


# ------------------------------------------------------------------ sim


def test_a_healthy_sim_line_passes_every_check(tmp_path, capsys):
    path = config(tmp_path, '[line]\nbackend = "sim"\n')
    checks = run_checks(path)
    assert statuses(checks) == {name: "ok" for name in LINE_CHECKS}
    line = by_name(checks)
    assert line["dial tone"].detail == "heard (plan us)"
    assert -16 < float(line["dial tone level"].detail.split()[0]) < -10
    assert "comes back at -20.0 dBm0" in line["audio out"].detail     # the sim's echo_db -10
    code, out = doctor(capsys, path)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("ok    config: ") and "1 line (line)" in lines[0]
    assert "ok    line: dial tone: heard (plan us)" in lines
    assert lines[-1].startswith("doctor: ") and " 0 failed" in lines[-1]


def test_a_sim_line_that_does_not_return_our_audio_fails_audio_out(tmp_path, capsys):
    path = config(tmp_path, '[line]\nbackend = "sim"\n[line.sim]\necho_db = false\n')
    checks = by_name(run_checks(path))
    assert checks["audio out"].status == "fail"
    assert "test tone did not come back" in checks["audio out"].detail
    assert checks["dial tone"].status == "ok"
    code, out = doctor(capsys, path)
    assert code == 1
    failed = [ln for ln in out.splitlines() if ln.startswith("FAIL")]
    assert len(failed) == 1 and "audio out" in failed[0] and " -- fix: " in failed[0]


def test_another_countrys_dial_tone_names_the_plan_to_set(tmp_path):
    path = config(tmp_path, '[engine]\ntoneplan = "us"\n[line]\nbackend = "sim"\n'
                            '[line.sim]\ncountry = "de"\n')
    tone = by_name(run_checks(path))["dial tone"]
    assert tone.status == "fail" and tone.detail.endswith(", not us's"), tone
    plan = tone.detail.split("plan ")[1].split("'")[0]
    assert 425.0 in load_toneplan(plan).tone("dial").frequencies       # de's 425 Hz tone
    assert f'set engine.toneplan = "{plan}"' in tone.fix


def test_a_tone_plan_file_is_listened_for_alone(tmp_path):
    from importlib import resources

    own = tmp_path / "pbx.toml"
    own.write_text(resources.files("callgate.toneplans").joinpath("de.toml").read_text())
    for country, status in (("de", "ok"), ("us", "fail")):
        path = config(tmp_path, f'[engine]\ntoneplan = "{own}"\n[line]\nbackend = "sim"\n'
                                f'[line.sim]\ncountry = "{country}"\n')
        assert by_name(run_checks(path))["dial tone"].status == status, country


# ------------------------------------------------------------------ replay


def replay_config(tmp_path, samples: np.ndarray) -> str:
    wav = tmp_path / "line.wav"
    write_wav(wav, samples)
    return config(tmp_path, f'[line]\nbackend = "replay"\n[line.replay]\npath = "{wav}"\n')


def test_a_replayed_line_with_dial_tone_passes(tmp_path):
    dial = plan_tone_tx(load_toneplan("us"), "dial", 4.0, level_dbm0=-16.0)
    checks = run_checks(replay_config(tmp_path, dial))
    assert statuses(checks) == {"device": "ok", "caller ID": "skip", "audio in": "ok",
                                "loop current": "skip", "dial tone": "ok",
                                "dial tone level": "ok", "audio out": "skip"}
    # -16 dBm0 in each of its two frequencies: -13 dBm0 in all
    assert by_name(checks)["dial tone level"].detail.startswith("-13.")


def test_a_silent_replayed_line_fails_audio_in_and_dial_tone(tmp_path):
    checks = by_name(run_checks(replay_config(tmp_path, np.zeros(4 * 8000, np.int16))))
    assert checks["audio in"].status == "fail" and "silence off hook" in checks["audio in"].detail
    assert checks["dial tone"].status == "fail"
    assert "plug a phone into the same socket" in checks["dial tone"].fix


def test_a_weak_dial_tone_fails_its_level(tmp_path):
    dial = plan_tone_tx(load_toneplan("us"), "dial", 4.0, level_dbm0=-39.0)
    checks = by_name(run_checks(replay_config(tmp_path, dial)))
    assert checks["dial tone"].status == "ok"
    level = checks["dial tone level"]
    assert level.status == "fail" and "too weak" in level.detail


def test_a_loud_dial_tone_warns_of_clipping_with_the_backends_fix(tmp_path):
    dial = plan_tone_tx(load_toneplan("us"), "dial", 4.0, level_dbm0=-5.0)   # -2 dBm0 in all
    level = by_name(run_checks(replay_config(tmp_path, dial)))["dial tone level"]
    assert level.status == "warn" and "near clipping" in level.detail
    assert "line.hat" not in level.fix and "amplifies" in level.fix


# ------------------------------------------------------------------ modem on a pty


class FakeLineModem(FakeModem):
    """The fake modem with a fake line behind it: the exchange's dial tone off hook, and
    what the host sent heard back `echo_db` down, `lead` frames later (the 2-wire
    hybrid; None: no echo, a half-duplex modem sends nothing while it listens).
    `loop_drop_at`: the exchange drops the loop at that frame (the modem reports
    <DLE>l). Each frame is made as the modem sends it, in the fake's own thread, so
    the dial tone has no gap however the test's threads are scheduled; the echo only
    needs the host to be less than `lead` frames (300 ms) behind the modem."""

    def __init__(self, link, model: str = "cx93010", echo_db: float | None = -12.0,
                 lead: int = 15, loop_drop_at: int | None = None, **kw) -> None:
        self.dial = plan_tone_tx(load_toneplan("us"), "dial", 20.0, level_dbm0=-15.0)
        self.gain = None if echo_db is None else 10 ** (echo_db / 20)
        self.lead = lead
        self.loop_drop_at = loop_drop_at
        self.line_frames = 0                 # frames of the line sent to the host
        super().__init__(link, model, speed=1.0, **kw)

    def _send_frame(self) -> None:
        i, self.line_frames = self.line_frames, self.line_frames + 1
        if i == self.loop_drop_at:
            self.event("l")
        if i < len(self.dial) // 160:
            frame = self.dial[i * 160:(i + 1) * 160].astype(np.float64)
            k = i - self.lead
            if self.gain is not None and k >= 0 and len(self.received) >= (k + 1) * 160:
                sent = bytes(self.received[k * 160:(k + 1) * 160])
                frame += self.gain * modem_audio.decode(sent, fake_modem.VSM_FORMATS[self.fmt])
            self.play(np.clip(frame, -32768, 32767).astype(np.int16))
        super()._send_frame()


@pytest.fixture()
def modem(tmp_path):
    fake = FakeModem(tmp_path / "callgate-modem0", model="cx93010", speed=1.0)
    yield fake
    fake.close()


def modem_config(tmp_path, port) -> str:
    return config(tmp_path, f'[line]\nbackend = "modem"\n[line.modem]\nport = "{port}"\n')


def test_a_healthy_modem_line_passes_every_check(tmp_path, capsys):
    modem = FakeLineModem(tmp_path / "callgate-modem0")
    try:
        checks = run_checks(modem_config(tmp_path, modem.link))
    finally:
        modem.close()
    assert statuses(checks) == {"device": "ok", "modem": "ok", "caller ID": "ok",
                                "audio in": "ok", "loop current": "ok", "dial tone": "ok",
                                "dial tone level": "ok", "audio out": "ok"}, checks
    line = by_name(checks)
    assert line["modem"].detail.startswith("Conexant CX93010-based USB modem answers on ")
    assert "identified by ATI0/ATI3" in line["modem"].detail
    assert "AT+VCID=1" in modem.commands and "answered OK to AT+VCID=1" in line["caller ID"].detail
    assert "ATI0" in modem.commands and "ATI3" in modem.commands
    assert modem.hook_log == ["off", "on"]               # back on hook when done
    back = float(line["audio out"].detail.split("comes back at ")[1].split()[0])
    assert -26 < back < -18                               # -10 dBm0 sent, echo 12 dB down


def test_two_usb_modems_are_two_lines_each_checked_on_its_own_port(tmp_path):
    fakes = [FakeLineModem(tmp_path / "callgate-modem0", "cx93010"),
             FakeLineModem(tmp_path / "callgate-modem1", "usr5637", echo_db=None)]
    path = config(tmp_path, "".join(
        f'[[line]]\nname = "{name}"\nbackend = "modem"\nmodem.port = "{fake.link}"\n'
        for name, fake in zip(("front", "back"), fakes)))
    try:
        checks = run_checks(path)
    finally:
        for fake in fakes:
            fake.close()
    front, back = by_name(checks, "front"), by_name(checks, "back")
    assert front["modem"].detail.startswith("Conexant") and str(fakes[0].link) in \
        front["modem"].detail
    assert back["modem"].detail.startswith("USRobotics") and str(fakes[1].link) in \
        back["modem"].detail
    assert front["dial tone"].status == back["dial tone"].status == "ok"
    assert all(fake.hook_log == ["off", "on"] for fake in fakes)


def test_a_half_duplex_modem_skips_the_echo_test(tmp_path):
    fake = FakeLineModem(tmp_path / "modem", "usr5637", echo_db=None)
    try:
        checks = by_name(run_checks(modem_config(tmp_path, fake.link)))
    finally:
        fake.close()
    assert checks["modem"].detail.startswith("USRobotics USR5637")
    assert checks["dial tone"].status == "ok"
    assert checks["audio out"].status == "skip" and "half duplex" in checks["audio out"].detail


def test_a_modems_t35_country_is_not_taken_for_a_tone_plan(tmp_path):
    """line.modem.country is the modem's AT+GCI code (B4: the UK), not a tone plan: the
    engine and doctor keep to engine.toneplan, else us."""
    from callgate.app import App, Settings

    modem = FakeLineModem(tmp_path / "callgate-modem0")
    path = config(tmp_path, f'[line]\nbackend = "modem"\n[line.modem]\nport = '
                            f'"{modem.link}"\ncountry = "B4"\n')
    try:
        checks = by_name(run_checks(path))
        app = App.from_settings(Settings.load(path))        # builds the engine, opens nothing
    finally:
        modem.close()
    assert modem.country == "B4"                           # the modem was told
    assert checks["dial tone"].status == "ok" and checks["dial tone"].detail == "heard (plan us)"
    assert app.engine.plan.name == "us"


def test_a_modem_without_a_line_behind_it_fails_audio_and_dial_tone(tmp_path, modem, capsys):
    code, out = doctor(capsys, modem_config(tmp_path, modem.link))
    assert code == 1
    failed = {ln.split(":")[1].strip() for ln in out.splitlines() if ln.startswith("FAIL")}
    assert failed == {"audio in", "dial tone", "audio out"}, out
    assert "modem's LINE socket" in out


def test_a_loop_that_drops_off_hook_fails_loop_current(tmp_path):
    modem = FakeLineModem(tmp_path / "callgate-modem0", loop_drop_at=10)
    try:
        checks = by_name(run_checks(modem_config(tmp_path, modem.link)))
    finally:
        modem.close()
    assert checks["loop current"].status == "fail"
    assert "the line is dead or not connected" in checks["loop current"].detail


def test_a_missing_modem_names_the_ports_that_are_there(tmp_path, modem):
    checks = by_name(run_checks(modem_config(tmp_path, tmp_path / "callgate-modem1")))
    device = checks["device"]
    assert device.status == "fail" and list(checks) == ["device"]
    assert f"serial ports here: {modem.link}" in device.detail
    assert "set line.modem.port" in device.fix


def auto_line(tmp_path):
    """A modem line on port "auto", looking where the image and udev put modems (here
    in tmp_path: the image's callgate-modem0, udev's serial/by-id)."""
    from callgate.line.modem.line import ModemLine

    return ModemLine("auto", auto_ports=(str(tmp_path / "callgate-modem0"),),
                     by_id_dir=str(tmp_path / "serial" / "by-id"))


def test_port_auto_finds_the_modem_by_its_by_id_name(tmp_path):
    by_id = tmp_path / "serial" / "by-id" / "usb-Conexant_USB_Modem_24680246-if00"
    modem = FakeLineModem(tmp_path / "ttyACM3", by_id=by_id)      # no callgate-modem0
    try:
        real = str(by_id.resolve())                                  # the pty, /dev/pts/N
        checks = by_name(doctor_line.check_line("line", auto_line(tmp_path)))
    finally:
        modem.close()
    assert checks["device"].status == "ok"
    assert checks["device"].detail == f"port auto: serial port {by_id} = {real}"
    assert checks["modem"].detail.startswith(f"Conexant CX93010-based USB modem answers on "
                                             f"{by_id} ")
    assert checks["dial tone"].status == "ok"


def test_port_auto_shows_each_modem_port_and_the_backend_opens_the_images_name(tmp_path):
    by_id = tmp_path / "serial" / "by-id" / "usb-U.S._Robotics_USB_Modem-if00"
    other = FakeModem(tmp_path / "ttyACM1", "cx93010",
                      by_id=by_id.parent / "usb-Conexant_USB_Modem-if00")
    modem = FakeModem(tmp_path / "callgate-modem0", "usr5637", by_id=by_id)
    try:
        reals = [str(by_id.resolve()), str(other.by_id.resolve())]
        checks = by_name(doctor_line.check_line("line", auto_line(tmp_path)))
    finally:
        modem.close()
        other.close()
    device = checks["device"]
    assert device.status == "ok", device
    assert device.detail == (f"port auto: serial ports {tmp_path / 'callgate-modem0'} = "
                             f"{by_id} = {reals[0]}; {other.by_id} = {reals[1]}")
    assert checks["modem"].detail.startswith(f"USRobotics USR5637 56K USB answers on "
                                             f"{tmp_path / 'callgate-modem0'} ")


def test_port_auto_without_a_modem_says_where_it_looked(tmp_path):
    checks = doctor_line.check_line("line", auto_line(tmp_path))
    assert [c.name for c in checks] == ["device"] and checks[0].status == "fail"
    assert checks[0].detail.startswith(
        f"port auto: no modem port (looked for {tmp_path / 'callgate-modem0'}, "
        f"{tmp_path / 'serial' / 'by-id'}/*, /dev/ttyACM0); serial ports here: ")
    assert "set line.modem.port" in checks[0].fix


class FakeModemWithoutCallerId(FakeModem):
    """A voice modem whose firmware has no caller ID: ERROR to +VCID=1 (V.253 9.2.3:
    ERROR for a value the modem does not support)."""

    def _command(self, line: str) -> None:
        if line.upper().replace(" ", "").endswith("AT+VCID=1") and self.fclass == 8:
            self.commands.append("AT+VCID=1")
            self._reply("ERROR")
            return
        super()._command(line)


def test_a_modem_that_refuses_caller_id_reporting_fails_caller_id(tmp_path):
    fake = FakeModemWithoutCallerId(tmp_path / "callgate-modem0")
    try:
        checks = by_name(run_checks(modem_config(tmp_path, fake.link)))
    finally:
        fake.close()
    assert "AT+VCID=1" in fake.commands
    assert checks["open"].status == "fail" and "AT+VCID=1" in checks["open"].detail
    cid = checks["caller ID"]
    assert cid.status == "fail" and "no caller ID" in cid.detail and "hw/README.md" in cid.fix


def test_a_modem_that_does_not_answer_fails_open(tmp_path, modem):
    modem.hang()
    checks = by_name(run_checks(modem_config(tmp_path, modem.link)))
    assert checks["device"].status == "ok" and checks["open"].status == "fail"
    assert "systemctl stop callgate@line" in checks["open"].fix
    assert "audio in" not in checks


def test_a_modem_that_is_not_a_voice_modem_is_named_by_its_ati(tmp_path, monkeypatch):
    monkeypatch.setitem(fake_modem.MODELS, "data-only", dict(
        fake_modem.MODELS["cx93010"], ati0="28800", ati3="Generic data modem V1.0"))
    fake = FakeModem(tmp_path / "modem", model="data-only")
    try:
        checks = by_name(run_checks(modem_config(tmp_path, fake.link)))
    finally:
        fake.close()
    assert checks["open"].status == "fail"
    assert "not a supported voice modem" in checks["open"].detail
    assert "Generic data modem" in checks["open"].detail


# ------------------------------------------------------------------ config and back end


def test_a_bad_config_fails_and_still_checks_the_device(tmp_path, capsys, monkeypatch):
    dev = tmp_path / "dev"
    (dev / "serial" / "by-id").mkdir(parents=True)
    (dev / "ttyACM0").touch()
    (dev / "serial" / "by-id" / "usb-Conexant_USB_Modem-if00").symlink_to(dev / "ttyACM0")
    monkeypatch.setattr(doctor_line, "DEV", str(dev))
    monkeypatch.setattr(doctor_line, "GPIO_CHIPS", str(dev / "gpiochip*"))
    monkeypatch.setattr(doctor_line, "SOUND_CARDS", str(tmp_path / "no-cards"))
    path = config(tmp_path, '[line]\nbackend = "sim"\n[line.sim]\nsede = 1\n')
    code, out = doctor(capsys, path)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("FAIL  config: line.sim.sede: unknown key -- fix: correct it "
                               f"in {path}, then run `callgate check-config {path}`")
    by_id = dev / "serial" / "by-id" / "usb-Conexant_USB_Modem-if00"
    assert lines[1] == (f"ok    hardware: serial ports: {by_id}, {dev / 'ttyACM0'}; "
                        "GPIO chips: none; sound cards: none")
    assert [ln.split(":")[0] for ln in lines[2:5]] == ["ok    clock", "ok    time zone",
                                                        "ok    free space"]
    (dev / "ttyACM0").unlink()
    (dev / "serial" / "by-id" / "usb-Conexant_USB_Modem-if00").unlink()
    bare = by_name(run_checks(path), None)["hardware"]
    assert bare.status == "warn" and "plug the modem in" in bare.fix


def test_every_line_of_a_device_is_checked_or_the_one_asked_for(tmp_path, capsys):
    path = config(tmp_path, '[[line]]\nname = "front"\n[[line]]\nname = "back"\n'
                            '[line.sim]\necho_db = false\n')
    checks = run_checks(path)
    assert statuses(checks, "front")["audio out"] == "ok"
    assert statuses(checks, "back")["audio out"] == "fail"
    only = run_checks(path, "front")
    assert {c.line for c in only} == {None, "front"}
    code, out = doctor(capsys, path, "--line", "side")
    assert code == 2 and out.strip() == ("callgate doctor: --line side: no such line "
                                         "(configured: front, back)")


def directory_config(tmp_path, db) -> str:
    return config(tmp_path, f'[line]\nbackend = "sim"\n[crm]\ndirectory = "{db}"\n'
                            f'[store]\npath = "{tmp_path / "calls.sqlite"}"\n')


def test_the_back_end_check_is_crm_tests(tmp_path, capsys):
    db = tmp_path / "directory.sqlite"
    path = directory_config(tmp_path, db)
    missing = by_name(run_checks(path), None)["back end"]
    assert missing.status == "fail" and f"the directory {db} does not exist" in missing.detail
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"), "--db",
                     str(db)]) == 0
    capsys.readouterr()
    found = by_name(run_checks(path), None)["back end"]
    assert found.status == "ok" and found.detail == "directory answered: no customer found"
    code, out = doctor(capsys, path, "--phone", "(201) 555-0123")      # Jane Smith's
    assert code == 0, out
    assert "back end: directory answered: customer found: id ******78, Jane Smith" in out
    assert "5550123" not in out and "555-0123" not in out and "12345678" not in out


def test_a_refused_credential_is_a_failure_with_a_fix_and_never_shown(tmp_path, capsys):
    with VENDORS["hubspot"](tmp_path) as fake:
        crm = fake.crm(tmp_path)
        good = [line for line in crm["auth"].items() if line[0].endswith("_file")][0]
        ok_path = config(tmp_path, _crm_toml(crm))
        healthy = by_name(run_checks(ok_path), None)["back end"]
        crm["auth"][good[0]] = secret_file(tmp_path, "wrong", "not-the-token-1234")
        code, out = doctor(capsys, config(tmp_path, _crm_toml(crm), "bad.toml"), "--json")
    assert healthy.status == "ok" and "(DNS, TLS ok)" in healthy.detail, healthy
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    backend = next(c for c in report["checks"] if c["name"] == "back end")
    assert backend["status"] == "fail" and "401" in backend["fix"]
    assert "not-the-token-1234" not in out
    assert Path(crm["auth"][good[0]]).read_text().strip() not in out


def _crm_toml(crm: dict) -> str:
    from test_crm_sitecheck import toml_value

    return ('[line]\nbackend = "sim"\n[crm]\n'
            + "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in crm.items()))


# ------------------------------------------------------------------ the device


def test_a_clock_that_was_never_set_fails_and_an_unsynchronised_one_warns():
    never = system.check_clock(now=lambda: 86400.0, synchronised=lambda: True)
    assert never.status == "fail" and "1970-01-0" in never.detail and "NTP" in never.fix
    loose = system.check_clock(now=time.time, synchronised=lambda: False)
    assert loose.status == "warn" and "timedatectl set-ntp true" in loose.fix
    good = system.check_clock(now=time.time, synchronised=lambda: True)
    assert good.status == "ok" and "synchronised (NTP)" in good.detail


def test_doctor_asks_the_device_for_its_clock_and_space(tmp_path, monkeypatch):
    monkeypatch.setattr(system, "ntp_synchronised", lambda: False)
    monkeypatch.setattr(system, "disk_usage", lambda folder: (8 * 2 ** 30, 8 * 2 ** 30, 0))
    checks = by_name(run_checks(config(tmp_path, "[bogus]\n")), None)
    assert checks["config"].status == "fail"
    assert checks["clock"].status == "warn" and "not synchronised" in checks["clock"].detail
    assert checks["free space"].status == "fail"
    assert checks["free space"].detail.startswith("0 B free of 8.0 GiB")


def test_time_zone(tmp_path):
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/America/Chicago")
    assert system.check_zone({}, link).detail == "America/Chicago"
    assert system.check_zone({"TZ": "Mars/Olympus"}, link).status == "fail"
    utc = system.check_zone({"TZ": "Etc/UTC"}, link)
    assert utc.status == "warn" and "timedatectl set-timezone" in utc.fix


def test_free_space_on_the_data_partition(tmp_path):
    store = tmp_path / "data" / "calls.sqlite"           # not made yet: its parent is used
    GiB = 2 ** 30
    full = system.check_space(store, usage=lambda p: (8 * GiB, 8 * GiB - 50 * 2 ** 20,
                                                      50 * 2 ** 20))
    assert full.status == "fail" and full.detail.startswith("50.0 MiB free of 8.0 GiB")
    assert str(tmp_path) in full.fix
    fine = system.check_space(store, usage=lambda p: (8 * GiB, 2 * GiB, 6 * GiB))
    assert fine.status == "ok"
    real = system.check_space(store, usage=shutil.disk_usage)       # this machine's
    assert real.status in ("ok", "fail") and " free of " in real.detail


# ------------------------------------------------------------------ a HAT (fake GPIO, codec)


class FakeHybridCard(fake_alsaaudio.FakeSoundCard):
    """The fake USB codec on a DAA with a line behind it: the capture is the exchange's
    `line` signal plus what was played `delay` samples earlier, `echo_db` down (the
    DAA's 2-wire hybrid returns part of what it sends)."""

    def __init__(self, clock, echo_db: float | None, delay: int = 1600) -> None:
        super().__init__(clock, rates=(8000,))
        self.gain = None if echo_db is None else 10 ** (echo_db / 20)
        self.delay = delay

    def capture(self, rate: int, start: int, n: int) -> np.ndarray:
        out = super().capture(rate, start, n).astype(np.float64)
        played = self.playback_signal()
        lo = start - self.delay
        if self.gain is not None and lo + n > 0 and lo < len(played):
            back = np.zeros(n)
            a, b = max(lo, 0), min(lo + n, len(played))
            back[a - lo:b - lo] = played[a:b]
            out += self.gain * back
        return np.clip(out, -32768, 32767).astype(np.int16)


def hat_line(echo_db: float | None):
    from test_line_hat import BOARD, DEVICE

    from callgate.line.hat import HatLine, load_board

    clock = fake_alsaaudio.FakeClock()
    chip = fake_gpiod.pi_chip(clock)
    card = FakeHybridCard(clock, echo_db)
    card.line = plan_tone_tx(load_toneplan("us"), "dial", 6.0, level_dbm0=-18.0)
    board = load_board(BOARD)
    board = dataclasses.replace(board, audio=dataclasses.replace(board.audio, rate=8000))
    line = HatLine(board, gpiod=fake_gpiod.make_module([chip]),
                   alsaaudio=fake_alsaaudio.make_module({DEVICE: card}),
                   chips=["/dev/gpiochip0"], now_ns=clock.now_ns, sleep=clock.sleep)
    return line, card


@pytest.fixture()
def pi(tmp_path, monkeypatch):
    """What a Pi with the HAT shows in /dev and /proc (the fakes stand behind them)."""
    (tmp_path / "gpiochip0").touch()
    cards = tmp_path / "cards"
    cards.write_text(" 0 [Device         ]: USB-Audio - USB Audio Device\n"
                     "                      C-Media USB Audio Device at usb-1, full speed\n")
    monkeypatch.setattr(doctor_line, "GPIO_CHIPS", str(tmp_path / "gpiochip*"))
    monkeypatch.setattr(doctor_line, "SOUND_CARDS", str(cards))
    return tmp_path


def test_a_healthy_hat_line(pi):
    line, card = hat_line(echo_db=-15.0)
    checks = by_name(doctor_line.check_line("line", line))
    assert {k: c.status for k, c in checks.items()} == {
        "device": "ok", "hat": "ok", "caller ID": "ok", "audio in": "ok",
        "loop current": "skip", "dial tone": "ok", "dial tone level": "ok", "audio out": "ok"}
    assert "sound cards: USB-Audio - USB Audio Device" in checks["device"].detail
    assert "ring GPIO17" in checks["hat"].detail and "hook GPIO27" in checks["hat"].detail
    assert checks["dial tone level"].detail.startswith("-15.")       # two tones at -18 each


def test_a_hat_whose_codec_does_not_reach_the_line_fails_audio_out(pi):
    line, card = hat_line(echo_db=None)
    checks = by_name(doctor_line.check_line("line", line))
    assert checks["dial tone"].status == "ok"
    out = checks["audio out"]
    assert out.status == "fail" and "line.hat.tx_gain_db" in out.fix
    sent = card.playback_signal()                    # the tone did go to the codec
    assert doctor_line.tone_dbm0(sent[-4000:], 1004.0, 8000) > -12


def test_a_pi_without_the_hat_fails_device(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor_line, "GPIO_CHIPS", str(tmp_path / "gpiochip*"))
    monkeypatch.setattr(doctor_line, "SOUND_CARDS", str(tmp_path / "cards"))
    line, _ = hat_line(echo_db=-15.0)
    checks = doctor_line.check_line("line", line)
    assert [c.name for c in checks] == ["device"] and checks[0].status == "fail"
    assert "GPIO chips: none; sound cards: none" in checks[0].detail
