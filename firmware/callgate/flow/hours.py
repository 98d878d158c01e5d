"""Business hours of a service line: weekly opening times, closed dates, "closed today".

    [service.hours]
    timezone = "Europe/London"      # default: the device's own time zone
    mon = "09:00-17:30"             # or a list: ["09:00-12:30", "13:30-17:30"]
    sat = ""                        # a day left out or "" is closed all day
    closed = ["2026-12-25", "2026-12-26"]   # holidays (dates in that time zone)
    after_hours = "300"             # an extension; "" plays the message and hangs up
    idv_first = false               # true: ID&V runs first, so the after-hours agent
                                    # sees who called

The time zone is read once, when the configuration is loaded (zoneinfo reads
its file then; the device's own zone is found outside flow/, callgate/localzone.py,
and passed in), so deciding open or closed during a call is arithmetic on the
answer's wall time and touches no disk. "Closed today" is the supervisor's
switch on the web app; the flow is told it per call (`closed_today`).
Opening times run from the first minute to the last ("09:00-17:30": open at
09:00, closed at 17:30); "24:00" ends a day at midnight. Times are written
HH:MM exactly (ASCII digits, two of each), dates YYYY-MM-DD or as TOML dates;
spans of one day that overlap are refused, naming the day.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..config import ConfigError, Table
from .keys import extension

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOURS_STATES = ("open", "closed", "holiday", "override")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
UTC = (dt.timezone.utc, "UTC")


@dataclass(frozen=True)
class Hours:
    """When the service line takes calls; `state` answers for one moment."""

    zone: dt.tzinfo
    zone_name: str
    week: tuple[tuple[tuple[int, int], ...], ...]      # per weekday: (from, to) minutes
    closed: frozenset[dt.date] = frozenset()
    after_hours: str = ""
    idv_first: bool = False

    def local_date(self, wall: float) -> dt.date:
        return dt.datetime.fromtimestamp(wall, self.zone).date()

    def state(self, wall: float, closed_today: bool = False) -> str:
        """open / closed (outside the weekly times) / holiday (a closed date) /
        override (the supervisor's "closed today")."""
        local = dt.datetime.fromtimestamp(wall, self.zone)
        if closed_today:
            return "override"
        if local.date() in self.closed:
            return "holiday"
        minute = local.hour * 60 + local.minute
        spans = self.week[local.weekday()]
        return "open" if any(a <= minute < b for a, b in spans) else "closed"


def _minutes(text: str, key: str) -> int:
    if not _TIME.fullmatch(text):
        raise ConfigError(f"{key}: {text!r} is not a time (HH:MM)")
    h, m = int(text[:2]), int(text[3:])
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ConfigError(f"{key}: {text!r} is not a time of day (00:00..24:00)")
    return h * 60 + m


def _spans(table: Table, day: str) -> tuple[tuple[int, int], ...]:
    raw = table.get(day, (str, list), "")
    items = [raw] if isinstance(raw, str) else raw
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{table.key(day)}: expected \"HH:MM-HH:MM\" or a list of them")
        if not item.strip():
            continue
        try:
            a, b = item.split("-")
        except ValueError:
            raise ConfigError(f"{table.key(day)}: {item!r} is not HH:MM-HH:MM") from None
        start, end = _minutes(a.strip(), table.key(day)), _minutes(b.strip(), table.key(day))
        if start >= end:
            raise ConfigError(f"{table.key(day)}: {item!r} ends before it starts")
        out.append((start, end))
    out.sort()
    for (a1, b1), (a2, b2) in zip(out, out[1:]):
        if a2 < b1:
            raise ConfigError(f"{table.key(day)}: {_hhmm(a1)}-{_hhmm(b1)} and "
                              f"{_hhmm(a2)}-{_hhmm(b2)} overlap")
    return tuple(out)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _dates(table: Table) -> frozenset[dt.date]:
    raw = table.get("closed", list, [])
    out = set()
    for item in raw:
        if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
            out.add(item)                        # a TOML local date: closed = [2026-12-25]
            continue
        try:
            if not isinstance(item, str) or not _DATE.fullmatch(item):
                raise ValueError
            out.add(dt.date.fromisoformat(item))
        except ValueError:
            raise ConfigError(f"{table.key('closed')}: {item!r} is not a date "
                              "(YYYY-MM-DD)") from None
    return frozenset(out)


def hours_from_table(table: Table, default_zone: tuple[dt.tzinfo, str] = UTC) -> Hours | None:
    """[service.hours], or None when the service line has no hours (always open);
    `default_zone` (zone, name) when it names no timezone: the device's, found by the
    caller (callgate/localzone.py)."""
    if not table.data:
        return None
    zone_name = table.get("timezone", str, "")
    if zone_name:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{table.key('timezone')}: {zone_name!r} is not a known time "
                              "zone (e.g. \"Europe/London\")") from None
    else:
        zone, zone_name = default_zone
    week = tuple(_spans(table, d) for d in DAYS)
    if not any(week):
        raise ConfigError(f"{table.path}: no opening times (give at least one of "
                          f"{', '.join(DAYS)})")
    after = extension(table, "after_hours", empty_means="for the message and hang-up")
    hours = Hours(zone, zone_name, week, _dates(table), after,
                  table.get("idv_first", bool, False))
    table.reject_unknown(("timezone", *DAYS, "closed", "after_hours", "idv_first"))
    return hours
