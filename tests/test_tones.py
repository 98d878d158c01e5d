"""Call-progress and fax tone detection, tone plans and the tone generator.

Every tone of every plan is checked from three generators: ours (tone_tx),
sox and libspandsp's tone_gen, so a mistake shared by our generator and our
detector cannot hide.
"""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest

from callgate.dsp import RATE
from callgate.dsp.level import dbm0_to_amplitude, rms_dbm0
from callgate.dsp.tones import FAX_TONES, CallProgressDetector, Tone, ToneEvent, TonePlan, tone_tx
from callgate.dsp.tones import plan_tone_tx as _plan_tone_tx
from callgate.toneplans import available_toneplans, decode_toneplan, load_toneplan
from callgate.wav import read_wav

import external

PLANS = {name: load_toneplan(name) for name in available_toneplans()}


def plan_tone_tx(plan, name, seconds, **kw):
    """The plan's tone; `plan` may be a name (read through callgate.toneplans)."""
    return _plan_tone_tx(load_toneplan(plan), name, seconds, **kw)
LEAD = 2437            # silence before each test tone, deliberately not block aligned
ONSET_SLACK = 160      # onsets are found to within one 20 ms block


def detect(samples: np.ndarray, plan="us", frame: int = 1000, **options) -> list:
    """Tones heard under `plan`: a shipped plan's name, "auto" or a path."""
    det = CallProgressDetector(decode_toneplan(plan), **options)
    events = []
    for start in range(0, len(samples), frame):
        events.extend(det.feed(samples[start:start + frame]))
    events.extend(det.flush())
    return events


def detect_in_uneven_frames(samples: np.ndarray, plan, rng: np.random.Generator) -> list:
    """Tones heard under `plan` (a TonePlan) when the audio comes in frames of 0-699 samples."""
    det, events, pos = CallProgressDetector(plan), [], 0
    while pos < len(samples):
        size = int(rng.integers(0, 700))
        events.extend(det.feed(samples[pos:pos + size]))
        pos += size
    events.extend(det.flush())
    return events


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)), dtype=np.int16)


def seconds_needed(tone: Tone) -> float:
    """Enough audio to recognise the tone: its confirm segments plus margin."""
    if tone.continuous:
        return tone.min_ms / 1000 + 1.0
    cadence = tone.cadence_ms * 3
    return sum(cadence[: tone.segments_to_confirm]) / 1000 + 1.0


def sox_tone(freqs, level_dbm0: float, cadence_ms, seconds: float) -> np.ndarray:
    """The tone made by sox: each on/off pair is one sox run, pairs joined.

    `gain -n` sets the peak, so each component of an equal-level sum sits at
    level_dbm0.
    """
    peak = len(freqs) * dbm0_to_amplitude(level_dbm0)
    args = []
    for f in freqs:
        args += ["sine", f"{f:g}"]
    if len(freqs) > 1:
        args += ["remix", "-"]
    args += ["gain", "-n", f"{20 * math.log10(peak / 32767):.3f}"]
    if not cadence_ms:
        return external.sox_synth(args, seconds)
    pieces, total = [], 0
    while total < seconds * RATE:
        for on, off in zip(cadence_ms[0::2], cadence_ms[1::2]):
            piece = external.sox_synth(args + ["pad", "0", f"{off / 1000:g}"], on / 1000)
            pieces.append(piece)
            total += len(piece)
    return np.concatenate(pieces)[: int(seconds * RATE)]


def spandsp_tone(freqs, level_dbm0: float, cadence_ms, seconds: float) -> np.ndarray:
    """libspandsp's tone_gen; it holds two on/off pairs, so longer cadences
    (Spain's congestion) are made one pair at a time and joined."""
    f1, f2 = (list(freqs) + [0])[:2]
    args = (int(f1), level_dbm0, int(f2), level_dbm0 if f2 else 0)
    if len(cadence_ms) <= 4:
        return external.spandsp_tone_tx(*args, list(cadence_ms), seconds)
    pairs = list(zip(cadence_ms[0::2], cadence_ms[1::2]))
    pieces, total, k = [], 0, 0
    while total < seconds * RATE:
        on, off = pairs[k % len(pairs)]
        pieces.append(external.spandsp_tone_tx(*args, [on, off], (on + off) / 1000))
        total += pieces[-1].size
        k += 1
    return np.concatenate(pieces)[: int(seconds * RATE)]


