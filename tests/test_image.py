"""tools/build-image on a fake Raspberry Pi OS Lite image (tests/raspios_fake.py).

One build for the module (about two minutes: the aarch64 wheels, the venv, xz),
then the result is read back with sfdisk, debugfs and mtools, never mounted:
the partition table, clean file systems, every file added with its owner and
mode, the unit symlinks, fstab and cmdline, no secret, and the venv itself run
under qemu-user on an arm64 Debian sysroot, giving the same events as here.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import mmap
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import raspios_fake as fake

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "build-image"
IMAGE = ROOT / "tools" / "image"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "callgate"
SECRET = "cg-test-secret-7f3a91c2e4b8"          # planted where a careless build would pick it up
CLI = "import sys; from callgate.cli import main; sys.exit(main(sys.argv[1:]))"
VERSION_RE = re.compile(r"callgate (\S+) on ")


def build(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          env=env or os.environ.copy())


class Ext4:
    """Read-only looks into an ext4 file with debugfs (the test's own, not the tool's)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def cmd(self, request: str) -> str:
        return subprocess.run(["debugfs", "-R", request, str(self.path)], capture_output=True,
                              text=True, check=True).stdout

    def stat(self, path: str) -> dict | None:
        out = self.cmd(f'stat "{path}"')
        m = re.search(r"Type: (\w+)\s+Mode:\s+(\d+)", out)
        if not m:
            return None
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", out)
        link = re.search(r'Fast link dest: "(.*)"', out)
        return {"type": m.group(1), "mode": int(m.group(2), 8), "uid": int(owner.group(1)),
                "gid": int(owner.group(2)), "link": link.group(1) if link else None}

    def cat(self, path: str) -> str:
        return self.cmd(f'cat "{path}"')

    def ls(self, path: str) -> list[str]:
        out = self.cmd(f'ls -p "{path}"')
        names = [line.split("/")[5] for line in out.splitlines() if line.count("/") >= 6]
        return sorted(n for n in names if n not in (".", ".."))

    def resolve(self, path: str) -> str:
        """Follow symlinks in every component, as the device's kernel will."""
        parts, done, hops = [p for p in path.split("/") if p], "", 0
        while parts:
            done = f"{done}/{parts.pop(0)}"
            info = self.stat(done)
            if info and info["type"] == "symlink":
                hops += 1
                assert hops < 10, f"symlink loop at {done}"
                target = info["link"] or self.cat(done)
                base = "" if target.startswith("/") else done.rsplit("/", 1)[0]
                parts = [p for p in f"{base}/{target}".split("/") if p] + parts
                done = ""
                norm = []
                for p in parts:
                    if p == "..":
                        norm and norm.pop()
                    elif p != ".":
                        norm.append(p)
                parts = norm
        return done or "/"


def sparse_copy(src, dst) -> None:
    offset = 0
    for block in iter(lambda: src.read(1 << 20), b""):
        if block.count(0) != len(block):
            dst.seek(offset)
            dst.write(block)
        offset += len(block)
    dst.truncate(offset)


