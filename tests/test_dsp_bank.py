"""The detector bank: one event stream on the line's sample clock, whatever the framing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from callgate.dsp import RATE
from callgate.dsp.bank import CAS_WINDOW_MS, DetectorBank
from callgate.dsp.callerid import (CallerIdReceiver, build_mdmf, callerid_tx,
                                   dtmf_callerid_digits)
from callgate.dsp.dtmf import HALF, DtmfEvent, DtmfReceiver, dtmf_tx
from callgate.dsp.events import CallerIdEvent
from callgate.dsp.fsk import BELL202, V23, FskReceiver
from callgate.dsp.gates import GATE_BLOCK, CasEvent, CasGate, VoiceEvent, VoiceGate
from callgate.dsp.level import dbm0_to_rms
from callgate.dsp.tones import BLOCK as TONE_BLOCK
from callgate.dsp.tones import CallProgressDetector, ToneEvent, plan_tone_tx, tone_tx
from callgate.toneplans import load_toneplan

PLAN = load_toneplan("us")
ORIGIN = 123456
MESSAGE = build_mdmf(number="2125550199", name="CALL WAITING", datetime="11231000")


def ms(n: float) -> int:
    return int(n * RATE / 1000)


def silence(n_ms: float) -> np.ndarray:
    return np.zeros(ms(n_ms), np.int16)


def noise(n_ms: float, level_dbm0: float = -20.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, dbm0_to_rms(level_dbm0), ms(n_ms))).astype(np.int16)


def cas_alert() -> np.ndarray:
    """GR-30 CAS: 2130 + 2750 Hz for 80 ms, as the simulated exchange sends it."""
    return tone_tx([2130, 2750], -15.0, [], 0.08)


def burst() -> np.ndarray:
    return callerid_tx(MESSAGE, BELL202)


def join(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(p, np.int16) for p in parts])


def busy_line() -> np.ndarray:
    """Keys, DTMF caller ID, a call-waiting alert and burst, noise, busy tone."""
    return join(silence(300), dtmf_tx(dtmf_callerid_digits(number="4512345678"), -10.0),
                silence(400), cas_alert(), silence(250), burst(), silence(300),
                dtmf_tx("42#", -12.0, on_ms=60, off_ms=60), noise(600, -25.0),
                silence(500), burst(), silence(200), plan_tone_tx(PLAN, "busy", 2.5, -20.0),
                dtmf_tx("8", -10.0, on_ms=60, off_ms=0))


def run(bank: DetectorBank, x: np.ndarray, frame: int, at: int = 0) -> list:
    """Reset at `at`, feed `x` in frames with their line stamps, flush; in onset order."""
    bank.reset(at)
    events = []
    for i in range(0, len(x), frame):
        events += bank.feed(x[i:i + frame], at=at + i)
    events += bank.flush()
    return sorted(events, key=lambda e: (e.sample, e.kind))


def decode_bank() -> DetectorBank:
    return DetectorBank(dtmf=True, dtmf_callerid=True, fsk=(BELL202, V23), tones=PLAN)


def call_bank(**kw) -> DetectorBank:
    return DetectorBank(dtmf=True, fsk=(BELL202, V23), callwaiting=True, tones=PLAN,
                        voice=True, **kw)


def of(events, kind) -> list:
    return [e for e in events if isinstance(e, kind)]


# ------------------------------------------------------------------ the line's clock


def test_dtmf_digit_is_stamped_on_the_line_clock():
    onset = ms(300)
    x = join(silence(300), dtmf_tx("5", -10.0, on_ms=60, off_ms=200))
    digits = of(run(decode_bank(), x, 160, at=ORIGIN), DtmfEvent)
    assert [d.digit for d in digits] == ["5"]
    assert abs(digits[0].sample - (ORIGIN + onset)) <= HALF


def test_tone_and_caller_id_are_stamped_on_the_line_clock():
    x = join(silence(500), burst(), silence(700), plan_tone_tx(PLAN, "busy", 3.0, -20.0))
    burst_at, busy_at = ms(500), ms(500) + burst().size + ms(700)
    events = run(decode_bank(), x, 160, at=ORIGIN)
    cid = of(events, CallerIdEvent)
    assert len(cid) == 1 and cid[0].checksum_ok and cid[0].number == "2125550199"
    assert abs(cid[0].sample - (ORIGIN + burst_at)) <= ms(20)
    tones = of(events, ToneEvent)
    assert [t.tone for t in tones] == ["busy"]
    assert abs(tones[0].sample - (ORIGIN + busy_at)) <= TONE_BLOCK


def test_dtmf_caller_id_is_stamped_at_its_first_digit():
    digits = dtmf_callerid_digits(number="4512345678")
    x = join(silence(200), dtmf_tx(digits, -10.0, on_ms=50, off_ms=50), silence(800))
    cid = of(run(decode_bank(), x, 160, at=ORIGIN), CallerIdEvent)
    assert len(cid) == 1 and cid[0].format == "DTMF" and cid[0].number == "4512345678"
    assert abs(cid[0].sample - (ORIGIN + ms(200))) <= HALF


@pytest.mark.parametrize("make", [DtmfReceiver, CallerIdReceiver, lambda: FskReceiver(BELL202),
                                  lambda: CallProgressDetector(PLAN), CasGate,
                                  lambda: VoiceGate(PLAN)],
                         ids=["dtmf", "callerid", "fsk", "tones", "cas", "voice"])
def test_each_detector_reset_at_a_sample_stamps_from_there(make):
    """Events after reset(at) are those after reset(0), moved by `at` and nothing else."""
    x = busy_line()

    def heard(at):
        det = make()
        det.reset(at)
        events = []
        for i in range(0, len(x), 160):
            events += det.feed(x[i:i + 160])
        return events + det.flush()

    plain = heard(0)
    assert plain
    moved = [dataclasses.replace(e, sample=e.sample + ORIGIN) for e in plain]
    if make is CasGate:
        moved = [dataclasses.replace(e, confirmed=e.confirmed + ORIGIN) for e in moved]
    assert heard(ORIGIN) == moved


def test_feed_without_at_follows_on_and_position_tells_where():
    bank = decode_bank()
    bank.reset(ORIGIN)
    x = join(silence(300), dtmf_tx("7", -10.0, on_ms=60, off_ms=200))
    events = []
    for i in range(0, len(x), 160):
        events += bank.feed(x[i:i + 160])
    assert bank.position == ORIGIN + len(x)
    assert abs(of(events, DtmfEvent)[0].sample - (ORIGIN + ms(300))) <= HALF


def test_a_jump_forward_restarts_the_detectors_and_a_jump_back_is_refused():
    bank = decode_bank()
    bank.reset(ORIGIN)
    tone = dtmf_tx("9", -10.0, on_ms=60, off_ms=0)
    bank.feed(tone[:ms(30)], at=ORIGIN)
    later = ORIGIN + 5000                 # 30 ms of the digit, then frames were lost
    events = bank.feed(tone[ms(30):], at=later) + bank.feed(silence(300))
    assert bank.gaps == 1
    assert not of(events, DtmfEvent)      # 30 ms either side of the gap: no digit
    key = dtmf_tx("1", -10.0, on_ms=60, off_ms=200)
    events = bank.feed(key) + bank.flush()
    assert abs(of(events, DtmfEvent)[0].sample - (later + ms(330))) <= HALF
    with pytest.raises(ValueError, match="already fed"):
        bank.feed(silence(20), at=later)


# ------------------------------------------------------------------ reset


def test_reset_forgets_a_digit_in_progress():
    tone = dtmf_tx("3", -10.0, on_ms=70, off_ms=0)
    bank = decode_bank()
    bank.reset(0)
    bank.feed(tone[:ms(45)])
    bank.reset(ms(45))
    events = bank.feed(tone[ms(45):]) + bank.feed(silence(300)) + bank.flush()
    assert not of(events, DtmfEvent)
    assert of(run(decode_bank(), join(tone, silence(300)), 160), DtmfEvent)


def test_reset_forgets_a_caller_id_burst_in_progress():
    x = join(silence(200), burst(), silence(500))
    half = ms(200) + burst().size - ms(100)     # inside the message, past its preamble
    bank = decode_bank()
    bank.reset(0)
    events = bank.feed(x[:half])
    bank.reset(half)
    events += bank.feed(x[half:]) + bank.flush()
    assert not [e for e in of(events, CallerIdEvent) if e.checksum_ok]
    whole = of(run(decode_bank(), x, 160), CallerIdEvent)
    assert len(whole) == 1 and whole[0].checksum_ok


def test_reset_forgets_a_dtmf_caller_id_message_in_progress():
    digits = dtmf_callerid_digits(number="4512345678")
    x = dtmf_tx(digits, -10.0, on_ms=50, off_ms=50)
    cut = 5 * ms(100)                     # "A4512" heard, then a reset
    bank = decode_bank()
    bank.reset(0)
    bank.feed(x[:cut])
    bank.reset(cut)
    events = bank.feed(x[cut:]) + bank.feed(silence(800)) + bank.flush()
    assert not of(events, CallerIdEvent)


# ------------------------------------------------------------------ framing


@pytest.mark.parametrize("make", [decode_bank, call_bank, lambda: call_bank(slow_block=0)],
                         ids=["decode", "call", "call-unbatched"])
def test_20ms_frames_and_one_block_give_the_same_events(make):
    x = busy_line()
    want = run(make(), x, len(x), at=ORIGIN)
    kinds = {type(e) for e in want}
    assert {DtmfEvent, CallerIdEvent, ToneEvent} <= kinds
    for frame in (160, 80, 333):
        assert run(make(), x, frame, at=ORIGIN) == want


def test_slow_block_changes_when_events_come_not_what_they_say():
    x = busy_line()
    assert run(call_bank(), x, 160) == run(call_bank(slow_block=0), x, 160)


# ------------------------------------------------------------------ call waiting


def test_the_alert_opens_the_fsk_window_for_its_three_seconds():
    bank = call_bank()
    x = join(silence(500), cas_alert(), silence(250), burst(), silence(500))
    events = run(bank, x, 160, at=ORIGIN)
    cas = of(events, CasEvent)
    assert len(cas) == 1 and abs(cas[0].sample - (ORIGIN + ms(500))) <= GATE_BLOCK
    cid = of(events, CallerIdEvent)
    assert len(cid) == 1 and cid[0].checksum_ok and cid[0].number == "2125550199"
    assert abs(cid[0].sample - (ORIGIN + ms(830))) <= ms(20)


def test_no_alert_no_fsk():
    events = run(call_bank(), join(silence(500), burst(), silence(500)), 160)
    assert not of(events, CallerIdEvent) and not of(events, CasEvent)


@pytest.mark.parametrize("gap_ms, heard", [(2000, True), (CAS_WINDOW_MS + 500, False)])
def test_a_burst_is_heard_only_inside_the_window(gap_ms, heard):
    x = join(silence(500), cas_alert(), silence(gap_ms), burst(), silence(500))
    cid = [e for e in of(run(call_bank(), x, 160), CallerIdEvent) if e.checksum_ok]
    assert bool(cid) == heard


def test_the_window_is_reported_and_closes_on_time():
    bank = call_bank()
    bank.reset(ORIGIN)
    x = join(silence(500), cas_alert())
    cas = of(bank.feed(x), CasEvent)
    assert len(cas) == 1
    assert bank.callwaiting_window == (cas[0].confirmed, cas[0].confirmed + ms(CAS_WINDOW_MS))
    bank.feed(silence(CAS_WINDOW_MS + 100))
    assert bank.callwaiting_window is None


def test_a_second_alert_inside_the_window_opens_nothing_new():
    x = join(silence(500), cas_alert(), silence(500), cas_alert(), silence(300), burst(),
             silence(300))
    events = run(call_bank(), x, 160)
    assert len(of(events, CasEvent)) == 1
    assert len([e for e in of(events, CallerIdEvent) if e.checksum_ok]) == 1


def test_cas_gate_times_the_alert_in_samples_not_frames():
    x = join(silence(300), cas_alert(), silence(300))
    stamps = set()
    for frame in (40, 160, 400, len(x)):
        gate = CasGate()
        got = []
        for i in range(0, len(x), frame):
            got += gate.feed(x[i:i + frame])
        stamps.add(tuple((e.sample, e.confirmed) for e in got))
    assert len(stamps) == 1
    ((onset, confirmed),) = stamps.pop()
    assert abs(onset - ms(300)) <= GATE_BLOCK and confirmed - onset == ms(40)
    assert not CasGate().feed(join(silence(300), tone_tx([2130, 2750], -15.0, [], 0.03)))


# ------------------------------------------------------------------ voice


def test_voice_gate_hears_a_voice_not_ringback():
    ring = plan_tone_tx(PLAN, "ringback", 6.0, -16.0)
    gate = VoiceGate(PLAN)
    assert not gate.feed(ring) and not gate.voiced
    gate = VoiceGate(PLAN)
    got = gate.feed(join(silence(400), noise(300)))
    assert len(got) == 1 and isinstance(got[0], VoiceEvent)
    assert abs(got[0].sample - ms(400)) <= GATE_BLOCK and gate.voiced


def test_voice_gate_needs_100ms_within_200ms():
    click = join(noise(60), silence(500))
    gate = VoiceGate(PLAN)
    assert not gate.feed(click)
    gate = VoiceGate(PLAN)
    assert gate.feed(join(noise(100), silence(500)))


def test_listen_voice_starts_clean_and_stops():
    bank = call_bank()
    bank.reset(ORIGIN)
    bank.listen_voice(False)
    assert not of(bank.feed(noise(400)), VoiceEvent) and not bank.voiced
    bank.listen_voice(True)
    events = []
    frames = 0
    while not bank.voiced:
        events += bank.feed(noise(20, seed=frames))
        frames += 1
    assert frames == 5                    # 100 ms of voice after listening began
    assert [e.sample for e in of(events, VoiceEvent)] == [ORIGIN + ms(400)]
    bank.listen_voice(False)
    assert not bank.voiced
    with pytest.raises(ValueError, match="voice"):
        decode_bank().listen_voice(True)


def test_power_is_the_last_feeds_mean_square():
    bank = call_bank()
    x = noise(20, -30.0)
    bank.feed(x)
    want = float(np.mean(x.astype(np.float64) ** 2))
    assert bank.power == pytest.approx(want, rel=1e-4)
    bank.feed(silence(20))
    assert bank.power == 0.0


# ------------------------------------------------------------------ building


def test_bad_configurations_are_refused_with_reasons():
    with pytest.raises(ValueError, match="callwaiting needs"):
        DetectorBank(callwaiting=True)
    with pytest.raises(ValueError, match="voice needs"):
        DetectorBank(voice=True)
    with pytest.raises(TypeError, match="TonePlan"):
        DetectorBank(tones="us")
    with pytest.raises(ValueError, match="slow_block"):
        DetectorBank(slow_block=-1)


def test_events_module_does_not_load_numpy():
    code = ("import sys; import callgate.dsp.events as e; "
            "assert 'numpy' not in sys.modules, 'numpy loaded'; print(e.CallerIdEvent.kind)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "callerid"