def ours(freqs, level_dbm0: float, cadence_ms, seconds: float) -> np.ndarray:
    return tone_tx(freqs, level_dbm0, cadence_ms, seconds)


SOURCES = {"ours": ours, "sox": sox_tone, "spandsp": spandsp_tone}
CASES = [(plan, tone.name) for plan in PLANS for tone in PLANS[plan].tones + FAX_TONES]


# --------------------------------------------------------------------------
# Every tone of every plan, from three generators


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("plan,name", CASES)
def test_each_tone_is_recognised_once_with_its_onset(plan, name, source):
    tone = PLANS[plan].tone(name)
    make = SOURCES[source]
    audio = np.concatenate([silence(LEAD / RATE),
                            make(tone.frequencies, -20.0, tone.cadence_ms,
                                 seconds_needed(tone))])
    events = detect(audio, plan)
    assert [e.tone for e in events] == [name]
    assert abs(events[0].sample - LEAD) <= ONSET_SLACK
    assert events[0].frequencies == tone.frequencies


@pytest.mark.parametrize("plan", [p for p in PLANS if "reorder" in PLANS[p].names])
def test_busy_then_reorder_are_told_apart_by_cadence(plan):
    busy, reorder = PLANS[plan].tone("busy"), PLANS[plan].tone("reorder")
    assert sorted(busy.frequencies) == sorted(reorder.frequencies)
    first = sox_tone(busy.frequencies, -24, busy.cadence_ms, 4.0)
    second = spandsp_tone(reorder.frequencies, -24, reorder.cadence_ms, 4.0)
    audio = np.concatenate([silence(0.5), first, silence(1.0), second])
    events = detect(audio, plan)
    assert [e.tone for e in events] == ["busy", "reorder"]
    assert abs(events[0].sample - 4000) <= ONSET_SLACK
    assert abs(events[1].sample - (4000 + len(first) + 8000)) <= ONSET_SLACK


def test_uk_busy_and_congestion_share_400_hz_and_first_burst_length():
    # Busy 375/375 and congestion 400/350/225/525 differ only from the second burst.
    audio = np.concatenate([plan_tone_tx("uk", "reorder", 4.0), silence(1.0),
                            plan_tone_tx("uk", "busy", 4.0), silence(1.0),
                            plan_tone_tx("uk", "unobtainable", 2.0)])
    assert [e.tone for e in detect(audio, "uk")] == ["reorder", "busy", "unobtainable"]


def test_etsi_dial_is_not_a_ringing_burst():
    ringing = plan_tone_tx("etsi", "ringback", 12.0)
    assert [e.tone for e in detect(ringing, "etsi")] == ["ringback"]
    dial = plan_tone_tx("etsi", "dial", 1.3)     # longer than a ringing burst, short of 1.5 s
    assert detect(dial, "etsi") == []
    assert [e.tone for e in detect(plan_tone_tx("etsi", "dial", 2.0), "etsi")] == ["dial"]


def test_old_bt_dial_tone_350_450_is_still_dial():
    audio = sox_tone([350, 450], -15, [], 2.0)
    assert [e.tone for e in detect(audio, "uk")] == ["dial"]


# --------------------------------------------------------------------------
# Reported once while it lasts, again when it comes back


def test_a_continuing_tone_is_reported_once():
    assert [e.tone for e in detect(plan_tone_tx("us", "busy", 20.0))] == ["busy"]
    assert [e.tone for e in detect(plan_tone_tx("us", "dial", 10.0))] == ["dial"]
    assert [e.tone for e in detect(plan_tone_tx("uk", "ringback", 20.0), "uk")] == ["ringback"]


def test_a_tone_that_stops_and_comes_back_is_reported_again():
    busy = sox_tone([480, 620], -20, [500, 500], 3.0)
    dial = sox_tone([350, 440], -20, [], 2.0)
    audio = np.concatenate([busy, silence(3.0), busy, silence(0.5), dial, silence(0.5), dial])
    events = detect(audio)
    assert [e.tone for e in events] == ["busy", "busy", "dial", "dial"]
    second_busy = len(busy) + 3 * RATE
    assert abs(events[1].sample - second_busy) <= ONSET_SLACK


