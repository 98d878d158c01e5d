"""Test audio for the benches: a busy line, built deterministically."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "tests"))

from callgate.dsp import RATE  # noqa: E402
from callgate.dsp.callerid import BELL202, build_mdmf, callerid_tx  # noqa: E402
from callgate.dsp.dtmf import dtmf_tx  # noqa: E402
from callgate.dsp.level import dbm0_to_rms  # noqa: E402
from callgate.dsp.tones import plan_tone_tx  # noqa: E402
from callgate.toneplans import load_toneplan  # noqa: E402
from callgate.wav import read_wav  # noqa: E402


def speech(seconds: float) -> np.ndarray:
    """espeak-ng reading prose, or nothing when espeak-ng is absent."""
    if shutil.which("espeak-ng") is None:
        return np.zeros(0, np.int16)
    text = ("Thank you for calling. Please enter your customer number followed by the "
            "hash key. If you do not have it, press star. One moment please while we "
            "look up your account. ") * 4
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True,
                       capture_output=True)
        x = read_wav(path)
    return x[: int(seconds * RATE)]


def busy_line(seconds: float = 60.0, seed: int = 7) -> tuple[np.ndarray, dict]:
    """A cycle of caller ID, keyed digits, speech and busy tone, with noise.

    Returns the audio and what it holds: the digits keyed, the number of
    caller ID bursts and their end samples, and the DTMF onsets.
    """
    rng = np.random.default_rng(seed)
    plan = load_toneplan("us")
    parts, digits, onsets, cid_ends, pos = [], [], [], [], 0

    def add(x):
        nonlocal pos
        parts.append(np.asarray(x, np.float64))
        pos += len(x)

    cycle = 0
    while pos < seconds * RATE:
        add(np.zeros(RATE // 2))
        number = f"{rng.integers(10**9, 10**10)}"
        add(callerid_tx(build_mdmf(number=number, name="BENCH CALLER", datetime="11231000"),
                        BELL202, level_dbm0=-13.5))
        cid_ends.append(pos)
        add(np.zeros(RATE))
        for d in "0123456789*#ABCD"[cycle % 4 * 4: cycle % 4 * 4 + 4]:
            onsets.append(pos)
            digits.append(d)
            add(dtmf_tx(d, level_dbm0=-12.0, on_ms=60, off_ms=60))
        add(speech(6.0) * 0.5)
        add(plan_tone_tx(plan, "busy", 3.0, level_dbm0=-20.0))
        cycle += 1
    x = np.concatenate(parts)[: int(seconds * RATE)]
    x = x + rng.normal(0, dbm0_to_rms(-55.0), len(x))
    audio = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    n = len(audio)
    truth = {"digits": "".join(d for d, o in zip(digits, onsets) if o + 480 <= n),
             "dtmf_onsets": [o for o in onsets if o + 480 <= n],
             "cid_ends": [e for e in cid_ends if e <= n]}
    return audio, truth


def typical_call(seconds: float = 60.0, seed: int = 11) -> np.ndarray:
    """What a line carries in an ordinary call: mostly quiet, prompts, a few keys.

    Ring silence, one caller ID burst, our prompts echoed back at -10 dB,
    the caller keying an identifier and a PIN, some speech, line noise, then
    quiet until the exchange's busy tone.
    """
    rng = np.random.default_rng(seed)
    plan = load_toneplan("us")
    talk = speech(12.0)
    parts = [np.zeros(2 * RATE),
             callerid_tx(build_mdmf(number="2015550123", name="JANE SMITH", datetime="11231000"),
                         BELL202, level_dbm0=-13.5),
             np.zeros(3 * RATE), talk[: 6 * RATE] * 0.3, np.zeros(RATE),
             dtmf_tx("12345678#", level_dbm0=-10.0, on_ms=90, off_ms=200), np.zeros(RATE),
             talk[6 * RATE:] * 0.3, np.zeros(RATE), dtmf_tx("4271", level_dbm0=-10.0),
             np.zeros(8 * RATE), talk * 0.5]
    x = np.concatenate([np.asarray(p, np.float64) for p in parts])
    rest = int(seconds * RATE) - len(x)
    if rest > 0:
        tail = np.zeros(rest)
        busy = plan_tone_tx(plan, "busy", min(5.0, rest / RATE), level_dbm0=-20.0)
        tail[-len(busy):] = busy
        x = np.concatenate((x, tail))
    x = x[: int(seconds * RATE)] + rng.normal(0, dbm0_to_rms(-60.0), int(seconds * RATE))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)
