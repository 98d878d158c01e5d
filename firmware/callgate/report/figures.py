"""The figures of a report: what happened to the calls of a period, and where.

Read from the call records (store/records.py) and nothing else. The file is
opened read-only (SQLite URI mode=ro): a report never takes a write lock, so
the engine writing a call is never kept waiting by someone reading a year.

Definitions (one call = one row of the calls table; the store only holds
answered calls, so a call that rang out is in no figure):

- period: a call belongs to [since, until) by the time it was answered
  (`started`). Buckets are hours, days or weeks (Monday to Sunday) of the
  device's LOCAL time (its TZ), so a day is midnight to midnight on the wall
  clock, 23 or 25 hours long across a DST change.
- identified: identified_by is set (by the caller's number or a keyed
  identifier), whatever the verification did. `identified` alone is the
  status "identified only".
- verification rate: verified calls over calls that reached the security
  question (identified, with security on); first-try: verified with
  verify_attempts == 1, over the same calls.
- abandoned: the caller hung up while the flow still had them, before being
  handed to an agent: hangup_step is set and is neither "transferred" (after
  the agent took the call) nor "agent_unavailable" (the transfer had failed
  and the device was saying goodbye); counted by the step they were at.
- time to authenticate: auth_ms, answer to outcome, over calls that reached an
  outcome; p90 is the nearest-rank 90th percentile (the smallest value that at
  least 90 % of the calls are at or under; always a value that occurred).
- no secret on file: identified, but nothing of the asked kind on file, so the
  security question was skipped (reason no_secret); not in "reached security".
- after hours: answered while the service line was closed (hours closed,
  holiday, or the supervisor's "closed today"), whatever happened next.
- fallback used: the call was sent on to more than one destination
  (transfer_tries > 1), because the first did not take it.
- menu choices: the key chosen at the menu after ID&V (or no_input / invalid
  when every try was used up), per key.
- back end: requests are the replies logged as events with their latency
  (lookup, identifier and verify events carrying "ms"); per call is over the
  calls that made at least one request.

A rate whose denominator is 0 is None ("no calls to say"), never 0 and never a
division by zero.
"""

from __future__ import annotations

import math
import sqlite3
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path


# The values the flow writes (flow/outcome.py, call.py), spelled here so a
# report does not import the engine (numpy, the flow) into the web process; the tests
# check they agree.
STATUSES = ("verified", "identified", "not_identified")
REASONS = ("locked", "opted_out", "backend_down", "no_secret")
TRANSFER_OUTCOMES = ("completed", "answered", "busy", "no_answer", "no_recall", "failed")
BUCKETS = ("hour", "day", "week")
MAX_BUCKETS = 1000
# the flow's steps in the order a caller meets them (flow/machine.py `c.step`)
STEPS = ("answer", "hours", "announcement", "closed", "lookup_number", "identifier",
         "lookup_identifier", "security", "verify", "menu", "transfer", "agent_unavailable",
         "transferred", "whisper")
# a hang-up at one of these is no abandonment: the flow was done with the caller (the
# transfer failed, or an agent has the call: "whisper" is the agent hearing the outcome)
NOT_ABANDONED = ("agent_unavailable", "transferred", "whisper", "closed")
ABANDON_STEPS = tuple(s for s in STEPS if s not in NOT_ABANDONED)
STEP_LABELS = {
    "answer": "Greeting", "hours": "Opening hours check", "announcement": "Announcement",
    "closed": "Closed message",
    "menu": "Menu", "lookup_number": "Caller ID lookup",
    "identifier": "Identifier question", "lookup_identifier": "Identifier lookup",
    "security": "Security question", "verify": "Verification", "transfer": "Transfer",
    "agent_unavailable": "Agent unavailable", "transferred": "After transfer",
    "whisper": "Agent whisper",
}
TRANSFER_RESULTS = (*TRANSFER_OUTCOMES, "no_result")
HANDED_OVER = ("completed", "answered")
LOOKUP_ANSWERS = ("hit", "miss", "ambiguous", "error")
AUTH_BINS_S = (0, 5, 10, 15, 20, 30, 45, 60, 90, 120)   # histogram edges; the last is open

