#!/usr/bin/env python3
"""Complete ID&V calls against a real HTTPS back end: speed, and how long the caller waits.

Run by hand:  PYTHONPATH=tests:bench .venv/bin/python bench/flow_speed.py [--calls 20]

Each call is the whole job of the appliance, through the real code: the
simulated exchange rings with Bell 202 caller ID (a number the directory does
not know, and number lookup is off anyway, so both answers are keyed), the
engine answers, the ID&V flow plays the greeting and asks for the customer
number, the caller keys it after the prompt, the flow looks it up, asks for the
PIN, the caller keys it, the flow verifies it, and the call is hook-flash
transferred (blind) to the agent. Lookup and verify go over HTTPS (TLS
verified against a trustme CA) to a real server on loopback that serves our
reference API (docs/openapi.yaml) from the embedded directory: the PIN check
there is a real scrypt. The policy's simulated_latency_ms is "measured": each
reply reaches the flow after the wall time its request really took.

Reports, with the machine:
- speed: seconds of line per second of wall time over all the calls (target
  50x), the back end's wall time included (the engine waits for it), where
  that wall time goes, and per CPU-second of this process (steadier than
  wall time when other work shares the machine);
- the caller's wait after each entry: the onset of its last key ("#", the
  exchange's own schedule, not our detector's estimate) to the first sample of
  the next prompt (enter_pin after the customer number, verified_transfer
  after the PIN), median / p95 / max (target under 300 ms). Engine instants
  are taken at the end of the 20 ms frame they happen in: the earliest a real
  line could play the audio (the sim line lays it over that frame, 20 ms
  sooner; a real line adds its output buffer). Split into
    DTMF    key onset -> the entry is handed to the flow (detection + "#"),
    backend the flow's Work out -> its reply back, on the sample clock, and
            the wall time of the HTTPS request itself,
    flow    the reply -> the prompt's first frame (the flow's decision and
            the engine's queue: 0 when it goes out in the same frame);
- the prompts' own lead-in: every prompt starts with ~50 ms of silence
  (tools/make-prompts), heard after the figure above;
- the call records, written as in `callgate run` by the recorder
  (store/recorder.py) on its own thread: what handing the steps over costs
  the engine's thread (it never waits on the disk), the attempt-counter reads
  that go through the recorder (the flow's lockout check; on a paced line a
  worker thread waits for them, here the sim's one thread does), and the
  recorder's own figures (steps written, dropped, commits, step-to-disk
  latency p50/p99/max).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "tests"))

from https_server import HttpsServer, Reply, Request  # noqa: E402

from callgate.call import Digits, WorkDone  # noqa: E402
from callgate.config import Table  # noqa: E402
from callgate.crm import make_crm  # noqa: E402
from callgate.crm.base import Customer  # noqa: E402
from callgate.crm.directory import Directory  # noqa: E402
from callgate.engine import Engine, EngineConfig, PromptSet  # noqa: E402
from callgate.flow import IdvFlow  # noqa: E402
from callgate.flow.policy import policy_from_table  # noqa: E402
from callgate.line.sim import Agent, CallerIdSpec, Press, SimCall, SimLine  # noqa: E402
from callgate.store.recorder import Recorder  # noqa: E402
from callgate.store.records import CallStore  # noqa: E402

RATE = 8000
CUSTOMERS = ROOT / "tests" / "fixtures" / "customers.csv"
CUSTOMER_ID, PIN = "12345678", "4271"          # Jane Smith in the sample directory
UNKNOWN_NUMBER = "2125550100"                  # her caller ID is not in the directory
AGENT = "201"
TOKEN = "bench-token-0123456789"
KEY_ON_MS, KEY_OFF_MS, KEY_AFTER_MS = 90, 110, 300


# ------------------------------------------------------------------ the back end


def reference_api(directory: Directory):
    """Our reference REST API (docs/openapi.yaml) answered from the directory."""
    def customers(lookup) -> Reply:
        if lookup.status == "error":
            return Reply.json({"error": {"code": "internal", "message": "directory"}}, 500)
        return Reply.json({"customers": [{"id": c.id, "name": c.name}
                                         for c in lookup.customers]})

    def handle(req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply.json({"error": {"code": "unauthorized", "message": "token"}}, 401)
        parts = req.path.strip("/").split("/")
        if req.method == "GET" and parts[:3] == ["v1", "customers", "by-phone"] and len(parts) == 4:
            return customers(directory.lookup_phone(parts[3]))
        if (req.method == "GET" and parts[:3] == ["v1", "customers", "by-identifier"]
                and len(parts) == 5):
            return customers(directory.lookup_identifier(parts[3], parts[4]))
        if req.method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "customers"] \
                and parts[3] == "verify":
            body = req.json
            verdict = directory.verify(Customer(parts[2]), body.get("kind", ""),
                                       body.get("secret", ""))
            if verdict.status == "error":
                return Reply.json({"error": {"code": "internal", "message": "directory"}}, 500)
            return Reply.json({"verified": verdict.status == "verified"})
        return Reply.json({"error": {"code": "not_found", "message": "no route"}}, 404)

    return handle


class TimedCounter:
    """The attempt counter as `callgate run` gives it to the flow (reads and counts
    through the recorder), with the wall time of each call noted."""

    def __init__(self, counter) -> None:
        self.counter = counter
        self.s = 0.0
        self.calls = 0

    def _timed(self, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.s += time.perf_counter() - t0
            self.calls += 1

    def recent_failures(self, customer_id, number, window_s, at):
        return self._timed(self.counter.recent_failures, customer_id, number, window_s, at)

    def record_failure(self, customer_id, number, at, window_s):
        return self._timed(self.counter.record_failure, customer_id, number, at, window_s)


class TimedBackend:
    """The connector, with the wall time of each request noted (ms, by request)."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.wall_ms: list[tuple[str, float]] = []

    def _timed(self, what: str, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.wall_ms.append((what, (time.perf_counter() - t0) * 1000))

    def lookup_phone(self, e164):
        return self._timed("lookup_phone", self.backend.lookup_phone, e164)

    def lookup_identifier(self, kind, digits):
        return self._timed("lookup_identifier", self.backend.lookup_identifier, kind, digits)

    def verify(self, customer, kind, secret):
        return self._timed("verify", self.backend.verify, customer, kind, secret)

    def close(self):
        self.backend.close()


# ------------------------------------------------------------------ what happened when


@dataclass
class Wait:
    """One keyed entry and what the caller heard next."""

    entry: str                 # "identifier" | "pin"
    onset: int                 # line sample the last key ("#") began
    handed: int = -1           # the frame end at which the flow got the entry
    reply: int = -1            # the frame end at which the back end's reply reached the flow
    prompt: int = -1           # the frame end at which the next prompt's first frame went out
    prompt_name: str = ""
    wall_ms: float = float("nan")

    def ms(self, a: int, b: int) -> float:
        return (b - a) * 1000 / RATE


class Watch:
    """Notes, on the line's clock, the keys the exchange sends and what the engine does;
    and, on the wall clock, the time spent in the sim exchange and in handing record
    steps to the recorder (the engine's side of it: the writes are the recorder's)."""

    def __init__(self, line: SimLine, engine: Engine, flow: IdvFlow, backend: TimedBackend,
                 recorder: Recorder):
        self.waits: list[Wait] = []
        self._frame = None
        self._open: Wait | None = None
        self._entries = 0
        self.backend = backend
        self.line_s = 0.0
        self.submit_s = 0.0
        self.submit_max_s = 0.0
        self.steps = 0
        submit = recorder.submit          # the engine hands every record step over here

        def submit_timed(step):
            t0 = time.perf_counter()
            try:
                return submit(step)
            finally:
                dt = time.perf_counter() - t0
                self.submit_s += dt
                self.submit_max_s = max(self.submit_max_s, dt)
                self.steps += 1

        recorder.submit = submit_timed
        exchange = line._exchange         # the bench reads the exchange's own key schedule
        run_step = exchange._run_step

        def run_step_noted(call):
            step = call.spec.script[call.step]
            if isinstance(step, Press):
                last = (len(step.digits) - 1) * (KEY_ON_MS + KEY_OFF_MS) * RATE // 1000
                entry = "identifier" if self._entries % 2 == 0 else "pin"
                self._entries += 1
                self.waits.append(Wait(entry, exchange.now + last))
            run_step(call)

        exchange._run_step = run_step_noted
        read, write = line.read, line.write

        def read_noted():
            t0 = time.perf_counter()
            self._frame = read()
            self.line_s += time.perf_counter() - t0
            return self._frame

        def write_timed(samples):
            t0 = time.perf_counter()
            write(samples)
            self.line_s += time.perf_counter() - t0

        line.read, line.write = read_noted, write_timed
        on_event = flow.on_event

        def on_event_noted(ev):
            now = self._frame.end if self._frame is not None else ev.sample
            if isinstance(ev, Digits) and ev.reason == "terminator" and self.waits:
                self._open = self.waits[-1]
                self._open.handed = now
            elif isinstance(ev, WorkDone) and self._open is not None and self._open.reply < 0:
                self._open.reply = now
                self._open.wall_ms = self.backend.wall_ms[-1][1] if self.backend.wall_ms \
                    else float("nan")
            return on_event(ev)

        flow.on_event = on_event_noted
        start = engine.player.start

        def start_noted(audio, label="", barge_in=False):
            w = self._open
            if w is not None and w.reply >= 0 and w.prompt < 0 and not label.startswith("<"):
                # the frame's end: the sim line would play it over the frame just read
                # (sim.py), 20 ms sooner; a real line cannot play it before it was decided
                w.prompt, w.prompt_name = self._frame.end, label
                self._open = None
            return start(audio, label, barge_in)

        engine.player.start = start_noted


# ------------------------------------------------------------------ the run


def bench_calls(n: int, tmp: Path,
                prompts: PromptSet) -> tuple[Watch, float, float, dict, TimedCounter, dict]:
    directory = Directory(tmp / "directory.sqlite")
    directory.import_csv(CUSTOMERS)
    token = tmp / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    with HttpsServer(tmp, handler=reference_api(directory)) as srv:
        crm = Table({"kind": "reference", "base_url": srv.url + "/v1",
                     "ca_bundle": str(srv.ca_path),
                     "auth": {"kind": "bearer", "token_file": str(token)}}, "crm")
        backend = TimedBackend(make_crm(crm))
        policy = policy_from_table(Table({
            "number_lookup": False, "simulated_latency_ms": "measured",
            # "#" ends both entries (a fixed length would end them at the last digit)
            "identifier": {"kind": "customer_id", "min_digits": 4, "max_digits": 16},
            "security": {"kind": "pin", "min_digits": 4, "max_digits": 8},
            "transfer": {"agent": AGENT, "mode": "blind"}}, "service.bench"), "bench")
        path = tmp / "calls.sqlite"
        recorder = Recorder(path).start()            # as `callgate run`: synchronous=FULL
        counter = TimedCounter(recorder.counter)
        flow = IdvFlow(policy, backend, counter=counter)
        press = dict(when="prompt_end", after_ms=KEY_AFTER_MS, on_ms=KEY_ON_MS,
                     off_ms=KEY_OFF_MS)
        calls = [SimCall(callerid=CallerIdSpec(number=UNKNOWN_NUMBER, name="BENCH CALLER"),
                         script=[Press(CUSTOMER_ID + "#", **press), Press(PIN + "#", **press)],
                         agents={AGENT: Agent()}) for _ in range(n)]
        line = SimLine(calls, max_seconds=600 * n)
        engine = Engine(line, flow, EngineConfig(), prompts=prompts, recorder=recorder)
        watch = Watch(line, engine, flow, backend, recorder)
        try:
            t0, cpu0 = time.perf_counter(), time.process_time()
            engine.run()
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            t1 = time.perf_counter()
            recorder.close()                         # writes what is still queued
            close_s = time.perf_counter() - t1
        recorded = {**recorder.stats.figures(), "close_s": close_s}
        line_s = line.sample / RATE
        with CallStore(path) as store:
            rows = store.recent(limit=n + 1)
        done = {"calls": len(engine.finished),
                "verified": sum(r["status"] == "verified" for r in rows),
                "keyed": sum(r["identified_by"] == "keyed" for r in rows),
                "transferred": sum(o.transferred_to == AGENT for o in line.outcomes),
                "requests": len(srv.sent()),
                "backend_s": sum(ms for _, ms in backend.wall_ms) / 1000, "cpu_s": cpu}
        backend.close()
    directory.close()
    return watch, line_s, wall, done, counter, recorded


def stats(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    return (f"median {np.median(v):6.1f}  p95 {np.percentile(v, 95):6.1f}  "
            f"max {v.max():6.1f} ms")


def report(waits: list[Wait]) -> None:
    complete = [w for w in waits if min(w.handed, w.reply, w.prompt) >= 0]
    if len(complete) != len(waits):
        print(f"!! {len(waits) - len(complete)} of {len(waits)} entries not followed by a prompt")
    for entry in ("identifier", "pin", None):
        ws = [w for w in complete if entry is None or w.entry == entry]
        if not ws:
            continue
        title = {"identifier": "after the customer number -> " + ws[0].prompt_name,
                 "pin": "after the PIN -> " + ws[0].prompt_name,
                 None: "both entries"}[entry]
        print(f"\n  {title} ({len(ws)} entries)")
        print(f"    caller waits  {stats([w.ms(w.onset, w.prompt) for w in ws])}  "
              "(last key onset -> next prompt)")
        print(f"    DTMF          {stats([w.ms(w.onset, w.handed) for w in ws])}")
        print(f"    backend       {stats([w.ms(w.handed, w.reply) for w in ws])}  "
              "(sample clock, frame-rounded)")
        print(f"      HTTPS wall  {stats([w.wall_ms for w in ws])}")
        print(f"    flow/engine   {stats([w.ms(w.reply, w.prompt) for w in ws])}")


def lead_in_ms(prompts: PromptSet, names: list[str]) -> str:
    out = []
    for name in names:
        x = np.abs(prompts[name].astype(float))
        loud = np.flatnonzero(x >= 32768 * 10 ** (-50 / 20))
        out.append(f"{name} {loud[0] * 1000 / RATE:.0f} ms" if loud.size else f"{name} -")
    return ", ".join(out)


def machine() -> str:
    model = ""
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs ({model or 'unknown model'}), not pinned (the HTTPS "
            f"server's thread shares them), load average {os.getloadavg()[0]:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="also print every wait as JSON")
    args = ap.parse_args()
    print(f"callgate flow bench: {machine()}")
    prompts = PromptSet("en")
    with tempfile.TemporaryDirectory() as tmp:
        watch, line_s, wall, done, counter, rec = bench_calls(args.calls, Path(tmp), prompts)
    waits = watch.waits
    print(f"\n== {args.calls} complete calls: ring, Bell 202 caller ID, customer number and PIN "
          "keyed, HTTPS lookup + verify, blind flash transfer ==")
    print(f"{line_s:.1f} s of line in {wall:.2f} s = {line_s / wall:.0f}x real time "
          f"({line_s / args.calls:.1f} s of line per call; target 50x)")
    print(f"CPU time of this process (engine, sim, recorder and the HTTPS server's threads): "
          f"{done['cpu_s']:.2f} s = {line_s / done['cpu_s']:.0f}x per CPU-second "
          "(steadier than wall time on a shared machine)")
    backend_s, sim_s = done["backend_s"], watch.line_s
    submit_s, counter_s = watch.submit_s, counter.s
    rest = wall - backend_s - submit_s - counter_s - sim_s
    print(f"wall time: back end (HTTPS + the server's scrypt, same machine) {backend_s:.2f} s, "
          f"record steps handed to the recorder {submit_s:.3f} s ({watch.steps} steps, max "
          f"{watch.submit_max_s * 1000:.2f} ms each), attempt counter through the recorder "
          f"{counter_s:.2f} s ({counter.calls} reads, each after its group's commit), sim "
          f"exchange {sim_s:.2f} s, engine + DSP + flow {rest:.2f} s")
    print(f"without the back end's time (a CRM runs elsewhere): "
          f"{line_s / (wall - backend_s):.0f}x; engine + DSP + flow alone: "
          f"{line_s / rest:.0f}x")
    print(f"outcome: {done['calls']} calls, {done['verified']} verified, {done['keyed']} "
          f"identified by keyed number, {done['transferred']} transferred to {AGENT}, "
          f"{done['requests']} HTTPS requests")
    print(f"recorder (own thread, synchronous=FULL): {rec['written']} of {rec['submitted']} "
          f"steps written in {rec['commits']} commits ({rec['dropped']} dropped, "
          f"{rec['refused']} refused, {rec['lost']} lost), {rec['queries']} counter reads; "
          f"step -> on disk p50 {rec['to_disk_ms_p50']} / p99 {rec['to_disk_ms_p99']} / max "
          f"{rec['to_disk_ms_max']} ms; longest commit {rec['commit_ms_max']} ms; at most "
          f"{rec['max_queued']} steps queued; close (drain) {rec['close_s'] * 1000:.0f} ms")
    print("\n== the caller's wait after the last key of an entry (target < 300 ms) ==")
    report(waits)
    print(f"\n  then each prompt's own lead-in before its first sound (> -50 dBFS): "
          f"{lead_in_ms(prompts, ['enter_pin', 'verified_transfer'])}")
    if args.json:
        for w in waits:
            print(json.dumps(w.__dict__))
        print(json.dumps({"recorder": rec}))
    ok = (done["verified"] == done["transferred"] == done["keyed"] == args.calls)
    if not ok:
        print("!! not every call went as scripted (see the outcome line)", file=sys.stderr)
    if rec["written"] != rec["submitted"]:
        print("!! the recorder did not write every step (see the recorder line)",
              file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
