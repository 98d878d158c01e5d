#!/usr/bin/env python3
"""The recorder's durability window: how long a record step takes to reach the disk.

Run by hand:  .venv/bin/python bench/recorder_speed.py [--calls 200] [--stall-ms 0]

Hands the recorder (store/recorder.py, synchronous=FULL as on the appliance)
the steps of `--calls` calls at the pace a call makes them (about 30 steps
over a 20 s call, squeezed here into bursts a frame apart), then reports, per
step, the time from `submit` to its group's COMMIT returning (p50/p99/max),
the commit time itself, the groups, and the longest `submit` (what the audio
thread pays). With `--stall-ms N` the run is repeated in a child process under
the fsync-stall shim (tests/helpers/fsync_stall.c): the window stretches by
the stall, the submit does not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "tests"))

from callgate.call import LineState, Record  # noqa: E402
from callgate.privacy import mask  # noqa: E402
from callgate.store.recorder import Recorder  # noqa: E402

STEPS_PER_BURST = 3            # what one frame of a busy call hands over at most
FRAME_S = 0.020


def call_steps(n: int, t: float) -> list:
    cid = f"bench-{n}"
    steps = [Record("start", cid, t, {"line": "line1", "service": "support", "started": t,
                                      "ani_masked": mask("2015550123")}),
             LineState("line1", "in_flow", "lookup_number", cid, t)]
    for i in range(10):
        steps.append(Record("event", cid, t + i, {"step": "lookup", "detail": {"i": i}}))
        steps.append(Record("backend", cid, t + i, {"ms": 12.0, "error": False}))
        steps.append(Record("update", cid, t + i, {"id_attempts": i}))
    steps.append(LineState("line1", "idle", None, None, t + 20))
    return steps


def run(calls: int, path: Path) -> dict:
    rec = Recorder(path).start()
    worst_submit = 0.0
    began = time.monotonic()
    for n in range(calls):
        steps = call_steps(n, time.time())
        for i in range(0, len(steps), STEPS_PER_BURST):
            for step in steps[i:i + STEPS_PER_BURST]:
                t0 = time.perf_counter()
                rec.submit(step)
                worst_submit = max(worst_submit, time.perf_counter() - t0)
            time.sleep(FRAME_S)
    rec.flush(60)
    elapsed = time.monotonic() - began
    rec.close()
    out = rec.stats.figures()
    out.update(submit_ms_max=round(worst_submit * 1000, 3), seconds=round(elapsed, 1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--stall-ms", type=int, default=0,
                    help="also run under the fsync-stall shim with this stall")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help="where the store goes (default: a temporary folder)")
    args = ap.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="callgate-recorder-"))
    figures = run(args.calls, folder / "calls.sqlite")
    if args.child:
        print(json.dumps(figures))
        return 0
    print(f"recorder bench: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, store in {folder}")
    print(f"  no stall : {json.dumps(figures)}")
    if args.stall_ms:
        from fsync_stall import fsync_stall_env

        env = fsync_stall_env(folder, ms=args.stall_ms)
        sub = tempfile.mkdtemp(prefix="callgate-recorder-stall-")
        out = subprocess.run([sys.executable, __file__, "--child", "--calls", str(args.calls),
                              "--dir", sub], env=env, capture_output=True, text=True)
        print(f"  {args.stall_ms} ms fsync stall: {out.stdout.strip() or out.stderr.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