# key -> (label, kind): kind is "count", "rate" (a fraction 0..1) or "ms".
FIELDS: dict[str, tuple[str, str]] = {
    "calls": ("Calls answered", "count"),
    "verified": ("Identified and verified", "count"),
    "identified": ("Identified only", "count"),
    "not_identified": ("Not identified", "count"),
    "unfinished": ("In progress / no outcome", "count"),
    "identified_any": ("Identified (verified or not)", "count"),
    "identification_rate": ("Identification rate", "rate"),
    "identified_by_number": ("Identified by number", "count"),
    "by_number_rate": ("Identified by number, of calls", "rate"),
    "identified_by_keyed": ("Identified by keyed identifier", "count"),
    "by_keyed_rate": ("Identified by keyed identifier, of calls", "rate"),
    "number_lookups": ("Caller ID lookups answered", "count"),
    "number_hit_rate": ("Caller ID lookup hit rate", "rate"),
    "asked_identifier": ("Callers who answered the identifier question", "count"),
    "keyed_hit_rate": ("Keyed identifier success, of those", "rate"),
    "verify_asked": ("Reached the security question", "count"),
    "verification_rate": ("Verification success rate", "rate"),
    "first_try": ("Verified at the first try", "count"),
    "first_try_rate": ("First-try success rate", "rate"),
    "opted_out": ("Opted out", "count"),
    "opted_out_at_identifier": ("Opted out at the identifier", "count"),
    "opted_out_at_security": ("Opted out at security", "count"),
    "opt_out_rate": ("Opt-out rate", "rate"),
    "locked": ("Locked out", "count"),
    "lockout_rate": ("Lockout rate, of security", "rate"),
    "backend_down": ("Back end unavailable", "count"),
    "no_secret": ("No secret on file (security skipped)", "count"),
    "after_hours": ("After hours (closed, holiday or closed today)", "count"),
    "after_hours_holiday": ("After hours: a closed date", "count"),
    "after_hours_override": ("After hours: closed today (supervisor)", "count"),
    "fallback_used": ("Taken on to a fallback destination", "count"),
    "menu_chosen": ("Chose a destination at the menu", "count"),
    "abandoned": ("Abandoned (hung up before an agent)", "count"),
    "abandon_rate": ("Abandon rate", "rate"),
    "transferred": ("Handed to an agent", "count"),
    "auth_avg_ms": ("Time to authenticate, average", "ms"),
    "auth_p90_ms": ("Time to authenticate, 90th percentile", "ms"),
    "verified_auth_avg_ms": ("Time to verify, average (verified calls)", "ms"),
    "verified_auth_p90_ms": ("Time to verify, 90th percentile (verified calls)", "ms"),
    "backend_requests": ("Back-end requests", "count"),
    "backend_errors": ("Back-end errors", "count"),
    "backend_error_rate": ("Back-end error rate, of requests", "rate"),
    "backend_ms_per_call": ("Back-end time per call, average", "ms"),
    "backend_ms_per_request": ("Back-end latency per request, average", "ms"),
    "backend_p90_ms": ("Back-end latency per request, 90th percentile", "ms"),
}
WATERFALL = (
    ("answered", "Calls answered"),
    ("reached_identification", "Reached identification"),
    ("identified", "Identified"),
    ("reached_security", "Reached security"),
    ("verified", "Verified"),
    ("transferred", "Verified and handed to an agent"),
)
_COLUMNS = ("call_id", "started", "lookup", "identified_by", "id_attempts", "opted_out",
            "verify_kind", "verify_result", "verify_attempts", "status", "reason", "auth_ms",
            "transfer_target", "transfer_result", "hangup_step", "backend_ms_total",
            "backend_errors", "hours", "menu_choice", "transfer_tries")
_NEWER = ("hours", "menu_choice", "transfer_tries")     # store v4: NULL in an older file


class ReportError(Exception):
    """The records cannot be read or a filter is wrong; str() is one line."""


