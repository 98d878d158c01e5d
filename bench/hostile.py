#!/usr/bin/env python3
"""The web app under hostile load on loopback: peak memory, and a signed-in page meanwhile.

Run by hand:  .venv/bin/python bench/hostile.py [--signins 400] [--slow 100] [--firmware DIR]

Why: issue 16. A flood of wrong sign-ins must not exhaust a 512 MiB board (target:
peak RSS of the web process at most 150 MiB, whatever the number), and slow clients
must not starve the people already signed in (target: their page answers within 1 s
while 100 slow clients are connected).

What it does, all on 127.0.0.0/8 and bounded in time and count: makes a temporary
[web] configuration, `callgate web init` (the device's real scrypt cost), starts
`callgate web` as its own process, signs one admin in, then runs three phases while
that admin asks for the status page every 0.2 s:

  signins  --signins wrong sign-ins (random names) from --workers threads at once,
           sprayed over many source addresses 127.0.0.2 ... (a real CSRF token each)
  slow     --slow clients, each from its own address, sending one header byte every
           --drip seconds for --seconds, reconnecting whenever the server closes them
  both     the two at once

For each phase: the web process's peak RSS (VmHWM, reset before the phase), the
answers the attackers got, how often the server closed a slow client, and the
signed-in page's time (median, 95th percentile, worst). --firmware runs another
tree's firmware (e.g. a checkout from before the fix) against the same load; the
configuration holds only keys every version knows.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from _machine import machine

ROOT = Path(__file__).resolve().parent.parent
ADMIN, PASSWORD = "bench-admin", "bench-hostile-Admin-7f3k"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Client:
    """One HTTP/1.1 client from one source address, keeping its cookies."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 30.0) -> None:
        self.port, self.source, self.timeout = port, source, timeout
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout,
                                                       source_address=(self.source, 0))
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                text = r.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    return 0, ""
                continue
            for name, value in r.getheaders():
                if name.lower() == "set-cookie":
                    k, _, v = value.split(";", 1)[0].partition("=")
                    self.cookies[k.strip()] = v.strip()
            if r.getheader("Connection", "").lower() == "close":
                self.close()
            return r.status, text
        return 0, ""

    def sign_in(self, name: str, password: str) -> int:
        status, page = self.request("GET", "/signin")
        found = TOKEN.search(page)
        if not found:
            return status or -1
        from urllib.parse import urlencode
        body = urlencode({"csrf_token": found.group(1), "username": name,
                          "password": password})
        return self.request("POST", "/signin", body)[0]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---------------------------------------------------------------- the web process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_web(tmp: Path, firmware: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = tmp / "callgate.toml"
    config.write_text(f'[web]\nlisten = "127.0.0.1:{port}"\ndb = "{tmp}/web.sqlite"\n'
                      f'secret_key_file = "{tmp}/web-secret.key"\n'
                      f'store = "{tmp}/calls.sqlite"\n')
    env = {**os.environ, "PYTHONPATH": str(firmware)}
    cmd = [sys.executable, "-c", "import sys; from callgate.cli import main; sys.exit(main())"]
    subprocess.run([*cmd, "web", "init", "--admin", ADMIN, "--config", str(config)],
                   input=PASSWORD + "\n", text=True, check=True, env=env, capture_output=True)
    proc = subprocess.Popen([*cmd, "web", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "serving on" not in line:
        raise SystemExit(f"callgate web did not start: {line.strip()}")
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
    return proc, port


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> bool:
    """Start VmHWM again from the current RSS (Linux 4.0+: write 5 to clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler:
    """The largest RSS seen every 20 ms, for a kernel that cannot reset VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            except OSError:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


# ---------------------------------------------------------------- the load


def spray_signins(port: int, count: int, workers: int, addresses: int, out: Counter) -> None:
    """`count` wrong sign-ins with random names, `workers` at a time, over `addresses`."""
    todo = iter(range(count))
    lock = threading.Lock()

    def work(k: int) -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            source = f"127.0.{1 + (i % addresses) // 250}.{2 + (i % addresses) % 250}"
            c = Client(port, source)
            code = c.sign_in(f"guess{secrets.token_hex(4)}", f"wrong-{secrets.token_hex(8)}")
            c.close()
            with lock:
                out[code] += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def slow_clients(port: int, count: int, drip_s: float, seconds: float, out: Counter,
                 connected: list) -> None:
    """`count` clients from their own addresses, one header byte per `drip_s`, for
    `seconds`; a client the server closes connects again (and it is counted)."""
    end = time.monotonic() + seconds
    head = b"GET /status HTTP/1.1\r\nHost: device\r\nX-Padding: " + b"a" * 4096

    def one(k: int) -> None:
        source = f"127.1.{k // 250}.{2 + k % 250}"
        while time.monotonic() < end:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                                source_address=(source, 0))
            except OSError:
                out["refused"] += 1
                time.sleep(drip_s)
                continue
            with lock:
                connected[0] += 1
            try:
                for byte in head:
                    if time.monotonic() >= end:
                        break
                    sock.send(bytes([byte]))
                    time.sleep(drip_s)
                else:
                    out["head sent whole"] += 1
                    continue
                out["held to the end"] += 1
            except OSError:
                out["closed by the server"] += 1
            finally:
                with lock:
                    connected[0] -= 1
                sock.close()

    lock = threading.Lock()
    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def watch_page(port: int, stop, ready, asked, answers) -> None:
    """The signed-in admin asks for the status page every 0.2 s, from a process of its own
    (the load's threads must not hold this one's GIL): `asked` gets when each request
    left, `answers` (t0, seconds, status) when it came back."""
    me = Client(port)
    if me.sign_in(ADMIN, PASSWORD) != 302:
        answers.put((time.monotonic(), 0.0, -1))
        ready.set()
        return
    ready.set()
    while not stop.is_set():
        t0 = time.monotonic()
        asked.put(t0)
        p0 = time.perf_counter()
        code, _ = me.request("GET", "/status")
        answers.put((t0, time.perf_counter() - p0, code))
        stop.wait(0.2)
    me.close()


class Watcher:
    """watch_page in its own process; which answers came while most slow clients were
    connected is decided from the times the load thread records."""

    def __init__(self, port: int) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.stop, self.ready = ctx.Event(), ctx.Event()
        self.asked, self.answers = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=watch_page, args=(port, self.stop, self.ready,
                                                         self.asked, self.answers), daemon=True)
        self.proc.start()
        self.ready.wait(120)                 # signed in before the load begins

    def finish(self) -> list[tuple[float, float, int]]:
        self.stop.set()
        out = []
        self.proc.join(60)
        while not self.answers.empty():
            out.append(self.answers.get())
        return out


def phase(name: str, pid: int, port: int, args, signins: bool, slow: bool) -> dict:
    exact = reset_peak(pid)
    sampler = RssSampler(pid)
    start_rss = status_kib(pid, "VmRSS")
    connected = [0]
    crowd_log: list[tuple[float, int]] = []         # (when, slow clients connected)
    watcher = Watcher(port)
    signin_codes: Counter = Counter()
    slow_out: Counter = Counter()
    load = []
    if signins:
        load.append(threading.Thread(target=spray_signins, args=(
            port, args.signins, args.workers, args.addresses, signin_codes)))
    if slow:
        load.append(threading.Thread(target=slow_clients, args=(
            port, args.slow, args.drip, args.seconds, slow_out, connected)))
        done = threading.Event()

        def note_crowd() -> None:
            while not done.wait(0.05):
                crowd_log.append((time.monotonic(), connected[0]))
        noter = threading.Thread(target=note_crowd, daemon=True)
        noter.start()
    t0 = time.monotonic()
    for t in load:
        t.start()
    for t in load:
        t.join()
    took = time.monotonic() - t0
    if slow:
        done.set()
    answers = watcher.finish()
    sampled = sampler.stop()
    peak = status_kib(pid, "VmHWM") if exact else sampled
    end_rss = status_kib(pid, "VmRSS")
    crowded = []
    for at, seconds, _ in answers:
        before = [n for when, n in crowd_log if when <= at]
        if before and before[-1] >= args.slow * 0.9:
            crowded.append(seconds)
    return {"name": name, "took": took, "start": start_rss, "peak": max(peak, sampled),
            "end": end_rss, "exact": exact, "times": [s for _, s, _ in answers],
            "page_codes": Counter(code for _, _, code in answers),
            "signin_codes": signin_codes, "slow": slow_out, "crowded": crowded}


def show(r: dict) -> None:
    mib = lambda kib: f"{kib / 1024:.0f} MiB"       # noqa: E731
    t = sorted(r["times"])
    print(f"\n{r['name']} ({r['took']:.1f} s)")
    print(f"  web process RSS: {mib(r['start'])} before, peak {mib(r['peak'])}"
          f"{'' if r['exact'] else ' (sampled every 20 ms)'}, {mib(r['end'])} after")
    if r["signin_codes"]:
        print("  wrong sign-ins answered: " + ", ".join(
            f"{n} x {code or 'no answer'}" for code, n in sorted(r["signin_codes"].items())))
    if r["slow"]:
        print("  slow clients: " + ", ".join(f"{k} {v}" for k, v in sorted(r["slow"].items())))
    if t:
        p95 = t[min(len(t) - 1, int(0.95 * len(t)))]
        print(f"  signed-in page ({len(t)} asked, answers "
              f"{dict(sorted(r['page_codes'].items()))}): median {statistics.median(t):.3f} s,"
              f" p95 {p95:.3f} s, worst {t[-1]:.3f} s")
    if r["crowded"]:
        c = sorted(r["crowded"])
        print(f"  ... of which {len(c)} while 90%+ of the slow clients were connected: "
              f"worst {c[-1]:.3f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--signins", type=int, default=400, help="wrong sign-ins (400)")
    ap.add_argument("--workers", type=int, default=48, help="sign-ins at once (48)")
    ap.add_argument("--addresses", type=int, default=200, help="source addresses (200)")
    ap.add_argument("--slow", type=int, default=100, help="slow clients (100)")
    ap.add_argument("--drip", type=float, default=2.0, help="seconds between bytes (2)")
    ap.add_argument("--seconds", type=float, default=20.0, help="slow phase length (20)")
    ap.add_argument("--firmware", type=Path, default=ROOT / "firmware",
                    help="the firmware tree to run (default: this one)")
    args = ap.parse_args()
    if not sys.platform.startswith("linux"):
        raise SystemExit("hostile.py reads /proc: Linux only")
    print(f"machine: {machine()}")
    print(f"firmware: {args.firmware}")
    with tempfile.TemporaryDirectory(prefix="callgate-hostile-") as folder:
        proc, port = start_web(Path(folder), args.firmware)
        try:
            warm = Client(port)
            warm.sign_in(ADMIN, PASSWORD)
            warm.close()
            print(f"web process {proc.pid}: RSS {status_kib(proc.pid, 'VmRSS') / 1024:.0f} "
                  f"MiB after start and one sign-in")
            random.seed(16)
            for name, signins, slow in (("signins", True, False), ("slow", False, True),
                                        ("both", True, True)):
                show(phase(name, proc.pid, port, args, signins, slow))
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