def test_cadence_off_by_ten_percent_is_accepted_thirty_is_not():
    for plan, name in [("us", "busy"), ("us", "reorder"), ("uk", "reorder"), ("etsi", "busy")]:
        tone = PLANS[plan].tone(name)
        for scale in (0.9, 1.1):
            audio = tone_tx(tone.frequencies, -20, [d * scale for d in tone.cadence_ms], 6.0)
            assert [e.tone for e in detect(audio, plan)] == [name], (plan, name, scale)
        for scale in (0.7, 1.3):
            audio = tone_tx(tone.frequencies, -20, [d * scale for d in tone.cadence_ms], 6.0)
            assert name not in [e.tone for e in detect(audio, plan)], (plan, name, scale)


def test_tone_in_line_noise_is_still_recognised():
    rng = np.random.default_rng(7)
    noise = rng.normal(0, dbm0_to_amplitude(-50) / math.sqrt(2), 5 * RATE)
    busy = spandsp_tone([480, 620], -30, [500, 500], 5.0).astype(float)
    audio = np.clip(busy + noise, -32768, 32767).astype(np.int16)
    assert [e.tone for e in detect(audio)] == ["busy"]


# --------------------------------------------------------------------------
# Frequency, level and twist limits


@pytest.mark.parametrize("plan,name", [c for c in CASES if c[1] in ("dial", "busy", "ced")])
def test_frequency_within_one_and_a_half_percent_is_accepted(plan, name):
    tone = PLANS[plan].tone(name)
    for offset in (-0.015, 0.015):
        freqs = [round(f * (1 + offset)) for f in tone.frequencies]
        audio = sox_tone(freqs, -20, tone.cadence_ms, seconds_needed(tone))
        assert [e.tone for e in detect(audio, plan)] == [name], offset


@pytest.mark.parametrize("plan,name", CASES)
def test_frequency_far_off_is_rejected(plan, name):
    tone = PLANS[plan].tone(name)
    for offset in (-0.08, 0.08):
        freqs = [f * (1 + offset) for f in tone.frequencies]
        audio = tone_tx(freqs, -20, tone.cadence_ms, seconds_needed(tone))
        assert detect(audio, plan) == [], offset


@pytest.mark.parametrize("level", [-5, -20, -40])
def test_levels_from_minus_5_to_minus_40_dbm0_are_accepted(level):
    for plan, name in [("us", "busy"), ("uk", "ringback"), ("etsi", "reorder")]:
        tone = PLANS[plan].tone(name)
        for make in (ours, spandsp_tone):
            audio = make(tone.frequencies, level, tone.cadence_ms, seconds_needed(tone))
            events = detect(audio, plan)
            assert [e.tone for e in events] == [name], (plan, name, make)
            whole = level + 10 * math.log10(len(tone.frequencies))
            assert abs(events[0].level_dbm0 - whole) < 1.0


def test_level_below_the_threshold_is_not_a_tone():
    for level in (-46, -50):
        for plan, name in [("us", "busy"), ("us", "dial"), ("uk", "busy")]:
            tone = PLANS[plan].tone(name)
            audio = sox_tone(tone.frequencies, level, tone.cadence_ms, seconds_needed(tone))
            assert detect(audio, plan) == [], (level, plan, name)
    # ...and the threshold is a setting.
    quiet = plan_tone_tx("us", "busy", 3.0, level_dbm0=-46)
    assert [e.tone for e in detect(quiet, min_level_dbm0=-50)] == ["busy"]


def test_twist_within_limits_is_accepted_beyond_is_not():
    for twist in (-6, 6):
        audio = tone_tx([480, 620], [-22, -22 + twist], [500, 500], 3.0)
        assert [e.tone for e in detect(audio)] == ["busy"], twist
    for twist in (-14, 14):
        audio = tone_tx([480, 620], [-22, -22 + twist], [500, 500], 3.0)
        assert detect(audio) == [], twist


