"""First-boot provisioning against a temporary root and boot folder: modes and owners,
secrets moved and blanked, applied once, a bad file applying nothing with a clear reason,
a new file applied again, [system], customers.csv, and the web's one-time setup code."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from callgate.appliance.layout import Layout
from callgate.appliance.provision import provision

TOKEN = "pat-na1-SECRET-7f3c9e"
WB_TOKEN = "wb-SECRET-55aa"
UID, GID = (4242, 4343) if os.geteuid() == 0 else (os.getuid(), os.getgid())
ROOT_UID = 0 if os.geteuid() == 0 else os.getuid()

GOOD = f"""\
# the technician's file
[system]
timezone = "Europe/Paris"

[crm]
kind = "hubspot"
base_url = "https://crm.example.com"

[crm.auth]
kind = "bearer"
token = "{TOKEN}"

[writeback]
url = "https://crm.example.com/notes"

[writeback.auth]
kind = "bearer"
token = "{WB_TOKEN}"
"""


@pytest.fixture()
def layout(tmp_path):
    root, boot = tmp_path / "root", tmp_path / "boot"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(f"root:x:{ROOT_UID}:{ROOT_UID}::/root:/bin/sh\n"
                                         f"callgate:x:{UID}:{GID}::/var/lib/callgate:"
                                         "/usr/sbin/nologin\n")
    (root / "sys" / "class" / "leds" / "ACT").mkdir(parents=True)
    (root / "sys" / "class" / "leds" / "ACT" / "trigger").write_text("mmc0")
    boot.mkdir()
    return Layout(root, boot)


def mode_owner(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def every_file(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]


def assert_no_secret(folder: Path, *secrets: str) -> None:
    for p in every_file(folder):
        data = p.read_bytes()
        for s in secrets:
            assert s.encode() not in data, p


def test_a_good_file_is_applied_once(layout, tmp_path):
    (layout.boot / "callgate.toml").write_text(GOOD)
    console = tmp_path / "console"
    out = provision(layout, console=console, clock=lambda: 1.8e9)
    assert out.state == "applied", out.lines
    etc = layout.root / "etc" / "callgate"
    assert mode_owner(etc) == (0o750, ROOT_UID, GID)
    assert mode_owner(etc / "callgate.toml") == (0o640, ROOT_UID, GID)
    token = etc / "crm-auth-token.secret"
    assert mode_owner(token) == (0o600, UID, GID)
    assert token.read_text() == TOKEN + "\n"
    assert (etc / "writeback-auth-token.secret").read_text() == WB_TOKEN + "\n"
    assert sorted(p.name for p in etc.iterdir()) == [
        "callgate.toml", "crm-auth-token.secret", "writeback-auth-token.secret"]
    config = tomllib.loads((etc / "callgate.toml").read_text())
    assert config["crm"]["auth"] == {"kind": "bearer",
                                     "token_file": "/etc/callgate/crm-auth-token.secret"}
    assert config["writeback"]["auth"]["token_file"] == "/etc/callgate/writeback-auth-token.secret"
    assert config["crm"]["base_url"] == "https://crm.example.com"
    assert WB_TOKEN not in (etc / "callgate.toml").read_text()
    assert TOKEN not in (etc / "callgate.toml").read_text()
    # the boot partition: applied copy with blanks, the technician's comment kept, no secret
    assert not (layout.boot / "callgate.toml").exists()
    applied = (layout.boot / "callgate.toml.applied").read_text()
    assert applied.startswith("# the technician's file")
    assert tomllib.loads(applied)["crm"]["auth"]["token"] == ""
    assert_no_secret(layout.boot, TOKEN, WB_TOKEN)
    log = (layout.boot / "callgate-provision.log").read_text()
    assert "applied callgate.toml" in log and "2 secrets moved to" in log
    # [system]: the time zone as timedatectl leaves it, overlayroot off by default
    assert os.readlink(layout.root / "etc" / "localtime") == "/usr/share/zoneinfo/Europe/Paris"
    assert (layout.root / "etc" / "timezone").read_text() == "Europe/Paris\n"
    assert 'overlayroot=""' in (layout.root / "etc" / "overlayroot.local.conf").read_text()
    # the web app's key, and the setup code shown on the console only
    state = layout.root / "var" / "lib" / "callgate"
    assert mode_owner(state) == (0o700, UID, GID)
    assert mode_owner(state / "web-secret.key") == (0o600, UID, GID)
    assert mode_owner(state / "web-setup.code") == (0o600, UID, GID)
    code = re.search(r"setup code: ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})",
                     console.read_text()).group(1)
    assert code not in log and code not in (state / "web-setup.code").read_text()
    assert_no_secret(layout.root, code)
    assert_no_secret(layout.boot, code)
    assert (layout.root / "sys/class/leds/ACT/trigger").read_text() == "mmc0"

    # applied once: the next boot finds nothing to do and changes nothing
    before = {p: p.read_bytes() for p in every_file(layout.root) + every_file(layout.boot)}
    again = provision(layout, console=console)
    assert again.state == "nothing"
    assert {p: p.read_bytes() for p in every_file(layout.root) + every_file(layout.boot)} \
        == before


@pytest.mark.parametrize("bad, reason", [
    (GOOD.replace('kind = "hubspot"', 'kind = "hubspot"\nbase_ulr = "x"'),
     "crm.base_ulr: unknown key"),
    (GOOD.replace('timezone = "Europe/Paris"', 'timezone = "Europe/Pariss"'),
     "system.timezone: 'Europe/Pariss' is not a time zone"),
    (GOOD.replace("[system]", "[system]\nread_only_root = \"yes\""),
     "system.read_only_root: expected true or false"),
    (GOOD.replace(f'token = "{TOKEN}"', f'token = "{TOKEN}"\ntoken_file = "/x"', 1),
     "crm.auth.token: give token or token_file, not both"),
    (GOOD.replace("[writeback]", "[writeback"), "callgate.toml: not valid TOML"),
    (GOOD + "\n[mystery]\n", "mystery: unknown key"),
])
def test_a_bad_file_applies_nothing_and_says_why(layout, tmp_path, bad, reason):
    (layout.boot / "callgate.toml").write_text(GOOD)
    assert provision(layout, console=tmp_path / "console").state == "applied"
    before = {p: p.read_bytes() for p in every_file(layout.root / "etc")}
    links = os.readlink(layout.root / "etc" / "localtime")
    (layout.boot / "callgate.toml").write_text(bad.replace(TOKEN, "NEW-" + TOKEN))
    out = provision(layout, console=tmp_path / "console")
    assert out.state == "refused"
    assert {p: p.read_bytes() for p in every_file(layout.root / "etc")} == before
    assert os.readlink(layout.root / "etc" / "localtime") == links
    assert [p.name for p in (layout.root / "etc" / "callgate").iterdir()
            if p.name.startswith(".")] == []                  # no staging left behind
    assert (layout.boot / "callgate.toml").exists()           # left for the technician to fix
    log = (layout.boot / "callgate-provision.log").read_text().splitlines()
    refused = [ln for ln in log if "refused callgate.toml" in ln]
    assert len(refused) == 1 and reason in refused[0], log
    assert "nothing was applied" in log[-1]
    assert "NEW-" + TOKEN not in "\n".join(log)
    assert (layout.root / "sys/class/leds/ACT/trigger").read_text() == "timer"
    assert (layout.root / "var/lib/callgate/provision.json").read_text().count('"refused"') == 1


def test_a_new_file_later_is_applied_again(layout, tmp_path):
    (layout.boot / "callgate.toml").write_text(GOOD)
    provision(layout, console=tmp_path / "console")
    (layout.boot / "callgate.toml").write_text(
        GOOD.replace(TOKEN, "rotated-" + TOKEN).replace("Europe/Paris", "America/Chicago"))
    out = provision(layout, console=tmp_path / "console")
    assert out.state == "applied", out.lines
    etc = layout.root / "etc" / "callgate"
    assert (etc / "crm-auth-token.secret").read_text() == "rotated-" + TOKEN + "\n"
    assert mode_owner(etc / "crm-auth-token.secret") == (0o600, UID, GID)
    assert os.readlink(layout.root / "etc" / "localtime").endswith("America/Chicago")
    assert not (layout.boot / "callgate.toml").exists()
    assert_no_secret(layout.boot, TOKEN, "rotated-" + TOKEN)
    assert (layout.boot / "callgate-provision.log").read_text().count("applied callgate.toml") == 2


def test_read_only_root_switches_on_overlayroot_for_the_root_only(layout, tmp_path):
    (layout.boot / "callgate.toml").write_text(
        GOOD.replace("[system]", "[system]\nread_only_root = true"))
    assert provision(layout, console=tmp_path / "c").state == "applied"
    conf = (layout.root / "etc" / "overlayroot.local.conf").read_text()
    assert re.search(r'^overlayroot="tmpfs:recurse=0"$', conf, re.M)


def test_customers_csv_is_imported_and_removed(layout, tmp_path):
    from callgate.crm.directory import Directory

    (layout.boot / "callgate.toml").write_text('[crm]\nkind = "directory"\n'
                                               'directory = "/var/lib/callgate/dir.sqlite"\n')
    (layout.boot / "customers.csv").write_text("id,name,phones,pin\n"
                                               "1001,Ada Lovelace,+15551234567,2468\n"
                                               "1002,Alan Turing,+15557654321,1357\n")
    out = provision(layout, console=tmp_path / "c")
    assert out.state == "applied", out.lines
    db = layout.root / "var" / "lib" / "callgate" / "dir.sqlite"
    assert mode_owner(db) == (0o600, UID, GID)
    with Directory(db) as d:
        assert sorted(c["id"] for c in d.customers()) == ["1001", "1002"]
    assert not (layout.boot / "customers.csv").exists()
    assert "imported 2 customers" in (layout.boot / "callgate-provision.log").read_text()


def test_a_bad_customers_csv_applies_nothing(layout, tmp_path):
    (layout.boot / "callgate.toml").write_text('[crm]\nkind = "directory"\n')
    (layout.boot / "customers.csv").write_text("id,name\nnot-digits,Someone\n")
    out = provision(layout, console=tmp_path / "c")
    assert out.state == "refused"
    assert not (layout.root / "etc" / "callgate" / "callgate.toml").exists()
    assert (layout.boot / "customers.csv").exists() and (layout.boot / "callgate.toml").exists()
    log = (layout.boot / "callgate-provision.log").read_text()
    assert "refused callgate.toml: customers.csv:" in log


def test_without_the_callgate_user_nothing_is_applied(layout, tmp_path):
    (layout.root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (layout.boot / "callgate.toml").write_text(GOOD)
    out = provision(layout, console=tmp_path / "c")
    assert out.state == "refused" and "no user 'callgate'" in out.lines[0]
    assert not (layout.root / "etc" / "callgate").exists()


def test_the_cli_exits_1_on_a_refused_file_and_prints_no_secret(layout, tmp_path):
    (layout.boot / "callgate.toml").write_text(GOOD.replace("Europe/Paris", "Mars/Olympus"))
    proc = subprocess.run([sys.executable, "-m", "callgate.cli", "provision", "--root",
                           str(layout.root), "--boot", str(layout.boot), "--console",
                           str(tmp_path / "c")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "refused callgate.toml: system.timezone" in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_check_config_knows_the_system_table(tmp_path):
    from callgate.cli import check_config
    from callgate.config import ConfigError

    good = tmp_path / "good.toml"
    good.write_text('[system]\ntimezone = "UTC"\nread_only_root = true\nstatus_led = "led0"\n')
    check_config(str(good))
    bad = tmp_path / "bad.toml"
    bad.write_text('[system]\nread_only = true\n')
    with pytest.raises(ConfigError, match="system.read_only: unknown key"):
        check_config(str(bad))


def test_with_the_read_only_root_on_the_setup_also_lands_below_the_overlay(layout, tmp_path):
    """overlayroot: / is an overlay in RAM, the real root read-only at /media/root-ro.
    What is applied must reach the real root too, opened for the time of the writes."""
    lower = layout.root / "media" / "root-ro"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text((layout.root / "etc" / "passwd").read_text())
    mounts = tmp_path / "mounts"
    mounts.write_text("overlayroot / overlay rw,relatime,lowerdir=/media/root-ro 0 0\n"
                      "/dev/mmcblk0p2 /media/root-ro ext4 ro,relatime 0 0\n"
                      "/dev/mmcblk0p3 /var/lib/callgate ext4 rw,noatime 0 0\n")
    calls = []

    def fake_remount(path, writable):
        calls.append((path, writable))

    (layout.boot / "callgate.toml").write_text(
        GOOD.replace("[system]", "[system]\nread_only_root = true"))
    out = provision(layout, console=tmp_path / "c", mounts=mounts, remount=fake_remount)
    assert out.state == "applied", out.lines
    assert calls == [(lower, True), (lower, False)]
    for root in (layout.root, lower):
        etc = root / "etc" / "callgate"
        assert (etc / "crm-auth-token.secret").read_text() == TOKEN + "\n"
        assert mode_owner(etc / "crm-auth-token.secret") == (0o600, UID, GID)
        assert mode_owner(etc / "callgate.toml") == (0o640, ROOT_UID, GID)
        assert os.readlink(root / "etc" / "localtime").endswith("Europe/Paris")
        assert "recurse=0" in (root / "etc" / "overlayroot.local.conf").read_text()
    # an ordinary root: nothing is remounted
    calls.clear()
    mounts.write_text("/dev/mmcblk0p2 / ext4 rw 0 0\n")
    (layout.boot / "callgate.toml").write_text(GOOD)
    assert provision(layout, console=tmp_path / "c", mounts=mounts,
                     remount=fake_remount).state == "applied"
    assert calls == []


def test_a_provisioning_file_can_be_checked_before_it_goes_on_the_card(tmp_path):
    good = tmp_path / "callgate.toml"
    good.write_text(GOOD)
    cmd = [sys.executable, "-m", "callgate.cli", "provision", "--check"]
    proc = subprocess.run([*cmd, str(good)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ok (2 secrets to move: crm.auth.token, writeback.auth.token)" in proc.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('kind = "bearer"', 'kind = "bearer"\nschem = "x"', 1))
    proc = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "crm.auth.schem: unknown key" in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr


def test_a_device_booted_without_a_file_still_gets_its_first_setup_code(layout, tmp_path):
    console = tmp_path / "console"
    out = provision(layout, console=console)
    assert out.state == "first-run" and out.setup_code
    state = layout.root / "var" / "lib" / "callgate"
    assert mode_owner(state / "web-secret.key") == (0o600, UID, GID)
    assert (state / "web-setup.code").exists()
    assert re.search(r"setup code: [A-Z2-9]{4}-", console.read_text())
    assert not (layout.root / "etc" / "callgate").exists()      # no config is made up
    console.write_text("")
    assert provision(layout, console=console).state == "nothing"   # once
    assert console.read_text() == ""


@pytest.mark.parametrize("text, reason", [
    ('[crm]\nkind = "hubspot"\nbase_url = "https://crm.example.com"\nauth = "TOPSECRET-1"\n',
     "crm.auth: expected a table"),
    (GOOD.replace('"https://crm.example.com"', '"https://ops:TOPSECRET-2@crm.example.com"', 1),
     "crm.base_url: a password in the URL"),
    ('[crm]\nkind = "directory"\n[writeback]\nurl = "https://crm.example.com/notes"\n'
     'auth = ["TOPSECRET-3"]\n', "writeback.auth: expected a table"),
    (GOOD.replace('kind = "hubspot"', 'kind = "hubspot"\ntoken = "TOPSECRET-4"'),
     "crm.token: unknown key"),
])
def test_a_secret_in_an_unexpected_place_is_refused_without_being_quoted(layout, tmp_path,
                                                                          text, reason):
    """check-config's messages quote a bad value ("expected a table, got '...'"): a secret
    the technician put in the wrong place must not reach the log on the boot partition."""
    (layout.boot / "callgate.toml").write_text(text)
    out = provision(layout, console=tmp_path / "c")
    assert out.state == "refused" and reason in out.lines[0], out.lines
    (layout.boot / "callgate.toml").unlink()          # the technician's own file
    assert_no_secret(layout.boot, "TOPSECRET")
    assert_no_secret(layout.root, "TOPSECRET")
    assert "TOPSECRET" not in "\n".join(out.lines)


def test_the_secrets_of_telemetry_and_metrics_are_found_and_moved_to_files():
    """[telemetry.mqtt] keeps its password in password_file and [web.metrics] its token in
    token_file (issue 14): an inline one in a provisioning file is moved like an auth's."""
    from callgate.appliance.provision import find_secrets, with_files

    data = tomllib.loads(GOOD + '[telemetry.mqtt]\nhost = "mq"\nusername = "u"\n'
                                'password = "MQTT-SECRET"\n'
                                '[web.metrics]\nenabled = true\ntoken = "METRICS-SECRET-0123"\n')
    found = {s.name: s for s in find_secrets(data)}
    assert sorted(found) == ["crm.auth.token", "telemetry.mqtt.password", "web.metrics.token",
                             "writeback.auth.token"]
    device = with_files(data, list(found.values()), lambda s: str(s.device_file))
    assert device["telemetry"]["mqtt"] == {
        "host": "mq", "username": "u",
        "password_file": "/etc/callgate/telemetry-mqtt-password.secret"}
    assert device["web"]["metrics"]["token_file"] == "/etc/callgate/web-metrics-token.secret"
    assert "SECRET" not in repr(device)


