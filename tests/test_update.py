"""Update bundles and `callgate update`: hash checks, the switch, and the roll-back when the
new release does not reach READY (a fake systemctl speaking the sd_notify protocol)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from callgate.appliance.bundle import BundleError, extract
from callgate.appliance.update import Install, UpdateError, Updater
from fake_release import write_wheel

ROOT = Path(__file__).resolve().parent.parent
FAKE_SYSTEMCTL = Path(__file__).resolve().parent / "fake_systemctl.py"
UNITS = ("callgate.service", "callgate-web.service")


def bundle(tmp: Path, version: str, starts: bool = True) -> Path:
    """A bundle made by tools/build-bundle from a fake release's wheel."""
    wheels = tmp / f"wheels-{version}"
    write_wheel(wheels, version, starts)
    out = tmp / f"callgate-{version}.bundle"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "build-bundle"), "-o", str(out),
                           "--wheels", str(wheels)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"callgate {version}, 1 wheels" in proc.stdout
    return out


@pytest.fixture()
def device(tmp_path):
    """A prefix for the releases, a fake systemctl running the real unit files, and an
    updater as `callgate update` builds it; every started service is stopped at the end."""
    prefix = tmp_path / "opt"
    prefix.mkdir()
    state = tmp_path / "state"
    systemctl = (sys.executable, str(FAKE_SYSTEMCTL), "--state", str(state), "--units",
                 str(ROOT / "systemd"), "--prefix", str(prefix))
    said: list[str] = []
    updater = Updater(Install(prefix), systemctl=systemctl, units=UNITS,
                      python=sys.executable, say=said.append)
    yield updater, state, said
    for unit in UNITS:
        subprocess.run([*systemctl, "stop", unit], timeout=120)


def running(state: Path, unit: str) -> str:
    return (state / f"{unit}.status").read_text()


def test_update_switches_and_a_release_that_does_not_start_is_rolled_back(tmp_path, device):
    updater, state, said = device
    inst = updater.install
    assert updater.update(bundle(tmp_path, "9.1.0")) == "9.1.0"
    assert os.readlink(inst.current) == "releases/9.1.0"            # relative
    assert running(state, "callgate.service") == "fake release 9.1.0"
    first_pid = (state / "callgate.service.pid").read_text()

    assert updater.update(bundle(tmp_path, "9.2.0")) == "9.2.0"
    assert os.readlink(inst.current) == "releases/9.2.0"
    for unit in UNITS:
        assert running(state, unit) == "fake release 9.2.0"
    assert (state / "callgate.service.pid").read_text() != first_pid
    assert sorted(p.name for p in inst.releases.iterdir()) == ["9.1.0", "9.2.0"]
    got = subprocess.run([str(inst.current / "bin" / "callgate"), "--version"],
                         capture_output=True, text=True, timeout=60)
    assert got.stdout.strip() == "callgate 9.2.0"

    with pytest.raises(UpdateError) as err:
        updater.update(bundle(tmp_path, "9.3.0", starts=False))
    assert "9.3.0 did not start (callgate.service: Job for callgate.service failed" in str(err.value)
    assert str(err.value).endswith("rolled back to 9.2.0")
    assert os.readlink(inst.current) == "releases/9.2.0"
    assert not (inst.releases / "9.3.0").exists()
    for unit in UNITS:
        assert running(state, unit) == "fake release 9.2.0"
        active = subprocess.run([*updater.systemctl, "is-active", unit], capture_output=True,
                                text=True, timeout=60)
        assert active.stdout.strip() == "active"
    assert any("rolling back to 9.2.0" in line for line in said)

    # the next good one goes on, and only it and the one before are kept
    assert updater.update(bundle(tmp_path, "9.4.0")) == "9.4.0"
    assert sorted(p.name for p in inst.releases.iterdir()) == ["9.2.0", "9.4.0"]


