"""The device's own time zone, for [service.hours] without a `timezone`.

Read once where the configuration is loaded (app, scenarios), not in flow/:
finding it means reading $TZ and /etc/localtime, and the flow does no I/O.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def device_zone() -> tuple[dt.tzinfo, str]:
    """$TZ if it names a zone, else /etc/localtime, else UTC; with a name for the record."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with Path("/etc/localtime").open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime"), "localtime"
    except (OSError, ValueError):
        return dt.timezone.utc, "UTC"
