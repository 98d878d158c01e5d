"""DTMF receiver bench: talk-off on a large corpus, and the accept figures.

Run by hand:  .venv/bin/python bench/talkoff.py [--quick]

Talk-off: false digits per hour on about an hour of audio (espeak-ng speech
in many languages, voices, pitches and speeds; real recorded Mandarin
syllables from gcin-voice and the alsa-utils announcements; music from
asc-music) at three levels, for our receiver, libspandsp's dtmf_rx and
multimon-ng's DTMF decoder side by side.

Accept figures: for each knob (level, twist, frequency error, duration,
pause, white-noise SNR) the share of the 16 digits heard, swept, so that the
design note can quote where acceptance ends. SNR is total tone power over the
noise power in 300-3400 Hz (white noise over 0-4000 Hz).
Needs: sox, espeak-ng, multimon-ng, libspandsp-dev, alsa-utils, gcin-voice,
asc-music (Debian packages).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from external import spandsp_dtmf_rx, spandsp_dtmf_tx  # noqa: E402
from keys import matched  # noqa: E402
from test_talkoff import (QUICK_VOICES, TEXTS, alsa_speech, espeak_corpus,  # noqa: E402
                          gcin_syllables, level_to, music)

from callgate.dsp.dtmf import DTMF_FREQS, DtmfReceiver, dtmf_tx  # noqa: E402
from callgate.dsp.level import dbm0_to_amplitude, dbm0_to_rms  # noqa: E402

RATE = 8000
ALL = "123A456B789C*0#D"
LANGS = ["en-us", "en-gb", "en-gb-scotland", "en-us-nyc", "de", "fr-fr", "es", "es-419", "it",
         "pt", "pt-br", "nl", "sv", "pl", "cs", "ru", "uk", "el", "tr", "fi", "hu", "ro",
         "cmn", "yue", "ja", "ko", "vi", "th", "hi", "bn", "ta", "ar", "fa", "he", "sw", "id"]
VARIANTS = ["", "+f1", "+f2", "+f3", "+f4", "+f5", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6",
            "+m7", "+klatt", "+klatt2", "+klatt3", "+klatt4", "+whisper", "+croak", "+Andy",
            "+Annie", "+Denis", "+grandma", "+Gene", "+Mario", "+Michael", "+shelby", "+Storm"]


def bench_voices(count: int, seed: int = 5) -> list[tuple[str, str, int, int]]:
    rng = np.random.default_rng(seed)
    return [(str(rng.choice(LANGS)), str(rng.choice(VARIANTS)), int(rng.integers(100, 240)),
             int(rng.integers(0, 100))) for _ in range(count)]


def build_corpus(quick: bool) -> list[tuple[str, np.ndarray]]:
    voices = QUICK_VOICES if quick else QUICK_VOICES + bench_voices(170)
    speech = espeak_corpus(voices)
    # Long text read twice as often: the English text is the longest.
    return (speech + alsa_speech() + gcin_syllables(250 if quick else None)
            + music(25.0 if quick else None))


def ours(audio: np.ndarray) -> str:
    rx = DtmfReceiver()
    out = []
    for i in range(0, audio.size, 1000):
        out += rx.feed(audio[i:i + 1000])
    return "".join(e.digit for e in out + rx.flush())


def multimon(audio: np.ndarray) -> str:
    """multimon-ng's DTMF decoder (it wants 22050 Hz raw input)."""
    up = subprocess.run(["sox", "-q", "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16",
                         "-c", "1", "-", "-t", "raw", "-r", "22050", "-e", "signed", "-b", "16",
                         "-c", "1", "-"], input=audio.astype("<i2").tobytes(),
                        capture_output=True, check=True).stdout
    out = subprocess.run(["multimon-ng", "-q", "-c", "-a", "DTMF", "-t", "raw", "-"],
                         input=up, capture_output=True).stdout.decode(errors="replace")
    return "".join(line.split(":", 1)[1].strip() for line in out.splitlines()
                   if line.startswith("DTMF:"))


