"""Reports: figures over hand-built call stores with answers counted by hand here, figures
of real simulated calls (engine + ID&V flow + embedded directory), `callgate report` in
every format, and the CSV/XLSX read back. Real SQLite files throughout; the local time
zone is set (TZ) so day and week boundaries are the ones written below."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

from callgate import cli
from callgate.report import ReportError, compute_report
from callgate.report import charts
from callgate.report.export import csv_header, write_xlsx
from callgate.report.figures import (FIELDS, REASONS, STATUSES, TRANSFER_OUTCOMES,
                                     bucket_starts, columns, open_readonly, percentile)
from callgate.report.period import day_range, parse_when, preset
from callgate.store.records import CallStore

FIXTURES = Path(__file__).parent / "fixtures"
PARIS = "Europe/Paris"


@pytest.fixture()
def paris(monkeypatch):
    """Local time of the 'device': Paris (CEST in May, DST changes in March/October)."""
    monkeypatch.setenv("TZ", PARIS)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def local(*args) -> float:
    return datetime(*args).timestamp()


# ---------------------------------------------------------------------- hand-built store


@dataclass
class Shape:
    """One call as the flow would have left it: its fields and its back-end replies."""

    call_id: str
    when: tuple
    service: str = "support"
    fields: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)     # (event step, result, ms, error)
    quiet_events: list = field(default_factory=list)  # events without a latency


def verified(attempts=1, auth=10000, result="completed", by="number", **more):
    f = {"lookup": "hit" if by == "number" else "disabled", "identified_by": by,
         "customer_id_masked": "******78", "customer_name": "Jane Smith", "verify_kind": "pin",
         "verify_attempts": attempts, "verify_result": "verified", "assurance": "high",
         "status": "verified", "auth_ms": auth, "transfer_target": "201",
         "transfer_mode": "blind", "transfer_result": result}
    f.update(more)
    return f


SUN, MON = (2026, 5, 3), (2026, 5, 4)       # a Sunday and the Monday after it
LOOKUP = ("lookup", "hit", 100, False)
VERIFY = ("verify", "verified", 100, False)
SHAPES = [
    Shape("c01", (*SUN, 0, 0, 0), fields=verified(auth=10000),
          requests=[LOOKUP, ("verify", "verified", 50, False)]),
    Shape("c02", (*SUN, 10, 15), fields=verified(attempts=2, auth=30000, by="keyed",
                                                 lookup="miss", id_attempts=1),
          requests=[("lookup", "miss", 120, False), ("identifier", "hit", 80, False),
                    ("verify", "rejected", 60, False), ("verify", "verified", 40, False)]),
    Shape("c03", (*SUN, 11, 0), "sales",
          fields={"lookup": "hit", "identified_by": "number", "verify_kind": "pin",
                  "verify_attempts": 3, "verify_result": "failed", "status": "identified",
                  "auth_ms": 45000, "transfer_target": "202", "transfer_result": "answered"},
          requests=[("lookup", "hit", 90, False)] + [("verify", "rejected", 50, False)] * 3),
    Shape("c04", (*SUN, 12, 0),
          fields={"lookup": "hit", "identified_by": "number", "verify_kind": "pin",
                  "verify_result": "locked", "status": "identified", "reason": "locked",
                  "auth_ms": 5000, "transfer_target": "205", "transfer_result": "busy"},
          requests=[LOOKUP]),
    Shape("c05", (*SUN, 13, 0),
          fields={"lookup": "withheld", "opted_out": "identifier", "status": "not_identified",
                  "reason": "opted_out", "auth_ms": 8000, "transfer_target": "204",
                  "transfer_result": "completed"},
          quiet_events=[("lookup", {"source": "number", "result": "withheld"}),
                        ("opt_out", {"step": "identifier"})]),
    Shape("c06", (*SUN, 14, 0), "sales",
          fields={"lookup": "miss", "id_attempts": 1, "identified_by": "keyed",
                  "verify_kind": "pin", "opted_out": "security", "verify_result": "skipped",
                  "status": "identified", "reason": "opted_out", "auth_ms": 20000,
                  "transfer_target": "204", "transfer_result": "completed"},
          requests=[("lookup", "miss", 100, False), ("identifier", "hit", 100, False)]),
    Shape("c07", (*SUN, 15, 0),
          fields={"lookup": "error", "status": "not_identified", "reason": "backend_down",
                  "auth_ms": 4000, "transfer_target": "206", "transfer_result": "completed"},
          requests=[("lookup", "error", 3000, True)]),
    Shape("c08", (*SUN, 16, 0),
          fields={"lookup": "withheld", "status": "not_identified", "hangup_step": "identifier"},
          quiet_events=[("hangup", {"step": "identifier", "how": "cpc"})]),
    Shape("c09", (*SUN, 17, 0),
          fields={"lookup": "hit", "identified_by": "number", "verify_kind": "pin",
                  "status": "identified", "hangup_step": "security"},
          requests=[LOOKUP]),
    Shape("c10", (*SUN, 23, 59, 59),
          fields=verified(auth=15000, result=None, hangup_step="transfer"),
          requests=[LOOKUP, VERIFY]),
    Shape("c11", (*MON, 0, 0, 0),
          fields={"lookup": "miss", "id_attempts": 3, "status": "not_identified",
                  "auth_ms": 60000, "transfer_target": "203", "transfer_result": "no_answer"},
          requests=[("lookup", "miss", 100, False)] + [("identifier", "miss", 100, False)] * 3),
    Shape("c12", (*MON, 8, 0), "sales",
          fields={"lookup": "hit", "identified_by": "number", "verify_kind": "pin"},
          requests=[LOOKUP]),
    Shape("c13", (*MON, 9, 0), "sales",
          fields={"lookup": "hit", "identified_by": "number", "verify_result": "skipped",
                  "status": "identified", "auth_ms": 3000, "transfer_target": "202",
                  "transfer_result": "completed"},
          requests=[LOOKUP]),
    Shape("c14", (*MON, 9, 30), fields=verified(auth=12000), requests=[LOOKUP, VERIFY]),
    Shape("c15", (*MON, 10, 0), fields=verified(auth=11000, result="answered"),
          requests=[LOOKUP, VERIFY]),
    Shape("c16", (*MON, 11, 0), fields=verified(attempts=3, auth=50000),
          requests=[LOOKUP, ("verify", "rejected", 100, False),
                    ("verify", "rejected", 100, False), VERIFY]),
    Shape("c17", (*MON, 12, 0), "sales",
          fields={"status": "not_identified", "hangup_step": "lookup_number"}),
    Shape("c18", (*MON, 13, 0),
          fields={"lookup": "withheld", "id_attempts": 1, "status": "not_identified",
                  "hangup_step": "identifier"},
          quiet_events=[("identifier", {"attempt": 1, "result": "no_input"})]),
    Shape("c19", (*MON, 14, 0),
          fields=verified(auth=9000, result="failed", hangup_step="agent_unavailable"),
          requests=[LOOKUP, VERIFY]),
    Shape("c20", (*MON, 23, 0), fields=verified(auth=25000, by="keyed", id_attempts=1),
          requests=[("identifier", "hit", 100, False), VERIFY]),
]
# just outside [Sunday 00:00, Tuesday 00:00)
OUTSIDE = [Shape("x1", (2026, 5, 2, 23, 59, 59), fields=verified()),
           Shape("x2", (2026, 5, 5, 0, 0, 0), fields=verified(), requests=[LOOKUP])]


def build(path: Path, shapes) -> Path:
    with CallStore(path, synchronous="NORMAL") as store:
        for s in shapes:
            t = local(*s.when)
            store.start(s.call_id, "line1", s.service, t, "********23")
            store.update(s.call_id, **{k: v for k, v in s.fields.items()})
            for i, (step, result, ms, error) in enumerate(s.requests):
                store.event(s.call_id, step, {"result": result, "ms": ms}, at=t + i + 1)
                store.add_backend(s.call_id, ms, error)
            for step, detail in s.quiet_events:
                store.event(s.call_id, step, detail, at=t + 1)
    return path


@pytest.fixture()
def calls(tmp_path, paris):
    return build(tmp_path / "calls.sqlite", SHAPES + OUTSIDE)


def period() -> tuple[float, float]:
    """[Sunday 00:00, Tuesday 00:00) local time (call it once TZ is set)."""
    return local(*SUN), local(2026, 5, 5)


def test_the_values_the_flow_writes_are_the_ones_a_report_knows():
    from callgate.call import TRANSFER_OUTCOMES as ENGINE_TRANSFERS
    from callgate.flow.outcome import REASONS as FLOW_REASONS, STATUSES as FLOW_STATUSES

    assert STATUSES == FLOW_STATUSES
    assert REASONS == FLOW_REASONS
    assert TRANSFER_OUTCOMES == ENGINE_TRANSFERS


def test_totals_of_twenty_known_calls(calls):
    t = compute_report(calls, *period()).totals
    # counted by hand from SHAPES (x1 is a second too early, x2 is `until` itself)
    assert t["calls"] == 20
    assert (t["verified"], t["identified"], t["not_identified"], t["unfinished"]) == (8, 5, 6, 1)
    assert (t["identified_by_number"], t["identified_by_keyed"], t["identified_any"]) == (11, 3, 14)
    assert t["identification_rate"] == pytest.approx(14 / 20)
    assert t["by_number_rate"] == pytest.approx(11 / 20)
    assert t["by_keyed_rate"] == pytest.approx(3 / 20)
    assert t["number_lookups"] == 15 and t["number_hit_rate"] == pytest.approx(11 / 15)
    assert t["asked_identifier"] == 6 and t["keyed_hit_rate"] == pytest.approx(3 / 6)
    assert t["verify_asked"] == 13
    assert t["verification_rate"] == pytest.approx(8 / 13)
    assert t["first_try"] == 6 and t["first_try_rate"] == pytest.approx(6 / 13)
    assert (t["opted_out"], t["opted_out_at_identifier"], t["opted_out_at_security"]) == (2, 1, 1)
    assert t["opt_out_rate"] == pytest.approx(0.1)
    assert t["locked"] == 1 and t["lockout_rate"] == pytest.approx(1 / 13)
    assert t["backend_down"] == 1
    assert t["abandoned"] == 5 and t["abandon_rate"] == pytest.approx(0.25)
    assert t["transferred"] == 11


def test_abandoned_transfers_and_opt_outs_by_kind(calls):
    r = compute_report(calls, *period())
    assert {k: v for k, v in r.abandoned_by_step.items() if v} == {
        "lookup_number": 1, "identifier": 2, "security": 1, "transfer": 1}
    assert "agent_unavailable" not in r.abandoned_by_step     # c19: the flow was done
    assert r.transfers == {"completed": 9, "answered": 2, "busy": 1, "no_answer": 1,
                           "no_recall": 0, "failed": 1, "no_result": 1}
    assert r.opted_out_by_step == {"identifier": 1, "security": 1}
    assert r.totals["abandoned_at_identifier"] == 2 and r.totals["transfer_busy"] == 1


def test_time_to_authenticate_mean_and_nearest_rank_p90(calls):
    t = compute_report(calls, *period()).totals
    auth = [s.fields["auth_ms"] for s in SHAPES if s.fields.get("auth_ms") is not None]
    assert len(auth) == 15
    assert t["auth_avg_ms"] == pytest.approx(sum(auth) / 15, abs=0.05)
    # nearest rank: ceil(0.9 * 15) = 14th of 15 sorted values; numpy's inverted_cdf agrees
    assert t["auth_p90_ms"] == sorted(auth)[13] == 50000
    assert t["auth_p90_ms"] == np.percentile(auth, 90, method="inverted_cdf")
    ver = [s.fields["auth_ms"] for s in SHAPES if s.fields.get("status") == "verified"]
    assert t["verified_auth_avg_ms"] == pytest.approx(np.mean(ver), abs=0.05)
    assert t["verified_auth_p90_ms"] == np.percentile(ver, 90, method="inverted_cdf")


@pytest.mark.parametrize("values, expected", [
    ([7], 7), (list(range(1, 11)), 9), (list(range(1, 21)), 18), (list(range(1, 12)), 10),
    ([5, 1, 4, 2, 3], 5), ([], None)])
def test_percentile_is_nearest_rank(values, expected):
    assert percentile(values, 90) == expected
    if values:
        assert percentile(values, 90) == np.percentile(values, 90, method="inverted_cdf")


def test_backend_errors_and_latency(calls):
    t = compute_report(calls, *period()).totals
    ms = [req[2] for s in SHAPES for req in s.requests]
    per_call = [sum(r[2] for r in s.requests) for s in SHAPES if s.requests]
    assert t["backend_requests"] == len(ms) == 35
    assert t["backend_errors"] == 1
    assert t["backend_error_rate"] == pytest.approx(1 / 35)
    assert t["backend_ms_per_request"] == pytest.approx(sum(ms) / len(ms), abs=0.05)
    assert t["backend_ms_per_call"] == pytest.approx(sum(per_call) / len(per_call), abs=0.05)
    assert t["backend_p90_ms"] == np.percentile(ms, 90, method="inverted_cdf")


def test_waterfall_counts_and_drops(calls):
    w = compute_report(calls, *period()).waterfall
    assert [(s["step"], s["calls"], s["drop"]) for s in w] == [
        ("answered", 20, 0), ("reached_identification", 18, 2), ("identified", 14, 4),
        ("reached_security", 13, 1), ("verified", 8, 5), ("transferred", 6, 2)]
    assert w[-1]["share"] == pytest.approx(6 / 20)


def test_day_buckets_split_at_local_midnight(calls):
    r = compute_report(calls, *period(), bucket="day")
    assert [b["label"] for b in r.buckets] == ["2026-05-03", "2026-05-04"]
    assert [b["calls"] for b in r.buckets] == [10, 10]        # c10 23:59:59 | c11 00:00:00
    assert [b["verified"] for b in r.buckets] == [3, 5]
    assert r.buckets[0]["start"] == "2026-05-03T00:00:00+02:00"
    assert r.buckets[1]["end"] == "2026-05-05T00:00:00+02:00"
    for key in ("calls", "verified", "abandoned", "backend_requests", "first_try"):
        assert sum(b[key] for b in r.buckets) == r.totals[key]


def test_week_buckets_start_on_monday(calls):
    r = compute_report(calls, *period(), bucket="week")
    assert [b["label"] for b in r.buckets] == ["2026-W18 (2026-04-27)", "2026-W19 (2026-05-04)"]
    assert [b["calls"] for b in r.buckets] == [10, 10]        # Sunday | Monday
    assert r.buckets[0]["start"] == "2026-05-03T00:00:00+02:00"   # clipped to since


def test_hour_buckets(calls):
    r = compute_report(calls, *period(), bucket="hour")
    assert len(r.buckets) == 48
    assert r.buckets[0]["calls"] == 1 and r.buckets[23]["calls"] == 1
    assert r.buckets[24]["calls"] == 1 and r.buckets[24]["label"] == "2026-05-04 00:00"
    assert r.buckets[10]["calls"] == 1 and r.buckets[10]["identified_by_keyed"] == 1  # c02 10:15
    assert sum(b["calls"] for b in r.buckets) == 20


def test_buckets_follow_the_local_clock_across_dst(paris):
    spring = bucket_starts(local(2026, 3, 29), local(2026, 3, 31), "day")
    assert [b - a for a, b in zip(spring, spring[1:])] == [23 * 3600]
    autumn = bucket_starts(local(2026, 10, 25), local(2026, 10, 26), "hour")
    assert len(autumn) == 25                            # 02:00-03:00 happens twice
    weeks = bucket_starts(local(2026, 3, 25), local(2026, 4, 10), "week")
    assert [datetime.fromtimestamp(w).strftime("%a %H:%M") for w in weeks] == ["Mon 00:00"] * 3


def test_filters(calls):
    def n(**kw):
        return compute_report(calls, *period(), **kw).totals["calls"]

    assert n(service="sales") == 5
    assert n(status="verified") == 8
    assert n(reason="opted_out") == 2
    assert n(service="support", status="not_identified") == 5
    assert n(service="nobody") == 0
    sales = compute_report(calls, *period(), service="sales")
    assert sales.totals["backend_requests"] == 4 + 2 + 1 + 1          # c03, c06, c12, c13
    assert sales.filters == {"service": "sales", "status": None, "reason": None}


def test_empty_period_gives_zeros_and_none(calls):
    r = compute_report(calls, local(2026, 6, 1), local(2026, 6, 2))
    t = r.totals
    assert t["calls"] == 0 and t["verified"] == 0 and t["abandoned"] == 0
    for key, (_, kind) in FIELDS.items():
        if kind != "count":
            assert t[key] is None, key
    assert [w["calls"] for w in r.waterfall] == [0] * 6
    assert all(w["share"] is None for w in r.waterfall)
    assert len(r.buckets) == 1 and r.buckets[0]["calls"] == 0
    json.dumps(r.as_dict())
    for chart in (charts.status_chart(r), charts.waterfall_chart(r), charts.auth_chart(r)):
        ET.fromstring(chart)


def test_bad_inputs_are_one_line_errors(tmp_path, calls):
    with pytest.raises(ReportError, match="no call records file"):
        compute_report(tmp_path / "nope.sqlite", *period())
    notdb = tmp_path / "notes.txt"
    notdb.write_text("hello\n" * 100)
    with pytest.raises(ReportError) as err:
        compute_report(notdb, *period())
    assert "notes.txt" in str(err.value) and "\n" not in str(err.value)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(ReportError, match="not a call records file"):
        compute_report(other, *period())
    with pytest.raises(ReportError, match="period 'month'"):
        compute_report(calls, *period(), bucket="month")
    with pytest.raises(ReportError, match="status 'great'"):
        compute_report(calls, *period(), status="great")
    with pytest.raises(ReportError, match="is not after"):
        compute_report(calls, period()[1], period()[0])
    with pytest.raises(ReportError, match="more than 1000 hours"):
        compute_report(calls, local(2026, 1, 1), local(2026, 5, 1), bucket="hour")
    empty = compute_report(tmp_path / "not-yet.sqlite", *period(), missing_ok=True)
    assert empty.totals["calls"] == 0


def test_reading_never_writes_and_never_waits_for_the_engine(calls):
    con = open_readonly(calls)
    with pytest.raises(sqlite3.OperationalError):
        con.execute("DELETE FROM calls")
    con.close()
    writer = CallStore(calls, synchronous="NORMAL")
    writer.db.execute("BEGIN IMMEDIATE")           # the engine in the middle of a write
    writer.db.execute("INSERT INTO calls (call_id, started) VALUES ('w', ?)", (period()[0] + 5,))
    try:
        began = time.monotonic()
        r = compute_report(calls, *period())
        assert time.monotonic() - began < 2.0
        assert r.totals["calls"] == 20                 # the uncommitted call is not seen
    finally:
        writer.db.execute("ROLLBACK")
        writer.close()


# ---------------------------------------------------------------------- real simulated calls

SIM_CONFIG = """
[line]
backend = "sim"
[[line.sim.calls]]
script = [{press = "4271#"}, {hangup = "cpc", after_ms = 8000}]
[[line.sim.calls]]
callerid = {absent = "P"}
script = [{press = "*#"}, {hangup = "cpc", after_ms = 8000}]
[[line.sim.calls]]
callerid = {absent = "P"}
script = [{hangup = "cpc", after_ms = 1500, when = "answer"}]
[[line.sim.calls]]
callerid = {absent = "P"}
script = [{press = "12345678#"}, {press = "4271#"}, {hangup = "cpc", after_ms = 8000}]
[crm]
directory = "DIR"
[store]
path = "CALLS"
[[service]]
name = "support"
[service.transfer]
agent = "201"
"""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Four real calls through engine, flow and directory: verified by number, opted out,
    abandoned during the greeting, verified by keyed identifier."""
    tmp = tmp_path_factory.mktemp("sim")
    db, store = tmp / "directory.sqlite", tmp / "calls.sqlite"
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"), "--db", str(db)]) == 0
    config = tmp / "callgate.toml"
    config.write_text(SIM_CONFIG.replace("DIR", str(db)).replace("CALLS", str(store)))
    began = time.time()
    assert cli.main(["run", "--config", str(config)]) == 0
    return config, store, began, time.time() + 1


