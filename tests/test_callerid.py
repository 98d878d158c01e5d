"""Caller ID: parsing, building, the FSK burst receiver and DTMF-signalled caller ID.

Bursts come from libspandsp's adsi_tx ('clip' = Bell 202 / GR-30, 'etsi' =
V.23 / EN 300 659), from minimodem (the whole burst, seizure and mark
included, is its audio) and from our own transmitter.
"""

from __future__ import annotations

import logging

import dataclasses
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate.dsp.callerid import (CallerIdReceiver, DtmfCallerIdDecoder, build_mdmf,
                                   build_sdmf, callerid_tx, checksum, dtmf_callerid_digits,
                                   parse_message)
from callgate.dsp.events import CallerIdEvent
from callgate.dsp.fsk import BELL202, V23, callerid_bits
from external import spandsp_adsi_rx, spandsp_adsi_tx, spandsp_dtmf_rx
from test_fsk import add_noise, minimodem_bits, pad

SPECS = {"bell202": BELL202, "v23": V23}
STANDARD = {"bell202": "clip", "v23": "etsi"}
MDMF = build_mdmf(number="5551234567", name="JOHN DOE", datetime="11221830")


def receive(x: np.ndarray, frame: int = 1000, **kw) -> list[CallerIdEvent]:
    rx = CallerIdReceiver(**kw)
    events = []
    for i in range(0, len(x), frame):
        events += rx.feed(x[i:i + frame])
    return events + rx.flush()


def minimodem_burst(message: bytes, spec, level_dbm0: float = -13.5, seizure: int = 300,
                    mark: int = 180, tone: float = 1.0, baud: float = 1.0) -> np.ndarray:
    bits = callerid_bits(message, seizure, mark)
    return minimodem_bits(bits, spec.mark_hz * tone, spec.space_hz * tone, spec.baud * baud,
                          level_dbm0)


def spandsp_burst(message: bytes, modem: str) -> np.ndarray:
    """spandsp computes length and checksum itself: give it type, length, body."""
    return spandsp_adsi_tx(STANDARD[modem], message[:-1])


def only(events) -> CallerIdEvent:
    assert len(events) == 1, events
    return events[0]


# ------------------------------------------------------------------ parsing


def test_parse_sdmf_number_and_absence():
    m = parse_message(build_sdmf("01021230", number="5551234"))
    assert (m.format, m.datetime, m.number, m.checksum_ok, m.error) == \
        ("SDMF", "01021230", "5551234", True, None)
    for reason in "OP":
        m = parse_message(build_sdmf("12312359", absent=reason))
        assert m.number is None and m.number_absent == reason and m.checksum_ok


def test_parse_mdmf_all_fields():
    m = parse_message(MDMF)
    assert (m.format, m.number, m.name, m.datetime, m.checksum_ok, m.error) == \
        ("MDMF", "5551234567", "JOHN DOE", "11221830", True, None)
    m = parse_message(build_mdmf(number_absent="P", name_absent="O"))
    assert (m.number, m.name, m.number_absent, m.name_absent) == (None, None, "P", "O")


def test_parse_known_bytes_by_hand():
    """A GR-30 example built byte by byte, not by our builder."""
    body = b"\x01\x0801011200" + b"\x02\x0a8005551212" + b"\x07\x04ACME"
    head = bytes([0x80, len(body)]) + body
    msg = head + bytes([(256 - sum(head) % 256) % 256])
    m = parse_message(msg)
    assert (m.number, m.name, m.datetime, m.checksum_ok) == ("8005551212", "ACME", "01011200", True)


def test_etsi_and_unknown_parameters_are_skipped():
    msg = build_mdmf(number="0123456789", name="ANNA", datetime="03150910",
                     extra=[(0x03, b"4711"), (0x11, b"\x01"), (0x1A, b"999"), (0xE0, b"x" * 10)])
    m = parse_message(msg)
    assert (m.number, m.name, m.datetime, m.checksum_ok, m.error) == \
        ("0123456789", "ANNA", "03150910", True, None)


def test_message_waiting_is_not_caller_id():
    mwi = build_mdmf(extra=[(0x0B, b"\xff")], message_type=0x82)
    m = parse_message(mwi)
    assert m.checksum_ok and m.message_waiting is True and not m.is_callerid
    head = bytes([0x06, 3]) + b"BBB"
    m = parse_message(head + bytes([checksum(head)]))
    assert m.checksum_ok and m.message_waiting is True and not m.is_callerid


