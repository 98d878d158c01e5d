"""The systemd unit and the sd_notify client, against a real datagram socket."""

import configparser
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from callgate import sdnotify
from callgate.sdnotify import Watchdog, notify

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "callgate.service"


# ---------------------------------------------------------------- sd_notify


@pytest.fixture
def listener(tmp_path):
    """A unix datagram socket as systemd binds it; yields (NOTIFY_SOCKET value, socket)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def test_notify_sends_each_state_as_one_datagram(listener):
    name, sock = listener
    env = {"NOTIFY_SOCKET": name}
    assert notify("READY=1", env)
    assert sock.recv(4096) == b"READY=1"
    assert sdnotify.ready("line open", env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=line open"
    assert sdnotify.status("two\nlines", env)
    assert sock.recv(4096) == b"STATUS=two lines"
    assert sdnotify.stopping(env)
    assert sock.recv(4096) == b"STOPPING=1"


def test_notify_abstract_namespace():
    name = f"callgate-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_notify_is_a_quiet_no_op_without_systemd(tmp_path):
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": ""}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    # a socket that went away (systemd restarted) must not raise into the engine
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
    assert Watchdog({}).enabled is False and Watchdog({}).due(0.0) is False


def test_watchdog_pings_every_half_of_watchdog_usec(listener):
    name, sock = listener
    dog = Watchdog({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "10000000"})
    assert dog.enabled and dog.interval == 5.0
    assert dog.due(100.0)                       # first call: ping at once
    assert dog.ping(100.0)
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert not dog.due(104.9)
    assert dog.due(105.0)
    assert dog.feed(103.0) is False
    assert dog.feed(105.5) is True
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert not dog.due(110.4) and dog.due(110.5)


@pytest.mark.parametrize("env", [
    {"WATCHDOG_USEC": "10000000"},                                     # no socket
    {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"},
    {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"},
    {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"},  # not us
])
def test_watchdog_off_unless_it_is_meant_for_us(env):
    dog = Watchdog(env)
    assert not dog.enabled and not dog.due(1e9) and dog.ping(1e9) is False


def test_watchdog_for_our_pid():
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    assert Watchdog(env).interval == 1.5


# ---------------------------------------------------------------- the unit file


def unit_sections():
    """The unit read like an INI file; repeated keys (DeviceAllow=) are listed separately."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)   # repeats: last wins
    parser.optionxform = str                    # systemd keys are case-sensitive
    text = UNIT.read_text()
    parser.read_string(text)
    return parser, re.findall(r"^DeviceAllow=(.+)$", text, re.M)


def test_unit_has_the_keys_the_appliance_relies_on():
    unit, device_allow = unit_sections()
    svc = unit["Service"]
    assert svc["Type"] == "notify"
    assert re.fullmatch(r"\d+s", svc["WatchdogSec"]) and int(svc["WatchdogSec"][:-1]) >= 5
    assert svc["Restart"] == "on-failure"
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["PrivateTmp"] == "yes"
    assert svc["StateDirectory"] == "callgate" and svc["ConfigurationDirectory"] == "callgate"
    assert set(svc["SupplementaryGroups"].split()) >= {"dialout", "gpio", "audio"}
    assert svc.get("PrivateDevices", "no") == "no"     # it would hide the line's devices
    assert svc["DevicePolicy"] == "closed"
    assert {d.split()[0] for d in device_allow} >= {"char-ttyACM", "char-gpiochip", "char-alsa"}
    assert all(d.split()[1] == "rw" for d in device_allow)
    exec_start = svc["ExecStart"].split()
    assert exec_start[0] == "/opt/callgate/current/bin/callgate" and exec_start[1] == "run"
    assert exec_start[2:] == ["--config", "/etc/callgate/callgate.toml"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def analyze():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    return tool


def verify(tool, unit_path):
    proc = subprocess.run([tool, "verify", "--man=no", str(unit_path)], capture_output=True,
                          text=True, timeout=60)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return proc.returncode, lines


def test_systemd_analyze_verify_finds_nothing_but_the_missing_binary(tmp_path):
    tool = analyze()
    rc, lines = verify(tool, UNIT)
    # on a build machine the venv is not installed; that must be the only complaint
    other = [ln for ln in lines if "/opt/callgate/current/bin/callgate" not in ln]
    assert other == [], lines
    # with ExecStart pointing at a program that exists, the unit is clean
    copy = tmp_path / "callgate.service"
    copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}",
                           UNIT.read_text(), flags=re.M))
    rc, lines = verify(tool, copy)
    assert rc == 0 and lines == []


