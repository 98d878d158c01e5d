"""What the board itself reports: uptime, CPU temperature, throttling, free space.

Read from the kernel's files (/proc/uptime, /sys/class/thermal, the Raspberry
Pi firmware's get_throttled) and statvfs; `vcgencmd get_throttled` only when
the firmware file is absent. A board that does not report a fact gives None,
never an error: a PC running the simulator has no throttling to tell.

get_throttled is a bit field (Raspberry Pi documentation, vcgencmd): bits 0-3
hold what is true now (under-voltage, ARM frequency capped, throttled, soft
temperature limit), bits 16-19 whether each has happened since boot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

THROTTLE_BITS = {"under_voltage": 0, "freq_capped": 1, "throttled": 2, "soft_temp_limit": 3}
SINCE_BOOT = 16                  # the "has occurred" bit of each is this many bits higher
THROTTLED_FILE = "sys/devices/platform/soc/soc:firmware/get_throttled"
VCGENCMD_TIMEOUT_S = 2.0


class Board:
    """The board's own reports under `root` ("/" on a device; a fake tree in tests).
    `vcgencmd`: the program's path, "" for none (default: found on PATH)."""

    def __init__(self, root: str | Path = "/", vcgencmd: str | None = None) -> None:
        self.root = Path(root)
        self.vcgencmd = shutil.which("vcgencmd") if vcgencmd is None else vcgencmd

    def uptime_s(self) -> float | None:
        """Seconds since boot (/proc/uptime), or None."""
        text = _read(self.root / "proc/uptime")
        try:
            return round(float(text.split()[0]), 1) if text else None
        except (ValueError, IndexError):
            return None

    def cpu_temp_c(self) -> float | None:
        """The CPU's temperature in °C: the thermal zone whose type names the CPU (the
        Pi's "cpu-thermal"), else the first zone; None when the board has none."""
        zones = sorted((self.root / "sys/class/thermal").glob("thermal_zone*"),
                       key=lambda p: _zone_number(p.name))
        if not zones:
            return None
        cpu = [z for z in zones if "cpu" in (_read(z / "type") or "").lower()]
        for zone in cpu or zones[:1]:
            text = _read(zone / "temp")
            try:
                return round(int(text.strip()) / 1000.0, 1) if text else None
            except ValueError:
                return None
        return None

    def throttled(self) -> dict | None:
        """The get_throttled bits as {"raw": int, "under_voltage": bool, ...,
        "under_voltage_since_boot": bool, ...}; None when the board does not report it."""
        raw = _hex(_read(self.root / THROTTLED_FILE))
        if raw is None and self.vcgencmd:
            raw = _hex(self._vcgencmd())
        if raw is None:
            return None
        out: dict = {"raw": raw}
        for name, bit in THROTTLE_BITS.items():
            out[name] = bool(raw >> bit & 1)
        for name, bit in THROTTLE_BITS.items():
            out[f"{name}_since_boot"] = bool(raw >> (bit + SINCE_BOOT) & 1)
        return out

    def _vcgencmd(self) -> str | None:
        try:
            done = subprocess.run([self.vcgencmd, "get_throttled"], capture_output=True,
                                  text=True, timeout=VCGENCMD_TIMEOUT_S, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None


def disk_space(path: str | Path) -> dict | None:
    """{"path", "free_bytes", "total_bytes"} of the filesystem holding `path` (its nearest
    existing parent); free is what an unprivileged writer may still use."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return {"path": str(path), "free_bytes": st.f_bavail * st.f_frsize,
            "total_bytes": st.f_blocks * st.f_frsize}


def _hex(text: str | None) -> int | None:
    """"throttled=0x50005", "0x50005" or the firmware file's bare "50005" -> int."""
    if not text:
        return None
    value = text.strip().rpartition("=")[2].strip()
    try:
        return int(value, 16)
    except ValueError:
        return None


def _zone_number(name: str) -> int:
    digits = name.removeprefix("thermal_zone")
    return int(digits) if digits.isdigit() else 1 << 30


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
