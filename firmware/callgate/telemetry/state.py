"""The retained state document: what an installer needs to see of a device at a glance.

Built on the telemetry thread from the device-state snapshot (health.py: version,
uptime, each line's health, the back end's, the outbox, free space, the board's
temperature) plus what only telemetry knows: today's calls by outcome (from the
call records), its own outbox, the last remote configuration, and the alarms.

Alarms are names an installer can act on (README, "What each alarm means");
each comes with the line it concerns, if any, and a short why. They are
worked out here, on the device, so `callgate fleet` and Home Assistant show
the same ones.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

from ..store.outbox import Outbox, iso_utc
from ..store.records import CallStore
from .events import TABLE

OUTCOMES = ("verified", "identified", "not_identified")
DISK_LOW_FRACTION = 0.10          # free space on the data partition below this: alarm
HOT_C = 80.0                      # the SoC throttles at 85 C on a Pi
BACKLOG_S = 3600.0                # a write-back row older than this, still pending: alarm
NO_CALLERID_RINGS = 3             # this many answered rings in a row without caller ID


def calls_today(store: CallStore, zone: dt.tzinfo, now: float | None = None) -> dict:
    """Calls since local midnight by outcome (the record's status), and their total."""
    now = time.time() if now is None else now
    local = dt.datetime.fromtimestamp(now, zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    with store.lock:
        rows = store.db.execute("SELECT status, COUNT(*) FROM calls WHERE started >= ? "
                                "GROUP BY status", (midnight,)).fetchall()
    got = {status or "unknown": n for status, n in rows}
    out = {name: got.get(name, 0) for name in OUTCOMES}
    out["total"] = sum(got.values())
    return out


def alarms(doc: dict) -> list[dict]:
    """The alarms a state document shows, in a fixed order (README: what each means)."""
    out: list[dict] = []

    def alarm(name: str, why: str, line: str | None = None) -> None:
        out.append({"alarm": name, **({"line": line} if line else {}), "why": why})

    for name, line in sorted((doc.get("lines") or {}).items()):
        if line.get("state") == "down":
            alarm("line_down", line.get("fault") or line.get("step") or "the line failed",
                  name)
        elif line.get("modem_present") is False:
            alarm("modem_missing", line.get("fault") or "the line interface is not "
                                                        "answering", name)
        cid = line.get("callerid") or {}
        rang, got = cid.get("rang"), cid.get("received")
        if isinstance(rang, int) and isinstance(got, int) and rang >= NO_CALLERID_RINGS \
                and got == 0:
            alarm("no_callerid", f"no caller ID on the last {rang} calls that rang", name)
    backend = doc.get("backend") or {}
    if backend.get("breaker") == "open":
        alarm("backend_down", "circuit breaker open (last error: "
                              f"{backend.get('last_error_kind') or 'unknown'})")
    elif backend.get("last_error_kind") == "auth" and \
            (backend.get("last_success") or 0) < (backend.get("last_error") or 0):
        alarm("backend_auth", "the back end refused the device's credentials "
                              "(token or password expired?)")
    outbox = doc.get("outbox") or {}
    if outbox.get("dead"):
        alarm("writeback_dead", f"{outbox['dead']} call outcomes the back end never took "
                                "(callgate outbox list)")
    age = outbox.get("oldest_pending_s")
    if isinstance(age, (int, float)) and age > BACKLOG_S:
        alarm("writeback_backlog", f"oldest undelivered outcome {int(age // 60)} min old")
    disk = doc.get("storage") or {}
    free, total = disk.get("free_bytes"), disk.get("total_bytes")
    if isinstance(free, int) and isinstance(total, int) and total \
            and free / total < DISK_LOW_FRACTION:
        alarm("disk_low", f"{free // (1 << 20)} MiB free on the data partition")
    board = doc.get("board") or {}
    temp = board.get("cpu_temp_c")
    if isinstance(temp, (int, float)) and temp >= HOT_C:
        alarm("hot", f"CPU at {temp:.0f} C")
    throttled = board.get("throttled") or {}
    now = [k for k in ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")
           if throttled.get(k)]
    if now:
        alarm("throttled", "the board reports " + ", ".join(k.replace("_", " ") for k in now))
    dropped = (doc.get("records") or {}).get("dropped")
    if dropped:
        alarm("records_dropped", f"{dropped} record steps dropped (the disk stalled)")
    remote = doc.get("remote_config") or {}
    if remote.get("result") == "refused":
        alarm("remote_config_refused", remote.get("why") or "refused")
    elif remote.get("result") in ("applied", "unchanged") and remote.get("serial") is not None \
            and not remote.get("restarting") and remote.get("running") != remote["serial"]:
        alarm("remote_config_not_running", f"config {remote['serial']} was applied but the "
                                           "device runs the local file (it did not start)")
    return out


class StateBuilder:
    """Builds the document from the device-state snapshot (`health(store)`, health.py's
    shape) and what telemetry adds."""

    def __init__(self, device_id: str, zone: dt.tzinfo,
                 health: Callable[[CallStore], dict],
                 remote: Callable[[], dict | None] = lambda: None,
                 extra: Callable[[], dict] = dict) -> None:
        self.device_id = device_id
        self.zone = zone
        self.health = health
        self.remote = remote
        self.extra = extra

    def build(self, store: CallStore) -> dict:
        doc: dict[str, Any] = dict(self.health(store))
        doc.update(self.extra())
        doc["device"] = self.device_id
        doc["at"] = iso_utc(doc.get("at") or time.time())
        # by name, for Home Assistant's templates and the fleet view
        doc["lines"] = {line["line"]: {k: v for k, v in line.items() if k != "line"}
                        for line in doc.get("lines") or []}
        doc["calls_today"] = calls_today(store, self.zone)
        doc["events_pending"] = Outbox(store, TABLE).counts()["pending"]
        doc["remote_config"] = self.remote()
        doc["alarms"] = alarms(doc)
        return doc


def snapshot_of(data_dir) -> Callable[[CallStore], dict]:
    """health.py's snapshot, read through the telemetry thread's own store connection."""
    from .health import state_from

    return lambda store: state_from(store.db, data_dir=data_dir)


def changed(a: dict | None, b: dict) -> bool:
    """Whether `b` is news against `a`: a line's state, the alarms, today's calls or the
    remote config (not the flow's step within a call, the clock or a queue's depth, which
    the next periodic state carries)."""
    if a is None:
        return True

    def gist(doc: dict) -> tuple:
        lines = {n: (v or {}).get("state") for n, v in (doc.get("lines") or {}).items()}
        return (lines, doc.get("alarms"), doc.get("calls_today"), doc.get("remote_config"))

    return gist(a) != gist(b)
