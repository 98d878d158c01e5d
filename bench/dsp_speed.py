#!/usr/bin/env python3
"""Signal-core speed, latency and memory, with the reference decoders beside ours.

Run by hand:  .venv/bin/python bench/dsp_speed.py [--seconds 60]

Reports, on this machine and one core:
- decode speed in multiples of real time: the detector bank as `callgate decode`
  (every tone plan, its default; and the US plan alone, as before --toneplan auto),
  the engine's call loop and its on-hook caller ID capture build it, and each
  detector alone, fed one-second frames (as `decode` does), 1000-sample frames
  and 160-sample (20 ms) frames;
- per-frame processing time at the 50th/99th percentile for 20 ms frames;
- detection latency: DTMF tone onset -> event, caller ID burst end -> event;
- peak Python heap (tracemalloc) while decoding;
- the same audio through libspandsp (dtmf_rx, adsi_rx), multimon-ng (DTMF) and
  minimodem (--rx), timed as whole processes, and what each of them decoded.
"""

from __future__ import annotations

import os

# One core, as on the appliance: pin the process and keep BLAS single-threaded
# before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from _signals import busy_line, typical_call
from callgate.dsp import RATE
from callgate.dsp.bank import DetectorBank
from callgate.dsp.callerid import CallerIdReceiver
from callgate.dsp.decoder import DECODE_FRAME, line_decoder
from callgate.dsp.dtmf import DtmfEvent, DtmfReceiver
from callgate.dsp.fsk import BELL202, V23
from callgate.dsp.tones import CallProgressDetector
from callgate.toneplans import auto_toneplan, load_toneplan
from callgate.wav import write_wav
from external import spandsp_tool

DETECTORS = {
    "bank: decode": lambda: line_decoder(auto_toneplan()),
    "bank: decode, us plan only": lambda: line_decoder(load_toneplan("us")),
    "bank: call loop": lambda: DetectorBank(fsk=(BELL202, V23), callwaiting=True,
                                            tones=load_toneplan("us"), voice=True),
    "bank: call loop, unbatched": lambda: DetectorBank(
        fsk=(BELL202, V23), callwaiting=True, tones=load_toneplan("us"), voice=True,
        slow_block=0),
    "bank: on-hook caller ID": lambda: DetectorBank(dtmf=False, dtmf_callerid=True,
                                                    fsk=(BELL202, V23), slow_block=0),
    "dtmf": DtmfReceiver,
    "callerid (bell202+v23)": CallerIdReceiver,
    "tones (us plan)": lambda: CallProgressDetector(load_toneplan("us")),
    "tones (auto: every plan)": lambda: CallProgressDetector(auto_toneplan()),
}


def run(make, audio: np.ndarray, frame: int) -> tuple[float, list, list]:
    """CPU seconds to decode, events, and per-frame wall times."""
    det = make()
    events, per_frame = [], []
    cpu0 = time.process_time()
    for start in range(0, len(audio), frame):
        t0 = time.perf_counter()
        events += det.feed(audio[start:start + frame])
        per_frame.append(time.perf_counter() - t0)
    events += det.flush()
    return time.process_time() - cpu0, events, per_frame


def speed_table(audio: np.ndarray, title: str) -> None:
    seconds = len(audio) / RATE
    print(f"\n## Speed: {title} ({seconds:.0f} s of audio, CPU time of this process, best of 3)")
    print(f"{'detector':28} {'x real time (8000)':>19} {'x real time (1000)':>19} "
          f"{'x real time (160)':>18} "
          f"{'p50 ms/20ms':>12} {'p99 ms/20ms':>12}")
    for name, make in DETECTORS.items():
        cpu_second = min(run(make, audio, DECODE_FRAME)[0] for _ in range(3))
        cpu_big = min(run(make, audio, 1000)[0] for _ in range(3))
        runs = [run(make, audio, 160) for _ in range(3)]
        cpu_small, _, frames = min(runs, key=lambda r: r[0])
        ms = np.array(frames) * 1000
        print(f"{name:28} {seconds / cpu_second:19.0f} {seconds / cpu_big:19.0f} "
              f"{seconds / cpu_small:18.0f} "
              f"{np.percentile(ms, 50):12.3f} {np.percentile(ms, 99):12.3f}")