def test_verify_would_catch_a_broken_unit(tmp_path):
    """The check above is worth something: a typo and a bad value are reported."""
    tool = analyze()
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}", UNIT.read_text(),
                  flags=re.M)
    text = text.replace("NoNewPrivileges=yes", "NoNewPrivilges=yes")
    text = text.replace("WatchdogSec=10s", "WatchdogSec=tenseconds")
    copy = tmp_path / "callgate.service"
    copy.write_text(text)
    _, lines = verify(tool, copy)
    joined = "\n".join(lines)
    assert "NoNewPrivilges" in joined and "tenseconds" in joined


def test_unit_hardening_exposure_is_low(tmp_path):
    tool = analyze()
    copy = tmp_path / "callgate.service"
    copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}",
                           UNIT.read_text(), flags=re.M))
    proc = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(copy)],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for callgate.service: ([\d.]+)", proc.stdout)
    if proc.returncode != 0 and found is None:
        pytest.skip(f"systemd-analyze security --offline is not supported here: "
                    f"{proc.stderr.strip().splitlines()[:1]}")
    assert found, proc.stdout[-500:]
    assert float(found.group(1)) <= 3.0


# ---------------------------------------------------------------- the web app's unit

WEB_UNIT = ROOT / "systemd" / "callgate-web.service"


def test_the_web_unit_verifies_clean_and_is_hardened(tmp_path):
    """systemd/callgate-web.service: `callgate web` as the callgate user, no devices."""
    tool = analyze()
    text = WEB_UNIT.read_text()
    assert re.search(r"^ExecStart=/opt/callgate/current/bin/callgate web --config "
                     r"/etc/callgate/callgate\.toml$", text, re.M)
    for line in ("Type=notify", "User=callgate", "StateDirectory=callgate",
                 "PrivateDevices=yes", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert re.search(rf"^{line}$", text, re.M), line
    copy = tmp_path / "callgate-web.service"
    copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}", text,
                           flags=re.M))
    rc, lines = verify(tool, copy)
    assert rc == 0 and lines == []
    proc = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(copy)],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for callgate-web.service: ([\d.]+)", proc.stdout)
    assert found, proc.stdout[-500:] + proc.stderr[-500:]
    assert float(found.group(1)) <= 2.0


# ---------------------------------------------------------------- issue 16: memory and reach


def unit_keys(path: Path) -> dict[str, list[str]]:
    """Every Key=value of a unit, repeated keys in order."""
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def security_findings(tool, unit_path: Path, tmp_path: Path) -> str:
    copy = tmp_path / unit_path.name
    copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}",
                           unit_path.read_text(), flags=re.M))
    proc = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(copy)],
                          capture_output=True, text=True, timeout=60)
    assert "Overall exposure level" in proc.stdout, proc.stdout[-500:] + proc.stderr[-500:]
    return proc.stdout


def test_the_engine_is_the_last_the_oom_killer_picks_and_both_units_are_bounded():
    engine, web = unit_keys(UNIT), unit_keys(WEB_UNIT)
    assert int(engine["OOMScoreAdjust"][-1]) <= -500
    assert int(web["OOMScoreAdjust"][-1]) > 0
    for keys in (engine, web):
        assert re.fullmatch(r"\d+M", keys["MemoryMax"][-1])
    # the web app's bound leaves the engine room on a 512 MiB board, above its 150 MiB target
    assert 150 < int(web["MemoryMax"][-1][:-1]) <= 256
    assert int(web["MemoryHigh"][-1][:-1]) <= int(web["MemoryMax"][-1][:-1])


@pytest.mark.parametrize("unit", [UNIT, WEB_UNIT], ids=lambda p: p.name)
def test_no_privileged_calls_and_only_own_processes_in_proc(unit, tmp_path):
    keys = unit_keys(unit)
    assert "~@privileged" in keys["SystemCallFilter"]
    assert keys["ProcSubset"] == ["pid"]
    found = security_findings(analyze(), unit, tmp_path)
    flagged = [ln for ln in found.splitlines() if ln.startswith("✗")]
    assert not [ln for ln in flagged if "SystemCallFilter=~@privileged" in ln], flagged
    assert not [ln for ln in flagged if ln.split()[1].startswith("ProcSubset")], flagged


def test_the_web_unit_lets_only_the_lan_in(tmp_path):
    keys = unit_keys(WEB_UNIT)
    assert keys["IPAddressDeny"] == ["any"]
    allowed = keys["IPAddressAllow"][-1].split()
    assert "localhost" in allowed and "192.168.0.0/16" in allowed and "10.0.0.0/8" in allowed
    assert "0.0.0.0/0" not in allowed and "any" not in allowed
    text = WEB_UNIT.read_text()
    assert "systemctl edit callgate-web" in text        # how a site sets its own list
    found = security_findings(analyze(), WEB_UNIT, tmp_path)
    assert "does not define an IP address allow list" not in found


# ---------------------------------------------------------------- one unit per line

