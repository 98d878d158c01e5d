"""The modem line against a fake V.253 modem on a pseudo-terminal, through real pyserial."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from callgate.config import ConfigError, Table
from callgate.dsp.callerid import build_mdmf
from callgate.dsp.events import CallerIdEvent
from callgate.dsp.dtmf import DtmfReceiver, dtmf_tx
from callgate.dsp.tones import tone_tx
from callgate.line import (FlashDone, LineError, LineFault, LineRestored, LineTone, LoopCurrent,
                           ParallelHandset, PolarityReversal, RingStart, make_line)
from callgate.line.modem import audio as modem_audio
from callgate.line.modem import v253
from callgate.line.modem import ModemLine

from fake_modem import FakeModem

CID = {"DATE": "0321", "TIME": "1405", "NMBR": "2015550123", "NAME": "JANE SMITH"}


@pytest.fixture
def rig(tmp_path):
    """make(model, **line_options) -> (fake, opened line); both closed afterwards.

    Lines are paced by the wall clock as on the appliance (the fake streams audio
    4x faster than real time); tests where nothing waits on the wall clock pass
    pace=False.
    """
    made = []

    def make(model="cx93010", **options):
        fake = FakeModem(tmp_path / "ttyACM0", model)
        options.setdefault("backoff", (0.05, 0.4))
        options.setdefault("command_timeout", 0.5)
        line = ModemLine(str(fake.link), **options)
        made.append((fake, line))
        line.open()
        return fake, line

    yield make
    for fake, line in made:
        line.close()
        fake.close()


def run(line, frames=None, until=None, seconds=5.0, write=None, send=True):
    """Read frames (writing `write(i)` or silence back) until `until(events)` or a limit."""
    events, audio = [], []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline and (frames is None or i < frames):
        frame = line.read()
        assert len(frame.samples) == line.frame_samples and frame.samples.dtype == np.int16
        events += frame.events
        audio.append(frame.samples)
        if send:
            line.write(write(i) if write else np.zeros(line.frame_samples, np.int16))
        i += 1
        if until is not None and until(events):
            break
    return events, np.concatenate(audio) if audio else np.zeros(0, np.int16)


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def answered(line):
    line.off_hook()
    run(line, until=lambda ev: line._streaming(), seconds=3, send=False)
    assert line._streaming()


# ------------------------------------------------------------------ identification and init


@pytest.mark.parametrize("model, duplex, vsm", [("usr5637", False, "AT+VSM=131,8000"),
                                                 ("cx93010", True, "AT+VSM=4,8000,0,0")])
def test_identification_picks_the_profile(rig, model, duplex, vsm):
    fake, line = rig(model)
    assert line.profile.key == model
    assert line.capabilities.full_duplex is duplex and line.capabilities.paced
    cmds = fake.commands
    assert cmds[:5] == ["ATZ", "ATE0", "ATV1", "ATI0", "ATI3"]
    assert cmds.index("AT+FCLASS=8") < cmds.index("AT+VCID=1") < cmds.index(vsm)
    assert fake.echo is False and fake.vcid == 1 and fake.fclass == 8


def test_named_profile_skips_identification_and_unknown_modem_is_refused(tmp_path):
    fake = FakeModem(tmp_path / "ttyACM0", "usr5637")
    line = ModemLine(str(fake.link), profile="usr5637", fmt="linear8")
    try:
        line.open()
        assert "ATI0" not in fake.commands and "AT+VSM=128,8000" in fake.commands
    finally:
        line.close()
        fake.close()
    fake = FakeModem(tmp_path / "ttyACM0", "usr5637")
    fake.spec = dict(fake.spec, ati0="28800", ati3="Generic Hayes 28.8")
    line = ModemLine(str(fake.link))
    try:
        with pytest.raises(LineError) as err:
            line.open()
        assert "'28800'" in str(err.value) and "line.modem.profile" in str(err.value)
        assert "\n" not in str(err.value)
    finally:
        fake.close()


def test_caller_id_reporting_is_re_enabled_at_every_init(rig):
    fake, line = rig("cx93010")
    assert fake.commands.count("AT+VCID=1") == 1
    answered(line)
    fake.vcid = 0                         # as if the part forgot it during the call
    line.on_hook()
    run(line, until=lambda ev: fake.vcid == 1 and not line._script and line._step is None)
    assert fake.commands.count("AT+VCID=1") == 2 and fake.commands[-1] == "AT+VLS=0"


# ------------------------------------------------------------------ ring and caller ID


@pytest.mark.parametrize("model", ["usr5637", "cx93010"])
def test_rings_and_caller_id_between_them(rig, model):
    fake, line = rig(model, pace=False)
    fake.ring(CID)                        # first ring, then the FSK burst the modem decoded
    events, _ = run(line, until=lambda ev: of(ev, CallerIdEvent))
    fake.ring()
    more, _ = run(line, until=lambda ev: of(ev, RingStart))
    events += more
    assert [type(e) for e in events] == [RingStart, CallerIdEvent, RingStart]
    cid = of(events, CallerIdEvent)[0]
    assert (cid.format, cid.number, cid.name, cid.datetime) == ("MODEM", "2015550123",
                                                                "JANE SMITH", "03211405")
    assert cid.checksum_ok and cid.error is None and cid.number_absent is None
    ring1, _, ring2 = events
    assert ring1.sample <= cid.sample < ring2.sample


def test_withheld_number_and_name(rig):
    fake, line = rig("cx93010", pace=False)
    fake.ring({"DATE": "0321", "TIME": "1405", "NMBR": "P", "NAME": "O"})
    events, _ = run(line, until=lambda ev: of(ev, CallerIdEvent))
    cid = of(events, CallerIdEvent)[0]
    assert cid.number is None and cid.number_absent == "P"
    assert cid.name is None and cid.name_absent == "O"
    assert cid.checksum_ok


def test_incomplete_caller_id_is_not_trusted(rig):
    fake, line = rig("usr5637", pace=False)
    fake.ring({"DATE": "0321", "TIME": "1405", "NAME": "JANE SMITH"})   # no NMBR line
    events, _ = run(line, until=lambda ev: of(ev, CallerIdEvent))
    cid = of(events, CallerIdEvent)[0]
    assert not cid.checksum_ok and "NMBR" in cid.error


def test_ring_reported_as_a_dle_event_on_hook(rig):
    fake, line = rig("cx93010")
    fake.event("R")
    events, _ = run(line, until=lambda ev: of(ev, RingStart))
    assert of(events, RingStart)


# ------------------------------------------------------------------ audio


def _digits(audio):
    rx = DtmfReceiver()
    return "".join(e.digit for e in rx.feed(audio) + rx.flush())


@pytest.mark.parametrize("fmt", ["ulaw", "linear8"])
@pytest.mark.parametrize("model", ["usr5637", "cx93010"])
def test_received_audio_decodes_to_int16(rig, model, fmt):
    fake, line = rig(model, fmt=fmt)
    answered(line)
    keys = dtmf_tx("159#", level_dbm0=-10)
    fake.play(keys)
    _, audio = run(line, frames=len(keys) // 160 + 20)
    assert _digits(audio) == "159#"
    # the samples are the far end's, through the codec: same level, in time order
    start = np.flatnonzero(np.abs(audio) > 200)[0]
    got = audio[start:start + 400].astype(float)
    ref = keys[np.flatnonzero(np.abs(keys) > 200)[0]:][:400].astype(float)
    assert np.corrcoef(got, ref)[0, 1] > 0.99


@pytest.mark.parametrize("fmt", ["ulaw", "linear8"])
def test_audio_full_of_dle_bytes_goes_out_intact(rig, fmt):
    fake, line = rig("cx93010", fmt=fmt)
    answered(line)
    dle_sample = modem_audio.decode(b"\x10", fmt)[0]          # the sample coded as 0x10
    assert modem_audio.encode(np.array([dle_sample], np.int16), fmt) == b"\x10"
    frame = np.full(160, dle_sample, np.int16)
    run(line, frames=30, write=lambda i: frame)
    deadline = time.monotonic() + 2
    while len(fake.received) < 30 * 160 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bytes(fake.received) == b"\x10" * (30 * 160)
    assert fake.raw_received.count(b"\x10\x10") >= 30 * 160


def test_incoming_dle_bytes_in_audio_are_unshielded(rig):
    fake, line = rig("cx93010", fmt="linear8")
    answered(line)
    dle_sample = modem_audio.decode(b"\x10", "linear8")[0]
    fake.play(np.full(800, dle_sample, np.int16))
    _, audio = run(line, frames=40)
    run_of_dle = audio == dle_sample
    assert run_of_dle.sum() == 800 and np.all(np.diff(np.flatnonzero(run_of_dle)) == 1)


# ------------------------------------------------------------------ DLE events


def test_dle_events_become_line_events(rig):
    fake, line = rig("cx93010")
    answered(line)
    for code in "bdsqcelLH5":
        fake.event(code)
    events, _ = run(line, until=lambda ev: of(ev, ParallelHandset), seconds=3)
    assert [e.tone for e in of(events, LineTone)] == ["busy", "dial", "silence", "silence",
                                                      "fax", "data"]
    assert [e.present for e in of(events, LoopCurrent)] == [False]
    assert len(of(events, PolarityReversal)) == 1
    assert of(events, ParallelHandset)[0].off_hook is True
    assert line.dtmf_reports == 1                      # counted, never turned into keys
    assert not [e for e in events if e.kind == "dtmf"]


def test_modem_leaving_the_data_state_by_itself_is_re_entered(rig):
    fake, line = rig("cx93010")
    answered(line)
    fake.data = None                       # the modem's inactivity timer ran out
    fake.raw(b"\x10\x03\r\nOK\r\n")
    run(line, until=lambda ev: fake.commands.count("AT+VTR") == 2 and line._streaming())
    assert fake.commands.count("AT+VTR") == 2 and fake.data == "duplex"


# ------------------------------------------------------------------ hook controls


def test_off_hook_flash_on_hook_as_the_modem_sees_them(rig):
    fake, line = rig("cx93010", flash_ms=600)
    answered(line)
    assert fake.hook_log == ["off"] and fake.commands[-2:] == ["AT+VLS=1", "AT+VTR"]
    asked = line.sample
    line.flash(300)
    events, _ = run(line, until=lambda ev: of(ev, FlashDone))
    done = of(events, FlashDone)[0]
    assert fake.flashes == [300]
    assert fake.commands[-3:] == ["ATS29=30", "ATD!;", "AT+VTR"]
    assert done.sample - asked >= 0.25 * line.rate        # the flash took its time on our clock
    assert line._streaming()
    line.on_hook()
    run(line, until=lambda ev: not line._script and line._step is None)
    assert fake.hook_log == ["off", "on"] and fake.data is None
    assert b"\x10^" in fake.raw_received                  # +VTR ended with <DLE>^


def test_flash_by_hook_where_the_profile_says_so(rig):
    fake, line = rig("usr5637")
    line.profile = dataclasses.replace(line.profile, flash="hook")
    answered(line)
    asked = line.sample
    line.flash(200)
    events, _ = run(line, until=lambda ev: of(ev, FlashDone))
    assert fake.hook_log == ["off", "on", "off"] and fake.flashes == []
    assert fake.commands[-3:] == ["AT+VLS=0", "AT+VLS=1", "AT+VRX"]
    assert of(events, FlashDone)[0].sample - asked >= 0.15 * line.rate


def test_half_duplex_switches_between_receive_and_transmit(rig):
    fake, line = rig("usr5637", fmt="ulaw")
    assert not line.capabilities.full_duplex
    answered(line)
    assert fake.commands[-1] == "AT+VRX" and "AT+VTR" not in fake.commands
    prompt = tone_tx([440], -10, [], 0.5)
    frames = [prompt[i:i + 160] for i in range(0, len(prompt), 160)]
    silence = np.zeros(160, np.int16)
    run(line, frames=len(frames) + 25, write=lambda i: frames[i] if i < len(frames) else silence)
    run(line, until=lambda ev: line._streaming())
    cmds = fake.commands
    assert cmds[-3:] == ["AT+VRX", "AT+VTX", "AT+VRX"]
    assert b"\x10!" in fake.raw_received and b"\x10\x03" in fake.raw_received
    sent = modem_audio.decode(bytes(fake.received), "ulaw")
    loud = sent[np.abs(sent) > 200]
    assert len(loud) >= 0.9 * np.sum(np.abs(prompt) > 200)   # the whole prompt went out
    # and listening again works
    fake.play(dtmf_tx("7"))
    _, audio = run(line, frames=30)
    assert _digits(audio) == "7"


# ------------------------------------------------------------------ faults and recovery


def test_modem_unplugged_mid_call(rig):
    fake, line = rig("cx93010")
    answered(line)
    commands_before = len(fake.commands)
    fake.unplug()
    events, _ = run(line, until=lambda ev: of(ev, LineFault), seconds=3)
    fault = of(events, LineFault)[0]
    assert "failed" in fault.reason or "stopped" in fault.reason
    assert not line.is_off_hook
    more, _ = run(line, seconds=0.6)                 # frames keep coming while it is gone
    assert len(more) == 0 or not of(more, LineRestored)
    fake.plug()                                      # a new pty under the same name
    more, _ = run(line, until=lambda ev: of(ev, LineRestored), seconds=5)
    assert of(more, LineRestored) and not of(more, LineFault)
    gaps = np.diff([t for t in line.reopen_attempts])
    assert len(gaps) >= 2 and all(b >= a * 1.5 for a, b in zip(gaps, gaps[1:]) if b < 0.39)
    assert fake.commands[:1] == ["ATZ"] and "AT+VCID=1" in fake.commands
    assert commands_before > 0
    fake.ring(CID)                                   # and the next call works
    events, _ = run(line, until=lambda ev: of(ev, CallerIdEvent))
    assert of(events, CallerIdEvent)[0].checksum_ok
    answered(line)


def test_modem_that_stops_answering(rig):
    fake, line = rig("usr5637", audio_timeout=0.3)
    answered(line)
    fake.hang()
    events, _ = run(line, until=lambda ev: of(ev, LineFault), seconds=3)
    assert "stopped sending audio" in of(events, LineFault)[0].reason
    run(line, seconds=0.4)
    fake.hang(False)
    events, _ = run(line, until=lambda ev: of(ev, LineRestored), seconds=5)
    assert of(events, LineRestored)


def test_on_hook_silence_of_a_dead_modem_is_noticed_by_the_keepalive(rig):
    fake, line = rig("cx93010", keepalive=0.1, command_timeout=0.2)
    fake.hang()
    events, _ = run(line, until=lambda ev: of(ev, LineFault), seconds=3)
    assert "did not answer AT" in of(events, LineFault)[0].reason


def test_missing_port_is_one_line(tmp_path):
    line = ModemLine(str(tmp_path / "ttyACM9"))
    with pytest.raises(LineError) as err:
        line.open()
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "ttyACM9") in message
    assert "does not exist" in message


def test_modem_silent_at_open_is_one_line(tmp_path):
    fake = FakeModem(tmp_path / "ttyACM0")
    fake.hang()
    line = ModemLine(str(fake.link), command_timeout=0.2)
    try:
        with pytest.raises(LineError, match="did not answer ATZ") as err:
            line.open()
        assert "\n" not in str(err.value)
    finally:
        line.close()
        fake.close()


# ------------------------------------------------------------------ pacing and config


def test_on_hook_frames_come_at_the_wall_clock_rate(rig):
    fake, line = rig("cx93010")
    line.read()
    start = time.monotonic()
    run(line, frames=25)
    assert 0.45 <= time.monotonic() - start <= 0.8


def test_from_config(tmp_path):
    line = make_line(Table({"backend": "modem", "modem": {
        "port": "/dev/ttyUSB3", "baud": 57600, "profile": "usr5637", "format": "linear8",
        "flash_ms": 300}}, "line"))
    assert isinstance(line, ModemLine)
    assert (line.port, line.baud, line.profile.key, line.fmt, line.flash_ms) == (
        "/dev/ttyUSB3", 57600, "usr5637", "linear8", 300.0)
    assert not line.capabilities.full_duplex
    for bad, key in [({"prot": "/dev/x"}, "line.modem.prot"),
                     ({"format": "alaw"}, "line.modem.format"),
                     ({"baud": 1234}, "line.modem.baud"),
                     ({"flash_ms": 5}, "line.modem.flash_ms"),
                     ({"profile": "zoom"}, "line.modem.profile")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            make_line(Table({"backend": "modem", "modem": bad}, "line"))


# ------------------------------------------------------------------ the pure parts


def test_stream_parser_any_split():
    """The same items however the bytes are cut: CONNECT and audio in one read, DLE at a cut."""
    wire = (b"\r\nRING\r\n\r\nNMBR = 5551234\r\n\r\nCONNECT\r\n" + b"\x01\x10\x10\x02\x10b"
            + b"\x03\x10\x1a\x04" + b"\x10X" + b"NMBR=99\r\n" + b"\x10." + b"\x10\x03"
            + b"\r\nOK\r\n")

    def parse(chunks):
        stream = v253.ModemStream()
        stream.arm_data()
        items = [i for c in chunks for i in stream.feed(c)]
        merged = []
        for item in items:
            if merged and item.kind == merged[-1].kind == "audio":
                merged[-1] = v253.Item("audio", merged[-1].data + item.data)
            else:
                merged.append(item)
        return [(i.kind, i.text or i.data) for i in merged]

    whole = parse([wire])
    assert whole == [("line", "RING"), ("line", "NMBR = 5551234"), ("line", "CONNECT"),
                     ("audio", b"\x01\x10\x02"), ("dle", "b"), ("audio", b"\x03\x10\x10\x04"),
                     ("packet", b"NMBR=99\r\n"), ("end", b""), ("line", "OK")]
    assert parse([wire[i:i + 1] for i in range(len(wire))]) == whole
    assert parse([wire[:41], wire[41:44], wire[44:]]) == whole


def test_shield_and_callerid_text():
    assert v253.shield(b"\x10a\x10\x10") == b"\x10\x10a\x10\x10\x10\x10"
    assert v253.callerid_field("NMBR = 5551234") == ("NMBR", "5551234")
    assert v253.callerid_field("NAME=O") == ("NAME", "O")
    assert v253.callerid_field("CONNECT") is None
    cid = v253.ModemCallerId()
    cid.add("MESG", build_mdmf("2015550123", "JANE SMITH", datetime="03211405").hex().upper(), 80)
    event = cid.finish()
    assert (event.format, event.number, event.name, event.checksum_ok) == (
        "MDMF", "2015550123", "JANE SMITH", True)


def test_ulaw_and_linear8_tables():
    pcm = np.array([0, 1000, -1000, 32767, -32768], np.int16)
    assert modem_audio.encode(pcm[:1], "ulaw") == b"\xff"
    assert modem_audio.encode(pcm[3:], "ulaw") == b"\x80\x00"
    assert list(modem_audio.decode(b"\x80\x00\xff\x7f", "ulaw")) == [32124, -32124, 0, 0]
    assert modem_audio.encode(pcm, "linear8") == bytes([128, 131, 124, 255, 0])
    x = (np.sin(np.arange(8000) * 0.05) * 20000).astype(np.int16)
    for fmt, tolerance in [("ulaw", 0.04), ("linear8", 0.02)]:
        back = modem_audio.decode(modem_audio.encode(x, fmt), fmt).astype(float)
        assert np.sqrt(np.mean((back - x) ** 2)) / 20000 < tolerance
