"""Signal-core figures 2 and 3 for DTMF: keys over talking, weak and noisy lines, and talk-off.

Digits come from libspandsp's sender; the speech is Asterisk's recorded
prompts (real voices), mixed at a speech-to-tone power ratio (speech power
over its active 20 ms blocks against both tones together). The figures the
goals name are measured in bench/signal_core.py beside libspandsp and
multimon-ng; the floors here are what this receiver holds, so a change that
loses them fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from callgate.dsp.level import dbm0_to_rms
from corpus import LANGUAGES, asterisk_speech, music_on_hold
from external import spandsp_dtmf_tx
from keys import heard, matched
from test_talkoff import level_to

KEYS = "123A456B789C*0#D"


def active_rms(x: np.ndarray) -> float:
    """RMS over the 20 ms blocks that hold speech (within 20 dB of the loud ones)."""
    b = x[: x.size // 160 * 160].astype(np.float64).reshape(-1, 160)
    p = (b * b).mean(axis=1)
    return float(np.sqrt(p[p > 0.01 * np.percentile(p, 90)].mean()))


def keyed_over_speech(speech: np.ndarray, ratio_db: float, seed: int, on_ms: int,
                      off_ms: int, level: float = -20.0) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    digits = "".join(rng.choice(list(KEYS), 96))
    tones = spandsp_dtmf_tx(digits, level, on_ms, off_ms).astype(np.float64)
    s = speech[seed * 200_000:][: tones.size].astype(np.float64)
    s *= np.sqrt(2 * dbm0_to_rms(level) ** 2 * 10 ** (ratio_db / 10)) / active_rms(s)
    return np.clip(np.round(tones + s), -32768, 32767).astype(np.int16), digits


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return asterisk_speech("en")


@pytest.mark.parametrize("ratio_db,floor", [(0.0, 0.80), (-5.0, 0.94)])
def test_keys_over_speech(speech, ratio_db, floor):
    """Speech as loud as the tones (someone talking in the room, our own prompt's echo)."""
    got = want = extra = 0
    for seed in range(3):
        for on_ms, off_ms in ((50, 50), (100, 100)):
            x, digits = keyed_over_speech(speech, ratio_db, seed, on_ms, off_ms)
            h = heard(x)
            m = matched(h, digits)
            got, want, extra = got + m, want + len(digits), extra + len(h) - m
    assert extra == 0
    assert got / want >= floor, f"{got}/{want} digits over speech at {ratio_db} dB"


def white_noise_sequence(snr_db: float, seed: int) -> np.ndarray:
    """Each digit -20 dBm0 per tone, 50 ms on/off; SNR = both tones over the noise in 300-3400 Hz."""
    x = np.concatenate([np.zeros(400), spandsp_dtmf_tx(KEYS, -20, 50, 50).astype(float),
                        np.zeros(400)])
    noise = 2 * dbm0_to_rms(-20.0) ** 2 / 10 ** (snr_db / 10) * 4000 / 3100
    x = x + np.random.default_rng(seed).normal(0, np.sqrt(noise), x.size)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("snr_db,floor", [(6.0, 0.97), (4.0, 0.70)])
def test_keys_in_white_noise(snr_db, floor):
    got = sum(matched(heard(white_noise_sequence(snr_db, seed)), KEYS) for seed in range(10))
    assert got / 160 >= floor, f"{got}/160 digits at {snr_db} dB SNR"


@pytest.fixture(scope="module")
def recordings() -> list[np.ndarray]:
    return [asterisk_speech(lang, every=2) for lang in LANGUAGES] + [music_on_hold()]


@pytest.mark.parametrize("level", [-30.0, -15.0, -5.0])
def test_no_talk_off_on_recorded_speech_and_music(recordings, level):
    """About 70 minutes of real voices in four languages and music on hold: no digit at all."""
    assert [heard(level_to(x, level), 4000) for x in recordings] == [""] * len(recordings)
