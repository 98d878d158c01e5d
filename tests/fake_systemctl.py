#!/usr/bin/env python3
"""A fake systemctl for the update tests: restart, is-active and stop of Type=notify units.

It behaves as systemd does for a Type=notify, NotifyAccess=main service
(systemd.service(5), sd_notify(3)): `restart` stops the running process
(SIGTERM), starts ExecStart of the unit file with $NOTIFY_SOCKET naming a
datagram socket it listens on, and returns 0 once the main process sends
READY=1 (the sender's pid checked from the kernel's SCM_CREDENTIALS, as
NotifyAccess=main asks); it fails as systemctl does when the process exits
first or TimeoutStartSec passes. No polling: it waits on the socket and the
process's pidfd together. The service is left running when it returns.

    fake_systemctl.py --state DIR --units DIR --prefix DIR restart|is-active|stop UNIT

`--prefix` stands for /opt/callgate in ExecStart, so the units' real command
line runs the test's releases.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

STOP_TIMEOUT_S = 90.0


def unit_file(units: Path, unit: str) -> tuple[list[str], float]:
    text = (units / unit).read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", text, re.M).group(1).split()
    timeout = re.search(r"^TimeoutStartSec=(\d+)s?$", text, re.M)
    return exec_start, float(timeout.group(1)) if timeout else 90.0


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def stop(state: Path, unit: str) -> None:
    pidfile = state / f"{unit}.pid"
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    pidfile.unlink()
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        if not select.select([fd], [], [], STOP_TIMEOUT_S)[0]:
            os.kill(pid, signal.SIGKILL)          # TimeoutStopSec passed
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def start(state: Path, units: Path, prefix: str, unit: str) -> int:
    argv, timeout = unit_file(units, unit)
    argv = [re.sub(r"^/opt/callgate(?=/)", prefix, a) for a in argv]
    where = state / f"{unit}.notify"
    where.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(where))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    log = open(state / f"{unit}.log", "ab")
    proc = subprocess.Popen(argv, env={**os.environ, "NOTIFY_SOCKET": str(where)},
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    pidfd = os.pidfd_open(proc.pid)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            ready = select.select([sock, pidfd], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                proc.kill()
                print(f"Job for {unit} failed because a timeout was exceeded.", file=sys.stderr)
                return 1
            if sock in ready:
                data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
                sender = next((struct.unpack("3i", d[:12])[0] for lvl, kind, d in anc
                               if lvl == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS),
                              None)
                if sender != proc.pid:
                    continue                      # NotifyAccess=main: not the main process
                fields = dict(line.split("=", 1) for line in data.decode().splitlines()
                              if "=" in line)
                if fields.get("READY") == "1":
                    (state / f"{unit}.pid").write_text(str(proc.pid))
                    (state / f"{unit}.status").write_text(fields.get("STATUS", ""))
                    return 0
            elif pidfd in ready:
                code = proc.wait()
                print(f"Job for {unit} failed because the control process exited with "
                      f"error code (status {code}).", file=sys.stderr)
                return 1
    finally:
        os.close(pidfd)
        sock.close()
        where.unlink(missing_ok=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--state", required=True)
    p.add_argument("--units", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("verb", choices=("restart", "is-active", "stop"))
    p.add_argument("unit")
    args = p.parse_args()
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    if args.verb == "is-active":
        pidfile = state / f"{args.unit}.pid"
        on = pidfile.exists() and alive(int(pidfile.read_text()))
        print("active" if on else "failed")
        return 0 if on else 3
    stop(state, args.unit)
    if args.verb == "stop":
        return 0
    return start(state, Path(args.units), args.prefix, args.unit)


if __name__ == "__main__":
    sys.exit(main())