def test_one_component_alone_is_not_the_dual_tone():
    assert detect(sox_tone([480], -15, [500, 500], 4.0)) == []
    assert detect(sox_tone([440], -15, [], 3.0)) == []
    # In the UK plan 400 Hz alone is busy, not ringing (400 + 450).
    ring_cadence_400 = sox_tone([400], -15, [400, 200, 400, 2000], 5.0)
    assert "ringback" not in [e.tone for e in detect(ring_cadence_400, "uk")]


# --------------------------------------------------------------------------
# No false tones


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[np.ndarray]:
    text = ("Thank you for calling. Please enter your account number followed by the "
            "hash key. Oooh, aaah, mmmm. Your call is important to us; please hold the "
            "line while we connect you. Nine eight seven six five four three two one.")
    voices = []
    for voice in ("en", "en-us+f3", "de"):
        out = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text],
                             check=True, capture_output=True).stdout
        path = tmp_path_factory.mktemp("speech") / f"{voice}.wav"
        with open(path, "wb") as fh:
            fh.write(out)
        voices.append(read_wav(path))
    return voices


@pytest.mark.parametrize("plan", [*PLANS, "auto"])
def test_no_tone_in_speech(speech, plan):
    for voice in speech:
        for gain in (0.3, 1.0, 2.5):
            audio = np.clip(voice.astype(float) * gain, -32768, 32767).astype(np.int16)
            assert detect(audio, plan) == []


@pytest.mark.parametrize("plan", [*PLANS, "auto"])
def test_no_tone_in_dtmf(plan):
    digits = external.spandsp_dtmf_tx("0123456789*#ABCD" * 2, -10, 100, 100)
    assert detect(digits, plan) == []
    # Long held keys too (a caller leaning on a button), made by sox.
    for low, high in [(697, 1209), (941, 1336), (770, 1477)]:
        held = sox_tone([low, high], -10, [], 2.5)
        assert detect(held, plan) == []


@pytest.mark.parametrize("plan", [*PLANS, "auto"])
def test_no_tone_in_white_noise(plan):
    rng = np.random.default_rng(3)
    for level in (-40, -20, -5):
        noise = rng.normal(0, dbm0_to_amplitude(level) / math.sqrt(2), 10 * RATE)
        assert detect(np.clip(noise, -32768, 32767).astype(np.int16), plan) == []


@pytest.mark.parametrize("plan", [*PLANS, "auto"])
def test_no_tone_in_caller_id_fsk(plan):
    payload = bytes(range(256)) * 2
    for mode in ("bell202", "v23"):
        assert detect(external.minimodem_tx(payload, mode), plan) == []


# --------------------------------------------------------------------------
# Fax tones


def test_cng_is_reported_after_its_first_burst():
    audio = np.concatenate([silence(0.3), sox_tone([1100], -15, [500, 3000], 0.5),
                            silence(0.2)])
    events = detect(audio, "etsi")
    assert [e.tone for e in events] == ["cng"]
    assert abs(events[0].sample - 2400) <= ONSET_SLACK
    # Repeating bursts are one calling fax, not many.
    repeated = spandsp_tone([1100], -15, [500, 3000], 12.0)
    assert [e.tone for e in detect(repeated, "us")] == ["cng"]


def test_1100_hz_of_the_wrong_length_is_not_cng():
    assert detect(sox_tone([1100], -15, [], 0.3), "us") == []
    assert detect(sox_tone([1100], -15, [], 2.0), "us") == []


def test_ced_needs_half_a_second_and_survives_phase_reversals():
    assert detect(sox_tone([2100], -12, [], 0.3)) == []
    # ANS with phase reversals every 450 ms (V.25): segments of whole cycles,
    # each started by sox at phase 0 or 180 degrees.
    segments = [external.sox_synth(["sine", "2100", "0", "50" if k % 2 else "0",
                                    "gain", "-n", "-15"], 0.45) for k in range(7)]
    audio = np.concatenate([silence(0.25)] + segments)
    events = detect(audio)
    assert [e.tone for e in events] == ["ced"]
    assert abs(events[0].sample - 2000) <= ONSET_SLACK


def test_fax_tones_can_be_switched_off():
    audio = plan_tone_tx("us", "ced", 3.0)
    assert detect(audio, fax=False) == []


# --------------------------------------------------------------------------
# Streaming contract


