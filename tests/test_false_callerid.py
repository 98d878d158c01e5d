"""Signal-core figure 1: no caller ID event at all on audio that holds none.

Speech and music put energy in the 1200/2200 Hz band, and the FSK
demodulator then reads characters out of them; keyed digits hold A, B, C,
D and #. None of it may come out as a caller ID event: an FSK message needs
its channel seizure and mark (or, with no seizure, a long mark, a caller ID
type and length and a good checksum), DTMF caller ID its framing and timing.
Real caller ID, damaged or not, must still come through (test_callerid.py
holds the rest of that side).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from callgate.dsp.callerid import build_mdmf, build_sdmf, callerid_tx, dtmf_callerid_digits
from callgate.dsp.decoder import decode
from callgate.dsp.fsk import BELL202, V23
from corpus import LANGUAGES, asterisk_speech, minutes, music_on_hold
from external import spandsp_adsi_tx, spandsp_dtmf_tx
from test_fsk import add_noise, pad
from test_talkoff import level_to, quick_corpus

MDMF = build_mdmf(number="5551234567", name="JOHN DOE", datetime="11221830")


def callerid_events(x: np.ndarray) -> list:
    """What `callgate decode` prints as caller ID for this audio."""
    return [e for e in decode(x) if e.kind == "callerid"]


@pytest.fixture(scope="module")
def recordings() -> dict[str, np.ndarray]:
    """About 55 minutes of recorded voices and 18 of music on hold."""
    clips = {f"asterisk {lang}": asterisk_speech(lang, every=2) for lang in LANGUAGES}
    clips["music on hold"] = music_on_hold()
    clips["talk-off corpus"] = np.concatenate([x for _, x in quick_corpus()])
    assert sum(minutes(x) for x in clips.values()) > 60
    return clips


@pytest.mark.parametrize("level", [-25.0, -10.0])
def test_zero_callerid_events_on_recorded_speech_and_music(recordings, level):
    heard = {name: callerid_events(level_to(x, level)) for name, x in recordings.items()}
    assert {name: ev for name, ev in heard.items() if ev} == {}


def test_zero_callerid_events_on_noise():
    rng = np.random.default_rng(3)
    for sigma in (300.0, 3000.0, 12000.0):
        noise = np.clip(rng.normal(0, sigma, 8000 * 60), -32768, 32767).astype(np.int16)
        assert callerid_events(noise) == []


@pytest.mark.parametrize("on_ms,off_ms", [(50, 55), (70, 70), (100, 100), (120, 400)])
def test_zero_callerid_events_on_keyed_digits(on_ms, off_ms):
    """Every key, A-D included, keyed by machine and by hand (libspandsp's sender)."""
    rng = np.random.default_rng(on_ms)
    keys = ["".join(rng.choice(list("123A456B789C*0#D"), 60)) for _ in range(6)]
    keys += ["123A456B789C*0#D" * 3, "A*0#" * 10, "D*0#" * 10, "A0#B1C2D3" * 5]
    x = np.concatenate([spandsp_dtmf_tx(k, -10, on_ms, off_ms) for k in keys])
    assert callerid_events(x) == []


def test_real_callerid_between_speech_is_all_still_heard(recordings):
    """No loss: bursts of every kind, each between two stretches of speech."""
    speech = level_to(recordings["asterisk fr"], -15.0)
    bursts = [spandsp_adsi_tx("clip", MDMF[:-1]), spandsp_adsi_tx("etsi", MDMF[:-1]),
              callerid_tx(build_sdmf("07041200", number="8005551212"), BELL202),
              callerid_tx(MDMF, V23, level_dbm0=-30.0),
              spandsp_adsi_tx("dtmf", dtmf_callerid_digits("4512345678").encode())]
    parts = []
    for k, burst in enumerate(bursts):
        parts += [speech[k * 40000:(k + 1) * 40000], np.zeros(4000, np.int16), burst,
                  np.zeros(4000, np.int16)]
    got = callerid_events(np.concatenate(parts + [speech[-40000:]]))
    assert [(e.format, e.number, e.checksum_ok) for e in got] == [
        ("MDMF", "5551234567", True), ("MDMF", "5551234567", True),
        ("SDMF", "8005551212", True), ("MDMF", "5551234567", True),
        ("DTMF", "4512345678", True)]


@pytest.mark.parametrize("spec", [BELL202, V23], ids=["bell202", "v23"])
def test_a_burst_with_no_seizure_is_heard_when_whole_and_dropped_when_damaged(spec, caplog):
    """Off-hook caller ID (GR-30 type 2, EN 300 659-2) sends mark and message only."""
    (ev,) = callerid_events(pad(callerid_tx(MDMF, spec, seizure=0, mark=80), 4000, 4000))
    assert (ev.number, ev.checksum_ok) == ("5551234567", True)
    bad = bytearray(MDMF)
    bad[-1] ^= 0x10
    with caplog.at_level(logging.DEBUG, logger="callgate.dsp.callerid"):
        assert callerid_events(pad(callerid_tx(bytes(bad), spec, seizure=0, mark=80))) == []
    assert any("no channel seizure" in r.getMessage() for r in caplog.records)
    assert not any("JOHN" in r.getMessage() or "555" in r.getMessage() for r in caplog.records)
    # the same damage after a seizure is a damaged caller ID, and is reported as one
    (ev,) = callerid_events(pad(callerid_tx(bytes(bad), spec)))
    assert (ev.checksum_ok, ev.error) == (False, "bad checksum")


def test_a_burst_in_noise_with_a_short_mark_is_not_lost():
    """EN 300 659-1's shortest mark (55 bits) after the shortest seizure (96 bits), at 12 dB."""
    x = add_noise(pad(callerid_tx(MDMF, V23, level_dbm0=-25.0, seizure=96, mark=55), 4000, 4000),
                  12.0, seed=4)
    (ev,) = callerid_events(x)
    assert (ev.number, ev.checksum_ok) == ("5551234567", True)