def latency_table(audio: np.ndarray, truth: dict) -> None:
    """Sample at which the event came out, minus the onset (or burst end)."""
    print("\n## Detection latency, 20 ms frames")
    dtmf, cid = DtmfReceiver(), CallerIdReceiver()
    dtmf_out, cid_out = [], []
    for start in range(0, len(audio), 160):
        frame = audio[start:start + 160]
        end = start + len(frame)
        dtmf_out += [(end, e) for e in dtmf.feed(frame)]
        cid_out += [(end, e) for e in cid.feed(frame)]
    lat = [(end - e.sample) / RATE * 1000 for end, e in dtmf_out]
    print(f"DTMF onset -> event: median {np.median(lat):.0f} ms, max {np.max(lat):.0f} ms "
          f"({len(lat)} digits)")
    ends = np.array(truth["cid_ends"])
    cid_lat = [(end - ends[np.argmin(abs(ends - end))]) / RATE * 1000 for end, _ in cid_out]
    if cid_lat:
        print(f"caller ID burst end -> event: median {np.median(cid_lat):.0f} ms, "
              f"max {np.max(cid_lat):.0f} ms ({len(cid_lat)} bursts)")


def memory(audio: np.ndarray) -> None:
    tracemalloc.start()
    run(DETECTORS["bank: decode"], audio, 160)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\n## Memory\npeak Python heap while decoding (tracemalloc): {peak / 1024:.0f} KiB "
          f"(the audio itself is {audio.nbytes / 1024:.0f} KiB, not counted)")


def references(audio: np.ndarray, truth: dict) -> None:
    """The reference decoders on the same audio, timed as whole processes."""
    seconds = len(audio) / RATE
    ours = [e.digit for e in run(DtmfReceiver, audio, 1000)[1] if isinstance(e, DtmfEvent)]
    cids = run(CallerIdReceiver, audio, 1000)[1]
    print(f"\n## Against the reference decoders (same {seconds:.0f} s of audio)")
    print(f"keyed: {len(truth['digits'])} digits, {len(truth['cid_ends'])} caller ID bursts")
    print(f"{'decoder':34} {'x real time':>12}  result")
    cpu, _, _ = run(DtmfReceiver, audio, 1000)
    print(f"{'callgate DtmfReceiver':34} {seconds / cpu:12.0f}  "
          f"{_digit_score(''.join(ours), truth['digits'])}")
    cpu, _, _ = run(CallerIdReceiver, audio, 1000)
    good = sum(1 for e in cids if getattr(e, "checksum_ok", False))
    print(f"{'callgate CallerIdReceiver':34} {seconds / cpu:12.0f}  {good} good messages")
    raw = np.asarray(audio, "<i2").tobytes()
    tool = spandsp_tool()
    wall, out = _timed([tool, "dtmf-rx"], raw)
    print(f"{'libspandsp dtmf_rx':34} {seconds / wall:12.0f}  "
          f"{_digit_score(out.decode().strip(), truth['digits'])}")
    wall, out = _timed([tool, "adsi-rx", "class"], raw)
    print(f"{'libspandsp adsi_rx (CLASS)':34} {seconds / wall:12.0f}  "
          f"{len(out.split())} messages")
    if shutil.which("multimon-ng") and shutil.which("sox"):
        up = subprocess.run(["sox", "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16",
                             "-c", "1", "-", "-t", "raw", "-r", "22050", "-"],
                            input=raw, capture_output=True, check=True).stdout
        wall, out = _timed(["multimon-ng", "-q", "-c", "-a", "DTMF", "-t", "raw", "-"], up)
        digits = "".join(line.split()[-1] for line in out.decode().splitlines()
                         if line.startswith("DTMF"))
        print(f"{'multimon-ng DTMF (at 22.05 kHz)':34} {seconds / wall:12.0f}  "
              f"{_digit_score(digits, truth['digits'])}")
    if shutil.which("minimodem"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "a.wav"
            write_wav(path, audio)
            wall, out = _timed(["minimodem", "--rx", "-q", "-8", "-f", str(path), "1200"], b"")
        found = out.count(b"BENCH CALLER")
        print(f"{'minimodem --rx 1200 (bytes only)':34} {seconds / wall:12.0f}  "
              f"name bytes found in {found} bursts (no message framing)")


def _timed(cmd: list[str], data: bytes) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, input=data, capture_output=True, check=False).stdout
    return time.perf_counter() - t0, out


def _digit_score(got: str, want: str) -> str:
    """Matched digits in order, and extras (false or doubled digits)."""
    i = 0
    for ch in got:
        if i < len(want) and ch == want[i]:
            i += 1
    return f"{i}/{len(want)} digits, {len(got) - i} extra"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(f"# callgate signal core bench — {platform.machine()}, "
          f"{platform.processor() or 'cpu'}, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    audio, truth = busy_line(args.seconds)
    speed_table(audio, "busy line (caller ID, keys, speech, busy tone back to back)")
    speed_table(typical_call(args.seconds), "typical call (mostly quiet, prompts, a few keys)")
    latency_table(audio, truth)
    memory(audio)
    references(audio, truth)


if __name__ == "__main__":
    main()
