"""DTMF receiver and generator against ITU-T Q.24 / Bellcore receiver figures.

Every figure is checked with tones from sox (and libspandsp's dtmf_tx where
it has the knob) as well as from our own generator. SNR here is the power of
both tones over the power of the noise inside 300-3400 Hz; the noise itself
is white over the whole 0-4000 Hz band, so its total power is 1.1 dB higher.
"""

from __future__ import annotations

import numpy as np
import pytest

from external import sox_synth, spandsp_dtmf_rx, spandsp_dtmf_tx
from callgate.dsp.dtmf import (DTMF_FREQS, HALF, DtmfEvent, DtmfGenerator, DtmfReceiver,
                               dtmf_tx)
from callgate.dsp.level import dbm0_to_amplitude, dbm0_to_rms, rms_dbm0

RATE = 8000
ALL = "123A456B789C*0#D"
PAD = np.zeros(400, dtype=np.int16)


def hear(audio: np.ndarray, frame: int = 1000, **settings) -> list[DtmfEvent]:
    rx = DtmfReceiver(**settings)
    events = []
    for i in range(0, len(audio), frame):
        events += rx.feed(audio[i:i + frame])
    return events + rx.flush()


def digits(audio: np.ndarray, **settings) -> str:
    return "".join(e.digit for e in hear(audio, **settings))


def join(*parts: np.ndarray) -> np.ndarray:
    total = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    return np.clip(np.round(total), -32768, 32767).astype(np.int16)


def silence(ms: float) -> np.ndarray:
    return np.zeros(int(round(ms * RATE / 1000)), dtype=np.int16)


_SOX_UNIT_DBM0 = None


def sox_tone(digit: str, ms: float, low_dbm0: float = -10.0, high_dbm0: float | None = None,
             deviation: float = 0.0) -> np.ndarray:
    """One digit from sox synth: two sines remixed to one channel at given levels."""
    global _SOX_UNIT_DBM0
    if _SOX_UNIT_DBM0 is None:   # the level of sox's own full-volume sine
        _SOX_UNIT_DBM0 = rms_dbm0(sox_synth(["sine", "1000"], 1.0))
    high_dbm0 = low_dbm0 if high_dbm0 is None else high_dbm0
    low, high = (f * (1.0 + deviation) for f in DTMF_FREQS[digit])
    g_low = 10 ** ((low_dbm0 - _SOX_UNIT_DBM0) / 20)
    g_high = 10 ** ((high_dbm0 - _SOX_UNIT_DBM0) / 20)
    return sox_synth(["sine", f"{low:.3f}", "sine", f"{high:.3f}",
                      "remix", f"1v{g_low:.6f},2v{g_high:.6f}"], ms / 1000.0)


def sox_digits(text: str, on_ms: float = 50, off_ms: float = 50, **kw) -> np.ndarray:
    parts = [PAD]
    for d in text:
        parts += [sox_tone(d, on_ms, **kw), silence(off_ms)]
    return join(*parts, PAD)


def numpy_tone(digit: str, ms: float, level: float, deviation: float) -> np.ndarray:
    """Our own two sines, for figures dtmf_tx has no knob for (frequency error)."""
    t = np.arange(int(ms * RATE / 1000)) / RATE
    a = dbm0_to_amplitude(level)
    return sum(a * np.sin(2 * np.pi * f * (1 + deviation) * t) for f in DTMF_FREQS[digit])


def with_noise(audio: np.ndarray, tone_dbm0_each: float, snr_db: float, seed: int) -> np.ndarray:
    tone_power = 2 * dbm0_to_rms(tone_dbm0_each) ** 2
    in_band = tone_power / 10 ** (snr_db / 10)
    total = in_band * 4000 / 3100
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(total), audio.size)
    return join(audio.astype(np.float64) + noise)


# --- the generator ---------------------------------------------------------

def test_generator_levels_and_timing():
    x = dtmf_tx("5", level_dbm0=-10.0, twist_db=2.0, on_ms=80, off_ms=20)
    assert x.dtype == np.int16 and x.size == 800
    assert np.all(x[640:] == 0) and np.any(x[:640] != 0)
    low, high = DTMF_FREQS["5"]
    t = np.arange(640) / RATE
    basis = np.stack([f(2 * np.pi * hz * t) for hz in (low, high) for f in (np.sin, np.cos)], 1)
    coef = np.linalg.lstsq(basis, x[:640].astype(float), rcond=None)[0]
    amp = np.hypot(coef[0::2], coef[1::2])
    lvl = dict(zip((low, high), 20 * np.log10(amp / dbm0_to_amplitude(0.0))))
    assert lvl[low] == pytest.approx(-10.0, abs=0.5)
    assert lvl[high] == pytest.approx(-8.0, abs=0.5)