@dataclass
class Report:
    """The figures of one period; every part is plain data (see as_dict)."""

    since: float
    until: float
    bucket: str
    filters: dict
    totals: dict
    buckets: list = field(default_factory=list)
    waterfall: list = field(default_factory=list)
    abandoned_by_step: dict = field(default_factory=dict)
    transfers: dict = field(default_factory=dict)
    opted_out_by_step: dict = field(default_factory=dict)
    menu_choices: dict = field(default_factory=dict)
    auth_histogram: list = field(default_factory=list)

    @property
    def timezone(self) -> str:
        """The device's zone as the report's start sees it, e.g. "CEST, UTC+0200"."""
        return _local(self.since).strftime("%Z, UTC%z")

    def as_dict(self) -> dict:
        return {
            "since": iso(self.since), "until": iso(self.until),
            "since_ts": self.since, "until_ts": self.until, "timezone": self.timezone,
            "bucket": self.bucket, "filters": dict(self.filters), "totals": dict(self.totals),
            "buckets": [dict(b) for b in self.buckets],
            "waterfall": [dict(w) for w in self.waterfall],
            "abandoned_by_step": dict(self.abandoned_by_step),
            "transfers": dict(self.transfers), "opted_out_by_step": dict(self.opted_out_by_step),
            "menu_choices": dict(self.menu_choices),
            "auth_histogram": [dict(h) for h in self.auth_histogram],
        }


# ---------------------------------------------------------------------- reading


def open_readonly(db) -> sqlite3.Connection:
    """The call records, read-only; ReportError (one line) if that is not possible."""
    path = Path(db)
    if not path.is_file():
        raise ReportError(f"{path}: no call records file there")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5,
                              isolation_level=None)
        con.execute("PRAGMA query_only = 1")
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as err:
        raise ReportError(f"{path}: cannot read the call records ({_why(err)})") from None
    if not {"calls", "events"} <= names:
        con.close()
        raise ReportError(f"{path}: not a call records file (no calls table)")
    return con


def services(db) -> list[str]:
    """The service lines that have calls on record (for a filter's choices)."""
    con = open_readonly(db)
    try:
        rows = con.execute("SELECT DISTINCT service FROM calls WHERE service IS NOT NULL "
                           "ORDER BY service").fetchall()
    except sqlite3.Error as err:
        raise ReportError(f"{db}: cannot read the call records ({_why(err)})") from None
    finally:
        con.close()
    return [r[0] for r in rows]


def compute_report(db, since: float, until: float, service: str | None = None,
                   status: str | None = None, reason: str | None = None,
                   bucket: str = "day", missing_ok: bool = False) -> Report:
    """The figures of the calls answered in [since, until) (unix seconds) that match
    the filters, in total and per local hour, day or week.

    ReportError (one line) when the file cannot be read; with `missing_ok`, a file
    that does not exist yet (the engine never ran) is a period without calls.
    """
    _check(since, until, status, reason, bucket)
    starts = bucket_starts(since, until, bucket)
    where, params = ["c.started >= ?", "c.started < ?"], [float(since), float(until)]
    for name, value in (("service", service), ("status", status), ("reason", reason)):
        if value is not None:
            where.append(f"c.{name} = ?")
            params.append(value)
    sql_where = " AND ".join(where)
    rows, latencies = [], defaultdict(list)
    if missing_ok and not Path(db).exists():
        return _report(rows, since, until, bucket, starts, service, status, reason)
    con = open_readonly(db)
    try:
        con.execute("BEGIN")             # one snapshot for both reads, held only for them
        have = {r[1] for r in con.execute("PRAGMA table_info(calls)")}
        cols = ", ".join(f"c.{n}" if n in have or n not in _NEWER else f"NULL AS {n}"
                         for n in _COLUMNS)
        cur = con.execute(f"SELECT {cols} FROM calls c "
                          f"WHERE {sql_where} ORDER BY c.started", params)
        rows = [dict(zip(_COLUMNS, r)) for r in cur.fetchall()]
        for call_id, ms in con.execute(
                "SELECT e.call_id, json_extract(e.detail, '$.ms') FROM events e "
                f"JOIN calls c ON c.call_id = e.call_id WHERE {sql_where} "
                "AND e.step IN ('lookup', 'identifier', 'verify')", params):
            if isinstance(ms, (int, float)) and not isinstance(ms, bool):
                latencies[call_id].append(float(ms))
        con.execute("COMMIT")
    except sqlite3.Error as err:
        raise ReportError(f"{db}: cannot read the call records ({_why(err)})") from None
    finally:
        con.close()
    for row in rows:
        row["requests"] = latencies.get(row["call_id"], [])
        row["facts"] = facts(row)
    return _report(rows, since, until, bucket, starts, service, status, reason)