class Built:
    """The decompressed output image and its partitions, each extracted to a file."""

    def __init__(self, out: Path, source: Path, stdout: str, work: Path) -> None:
        self.out, self.source, self.stdout = out, source, stdout
        self.raw = work / "out.img"
        with subprocess.Popen(["xz", "-dc", "-T0", str(out)], stdout=subprocess.PIPE) as xz, \
                open(self.raw, "wb") as dst:
            sparse_copy(xz.stdout, dst)        # mostly free space: holes, not 500 MB written
        assert xz.returncode == 0
        table = json.loads(subprocess.run(["sfdisk", "--json", str(self.raw)], capture_output=True,
                                          text=True, check=True).stdout)["partitiontable"]
        self.disk_id = table["id"]
        self.parts = table["partitions"]
        files = []
        for n, p in enumerate(self.parts, 1):
            f = work / f"p{n}"
            subprocess.run(["dd", f"if={self.raw}", f"of={f}", "bs=512", f"skip={p['start']}",
                            f"count={p['size']}", "conv=sparse", "status=none"], check=True)
            files.append(f)
        self.boot_file = files[0]
        self.root = Ext4(files[1])
        self.data = Ext4(files[2]) if len(files) > 2 else None
        self.version = VERSION_RE.search(stdout).group(1)
        self.release = f"/opt/callgate/releases/{self.version}"
        passwd = self.root.cat("/etc/passwd")
        cg = re.search(r"^callgate:x:(\d+):(\d+):", passwd, re.M)
        self.uid, self.gid = int(cg.group(1)), int(cg.group(2))

    def boot(self, name: str) -> str | None:
        proc = subprocess.run(["mtype", "-i", str(self.boot_file), f"::{name}"], capture_output=True,
                              env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
        return proc.stdout.decode() if proc.returncode == 0 else None


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    work = tmp_path_factory.mktemp("image")
    source = fake.make_image(work / "raspios.img", work / "fake")
    subprocess.run(["xz", "-T0", "-0", "-k", str(source)], check=True)
    wheelhouse = work / "wheelhouse"
    cached = CACHE / "wheelhouse"
    if cached.is_dir():
        shutil.copytree(cached, wheelhouse)
    wheelhouse.mkdir(exist_ok=True)
    # a credential beside the wheels and one in the environment: neither may reach the image
    (wheelhouse / "pip-credentials.secret").write_text(f"token={SECRET}\n")
    env = {**os.environ, "CALLGATE_CRM_TOKEN": SECRET}
    out = work / "out" / "callgate.img.xz"
    result = build(str(source) + ".xz", "-o", str(out), "--wheelhouse", str(wheelhouse),
                   "--xz-level", "0", "--sha256", hashlib.sha256(Path(str(source) + ".xz")
                                                                 .read_bytes()).hexdigest(), env=env)
    assert result.returncode == 0, result.stderr
    cached.mkdir(parents=True, exist_ok=True)
    for whl in wheelhouse.glob("*.whl"):
        if not (cached / whl.name).exists():
            shutil.copy2(whl, cached / whl.name)
    return Built(out, source, result.stdout, work)


# ------------------------------------------------------------------ the card's layout


def test_partition_table_keeps_the_disk_id_and_adds_cgdata_last(built):
    src = json.loads(subprocess.run(["sfdisk", "--json", str(built.source)], capture_output=True,
                                    text=True, check=True).stdout)["partitiontable"]
    assert built.disk_id == src["id"] == fake.DISK_ID
    boot, root, data = built.parts
    assert (boot["start"], boot["size"], boot["type"]) == (src["partitions"][0]["start"],
                                                          src["partitions"][0]["size"], "c")
    assert root["start"] == src["partitions"][1]["start"] and root["type"] == "83"
    assert root["size"] > src["partitions"][1]["size"]          # 96 MiB could not hold the venv
    assert data["type"] == "83" and data["start"] >= root["start"] + root["size"]
    assert data["start"] % 8192 == 0
    # the root keeps room for the next release, which `callgate update` puts beside this one
    head = subprocess.run(["dumpe2fs", "-h", str(built.root.path)], capture_output=True,
                          text=True, check=True).stdout
    free = int(re.search(r"Free blocks:\s+(\d+)", head).group(1)) * \
        int(re.search(r"Block size:\s+(\d+)", head).group(1))
    added = int(re.search(r"root \+(\d+) MiB", built.stdout).group(1))
    assert added > 100 and free >= added * 1024 * 1024, (free, added)
    assert (data["start"] + data["size"]) * 512 == built.raw.stat().st_size
    label = subprocess.run(["dumpe2fs", "-h", str(built.data.path)], capture_output=True,
                           text=True).stdout
    assert re.search(r"Filesystem volume name:\s+cgdata$", label, re.M)


def test_every_ext4_partition_is_clean(built):
    for fs in (built.root, built.data):
        proc = subprocess.run(["e2fsck", "-fn", str(fs.path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


def test_the_official_root_is_edited_in_place_not_rebuilt(built):
    root = built.root
    assert root.stat("/usr/bin/su")["mode"] == 0o4755                        # setuid kept
    assert fake.XATTR[1] in root.cmd(f"ea_get /usr/bin/ping {fake.XATTR[0]}")  # xattr kept
    shadow = root.stat("/etc/shadow")
    assert (shadow["mode"] & 0o7777, shadow["uid"], shadow["gid"]) == (0o640, 0, 42)
    assert (root.stat("/home/pi")["uid"], root.stat("/home/pi")["gid"]) == (1000, 1000)
    assert root.stat("/etc/os-release")["type"] == "symlink"
    assert "VERSION_CODENAME=bookworm" in root.cat("/usr/lib/os-release")


# ------------------------------------------------------------------ what the root gains


def test_the_callgate_account_and_its_groups(built):
    root = built.root
    assert built.uid < 1000 and built.uid not in (0, 1, 998, 1000)
    assert re.search(rf"^callgate:x:{built.uid}:{built.gid}:[^:]*:/var/lib/callgate:/usr/sbin/nologin$",
                     root.cat("/etc/passwd"), re.M)
    groups = {line.split(":")[0]: line.split(":") for line in root.cat("/etc/group").splitlines()}
    assert groups["callgate"][2] == str(built.gid)
    for name in ("dialout", "gpio", "audio"):
        assert "callgate" in groups[name][3].split(","), name
    assert groups["dialout"][3].split(",")[0] == "pi"                        # members kept
    assert re.search(r"^callgate:!\*?:", root.cat("/etc/shadow"), re.M)      # no password, locked
    assert root.cat("/etc/shadow").replace(re.search(r"^callgate:.*\n", root.cat("/etc/shadow"),
                                                     re.M).group(0), "") == fake.SHADOW
    sysusers = root.cat("/etc/sysusers.d/callgate.conf")
    assert re.search(rf"^u callgate {built.uid}:{built.gid} ", sysusers, re.M)
    assert {m for m in re.findall(r"^m callgate (\w+)", sysusers, re.M)} == {"dialout", "gpio", "audio"}


def test_every_file_from_tools_image_with_owner_mode_and_content(built):
    root = built.root
    for src in sorted((IMAGE / "rootfs").rglob("*")):
        if src.is_dir():
            continue
        path = "/" + str(src.relative_to(IMAGE / "rootfs"))
        info = root.stat(path)
        assert info is not None, path
        want = 0o755 if os.access(src, os.X_OK) else 0o644
        assert (info["type"], info["mode"] & 0o7777, info["uid"], info["gid"]) == \
            ("regular", want, 0, 0), path
        text = src.read_text().replace("@CALLGATE_UID@", str(built.uid)) \
                              .replace("@CALLGATE_GID@", str(built.gid))
        if "@MODEM_MATCHES@" in text:
            head, tail = text.split("@MODEM_MATCHES@")
            got = root.cat(path)
            assert got.startswith(head) and got.endswith(tail), path
            continue
        assert root.cat(path) == text, path
    assert root.stat("/usr/lib/callgate/grow-data")["mode"] & 0o7777 == 0o755
    for unit in sorted((ROOT / "systemd").glob("*.service")):
        path = f"/etc/systemd/system/{unit.name}"
        info = root.stat(path)
        assert (info["mode"] & 0o7777, info["uid"], info["gid"]) == (0o644, 0, 0), path
        assert root.cat(path) == unit.read_text()
    for path, mode, uid, gid in (("/etc/callgate", 0o750, 0, built.gid),
                                 ("/etc/callgate/lines", 0o750, 0, built.gid),
                                 ("/var/lib/callgate", 0o700, built.uid, built.gid),
                                 ("/var/log/callgate", 0o750, built.uid, built.gid)):
        info = root.stat(path)
        assert (info["type"], info["mode"] & 0o7777, info["uid"], info["gid"]) == \
            ("directory", mode, uid, gid), path


def supported_modems() -> set[tuple[str, str]]:
    """The USB ids the udev rule must give callgate: the modem profiles', else the image's list."""
    from callgate.line.modem import profiles
    if hasattr(profiles, "usb_ids"):
        return {(u.vendor.lower(), u.product.lower()) for u in profiles.usb_ids()}
    return {tuple(line.split()[:2]) for line in (IMAGE / "modem-usb-ids").read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def test_udev_gives_callgate_every_supported_modem_under_a_stable_name(built):
    rules = built.root.cat("/etc/udev/rules.d/60-callgate-modem.rules")
    matched = set(re.findall(r'ATTRS\{idVendor\}=="([0-9a-f]{4})", ATTRS\{idProduct\}=="([0-9a-f]{4})", '
                             r'GOTO="callgate_modem"', rules))
    assert matched == supported_modems() and ("0baf", "0303") in matched      # USR5637
    assert 'GROUP="callgate", MODE="0660", SYMLINK+="callgate-modem%n"' in rules
    assert 'ENV{ID_MM_DEVICE_IGNORE}="1"' in rules
    assert "@" not in rules.replace("%n", "")


def test_the_release_venv_is_written_for_the_target(built):
    root, rel = built.root, built.release
    assert root.stat("/opt/callgate/current")["link"] == f"releases/{built.version}"
    assert root.stat(f"{rel}/bin/python3.11")["link"] == "/usr/bin/python3.11"
    cfg = root.cat(f"{rel}/pyvenv.cfg")
    assert "home = /usr/bin\n" in cfg and "version = 3.11.2\n" in cfg      # from dpkg status
    assert "include-system-site-packages = false" in cfg
    script = root.stat(f"{rel}/bin/callgate")
    assert (script["mode"] & 0o7777, script["uid"], script["gid"]) == (0o755, 0, 0)
    assert root.cat(f"{rel}/bin/callgate").startswith(f"#!{rel}/bin/python3.11\n")
    site = f"{rel}/lib/python3.11/site-packages"
    numpy_so = [n for n in root.ls(f"{site}/numpy/_core") if n.startswith("_multiarray_umath")]
    assert numpy_so and all("aarch64" in n for n in numpy_so), numpy_so
    assert "callgate" in root.ls(site)
    # bytecode made here (same Python 3.11), checked by hash: no cache to write on a read-only /opt
    assert any(n.startswith("cli.cpython-311") for n in root.ls(f"{site}/callgate/__pycache__"))
    for folder in ("hw", "prompts_wav"):          # in the release, as `callgate update` puts them
        assert root.ls(f"{rel}/{folder}") == sorted(p.name for p in (ROOT / folder).iterdir())
        assert root.stat(f"{rel}/lib/python3.11/{folder}")["link"] == f"../../{folder}"
    assert root.ls(f"{rel}/prompts_wav/en") == sorted(
        p.name for p in (ROOT / "prompts_wav" / "en").iterdir())
    info = root.stat(f"{site}/callgate/cli.py")
    assert (info["mode"] & 0o7777, info["uid"], info["gid"]) == (0o644, 0, 0)


def unit_sections(text: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(text)
    return cp


def test_units_enabled_by_their_install_symlinks(built):
    root = built.root
    units = {p.name: p.read_text() for p in (ROOT / "systemd").glob("*.service")}
    units["callgate-grow-data.service"] = (IMAGE / "rootfs/etc/systemd/system/"
                                           "callgate-grow-data.service").read_text()
    checked = 0
    for name, text in units.items():
        install = unit_sections(text)["Install"] if "Install" in unit_sections(text) else {}
        if "@." in name:
            continue                      # templates: one instance per line, from provisioning
        for target in install.get("WantedBy", "").split():
            link = root.stat(f"/etc/systemd/system/{target}.wants/{name}")
            assert link and link["type"] == "symlink", (target, name)
            assert link["link"] == f"/etc/systemd/system/{name}"
            checked += 1
        exec_start = unit_sections(text)["Service"]["ExecStart"].split()[0].lstrip("-@+!")
        assert root.stat(root.resolve(exec_start))["type"] == "regular", (name, exec_start)
    assert checked >= 3
    assert root.stat("/etc/systemd/system/local-fs.target.wants/callgate-grow-data.service")


def test_a_line_that_keeps_failing_reboots_the_device(built):
    root = built.root
    dropin = unit_sections(root.cat("/etc/systemd/system/callgate.service.d/60-callgate-reboot.conf"))
    assert dropin["Unit"]["StartLimitAction"] == "reboot"
    assert int(dropin["Unit"]["StartLimitBurst"]) >= 1 and dropin["Unit"]["StartLimitIntervalSec"]
    assert unit_sections(root.cat("/etc/systemd/system/callgate.service"))["Service"]["Restart"] \
        == "on-failure"
    # the web app failing is no reason to drop a call in progress
    assert root.stat("/etc/systemd/system/callgate-web.service.d") is None


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?", value.strip())
    return float(m.group(1)) * {"ms": 0.001, None: 1, "s": 1, "min": 60, "m": 60, "h": 3600}[m.group(2)]


def test_hardware_watchdog_at_most_15_s_whatever_raspberry_pi_os_ships(built):
    root = built.root
    confs = {}
    for folder in ("/usr/lib/systemd/system.conf.d", "/etc/systemd/system.conf.d"):
        if root.stat(folder):
            for name in root.ls(folder):
                confs[name] = f"{folder}/{name}"         # /etc wins over /usr/lib for a name
    settings = {}
    for name in sorted(confs):                           # later file names override earlier
        cp = unit_sections(root.cat(confs[name]))
        settings.update(cp["Manager"] if "Manager" in cp else {})
    assert "70-rpi-enable-watchdog.conf" in confs        # the fake's 16 s is overridden
    assert 0 < seconds(settings["RuntimeWatchdogSec"]) <= 15
    assert seconds(settings["RebootWatchdogSec"]) > 0
    journal = unit_sections(root.cat("/etc/systemd/journald.conf.d/60-callgate.conf"))["Journal"]
    assert journal["SystemMaxUse"].endswith("M") and int(journal["SystemMaxUse"][:-1]) <= 64
    assert int(journal["RuntimeMaxUse"][:-1]) <= 32


def test_fstab_mounts_cgdata_and_cmdline_loses_the_root_expansion(built):
    fstab = built.root.cat("/etc/fstab")
    assert fstab.startswith(fake.FSTAB)                  # the official lines untouched
    line = [f.split() for f in fstab.splitlines() if "/var/lib/callgate" in f]
    assert len(line) == 1
    spec, mount, kind, options, _, passno = line[0]
    assert spec == f"PARTUUID={fake.DISK_ID[2:]}-03" and mount == "/var/lib/callgate"
    assert kind == "ext4" and passno == "2"
    assert {"noatime", "x-systemd.growfs"} <= set(options.split(","))
    cmdline = built.boot("cmdline.txt")
    assert cmdline.split() == [w for w in fake.CMDLINE.split() if w != "resize"]
    assert "init=/usr/lib/raspberrypi-sys-mods/firstboot" in cmdline.split()
    config = built.boot("config.txt")
    assert config.startswith(fake.CONFIG_TXT.rstrip("\n")) and "\ndtparam=watchdog=on\n" in config


def test_boot_partition_files_for_the_technician(built):
    assert built.boot("callgate.toml.example") == (IMAGE / "boot/callgate.toml.example").read_text()
    assert built.boot("README-callgate.txt") == (IMAGE / "boot/README-callgate.txt").read_text()
    assert built.boot("callgate.toml") is None           # no --config given
    check = subprocess.run([sys.executable, "-c", CLI, "check-config",
                            str(IMAGE / "boot/callgate.toml.example")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_cgdata_is_callgates_and_empty(built):
    top = built.data.stat("/")
    assert (top["mode"] & 0o7777, top["uid"], top["gid"]) == (0o700, built.uid, built.gid)
    assert built.data.ls("/") == ["lost+found"]


def test_no_secret_anywhere_in_the_image(built):
    with open(built.raw, "rb") as fh:       # mapped, not read: the image is most of a GB
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    assert data.find(SECRET.encode()) == -1       # (`in` on an mmap compares single bytes)
    # a PEM private key: the BEGIN line, then a base64 body (cryptography's parser only
    # names the markers, which is no key)
    pem = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n(?:[A-Za-z0-9+/=:, -]*\r?\n)*?"
                     rb"[A-Za-z0-9+/=]{60,}\r?\n")
    at = data.find(b"PRIVATE KEY-----")
    while at != -1:
        begin = data.rfind(b"-----BEGIN", max(0, at - 64), at)
        assert begin == -1 or not pem.match(data, begin), data[begin:begin + 120]
        at = data.find(b"PRIVATE KEY-----", at + 1)
    assert built.root.ls("/etc/callgate") == ["lines"] and built.root.ls("/etc/callgate/lines") == []
    assert SECRET not in built.stdout and SECRET not in built.out.with_name(
        "callgate.rpi-imager-manifest").read_text()


def test_the_lock_covers_every_runtime_dependency():
    """A dependency added to setup.cfg must be locked, or the image's venv would lack it."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    wanted = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", r.strip()).group(0)).lower()
              for r in cfg["options"]["install_requires"].strip().splitlines() if r.strip()}
    lock = (IMAGE / "wheels.lock").read_text().splitlines()
    pinned = {line.split("==")[0] for line in lock if line and not line.startswith("#")}
    assert wanted <= pinned, wanted - pinned
    for line in lock:
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[a-z0-9-]+==\S+( --hash=sha256:[0-9a-f]{64})+", line), line


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def test_outputs_sha256_imager_manifest_and_summary(built):
    digest = hashlib.sha256(built.out.read_bytes()).hexdigest()
    assert built.out.with_name("callgate.img.xz.sha256").read_text() == f"{digest}  callgate.img.xz\n"
    doc = json.loads(built.out.with_name("callgate.rpi-imager-manifest").read_text())
    (entry,) = doc["os_list"]
    for key in ("name", "description", "icon", "url", "extract_size", "extract_sha256",
                "image_download_size", "release_date"):
        assert key in entry, key
    assert entry["init_format"] == "systemd"             # Imager offers Wi-Fi, SSH key, hostname
    assert entry["extract_size"] == built.raw.stat().st_size
    assert entry["extract_sha256"] == file_sha256(built.raw)
    assert entry["image_download_size"] == built.out.stat().st_size
    assert entry["image_download_sha256"] == digest and entry["url"] == "callgate.img.xz"
    assert built.out.with_name(entry["icon"]).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    lines = built.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"sha256 {digest}")
    assert "cmdline: removed resize" in lines[0] and "cgdata" in lines[0]


# ------------------------------------------------------------------ refusals (no build needed)


def test_refuses_a_wrong_sha256_an_unknown_layout_and_a_bad_config(tmp_path, built):
    source = Path(str(built.source) + ".xz")
    out = tmp_path / "x.img.xz"
    wrong = build(str(source), "-o", str(out), "--sha256", "0" * 64)
    assert wrong.returncode == 1 and "sha256" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    again = build(str(built.raw), "-o", str(out))        # our own output has three partitions
    assert again.returncode == 1 and "3 partitions" in again.stderr
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * (1 << 20))
    bad = build(str(junk), "-o", str(out))
    assert bad.returncode == 1 and "partition table" in bad.stderr
    config = tmp_path / "callgate.toml"
    config.write_text('[line]\nbackend = "modem"\nbogus_key = 1\n')
    cfg = build(str(source), "-o", str(out), "--config", str(config))
    assert cfg.returncode == 1 and "bogus_key" in cfg.stderr and "Traceback" not in cfg.stderr
    assert not out.exists()


def test_refuses_a_32_bit_image_and_an_unknown_release(tmp_path):
    armhf = fake.make_image(tmp_path / "armhf.img", tmp_path / "a", python_machine=40)
    proc = build(str(armhf), "-o", str(tmp_path / "a.img.xz"))
    assert proc.returncode == 1 and "not arm64" in proc.stderr, proc.stderr
    old = fake.make_image(tmp_path / "old.img", tmp_path / "b", release="bullseye")
    proc = build(str(old), "-o", str(tmp_path / "b.img.xz"))
    assert proc.returncode == 1 and "'bullseye'" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 2     # the step line, then the one reason


# ------------------------------------------------------------------ the venv runs on arm64


DIAG = """
import json, platform, sys, runpy
from callgate.engine.prompts import default_prompt_root
from callgate.line.hat.board import find_board
import numpy, scipy
print(json.dumps({"prefix": sys.prefix, "machine": platform.machine(), "numpy": numpy.__file__,
                  "prompts": str(default_prompt_root()), "board": str(find_board("xe0092-usb")),
                  "prompts_en": sorted(p.name for p in (default_prompt_root() / "en").iterdir())}),
      file=sys.stderr)
sys.argv = ["/opt/callgate/current/bin/callgate", "decode", "--json", sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def link_or_copy(src: str, dst: str) -> None:
    """Hard links where the cache and the temp folder share a file system (nothing writes them)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def test_the_installed_venv_decodes_under_qemu_like_x86(built, tmp_path):
    sysroot = CACHE / "arm64-sysroot-bookworm"
    subprocess.run([str(ROOT / "tests/helpers/arm64-sysroot"), str(sysroot)], check=True)
    run_root = tmp_path / "sysroot"
    # the sysroot's own files stay cached; this run's /opt comes from the image
    shutil.copytree(sysroot, run_root, symlinks=True, copy_function=link_or_copy)
    (run_root / "opt").mkdir(exist_ok=True)
    subprocess.run(["debugfs", "-R", f'rdump /opt/callgate "{run_root / "opt"}"',
                    str(built.root.path)], check=True, capture_output=True)
    wav = ROOT / "tests/fixtures/sample-call.wav"
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}     # no host OPENBLAS_* for an ARM OpenBLAS
    python = f"{built.release}/bin/python3.11"
    arm = subprocess.run(["qemu-aarch64-static", "-L", str(run_root), "-0", python,
                          str(run_root / "usr/bin/python3.11"), "-c", DIAG, str(wav)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert arm.returncode == 0, arm.stderr[-2000:]
    diag = json.loads(arm.stderr.strip().splitlines()[0])
    lib = f"{built.release}/lib/python3.11"
    assert diag["machine"] == "aarch64" and diag["prefix"] == built.release
    assert diag["numpy"].startswith(f"{lib}/site-packages/numpy/")
    assert diag["prompts"] in (f"{lib}/prompts_wav", f"{built.release}/prompts_wav")
    assert diag["board"] in (f"{lib}/hw/xe0092-usb.toml", f"{built.release}/hw/xe0092-usb.toml")
    assert diag["prompts_en"] == sorted(p.name for p in (ROOT / "prompts_wav/en").iterdir())
    x86 = subprocess.run([sys.executable, "-c", CLI, "decode", "--json", str(wav)],
                         capture_output=True, text=True, check=True)
    events = [json.loads(line) for line in arm.stdout.splitlines()]
    assert events == [json.loads(line) for line in x86.stdout.splitlines()]
    assert {e["event"] for e in events} >= {"callerid", "dtmf"}


# ------------------------------------------------------------------ the image's own units


def verify(unit: Path) -> list[str]:
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, timeout=60)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


def with_true(text: str) -> str:
    """The unit as it stands, its program swapped for one this machine has."""
    return re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}", text, flags=re.M)


def test_grow_data_unit_and_the_reboot_drop_in_pass_systemd_analyze_verify(tmp_path):
    grow = tmp_path / "callgate-grow-data.service"
    grow.write_text(with_true((IMAGE / "rootfs/etc/systemd/system/callgate-grow-data.service")
                              .read_text()))
    assert verify(grow) == []
    line = tmp_path / "callgate.service"
    line.write_text(with_true((ROOT / "systemd/callgate.service").read_text()))
    dropin = tmp_path / "callgate.service.d" / "60-callgate-reboot.conf"
    dropin.parent.mkdir()
    dropin.write_text((IMAGE / "units.d/60-callgate-reboot.conf").read_text())
    assert verify(line) == []
    # the drop-in is read: a bad value in it is reported
    dropin.write_text(dropin.read_text().replace("=reboot", "=rebot"))
    assert any("rebot" in msg for msg in verify(line))
    assert subprocess.run(["sh", "-n", str(IMAGE / "rootfs/usr/lib/callgate/grow-data")]).returncode == 0
