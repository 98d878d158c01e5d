"""The device's state as Prometheus metric families, read from the store at each scrape.

A custom collector (prometheus_client's "collector" interface): each scrape
takes telemetry/health.py's snapshot (the same MQTT's state carries), the
answered calls by outcome and the recorder's back-end histogram
(store/health.py), all from the call-record file opened read-only, so the
engine's process is never asked and the audio path never notices a scrape.
The web app serves it at /metrics (web/metrics.py).

Names follow Prometheus' conventions: a `callgate_` prefix, base units
(seconds, bytes, celsius), `_total` for counters, `_info` for the version, an
enum as one gauge per state. Labels hold names and closed sets only (line
names, statuses, failure kinds), never a number or an identifier.
`callgate_calls_total` counts answered calls as their records are finished
(the recorder keeps the totals, so a scrape reads a row per outcome, not every
call, and deleting old records takes nothing back); a call that rang out has
no record and is not in it. Counts since the
engine started on a line (audio faults, overruns) go back to 0 when it
restarts, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, InfoMetricFamily)

from ..call import LINE_STATES
from ..store.health import read_backend_latency, read_call_totals
from .health import open_read_only, state_from

log = logging.getLogger("callgate.telemetry")

BREAKER_STATES = ("closed", "open", "half-open")


class DeviceCollector:
    """prometheus_client's custom collector: the metric families, read at each scrape."""

    def __init__(self, store: str | Path) -> None:
        self.store = Path(store)

    def collect(self):
        db = open_read_only(self.store)
        try:
            state = state_from(db, data_dir=self.store.parent)
            calls = _safe(read_call_totals, db, [])
            latency = _safe(read_backend_latency, db, {})
        finally:
            if db is not None:
                db.close()
        yield from _device(state)
        yield _calls_family(calls)
        yield from _lines(state["lines"])
        yield from _backend(state["backend"], latency)
        yield from _outbox(state["outbox"])
        yield from _board(state)


def _safe(read, db, empty):
    if db is None:
        return empty
    try:
        return read(db)
    except sqlite3.Error as err:
        log.error("/metrics: the call records could not be read (%s)", type(err).__name__)
        return empty


def _device(state: dict):
    info = InfoMetricFamily("callgate_build", "The firmware's version.")
    info.add_metric([], {"version": str(state["version"])})
    yield info
    if state["uptime_s"] is not None:
        yield GaugeMetricFamily("callgate_uptime_seconds", "Seconds since the board booted.",
                                value=state["uptime_s"])


def _calls_family(rows: list[tuple]):
    calls = CounterMetricFamily(
        "callgate_calls", "Answered calls with a finished record, by outcome.",
        labels=["line", "status", "reason"])
    for line, status, reason, n in rows:
        calls.add_metric([str(line), str(status), str(reason)], n)
    return calls


def _lines(lines: list[dict]):
    up = GaugeMetricFamily("callgate_line_up", "1 while the line is not down and its "
                           "interface works.", labels=["line"])
    state = GaugeMetricFamily("callgate_line_state", "1 for the line's current state.",
                              labels=["line", "state"])
    present = GaugeMetricFamily("callgate_line_interface_present", "1 while the line "
                                "interface (modem, HAT) works.", labels=["line", "interface"])
    rang = GaugeMetricFamily("callgate_line_callerid_calls", "Calls that rang, of the "
                             "last few (the window).", labels=["line"])
    heard = GaugeMetricFamily("callgate_line_callerid_received", "Of those, calls that "
                              "brought caller ID.", labels=["line"])
    counts = {key: CounterMetricFamily(f"callgate_line_{key}", text, labels=["line"])
              for key, text in (("audio_faults", "Playback underruns since the engine "
                                 "started on the line."),
                                ("overruns", "Capture overruns (audio lost) since then."),
                                ("engine_faults", "Engine faults survived since then."))}
    updated = GaugeMetricFamily("callgate_line_health_updated_timestamp_seconds",
                                "When the engine last reported on the line.", labels=["line"])
    for ln in lines:
        name = str(ln["line"])
        up.add_metric([name], 1 if ln["up"] else 0)
        for s in LINE_STATES:
            state.add_metric([name, s], 1 if ln["state"] == s else 0)
        if ln["modem_present"] is None:
            continue                     # the engine has not reported its health yet
        present.add_metric([name, str(ln["interface"] or "")], 1 if ln["modem_present"] else 0)
        rang.add_metric([name], ln["callerid"]["rang"])
        heard.add_metric([name], ln["callerid"]["received"])
        for key, family in counts.items():
            family.add_metric([name], ln[key])
        updated.add_metric([name], ln["updated"])
    yield from (up, state, present, rang, heard, *counts.values(), updated)


