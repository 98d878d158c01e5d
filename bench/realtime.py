#!/usr/bin/env python3
"""A paced call on a slow disk: `callgate simulate --realtime`, with and without fsync stalls.

Run by hand:  .venv/bin/python bench/realtime.py [--runs 3] [--stall-ms 200 100]
              [--scenario tests/scenarios/verified_by_number.toml] [--firmware DIR]

Why: paced at the wall-clock rate, the engine has 20 ms per frame; a call
record written on the audio thread with synchronous=FULL would wait for the
disk there. The fsync-stall shim (tests/helpers/fsync_stall.c, built into a
temporary folder here) makes every fsync slow and logs which thread asked, so
this shows per run: wall time per call, the engine's own pacing line from the
transcript ({"event": "pacing", "overruns", "late_frames", "max_lag_ms"}), and
the fsyncs done on the main thread (tid == pid) and on other threads.

Without --realtime in the tree's `callgate simulate` (or with --plain) the runs
are unpaced, as fast as the code goes, and there is no pacing line to report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fsync_stall import build_shim, fsync_calls, fsync_stall_env  # noqa: E402

DEFAULT_SCENARIO = ROOT / "tests" / "scenarios" / "verified_by_number.toml"


def child_env(firmware: Path, base: dict | None = None) -> dict[str, str]:
    """The environment of a `callgate` child that imports the chosen tree's firmware."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(firmware), env.get("PYTHONPATH")) if x)
    return env


def simulate_cmd(python: str, *args: str) -> list[str]:
    return [python, "-m", "callgate.cli", "simulate", *args]


def has_realtime(python: str, firmware: Path) -> bool:
    """Whether this tree's `callgate simulate` knows --realtime (read from its --help)."""
    res = subprocess.run(simulate_cmd(python, "--help"), env=child_env(firmware),
                         capture_output=True, text=True, timeout=120)
    return "--realtime" in res.stdout


def one_run(python: str, firmware: Path, scenario: Path, realtime: bool,
            stall_ms: int | None, shim: Path | None) -> dict:
    """One simulate run: wall time, calls, line time, pacing lines, fsyncs by thread."""
    with tempfile.TemporaryDirectory(prefix="cg-realtime-") as tmp:
        env = child_env(firmware)
        if stall_ms is not None:
            env = fsync_stall_env(tmp, ms=stall_ms, base=env, lib=shim)
        args = (["--realtime"] if realtime else []) + ["--json", str(scenario)]
        t0 = time.perf_counter()
        res = subprocess.run(simulate_cmd(python, *args), env=env, capture_output=True,
                             text=True, timeout=1800)
        wall = time.perf_counter() - t0
        calls = fsync_calls(env["FSYNC_STALL_LOG"]) if stall_ms is not None else []
    events = []
    for row in res.stdout.splitlines():
        try:
            events.append(json.loads(row))
        except ValueError:
            pass
    ends = [e for e in events if e.get("event") == "end"]
    pacing = [{k: e.get(k) for k in ("call", "overruns", "late_frames", "max_lag_ms")}
              for e in events if e.get("event") == "pacing"]
    checks = [e for e in events if e.get("event") == "check"]
    return {
        "rc": res.returncode,
        "wall_s": wall,
        "calls": len(ends),
        "line_s": max((e.get("t") or 0.0 for e in ends), default=0.0),
        "pacing": pacing,
        "checks_failed": sum(1 for c in checks if not c.get("pass")),
        "fsync_main": sum(1 for tid, pid, _, _ in calls if tid == pid),
        "fsync_other": sum(1 for tid, pid, _, _ in calls if tid != pid),
        "stderr": res.stderr.strip().splitlines()[-3:] if res.returncode else [],
    }


def summarise(label: str, runs: list[dict]) -> str:
    walls = [r["wall_s"] for r in runs]
    per_call = [r["wall_s"] / r["calls"] for r in runs if r["calls"]]
    out = [f"{label}: {len(runs)} runs, wall median {statistics.median(walls):.3f} s "
           f"(min {min(walls):.3f}, max {max(walls):.3f})"]
    if per_call:
        out.append(f"  per call median {statistics.median(per_call):.3f} s; line time "
                   f"{runs[0]['line_s']:.2f} s a run, {runs[0]['calls']} call(s)")
    out.append("  fsyncs a run: main thread " + ", ".join(str(r["fsync_main"]) for r in runs)
               + "; other threads " + ", ".join(str(r["fsync_other"]) for r in runs))
    pacing = [p for r in runs for p in r["pacing"]]
    if pacing:
        out.append("  pacing: overruns max {}, late_frames max {}, max_lag_ms max {}".format(
            max(p["overruns"] or 0 for p in pacing), max(p["late_frames"] or 0 for p in pacing),
            max(p["max_lag_ms"] or 0 for p in pacing)))
        for i, r in enumerate(runs, 1):
            for p in r["pacing"]:
                out.append(f"    run {i}: {json.dumps({'event': 'pacing', **p})}")
    bad = [r for r in runs if r["rc"] != 0 or r["checks_failed"]]
    for r in bad:
        out.append(f"  a run exited {r['rc']} with {r['checks_failed']} failed checks: "
                   + " | ".join(r["stderr"]))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stall-ms", type=int, nargs="*", default=[200],
                    help="fsync stalls to run with (besides no shim at all)")
    ap.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    ap.add_argument("--firmware", type=Path, default=ROOT / "firmware",
                    help="the tree whose callgate package runs (default: this one)")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--plain", action="store_true", help="unpaced runs, without --realtime")
    ap.add_argument("--json", action="store_true", help="every run's figures as JSON too")
    args = ap.parse_args()

    firmware = args.firmware.resolve()
    print(f"callgate realtime bench on {machine()}")
    print(f"firmware {firmware}, scenario {args.scenario}")
    realtime = not args.plain
    if realtime and not has_realtime(args.python, firmware):
        print("`callgate simulate --realtime` does not exist in this tree yet: "
              "no paced runs and no pacing line; measuring unpaced runs instead")
        realtime = False
    print("mode: " + ("paced (--realtime)" if realtime else "unpaced"))
    with tempfile.TemporaryDirectory(prefix="cg-shim-") as shim_dir:
        shim = build_shim(shim_dir)
        results = {}
        for stall in [None, *args.stall_ms]:
            label = "no shim" if stall is None else f"fsync stall {stall} ms"
            runs = [one_run(args.python, firmware, args.scenario.resolve(), realtime, stall, shim)
                    for _ in range(args.runs)]
            results[label] = runs
            print(summarise(label, runs), flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
