"""Where the appliance keeps its files, relative to a root and a boot partition.

On a device the root is "/" and the boot partition is mounted at /boot/firmware
(Bookworm and Trixie); tests give temporary folders. Paths written into files
the device reads later (a secret's `*_file` key, the time-zone link) are device
paths: `device()` gives them, `inside()` maps one into this root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CONFIG_DIR = PurePosixPath("/etc/callgate")
STATE_DIR = PurePosixPath("/var/lib/callgate")
BOOT = Path("/boot/firmware")
USER = "callgate"


class LayoutError(Exception):
    """The root lacks what the appliance needs (e.g. its user); str() is one line."""


@dataclass(frozen=True)
class Layout:
    """A device's root file system and its boot partition."""

    root: Path = Path("/")
    boot: Path = BOOT

    def inside(self, device_path: str | PurePosixPath) -> Path:
        """The file a device path names, in this root."""
        return self.root / str(device_path).lstrip("/")

    @property
    def config_dir(self) -> Path:
        return self.inside(CONFIG_DIR)

    @property
    def config(self) -> Path:
        return self.config_dir / "callgate.toml"

    @property
    def state_dir(self) -> Path:
        return self.inside(STATE_DIR)

    @property
    def provision_status(self) -> Path:
        """What the last provisioning did, for the status page and telemetry (JSON)."""
        return self.state_dir / "provision.json"

    def account(self, name: str = USER) -> tuple[int, int]:
        """(uid, gid) of a user of this root, from its /etc/passwd (not the host's)."""
        for fields in _entries(self.inside("/etc/passwd")):
            if len(fields) >= 4 and fields[0] == name and fields[2].isdigit() \
                    and fields[3].isdigit():
                return int(fields[2]), int(fields[3])
        raise LayoutError(f"no user {name!r} in {self.inside('/etc/passwd')} "
                          "(systemd-sysusers makes it at boot)")


def _entries(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise LayoutError(f"cannot read {path} ({err.strerror or err})") from None
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]