def _backend(backend: dict | None, latency: dict):
    hist = HistogramMetricFamily(
        "callgate_backend_request_seconds", "Time a caller waited on each back-end request.",
        labels=["backend"])
    for name, h in sorted(latency.items()):
        hist.add_metric([name], [(le, n) for le, n in h["buckets"]], h["sum"])
    yield hist
    if backend is None:
        return
    name = str(backend["name"])
    errors = CounterMetricFamily("callgate_backend_errors", "Back-end requests that failed, "
                                 "by kind.", labels=["backend", "kind"])
    for kind, n in sorted(backend["errors_by_kind"].items()):
        errors.add_metric([name, kind], n)
    yield errors
    for key, text in (("last_success", "When the back end last answered."),
                      ("last_error", "When a back-end request last failed.")):
        if backend[key] is not None:
            g_ = GaugeMetricFamily(f"callgate_backend_{key}_timestamp_seconds", text,
                                   labels=["backend"])
            g_.add_metric([name], backend[key])
            yield g_
    if backend["breaker"] is not None:
        breaker = GaugeMetricFamily("callgate_backend_breaker_state", "1 for the circuit "
                                    "breaker's current state.", labels=["backend", "state"])
        for s in BREAKER_STATES:
            breaker.add_metric([name, s], 1 if backend["breaker"] == s else 0)
        yield breaker


def _outbox(outbox: dict):
    if outbox["pending"] is None:
        return
    yield GaugeMetricFamily("callgate_outbox_pending", "Call outcomes waiting to be "
                            "written back.", value=outbox["pending"])
    yield GaugeMetricFamily("callgate_outbox_dead", "Call outcomes given up on (retry or "
                            "purge them).", value=outbox["dead"])
    if outbox["oldest_pending_s"] is not None:
        yield GaugeMetricFamily("callgate_outbox_oldest_pending_seconds", "Age of the oldest "
                                "outcome waiting.", value=outbox["oldest_pending_s"])


def _board(state: dict):
    storage = state["storage"]
    if storage is not None:
        yield GaugeMetricFamily("callgate_data_free_bytes", "Free space on the data "
                                "partition.", value=storage["free_bytes"])
        yield GaugeMetricFamily("callgate_data_size_bytes", "Size of the data partition.",
                                value=storage["total_bytes"])
    board = state["board"]
    if board["cpu_temp_c"] is not None:
        yield GaugeMetricFamily("callgate_cpu_temperature_celsius", "The CPU's temperature.",
                                value=board["cpu_temp_c"])
    throttled = board["throttled"]
    if throttled is not None:
        family = GaugeMetricFamily("callgate_throttled", "1 while the board reports the "
                                   "condition (now), or has since boot.",
                                   labels=["condition", "when"])
        for cond in ("under_voltage", "freq_capped", "throttled", "soft_temp_limit"):
            family.add_metric([cond, "now"], 1 if throttled[cond] else 0)
            family.add_metric([cond, "since_boot"], 1 if throttled[f"{cond}_since_boot"] else 0)
        yield family
