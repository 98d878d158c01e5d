"""First-boot provisioning: `callgate.toml` on the boot partition becomes the device's setup.

The technician writes one file on the card's FAT partition, secrets inline:

    [crm.auth]
    kind = "bearer"
    token = "..."                 # moved to /etc/callgate/crm-auth-token.secret (0600)

At boot `callgate-provision.service` (before callgate and callgate-web) runs
`provision()`. The file is checked by the same rules as `check-config`, with
its secrets already in (staged) files; a file that fails applies nothing: the
reason goes to `callgate-provision.log` on the boot partition, where the
technician looks, the status LED blinks, and the old setup keeps running. A
good file: secrets to 0600 files owned by callgate, `/etc/callgate/callgate.toml`
(0640 root:callgate) naming them by `*_file` keys, [system] applied (time zone,
read-only root), `customers.csv` beside it imported into the directory and
deleted, and the boot copy renamed `callgate.toml.applied` with its secrets
blanked. A new `callgate.toml` later is applied the same way. While the device
has no web admin it also makes a one-time setup code (web/setup.py), shown
once on the console, never in a log.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from ..config import ConfigError, Table, read_toml
from .layout import CONFIG_DIR, Layout, LayoutError
from .system import SystemSettings, apply as apply_system

BOOT_FILE = "callgate.toml"
APPLIED = "callgate.toml.applied"
LOG_FILE = "callgate-provision.log"
CUSTOMERS = "customers.csv"
# inline secrets of an auth table and the key that names their file in the device config
SECRET_KEYS = ("token", "key", "password", "client_secret", "refresh_token")
# tables other than auth tables whose secret lives in a `*_file` ([telemetry.mqtt]
# password_file, [web.metrics] token_file): the inline key provisioning moves
SECRET_TABLES = {("telemetry", "mqtt"): ("password",), ("web", "metrics"): ("token",)}
# keys whose string values are kept out of every message even when misplaced (not
# token_url, header...: their values make the messages that name them useful)
_SECRETISH_KEYS = frozenset(("auth", *SECRET_KEYS))
_SECRETISH_WORDS = ("secret", "password", "passwd")
LED_BLINK = {"trigger": "timer", "delay_on": "100", "delay_off": "100"}


class ProvisionError(Exception):
    """Why a provisioning file was refused; str() is one line without any secret."""


@dataclass(frozen=True)
class Secret:
    """One inline secret: where it sits in the file and its value (never printed)."""

    table: tuple[str, ...]            # e.g. ("crm", "auth"), or ("service", "0", "crm", "auth")
    key: str
    value: str = field(repr=False)

    @property
    def name(self) -> str:
        return ".".join((*self.table, self.key))

    @property
    def device_file(self) -> PurePosixPath:
        return CONFIG_DIR / f"{'-'.join((*self.table, self.key))}.secret"


@dataclass
class Outcome:
    """What a run did: "nothing" (no file), "applied" or "refused", with log lines."""

    state: str
    lines: list[str] = field(default_factory=list)
    setup_code: bool = False


def provision(layout: Layout, console: Path | None = Path("/dev/console"),
              clock: Callable[[], float] = time.time, mounts: Path = Path("/proc/self/mounts"),
              remount: Callable[[Path, bool], None] | None = None) -> Outcome:
    """Apply the boot partition's callgate.toml if there is one; never raises for a bad file.
    `mounts` tells whether the read-only root is on; `remount(path, writable)` opens and
    closes the real root under it (mount -o remount)."""
    source = layout.boot / BOOT_FILE
    if not source.is_file():
        outcome = _first_run(layout, console)
        _log(layout, outcome, clock())
        return outcome
    secrets: list[Secret] = []
    hidden: list[str] = []
    try:
        data = _read(source)
        hidden = suspects(data)
        secrets = find_secrets(data)
        outcome = _apply(layout, source, data, secrets, console,
                         overlay_lower(layout, mounts), remount)
    except (ProvisionError, ConfigError, LayoutError) as err:
        reason = _scrub(str(err).splitlines()[0] if str(err) else type(err).__name__,
                        [*(s.value for s in secrets), *hidden])
        outcome = Outcome("refused", [f"refused {BOOT_FILE}: {reason}",
                                      "nothing was applied; the device keeps its previous "
                                      f"setup. Fix {BOOT_FILE} on the boot partition and "
                                      "restart the device."])
        _blink(layout, reason)
    except OSError as err:
        where = getattr(err, "filename", None) or ""
        outcome = Outcome("refused", [f"could not apply {BOOT_FILE}: {where}: "
                                      f"{err.strerror or type(err).__name__}",
                                      "the device may hold part of it; restart to try again"])
        _blink(layout, "write failed")
    _log(layout, outcome, clock())
    _status(layout, outcome, clock())
    return outcome


def _read(source: Path) -> dict:
    try:
        return read_toml(source)
    except ConfigError as err:
        raise ProvisionError(f"{BOOT_FILE}: {err}") from None


def find_secrets(data: dict) -> list[Secret]:
    """The inline secrets of every auth table ([crm.auth], [writeback.auth], a service
    line's) and of SECRET_TABLES; ProvisionError naming the key (never its value) when one
    is not a usable string or an auth is not a table."""
    found: list[Secret] = []

    def walk(node, path: tuple[str, ...]) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, (*path, str(i)))
            return
        if isinstance(node, str):
            if _url_password(node):
                raise ProvisionError(f"{'.'.join(path)}: a password in the URL; give it "
                                     "in the auth table, which moves it to a 0600 file")
            return
        if not isinstance(node, dict):
            return
        keys = SECRET_KEYS if path and path[-1] == "auth" else SECRET_TABLES.get(path, ())
        if keys:
            for key in keys:
                if key not in node:
                    continue
                name = ".".join((*path, key))
                value = node[key]
                if not isinstance(value, str) or not value.strip():
                    raise ProvisionError(f"{name}: expected the secret as a non-empty string")
                if any(ch in value for ch in "\r\n\0"):
                    raise ProvisionError(f"{name}: the secret holds a line break")
                if f"{key}_file" in node:
                    raise ProvisionError(f"{name}: give {key} or {key}_file, not both")
                found.append(Secret(path, key, value))
        for k, v in node.items():
            if k == "auth" and not isinstance(v, dict):
                # check-config would echo the value ("expected a table, got '...'")
                raise ProvisionError(f"{'.'.join((*path, k))}: expected a table "
                                     "([...auth] with kind and the secret)")
            walk(v, (*path, k))

    walk(data, ())
    return found


def _url_password(text: str) -> bool:
    """https://user:password@host: it would stay in the config and the boot copy."""
    from urllib.parse import urlsplit

    if "://" not in text or "@" not in text:
        return False
    try:
        return urlsplit(text.strip()).password is not None
    except ValueError:
        return False


def suspects(data: dict) -> list[str]:
    """Every string under a key that sounds like a secret, wherever it is (a secret in
    the wrong place is refused by check-config, whose message may quote it)."""
    found: list[str] = []

    def walk(node, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and len(node) >= 4 and not key.endswith("_file") and (
                key.lower() in _SECRETISH_KEYS
                or any(word in key.lower() for word in _SECRETISH_WORDS)):
            found.append(node)

    walk(data, "")
    return found


def with_files(data: dict, secrets: list[Secret], path_of: Callable[[Secret], str]) -> dict:
    """A copy of the config with each inline secret replaced by its `*_file` key."""
    out = copy.deepcopy(data)
    for s in secrets:
        table = _table(out, s.table)
        del table[s.key]
        table[f"{s.key}_file"] = path_of(s)
    return out


def blanked(data: dict, secrets: list[Secret]) -> dict:
    out = copy.deepcopy(data)
    for s in secrets:
        _table(out, s.table)[s.key] = ""
    return out


def _table(data: dict, path: tuple[str, ...]) -> dict:
    node = data
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def check(data: dict, secret_file: Callable[[Secret], str], secrets: list[Secret]) -> SystemSettings:
    """check-config's rules on the config as the device will read it; ConfigError if bad."""
    from ..app import Settings

    table = Table(with_files(data, secrets, secret_file))
    Settings.from_table(table)
    return SystemSettings.from_table(Table(table.data))


def _apply(layout: Layout, source: Path, data: dict, secrets: list[Secret],
           console: Path | None, lower: Layout | None = None,
           remount: Callable[[Path, bool], None] | None = None) -> Outcome:
    uid, gid = layout.account()
    root_uid = layout.account("root")[0]
    _dir(layout.config_dir, 0o750, (root_uid, gid))
    staging = Path(tempfile.mkdtemp(prefix=".provision-", dir=layout.config_dir))
    try:
        staged = {s: staging / s.device_file.name for s in secrets}
        for s, path in staged.items():
            _private(path, s.value + "\n", (uid, gid))
        system = check(data, lambda s: str(staged[s]), secrets)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    lines = [f"applied {BOOT_FILE}"]
    lines += _customers(layout, data, (uid, gid))
    # from here on the file is good: put everything in place, in the root that runs and,
    # with the read-only root on, in the real root under the overlay (it lasts a reboot)
    roots = [layout] + ([lower] if lower else [])
    if lower is not None:
        (remount or _remount)(lower.root, True)
    try:
        for target in roots:
            _commit(target, data, secrets, (root_uid, uid, gid))
            done = apply_system(system, target)
    finally:
        if lower is not None:
            try:
                (remount or _remount)(lower.root, False)
            except ProvisionError as err:          # read-only again at the next boot anyway
                lines.append(str(err))
    if secrets:
        lines.append(f"{len(secrets)} secret{'s' * (len(secrets) != 1)} moved to "
                     + ", ".join(str(s.device_file) for s in secrets))
    lines.append(f"wrote {CONFIG_DIR / 'callgate.toml'}"
                 + (" (also below the read-only root's overlay)" if lower else ""))
    lines += done
    made = _web_first_run(layout, data, (uid, gid), console)
    if made:
        lines.append(made)
    _retire(layout, source, data, secrets)
    lines.append(f"the boot copy is now {APPLIED}, its secrets blanked")
    return Outcome("applied", lines, setup_code=bool(made and "setup code" in made))


def _commit(target: Layout, data: dict, secrets: list[Secret],
            owners: tuple[int, int, int]) -> None:
    """The secret files and /etc/callgate/callgate.toml in one root."""
    root_uid, uid, gid = owners
    _dir(target.config_dir, 0o750, (root_uid, gid))
    for s in secrets:
        _private(target.inside(s.device_file), s.value + "\n", (uid, gid))
    device = with_files(data, secrets, lambda s: str(s.device_file))
    _write(target.config, _toml_text(device, "/etc/callgate/callgate.toml, written by callgate "
                                             "provisioning from the boot partition's "
                                             f"{BOOT_FILE}"), 0o640, (root_uid, gid))


OVERLAY_LOWER = "/media/root-ro"          # where overlayroot mounts the real root


def overlay_lower(layout: Layout, mounts: Path) -> Layout | None:
    """With overlayroot on, / is an overlay in RAM and the real root is mounted read-only
    at /media/root-ro: what provisioning writes must go there too, or it is lost at the
    next boot. None when the root is an ordinary one."""
    try:
        table = [line.split() for line in mounts.read_text().splitlines()]
    except OSError:
        return None
    points = {fields[1]: fields[2] for fields in table if len(fields) >= 3}
    if points.get("/") == "overlay" and OVERLAY_LOWER in points:
        return Layout(layout.inside(OVERLAY_LOWER), layout.boot)
    return None


def _remount(path: Path, writable: bool) -> None:
    import subprocess

    mode = "rw" if writable else "ro"
    proc = subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise ProvisionError(f"cannot remount {path} {mode}: "
                             f"{(proc.stderr.strip().splitlines() or ['mount failed'])[0]}")


def _customers(layout: Layout, data: dict, owner: tuple[int, int]) -> list[str]:
    """Import customers.csv (all rows or none) into the directory the config names."""
    from ..crm.directory import DEFAULT_PATH, Directory, DirectoryError

    csv = layout.boot / CUSTOMERS
    if not csv.is_file():
        return []
    crm = Table(data).sub("crm")
    device_path = crm.get("directory", str, str(DEFAULT_PATH)) or str(DEFAULT_PATH)
    path = layout.inside(device_path)
    links = [f for f in (path.parent, path, path.with_name(path.name + "-wal"),
                         path.with_name(path.name + "-shm")) if f.is_symlink()]
    if links:                             # root would chown or write what it points at
        raise ProvisionError(f"crm.directory: {links[0]} is a symbolic link")
    _dir(path.parent, 0o700, owner)
    try:
        with Directory(path, default_country=crm.get("default_country", str, "US")) as d:
            n = d.import_csv(csv, replace=True)
    except DirectoryError as err:
        raise ProvisionError(f"{CUSTOMERS}: {str(err).splitlines()[0]}") from None
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if f.exists():
            os.chown(f, *owner)
            os.chmod(f, 0o600)
    csv.unlink()                          # it holds PINs in plain text: not left on the card
    return [f"imported {n} customer{'s' * (n != 1)} from {CUSTOMERS} into {device_path} "
            f"and deleted {CUSTOMERS}"]


def _first_run(layout: Layout, console: Path | None) -> Outcome:
    """No file on the boot partition: on a device whose web app was never set up (no
    signing key yet), make its key and a setup code anyway, so the first admin can sign
    in; otherwise nothing."""
    from ..config import load
    from ..web.settings import WebSettings

    try:
        table = load(layout.config) if layout.config.exists() else Table({})
        web = WebSettings.from_table(table)
        if layout.inside(web.secret_key_file).exists():
            return Outcome("nothing")
        made = _web_first_run(layout, table.data, layout.account(), console)
    except (ConfigError, LayoutError, OSError) as err:
        return Outcome("nothing", [f"web first run skipped: {str(err).splitlines()[0]}"])
    return Outcome("first-run", [made] if made else [], setup_code=bool(made))


def _web_first_run(layout: Layout, data: dict, owner: tuple[int, int],
                   console: Path | None) -> str | None:
    """The web app's signing key, and a setup code while no admin exists."""
    from ..store.records import StoreError
    from ..web.keyfile import make_secret_key
    from ..web.settings import WebSettings
    from ..web.setup import code_file, new_code
    from ..web.users import Users

    web = WebSettings.from_table(Table(data))
    _dir(layout.state_dir, 0o700, owner)
    key = layout.inside(web.secret_key_file)
    if make_secret_key(key):
        os.chown(key, *owner, follow_symlinks=False)
    db = layout.inside(web.db)
    if db.is_symlink():
        return f"web setup code not made: {web.db} is a symbolic link"
    if db.exists():
        try:
            with Users(db) as users:
                if users.enabled_admins():
                    return None
        except (sqlite3.Error, StoreError):   # a damaged card: the setup is applied anyway
            return f"web setup code not made: {web.db} cannot be read"
    code = new_code(layout.inside(code_file(web.db)), owner)
    shown = _show(console, "callgate: the first web admin is made at /setup with this "
                           f"one-time setup code: {code}")
    del code
    return ("web setup code shown on the console (once; run `callgate provision "
            "--setup-code` for a new one)") if shown else \
        "web setup code made, but no console to show it: run `callgate provision --setup-code`"


def _show(console: Path | None, text: str) -> bool:
    """Write to the console device only: not stdout, which the journal keeps."""
    if console is None:
        return False
    try:
        with open(console, "a", encoding="utf-8") as f:
            f.write("\n" + text + "\n\n")
        return True
    except OSError:
        return False


def _retire(layout: Layout, source: Path, data: dict, secrets: list[Secret]) -> None:
    """The boot copy, secrets blanked, as callgate.toml.applied; callgate.toml gone."""
    target = layout.boot / APPLIED
    text = source.read_text(encoding="utf-8")
    for s in secrets:
        text = text.replace(s.value, "")
    try:
        import tomllib
        same = tomllib.loads(text) == blanked(data, secrets)
    except ValueError:
        same = False
    if not same:                          # a secret written with escapes: write it anew
        text = _toml_text(blanked(data, secrets), f"{APPLIED}: applied by callgate "
                                                  "provisioning, secrets blanked")
    tmp = layout.boot / f".{APPLIED}.new"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    source.unlink()
    _sync_dir(layout.boot)


def _toml_text(data: dict, header: str) -> str:
    import tomli_w

    return f"# {header}\n" + tomli_w.dumps(data)


def _scrub(text: str, values: list[str]) -> str:
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _log(layout: Layout, outcome: Outcome, now: float) -> None:
    """Append to callgate-provision.log on the boot partition (a FAT file system)."""
    if outcome.state == "nothing":
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    try:
        with open(layout.boot / LOG_FILE, "a", encoding="utf-8") as f:
            for line in outcome.lines:
                f.write(f"{stamp} {line}\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass                              # a read-only boot partition: the journal has it


def _status(layout: Layout, outcome: Outcome, now: float) -> None:
    """The last outcome, for the status page and telemetry: /var/lib/callgate/provision.json."""
    if outcome.state == "nothing":
        return
    try:
        path = layout.provision_status
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.new")
        tmp.unlink(missing_ok=True)       # never written through a link left in its place
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"state": outcome.state, "at": now,
                                "lines": outcome.lines}) + "\n")
            os.fchmod(f.fileno(), 0o644)
        os.replace(tmp, path)
    except OSError:
        pass


