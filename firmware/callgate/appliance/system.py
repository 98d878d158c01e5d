"""The [system] table: the device's own settings, applied by provisioning.

    [system]
    timezone = "Europe/Paris"     # IANA name; /etc/localtime and /etc/timezone
    read_only_root = false        # true: Debian's overlayroot keeps / in RAM (recurse=0)
    status_led = "ACT"            # the LED that blinks when a provisioning file is refused

A read-only root is opt-in. overlayroot's own default overlays every mounted
file system, the data partition (/var/lib/callgate) included, so the call
store would live in RAM and vanish at each reboot; `recurse=0` overlays only
the root, and the data partition and the boot partition stay writable.
"""

from __future__ import annotations

import os
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, Table
from .layout import Layout

KEYS = ("timezone", "read_only_root", "status_led")
ZONEINFO = "/usr/share/zoneinfo"
OVERLAYROOT_CONF = "/etc/overlayroot.local.conf"      # read after overlayroot.conf
OVERLAYROOT_ON = 'overlayroot="tmpfs:recurse=0"'
OVERLAYROOT_OFF = 'overlayroot=""'


@dataclass(frozen=True)
class SystemSettings:
    timezone: str | None = None
    read_only_root: bool = False
    status_led: str = "ACT"

    @classmethod
    def from_table(cls, table: Table) -> "SystemSettings":
        """[system] of a whole configuration; ConfigError naming a bad or unknown key."""
        system = table.sub("system")
        zone = system.get("timezone", str, None)
        if zone is not None and not known_zone(zone):
            raise ConfigError(f"{system.key('timezone')}: {zone!r} is not a time zone "
                              "(an IANA name such as \"Europe/Paris\" or \"UTC\")")
        led = system.get("status_led", str, "ACT")
        if not led or "/" in led or led.startswith("."):
            raise ConfigError(f"{system.key('status_led')}: {led!r} is not an LED name")
        settings = cls(zone, system.get("read_only_root", bool, False), led)
        system.reject_unknown(KEYS)
        return settings


def known_zone(name: str) -> bool:
    """An IANA zone this system's tzdata holds (never a path of our choosing)."""
    return name in zoneinfo.available_timezones() or name == "UTC"


def apply(settings: SystemSettings, layout: Layout) -> list[str]:
    """Write the settings into the root; one line per change, for the provisioning log."""
    done = []
    if settings.timezone:
        set_timezone(settings.timezone, layout)
        done.append(f"time zone {settings.timezone}")
    set_read_only_root(settings.read_only_root, layout)
    done.append("read-only root " + ("on (overlayroot, recurse=0) from the next boot"
                                     if settings.read_only_root else "off"))
    return done


def set_timezone(name: str, layout: Layout) -> None:
    """What timedatectl does, on a root that need not be running: the /etc/localtime link
    (a device path) and Debian's /etc/timezone."""
    link = layout.inside("/etc/localtime")
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(".localtime.new")
    tmp.unlink(missing_ok=True)
    os.symlink(f"{ZONEINFO}/{name}", tmp)
    os.replace(tmp, link)
    _write(layout.inside("/etc/timezone"), name + "\n")


def set_read_only_root(on: bool, layout: Layout) -> None:
    _write(layout.inside(OVERLAYROOT_CONF),
           "# written by callgate provisioning from [system] read_only_root\n"
           + (OVERLAYROOT_ON if on else OVERLAYROOT_OFF) + "\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
