#!/usr/bin/env python3
"""The signal core beside libspandsp and multimon-ng, one row per goal, on the same audio.

Run by hand:  .venv/bin/python bench/signal_core.py [--quick]

Rows (each is a figure of the signal-core goals):
1. false caller ID events on recorded speech (Asterisk's prompts in four
   languages), music (music on hold, asc-music), white noise and keyed digits;
2. keys heard while someone talks (speech at 0 and -5 dB against the tones);
3. weak lines: digits at -36 and -45 dBm0 per tone, in white noise at 6 and
   4 dB SNR, and Bell 202 caller ID at 6 and 5 dB SNR;
4. talk-off per hour on the recorded speech and music at three levels;
5. speed in multiples of real time on one core.

Definitions: speech-to-tone ratio is the speech power over its active 20 ms
blocks against both tones together; DTMF SNR is both tones over white noise
measured in 300-3400 Hz; FSK SNR is the burst's power over white noise across
the whole band (4 kHz). Digits are libspandsp's dtmf_tx; caller ID bursts
alternate libspandsp's adsi_tx (CLASS) and ours. Needs what tools/test installs.
"""

from __future__ import annotations

import argparse
import glob
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import dsp_speed  # noqa: E402  (pins this process to one core, as on the appliance)
from _machine import machine  # noqa: E402
from corpus import LANGUAGES, asterisk_speech, minutes, music_on_hold  # noqa: E402
from external import (spandsp_adsi_rx, spandsp_adsi_tx, spandsp_dtmf_rx,  # noqa: E402
                      spandsp_dtmf_tx, spandsp_tool)
from talkoff import multimon  # noqa: E402
from keys import heard, matched  # noqa: E402
from test_dtmf_hard_lines import keyed_over_speech, white_noise_sequence  # noqa: E402
from test_fsk import add_noise, pad  # noqa: E402
from test_talkoff import level_to, music, quick_corpus  # noqa: E402

from callgate.dsp.callerid import BELL202, CallerIdReceiver, build_mdmf, callerid_tx  # noqa: E402
from callgate.dsp.decoder import DECODE_FRAME, decode  # noqa: E402
from callgate.wav import write_wav  # noqa: E402

RATE = 8000
KEYS = "123A456B789C*0#D"
MDMF = build_mdmf(number="5551234567", name="JOHN DOE", datetime="11221830")


def ours_dtmf(x: np.ndarray, frame: int = 1000) -> str:
    return heard(x, frame)


def row(cells: list) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |")


# --------------------------------------------------------------------------- 1


def false_callerid(recordings: dict[str, np.ndarray], keys: np.ndarray) -> None:
    print("\n## 1. Caller ID events on audio that holds none (at -25 and -10 dBm0)\n")
    row(["audio", "minutes", "callgate decode", "libspandsp adsi_rx CLASS + CLIP + CLIP-DTMF"])
    row(["---"] * 4)
    clips = dict(recordings)
    rng = np.random.default_rng(1)
    clips["white noise"] = np.clip(rng.normal(0, 3000, RATE * 300), -32768, 32767).astype(np.int16)
    clips["keyed digits (libspandsp, 50-120 ms)"] = keys
    for name, x in clips.items():
        ours = theirs = 0
        for level in (-25.0, -10.0):
            y = level_to(x, level)
            ours += sum(1 for e in decode(y) if e.kind == "callerid")
            theirs += sum(len(spandsp_adsi_rx(s, y)) for s in ("clip", "etsi", "dtmf"))
        row([name, f"{minutes(x):.1f}", ours, theirs])


def keyed_digits() -> np.ndarray:
    rng = np.random.default_rng(2)
    parts = []
    for on_ms, off_ms in ((50, 55), (70, 70), (100, 100), (120, 400)):
        for _ in range(8):
            parts.append(spandsp_dtmf_tx("".join(rng.choice(list(KEYS), 60)), -10, on_ms, off_ms))
    return np.concatenate(parts)


# --------------------------------------------------------------------------- 2


def keys_over_speech(speech: np.ndarray, seeds: int) -> None:
    print("\n## 2. Keys pressed while someone talks (digits heard / sent, + extra digits)\n")
    row(["speech vs tones", "callgate", "libspandsp", "multimon-ng"])
    row(["---"] * 4)
    for ratio in (0.0, -5.0, -10.0):
        tally = {"callgate": [0, 0], "libspandsp": [0, 0], "multimon-ng": [0, 0]}
        sent = 0
        for seed in range(seeds):
            for on_ms, off_ms in ((50, 50), (100, 100)):
                x, digits = keyed_over_speech(speech, ratio, seed, on_ms, off_ms)
                sent += len(digits)
                for name, rx in (("callgate", lambda a: ours_dtmf(a, 160)),
                                 ("libspandsp", spandsp_dtmf_rx), ("multimon-ng", multimon)):
                    got = rx(x)
                    hits = matched(got, digits)
                    tally[name][0] += hits
                    tally[name][1] += len(got) - hits
        row([f"{ratio:+g} dB"] + [f"{h / sent:.1%} (+{e})" for h, e in tally.values()])


# --------------------------------------------------------------------------- 3