RECEIVERS = {"callgate": ours, "spandsp": spandsp_dtmf_rx, "multimon-ng": multimon}


def talkoff(corpus: list[tuple[str, np.ndarray]]) -> None:
    groups = {"espeak-ng speech": [], "real speech (gcin-voice, alsa)": [], "music": []}
    for name, x in corpus:
        key = ("espeak-ng speech" if name.startswith("espeak") else
               "music" if name.startswith("asc-music") else "real speech (gcin-voice, alsa)")
        groups[key].append(x)
    print("\n## Talk-off: false digits (per hour)\n")
    print(f"| corpus | minutes | level dBm0 | " + " | ".join(RECEIVERS) + " |")
    print("|---|---|---|" + "---|" * len(RECEIVERS))
    totals = {r: 0 for r in RECEIVERS}
    hours = 0.0
    for key, clips in groups.items():
        audio = np.concatenate(clips)
        minutes = audio.size / RATE / 60
        for level in (-25.0, -15.0, -5.0):
            leveled = np.concatenate([level_to(c, level) for c in clips])
            cells = []
            for rname, rx in RECEIVERS.items():
                heard = rx(leveled)
                totals[rname] += len(heard)
                cells.append(f"{len(heard)} ({len(heard) / (minutes / 60):.1f}/h)"
                             + (f" `{heard[:12]}`" if heard else ""))
            hours += minutes / 60
            print(f"| {key} | {minutes:.1f} | {level:g} | " + " | ".join(cells) + " |")
    print(f"| **all** | {hours * 60:.0f} (level-minutes) | | "
          + " | ".join(f"{t} ({t / hours:.2f}/h)" for t in totals.values()) + " |")


def tone_pair(digit: str, ms: float, low_dbm0: float, high_dbm0: float,
              deviation: float = 0.0) -> np.ndarray:
    t = np.arange(int(round(ms * RATE / 1000))) / RATE
    lo, hi = DTMF_FREQS[digit]
    return (dbm0_to_amplitude(low_dbm0) * np.sin(2 * np.pi * lo * (1 + deviation) * t)
            + dbm0_to_amplitude(high_dbm0) * np.sin(2 * np.pi * hi * (1 + deviation) * t))


def sequence(on_ms=50.0, off_ms=50.0, low=-10.0, high=None, deviation=0.0, snr=None,
             seed=0, digits=ALL) -> np.ndarray:
    high = low if high is None else high
    parts = [np.zeros(400)]
    for d in digits:
        parts += [tone_pair(d, on_ms, low, high, deviation), np.zeros(int(off_ms * 8))]
    x = np.concatenate(parts + [np.zeros(400)])
    if snr is not None:
        tone_power = dbm0_to_rms(low) ** 2 + dbm0_to_rms(high) ** 2
        noise = tone_power / 10 ** (snr / 10) * 4000 / 3100
        x = x + np.random.default_rng(seed).normal(0, np.sqrt(noise), x.size)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def score(rx, audio: np.ndarray, want: str) -> str:
    heard = rx(audio)
    hits = matched(heard, want)
    extra = len(heard) - hits
    return f"{hits}/{len(want)}" + (f" +{extra} false" if extra else "")


def sweep(title: str, values, make) -> None:
    print(f"\n### {title}\n")
    print("| value | callgate | spandsp |")
    print("|---|---|---|")
    for v in values:
        audio, want = make(v)
        print(f"| {v} | {score(ours, audio, want)} | {score(spandsp_dtmf_rx, audio, want)} |")