def test_generator_is_heard_by_libspandsp():
    assert spandsp_dtmf_rx(dtmf_tx(ALL, level_dbm0=-10.0, on_ms=50, off_ms=50)) == ALL


@pytest.mark.parametrize("bad", ["12x", "E", "1 2", "+"])
def test_generator_rejects_unknown_digits(bad):
    with pytest.raises(ValueError, match="not DTMF digits"):
        dtmf_tx(bad)


@pytest.mark.parametrize("kw", [{"on_ms": 0}, {"off_ms": -1}, {"level_dbm0": float("nan")},
                                {"twist_db": 40}, {"rate": 0}])
def test_generator_rejects_bad_settings(kw):
    with pytest.raises(ValueError):
        dtmf_tx("1", **kw)


def test_streaming_generator_matches_dtmf_tx():
    gen = DtmfGenerator(level_dbm0=-9.0, on_ms=60, off_ms=40)
    gen.send("12")
    gen.send("#")
    out = np.concatenate([gen.read(n) for n in (1, 79, 160, 1000, 3000)])
    want = dtmf_tx("12#", level_dbm0=-9.0, on_ms=60, off_ms=40)
    assert np.array_equal(out[:want.size], want) and not out[want.size:].any()
    assert not gen.busy


def test_freqs_table_is_the_keypad():
    assert DTMF_FREQS["1"] == (697, 1209) and DTMF_FREQS["D"] == (941, 1633)
    assert len(DTMF_FREQS) == 16


# --- all digits, three generators -------------------------------------------

def test_all_digits_ours():
    assert digits(join(PAD, dtmf_tx(ALL, -10.0, on_ms=50, off_ms=50), PAD)) == ALL


def test_all_digits_sox():
    assert digits(sox_digits(ALL)) == ALL


def test_all_digits_libspandsp():
    assert digits(join(PAD, spandsp_dtmf_tx(ALL, -10.0, 50, 50), PAD)) == ALL


def test_event_contract():
    (event,) = hear(join(PAD, dtmf_tx("#"), PAD))
    assert event.kind == "dtmf"
    assert event.as_dict() == {"event": "dtmf", "digit": "#"}
    assert event.low_dbm0 == pytest.approx(-7.0, abs=1.0)


# --- timing ------------------------------------------------------------------

@pytest.mark.parametrize("source", ["ours", "sox"])
def test_onset_sample_is_the_tone_onset(source):
    if source == "ours":
        tone = dtmf_tx("7", on_ms=60, off_ms=65)
    else:
        tone = join(sox_tone("7", 60), silence(65))
    audio = join(PAD, tone, tone, tone, tone)
    step = tone.size
    events = hear(audio)
    assert [e.digit for e in events] == ["7"] * 4
    for i, e in enumerate(events):
        assert abs(e.sample - (400 + i * step)) <= HALF


@pytest.mark.parametrize("source", ["ours", "sox", "spandsp"])
def test_40ms_tone_with_40ms_pause_accepted(source):
    if source == "ours":
        tones = dtmf_tx("5590*#", -12.0, on_ms=40, off_ms=40)
    elif source == "sox":
        tones = sox_digits("5590*#", on_ms=40, off_ms=40, low_dbm0=-12.0)
    else:
        tones = spandsp_dtmf_tx("5590*#", -12.0, 40, 40)
    assert digits(join(PAD, tones, PAD)) == "5590*#"


@pytest.mark.parametrize("ms", [20, 15, 10])
def test_20ms_tone_rejected(ms):
    ours = join(PAD, dtmf_tx("1234567890", -10.0, on_ms=ms, off_ms=80), PAD)
    sox = sox_digits("1234567890", on_ms=ms, off_ms=80)
    assert digits(ours) == "" and digits(sox) == ""


def test_held_digit_reported_once():
    ours = join(PAD, dtmf_tx("8", -15.0, on_ms=2000, off_ms=0), PAD)
    sox = sox_digits("8", on_ms=2000, low_dbm0=-15.0)
    assert digits(ours) == "8" and digits(sox) == "8"


