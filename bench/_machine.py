"""One line saying what a bench's figures were taken on (shared by the benches)."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((r.split(":", 1)[1].strip() for r in f if r.startswith("model name")), "")
    except OSError:
        pass
    return (f"{platform.machine()} {model or platform.processor()}, {os.cpu_count()} CPUs, "
            f"Linux {platform.release()}, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.2f}")