def weak_lines(seeds: int) -> None:
    print("\n## 3. Weak lines\n")
    row(["signal", "callgate", "libspandsp", "multimon-ng"])
    row(["---"] * 4)
    pad_ = np.zeros(800, np.int16)
    for level in (-36, -40, -45):
        x = np.concatenate([pad_, spandsp_dtmf_tx(KEYS, level, 50, 50), pad_])
        row([f"16 digits at {level} dBm0 per tone"]
            + [f"{matched(rx(x), KEYS)}/16" for rx in (ours_dtmf, spandsp_dtmf_rx, multimon)])
    for snr in (6.0, 4.0):
        got = [0, 0, 0]
        for seed in range(seeds):
            x = white_noise_sequence(snr, seed)
            for k, rx in enumerate((ours_dtmf, spandsp_dtmf_rx, multimon)):
                got[k] += matched(rx(x), KEYS)
        row([f"digits at {snr:g} dB SNR ({seeds} x 16)"] + [f"{g / (16 * seeds):.1%}" for g in got])
    print()
    row(["Bell 202 caller ID, messages fully right", "callgate", "libspandsp", "minimodem"])
    row(["---"] * 4)
    for snr in (6.0, 5.0):
        got = [0, 0, 0]
        n = 4 * seeds
        for seed in range(n):
            burst = (spandsp_adsi_tx("clip", MDMF[:-1]) if seed % 2
                     else callerid_tx(MDMF, BELL202, level_dbm0=-13.5))
            x = add_noise(pad(burst, 4000, 4000), snr, seed=1000 + seed)
            got[0] += _ours_cid(x)
            got[1] += sum(1 for m in spandsp_adsi_rx("clip", x) if m == MDMF[:-1])
            got[2] += _minimodem_cid(x)
        row([f"{snr:g} dB SNR ({n} bursts)"] + [f"{g / n:.0%}" for g in got])


def _ours_cid(x: np.ndarray) -> int:
    rx = CallerIdReceiver()
    ev = [e for i in range(0, x.size, 1000) for e in rx.feed(x[i:i + 1000])] + rx.flush()
    return int(any(e.checksum_ok and e.number == "5551234567" and e.name == "JOHN DOE"
                   for e in ev))


def _minimodem_cid(x: np.ndarray) -> int:
    """minimodem has no caller ID framing: a message is right when its body bytes all came out."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.wav"
        write_wav(path, x)
        out = subprocess.run(["minimodem", "--rx", "-q", "-8", "-f", str(path), "1200"],
                             capture_output=True).stdout
    return int(MDMF[2:-1] in out)


# --------------------------------------------------------------------------- 4


def talkoff(recordings: dict[str, np.ndarray]) -> None:
    print("\n## 4. Talk-off: false digits on speech and music (-30, -15, -5 dBm0)\n")
    row(["audio", "minutes", "callgate", "libspandsp", "multimon-ng"])
    row(["---"] * 5)
    hours = 0.0
    totals = [0, 0, 0]
    for name, x in recordings.items():
        cells = [0, 0, 0]
        for level in (-30.0, -15.0, -5.0):
            y = level_to(x, level)
            for k, rx in enumerate((lambda a: ours_dtmf(a, 4000), spandsp_dtmf_rx, multimon)):
                cells[k] += len(rx(y))
        hours += 3 * minutes(x) / 60
        totals = [t + c for t, c in zip(totals, cells)]
        row([name, f"{minutes(x):.1f}"] + cells)
    row([f"**per hour** ({hours:.1f} h)", ""] + [f"{t / hours:.2f}" for t in totals])


# --------------------------------------------------------------------------- 5


def speed(seconds: float) -> None:
    print("\n## 5. Speed, multiples of real time on one core (CPU time; busy line)\n")
    audio, _ = dsp_speed.busy_line(seconds)
    row(["decoder", "frames", "x real time"])
    row(["---"] * 3)
    for name, frame in (("bank: decode", DECODE_FRAME), ("bank: call loop", 160), ("dtmf", 160),
                        ("bank: on-hook caller ID", 160)):
        cpu = min(dsp_speed.run(dsp_speed.DETECTORS[name], audio, frame)[0] for _ in range(3))
        row([f"callgate {name}", frame, f"{audio.size / RATE / cpu:.0f}"])
    raw = np.asarray(audio, "<i2").tobytes()
    for label, args in (("libspandsp dtmf_rx", ["dtmf-rx"]),
                        ("libspandsp adsi_rx CLASS", ["adsi-rx", "class"])):
        wall = min(dsp_speed._timed([spandsp_tool(), *args], raw)[0] for _ in range(3))
        row([label, "160", f"{audio.size / RATE / wall:.0f} (whole process)"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a quarter of the corpus, fewer seeds")
    args = ap.parse_args()
    t0 = time.time()
    every = 4 if args.quick else 1
    recordings = {f"Asterisk prompts, {lang}": asterisk_speech(lang, every) for lang in LANGUAGES}
    recordings["music on hold (Asterisk)"] = music_on_hold()
    recordings["asc-music"] = np.concatenate([x for _, x in music(None)])
    recordings["espeak-ng, gcin-voice, alsa"] = np.concatenate([x for _, x in quick_corpus()
                                                               if not _ is None])
    print(f"# Signal core against the reference decoders\n\n{machine()}; "
          f"corpus {sum(minutes(x) for x in recordings.values()):.0f} minutes "
          f"(built in {time.time() - t0:.0f} s)")
    seeds = 2 if args.quick else 6
    false_callerid(recordings, keyed_digits())
    keys_over_speech(asterisk_speech("en"), seeds)
    weak_lines(seeds)
    talkoff(recordings)
    speed(30.0 if args.quick else 60.0)
    print(f"\n(bench took {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
