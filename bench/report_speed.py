#!/usr/bin/env python3
"""Report speed and memory over a large call store.

Run by hand:  .venv/bin/python bench/report_speed.py [--calls 100000] [--days 90]

Builds a call store (the real schema, via store.CallStore) with `--calls` calls
spread over `--days` days, of mixed shapes (verified by number or keyed,
identified only, locked, opted out, back end down, abandoned) with 1-4
back-end reply events each, then times on one core:
- compute_report over the last day by hour, 30 days by day, the whole store
  by week, and the whole store filtered to one service line;
- CSV and XLSX export of the 30-day report, and the three SVG charts;
and prints the peak RSS. The reports page does the compute, the charts and
the page itself, so "30 days by day" plus "charts" is what a supervisor waits for.
"""

from __future__ import annotations

import os

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "firmware"))

from callgate.report import charts, compute_report  # noqa: E402
from callgate.report.export import write_csv, write_xlsx  # noqa: E402
from callgate.store.records import CallStore  # noqa: E402

SHAPES = [  # (weight, fields, replies)
    (40, dict(lookup="hit", identified_by="number", verify_kind="pin", verify_attempts=1,
              verify_result="verified", status="verified", transfer_result="completed"), 2),
    (15, dict(lookup="miss", id_attempts=1, identified_by="keyed", verify_kind="pin",
              verify_attempts=2, verify_result="verified", status="verified",
              transfer_result="completed"), 4),
    (10, dict(lookup="hit", identified_by="number", verify_kind="pin", verify_attempts=3,
              verify_result="failed", status="identified", transfer_result="answered"), 4),
    (3, dict(lookup="hit", identified_by="number", verify_kind="pin", verify_result="locked",
             status="identified", reason="locked", transfer_result="busy"), 1),
    (8, dict(lookup="withheld", opted_out="identifier", status="not_identified",
             reason="opted_out", transfer_result="completed"), 0),
    (2, dict(lookup="error", status="not_identified", reason="backend_down",
             transfer_result="completed", backend_errors=1), 1),
    (12, dict(lookup="withheld", status="not_identified", hangup_step="identifier"), 0),
    (10, dict(lookup="miss", id_attempts=3, status="not_identified",
              transfer_result="no_answer"), 4),
]


def build(path: Path, n: int, days: int, now: float) -> None:
    rnd = random.Random(1)
    weights = [w for w, _, _ in SHAPES]
    with CallStore(path, synchronous="NORMAL") as store:
        db = store.db
        db.execute("BEGIN")
        for i in range(n):
            _, fields, replies = rnd.choices(SHAPES, weights)[0]
            started = now - rnd.random() * days * 86400
            row = dict(fields, call_id=f"c{i}", line="line1",
                       service=rnd.choice(("support", "sales")), started=started,
                       ended=started + 40, auth_ms=rnd.randint(3000, 60000),
                       transfer_target="201" if "transfer_result" in fields else None)
            ms = [rnd.uniform(30, 400) for _ in range(replies)]
            if ms:
                row["backend_ms_total"] = sum(ms)
                row.setdefault("backend_errors", 0)
            cols = ", ".join(row)
            db.execute(f"INSERT INTO calls ({cols}) VALUES ({', '.join('?' * len(row))})",
                       tuple(row.values()))
            for k, m in enumerate(ms):
                db.execute("INSERT INTO events (call_id, at, step, detail) VALUES (?, ?, ?, ?)",
                           (f"c{i}", started + k, "lookup" if k == 0 else "verify",
                            json.dumps({"result": "hit", "ms": round(m, 1)})))
            db.execute("INSERT INTO events (call_id, at, step, detail) VALUES (?, ?, ?, ?)",
                       (f"c{i}", started + 40, "end", json.dumps({"reason": "transferred"})))
        db.execute("COMMIT")


def timed(what: str, fn, repeat: int = 3):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    print(f"  {what:<44} {best * 1000:9.1f} ms")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()
    print(f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
          f", {os.cpu_count()} cores (using one)")
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calls.sqlite"
        t = time.perf_counter()
        build(path, args.calls, args.days, now)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        print(f"store: {args.calls} calls over {args.days} days, {size / 1e6:.1f} MB, built in "
              f"{time.perf_counter() - t:.1f} s")
        day = timed("last 24 h by hour", lambda: compute_report(path, now - 86400, now,
                                                                bucket="hour"))
        month = timed("30 days by day", lambda: compute_report(path, now - 30 * 86400, now))
        timed(f"{args.days} days by week", lambda: compute_report(
            path, now - args.days * 86400 - 1, now + 1, bucket="week"))
        timed(f"{args.days} days by day, service=sales", lambda: compute_report(
            path, now - args.days * 86400 - 1, now + 1, service="sales"))
        timed("charts of the 30-day report", lambda: (charts.status_chart(month),
                                                      charts.waterfall_chart(month),
                                                      charts.auth_chart(month)))
        timed("CSV of the 30-day report", lambda: write_csv(month, io.StringIO()))
        timed("XLSX of the 30-day report", lambda: write_xlsx(month, io.BytesIO()))
        print(f"  calls in the last 24 h: {day.totals['calls']}, in 30 days: "
              f"{month.totals['calls']}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
