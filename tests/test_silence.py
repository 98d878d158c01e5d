"""The streaming silence/level detector: timing, thresholds, clicks, levels."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest

from callgate.dsp import RATE
from callgate.dsp.level import dbm0_to_amplitude, rms_dbm0
from callgate.dsp.silence import LevelDetector, SilenceDetector, SilenceEvent, SoundEvent
from callgate.dsp.tones import tone_tx
from callgate.wav import read_wav

import external

BLOCK = 160


def run(samples: np.ndarray, frame: int = 1000, **options) -> list:
    det = SilenceDetector(**options)
    events = []
    for start in range(0, len(samples), frame):
        events.extend(det.feed(samples[start:start + frame]))
    events.extend(det.flush())
    return events


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)), dtype=np.int16)


def sox_noise(level_dbm0: float, seconds: float, seed: int = 1) -> np.ndarray:
    """White noise from sox, scaled to the wanted level as measured by rms_dbm0."""
    raw = external.sox_synth(["whitenoise"], seconds).astype(float)
    raw *= 10 ** ((level_dbm0 - rms_dbm0(raw)) / 20)
    return np.clip(np.rint(raw), -32768, 32767).astype(np.int16)


def sox_sine(freq: float, level_dbm0: float, seconds: float) -> np.ndarray:
    peak_dbfs = 20 * math.log10(dbm0_to_amplitude(level_dbm0) / 32767)
    return external.sox_synth(["sine", f"{freq:g}", "gain", "-n", f"{peak_dbfs:.3f}"], seconds)


def kinds(events) -> list[tuple[str, int]]:
    return [(e.kind, e.sample) for e in events]


def test_silence_and_sound_are_timed_from_their_onsets():
    talk = sox_sine(700, -20, 1.0)
    audio = np.concatenate([talk, quiet(1.5), talk])
    events = run(audio, min_silence_ms=1000)
    assert [e.kind for e in events] == ["sound", "silence", "sound"]
    assert events[0].sample == 0
    assert abs(events[1].sample - len(talk)) <= BLOCK
    assert abs(events[2].sample - (len(talk) + 12000)) <= BLOCK
    assert abs(events[2].silence_ms - 1500) <= 20
    assert abs(events[2].level_dbm0 - (-20)) < 1.0


def test_a_gap_shorter_than_min_silence_is_not_silence():
    talk = sox_sine(700, -20, 0.5)
    audio = np.concatenate([talk, quiet(0.9), talk, quiet(0.5)])
    assert [e.kind for e in run(audio, min_silence_ms=1000)] == ["sound"]
    assert [e.kind for e in run(audio, min_silence_ms=800)] == ["sound", "silence", "sound"]


def test_a_quiet_start_is_a_silence_at_sample_zero():
    events = run(np.concatenate([quiet(2.0), sox_sine(500, -30, 0.5)]), min_silence_ms=1500)
    assert kinds(events)[0] == ("silence", 0)
    assert events[1].kind == "sound" and abs(events[1].sample - 16000) <= BLOCK


@pytest.mark.parametrize("threshold", [-50.0, -45.0, -35.0])
def test_noise_level_against_threshold(threshold):
    below = sox_noise(threshold - 3, 2.0)
    above = sox_noise(threshold + 2, 2.0)
    assert [e.kind for e in run(below, threshold_dbm0=threshold)] == ["silence"]
    assert [e.kind for e in run(above, threshold_dbm0=threshold)] == ["sound"]


def test_our_noise_too():
    rng = np.random.default_rng(4)
    line = rng.normal(0, dbm0_to_amplitude(-60) / math.sqrt(2), 3 * RATE).astype(np.int16)
    voice = rng.normal(0, dbm0_to_amplitude(-25) / math.sqrt(2), 3 * RATE).astype(np.int16)
    events = run(np.concatenate([voice, line, voice]))
    assert [e.kind for e in events] == ["sound", "silence", "sound"]
    assert abs(events[1].level_dbm0 - (-60)) < 1.5


def test_short_clicks_neither_end_nor_break_a_silence():
    click = sox_sine(1000, -10, 0.005)                # 5 ms, well inside one block
    audio = np.concatenate([quiet(1.2), click, quiet(0.6), click, quiet(1.2)])
    assert kinds(run(audio, min_silence_ms=1000)) == [("silence", 0)]
    # While a silence is being timed, the clicks do not restart the clock.
    talk = sox_sine(700, -20, 0.5)
    timed = np.concatenate([talk, quiet(0.4), click, quiet(0.4), click, quiet(0.4)])
    events = run(timed, min_silence_ms=1000)
    assert kinds(events) == [("sound", 0), ("silence", len(talk))]


def test_hysteresis_keeps_a_silence_until_sound_is_clearly_back():
    threshold = -45.0
    audio = np.concatenate([quiet(1.5), sox_sine(600, threshold + 1, 1.0),
                            sox_sine(600, threshold + 5, 1.0)])
    events = run(audio, threshold_dbm0=threshold, min_silence_ms=1000)
    assert [e.kind for e in events] == ["silence", "sound"]
    assert abs(events[1].sample - int(2.5 * RATE)) <= BLOCK
    # Without hysteresis the slightly louder tone already counts.
    events = run(audio, threshold_dbm0=threshold, min_silence_ms=1000, hysteresis_db=0)
    assert abs(events[1].sample - int(1.5 * RATE)) <= BLOCK


def test_speech_pauses_are_not_silence_but_a_long_gap_is(tmp_path):
    path = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(path),
                    "Please hold the line. Your call is important to us."], check=True)
    speech = read_wav(path)
    audio = np.concatenate([speech, quiet(2.5), speech])
    events = run(audio, min_silence_ms=1500)
    assert [e.kind for e in events] == ["sound", "silence", "sound"]
    # The silence starts where espeak's trailing quiet does, before the gap.
    last_loud = np.flatnonzero(np.abs(speech) > 100)[-1]
    assert last_loud - BLOCK <= events[1].sample <= len(speech) + BLOCK


def test_level_reading():
    det = SilenceDetector()
    assert det.level_dbm0 == float("-inf")
    det.feed(tone_tx([1000], -20, [], 0.1))
    assert abs(det.level_dbm0 - (-20)) < 0.1
    det.feed(sox_sine(440, -33, 0.1))
    assert abs(det.level_dbm0 - (-33)) < 0.2
    assert not det.silent
    det.feed(quiet(1.5))
    assert det.silent
    assert LevelDetector is SilenceDetector


def test_frame_split_invariance():
    rng = np.random.default_rng(9)
    audio = np.concatenate([
        quiet(1.3), sox_sine(700, -20, 0.4), quiet(0.3), sox_noise(-40, 0.5),
        quiet(1.1), sox_sine(1000, -10, 0.005), quiet(1.2), sox_noise(-30, 0.7),
        sox_noise(-48, 1.4), sox_sine(300, -41, 1.2),
    ])
    reference = run(audio)
    assert len(reference) >= 5
    kinds_seen = [e.kind for e in reference]
    assert all(a != b for a, b in zip(kinds_seen, kinds_seen[1:]))   # they alternate
    for frame in (1, 80, 160, 999):
        assert run(audio, frame=frame) == reference, frame
    det, events, pos = SilenceDetector(), [], 0
    while pos < len(audio):
        size = int(rng.integers(0, 500))
        events.extend(det.feed(audio[pos:pos + size]))
        pos += size
    assert events + det.flush() == reference


def test_other_block_sizes_and_times():
    talk = sox_sine(700, -20, 0.5)
    audio = np.concatenate([talk, quiet(0.35), talk])
    events = run(audio, block_ms=10, min_silence_ms=300, min_sound_ms=20)
    assert [e.kind for e in events] == ["sound", "silence", "sound"]
    assert abs(events[1].sample - len(talk)) <= 80


def test_event_contract():
    events = run(np.concatenate([sox_sine(700, -20, 0.5), quiet(1.5)]))
    sound, silent = events
    assert isinstance(sound, SoundEvent) and isinstance(silent, SilenceEvent)
    assert sound.as_dict() == {"event": "sound"}
    assert silent.as_dict() == {"event": "silence"}


@pytest.mark.parametrize("options,match", [
    ({"threshold_dbm0": 10}, "threshold_dbm0"),
    ({"block_ms": 200}, "block_ms"),
    ({"block_ms": 2.5}, "block_ms"),
    ({"block_ms": 0}, "block_ms"),
    ({"min_silence_ms": 5}, "min_silence_ms"),
    ({"min_sound_ms": -1}, "min_sound_ms"),
    ({"hysteresis_db": -3}, "hysteresis_db"),
])
def test_bad_settings(options, match):
    with pytest.raises(ValueError, match=match):
        SilenceDetector(**options)


def test_feed_rejects_a_two_dimensional_frame():
    with pytest.raises(ValueError, match="1-D"):
        SilenceDetector().feed(np.zeros((2, 80), dtype=np.int16))
