#!/usr/bin/env python3
"""What a device-state snapshot and a /metrics scrape cost over a large call store.

Run by hand:  .venv/bin/python bench/metrics_speed.py [--calls 100000] [--repeat 20]

Builds a call store (the real schema, via store.CallStore) with `--calls`
finished calls over 4 lines and mixed outcomes, each written back (a delivered
outbox row, kept until `callgate outbox purge`; 3 still pending), the health
rows the recorder writes and a back-end histogram of as many requests, then
times on one core:
- telemetry.health.device_state (MQTT's state, the snapshot /metrics reads);
- one whole /metrics page through the web app (the collector and the text),
  with the bearer token, as Prometheus scrapes it.
Neither touches the engine's process; the figure says what a scrape costs the
board's CPU (a Pi Zero 2-class core is about 10x slower than a PC core).
"""

from __future__ import annotations

import os

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "firmware"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine  # noqa: E402
from callgate.call import LineHealth  # noqa: E402
from callgate.store.health import (count_finished_call, write_backend_request,  # noqa: E402
                                   write_line_health)
from callgate.store.outbox import Outbox  # noqa: E402
from callgate.store.records import CallStore, transaction  # noqa: E402
from callgate.telemetry.health import device_state  # noqa: E402
from callgate.web.app import create_app  # noqa: E402
from callgate.web.metrics import MetricsSettings  # noqa: E402
from callgate.web.settings import WebSettings  # noqa: E402

OUTCOMES = [("verified", None), ("identified", None), ("not_identified", None),
            ("not_identified", "backend_down"), ("identified", "locked"),
            ("not_identified", "opted_out")]


def build(path: Path, calls: int) -> None:
    rnd = random.Random(14)
    store = CallStore(path, synchronous="NORMAL")
    box = Outbox(store)
    now = time.time()
    with transaction(store.db):
        for i in range(calls):
            at = now - rnd.uniform(0, 90 * 86400)
            status, reason = rnd.choice(OUTCOMES)
            cid = f"c{i}"
            store.start(cid, f"line{i % 4}", "support", at, None)
            store.update(cid, ended=at + 40, status=status, reason=reason)
            count_finished_call(store.db, cid)            # as the recorder does at the end
            kind = "timeout" if reason == "backend_down" else None
            write_backend_request(store.db, "rest", at, rnd.uniform(20, 900), kind, "closed")
            # [writeback] on: each outcome delivered, its row kept until `outbox purge`
            box.delivered(box.enqueue(cid, {"status": status}, at), 200, at + 60)
        for i in range(3):
            box.enqueue(f"p{i}", {"status": "verified"}, now - 600)     # waiting now
        for n in range(4):
            write_line_health(store.db, LineHealth(f"line{n}", "modem", calls=calls // 4,
                                                   rang=10, callerid=9, window=10,
                                                   started=now - 86400, at=now))
            store.set_line_status(f"line{n}", "idle", at=now)
    store.close()


def timed(fn, repeat: int) -> list[float]:
    fn()                                  # warm the page cache and the imports
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = folder / "calls.sqlite"
        build(store, args.calls)
        token = secrets.token_urlsafe(24)
        (folder / "metrics.token").write_text(token)
        os.chmod(folder / "metrics.token", 0o600)
        settings = WebSettings(store=str(store), db=str(folder / "web.sqlite"),
                               metrics=MetricsSettings(True, str(folder / "metrics.token")))
        client = create_app(settings, secret_key=secrets.token_bytes(32)).test_client()
        auth = {"Authorization": f"Bearer {token}"}
        size = len(client.get("/metrics", headers=auth).data)
        snap = timed(lambda: device_state(store), args.repeat)
        page = timed(lambda: client.get("/metrics", headers=auth), args.repeat)
    print(machine())
    print(f"store: {args.calls} finished calls over 4 lines, as many delivered write-backs; "
          f"page {size} bytes")
    for name, ms in (("device_state", snap), ("/metrics page", page)):
        print(f"{name:14s} median {statistics.median(ms):7.1f} ms   max {max(ms):7.1f} ms")


if __name__ == "__main__":
    main()