def test_bad_checksum_is_reported_as_bad():
    bad = bytearray(MDMF)
    bad[-1] ^= 0x01
    m = parse_message(bytes(bad))
    assert not m.checksum_ok and m.error == "bad checksum"
    flipped = bytearray(MDMF)
    flipped[10] ^= 0x40
    assert parse_message(bytes(flipped)).checksum_ok is False


def test_truncated_is_reported_as_truncated():
    for cut in (0, 1, 2, 5, len(MDMF) - 1):
        m = parse_message(MDMF[:cut])
        assert not m.checksum_ok and m.error == "truncated", cut
    m = parse_message(MDMF[:14])  # the date/time parameter is complete, the number is not
    assert m.datetime == "11221830" and m.number is None


def test_malformed_parameter_is_reported():
    body = b"\x02\x09123"  # claims nine bytes, has three
    head = bytes([0x80, len(body)]) + body
    m = parse_message(head + bytes([checksum(head)]))
    assert m.checksum_ok and m.error == "malformed parameter"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises(data):
    m = parse_message(data)
    assert isinstance(m.checksum_ok, bool)
    if m.checksum_ok:
        assert len(data) >= data[1] + 3 and sum(data[:data[1] + 3]) % 256 == 0
    else:
        assert m.error is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=50), st.integers(0, 10_000), st.integers(0, 7))
def test_any_single_bit_error_outside_the_length_is_caught(body, where, bit):
    """A flipped bit changes the mod-256 sum; (a flipped length byte moves the checksum
    itself, so it is left to the length checks)."""
    msg = bytearray(build_mdmf(extra=[(0x50, body)]))
    pos = [p for p in range(len(msg)) if p != 1][where % (len(msg) - 1)]
    msg[pos] ^= 1 << bit
    m = parse_message(bytes(msg))
    assert not m.checksum_ok and m.error == "bad checksum"


numbers = st.text(alphabet="0123456789", min_size=1, max_size=15)
names = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1,
                max_size=15)


@settings(max_examples=200, deadline=None)
@given(numbers, names, st.from_regex(r"[0-9]{8}", fullmatch=True))
def test_build_parse_round_trip(number, name, when):
    m = parse_message(build_mdmf(number=number, name=name, datetime=when))
    assert (m.number, m.name, m.datetime, m.checksum_ok, m.error) == (number, name, when, True, None)


@pytest.mark.parametrize("call", [
    lambda: build_sdmf("0102", number="1"),
    lambda: build_sdmf("01021230"),
    lambda: build_sdmf("01021230", number="1", absent="O"),
    lambda: build_sdmf("01021230", number="12345678901"),
    lambda: build_mdmf(number="12ab"),
    lambda: build_mdmf(number="1", number_absent="P"),
    lambda: build_mdmf(name="X" * 51),
    lambda: build_mdmf(name_absent="Q"),
    lambda: build_mdmf(extra=[(0x50, b"x" * 256)]),
    lambda: parse_message("text"),
    lambda: callerid_tx(b"\x80"),
    lambda: dtmf_callerid_digits(),
    lambda: dtmf_callerid_digits("12a"),
    lambda: DtmfCallerIdDecoder(timeout=0),
])
def test_bad_input_is_a_clear_value_error(call):
    with pytest.raises(ValueError):
        call()


# ------------------------------------------------------------------ receiving bursts


@pytest.mark.parametrize("modem", ["bell202", "v23"])
def test_spandsp_bursts_sdmf_and_mdmf(modem):
    for message in (MDMF, build_sdmf("07041200", number="8005551212"),
                    build_sdmf("07041200", absent="P"), build_mdmf(number_absent="O", name="X Y")):
        x = pad(spandsp_burst(message, modem), 1500)
        ev = only(receive(x))
        want = parse_message(message)
        assert (ev.format, ev.number, ev.name, ev.datetime, ev.number_absent, ev.name_absent,
                ev.checksum_ok, ev.error) == (want.format, want.number, want.name, want.datetime,
                                              want.number_absent, want.name_absent, True, None)
        assert ev.modem == modem
        assert abs(ev.sample - 1500) <= 16  # onset of the burst, not of the message


@pytest.mark.parametrize("modem", ["bell202", "v23"])
def test_minimodem_whole_burst(modem):
    spec = SPECS[modem]
    mark = 180 if modem == "bell202" else 80
    ev = only(receive(pad(minimodem_burst(MDMF, spec, mark=mark), 1000)))
    assert (ev.number, ev.name, ev.datetime, ev.checksum_ok, ev.modem) == \
        ("5551234567", "JOHN DOE", "11221830", True, modem)
    assert abs(ev.sample - 1000) <= 16


