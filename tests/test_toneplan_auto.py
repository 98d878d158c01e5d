"""Tones of any country: `callgate decode --toneplan auto`, every shipped plan at once.

Each tone of each shipped plan is made by libspandsp's tone_gen and by sox
(generators we did not write) and must come out of the combined plan named
after its own plan. The engine still uses one plan, its country's; "auto" is
refused there. No accept figure of the single-plan detector may get worse under
auto, the detector stays frame-split invariant, and speech and music give no tone.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

from callgate.cli import main
from callgate.dsp import RATE
from callgate.dsp.level import dbm0_to_amplitude
from callgate.dsp.tones import CallProgressDetector, Tone, ToneEvent, TonePlan, combined_plan
from callgate.toneplans import (auto_toneplan, available_toneplans, decode_toneplan,
                                load_toneplan)
from callgate.wav import write_wav

import external
from test_flow_config import GOOD
from test_talkoff import espeak, level_to, quick_corpus
from test_tones import (LEAD, ONSET_SLACK, PLANS, detect, detect_in_uneven_frames, seconds_needed,
                        silence, sox_tone, spandsp_tone)

NEW_PLANS = ("ca", "de", "fr", "au", "nl", "it", "es", "nz")

NETWORK_FREQUENCIES = {("au", "dial"): (413, 438), ("au", "ringback"): (413, 438)}
"""What the network sends where the plan lists what the detector listens for
(au.toml: 413 + 438 Hz is listened for through the bands of 400 + 450 Hz)."""

SAME_SOUND = {
    # 425 Hz 200/200 ms: busy in Spain, congestion in Italy.
    ("es", "busy"): {("reorder", "it")},
    ("it", "reorder"): {("busy", "es")},
    # Spain's congestion opens with Italy's 200/200 ms congestion.
    ("es", "reorder"): {("reorder", "it")},
    # Steady 400 Hz: dial tone in New Zealand, number unobtainable in the UK.
    ("nz", "dial"): {("unobtainable", "uk")},
    ("uk", "unobtainable"): {("dial", "nz")},
}
"""Sounds that mean different things in different plans: both are reported,
each naming its own plan (README, `callgate decode`)."""

CASES = [(plan, tone.name) for plan in PLANS for tone in PLANS[plan].tones]
SOURCES = {"sox": (sox_tone, -20.0), "spandsp": (spandsp_tone, -30.0)}


def network_tone(plan: str, name: str, make, level: float, extra: float = 0.0) -> np.ndarray:
    tone = PLANS[plan].tone(name)
    freqs = NETWORK_FREQUENCIES.get((plan, name), tone.frequencies)
    return make(freqs, level, tone.cadence_ms, seconds_needed(tone) + extra)


def same_tone(plan: str, name: str, other: str) -> bool:
    """Does plan `other` define tone `name` as `plan` does, as far as 20 ms blocks
    can tell (Germany's 240/240 ms congestion and the CEPT 250/250 ms one cannot
    be told apart by the bursts of one cycle)?"""
    mine, theirs = PLANS[plan], PLANS[other]
    if name not in theirs.names:
        return False
    a, b = mine.tone(name), theirs.tone(name)
    return (sorted(a.frequencies) == sorted(b.frequencies)
            and len(a.cadence_ms) == len(b.cadence_ms)
            and all(abs(x - y) <= 20 for x, y in zip(a.cadence_ms, b.cadence_ms)))


# --------------------------------------------------------------------------
# Every tone of every plan, named after its plan


def test_the_new_plans_are_shipped():
    assert set(NEW_PLANS) <= set(available_toneplans())


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("plan,name", CASES)
def test_every_plan_tone_is_named_with_its_plan_under_auto(plan, name, source):
    make, level = SOURCES[source]
    audio = np.concatenate([silence(LEAD / RATE), network_tone(plan, name, make, level, 1.0)])
    events = detect(audio, "auto")
    mine = [e for e in events if e.tone == name and plan in e.plans]
    assert len(mine) == 1, [(e.tone, e.plans) for e in events]
    event = mine[0]
    assert abs(event.sample - LEAD) <= ONSET_SLACK
    # The plan named is the best fit: one whose tone is exactly this one.
    assert same_tone(plan, name, event.plan), (event.plan, event.plans)
    assert event.plans[0] == event.plan and len(set(event.plans)) == len(event.plans)
    others = {(e.tone, e.plan) for e in events if e is not event}
    assert others == SAME_SOUND.get((plan, name), set())
    assert len(events) == len(others) + 1


def test_a_tone_shared_by_plans_is_one_event_naming_them_all():
    busy = detect(network_tone("us", "busy", sox_tone, -20.0), "auto")
    assert [(e.tone, e.plan, e.plans) for e in busy] == [("busy", "us", ("us", "ca"))]
    # German busy is 480/480 ms, the CEPT one 500/500: one event, both plans.
    de = detect(network_tone("de", "busy", spandsp_tone, -20.0), "auto")
    assert [e.tone for e in de] == ["busy"] and {"de", "etsi", "nl", "it"} <= set(de[0].plans)


def test_of_plans_that_fit_the_closer_is_named():
    """Two plans whose busy cadences (500/500, 560/560 ms) both fit: the nearer names it."""
    def plan(name, on):
        return TonePlan(name, "", (Tone("busy", (600.0,), (on, on), plans=(name,)),))
    both = combined_plan([plan("short", 500), plan("long", 560)])
    for on, named in ((510, "short"), (550, "long")):
        det = CallProgressDetector(both)
        events = det.feed(sox_tone([600], -20, [on, on], 4.0)) + det.flush()
        assert [(e.tone, e.plan) for e in events] == [("busy", named)], on
        assert set(events[0].plans) == {"short", "long"}


def test_a_steady_425_hz_tone_waits_out_the_longest_burst_of_any_plan():
    """Spain rings back with 1.5 s bursts of 425 Hz; ETSI's dial tone (1.5 s alone)
    must not be reported on them under auto."""
    auto = auto_toneplan()
    dial = [t for t in auto.tones if t.name == "dial" and t.frequencies == (425.0,)
            and not t.cadence_ms and "etsi" in t.plans]
    assert len(dial) == 1 and {"de", "es", "nl"} <= set(dial[0].plans)
    assert dial[0].min_ms > 1500 * 1.15
    assert load_toneplan("etsi").tone("dial").min_ms == 1500        # the plan itself keeps it
    ringing = spandsp_tone([425], -20, [1500, 3000], 10.0)
    assert [(e.tone, e.plan) for e in detect(ringing, "auto")] == [("ringback", "es")]
    steady = sox_tone([425], -20, [], 3.0)
    assert [(e.tone, e.plan) for e in detect(steady, "auto")] == [("dial", "etsi")]


def test_combined_plan_merges_only_identical_tones():
    us, ca, uk = (load_toneplan(n) for n in ("us", "ca", "uk"))
    both = combined_plan([us, ca])
    assert len(both.tones) == len(us.tones)
    assert all(t.plans == ("us", "ca") for t in both.tones)
    # The order given is the preference: it names the plan of a shared tone.
    assert all(t.plans == ("ca", "us") for t in combined_plan([ca, us]).tones)
    # UK dial is 350 + 440 Hz as in the US, but with a wider frequency tolerance:
    # two tones, one event when both fit.
    mixed = combined_plan([us, uk])
    assert len(mixed.tones) == len(us.tones) + len(uk.tones)
    dial = sox_tone([350, 440], -20, [], 2.5)
    det = CallProgressDetector(mixed)
    events = det.feed(dial) + det.flush()
    assert [(e.tone, e.plan, e.plans) for e in events] == [("dial", "us", ("us", "uk"))]
    with pytest.raises(ValueError, match="combined_plan"):
        combined_plan([])


# --------------------------------------------------------------------------
# Accept figures under auto: no worse than the single plan


@pytest.mark.parametrize("plan,name", [("us", "busy"), ("uk", "ringback"), ("uk", "busy"),
                                       ("etsi", "reorder"), ("de", "busy"), ("fr", "busy"),
                                       ("au", "busy"), ("nz", "busy"), ("it", "dial")])
def test_levels_frequencies_cadences_and_noise_hold_under_auto(plan, name):
    tone = PLANS[plan].tone(name)
    freqs = NETWORK_FREQUENCIES.get((plan, name), tone.frequencies)
    seconds = seconds_needed(tone) + 1.0

    def heard(audio):
        single = [e.tone for e in detect(audio, plan)]
        auto = [(e.tone, plan in e.plans) for e in detect(audio, "auto")
                if e.tone == name]
        return single, auto

    trials = []
    for level in (-5, -20, -40):                                    # level
        trials.append(spandsp_tone(freqs, level, tone.cadence_ms, seconds))
    for offset in (-0.015, 0.015):                                  # frequency
        trials.append(sox_tone([round(f * (1 + offset)) for f in freqs], -20,
                               tone.cadence_ms, seconds))
    for stretch in (0.9, 1.1):                                      # cadence
        if tone.cadence_ms:
            cadence = [round(d * stretch) for d in tone.cadence_ms]
            trials.append(sox_tone(freqs, -20, cadence, seconds * 1.1))
    rng = np.random.default_rng(5)                                  # line noise, 15 dB SNR
    clean = spandsp_tone(freqs, -20, tone.cadence_ms, seconds).astype(float)
    noise = rng.normal(0, dbm0_to_amplitude(-35) / math.sqrt(2), clean.size)
    trials.append(np.clip(clean + noise, -32768, 32767).astype(np.int16))
    for k, audio in enumerate(trials):
        single, auto = heard(audio)
        assert single == [name], (k, single)
        assert auto == [(name, True)], (k, auto)


def test_too_quiet_or_far_off_is_still_no_tone_under_auto():
    for plan, name in [("us", "busy"), ("uk", "busy"), ("de", "busy"), ("fr", "busy")]:
        tone = PLANS[plan].tone(name)
        quiet = sox_tone(tone.frequencies, -46, tone.cadence_ms, seconds_needed(tone))
        assert detect(quiet, "auto") == [], (plan, name)
    # 8 % off every plan's frequencies: 425 Hz tones of Europe are far from 460 Hz.
    off = sox_tone([460], -20, [500, 500], 4.0)
    assert detect(off, "auto") == []


# --------------------------------------------------------------------------
# Streaming contract and talk-off


def mixed_recording() -> np.ndarray:
    rng = np.random.default_rng(17)
    parts = [silence(0.1234)]
    for plan, name, make in [("de", "busy", spandsp_tone), ("fr", "ringback", sox_tone),
                             ("au", "ringback", spandsp_tone), ("es", "reorder", sox_tone),
                             ("it", "dial", spandsp_tone), ("uk", "reorder", sox_tone),
                             ("nz", "busy", spandsp_tone)]:
        parts += [network_tone(plan, name, make, -22.0), silence(0.7)]
    audio = np.concatenate(parts)
    hiss = rng.normal(0, dbm0_to_amplitude(-45), audio.size)
    return np.clip(audio + hiss, -32768, 32767).astype(np.int16)


def test_frame_split_invariance_under_auto():
    audio = mixed_recording()
    reference = detect(audio, "auto", frame=1000)
    heard = [(e.tone, e.plans) for e in reference]
    want = [("busy", "de"), ("ringback", "fr"), ("ringback", "au"), ("reorder", "it"),
            ("reorder", "es"), ("dial", "it"), ("reorder", "uk"), ("busy", "nz")]
    assert len(heard) == len(want) and all(
        tone == name and plan in plans for (tone, plans), (name, plan) in zip(heard, want))
    for frame in (1, 80, 160, 999):
        assert detect(audio, "auto", frame=frame) == reference, frame
    rng = np.random.default_rng(4)
    assert detect_in_uneven_frames(audio, auto_toneplan(), rng) == reference


@pytest.fixture(scope="module")
def corpus():
    return quick_corpus()


@pytest.mark.parametrize("level", [-30.0, -15.0, -5.0])
def test_no_tone_from_speech_or_music_under_auto(corpus, level):
    heard = {}
    for name, x in corpus:
        events = detect(level_to(x, level), "auto")
        if events:
            heard[name] = [(e.tone, e.plan) for e in events]
    assert heard == {}


# --------------------------------------------------------------------------
# `callgate decode`: auto is the default


def uk_call() -> np.ndarray:
    """A call on a UK line: dial tone, keyed number, double ringing, an answer,
    then the far end hangs up and the exchange sends busy (engaged) tone."""
    rng = np.random.default_rng(23)
    voice = espeak("Hello, accounts department, how can I help?", "en-gb", 160, 50)
    parts = [
        sox_tone([350, 440], -18, [], 2.5), silence(0.3),
        external.spandsp_dtmf_tx("01632960123", -10, 80, 120), silence(0.8),
        spandsp_tone([400, 450], -20, [400, 200, 400, 2000], 6.0),
        level_to(voice, -20.0), silence(0.5),
        sox_tone([400], -20, [375, 375], 4.0), silence(0.4),
    ]
    audio = np.concatenate(parts).astype(float)
    audio += rng.normal(0, dbm0_to_amplitude(-50), audio.size)
    return np.clip(audio, -32768, 32767).astype(np.int16)


def decode_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "callgate.cli", "decode", *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_uk_busy_in_a_uk_recording_is_reported_by_default(tmp_path):
    path = tmp_path / "uk-call.wav"
    write_wav(path, uk_call())
    events = [json.loads(line) for line in decode_cli(path).splitlines()]
    tones = [(e["tone"], e["plan"]) for e in events if e["event"] == "tone"]
    assert tones == [("dial", "us"), ("ringback", "uk"), ("busy", "uk")]
    by_tone = {e["tone"]: e for e in events if e["event"] == "tone"}
    assert by_tone["dial"]["plans"] == ["us", "ca", "uk"]     # one sound, three plans
    assert by_tone["ringback"]["plans"] == ["uk", "au", "nz"]     # au: 413 + 438 Hz
    assert by_tone["busy"]["plans"] == ["uk"]
    assert abs(by_tone["busy"]["t"] - (len(uk_call()) / RATE - 4.4)) < 0.03
    assert "".join(e["digit"] for e in events if e["event"] == "dtmf") == "01632960123"
    # --text shows the plan too, and every plan only when there are several.
    text = decode_cli("--text", path).splitlines()
    busy = [line for line in text if "tone=busy" in line]
    assert len(busy) == 1 and "plan=uk" in busy[0] and "plans=" not in busy[0]
    dial = [line for line in text if "tone=dial" in line]
    assert len(dial) == 1 and "plan=us plans=us,ca,uk" in dial[0]


def test_toneplan_takes_auto_a_plan_or_a_file(tmp_path):
    path = tmp_path / "uk-call.wav"
    write_wav(path, uk_call())

    def tones(*args):
        out = decode_cli(*args, path)
        return [(e["tone"], e["plan"]) for e in map(json.loads, out.splitlines())
                if e["event"] == "tone"]

    assert tones("--toneplan", "auto") == tones()
    assert tones("--toneplan", "uk") == [("dial", "uk"), ("ringback", "uk"), ("busy", "uk")]
    assert tones("--toneplan", "us") == [("dial", "us")]   # the old default missed the rest
    own = tmp_path / "office.toml"
    own.write_text(resources.files("callgate.toneplans").joinpath("uk.toml").read_text()
                   .replace('name = "uk"', 'name = "office"'))
    assert tones("--toneplan", own) == [("dial", "office"), ("ringback", "office"),
                                        ("busy", "office")]


def test_decode_toneplan_resolves_auto_names_and_files():
    assert decode_toneplan("auto") is auto_toneplan()
    assert decode_toneplan("de") is load_toneplan("de")
    assert set(auto_toneplan().description.split(": ")[1].split(", ")) == set(
        available_toneplans())


# --------------------------------------------------------------------------
# The engine: one plan, its country's; every new plan can be named


@pytest.mark.parametrize("plan", NEW_PLANS)
def test_check_config_accepts_every_plan_as_engine_toneplan_and_line_country(
        tmp_path, capsys, plan):
    path = tmp_path / "callgate.toml"
    path.write_text(GOOD.replace("rings = 2", f'rings = 2\ntoneplan = "{plan}"')
                    .replace('backend = "sim"', f'backend = "sim"\n[line.sim]\ncountry = "{plan}"'))
    code = main(["check-config", str(path)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err


def test_auto_is_refused_as_the_engine_toneplan(tmp_path, capsys):
    path = tmp_path / "callgate.toml"
    path.write_text(GOOD.replace("rings = 2", 'rings = 2\ntoneplan = "auto"'))
    code = main(["check-config", str(path)])
    text = (lambda o: o.out + o.err)(capsys.readouterr())
    assert code == 2 and "engine.toneplan" in text and "callgate decode" in text, text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text
    with pytest.raises(ValueError, match="for callgate decode"):
        load_toneplan("auto")


def test_tone_events_of_a_named_plan_name_it():
    events = detect(network_tone("nz", "busy", sox_tone, -20.0), "nz")
    assert [(e.tone, e.plan, e.plans) for e in events] == [("busy", "nz", ("nz",))]
    assert isinstance(events[0], ToneEvent)