def _blink(layout: Layout, reason: str) -> None:
    """Make the status LED blink fast (the kernel's timer trigger): a refused file."""
    led = "ACT"
    try:
        led = SystemSettings.from_table(Table(_read(layout.boot / BOOT_FILE))).status_led
    except (ProvisionError, ConfigError, OSError):
        pass
    folder = layout.inside(f"/sys/class/leds/{led}")
    for name, value in LED_BLINK.items():  # trigger first: it makes the delay files appear
        try:
            (folder / name).write_text(value)
        except OSError:
            return


def _dir(path: Path, mode: int, owner: tuple[int, int]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, *owner)
    os.chmod(path, mode)


def _private(path: Path, text: str, owner: tuple[int, int]) -> None:
    """A 0600 file of `owner`, put in place by rename (never a half-written secret)."""
    _write(path, text, 0o600, owner)


def _write(path: Path, text: str, mode: int, owner: tuple[int, int]) -> None:
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chown(tmp, *owner)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_file(path: Path) -> list[Secret]:
    """`callgate provision --check FILE`: the checks of provisioning, applying nothing; the
    inline secrets found. ProvisionError or ConfigError (one line, no secret) if bad."""
    secrets: list[Secret] = []
    hidden: list[str] = []
    try:
        data = read_toml(path)
        hidden = suspects(data)
        secrets = find_secrets(data)
        with tempfile.TemporaryDirectory() as tmp:
            staged = {s: Path(tmp) / s.device_file.name for s in secrets}
            for s, file in staged.items():
                _private(file, s.value + "\n", (os.getuid(), os.getgid()))
            check(data, lambda s: str(staged[s]), secrets)
    except (ProvisionError, ConfigError) as err:
        raise type(err)(f"{path}: {_scrub(str(err), [*(s.value for s in secrets), *hidden])}") \
            from None
    return secrets


