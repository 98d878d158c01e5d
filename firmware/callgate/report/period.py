"""The period of a report, from what a person types or picks.

All in the device's local time: "today" is since local midnight, a date is its
local midnight, a date-time without an offset is local. Relative forms go back
to whole buckets so the first hour, day or week of a report is not a sliver:

    now, today, yesterday
    -Nh   the start of the hour N hours ago
    -Nd   midnight N days ago (-7d: the last 7 whole days and today so far)
    -Nw   Monday midnight N weeks before this week's Monday
          (the dash may be left out: 7d is -7d)
    2026-05-01, 2026-05-01T08:30, 2026-05-01T08:30+02:00 (ISO 8601)
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

from .figures import ReportError, bucket_floor

FORMS = "ISO date or date-time, now, today, yesterday, -Nh, -Nd or -Nw"
# a report's dates lie in these years: beyond them local time has no meaning here (year 1
# has no local midnight before it, 9999-12-31 has no day after it) and no call was taken
YEARS = (1970, 2999)
_RELATIVE = re.compile(r"-?(\d{1,4})([hdw])")
# web form presets: key -> label (resolved by `preset`)
PRESETS = {"today": "Today", "yesterday": "Yesterday", "7d": "Last 7 days",
           "30d": "Last 30 days", "week": "This week", "last_week": "Last week",
           "custom": "From - to"}


def parse_when(text: str, now: float | None = None, what: str = "date") -> float:
    """Unix seconds for one of FORMS; ReportError naming `what` if it is none of them."""
    now = time.time() if now is None else now
    word = (text or "").strip().lower()
    if word == "now":
        return now
    if word == "today":
        return _midnight(now, 0)
    if word == "yesterday":
        return _midnight(now, -1)
    m = _RELATIVE.fullmatch(word)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if unit == "h":
            return bucket_floor(now, "hour") - 3600.0 * n
        if unit == "d":
            return _midnight(now, -n)
        monday = datetime.fromtimestamp(bucket_floor(now, "week"))
        return (monday - timedelta(weeks=n)).timestamp()
    try:
        when = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise ReportError(f"{what}: {text!r} is not a date ({FORMS})") from None
    return _seconds(when, what, text)  # naive: local time; with an offset: that offset


def _seconds(when: datetime, what: str, text: str) -> float:
    """Unix seconds of a date a person typed; ReportError naming `what` outside YEARS."""
    first, last = YEARS
    if not first <= when.year <= last:
        raise ReportError(f"{what}: {text.strip()} is outside the years {first} to {last}")
    try:
        return when.timestamp()
    except (ValueError, OverflowError, OSError):
        raise ReportError(f"{what}: {text.strip()} is outside the years {first} to "
                          f"{last}") from None


def _midnight(now: float, days: int) -> float:
    t = datetime.fromtimestamp(now)
    return (datetime(t.year, t.month, t.day) + timedelta(days=days)).timestamp()


def preset(key: str, now: float | None = None) -> tuple[float, float]:
    """(since, until) of a web preset; until is now for periods that include today."""
    now = time.time() if now is None else now
    if key == "today":
        return _midnight(now, 0), now
    if key == "yesterday":
        return _midnight(now, -1), _midnight(now, 0)
    if key == "7d":
        return _midnight(now, -6), now
    if key == "30d":
        return _midnight(now, -29), now
    if key == "week":
        return bucket_floor(now, "week"), now
    if key == "last_week":
        this = datetime.fromtimestamp(bucket_floor(now, "week"))
        return (this - timedelta(weeks=1)).timestamp(), this.timestamp()
    raise ReportError(f"period {key!r} is not one of {', '.join(PRESETS)}")


def day_range(first: str, last: str) -> tuple[float, float]:
    """(since, until) covering the whole local days first..last, both included."""
    try:
        a = datetime.strptime(first.strip(), "%Y-%m-%d")
    except (ValueError, AttributeError):
        raise ReportError(f"from: {first!r} is not a date (YYYY-MM-DD)") from None
    try:
        b = datetime.strptime(last.strip(), "%Y-%m-%d")
    except (ValueError, AttributeError):
        raise ReportError(f"to: {last!r} is not a date (YYYY-MM-DD)") from None
    if b < a:
        raise ReportError(f"to: {last} is before from ({first})")
    since, _ = _seconds(a, "from", first), _seconds(b, "to", last)
    return since, _seconds(b + timedelta(days=1), "to", last)