@pytest.mark.parametrize("modem", ["bell202", "v23"])
def test_own_burst_and_spandsp_agrees(modem):
    x = callerid_tx(MDMF, SPECS[modem])
    assert spandsp_adsi_rx(STANDARD[modem], pad(x)) == [MDMF[:-1]]
    ev = only(receive(pad(x, 700)))
    assert (ev.number, ev.checksum_ok, ev.modem) == ("5551234567", True, modem)
    assert abs(ev.sample - 700) <= 16


def test_etsi_message_with_extra_parameters():
    msg = build_mdmf(number="0612345678", datetime="05201733", name="MARIE",
                     extra=[(0x11, b"\x01"), (0x03, b"0311111111")])
    for x in (spandsp_burst(msg, "v23"), minimodem_burst(msg, V23, mark=80)):
        ev = only(receive(pad(x)))
        assert (ev.number, ev.name, ev.datetime, ev.checksum_ok) == \
            ("0612345678", "MARIE", "05201733", True)


def test_message_waiting_bursts_produce_no_event():
    mwi = build_mdmf(extra=[(0x0B, b"\xff")], message_type=0x82)
    assert receive(pad(spandsp_burst(mwi, "v23"))) == []
    assert receive(pad(callerid_tx(mwi, BELL202))) == []


def test_bad_checksum_burst_is_reported_bad():
    bad = bytearray(MDMF)
    bad[-1] ^= 0x10
    for x in (callerid_tx(bytes(bad), BELL202), minimodem_burst(bytes(bad), BELL202)):
        ev = only(receive(pad(x)))
        assert ev.checksum_ok is False and ev.error == "bad checksum"


def test_truncated_burst_is_reported_truncated():
    for modem in ("bell202", "v23"):
        for x in (spandsp_burst(MDMF, modem), callerid_tx(MDMF, SPECS[modem])):
            cut = x[:len(x) - 100 - 10 * 7 * 5]  # the last few characters never arrive
            ev = only(receive(pad(cut)))
            assert ev.checksum_ok is False and ev.error == "truncated"
            assert ev.number is None or ev.number == "5551234567"


def test_seizure_then_nothing_is_truncated_and_silence_is_nothing():
    x = callerid_tx(MDMF, BELL202)[:int(320 * 8000 / 1200)]
    ev = only(receive(pad(x)))
    assert ev.error == "truncated" and not ev.checksum_ok
    assert receive(np.zeros(24000, np.int16)) == []


@pytest.mark.parametrize("modem", ["bell202", "v23"])
@pytest.mark.parametrize("level", [-5.0, -40.0])
def test_levels(modem, level):
    spec = SPECS[modem]
    for x in (callerid_tx(MDMF, spec, level_dbm0=level), minimodem_burst(MDMF, spec, level)):
        ev = only(receive(pad(x)))
        assert (ev.number, ev.checksum_ok) == ("5551234567", True)


@pytest.mark.parametrize("modem", ["bell202", "v23"])
def test_white_noise_10db_snr(modem):
    spec = SPECS[modem]
    for seed, x in enumerate((callerid_tx(MDMF, spec, level_dbm0=-25.0),
                              minimodem_burst(MDMF, spec, -25.0),
                              spandsp_burst(MDMF, modem))):
        noisy = add_noise(pad(x, 4000, 4000), 10.0, seed=100 + seed)
        ev = only(receive(noisy))
        assert (ev.number, ev.name, ev.checksum_ok) == ("5551234567", "JOHN DOE", True)


@pytest.mark.parametrize("modem", ["bell202", "v23"])
@pytest.mark.parametrize("offset", [0.99, 1.01])
def test_carrier_and_bit_rate_offsets(modem, offset):
    spec = SPECS[modem]
    skewed = dataclasses.replace(spec, mark_hz=spec.mark_hz * offset,
                                 space_hz=spec.space_hz * offset, baud=spec.baud * offset)
    for x in (callerid_tx(MDMF, skewed),
              minimodem_burst(MDMF, spec, tone=offset, baud=2 - offset)):
        ev = only(receive(pad(x)))
        assert (ev.number, ev.checksum_ok, ev.modem) == ("5551234567", True, modem)