def test_frame_split_invariance():
    rng = np.random.default_rng(11)
    audio = np.concatenate([
        silence(0.1234), plan_tone_tx("uk", "dial", 1.6), silence(0.4),
        sox_tone([400], -25, [375, 375], 2.4), silence(0.7),
        spandsp_tone([400], -18, [400, 350, 225, 525], 3.2), silence(0.3),
        sox_tone([1100], -15, [], 0.5), silence(0.4),
        (rng.normal(0, 500, 4000)).astype(np.int16),
        plan_tone_tx("uk", "ringback", 3.6),
    ])
    hiss = rng.normal(0, dbm0_to_amplitude(-45), len(audio))   # levels vary block to block
    audio = np.clip(audio + hiss, -32768, 32767).astype(np.int16)
    reference = detect(audio, "uk", frame=1000)
    assert [e.tone for e in reference] == ["dial", "busy", "reorder", "cng", "ringback"]
    for frame in (1, 80, 160, 999):
        assert detect(audio, "uk", frame=frame) == reference, frame
    # Uneven frames, including empty ones.
    assert detect_in_uneven_frames(audio, PLANS["uk"], rng) == reference


def test_flush_ends_a_burst_cut_by_the_end_of_the_stream_and_restarts():
    det = CallProgressDetector(PLANS["us"])
    audio = np.concatenate([silence(0.2), sox_tone([1100], -15, [], 0.5)])
    assert det.feed(audio) == []
    events = det.flush()
    assert [e.tone for e in events] == ["cng"]
    # After flush the detector counts from sample 0 again.
    again = det.feed(audio) + det.flush()
    assert [(e.tone, e.sample) for e in again] == [(e.tone, e.sample) for e in events]


def test_tone_event_contract():
    event = detect(plan_tone_tx("us", "busy", 3.0))[0]
    assert isinstance(event, ToneEvent)
    assert event.kind == "tone"
    assert event.as_dict() == {"event": "tone", "tone": "busy", "plan": "us", "plans": ("us",)}
    # Fax tones belong to no plan.
    cng = detect(np.concatenate([silence(0.2), sox_tone([1100], -15, [], 0.5)]))[0]
    assert cng.as_dict() == {"event": "tone", "tone": "cng", "plan": None, "plans": ()}


def test_feed_rejects_a_two_dimensional_frame():
    with pytest.raises(ValueError, match="1-D"):
        CallProgressDetector(PLANS["us"]).feed(np.zeros((2, 80), dtype=np.int16))


# --------------------------------------------------------------------------
# Tone plans as configuration


def test_shipped_plans_load_with_their_tones():
    assert {"us", "uk", "etsi", "ca", "de", "fr", "au", "nl", "it", "es", "nz"} <= set(PLANS)
    for name, plan in PLANS.items():
        assert isinstance(plan, TonePlan)
        assert plan.name == name and plan.description and plan.ring_cadence_ms
        assert all(tone.plans == (name,) for tone in plan.tones)
        # What the engine and the simulated exchange need; where congestion sounds
        # like busy (au, fr) the plan has no reorder tone.
        need = {"dial", "ringback", "busy"} | ({"reorder"} if name not in ("au", "fr") else set())
        assert need <= set(plan.names), name
    assert PLANS["us"].tone("reorder").cadence_ms == (250, 250)
    assert PLANS["uk"].tone("ringback").cadence_ms == (400, 200, 400, 2000)
    assert PLANS["etsi"].tone("dial").frequencies == (425.0,)
    with pytest.raises(ValueError, match="no tone 'howler'"):
        PLANS["us"].tone("howler")