def _report(rows, since, until, bucket, starts, service, status, reason) -> Report:
    per_bucket: list[list[dict]] = [[] for _ in starts]
    for row in rows:
        per_bucket[bisect_right(starts, row["started"]) - 1].append(row)
    buckets = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else until
        buckets.append({"start": iso(max(start, since)), "end": iso(end),
                        "label": bucket_label(start, bucket), **figures(per_bucket[i])})
    return Report(
        since=float(since), until=float(until), bucket=bucket,
        filters={"service": service, "status": status, "reason": reason},
        totals=figures(rows), buckets=buckets, waterfall=waterfall(rows),
        abandoned_by_step=abandoned_by_step(rows), transfers=transfers(rows),
        opted_out_by_step=_ordered(Counter(r["opted_out"] for r in rows if r["opted_out"]),
                                   ("identifier", "security")),
        menu_choices=dict(sorted(Counter(r["menu_choice"] for r in rows
                                         if r.get("menu_choice")).items())),
        auth_histogram=auth_histogram(rows))


def _check(since, until, status, reason, bucket) -> None:
    if bucket not in BUCKETS:
        raise ReportError(f"period {bucket!r} is not one of {', '.join(BUCKETS)}")
    if status is not None and status not in STATUSES:
        raise ReportError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if reason is not None and reason not in REASONS:
        raise ReportError(f"reason {reason!r} is not one of {', '.join(REASONS)}")
    if not until > since:
        raise ReportError(f"the period is empty: until ({iso(until)}) is not after since "
                          f"({iso(since)})")


# ---------------------------------------------------------------------- buckets


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts).astimezone()


def iso(ts: float) -> str:
    """Local time, ISO 8601 to the second, with its UTC offset."""
    return _local(ts).isoformat(timespec="seconds")


def bucket_floor(ts: float, bucket: str) -> float:
    """The start of the local hour, day or week (Monday) that `ts` falls in."""
    t = datetime.fromtimestamp(ts)           # naive local time; fold kept for DST
    if bucket == "hour":
        return t.replace(minute=0, second=0, microsecond=0).timestamp()
    day = datetime(t.year, t.month, t.day)
    if bucket == "week":
        day -= timedelta(days=t.weekday())
    return day.timestamp()


def _next(start: float, bucket: str) -> float:
    if bucket == "hour":
        return start + 3600.0
    t = datetime.fromtimestamp(start)
    day = datetime(t.year, t.month, t.day) + timedelta(days=7 if bucket == "week" else 1)
    return day.timestamp()


def bucket_starts(since: float, until: float, bucket: str) -> list[float]:
    """The local boundaries of the buckets covering [since, until); the first may begin
    before `since` (its calls still start at `since`)."""
    starts = [bucket_floor(since, bucket)]
    while True:
        nxt = _next(starts[-1], bucket)
        if nxt <= starts[-1]:                   # a clock oddity; never loop forever
            nxt = starts[-1] + 3600.0
        if nxt >= until:
            return starts
        if len(starts) >= MAX_BUCKETS:
            raise ReportError(f"the period has more than {MAX_BUCKETS} {bucket}s: choose a "
                              "shorter period or a longer bucket (hour, day, week)")
        starts.append(nxt)


def bucket_label(start: float, bucket: str) -> str:
    t = datetime.fromtimestamp(start)
    if bucket == "hour":
        return t.strftime("%Y-%m-%d %H:00")
    if bucket == "week":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d} ({t:%Y-%m-%d})"
    return t.strftime("%Y-%m-%d")


# ---------------------------------------------------------------------- figures