def test_frame_split_invariance():
    bad = bytearray(MDMF)
    bad[-1] ^= 1
    x = np.concatenate((pad(spandsp_burst(MDMF, "v23")),
                        pad(callerid_tx(build_sdmf("01010101", absent="O"), BELL202, -20.0)),
                        pad(minimodem_burst(bytes(bad), BELL202)),
                        pad(callerid_tx(MDMF, V23)[:3000])))
    x = add_noise(x, 20.0, seed=9)
    reference = receive(x, frame=len(x))
    assert [(e.number_absent, e.error) for e in reference] == \
        [(None, None), ("O", None), (None, "bad checksum"), (None, "truncated")]
    for frame in (1, 80, 160, 1000):
        got = receive(x, frame)
        assert got == reference
        assert [(e.modem, e.raw) for e in got] == [(e.modem, e.raw) for e in reference]


def test_event_contract_fields():
    ev = only(receive(pad(callerid_tx(MDMF, BELL202))))
    assert ev.kind == "callerid"
    assert list(ev.as_dict()) == ["event", "format", "number", "name", "datetime", "number_absent",
                                  "name_absent", "checksum_ok", "error"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(numbers, names, st.sampled_from(["bell202", "v23"]), st.integers(0, 799))
def test_round_trip_random_numbers_and_names(number, name, modem, lead):
    msg = build_mdmf(number=number, name=name, datetime="10311945")
    ev = only(receive(pad(callerid_tx(msg, SPECS[modem]), 400 + lead), frame=1000))
    assert (ev.number, ev.name, ev.checksum_ok, ev.error) == (number, name, True, None)


# ------------------------------------------------------------------ DTMF caller ID


Digit = namedtuple("Digit", "sample digit")


def digits_at(text: str, start: int = 0, step: int = 800) -> list[Digit]:
    return [Digit(start + k * step, ch) for k, ch in enumerate(text)]


def decode_digits(events, **kw) -> list[CallerIdEvent]:
    dec = DtmfCallerIdDecoder(**kw)
    return dec.feed(events) + dec.flush()


@pytest.mark.parametrize("text", ["A5551234C", "D1#", "A0123456789#"])
def test_dtmf_callerid_from_spandsp_digits(text):
    """libspandsp's CLIP-DTMF transmitter, heard by libspandsp's DTMF receiver."""
    heard = spandsp_dtmf_rx(spandsp_adsi_tx("dtmf", text.encode()))
    assert heard == text
    ev = only(decode_digits(digits_at(heard, 400)))
    assert ev.format == "DTMF" and ev.checksum_ok and ev.sample == 400
    if text.startswith("A"):
        assert ev.number == text[1:-1] and ev.number_absent is None
    else:
        assert ev.number is None and ev.number_absent == "P"


@pytest.mark.parametrize("text,absent", [("B00C", "O"), ("B10C", "P"), ("D1#", "P"), ("D2#", "O"),
                                         ("D3#", "O"), ("D1C", "P"), ("D3C", "O")])
def test_dtmf_absence_codes(text, absent):
    ev = only(decode_digits(digits_at(text)))
    assert (ev.number, ev.number_absent, ev.checksum_ok, ev.error) == (None, absent, True, None)


def test_dtmf_number_with_redirect_and_noise_digits_around():
    events = digits_at("57*", 0) + digits_at("A4711D0800C", 5000) + digits_at("99", 20000)
    ev = only(decode_digits(events))
    assert (ev.number, ev.sample) == ("4711", 5000)


def test_dtmf_timeout_and_flush_report_truncated():
    events = digits_at("A123", 0) + digits_at("45C", 3 * 800 + 4001)
    got = decode_digits(events, timeout=4000)
    assert [(e.error, e.checksum_ok) for e in got] == [("truncated", False)]
    got = decode_digits(digits_at("A123"))
    assert [(e.error, e.sample) for e in got] == [("truncated", 0)]
    dec = DtmfCallerIdDecoder(timeout=4000)
    assert dec.feed(digits_at("A123")) == []
    assert dec.feed([], now=2400 + 4000) == []           # the gap has not passed yet
    assert [e.error for e in dec.feed([], now=2400 + 4001)] == ["truncated"]


@pytest.mark.parametrize("text,step", [
    ("123A456B789C*0#D", 800),      # the whole keypad, keyed quickly
    ("A*0#", 800),                  # a star is no number digit
    ("A5551234C9", 800),            # digits after the end code
    ("7A5551234C", 800),            # ... or before the start code, within the gap
    ("A5551234C", 3200),            # a person keying a message slowly (400 ms a digit)
    ("A12", 800),                   # cut off before it could hold a number
    ("5551234#", 800),              # no start code
])
def test_keyed_digits_are_not_caller_id_and_say_why_in_the_debug_log(text, step, caplog):
    """Figure 1 of the signal-core goals: zero caller ID events on keyed digits."""
    with caplog.at_level(logging.DEBUG, logger="callgate.dsp.callerid"):
        assert decode_digits(digits_at(text, step=step)) == []
    if step == 800:
        (record,) = caplog.records
        assert "not caller ID" in record.getMessage()
        assert "5551234" not in record.getMessage() and "123" not in record.getMessage()


def test_a_message_standing_alone_between_keyed_digits_is_still_heard():
    events = (digits_at("123", 0, step=3200) + digits_at("A5551234C", 20000)
              + digits_at("#", 20000 + 8 * 800 + 2001))
    (ev,) = decode_digits(events)
    assert (ev.number, ev.checksum_ok, ev.sample) == ("5551234", True, 20000)


def test_dtmf_bad_codes_are_not_passed_off_as_good():
    for text in ("B77C", "D9#", "AC"):
        ev = only(decode_digits(digits_at(text)))
        assert not ev.checksum_ok and ev.error is not None and ev.number is None


@pytest.mark.parametrize("style", ["nordic", "danish"])
def test_dtmf_digits_helper_round_trip(style):
    for kwargs in ({"number": "4533221100"}, {"absent": "O"}, {"absent": "P"}):
        text = dtmf_callerid_digits(style=style, **kwargs)
        heard = spandsp_dtmf_rx(spandsp_adsi_tx("dtmf", text.encode()))
        ev = only(decode_digits(digits_at(heard)))
        assert ev.number == kwargs.get("number") and ev.number_absent == kwargs.get("absent")
        assert ev.checksum_ok


def test_bytes_with_no_mark_run_in_the_buffer_do_not_crash():
    """Regression: on-hook DTMF caller ID once made the FSK receiver index an empty array.

    The fixture is the engine's on-hook audio that raised IndexError in
    FskDemodulator._bytes; it holds no FSK message, so nothing may come out,
    and any frame split must agree.
    """
    from callgate.wav import read_wav
    audio = read_wav(Path(__file__).parent / "fixtures" / "fsk-no-mark-run.wav")
    framed = CallerIdReceiver()
    events = [e for s in range(0, len(audio), 160) for e in framed.feed(audio[s:s + 160])]
    events += framed.flush()
    whole = CallerIdReceiver()
    assert events == whole.feed(audio) + whole.flush()
    assert not [e for e in events if e.checksum_ok]


# ------------------------------------------------------------------ the engine's on-hook capture


def test_on_hook_capture_stamps_on_the_line_clock_and_starts_afresh_each_window():
    """The capture feeds the detector bank line frames; what it hears is stamped with
    line samples, and a window closed and opened again starts from nothing."""
    from callgate.dsp.dtmf import dtmf_tx
    from callgate.engine.callerid import CallerIdCapture

    origin = 987_654
    burst = callerid_tx(MDMF, BELL202)
    line = np.concatenate([np.zeros(4000, np.int16), burst, np.zeros(4000, np.int16),
                           dtmf_tx(dtmf_callerid_digits(number="4512345678"), -10.0),
                           np.zeros(8000, np.int16)])
    cap = CallerIdCapture(listen_always=False)
    cap.feed(origin, line[:160])                  # not listening: nothing is fed
    cap.open(origin + 160)
    for s in range(160, len(line), 160):
        cap.feed(origin + s, line[s:s + 160])
    fsk, dtmf = cap.heard
    assert fsk.checksum_ok and fsk.number == "5551234567"
    assert abs(fsk.sample - (origin + 4000)) <= 160
    assert dtmf.format == "DTMF" and dtmf.number == "4512345678"
    assert abs(dtmf.sample - (origin + 8000 + burst.size)) <= 53
    assert cap.best() == (fsk, None)
    half = 4000 + burst.size // 2 + burst.size // 4   # inside the message
    cap.close()
    cap.open(origin)
    for s in range(0, half, 160):
        cap.feed(origin + s, line[s:s + 160])
    cap.close()
    cap.open(origin + half)
    for s in range(half, 4000 + burst.size + 4000, 160):
        cap.feed(origin + s, line[s:s + 160])
    assert not [e for e in cap.heard if e.checksum_ok]