def accept_figures(quick: bool) -> None:
    print("\n## Accept figures (digits heard of those sent; '+n' = extra digits)\n")
    sweep("Level per tone, dBm0 (50 ms on/off; 0 dBm0 clips)",
          [0, -3, -10, -20, -25, -30, -31, -32, -33, -34, -36, -40],
          lambda v: (sequence(low=v), ALL))
    sweep("Twist, dB (high-group minus low-group; low tone at -10 dBm0)",
          [-13, -12, -11, -10, -9.5, -9, -8, 4, 5, 5.5, 6, 8, 12],
          lambda v: (sequence(low=-10.0, high=-10.0 + v), ALL))
    sweep("Frequency error, % (both tones)",
          [-3.5, -3, -2.5, -2.2, -2.0, -1.8, -1.5, 1.5, 1.8, 2.0, 2.2, 2.5, 3, 3.5],
          lambda v: (sequence(deviation=v / 100), ALL))
    sweep("Tone duration, ms (60 ms pauses)",
          [20, 23, 25, 27, 29, 31, 33, 35, 40],
          lambda v: (sequence(on_ms=v, off_ms=60), ALL))
    sweep("Pause between repeats of one digit, ms (50 ms tones, '5' x 16)",
          [5, 10, 15, 20, 25, 30, 35, 40],
          lambda v: (sequence(off_ms=v, digits="5" * 16), "5" * 16))
    seeds = 3 if quick else 10
    for ms in (50, 40):
        print(f"\n### White noise, SNR dB (tones -20 dBm0 each, {ms} ms on/off, "
              f"{seeds} seeds x 16 digits)\n")
        print("| SNR | callgate | spandsp |")
        print("|---|---|---|")
        for snr in (20, 15, 12, 11, 10, 9, 8, 6):
            got = {"callgate": 0, "spandsp": 0}
            for s in range(seeds):
                x = sequence(on_ms=ms, off_ms=ms, low=-20.0, snr=snr, seed=s)
                got["callgate"] += matched(ours(x), ALL)
                got["spandsp"] += matched(spandsp_dtmf_rx(x), ALL)
            print(f"| {snr} | {got['callgate']}/{16 * seeds} | {got['spandsp']}/{16 * seeds} |")
    print("\n### libspandsp's own dtmf_tx into our receiver\n")
    for lvl, tw in ((-10, 0), (-30, 0), (-10, 4), (-10, -8), (-10, 6), (-10, -12)):
        x = spandsp_dtmf_tx(ALL, lvl, 50, 50, tw)
        print(f"- level {lvl} dBm0, twist {tw:+d} dB: heard {ours(x)!r}")


def speed() -> None:
    print("\n## Speed (CPU ms per second of audio, 1000-sample frames)\n")
    rng = np.random.default_rng(0)
    signals = {
        "silence": np.zeros(RATE * 60, dtype=np.int16),
        "white noise -10 dBm0": np.clip(rng.normal(0, dbm0_to_rms(-10), RATE * 60),
                                        -32768, 32767).astype(np.int16),
        "one held digit": dtmf_tx("5", on_ms=60000, off_ms=0),
        "dialling 60/60 ms": dtmf_tx(ALL * 30, on_ms=60, off_ms=60),
        "dialling 100/400 ms": dtmf_tx(ALL * 8, on_ms=100, off_ms=400),
        "speech (espeak, -15 dBm0)": np.concatenate(
            [level_to(x, -15.0) for _, x in espeak_corpus(QUICK_VOICES[:6])]),
    }
    for name, x in signals.items():
        best = float("inf")
        for _ in range(3):
            rx = DtmfReceiver()
            t0 = time.process_time()
            for i in range(0, x.size, 1000):
                rx.feed(x[i:i + 1000])
            best = min(best, time.process_time() - t0)
        print(f"- {name}: {best / (x.size / RATE) * 1000:.2f} ms/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small test corpus only")
    args = ap.parse_args()
    t0 = time.time()
    corpus = build_corpus(args.quick)
    minutes = sum(x.size for _, x in corpus) / RATE / 60
    print(f"# DTMF bench\n\nCorpus: {len(corpus)} clips, {minutes:.1f} minutes "
          f"(built in {time.time() - t0:.0f} s); texts in {len(TEXTS)} languages.")
    talkoff(corpus)
    accept_figures(args.quick)
    speed()


if __name__ == "__main__":
    main()