def test_figures_of_real_simulated_calls(simulated, capsys):
    _, store, began, ended = simulated
    r = compute_report(store, began - 1, ended)
    t = r.totals
    assert t["calls"] == 4
    assert (t["verified"], t["identified"], t["not_identified"]) == (2, 0, 2)
    assert (t["identified_by_number"], t["identified_by_keyed"]) == (1, 1)
    assert t["opted_out"] == t["opted_out_at_identifier"] == 1
    assert t["abandoned"] == 1 and r.abandoned_by_step["identifier"] == 1
    assert t["first_try"] == 2 and t["verification_rate"] == 1.0
    assert r.transfers["completed"] == 3
    # 1 caller ID lookup, then 1 identifier lookup and 2 verifications
    assert t["backend_requests"] == 4 and t["backend_errors"] == 0
    assert t["backend_ms_per_request"] > 0
    assert [w["calls"] for w in r.waterfall] == [4, 3, 2, 2, 2, 2]
    assert t["auth_avg_ms"] > 0 and t["auth_p90_ms"] >= t["auth_avg_ms"] * 0.5


def test_cli_prints_the_same_figures_as_json(simulated, capsys):
    config, store, began, ended = simulated
    since = datetime.fromtimestamp(began - 1).isoformat()
    until = datetime.fromtimestamp(ended).isoformat()
    capsys.readouterr()
    assert cli.main(["report", "--config", str(config), "--since", since, "--until", until,
                     "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    direct = compute_report(store, parse_when(since), parse_when(until))
    assert out["totals"] == json.loads(json.dumps(direct.totals))
    assert out["waterfall"] == direct.waterfall
    assert "12345678" not in json.dumps(out) and "4271" not in json.dumps(out)


# ---------------------------------------------------------------------- the command line


def run_report(capsys, *args):
    capsys.readouterr()
    code = cli.main(["report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_text(calls, capsys):
    code, out, err = run_report(capsys, "--db", str(calls), "--since", "2026-05-03",
                                "--until", "2026-05-05")
    assert code == 0 and err == ""
    assert "2026-05-03T00:00:00+02:00 .. 2026-05-05T00:00:00+02:00" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("Identification rate"))
    assert line.split()[-2:] == ["70.0", "%"]
    line = next(x for x in out.splitlines() if "90th percentile" in x and "authenticate" in x)
    assert line.split()[-2:] == ["50.0", "s"]
    rows = [x.split() for x in out.splitlines() if x.startswith("  2026-05-0")]
    assert [(r[0], r[1]) for r in rows] == [("2026-05-03", "10"), ("2026-05-04", "10")]
    assert "Jane" not in out and "******78" not in out


def test_cli_csv_reads_back(calls, capsys):
    code, out, _ = run_report(capsys, "--db", str(calls), "--since", "2026-05-03",
                              "--until", "2026-05-05", "--format", "csv", "--service", "support")
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert list(table[0]) == csv_header()
    assert [r["period"] for r in table] == ["2026-05-03", "2026-05-04", "Total"]
    total = table[-1]
    assert int(total["calls"]) == 15                      # 20 minus the 5 sales calls
    support = compute_report(calls, *period(), service="support").totals
    for key, _, kind in columns():
        if support[key] is None:
            assert total[key] == ""
        elif kind == "count":
            assert int(total[key]) == support[key], key
        else:
            assert float(total[key]) == pytest.approx(support[key], abs=1e-4 if kind == "rate"
                                                      else 0.05), key
    assert sum(int(r["calls"]) for r in table[:-1]) == 15
    assert not any(c for c in csv_header() if "masked" in c or "name" in c or "ani" in c)
    assert "Jane" not in out and "*" not in out


def test_exports_hold_no_caller_data(calls, tmp_path, capsys):
    out_csv, out_xlsx = tmp_path / "r.csv", tmp_path / "r.xlsx"
    for fmt, path in (("csv", out_csv), ("xlsx", out_xlsx)):
        code, _, err = run_report(capsys, "--db", str(calls), "--since", "2026-05-03",
                                  "--until", "2026-05-05", "--format", fmt, "-o", str(path))
        assert code == 0 and err == ""
    text = out_csv.read_text()
    assert "Jane" not in text and "******78" not in text and "********23" not in text
    wb = load_workbook(out_xlsx)
    cells = [str(c.value) for ws in wb for row in ws.iter_rows() for c in row if c.value]
    assert not any("Jane" in c or "******78" in c or "********23" in c for c in cells)


def test_cli_xlsx_reads_back(calls, tmp_path, capsys):
    path = tmp_path / "report.xlsx"
    code, _, _ = run_report(capsys, "--db", str(calls), "--since", "2026-05-03", "--until",
                            "2026-05-05", "--format", "xlsx", "--output", str(path))
    assert code == 0
    wb = load_workbook(path)
    assert wb.sheetnames == ["Summary", "By period", "Waterfall", "Abandoned", "Transfers"]
    summary = {row[2].value: row[1] for row in wb["Summary"].iter_rows(min_row=11)
               if row[2].value}
    assert summary["calls"].value == 20
    assert summary["identification_rate"].value == pytest.approx(0.7)
    assert summary["identification_rate"].number_format == "0.0%"
    assert summary["auth_p90_ms"].value == 50000
    assert "ms" in summary["auth_p90_ms"].number_format
    period = wb["By period"]
    head = [c.value for c in period[1]]
    assert head[:4] == ["Period", "Start", "End", "Calls answered"]
    assert [period.cell(row=i, column=1).value for i in (2, 3, 4)] == \
        ["2026-05-03", "2026-05-04", "Total"]
    assert [period.cell(row=i, column=4).value for i in (2, 3, 4)] == [10, 10, 20]
    assert len(period._charts) == 1
    water = [[c.value for c in row] for row in wb["Waterfall"].iter_rows(min_row=2)]
    assert [(w[1], w[2]) for w in water] == [(20, 0), (18, 2), (14, 4), (13, 1), (8, 5), (6, 2)]
    assert wb["Waterfall"]["D7"].value == pytest.approx(0.3)
    aband = {row[3].value: row[1].value for row in wb["Abandoned"].iter_rows(min_row=2)}
    assert aband["identifier"] == 2 and aband["transfer"] == 1
    trans = {row[0].value: row[1].value for row in wb["Transfers"].iter_rows(min_row=2)}
    assert trans["completed"] == 9 and trans["no_result"] == 1


def test_xlsx_keeps_a_formula_like_filter_as_text(calls, tmp_path):
    r = compute_report(calls, *period(), service='=HYPERLINK("http://x","y")')
    path = tmp_path / "f.xlsx"
    write_xlsx(r, path)
    cell = next(c for row in load_workbook(path)["Summary"].iter_rows() for c in row
                if isinstance(c.value, str) and "HYPERLINK" in c.value)
    assert cell.data_type == "s"


@pytest.mark.parametrize("args, code, words", [
    (["--since", "last tuesday"], 2, "--since: 'last tuesday' is not a date"),
    (["--until", "2026-13-01"], 2, "--until"),
    (["--since", "2026-05-05", "--until", "2026-05-03"], 2, "is not after"),
    (["--format", "xlsx"], 2, "needs --output"),
])
def test_cli_bad_input_is_one_line(calls, capsys, args, code, words):
    got, out, err = run_report(capsys, "--db", str(calls), *args)
    assert got == code and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err
    assert "Traceback" not in err


def test_cli_missing_db_and_bad_config(tmp_path, capsys):
    code, out, err = run_report(capsys, "--db", str(tmp_path / "none.sqlite"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "none.sqlite" in err
    config = tmp_path / "c.toml"
    config.write_text("[store]\npath = 5\n")
    code, out, err = run_report(capsys, "--config", str(config))
    assert code == 2 and "store.path" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_report(capsys, "--db", str(tmp_path), "--format", "csv")
    assert code == 1 and len(err.strip().splitlines()) == 1


def test_cli_takes_a_relative_date_after_a_space(calls, capsys):
    code, out, err = run_report(capsys, "--db", str(calls), "--since", "-3d", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["since_ts"] == parse_when("-3d")


def test_cli_unwritable_output(calls, tmp_path, capsys):
    code, out, err = run_report(capsys, "--db", str(calls), "--format", "csv", "--output",
                                str(tmp_path / "no" / "such" / "dir.csv"))
    assert code == 1 and "dir.csv" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------- periods


def test_relative_and_named_dates(paris):
    now = local(2026, 5, 6, 15, 42, 10)                 # a Wednesday
    assert parse_when("now", now) == now
    assert parse_when("today", now) == local(2026, 5, 6)
    assert parse_when("yesterday", now) == local(2026, 5, 5)
    assert parse_when("-7d", now) == local(2026, 4, 29)
    assert parse_when("-3h", now) == local(2026, 5, 6, 12)
    assert parse_when("-1w", now) == local(2026, 4, 27)  # the Monday before this one
    assert parse_when("7d", now) == parse_when("-7d", now)
    assert parse_when("2026-05-01", now) == local(2026, 5, 1)
    assert parse_when("2026-05-01T08:30", now) == local(2026, 5, 1, 8, 30)
    assert parse_when("2026-05-01T08:30+00:00", now) == local(2026, 5, 1, 10, 30)
    assert preset("7d", now) == (local(2026, 4, 30), now)
    assert preset("last_week", now) == (local(2026, 4, 27), local(2026, 5, 4))
    assert day_range("2026-05-01", "2026-05-01") == (local(2026, 5, 1), local(2026, 5, 2))
    with pytest.raises(ReportError, match="to: 2026-04-01 is before"):
        day_range("2026-05-01", "2026-04-01")


# ---------------------------------------------------------------------- charts


def test_charts_are_accessible_svg(calls):
    r = compute_report(calls, *period())
    ns = {"s": "http://www.w3.org/2000/svg"}
    for svg in (charts.status_chart(r), charts.waterfall_chart(r), charts.auth_chart(r)):
        root = ET.fromstring(svg)
        assert root.get("role") == "img"
        title, desc = root.find("s:title", ns), root.find("s:desc", ns)
        assert title is not None and title.text and desc is not None and desc.text
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
        assert "style=" not in svg and "<script" not in svg
    status = ET.fromstring(charts.status_chart(r))
    bars = status.findall("s:rect/s:title", ns)
    # one bar piece per non-zero (period, outcome): Sun 3/4/3 + Mon 5/1/3/1
    assert sorted(b.text for b in bars if b.text.startswith("2026-05-03")) == [
        "2026-05-03: 3 identified and verified", "2026-05-03: 3 not identified",
        "2026-05-03: 4 identified only"]
    assert "20 calls" in status.find("s:desc", ns).text
    water = ET.fromstring(charts.waterfall_chart(r)).find("s:desc", ns).text
    assert "Verified 8 (40.0 %)" in water


def test_chart_text_is_escaped(calls):
    r = compute_report(calls, *period())
    r.waterfall[0]["label"] = '<script>alert("x")</script>'
    svg = charts.waterfall_chart(r)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)


def test_every_step_the_flow_sets_is_a_known_step():
    import re

    import callgate.flow.machine as machine
    from callgate.report.figures import STEP_LABELS, STEPS

    source = Path(machine.__file__).read_text()
    steps = set(re.findall(r'(?:\bc|self)\.step = "(\w+)"', source))
    assert "identifier" in steps and "security" in steps
    assert steps <= set(STEPS), steps - set(STEPS)
    assert set(STEPS) <= set(STEP_LABELS)


def test_the_figures_know_issue_15s_outcomes(tmp_path, capsys):
    """Stores written by `callgate simulate` (the real flow and recorder): no secret on
    file, after hours, fallbacks and menu choices are counted as figures.py defines."""
    from pathlib import Path

    from callgate import cli
    import sqlite3

    from callgate.report import compute_report

    def period(db):
        with sqlite3.connect(db) as con:
            first, last = con.execute("SELECT MIN(started), MAX(started) FROM calls").fetchone()
        return first - 3600, last + 3600

    def totals(name, **kw):
        keep = tmp_path / name
        if not keep.exists():
            assert cli.main(["simulate", "--keep", str(keep),
                             str(Path(__file__).parent / "scenarios" / f"{name}.toml")]) == 0
            capsys.readouterr()
        db = keep / "calls.sqlite"
        return compute_report(db, *period(db), bucket="hour", **kw)

    r = totals("no_secret_on_file")
    assert (r.totals["calls"], r.totals["no_secret"], r.totals["verify_asked"]) == (3, 2, 1)
    assert r.totals["verification_rate"] == 1.0         # Tom never reached the question
    assert totals("no_secret_on_file", reason="no_secret").totals["calls"] == 2
    r = totals("transfer_fallback_each")
    assert r.totals["fallback_used"] == 4 and r.totals["transferred"] == 4
    r = totals("hours_override")
    assert (r.totals["after_hours"], r.totals["after_hours_override"]) == (1, 1)
    r = totals("menu_no_input_invalid")
    assert r.menu_choices == {"2": 1, "invalid": 1, "no_input": 1}
    assert r.totals["menu_chosen"] == 1


@pytest.mark.parametrize("since, until, named", [
    ("0001-01-01", "2026-05-04", "--since: 0001-01-01 is outside the years 1970 to 2999"),
    ("2026-05-03", "9999-12-31", "--until: 9999-12-31 is outside the years 1970 to 2999"),
    ("9999-12-31T23:59", "now", "--since: 9999-12-31T23:59 is outside the years"),
    ("0001-01-01T00:00+14:00", "now", "--since: 0001-01-01T00:00+14:00 is outside the years"),
])
def test_cli_dates_out_of_range_are_one_line(calls, capsys, since, until, named):
    code, out, err = run_report(capsys, "--db", str(calls), "--since", since, "--until", until)
    assert code == 2 and out == ""
    assert named in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
