#!/usr/bin/env python3
"""Telemetry's cost: on the engine per call, and in broker traffic per device per day.

Run by hand:  .venv/bin/python bench/telemetry.py [--calls 40] [--calls-per-day 150]

Starts a real Mosquitto on loopback (tests/mosquitto.py: TLS, password login) and
runs the same simulated ID&V calls (app.App: the flow, the embedded directory, the
recorder) twice, telemetry off and on, reporting:

- the engine's per-frame time (line read/write excluded) p50/p99/max and its total
  per call, off against on: telemetry must not show in it (it never runs on the
  audio thread; the recorder's tap and the telemetry thread do its work);
- the recorder thread's time in telemetry's tap per call, and the whole process's
  CPU time per call, off against on (what the telemetry thread costs the board);
- what the broker received, as a subscriber saw it: bytes of topic and payload per
  message kind, and from those the traffic of one device over a day (state every
  state_interval_s, state on each change, events per call, keep-alive pings), with
  the MQTT framing and a TLS 1.3 record's overhead counted.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from _machine import machine  # noqa: E402
from engine_speed import Timed  # noqa: E402
from mosquitto import Broker, Spy  # noqa: E402

from callgate.app import App  # noqa: E402
from callgate.config import Table  # noqa: E402
from callgate.crm.directory import Directory  # noqa: E402
from callgate.engine import EngineConfig  # noqa: E402
from callgate.flow import policy_from_table  # noqa: E402
from callgate.line.sim import Agent, CallerIdSpec, Press, SimCall, SimLine  # noqa: E402
from callgate.telemetry.settings import load_mqtt  # noqa: E402

TLS_RECORD = 5 + 16 + 1          # TLS 1.3 record: header, AEAD tag, content type
PING = 2 * (2 + TLS_RECORD)      # PINGREQ + PINGRESP, each in its own record


def calls(n: int) -> list[SimCall]:
    return [SimCall(callerid=CallerIdSpec(number="2015550123"),
                    script=[Press("4271#", when="prompt_end", after_ms=500)],
                    agents={"201": Agent()}) for _ in range(n)]


def run(folder: Path, n: int, telemetry) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    d = Directory(folder / "directory.sqlite", scrypt_n=16)
    d.import_csv(ROOT / "tests" / "fixtures" / "customers.csv")
    policy = policy_from_table(Table({"transfer": {"agent": "201"}}, "service.s"), "s")
    line = SimLine(calls(n), max_seconds=120 * n)
    timed = Timed(line)
    app = App(line, EngineConfig(), policy=policy, crm=d, store=folder / "calls.sqlite",
              telemetry=telemetry)
    tap_s = [0.0]
    with app:
        tap = app.recorder.tap
        if tap is not None:
            def timed_tap(store, step):
                t0 = time.perf_counter()
                try:
                    return tap(store, step)
                finally:
                    tap_s[0] += time.perf_counter() - t0
            app.recorder.tap = timed_tap
            assert app.telemetry.link.wait_up(15)
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        assert app.run() == n
        assert app.recorder.flush()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
    d.close()
    frames = np.array(timed.frames) * 1000
    return {"p50": np.percentile(frames, 50), "p99": np.percentile(frames, 99),
            "max": frames.max(), "engine_per_call_ms": frames.sum() / n,
            "cpu_per_call_ms": cpu * 1000 / n, "wall_per_call_s": wall / n,
            "tap_per_call_ms": tap_s[0] * 1000 / n}


def wire(topic: str, payload: bytes, qos: int) -> int:
    """Bytes on the wire for one PUBLISH (and its PUBACK at QoS 1), TLS records included."""
    body = 2 + len(topic.encode()) + (2 if qos else 0) + len(payload)
    length_bytes = 1 if body < 128 else 2 if body < 16384 else 3
    publish = 1 + length_bytes + body + TLS_RECORD
    return publish + ((4 + TLS_RECORD) if qos else 0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--calls-per-day", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3,
                    help="off/on runs alternated; the median of each figure is shown")
    args = ap.parse_args()
    n = args.calls
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp) / "broker") as broker:
        s = load_mqtt(Table(broker.table("office-1", discovery=True, state_interval_s=60),
                            "telemetry.mqtt"))
        offs, ons = [], []
        for r in range(args.rounds):
            offs.append(run(Path(tmp) / f"off{r}", n, None))
            with Spy(broker, ("#",)) as spy:
                ons.append(run(Path(tmp) / f"on{r}", n, s))
                spy.wait(lambda m: len([x for x in m if x.topic.endswith("/event")]) >= n)
                messages = list(spy.messages)
        off = {k: float(np.median([o[k] for o in offs])) for k in offs[0]}
        on = {k: float(np.median([o[k] for o in ons])) for k in ons[0]}
    print(f"\n== the engine, {n} ID&V calls (verified, transferred), telemetry off / on, "
          f"median of {args.rounds} ==")
    for key, what in (("p50", "frame p50 ms"), ("p99", "frame p99 ms"),
                      ("max", "frame max ms"), ("engine_per_call_ms", "engine ms per call"),
                      ("cpu_per_call_ms", "process CPU ms per call"),
                      ("tap_per_call_ms", "recorder tap ms per call")):
        print(f"  {what:26s} {off[key]:9.3f}  {on[key]:9.3f}")

    kinds: dict[str, list[int]] = {}
    for m in messages:
        kind = m.topic.split("/")[-1] if m.topic.startswith("callgate/") else "discovery"
        qos = 1
        kinds.setdefault(kind, []).append(wire(m.topic, m.payload, qos))
    print("\n== what the broker received (bytes on the wire per message, TLS included) ==")
    for kind, sizes in sorted(kinds.items()):
        print(f"  {kind:13s} {len(sizes):4d} messages, {np.mean(sizes):7.0f} B each")
    states = [m for m in messages if m.topic.endswith("/state")]
    state_b = float(np.mean([wire(m.topic, m.payload, 1) for m in states]))
    event_b = float(np.mean(kinds["event"]))
    per_call_states = max(0, len(states) - 2) / n          # beyond the first and the last
    day = 86400
    periodic = day / s.state_interval_s * state_b
    per_call = args.calls_per_day * (event_b + per_call_states * state_b)
    pings = day / s.keepalive_s * PING
    connect = sum(kinds.get("discovery", [0])) + 2 * wire(s.topics.availability, b"online", 1)
    total = periodic + per_call + pings + connect
    print(f"\n== one device, one day: {args.calls_per_day} calls, state every "
          f"{s.state_interval_s:.0f} s, keep-alive {s.keepalive_s} s ==")
    print(f"  periodic state   {periodic / 1e6:7.2f} MB  ({day / s.state_interval_s:.0f} x "
          f"{state_b:.0f} B)")
    print(f"  calls            {per_call / 1e6:7.2f} MB  (per call: 1 event {event_b:.0f} B + "
          f"{per_call_states:.1f} state changes)")
    print(f"  keep-alive       {pings / 1e6:7.2f} MB")
    print(f"  one (re)connect  {connect / 1e3:7.1f} kB  (availability, discovery configs)")
    print(f"  total            {total / 1e6:7.2f} MB/day, {total * 30 / 1e6:.0f} MB/month")
    print(json.dumps({"off": off, "on": on}, default=float), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
