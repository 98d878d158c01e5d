#!/usr/bin/env python3
"""Start-up time of `callgate run`: from spawning the process to its READY=1.

Run by hand:  .venv/bin/python bench/startup.py [--runs 10] [--minimal] [--firmware DIR]

Why: systemd (Type=notify) holds the line's callers until READY=1, and a
restart after a crash or an update is time in which the phone rings out. This
binds a unix datagram socket as systemd does, passes it in $NOTIFY_SOCKET, and
times spawn -> the READY=1 datagram; then stops the process with SIGTERM (as
`systemctl stop`). The config is the demo's: the simulated line, the embedded
directory and a call store in a temporary folder (--minimal: the line and the
scripted handler only). The store is kept across runs, as on a restart.

Byte code: this machine may set PYTHONDONTWRITEBYTECODE, which would make every
start compile every module. The appliance has its .pyc files, so the runs get
a private PYTHONPYCACHEPREFIX, filled by one warm-up run (reported as "cold";
with an empty prefix NumPy and SciPy compile too, so it is colder than a
first boot, which has their installed .pyc files).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp: Path, python: str, env: dict, minimal: bool) -> Path:
    """The run config in tmp; for the full one, the sample directory imported first."""
    lines = ['[line]', 'backend = "sim"']
    if not minimal:
        db = tmp / "directory.sqlite"
        subprocess.run([python, "-m", "callgate.cli", "directory", "import",
                        str(ROOT / "tests" / "fixtures" / "customers.csv"), "--db", str(db)],
                       env=env, check=True, capture_output=True, timeout=300)
        lines += ['[crm]', 'kind = "directory"', f'directory = "{db}"',
                  '[store]', f'path = "{tmp / "calls.sqlite"}"',
                  '[[service]]', 'name = "support"',
                  '[service.transfer]', 'agent = "201"', 'mode = "blind"']
    cfg = tmp / "callgate.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def time_to_ready(python: str, cfg: Path, env: dict, sock_path: Path,
                  timeout: float = 120.0) -> float:
    """Seconds from spawn to READY=1; the process is then stopped with SIGTERM."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, \
            tempfile.TemporaryFile() as err:
        if sock_path.exists():
            sock_path.unlink()
        sock.bind(str(sock_path))
        env = dict(env, NOTIFY_SOCKET=str(sock_path))
        t0 = time.perf_counter()
        proc = subprocess.Popen([python, "-m", "callgate.cli", "run", "--config", str(cfg)],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
        ready = None
        try:
            deadline = t0 + timeout
            while ready is None:
                left = deadline - time.perf_counter()
                if left <= 0 or proc.poll() is not None and not _pending(sock):
                    break
                sock.settimeout(min(left, 0.5))
                try:
                    data = sock.recv(4096)
                except socket.timeout:
                    continue
                if "READY=1" in data.decode("utf-8", "replace").splitlines():
                    ready = time.perf_counter() - t0
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if ready is None:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            raise RuntimeError(f"no READY=1 (exit {proc.returncode}): " + " | ".join(tail))
        return ready


def _pending(sock: socket.socket) -> bool:
    """A datagram is still queued (the process may have exited after sending READY=1)."""
    sock.setblocking(False)
    try:
        sock.recv(4096, socket.MSG_PEEK)
        return True
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def interpreter_floor(python: str, env: dict, runs: int) -> float:
    """Median start-and-exit of the bare interpreter: the part no firmware change removes."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", "pass"], env=env, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--minimal", action="store_true",
                    help="line and scripted handler only (no directory, store or service)")
    ap.add_argument("--firmware", type=Path, default=ROOT / "firmware",
                    help="the tree whose callgate package runs (default: this one)")
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()

    firmware = args.firmware.resolve()
    with tempfile.TemporaryDirectory(prefix="cg-startup-") as tmp_name:
        tmp = Path(tmp_name)
        path = os.pathsep.join(x for x in (str(firmware), os.environ.get("PYTHONPATH")) if x)
        # the directory import must not fill the runs' byte-code cache: "cold" is cold
        cfg = write_config(tmp, args.python, dict(os.environ, PYTHONPATH=path), args.minimal)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONDONTWRITEBYTECODE", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                            "WATCHDOG_PID")}
        env["PYTHONPATH"] = path
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        try:
            cold = time_to_ready(args.python, cfg, env, tmp / "notify")
            times = [time_to_ready(args.python, cfg, env, tmp / "notify")
                     for _ in range(args.runs)]
        except RuntimeError as err:
            print(f"bench/startup.py: `callgate run` in {firmware}: {err}", file=sys.stderr)
            return 1
        floor = interpreter_floor(args.python, env, max(3, args.runs // 2))
    print(f"callgate start-up bench on {machine()}")
    print(f"firmware {firmware}; config: "
          + ("sim line only" if args.minimal else "sim line + directory + call store + service"))
    print(f"spawn -> READY=1: median {statistics.median(times) * 1000:.0f} ms over {len(times)} "
          f"runs (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}); "
          f"cold (no .pyc) {cold * 1000:.0f} ms; bare interpreter {floor * 1000:.0f} ms")
    print("runs (ms): " + ", ".join(f"{t * 1000:.0f}" for t in times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
