#!/usr/bin/env python3
"""Engine speed, frame time, barge-in latency and memory, on the sample clock.

Run by hand:  .venv/bin/python bench/engine_speed.py [--calls 1000] [--seconds 60]

Reports, on this machine and one core:
- a 60 s call (prompts, keys, collection, hang-up) through the simulated
  exchange, and the same received audio and line events replayed through the
  `replay` backend: speed in multiples of real time, and the engine's own
  per-frame processing time (line read/write excluded) at p50/p99/max
  against the 20 ms frame budget;
- barge-in latency: key onset (the exchange's own schedule, not our
  detector's estimate) to the first frame of silence we wrote, over keys
  pressed at different moments of a prompt;
- memory over `--calls` simulated calls built the way `callgate run` builds
  them (config -> make_line -> Engine + ScriptedHandler): RSS as the calls go
  by, and the Python heap (tracemalloc) grown over the last 50 calls.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "firmware"))

from callgate.call import Collect, Digits, Handler, Play  # noqa: E402
from callgate.config import Table  # noqa: E402
from callgate.engine import Engine, EngineConfig, PromptSet, ScriptedHandler  # noqa: E402
from callgate.line import make_line  # noqa: E402
from callgate.line.replay import ReplayLine, event_entry  # noqa: E402
from callgate.line.sim import CallerIdSpec, Press, SimCall, SimLine  # noqa: E402

from callgate.line.sim import Clear  # noqa: E402

RATE = 8000
FRAME_MS = 20
TRACED = 50          # calls traced by tracemalloc at the end (tracing slows the run ~30x)


class SixtySeconds(Handler):
    """A handler that keeps a call busy: prompts, then collections, over and over."""

    prompts_needed = ("welcome", "enter_digits")

    def start(self, call):
        return [Play("welcome"), Play("enter_digits"), self._collect()]

    def on_event(self, event):
        if isinstance(event, Digits):
            return [Play("enter_digits"), self._collect()]
        return []

    @staticmethod
    def _collect():
        return Collect(max_digits=16, first_timeout_ms=20000, inter_timeout_ms=20000)


def sixty_second_call(seconds: float) -> SimCall:
    script = [Press("4271#", after_ms=1000)]
    script += [Press("12345#", when="prompt_end", after_ms=3000) for _ in range(8)]
    script.append(Clear("cpc", after_ms=int(seconds * 1000), when="answer"))
    return SimCall(callerid=CallerIdSpec(kind="v23"), script=script)


class Timed:
    """Wraps a line: time spent in read()/write() is the line's, not the engine's."""

    def __init__(self, line, keep: bool = False) -> None:
        self.line = line
        self.io = 0.0
        self.frames: list[float] = []     # engine time per frame, line I/O excluded
        self.audio: list[np.ndarray] = []
        self.events: list = []
        self._last = None                  # end of the previous read
        self._wrote = 0.0                  # write time since then
        read, write = line.read, line.write

        def timed_read():
            t0 = time.perf_counter()
            frame = read()
            t1 = time.perf_counter()
            self.io += t1 - t0
            if self._last is not None:
                self.frames.append(t0 - self._last - self._wrote)
            self._last, self._wrote = t1, 0.0
            if keep and frame is not None:
                self.audio.append(frame.samples)
                self.events += frame.events
            return frame

        def timed_write(x):
            t0 = time.perf_counter()
            write(x)
            dt = time.perf_counter() - t0
            self.io += dt
            self._wrote += dt

        line.read, line.write = timed_read, timed_write


def frame_stats(frames: list[float]) -> str:
    ms = np.array(frames) * 1000
    return (f"p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms, "
            f"max {ms.max():.2f} ms (budget {FRAME_MS} ms; p99 is "
            f"{np.percentile(ms, 99) / FRAME_MS * 100:.1f} % of it)")


def bench_speed(seconds: float, prompts: PromptSet) -> None:
    print(f"\n== one {seconds:.0f} s call: prompts, keys, collection, CPC hang-up ==")
    sim = SimLine([sixty_second_call(seconds)])
    timed = Timed(sim, keep=True)
    engine = Engine(sim, SixtySeconds(), EngineConfig(), prompts=prompts)
    t0 = time.perf_counter()
    engine.run()
    wall = time.perf_counter() - t0
    line_s = sim.sample / RATE
    call = engine.finished[-1]
    print(f"sim:    {line_s:.1f} s of line in {wall:.3f} s = {line_s / wall:.0f}x real time "
          f"(engine alone {line_s / (wall - timed.io):.0f}x; sim exchange {timed.io:.3f} s)")
    print(f"        engine frame time: {frame_stats(timed.frames)}")
    print(f"        call: keys={call.keys}, end={call.end_reason} ({call.hangup_how})")

    audio = np.concatenate(timed.audio)
    entries = [e for e in (event_entry(ev, ev.sample) for ev in timed.events) if e]
    sidecar = {"version": 1, "rate": RATE,
               "capabilities": {"loop_current": True, "polarity": True}, "events": entries}
    replay = ReplayLine(audio, sidecar)
    timed = Timed(replay)
    engine = Engine(replay, SixtySeconds(), EngineConfig(), prompts=prompts)
    t0 = time.perf_counter()
    engine.run()
    wall = time.perf_counter() - t0
    line_s = replay.sample / RATE
    call = engine.finished[-1] if engine.finished else None
    print(f"replay: {line_s:.1f} s of line in {wall:.3f} s = {line_s / wall:.0f}x real time "
          f"(engine alone {line_s / (wall - timed.io):.0f}x)")
    print(f"        engine frame time: {frame_stats(timed.frames)}")
    if call is not None:
        print(f"        call: keys={call.keys}, end={call.end_reason} ({call.hangup_how})")


def bench_barge_in(prompts: PromptSet, n: int = 25) -> None:
    print(f"\n== barge-in: a key at {n} moments of the welcome/enter_digits prompts ==")
    lat = []
    for k in range(n):
        after = 150 + k * 97                      # 150 .. ~2.5 s into the prompts
        sim = SimLine([SimCall(callerid=CallerIdSpec(kind="dtmf"),
                               script=[Press("5", when="answer", after_ms=after),
                                       Clear("cpc", after_ms=1500)])], seed=k)
        infos = []
        Engine(sim, ScriptedHandler(), prompts=prompts, on_call=infos.append).run()
        call = infos[0]
        if not call.barge_ins:
            print(f"   key at {after} ms: no barge-in recorded")
            continue
        onset = sim.outcomes[0].answered_at + after * RATE // 1000
        lat.append((call.barge_ins[0][1] - onset) * 1000 / RATE)
    lat = np.array(lat)
    print(f"key onset -> prompt stopped: min {lat.min():.1f} ms, median {np.median(lat):.1f} ms, "
          f"max {lat.max():.1f} ms over {len(lat)} keys (90 ms keys at -9 dBm0, echo -10 dB)")
    print("  (DTMF needs 4 analysis windows, ~33-40 ms, to call a key; the prompt stops on "
          "the next frame written, so up to one 20 ms frame more)")


def bench_memory(calls: int, flow: bool = False) -> None:
    what = "app.App: ID&V flow, directory, recorder" if flow else "make_line -> Engine"
    print(f"\n== memory over {calls} simulated calls (config -> {what}) ==")
    script = ([{"press": "4271", "when": "prompt_end", "after_ms": 500}] if flow else
              [{"press": "1#", "when": "answer", "after_ms": 300}])
    callerid = {"number": "2015550123"} if flow else {"kind": "dtmf"}
    table = Table({"backend": "sim", "sim": {
        "noise_dbm0": -65.0, "repeat": calls,
        "calls": [{"gap_ms": 300, "callerid": callerid, "script": script}]}}, "line")
    rss: dict[int, float] = {}
    objs: dict[int, int] = {}
    snap: dict[str, object] = {}
    state = {"n": 0}

    def on_call(call):
        state["n"] += 1
        n = state["n"]
        if n in (10, 100, 250, 500, 750, calls - TRACED, calls):
            gc.collect()
            rss[n] = _rss_mb()
            objs[n] = len(gc.get_objects())
        if n == calls - TRACED:
            tracemalloc.start(1)
            gc.collect()
            snap["a"] = tracemalloc.take_snapshot()
        if n == calls:
            gc.collect()
            snap["b"] = tracemalloc.take_snapshot()
            tracemalloc.stop()

    app = None
    if flow:
        app = _flow_app(table, on_call)
        line, engine, handler = app.line, app.engine, app.flow
        app.start()
    else:
        line = make_line(table)
        handler = ScriptedHandler.from_config(Table({}, "engine.script"))   # as `callgate run`
        engine = Engine(line, handler, EngineConfig(), on_call=on_call)
    t0 = time.perf_counter()
    engine.run()
    wall = time.perf_counter() - t0
    if app is not None:
        app.close()
        print(f"recorder: {app.engine.recorder.stats.figures() if app.engine.recorder else ''}")
    print(f"{state['n']} calls, {line.sample / RATE:.0f} s of line in {wall:.1f} s "
          f"({line.sample / RATE / wall:.0f}x real time, tracing on for the last {TRACED})")
    print("RSS (MB) after n calls: " + ", ".join(f"{n}: {v:.1f}" for n, v in sorted(rss.items())))
    print("objects tracked by the GC: " + ", ".join(f"{n}: {v}" for n, v in sorted(objs.items())))
    if "a" in snap and "b" in snap:
        stats = snap["b"].compare_to(snap["a"], "filename")
        total = sum(s.size_diff for s in stats)
        ours = sum(s.size_diff for s in stats
                   if "callgate" in s.traceback[0].filename and "line" not in
                   s.traceback[0].filename)
        sim = sum(s.size_diff for s in stats if "/line/" in s.traceback[0].filename)
        print("(tracing starts mid-run: objects alive at the second snapshot that replaced older,\n"
              " untraced ones count as growth, e.g. the engine's last-100-calls record)")
        print(f"Python heap grown over the last {TRACED} calls: {total / 1024:.1f} KiB in all; "
              f"engine/dsp {ours / 1024:.1f} KiB; sim line {sim / 1024:.1f} KiB "
              f"(live state at the snapshot, see above)")
        for s in sorted(stats, key=lambda s: -s.size_diff)[:4]:
            print(f"   {s.size_diff / 1024:+8.1f} KiB  {s.traceback[0].filename}")
    kept = len(handler.calls) if isinstance(handler, ScriptedHandler) else 0
    print(f"the engine keeps the last {engine.finished.maxlen} CallInfo; the handler {kept}")


def _flow_app(line_table: Table, on_call):
    """The appliance as `callgate run` builds it from a config, in a temporary folder."""
    import tempfile

    from callgate.app import App, Settings
    from callgate.crm.directory import Directory

    folder = Path(tempfile.mkdtemp(prefix="callgate-bench-"))
    with Directory(folder / "directory.sqlite", scrypt_n=16) as d:
        d.import_csv(Path(__file__).resolve().parent.parent / "tests/fixtures/customers.csv")
    config = Table({"line": line_table.data,
                    "crm": {"directory": str(folder / "directory.sqlite")},
                    "store": {"path": str(folder / "calls.sqlite")},
                    "service": [{"name": "support", "transfer": {"agent": "201"}}]})
    return App.from_settings(Settings.from_table(config), on_call=on_call)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--flow", action="store_true",
                    help="the memory run through app.App with the ID&V flow and the recorder")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    print(f"callgate engine bench: Python {platform.python_version()}, NumPy {np.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs (pinned to one), "
          f"load average {os.getloadavg()[0]:.2f}")
    prompts = PromptSet("en")
    bench_speed(args.seconds, prompts)
    bench_barge_in(prompts)
    if not args.skip_memory:
        bench_memory(args.calls, args.flow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
