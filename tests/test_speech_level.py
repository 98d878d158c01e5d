"""The active speech level meter (dsp/speech.py) against audio we did not make.

Sines from sox at known levels, real recorded speech (the alsa-utils
announcements) and espeak-ng speech, changed by sox's own gain and by
inserted silence: the meter must follow the gain to the tenth of a dB and
ignore the pauses, as P.56 method B does.
"""

from __future__ import annotations

import glob
import subprocess

import numpy as np
import pytest

from callgate.dsp.level import rms_dbm0
from callgate.dsp.speech import active_speech_level_dbm0, clipped_runs, measure
from callgate.wav import read_wav
from external import require, sox_effect, sox_synth

RATE = 8000
ALSA_SPEECH = "/usr/share/sounds/alsa"


def espeak(text: str, voice: str = "en-us", wpm: int = 170) -> np.ndarray:
    out = subprocess.run([require("espeak-ng"), "-v", voice, "-s", str(wpm), "--stdout", text],
                         check=True, capture_output=True).stdout
    return sox_wav_to_8k(out)


def sox_wav_to_8k(wav_bytes: bytes) -> np.ndarray:
    out = subprocess.run([require("sox"), "-q", "-t", "wav", "-", "-r", str(RATE), "-c", "1",
                          "-b", "16", "-e", "signed", "-t", "raw", "-"],
                         input=wav_bytes, check=True, capture_output=True).stdout
    return np.frombuffer(out, "<i2").copy()


@pytest.fixture(scope="module")
def speech_clips() -> dict[str, np.ndarray]:
    recorded = sorted(glob.glob(f"{ALSA_SPEECH}/*.wav"))
    recorded = [p for p in recorded if "Noise" not in p]
    assert recorded, "alsa-utils announcements missing: run tools/test, which installs them"
    return {
        "alsa-utils recordings": np.concatenate([read_wav(p) for p in recorded]),
        "espeak-ng en-us": espeak("Thank you for calling. Please key your customer number, "
                                  "then hash. If you do not have it, press star."),
        "espeak-ng de": espeak("Guten Tag, bitte geben Sie Ihre Kundennummer ein.", "de", 150),
    }


@pytest.mark.parametrize("level", [-10.0, -19.0, -30.0, -45.0])
@pytest.mark.parametrize("freq", [400, 1004, 2800])
def test_a_sox_sine_measures_at_its_level(level, freq):
    # sox normalises the sine's peak; a full-scale sine is +3.14 dBm0 (dsp/level.py)
    x = sox_synth(["sine", str(freq), "gain", "-n", f"{level - 3.14:.2f}"], 2.0)
    assert abs(rms_dbm0(x) - level) < 0.05                     # the generator is what we think
    got, activity = active_speech_level_dbm0(x)
    assert abs(got - level) <= 0.3
    assert activity > 0.95                                     # a steady tone is all "active"


@pytest.mark.parametrize("gain", [-6, -20])
def test_sox_gain_moves_the_level_by_the_gain(speech_clips, gain):
    for name, x in speech_clips.items():
        quieter = sox_effect(x, ["gain", str(gain)])
        before, after = measure(x), measure(quieter)
        assert abs((before.level_dbm0 - after.level_dbm0) + gain) <= 0.1, name
        assert abs(before.activity - after.activity) < 0.02, name


def test_inserted_silence_lowers_activity_not_the_level(speech_clips):
    for name, x in speech_clips.items():
        m = measure(x)
        gap = np.zeros(2 * RATE, np.int16)
        half = x.size // 2
        padded = np.concatenate([gap, x[:half], gap, x[half:], gap])
        p = measure(padded)
        assert abs(p.level_dbm0 - m.level_dbm0) <= 0.5, name
        # the active time is (nearly) the same; the share of it falls with the length
        assert p.activity < m.activity * x.size / padded.size * 1.1, name
        assert abs(p.active_seconds - m.active_seconds) < 0.3, name
        # the long-term level spreads the same energy over the pauses too
        assert abs(rms_dbm0(padded) - (p.level_dbm0 + 10 * np.log10(p.activity))) < 0.2, name


def test_speech_level_differs_from_long_term_rms_by_its_pauses(speech_clips):
    x = speech_clips["alsa-utils recordings"]
    m = measure(x)
    assert 0.2 < m.activity < 0.95
    assert m.level_dbm0 > rms_dbm0(x)


def test_no_audio_and_silence_have_no_level():
    for x in (np.zeros(0, np.int16), np.zeros(8000, np.int16)):
        level, activity = active_speech_level_dbm0(x)
        assert level == float("-inf") and activity == 0.0


def test_clipping_is_found_in_sox_overdriven_speech_only(speech_clips):
    x = speech_clips["espeak-ng en-us"]
    assert clipped_runs(x) == 0
    loud = sox_effect(x, ["gain", "20"])                       # sox clips at full scale
    assert clipped_runs(loud) >= 10
    # a clean sine peaking just under full scale at 48 kHz (slow, smooth peaks) is not clipping
    out = subprocess.run([require("sox"), "-q", "-n", "-r", "48000", "-b", "16", "-e", "signed",
                          "-c", "1", "-t", "raw", "-", "synth", "1", "sine", "200", "gain", "-n",
                          "-0.05"], check=True, capture_output=True).stdout
    clean = np.frombuffer(out, "<i2")
    assert np.abs(clean.astype(int)).max() > 32000 and clipped_runs(clean) == 0
    # and the same sine pushed 3 dB over the top is
    over = np.clip(clean.astype(float) * 1.41, -32768, 32767).astype(np.int16)
    assert clipped_runs(over) >= 300