def facts(r: dict) -> list[str]:
    """The countable facts of one call, each once: the definitions of the counts."""
    status, by, opted = r["status"], r["identified_by"], r["opted_out"]
    out = [status or "unfinished"]
    if by is not None:
        out += ["identified_any", f"identified_by_{by}"]
    if r["lookup"] in LOOKUP_ANSWERS:
        out.append("number_lookups")
    if (r["id_attempts"] or 0) >= 1 or opted == "identifier":
        out.append("asked_identifier")
    if _reached_security(r):
        out.append("verify_asked")
        if status == "verified":
            out.append("verified_of_asked")
        if r["reason"] == "locked":
            out.append("locked_of_asked")
    if status == "verified" and r["verify_attempts"] == 1:
        out.append("first_try")
    if opted is not None:
        out += ["opted_out", f"opted_out_at_{opted}"]
    if r["reason"] in ("locked", "backend_down", "no_secret"):
        out.append(r["reason"])
    if r.get("hours") in ("closed", "holiday", "override"):
        out.append("after_hours")
        if r["hours"] != "closed":
            out.append(f"after_hours_{r['hours']}")
    if (r.get("transfer_tries") or 0) > 1:
        out.append("fallback_used")
    if r.get("menu_choice") and r["menu_choice"] not in ("no_input", "invalid"):
        out.append("menu_chosen")
    if _abandoned(r):
        out += ["abandoned", f"abandoned_at_{r['hangup_step']}"]
    if r["transfer_result"] in HANDED_OVER:
        out.append("transferred")
    if r["transfer_target"] is not None:
        out.append(f"transfer_{_transfer_result(r)}")
    return out


def figures(rows: list[dict]) -> dict:
    """Every scalar figure (FIELDS) of a set of calls, plus per-step and per-result
    counts as flat keys (abandoned_at_<step>, transfer_<result>). One pass over the
    rows; `facts` says what each count counts."""
    c: Counter = Counter()
    auth, verified_auth, requests = [], [], []
    backend_ms, backend_calls, errors = 0.0, 0, 0
    for r in rows:
        c.update(r["facts"] if "facts" in r else facts(r))
        if r["auth_ms"] is not None:
            auth.append(r["auth_ms"])
            if r["status"] == "verified":
                verified_auth.append(r["auth_ms"])
        requests.extend(r["requests"])
        if r["backend_ms_total"] is not None:
            backend_ms += r["backend_ms_total"]
            backend_calls += 1
        errors += r["backend_errors"] or 0
    n, asked = len(rows), c["verify_asked"]
    out = {
        "calls": n,
        "verified": c["verified"],
        "identified": c["identified"],
        "not_identified": c["not_identified"],
        "unfinished": c["unfinished"],
        "identified_any": c["identified_any"],
        "identification_rate": rate(c["identified_any"], n),
        "identified_by_number": c["identified_by_number"],
        "by_number_rate": rate(c["identified_by_number"], n),
        "identified_by_keyed": c["identified_by_keyed"],
        "by_keyed_rate": rate(c["identified_by_keyed"], n),
        "number_lookups": c["number_lookups"],
        "number_hit_rate": rate(c["identified_by_number"], c["number_lookups"]),
        "asked_identifier": c["asked_identifier"],
        "keyed_hit_rate": rate(c["identified_by_keyed"], c["asked_identifier"]),
        "verify_asked": asked,
        "verification_rate": rate(c["verified_of_asked"], asked),
        "first_try": c["first_try"],
        "first_try_rate": rate(c["first_try"], asked),
        "opted_out": c["opted_out"],
        "opted_out_at_identifier": c["opted_out_at_identifier"],
        "opted_out_at_security": c["opted_out_at_security"],
        "opt_out_rate": rate(c["opted_out"], n),
        "locked": c["locked"],
        "lockout_rate": rate(c["locked_of_asked"], asked),
        "backend_down": c["backend_down"],
        "no_secret": c["no_secret"],
        "after_hours": c["after_hours"],
        "after_hours_holiday": c["after_hours_holiday"],
        "after_hours_override": c["after_hours_override"],
        "fallback_used": c["fallback_used"],
        "menu_chosen": c["menu_chosen"],
        "abandoned": c["abandoned"],
        "abandon_rate": rate(c["abandoned"], n),
        "transferred": c["transferred"],
        "auth_avg_ms": mean(auth),
        "auth_p90_ms": percentile(auth, 90),
        "verified_auth_avg_ms": mean(verified_auth),
        "verified_auth_p90_ms": percentile(verified_auth, 90),
        "backend_requests": len(requests),
        "backend_errors": errors,
        "backend_error_rate": rate(errors, len(requests)),
        "backend_ms_per_call": mean_of(backend_ms, backend_calls),
        "backend_ms_per_request": mean_of(backend_ms, len(requests)),
        "backend_p90_ms": percentile(requests, 90),
    }
    for step in ABANDON_STEPS:
        out[f"abandoned_at_{step}"] = c[f"abandoned_at_{step}"]
    for result in TRANSFER_RESULTS:
        out[f"transfer_{result}"] = c[f"transfer_{result}"]
    return out


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def mean(values: list[float]) -> float | None:
    return mean_of(sum(values), len(values))


