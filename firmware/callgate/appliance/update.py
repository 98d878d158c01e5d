"""`callgate update BUNDLE`: install a release beside the running one, switch, and roll back
by itself if the new one does not come up.

    /opt/callgate/releases/<version>/    one release: a venv, hw/ and prompts_wav/ inside
    /opt/callgate/current -> releases/<version>      (relative; the units run current/bin/callgate)

Steps: check the bundle's hashes (bundle.py); make the venv for the device's
Python and install the wheelhouse into it with pip, offline and hash-checked;
run the new `callgate --version`; point `current` at it (a symlink replaced
by rename, so it is always one release or the other); restart the units.
They are Type=notify, so `systemctl restart` returns only once each has sent
READY=1, or failed (the process ended first, or TimeoutStartSec passed): on a
failure `current` goes back to the release that ran before, the units are
restarted on it, and the new release is removed. On success the release before
is kept for a manual roll-back; older ones are removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .bundle import BundleError, extract, wheel_name_version

PREFIX = Path("/opt/callgate")
UNITS = ("callgate.service", "callgate-web.service")
RESTART_TIMEOUT_S = 600.0     # a hang guard only: each unit's own TimeoutStartSec decides
INSTALL_TIMEOUT_S = 1800.0    # pip on a Pi Zero 2-class board, compiling .pyc included


class UpdateError(Exception):
    """Why an update was not done or was rolled back; str() is one line."""


@dataclass(frozen=True)
class Install:
    """The releases under a prefix (/opt/callgate on a device)."""

    prefix: Path = PREFIX

    @property
    def releases(self) -> Path:
        return self.prefix / "releases"

    @property
    def current(self) -> Path:
        return self.prefix / "current"

    def running(self) -> str | None:
        """The version `current` points at, or None (no release yet)."""
        try:
            target = Path(os.readlink(self.current))
        except OSError:
            return None
        return target.name if target.parent.name == "releases" else None

    def switch(self, version: str) -> None:
        """Point `current` at releases/<version>, atomically (rename over the old link)."""
        tmp = self.prefix / ".current.new"
        tmp.unlink(missing_ok=True)
        os.symlink(f"releases/{version}", tmp)
        os.replace(tmp, self.current)
        _sync_dir(self.prefix)


@dataclass
class Updater:
    """What an update runs; tests give a fake systemctl and a temporary prefix."""

    install: Install = Install()
    systemctl: Sequence[str] = ("systemctl",)
    units: Sequence[str] = UNITS
    python: str = "/usr/bin/python3"          # the device's Python, for the new venv
    pip: Sequence[str] = (sys.executable, "-m", "pip")
    say: Callable[[str], None] = print

    def update(self, bundle: Path) -> str:
        """Install and switch to the bundle's release; its version. UpdateError otherwise
        (after a roll-back when the new release did not start)."""
        import fcntl

        self.install.releases.mkdir(parents=True, exist_ok=True)
        with open(self.install.prefix / ".update.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise UpdateError("another update is running") from None
            return self._update(bundle)

    def _update(self, bundle: Path) -> str:
        before = self.install.running()
        with tempfile.TemporaryDirectory(prefix=".bundle-", dir=self.install.prefix) as tmp:
            try:
                manifest = extract(bundle, Path(tmp))
            except BundleError as err:
                raise UpdateError(str(err)) from None
            version = manifest.version
            if version == before:
                raise UpdateError(f"{version} is the release running now")
            release = self.install.releases / version
            if release.exists():                  # left by an update that failed
                shutil.rmtree(release)
            self.say(f"installing {version} into {release}")
            try:
                self._install(Path(tmp), manifest, release)
            except UpdateError:
                shutil.rmtree(release, ignore_errors=True)
                raise
        self.say(f"switching {self.install.current} to {version} (was {before or 'none'})")
        self.install.switch(version)
        failed = self._restart()
        if failed is None:
            self._prune(keep={version, before})
            self.say(f"{version} is running")
            return version
        if before is None:
            raise UpdateError(f"{version} did not start ({failed}) and there is no release "
                              "to go back to")
        self.say(f"{version} did not start ({failed}); rolling back to {before}")
        self.install.switch(before)
        again = self._restart()
        shutil.rmtree(release, ignore_errors=True)
        if again is not None:
            raise UpdateError(f"{version} did not start ({failed}); rolled back to {before}, "
                              f"which did not start either ({again})")
        raise UpdateError(f"{version} did not start ({failed}); rolled back to {before}")

    def _install(self, unpacked: Path, manifest, release: Path) -> None:
        self._run([self.python, "-m", "venv", "--without-pip", str(release)], "venv")
        requirements = unpacked / "requirements.txt"
        requirements.write_text("".join(
            f"{'=='.join(wheel_name_version(Path(w).name))} "
            f"--hash=sha256:{manifest.files[w]['sha256']}\n" for w in manifest.wheels))
        self._run([*self.pip, "--python", str(release / "bin" / "python"), "install",
                   "--no-index", "--find-links", str(unpacked / "wheels"),
                   "--require-hashes", "--only-binary=:all:", "--no-cache-dir",
                   "--disable-pip-version-check", "--quiet", "-r", str(requirements)],
                  "pip install")
        for tree in ("hw", "prompts_wav"):
            if (unpacked / "data" / tree).is_dir():
                shutil.copytree(unpacked / "data" / tree, release / tree)
        got = self._run([str(release / "bin" / "callgate"), "--version"], "callgate --version")
        if got.split() != ["callgate", manifest.version]:
            raise UpdateError(f"the new release says {got.strip()!r}, not callgate "
                              f"{manifest.version}")

    def _run(self, cmd: list[str], what: str) -> str:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise UpdateError(f"{what} failed ({err})") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UpdateError(f"{what} failed: {tail[0]}")
        return proc.stdout

    def _restart(self) -> str | None:
        """Restart every unit; None when all reached READY, else the first failure."""
        for unit in self.units:
            try:
                proc = subprocess.run([*self.systemctl, "restart", unit], capture_output=True,
                                      text=True, timeout=RESTART_TIMEOUT_S)
                active = subprocess.run([*self.systemctl, "is-active", unit],
                                        capture_output=True, text=True,
                                        timeout=RESTART_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as err:
                return f"{unit}: {err}"
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[:1] or [f"exit {proc.returncode}"]
                return f"{unit}: {tail[0]}"
            if active.stdout.strip() != "active":
                return f"{unit}: {active.stdout.strip() or 'not active'} after restart"
        return None

    def _prune(self, keep: set[str | None]) -> None:
        for release in self.install.releases.iterdir():
            if release.name not in keep and release.is_dir() and not release.is_symlink():
                shutil.rmtree(release, ignore_errors=True)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def add_parser(sub) -> None:
    p = sub.add_parser("update", help="install an update bundle, with roll-back",
                       description="Install BUNDLE (made by tools/build-bundle) beside the "
                                   "running release under /opt/callgate/releases/, switch "
                                   "/opt/callgate/current to it and restart the units; if "
                                   "one does not reach READY, switch back and restart again.")
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--prefix", default=str(PREFIX), metavar="DIR",
                   help="where the releases live (default /opt/callgate)")
    p.add_argument("--python", default="/usr/bin/python3", metavar="PATH",
                   help="the Python the release's venv is made for (default /usr/bin/python3)")
    p.add_argument("--unit", action="append", dest="units", metavar="UNIT",
                   help="a unit to restart (repeat; default callgate.service and "
                        "callgate-web.service)")
    p.add_argument("--systemctl", default="systemctl", metavar="CMD",
                   help="the systemctl command (default systemctl)")
    p.set_defaults(func=cmd_update)


def cmd_update(args) -> int:
    import shlex

    updater = Updater(Install(Path(args.prefix)), systemctl=tuple(shlex.split(args.systemctl)),
                      units=tuple(args.units or UNITS), python=args.python,
                      say=lambda line: print(f"callgate update: {line}", file=sys.stderr,
                                             flush=True))
    try:
        updater.update(Path(args.bundle))
    except UpdateError as err:
        print(f"callgate update: {err}", file=sys.stderr)
        return 1
    return 0
