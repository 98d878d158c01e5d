"""The device's own checks: the clock, the time zone, free space on the data partition.

A wrong clock or zone moves every call record, report day and opening hour; a full
data partition (cgdata, /var/lib/callgate) stops the call records.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from .checks import Check, fail, ok, skip, warn

EARLIEST = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
"""No device runs this firmware before this date: an earlier clock was never set."""
MIN_FREE = 100 * 2 ** 20         # bytes; below this the call store may soon fail a write
MIN_FREE_FRACTION = 0.05


def ntp_synchronised() -> bool | None:
    """What systemd says of the clock's synchronisation (None: cannot tell)."""
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    try:
        proc = subprocess.run([tool, "show", "--property=NTPSynchronized", "--value"],
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    answer = proc.stdout.strip()
    return {"yes": True, "no": False}.get(answer) if proc.returncode == 0 else None


def check_clock(now: Callable[[], float] = time.time,
                synchronised: Callable[[], bool | None] | None = None) -> Check:
    t = now()
    shown = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t))
    if t < EARLIEST:
        return fail("clock", f"the clock says {shown}: it was never set",
                    "connect the device to a network that reaches an NTP server (or set it: "
                    "timedatectl set-time 'YYYY-MM-DD HH:MM:SS')")
    synced = (synchronised or ntp_synchronised)()
    if synced is False:
        return warn("clock", f"{shown}, not synchronised with a time server",
                    "timedatectl set-ntp true, and check that the network lets NTP (UDP "
                    "123) out")
    return ok("clock", shown + (", synchronised (NTP)" if synced else
                                " (synchronisation unknown: timedatectl cannot tell)"))


def zone_name(environ=os.environ, localtime: Path = Path("/etc/localtime")) -> str | None:
    """The device's zone as a name (Europe/London), as device_zone() finds it."""
    name = environ.get("TZ", "").lstrip(":")
    if name:
        return name
    try:
        target = os.readlink(localtime)
    except OSError:
        return "UTC" if not localtime.exists() else None
    _, sep, after = target.partition("zoneinfo/")
    return after if sep else target


def check_zone(environ=os.environ, localtime: Path = Path("/etc/localtime")) -> Check:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = zone_name(environ, localtime)
    fix = ("timedatectl set-timezone Region/City (e.g. America/New_York); opening hours "
           "and today's figures follow it")
    if name is None:
        return ok("time zone", "set by /etc/localtime (no zone name)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return fail("time zone", f"{name!r} is not a known time zone", fix)
    if name in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "GMT", "Etc/GMT"):
        return warn("time zone", f"{name}: the device keeps no local time", fix)
    return ok("time zone", name)


def disk_usage(folder: Path):
    """(total, used, free) bytes of the filesystem holding `folder`."""
    return shutil.disk_usage(folder)


def check_space(store: Path, usage=None) -> Check:
    """Free space where the call store lives (the nearest folder that exists)."""
    folder = Path(store).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    mount = folder
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    try:
        total, _, free = (usage or disk_usage)(folder)
    except OSError as err:
        return skip("free space", f"{folder}: cannot tell ({err.strerror or err})")
    detail = (f"{_size(free)} free of {_size(total)} on {mount} (the call store's "
              f"partition)")
    if free < MIN_FREE or free < MIN_FREE_FRACTION * total:
        return fail("free space", detail,
                    f"free space under {folder}: remove old call recordings (line.record "
                    "dir) and exports there; a full partition stops the call records")
    return ok("free space", detail)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