LINE_UNIT = ROOT / "systemd" / "callgate@.service"


def test_the_line_template_runs_its_instance_line_and_verifies_clean(tmp_path):
    """systemd/callgate@.service: instance NAME runs `callgate run --line NAME` from the
    release's venv, hardened as the single-line unit, and verifies clean as an instance."""
    tool = analyze()
    text = LINE_UNIT.read_text()
    assert re.search(r"^ExecStart=/opt/callgate/current/bin/callgate run --config "
                     r"/etc/callgate/callgate\.toml --line %i$", text, re.M)
    for line in ("Type=notify", "User=callgate", "StateDirectory=callgate",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "DevicePolicy=closed",
                 "Conflicts=callgate.service", "RuntimeDirectory=callgate/%i"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    rc, lines = verify(tool, LINE_UNIT)
    assert [ln for ln in lines if "/opt/callgate/current/bin/callgate" not in ln] == [], lines
    for name in ("office", "shop-2"):
        copy = tmp_path / f"callgate@{name}.service"
        copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}", text,
                               flags=re.M))
        rc, lines = verify(tool, copy)
        assert rc == 0 and lines == [], (name, lines)
    proc = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(copy)],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for callgate@shop-2.service: ([\d.]+)",
                      proc.stdout)
    assert found, proc.stdout[-500:] + proc.stderr[-500:]
    assert float(found.group(1)) <= 3.0


def test_verify_catches_a_broken_line_template(tmp_path):
    tool = analyze()
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}",
                  LINE_UNIT.read_text(), flags=re.M).replace("Type=notify", "Type=notifyy")
    copy = tmp_path / "callgate@office.service"
    copy.write_text(text)
    _, lines = verify(tool, copy)
    assert "notifyy" in "\n".join(lines)


def test_a_line_instance_is_bounded_and_confined_as_the_single_line_engine():
    """callgate@NAME is the same engine: killed last, bounded, no privileged calls."""
    engine, line = unit_keys(UNIT), unit_keys(LINE_UNIT)
    for key in ("OOMScoreAdjust", "MemoryMax", "ProcSubset", "SystemCallFilter"):
        assert line.get(key) == engine.get(key), key


# ---------------------------------------------------------------- provisioning and releases

PROVISION_UNIT = ROOT / "systemd" / "callgate-provision.service"


def test_every_unit_runs_the_current_release():
    """`callgate update` switches /opt/callgate/current; every unit must follow it."""
    for unit in sorted((ROOT / "systemd").glob("*.service")):
        execs = re.findall(r"^Exec\w+=(\S+)", unit.read_text(), re.M)
        assert execs and all(e == "/opt/callgate/current/bin/callgate" for e in execs), unit


def test_the_provisioning_unit_runs_once_before_the_engine_and_the_web_app(tmp_path):
    tool = analyze()
    text = PROVISION_UNIT.read_text()
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    unit, svc = parser["Unit"], parser["Service"]
    assert svc["Type"] == "oneshot"
    assert set(unit["Before"].split()) >= {"callgate.service", "callgate-web.service"}
    conditions = re.findall(r"^ConditionPathExists=(.+)$", text, re.M)
    assert sorted(conditions) == ["|!/var/lib/callgate/web-secret.key",
                                  "|/boot/firmware/callgate.toml"]
    assert "/boot/firmware" in unit["RequiresMountsFor"].split()
    assert svc["ExecStart"].split()[:2] == ["/opt/callgate/current/bin/callgate", "provision"]
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    copy = tmp_path / "callgate-provision.service"
    copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}", text,
                           flags=re.M))
    rc, lines = verify(tool, copy)
    assert rc == 0 and lines == []


def test_provisioning_comes_before_every_unit_that_runs_the_engine_or_the_web_app():
    """A unit that reads /etc/callgate must not start on the setup provisioning is about to
    replace. The provisioning unit's Before= can only name plain units; a template
    (callgate@.service, one instance per line) has to say After= itself."""
    before = set()
    for line in re.findall(r"^Before=(.+)$", PROVISION_UNIT.read_text(), re.M):
        before |= set(line.split())
    engines = []
    for unit in sorted((ROOT / "systemd").glob("*.service")):
        text = unit.read_text()
        start = re.search(r"^ExecStart=\S+ (\S+)", text, re.M)
        if not start or start.group(1) not in ("run", "web"):
            continue
        engines.append(unit.name)
        after = set()
        for line in re.findall(r"^After=(.+)$", text, re.M):
            after |= set(line.split())
        ordered = "callgate-provision.service" in after or \
            ("@" not in unit.name and unit.name in before)
        assert ordered, f"{unit.name}: add After=callgate-provision.service"
    assert {"callgate.service", "callgate-web.service"} <= set(engines)