def test_held_digit_in_noise_reported_once():
    held = join(PAD, dtmf_tx("3", -20.0, on_ms=3000, off_ms=0), PAD)
    for seed in range(3):
        assert digits(with_noise(held, -20.0, 12.0, seed)) == "3"


def test_10ms_dropout_does_not_split_a_digit():
    ours = join(PAD, dtmf_tx("6", on_ms=100, off_ms=10), dtmf_tx("6", on_ms=100), PAD)
    sox = join(PAD, sox_tone("6", 100), silence(10), sox_tone("6", 100), PAD)
    assert digits(ours) == "6" and digits(sox) == "6"


# --- frequency, twist, level, noise ----------------------------------------

@pytest.mark.parametrize("deviation", [-0.015, 0.015])
def test_deviation_within_1_5_percent_accepted(deviation):
    sox = join(*[join(PAD, sox_tone(d, 50, deviation=deviation)) for d in ALL], PAD)
    ours = join(*[join(PAD, numpy_tone(d, 50, -10.0, deviation)) for d in ALL], PAD)
    assert digits(sox) == ALL and digits(ours) == ALL


@pytest.mark.parametrize("deviation", [-0.035, 0.035, -0.05, 0.05])
def test_deviation_of_3_5_percent_rejected(deviation):
    sox = join(*[join(PAD, sox_tone(d, 80, deviation=deviation)) for d in ALL], PAD)
    ours = join(*[join(PAD, numpy_tone(d, 80, -10.0, deviation)) for d in ALL], PAD)
    assert digits(sox) == "" and digits(ours) == ""


@pytest.mark.parametrize("twist", [-8.0, 4.0])   # high-group level minus low-group level
def test_twist_within_limits_accepted(twist):
    ours = join(PAD, dtmf_tx(ALL, -10.0, twist_db=twist, on_ms=50, off_ms=50), PAD)
    spandsp = join(PAD, spandsp_dtmf_tx(ALL, -10.0, 50, 50, twist_db=twist), PAD)
    sox = sox_digits(ALL, low_dbm0=-10.0, high_dbm0=-10.0 + twist)
    assert digits(ours) == ALL and digits(spandsp) == ALL and digits(sox) == ALL


@pytest.mark.parametrize("twist", [-12.0, 12.0, -15.0, 6.0])
def test_twist_beyond_limits_rejected(twist):
    ours = join(PAD, dtmf_tx(ALL, -10.0, twist_db=twist, on_ms=80, off_ms=50), PAD)
    spandsp = join(PAD, spandsp_dtmf_tx(ALL, -10.0, 80, 50, twist_db=twist), PAD)
    sox = sox_digits(ALL, on_ms=80, low_dbm0=-10.0, high_dbm0=-10.0 + twist)
    assert digits(ours) == "" and digits(spandsp) == "" and digits(sox) == ""


def test_etsi_twist_limits_are_configurable():
    etsi = {"normal_twist_db": 6.0, "reverse_twist_db": 6.0}
    reverse6 = join(PAD, dtmf_tx(ALL, -12.0, twist_db=6.0, on_ms=50, off_ms=50), PAD)
    normal10 = join(PAD, dtmf_tx(ALL, -8.0, twist_db=-10.0, on_ms=80, off_ms=50), PAD)
    assert digits(reverse6, **etsi) == ALL and digits(reverse6) == ""
    assert digits(normal10, **etsi) == ""
    sox6 = sox_digits(ALL, low_dbm0=-12.0, high_dbm0=-6.0)
    assert digits(sox6, **etsi) == ALL


@pytest.mark.parametrize("level", [0.0, -10.0, -20.0, -30.0])
def test_level_range_accepted(level):
    """0 dBm0 per tone overloads int16 and is clipped, as a codec would."""
    ours = join(PAD, dtmf_tx(ALL, level, on_ms=50, off_ms=50), PAD)
    sox = sox_digits(ALL, low_dbm0=level)
    assert digits(ours) == ALL and digits(sox) == ALL