def test_plan_by_path(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text('name = "lab"\n[tones.beep]\nfrequencies = [1000]\n'
                    'cadence_ms = [200, 800]\n')
    plan = load_toneplan(path)
    assert plan.name == "lab" and plan.names == ("beep",)
    audio = tone_tx([1000], -20, [200, 800], 3.0)
    assert [e.tone for e in detect(audio, plan)] == ["beep"]


BAD_PLANS = [
    ('name = "x"\n[tones.dial\n', "not valid TOML"),
    ('name = "x"\ncolour = 1\n[tones.dial]\nfrequencies = [425]\ncadence_ms = []\n',
     "colour: unknown key"),
    ('name = "x"\n', "tones: missing"),
    ('[tones.dial]\ncadence_ms = []\n', "tones.dial.frequencies: missing"),
    ('[tones.dial]\nfrequencies = [425, 450, 475]\ncadence_ms = []\n',
     "tones.dial.frequencies"),
    ('[tones.dial]\nfrequencies = [5000]\ncadence_ms = []\n', "tones.dial.frequencies"),
    ('[tones.dial]\nfrequencies = ["425"]\ncadence_ms = []\n', "tones.dial.frequencies"),
    ('[tones.busy]\nfrequencies = [425]\n', "tones.busy.cadence_ms: missing"),
    ('[tones.busy]\nfrequencies = [425]\ncadence_ms = [500]\n', "tones.busy.cadence_ms"),
    ('[tones.busy]\nfrequencies = [425]\ncadence_ms = [500, -5]\n', "tones.busy.cadence_ms"),
    ('[tones.busy]\nfrequencies = [425]\ncadence_ms = [500, 500]\ntolerance = 2\n',
     "tones.busy.tolerance"),
    ('[tones.busy]\nfrequencies = [425]\ncadence_ms = [500, 500]\nspeed = 2\n',
     "tones.busy.speed: unknown key"),
    ('frequency_tolerance = 0.5\n[tones.busy]\nfrequencies = [425]\ncadence_ms = [500, 500]\n',
     "frequency_tolerance"),
    ('[tones.Busy]\nfrequencies = [425]\ncadence_ms = [500, 500]\n', "tones.Busy"),
    ('[tones.cng]\nfrequencies = [1100]\ncadence_ms = [500, 3000]\n', "tones.cng"),
    ('[tones.dial]\nfrequencies = [425]\ncadence_ms = []\nmin_ms = 1000\n'
     '[tones.ringback]\nfrequencies = [425]\ncadence_ms = [1000, 4000]\n',
     "tones.dial.min_ms"),
]


@pytest.mark.parametrize("text,key", BAD_PLANS)
def test_malformed_plan_names_the_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_toneplan(path)
    message = str(err.value)
    assert key in message and "\n" not in message


def test_unknown_plan_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="built-in plans: .*us"):
        load_toneplan("atlantis")
    with pytest.raises(ValueError, match="cannot read"):
        load_toneplan(tmp_path / "nope.toml")


# --------------------------------------------------------------------------
# Generator


def test_tone_tx_level_and_cadence():
    audio = tone_tx([480, 620], -13, [500, 500], 2.0)
    assert audio.dtype == np.int16 and len(audio) == 2 * RATE
    assert abs(rms_dbm0(audio[:4000]) - (-13 + 3.01)) < 0.1
    assert not audio[4000:8000].any()
    assert audio[8000:12000].any()
    single = tone_tx([1000], [-20], [], 0.5)
    assert abs(rms_dbm0(single) - (-20)) < 0.05
    spectrum = np.abs(np.fft.rfft(single))
    assert abs(np.argmax(spectrum) * RATE / len(single) - 1000) < 3
    assert len(tone_tx([440], -10, [], 0)) == 0


@pytest.mark.parametrize("args,match", [
    (([5000], -10, [], 1.0), "frequency"),
    (([0], -10, [], 1.0), "frequency"),
    (([], -10, [], 1.0), "freqs"),
    (([440, 480], 3.0, [], 1.0), "too high"),
    (([440], [-10, -10], [], 1.0), "one per frequency"),
    (([440], -10, [500], 1.0), "cadence_ms"),
    (([440], -10, [500, -1], 1.0), "cadence_ms"),
    (([440], -10, [], -1.0), "seconds"),
    (([440], "loud", [], 1.0), "level_dbm0"),
])
def test_tone_tx_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        tone_tx(*args)


def test_plan_tone_tx_rejects_unknown_tone_and_plan():
    with pytest.raises(ValueError, match="no tone 'howler'"):
        plan_tone_tx("us", "howler", 1.0)
    with pytest.raises(ValueError, match="unknown"):
        load_toneplan("mars")


def test_detector_rejects_bad_settings():
    with pytest.raises(ValueError, match="min_level_dbm0"):
        CallProgressDetector(PLANS["us"], min_level_dbm0=10)
    with pytest.raises(ValueError, match="max_twist_db"):
        CallProgressDetector(PLANS["us"], max_twist_db=-1)