def new_setup_code(layout: Layout, config: Path | None = None) -> str:
    """`callgate provision --setup-code`: a fresh code while no admin exists (ProvisionError
    otherwise); the caller shows it on the terminal that asked."""
    from ..config import load
    from ..web.settings import WebSettings
    from ..web.setup import code_file, new_code
    from ..web.users import Users

    path = config or layout.config
    web = WebSettings.from_table(load(path) if path.exists() else Table({}))
    db = layout.inside(web.db)
    if db.exists():
        with Users(db) as users:
            if users.enabled_admins():
                raise ProvisionError(f"{web.db} already has an admin; a setup code is only "
                                     "for the first one")
    return new_code(layout.inside(code_file(web.db)), layout.account())


def add_parser(sub) -> None:
    p = sub.add_parser("provision", help="apply callgate.toml from the boot partition",
                       description="First-boot provisioning (callgate-provision.service): "
                                   "check the boot partition's callgate.toml as check-config "
                                   "does, move its secrets into 0600 files under "
                                   "/etc/callgate/, write /etc/callgate/callgate.toml, apply "
                                   "[system], import customers.csv, and rename the boot copy "
                                   "callgate.toml.applied with its secrets blanked. A bad "
                                   "file applies nothing; the reason goes to "
                                   "callgate-provision.log on the boot partition.")
    p.add_argument("--root", default="/", metavar="DIR", help="the device's root (default /)")
    p.add_argument("--boot", default=str(Layout.boot), metavar="DIR",
                   help="the boot partition (default /boot/firmware)")
    p.add_argument("--console", default="/dev/console", metavar="FILE",
                   help="where the one-time web setup code is shown (default /dev/console)")
    p.add_argument("--check", metavar="FILE",
                   help="only check a provisioning file (e.g. on a laptop before copying it "
                        "to the card): check-config's rules, with its inline secrets")
    p.add_argument("--setup-code", action="store_true",
                   help="only make a new web setup code and print it here (while no admin "
                        "exists)")
    p.set_defaults(func=cmd_provision)


def cmd_provision(args) -> int:
    import sys

    layout = Layout(Path(args.root), Path(args.boot))
    if args.check:
        try:
            secrets = check_file(Path(args.check))
        except (ProvisionError, ConfigError) as err:
            print(f"callgate provision: {err}", file=sys.stderr)
            return 2
        print(f"{args.check}: ok ({len(secrets)} secret{'s' * (len(secrets) != 1)} to move"
              + (": " + ", ".join(s.name for s in secrets) if secrets else "") + ")")
        return 0
    if args.setup_code:
        from ..store.records import StoreError

        try:
            code = new_setup_code(layout)
        except (ProvisionError, ConfigError, LayoutError, OSError, StoreError) as err:
            print(f"callgate provision: {err}", file=sys.stderr)
            return 1
        print(f"one-time setup code for the first web admin (at /setup): {code}")
        return 0
    outcome = provision(layout, Path(args.console) if args.console else None)
    for line in outcome.lines:
        print(f"callgate provision: {line}", file=sys.stderr)
    return 1 if outcome.state == "refused" else 0