def test_a_damaged_bundle_installs_nothing(tmp_path, device):
    updater, state, _ = device
    good = bundle(tmp_path, "9.1.0")
    damaged = tmp_path / "damaged.bundle"
    with tarfile.open(good) as src, tarfile.open(damaged, "w") as out:
        for member in src:
            data = src.extractfile(member).read()
            if member.name.endswith(".whl"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            import io
            out.addfile(member, io.BytesIO(data))
    with pytest.raises(UpdateError, match=r"callgate-9\.1\.0-py3-none-any\.whl: does not match "
                                          r"its sha256"):
        updater.update(damaged)
    assert not updater.install.current.exists()
    assert list(updater.install.releases.iterdir()) == []
    assert not (state / "callgate.service.pid").exists()


def _retar(src: Path, out: Path, change) -> Path:
    import io
    with tarfile.open(src) as a, tarfile.open(out, "w") as b:
        for member in a:
            data = a.extractfile(member).read()
            for m, d in change(member, data):
                b.addfile(m, io.BytesIO(d))
    return out


def test_extract_refuses_extra_missing_and_escaping_members(tmp_path):
    good = bundle(tmp_path, "9.1.0")

    def extra(member, data):
        yield member, data
        if member.name == "manifest.json":
            evil = tarfile.TarInfo("data/hw/../../../etc/passwd")
            evil.size = 3
            yield evil, b"x:0"

    def drop_prompt(member, data):
        if not member.name.startswith("data/prompts_wav/en/"):
            yield member, data

    with pytest.raises(BundleError, match="a path outside the bundle"):
        extract(_retar(good, tmp_path / "a.bundle", extra), tmp_path / "a")
    with pytest.raises(BundleError, match="in the manifest but not in the bundle"):
        extract(_retar(good, tmp_path / "b.bundle", drop_prompt), tmp_path / "b")
    m = extract(good, tmp_path / "c")
    assert m.version == "9.1.0"
    assert (tmp_path / "c" / "data" / "prompts_wav" / "en").is_dir()
    manifest = json.loads(tarfile.open(good).extractfile("manifest.json").read())
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())


def test_the_installed_release_has_its_data_inside(tmp_path, device):
    updater, _, _ = device
    updater.update(bundle(tmp_path, "9.1.0"))
    release = updater.install.releases / "9.1.0"
    assert (release / "prompts_wav" / "en").is_dir() and (release / "hw").is_dir()
    assert (release / "pyvenv.cfg").is_file()


def test_the_same_version_again_is_refused(tmp_path, device):
    updater, _, _ = device
    updater.update(bundle(tmp_path, "9.1.0"))
    with pytest.raises(UpdateError, match="9.1.0 is the release running now"):
        updater.update(tmp_path / "callgate-9.1.0.bundle")


def test_the_cli_reports_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "callgate.cli", "update",
                           str(tmp_path / "missing.bundle"), "--prefix", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("callgate update: ")
    assert "missing.bundle: not a bundle" in proc.stderr and "Traceback" not in proc.stderr


def test_version_flag():
    from callgate import __version__
    proc = subprocess.run([sys.executable, "-m", "callgate.cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == f"callgate {__version__}"


def test_two_updates_at_once_are_refused(tmp_path, device):
    import fcntl

    updater, _, _ = device
    good = bundle(tmp_path, "9.1.0")
    with open(updater.install.prefix / ".update.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(UpdateError, match="another update is running"):
            updater.update(good)
    assert not updater.install.current.exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                                  tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.DIRTYPE])
def test_extract_refuses_links_devices_and_folders_even_when_listed(tmp_path, kind):
    """A member named in the manifest but not a plain file (a symlink or hard link to
    /etc/shadow, a device node) is refused before anything is written through it."""
    good = bundle(tmp_path, "9.1.0")

    def swap(member, data):
        if member.name.startswith("data/hw/") and not getattr(swap, "done", False):
            swap.done = True
            odd = tarfile.TarInfo(member.name)
            odd.type, odd.linkname = kind, "/etc/shadow"
            odd.devmajor, odd.devminor = 1, 3
            yield odd, b""
        else:
            yield member, data

    into = tmp_path / "into"
    with pytest.raises(BundleError, match="not a plain file"):
        extract(_retar(good, tmp_path / "odd.bundle", swap), into)
    assert not any(p.is_symlink() or not (p.is_file() or p.is_dir())
                   for p in into.rglob("*")) if into.exists() else True


def test_extract_refuses_a_member_given_twice(tmp_path):
    good = bundle(tmp_path, "9.1.0")

    def twice(member, data):
        yield member, data
        if member.name.startswith("data/hw/") and not getattr(twice, "done", False):
            twice.done = True
            again = tarfile.TarInfo(member.name.replace("data/hw/", "data/hw/./", 1))
            again.size = len(data)
            yield again, data

    with pytest.raises(BundleError, match="not in the manifest"):
        extract(_retar(good, tmp_path / "twice.bundle", twice), tmp_path / "t")