def test_too_quiet_rejected_and_threshold_configurable():
    quiet = join(PAD, dtmf_tx(ALL, -45.0, on_ms=50, off_ms=50), PAD)
    assert digits(quiet) == ""
    assert digits(quiet, min_level_dbm0=-50.0) == ALL
    assert digits(sox_digits(ALL, low_dbm0=-45.0)) == ""
    assert digits(join(PAD, spandsp_dtmf_tx(ALL, -36.0, 50, 50), PAD), min_level_dbm0=-33.0) == ""


@pytest.mark.parametrize("source", ["ours", "sox", "spandsp"])
def test_weak_line_digits_at_minus_36_dbm0_are_heard(source):
    """Signal-core figure 3: a long rural loop delivers -36 dBm0 per tone; libspandsp hears it."""
    audio = {"ours": lambda: join(PAD, dtmf_tx(ALL, -36.0, on_ms=50, off_ms=50), PAD),
             "sox": lambda: sox_digits(ALL, low_dbm0=-36.0),
             "spandsp": lambda: join(PAD, spandsp_dtmf_tx(ALL, -36.0, 50, 50), PAD)}[source]()
    assert digits(audio) == ALL
    assert spandsp_dtmf_rx(audio) == ALL


@pytest.mark.parametrize("seed", range(4))
def test_white_noise_at_12db_snr(seed):
    ours = join(PAD, dtmf_tx(ALL, -20.0, on_ms=50, off_ms=50), PAD)
    sox = sox_digits(ALL, low_dbm0=-20.0)
    assert digits(with_noise(ours, -20.0, 12.0, seed)) == ALL
    assert digits(with_noise(sox, -20.0, 12.0, 100 + seed)) == ALL


def test_noise_alone_gives_nothing():
    for seed in range(3):
        noise = with_noise(np.zeros(8000 * 5, dtype=np.int16), -20.0, 0.0, seed)
        assert digits(noise) == ""


# --- streaming contract ----------------------------------------------------

def test_frame_split_invariance():
    rng = np.random.default_rng(7)
    parts = [PAD, dtmf_tx("159#", -12.0, on_ms=45, off_ms=45), sox_digits("D0", on_ms=2000),
             spandsp_dtmf_tx("*2", -25.0, 40, 40),
             dtmf_tx("4", -20.0, on_ms=33, off_ms=30), dtmf_tx("4", on_ms=100, off_ms=10)]
    audio = with_noise(join(*parts), -20.0, 18.0, 3)
    audio = join(audio, rng.normal(0, 300, 777))
    reference = hear(audio, frame=1000)
    assert [e.digit for e in reference][:8] == list("159#D0*2")
    for frame in (1, 80, 160, 333):
        assert hear(audio, frame=frame) == reference


def test_empty_frames_and_reuse_after_flush():
    rx = DtmfReceiver()
    assert rx.feed(np.zeros(0, dtype=np.int16)) == []
    tone = join(PAD, dtmf_tx("9"), PAD)
    first = rx.feed(tone) + rx.feed(np.zeros(0, dtype=np.int16)) + rx.flush()
    second = rx.feed(tone) + rx.flush()
    assert [e.digit for e in first] == ["9"] and first == second


def test_digit_at_end_of_stream_is_found_by_flush():
    rx = DtmfReceiver()
    events = rx.feed(join(PAD, dtmf_tx("C", on_ms=45, off_ms=0)))
    assert events == [] or [e.digit for e in events] == ["C"]
    assert [e.digit for e in events + rx.flush()] == ["C"]


@pytest.mark.parametrize("kw", [{"normal_twist_db": -1}, {"min_level_dbm0": 10},
                                {"onset_windows": 0}, {"max_deviation": 0.2},
                                {"min_tone_ratio": 1.5}])
def test_receiver_rejects_bad_settings(kw):
    with pytest.raises(ValueError):
        DtmfReceiver(**kw)


def test_receiver_rejects_two_dimensional_frames():
    with pytest.raises(ValueError, match="one-dimensional"):
        DtmfReceiver().feed(np.zeros((2, 80), dtype=np.int16))


def test_40ms_pauses_between_one_repeated_digit_in_noise():
    ours = join(PAD, dtmf_tx("5" * 8, -20.0, on_ms=50, off_ms=40), PAD)
    sox = sox_digits("5" * 8, on_ms=50, off_ms=40, low_dbm0=-20.0)
    for seed in range(3):
        assert digits(with_noise(ours, -20.0, 12.0, seed)) == "5" * 8
        assert digits(with_noise(sox, -20.0, 12.0, 10 + seed)) == "5" * 8