def mean_of(total: float, n: int) -> float | None:
    return round(total / n, 1) if n else None


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p % of the values at or
    under it (a value that occurred; no interpolation). None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered) / 100))
    return ordered[rank - 1]


def _reached_security(r: dict) -> bool:
    return (r["identified_by"] is not None and r["verify_kind"] is not None
            and r["verify_result"] != "no_secret")


def _abandoned(r: dict) -> bool:
    return r["hangup_step"] is not None and r["hangup_step"] not in NOT_ABANDONED


def _transfer_result(r: dict) -> str:
    return r["transfer_result"] or "no_result"


def _ordered(counts: Counter, order: tuple[str, ...]) -> dict:
    """Counts in the given order first (zeros kept), then any other key, sorted."""
    out = {k: counts.get(k, 0) for k in order}
    out.update({k: counts[k] for k in sorted(counts) if k not in out})
    return out


def waterfall(rows: list[dict]) -> list[dict]:
    """Calls left at each step of the flow; each step is a subset of the one before."""
    tests = {
        "answered": lambda r: True,
        "reached_identification": lambda r: (r["lookup"] in LOOKUP_ANSWERS
                                             or (r["id_attempts"] or 0) >= 1
                                             or r["opted_out"] is not None
                                             or r["identified_by"] is not None),
        "identified": lambda r: r["identified_by"] is not None,
        "reached_security": _reached_security,
        "verified": lambda r: r["status"] == "verified",
        "transferred": lambda r: r["transfer_result"] in HANDED_OVER,
    }
    left, out, answered = list(rows), [], len(rows)
    for key, label in WATERFALL:
        before = len(left)
        left = [r for r in left if tests[key](r)]
        out.append({"step": key, "label": label, "calls": len(left),
                    "drop": before - len(left), "share": rate(len(left), answered)})
    return out


def abandoned_by_step(rows: list[dict]) -> dict:
    """Calls whose caller hung up before an agent, by the flow step they were at."""
    return _ordered(Counter(r["hangup_step"] for r in rows if _abandoned(r)), ABANDON_STEPS)


def transfers(rows: list[dict]) -> dict:
    """Transfers by result, over calls sent to an extension; no_result: the call ended
    before the transfer did (the caller hung up during the last prompt)."""
    return _ordered(Counter(_transfer_result(r) for r in rows
                            if r["transfer_target"] is not None), TRANSFER_RESULTS)


def auth_histogram(rows: list[dict]) -> list[dict]:
    """Calls by time to authenticate, in AUTH_BINS_S seconds (the last bin is open)."""
    counts = [0] * len(AUTH_BINS_S)
    for r in rows:
        if r["auth_ms"] is not None:
            counts[bisect_right(AUTH_BINS_S, r["auth_ms"] / 1000) - 1] += 1
    out = []
    for i, low in enumerate(AUTH_BINS_S):
        high = AUTH_BINS_S[i + 1] if i + 1 < len(AUTH_BINS_S) else None
        label = f"{low}-{high} s" if high is not None else f"{low}+ s"
        out.append({"low_s": low, "high_s": high, "label": label, "calls": counts[i]})
    return out


def _why(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def columns() -> list[tuple[str, str, str]]:
    """(key, label, kind) of every flat figure of `figures`, in a stable order: the
    FIELDS, then abandoned calls by step, then transfers by result."""
    out = [(k, label, kind) for k, (label, kind) in FIELDS.items()]
    out += [(f"abandoned_at_{s}", f"Abandoned at: {STEP_LABELS[s]}", "count")
            for s in ABANDON_STEPS]
    out += [(f"transfer_{r}", f"Transfer result: {r.replace('_', ' ')}", "count")
            for r in TRANSFER_RESULTS]
    return out