def test_strings_under_secret_like_keys_are_kept_out_of_messages_wherever_they_are():
    from callgate.appliance.provision import _scrub, suspects

    data = tomllib.loads('[crm]\nsecret = "misplaced-1"\n[crm.auth]\nkind = "oauth2"\n'
                         'token_url = "https://crm.example.com/token"\n'
                         'token_file = "/etc/callgate/t.secret"\n'
                         '[[service]]\nname = "s"\nadmin_password = "misplaced-2"\n'
                         'key = ["misplaced-3"]\n')
    assert sorted(suspects(data)) == ["misplaced-1", "misplaced-2", "misplaced-3"]
    said = _scrub("service.s.key: expected a string, got ['misplaced-3']", suspects(data))
    assert said == "service.s.key: expected a string, got ['***']"


def test_links_left_in_the_data_partition_are_never_written_through(layout, tmp_path):
    """/var/lib/callgate belongs to the callgate user; provisioning runs as root before any
    callgate process. A symbolic link left there in place of a file root writes must not
    make root write (or chown) the file it points at."""
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    state = layout.root / "var" / "lib" / "callgate"
    state.mkdir(parents=True)
    (state / ".provision.json.new").symlink_to(victim)
    (state / f".web-setup.code.{os.getpid()}").symlink_to(victim)
    (layout.boot / "callgate.toml").write_text(GOOD)
    out = provision(layout, console=tmp_path / "c")
    assert out.state == "applied", out.lines
    assert victim.read_text() == "root's file\n"
    assert (state / "web-setup.code").read_text().startswith("scrypt$")
    assert '"applied"' in (state / "provision.json").read_text()
    # the directory's database as a link: refused, the link's target untouched
    (state / "dir.sqlite").symlink_to(victim)
    (layout.boot / "callgate.toml").write_text('[crm]\nkind = "directory"\n'
                                               'directory = "/var/lib/callgate/dir.sqlite"\n')
    (layout.boot / "customers.csv").write_text("id,name,phones,pin\n1001,Ada,+15551234567,2468\n")
    out = provision(layout, console=tmp_path / "c")
    assert out.state == "refused" and "dir.sqlite is a symbolic link" in out.lines[0]
    assert victim.read_text() == "root's file\n"


def test_a_damaged_web_users_file_does_not_stop_the_setup(layout, tmp_path):
    """A card's damaged web.sqlite: the setup is still applied (and the boot copy retired,
    its secrets blanked); only the setup code is not made, and the log says why."""
    state = layout.root / "var" / "lib" / "callgate"
    state.mkdir(parents=True)
    (state / "web.sqlite").write_bytes(b"not a database at all " * 200)
    (layout.boot / "callgate.toml").write_text(GOOD)
    out = provision(layout, console=tmp_path / "c")
    assert out.state == "applied", out.lines
    assert any("web setup code not made: /var/lib/callgate/web.sqlite cannot be read" in ln
               for ln in out.lines), out.lines
    assert not (layout.boot / "callgate.toml").exists()
    assert_no_secret(layout.boot, TOKEN, WB_TOKEN)
