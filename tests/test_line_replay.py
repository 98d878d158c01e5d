"""The replay backend and the call recorder: sidecar format, frame timing, scrubbing."""

import json
import stat
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from callgate.config import ConfigError, Table
from callgate.dsp.callerid import (BELL202, CallerIdReceiver, DtmfCallerIdDecoder,
                                   build_mdmf, callerid_tx, dtmf_callerid_digits)
from callgate.dsp.events import CallerIdEvent
from callgate.dsp.dtmf import DtmfEvent, DtmfReceiver, dtmf_tx
from callgate.dsp.level import dbm0_to_rms
from callgate.line import make_line
from callgate.line.base import FlashDone, LineError, LineTone, LoopCurrent
from callgate.line.recording import RecordingLine
from callgate.line.replay import ReplayLine, parse_sidecar, sidecar_path
from callgate.wav import read_wav, write_wav
from external import ToolMissing, spandsp_dtmf_rx

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "sample-call.wav"
RATE = 8000


def noise(seconds, dbm0=-65.0, seed=1):
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, dbm0_to_rms(dbm0), int(seconds * RATE))).astype(np.int16)


def place(audio, at_s, burst):
    start = int(at_s * RATE)
    audio[start:start + len(burst)] = np.clip(audio[start:start + len(burst)].astype(np.int32)
                                              + burst, -32768, 32767)


def frames(line):
    out = []
    while (f := line.read()) is not None:
        out.append(f)
    return out


def decode_dtmf(samples, **kw):
    rx = DtmfReceiver(**kw)
    return rx.feed(np.asarray(samples, dtype=np.int16)) + rx.flush()


def decode_callerid(samples):
    rx = CallerIdReceiver()
    return [e for e in rx.feed(samples) + rx.flush() if e.checksum_ok]


# ---------------------------------------------------------------- the sidecar


FULL = {
    "version": 1, "rate": 8000, "note": "hand written",
    "capabilities": {"loop_current": True, "polarity": False},
    "events": [
        {"t": 1.0, "event": "ring_start"},
        {"t": 3.0, "event": "ring_stop"},
        {"sample": 40000, "event": "loop_current", "present": False},
        {"t": 5.6, "event": "loop_current", "present": True},
        {"t": 0.5, "event": "polarity_reversal"},
        {"t": 6.0, "event": "parallel_handset", "off_hook": True},
        {"t": 6.5, "event": "line_tone", "tone": "busy"},
        {"t": 6.6, "event": "line_fault", "reason": "modem gone"},
        {"t": 6.7, "event": "line_restored"},
        {"t": 2.0, "event": "callerid", "format": "MDMF", "number": "2015550123",
         "name": "JANE SMITH", "checksum_ok": True},
    ],
    "controls": [{"t": 4.0, "control": "off_hook"}, {"t": 4.5, "control": "flash", "ms": 600},
                 {"sample": 0, "control": "listen_callerid", "on": True}],
}


def test_sidecar_parses_every_event_kind_sorted_and_exact():
    car = parse_sidecar(FULL, "x.events.json", length=8 * RATE)
    kinds = [(e.sample, e.kind) for e in car.events]
    assert kinds == sorted(kinds, key=lambda k: k[0])
    assert kinds[0] == (4000, "polarity_reversal") and (8000, "ring_start") in kinds
    loop = [e for e in car.events if isinstance(e, LoopCurrent)]
    assert [(e.sample, e.present) for e in loop] == [(40000, False), (44800, True)]
    cid = [e for e in car.events if e.kind == "callerid"][0]
    assert (cid.number, cid.name, cid.checksum_ok) == ("2015550123", "JANE SMITH", True)
    assert [(c.sample, c.control) for c in car.controls] == [
        (0, "listen_callerid"), (32000, "off_hook"), (36000, "flash")]
    assert car.controls[2].ms == 600.0 and car.capabilities == {"loop_current": True,
                                                                "polarity": False}


def test_sidecar_samples_at_another_rate_are_converted():
    car = parse_sidecar({"rate": 44100, "events": [{"sample": 44100, "event": "ring_start"},
                                                   {"sample": 22050, "event": "ring_stop"}]})
    assert [e.sample for e in car.events] == [4000, 8000]


BAD = [
    ([], "expected a JSON object"),
    ({"evnets": []}, "evnets: unknown key"),
    ({"version": 2}, "version: 2 is not supported"),
    ({"rate": 0}, "rate: expected a positive integer"),
    ({"capabilities": {"loop": True}}, "capabilities.loop: unknown"),
    ({"capabilities": {"polarity": "yes"}}, "capabilities.polarity: expected true or false"),
    ({"events": {}}, "events: expected a list"),
    ({"events": [{"t": 1, "event": "ring_start"}, {"t": 1, "event": "ring"}]},
     "events[1]: unknown event 'ring'"),
    ({"events": [{"event": "ring_start"}]}, "events[0]: needs exactly one of 't'"),
    ({"events": [{"t": 1, "sample": 8000, "event": "ring_start"}]}, "events[0]: needs exactly one"),
    ({"events": [{"t": -1, "event": "ring_start"}]}, "events[0]: t must be seconds >= 0"),
    ({"events": [{"t": "1", "event": "ring_start"}]}, "events[0]: t must be seconds"),
    ({"events": [{"sample": 1.5, "event": "ring_start"}]}, "events[0]: sample must be an integer"),
    ({"events": [{"t": 11, "event": "ring_stop"}]}, "events[0]: at 11.000 s, after the end"),
    ({"events": [{"t": 1, "event": "loop_current"}]}, "events[0]: loop_current needs 'present'"),
    ({"events": [{"t": 1, "event": "loop_current", "present": 0}]},
     "events[0]: present has the wrong type"),
    ({"events": [{"t": 1, "event": "ring_start", "present": True}]},
     "events[0]: unknown key 'present' for ring_start"),
    ({"events": [{"t": 1, "event": "line_tone", "tone": "Busy Tone"}]},
     "events[0]: tone 'Busy Tone' is not a tone name"),
    ({"events": [{"t": 1, "event": "line_tone"}]}, "events[0]: line_tone needs 'tone'"),
    ({"events": [{"t": 1, "event": "dtmf", "digit": "5"}]},
     "events[0]: 'dtmf' is not allowed: keyed digits are never stored"),
    ({"events": [{"t": 1, "event": "flash_done"}]}, "events[0]: 'flash_done' is not allowed"),
    ({"events": ["ring_start"]}, "events[0]: expected an object"),
    ({"controls": [{"t": 1, "control": "hangup"}]}, "controls[0]: unknown control 'hangup'"),
    ({"controls": [{"t": 1, "control": "flash"}]}, "controls[0]: flash needs 'ms'"),
    ({"controls": [{"t": 1, "control": "off_hook", "ms": 5}]},
     "controls[0]: unknown key 'ms' for off_hook"),
    ({"controls": [{"t": 1, "control": "listen_callerid"}]}, "controls[0]: listen_callerid needs"),
]


@pytest.mark.parametrize("data, message", BAD, ids=[m for _, m in BAD])
def test_sidecar_errors_are_one_line_naming_the_entry(data, message):
    with pytest.raises(LineError) as err:
        parse_sidecar(data, "call.events.json", length=10 * RATE)
    text = str(err.value)
    assert text.startswith("call.events.json: ") and message in text
    assert "\n" not in text


def test_sidecar_file_errors(tmp_path):
    wav = tmp_path / "call.wav"
    write_wav(wav, noise(1.0))
    sidecar_path(wav).write_text("{\"events\": [\n{\"t\": 1,}]}")
    with pytest.raises(LineError, match=r"call.events.json: not valid JSON \(line 2"):
        ReplayLine(wav)
    with pytest.raises(LineError, match="nothere.json: no such sidecar file"):
        ReplayLine(wav, tmp_path / "nothere.json")
    sidecar_path(wav).write_text(json.dumps({"events": [{"t": 2.0, "event": "ring_start"}]}))
    with pytest.raises(LineError, match=r"events\[0\]: at 2.000 s, after the end of the "
                                        r"recording \(1.000 s\)"):
        ReplayLine(wav)


# ---------------------------------------------------------------- playing it


def test_events_land_in_their_frame_with_their_exact_sample(tmp_path):
    audio = noise(2.0)
    samples = [0, 159, 160, 161, 4321, 8000, len(audio) - 1]
    car = {"events": [{"sample": s, "event": "ring_start"} for s in samples]
           + [{"t": 1.2345, "event": "polarity_reversal"}]}
    line = ReplayLine(audio, car)
    seen = []
    for f in frames(line):
        assert len(f.samples) == 160
        for e in f.events:
            assert f.start <= e.sample < f.end
            seen.append((e.sample, e.kind))
    assert seen == sorted([(s, "ring_start") for s in samples]
                          + [(round(1.2345 * RATE), "polarity_reversal")])


def test_audio_is_the_recording_frame_by_frame_and_ends_with_none():
    audio = noise(1.0, dbm0=-20)[:8000 - 37]            # not a whole number of frames
    line = ReplayLine(audio)
    got = frames(line)
    assert [f.start for f in got] == list(range(0, 8000, 160))
    joined = np.concatenate([f.samples for f in got])
    assert np.array_equal(joined[:len(audio)], audio) and not joined[len(audio):].any()
    assert line.read() is None and line.read() is None
    assert line.sample == 8000
    assert line.capabilities.onhook_audio and not line.capabilities.paced


def test_resampled_recording_and_sidecar_in_its_own_samples(tmp_path):
    rate = 44100
    audio8 = noise(3.0, dbm0=-60)
    place(audio8, 1.0, dtmf_tx("5", level_dbm0=-10, on_ms=80, off_ms=0))
    t = np.arange(int(3.0 * rate)) / rate
    # the same call at 44.1 kHz, float32, stereo (first channel is the line)
    hi = np.interp(t, np.arange(len(audio8)) / RATE, audio8.astype(np.float64)) / 32768.0
    wavfile.write(tmp_path / "hifi.wav", rate, np.stack([hi, np.zeros_like(hi)], 1)
                  .astype(np.float32))
    (tmp_path / "hifi.events.json").write_text(json.dumps(
        {"rate": rate, "events": [{"sample": 2 * rate + 441, "event": "ring_start"}]}))
    line = ReplayLine(tmp_path / "hifi.wav")
    got = frames(line)
    assert abs(len(got) * 160 - 3 * RATE) < 160
    ring = [(f.start, e.sample) for f in got for e in f.events]
    assert ring == [(16000, 16080)]
    digits = decode_dtmf(np.concatenate([f.samples for f in got]))
    assert [d.digit for d in digits] == ["5"] and abs(digits[0].sample - RATE) < 80


def test_writes_and_controls_are_kept_with_their_samples():
    line = ReplayLine(noise(2.0))
    line.read()
    line.write(np.full(160, 7, np.int16))              # on hook: not sent
    line.off_hook()
    assert line.is_off_hook
    for k in range(3):
        line.read()
        line.write(np.full(160, k + 1, np.int16))
    line.flash(250)                                     # 2000 samples on hook
    flash_at = line.sample
    done = []
    while not done:
        f = line.read()
        if not line.is_off_hook:
            line.write(np.full(160, 99, np.int16))      # during the flash: not sent
        done = [e for e in f.events if isinstance(e, FlashDone)]
    assert done[0].sample == flash_at + 2000 and f.start <= done[0].sample < f.end
    assert line.is_off_hook
    line.write(np.arange(1000, 1160, dtype=np.int16))
    line.listen_callerid(True)
    line.on_hook()
    sent = line.sent
    assert sent.dtype == np.int16 and len(sent) == 4 * 160
    assert list(sent[::160]) == [1, 2, 3, 1000] and 99 not in sent and 7 not in sent
    assert [(c.control, c.sample) for c in line.controls] == [
        ("off_hook", 160), ("flash", 640), ("listen_callerid", f.end), ("on_hook", f.end)]
    assert line.controls[1].ms == 250.0 and line.controls[2].on is True
    assert [w[0] for w in line.writes] == [320, 480, 640, f.end]


def test_from_config_and_make_line(tmp_path):
    wav = tmp_path / "call.wav"
    write_wav(wav, noise(1.0))
    events = tmp_path / "elsewhere.json"
    events.write_text(json.dumps({"events": [{"t": 0.5, "event": "ring_start"}]}))
    line = make_line(Table({"backend": "replay", "replay": {"path": str(wav),
                                                            "events": str(events)}}, "line"))
    assert isinstance(line, ReplayLine)
    assert [e.sample for f in frames(line) for e in f.events] == [4000]
    with pytest.raises(ConfigError, match="line.replay.path: missing"):
        make_line(Table({"backend": "replay"}, "line"))
    with pytest.raises(ConfigError, match="line.replay.events: expected a string"):
        ReplayLine.from_config(Table({"path": str(wav), "events": 5}, "line.replay"))


def test_bad_recordings_are_one_line_errors(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    for path, message in [(tmp_path / "missing.wav", "missing.wav: no such file"),
                          (text, "notes.wav: not a readable WAV file"),
                          (tmp_path, "is a directory")]:
        with pytest.raises(LineError, match=message) as err:
            ReplayLine.from_config(Table({"path": str(path)}, "line.replay"))
        assert "\n" not in str(err.value)


def test_shipped_sample_call_replays_with_caller_id_through_the_line_audio():
    line = ReplayLine(SAMPLE)
    cid, dtmf = CallerIdReceiver(), DtmfReceiver()
    heard, digits = [], []
    for f in frames(line):
        heard += cid.feed(f.samples)
        digits += dtmf.feed(f.samples)
    heard += cid.flush()
    digits += dtmf.flush()
    assert [(e.format, e.number, e.name, e.datetime, e.checksum_ok) for e in heard] == [
        ("MDMF", "2015550123", "JANE SMITH", "11231000", True)]
    assert abs(heard[0].sample - 2.5 * RATE) < 0.03 * RATE
    assert "".join(d.digit for d in digits) == "4271#"


# ---------------------------------------------------------------- the recorder


NUMBER, NAME, SECRET = "2015550123", "JANE SMITH", "9876#"


def fake_field_call():
    """A line as the field would give it: idle, ring, FSK caller ID, ring, answer, keys.

    Caller ID at 4.5 s between the rings (GR-30), we answer at 8.5 s, the
    caller keys SECRET from 9.5 s, and hangs up (loop drop) at 12 s.
    """
    audio = noise(20.0)
    place(audio, 4.5, callerid_tx(build_mdmf(number=NUMBER, name=NAME, datetime="11231000"),
                                  BELL202, level_dbm0=-13.5))
    place(audio, 9.5, dtmf_tx(SECRET, level_dbm0=-9.0, on_ms=90, off_ms=110))
    events = [{"t": 2.0, "event": "ring_start"}, {"t": 4.0, "event": "ring_stop"},
              {"t": 6.0, "event": "ring_start"}, {"t": 8.0, "event": "ring_stop"},
              {"t": 12.0, "event": "loop_current", "present": False},
              {"t": 12.6, "event": "loop_current", "present": True}]
    return audio, {"events": events}


def run(line, actions):
    """Read the line to its end, doing `actions` {seconds: method name} on the way."""
    todo = sorted(actions.items())
    while line.read() is not None:
        while todo and line.sample >= todo[0][0] * RATE:
            getattr(line, todo.pop(0)[1])()
    line.close()


def test_recorded_call_replays_without_digits_but_with_caller_id_and_rings(tmp_path):
    audio, car = fake_field_call()
    source = ReplayLine(audio, car)
    assert "".join(d.digit for d in decode_dtmf(audio)) == SECRET   # the keys are there
    rec = RecordingLine(source, tmp_path / "rec")
    assert rec.capabilities == source.capabilities
    run(rec, {8.5: "off_hook", 13.0: "on_hook"})

    directory = tmp_path / "rec"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == ["call-0001.events.json",
                                                           "call-0001.wav"]
    for p in directory.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert rec.files == [directory / "call-0001.wav"] and rec.scrubbed == len(SECRET)

    text = (directory / "call-0001.events.json").read_text()
    assert "dtmf" not in text and "digit" not in text and "9876" not in text

    # the recording starts 1 s before the first ring (pre-roll) and runs to the line's end
    replay = ReplayLine(directory / "call-0001.wav")
    offset = 1 * RATE
    recorded = replay.audio
    assert len(recorded) == len(audio) - offset
    got = [(f.start + offset, e) for f in frames(replay) for e in f.events]
    assert [(s, e.kind, getattr(e, "present", None)) for s, e in got] == [
        (e.sample, e.kind, getattr(e, "present", None)) for e in source.sidecar.events]
    assert [(c.control, c.sample + offset) for c in replay.recorded_controls] == [
        ("off_hook", int(8.5 * RATE)), ("on_hook", int(13.0 * RATE))]
    assert replay.capabilities.loop_current

    # no digit decodable: not by our receiver, not by a more eager one, not by libspandsp
    assert decode_dtmf(recorded) == []
    assert decode_dtmf(recorded, onset_windows=1, min_level_dbm0=-45) == []
    try:
        assert spandsp_dtmf_rx(recorded) == ""
        assert spandsp_dtmf_rx(audio) == SECRET
    except ToolMissing:
        pass
    # ... and nothing else was touched: caller ID and the audio outside the keys are intact
    cids = decode_callerid(recorded)
    assert [(c.number, c.name) for c in cids] == [(NUMBER, NAME)]
    assert abs(cids[0].sample + offset - 4.5 * RATE) < 0.05 * RATE
    keys = slice(int(9.5 * RATE) - offset - 400, int(10.5 * RATE) - offset + 400)
    changed = np.flatnonzero(recorded != audio[offset:])
    assert changed.min() >= keys.start and changed.max() < keys.stop
    assert np.array_equal(recorded[:keys.start], audio[offset:offset + keys.start])


def test_held_key_and_dropout_are_scrubbed_whole(tmp_path):
    audio = noise(14.0)
    held = dtmf_tx("5", level_dbm0=-6, on_ms=3000, off_ms=0)
    held[8000:8000 + 120] = 0                       # a 15 ms drop-out in a held key
    place(audio, 3.0, held)
    source = ReplayLine(audio, {"events": [{"t": 1.5, "event": "ring_start"}]})
    rec = RecordingLine(source, tmp_path)
    run(rec, {2.0: "off_hook", 7.0: "on_hook"})
    recorded = read_wav(rec.files[0])
    assert decode_dtmf(recorded, onset_windows=1, min_level_dbm0=-45) == []
    # the whole key, drop-out included, is gone, with the margin either side
    start = int(1.5 * RATE) - RATE               # pre-roll: ring at 1.5 s minus 1 s
    key = slice(int(3.0 * RATE) - start, int(6.0 * RATE) - start)
    assert np.abs(recorded[key]).max() < 100
    assert rec.scrubbed == 1


def test_dtmf_caller_id_before_answer_is_kept(tmp_path):
    """On hook before the first answer is where DTMF caller ID lives; it stays."""
    audio = noise(16.0)
    place(audio, 1.2, dtmf_tx(dtmf_callerid_digits(NUMBER), level_dbm0=-9, on_ms=70, off_ms=70))
    place(audio, 8.0, dtmf_tx("42", level_dbm0=-9, on_ms=90, off_ms=110))
    car = {"events": [{"t": 1.0, "event": "polarity_reversal"},
                      {"t": 4.0, "event": "ring_start"}, {"t": 5.0, "event": "ring_stop"}]}
    rec = RecordingLine(ReplayLine(audio, car), tmp_path)
    run(rec, {6.0: "off_hook", 9.0: "on_hook"})
    recorded = read_wav(rec.files[0])
    digits = decode_dtmf(recorded)
    cid = DtmfCallerIdDecoder().feed(digits, now=recorded.size)
    assert [(c.format, c.number) for c in cid] == [("DTMF", NUMBER)]
    assert "".join(d.digit for d in digits) == dtmf_callerid_digits(NUMBER)   # no "42"


def test_parallel_handset_digits_are_scrubbed_even_on_hook(tmp_path):
    audio = noise(14.0)
    place(audio, 3.0, dtmf_tx("1234", level_dbm0=-9, on_ms=90, off_ms=110))
    car = {"events": [{"t": 2.0, "event": "parallel_handset", "off_hook": True},
                      {"t": 5.0, "event": "parallel_handset", "off_hook": False}]}
    rec = RecordingLine(ReplayLine(audio, car), tmp_path)
    run(rec, {})
    assert decode_dtmf(read_wav(rec.files[0])) == []
    assert rec.scrubbed == 4


def test_one_file_pair_per_call(tmp_path):
    audio = noise(40.0)
    car = {"events": [{"t": 2.0, "event": "ring_start"}, {"t": 4.0, "event": "ring_stop"},
                      {"t": 22.0, "event": "ring_start"}, {"t": 24.0, "event": "ring_stop"}]}
    rec = RecordingLine(ReplayLine(audio, car), tmp_path)
    run(rec, {5.0: "off_hook", 6.0: "on_hook"})
    assert [p.name for p in rec.files] == ["call-0001.wav", "call-0002.wav"]
    first, second = (ReplayLine(p) for p in rec.files)
    # the first ends 8 s after the last sign of life (on hook at 6 s), give or take the holdback
    assert abs(len(first.audio) / RATE - (6.0 + 8.0 - 1.0)) < 0.1
    assert [e.sample for e in second.sidecar.events] == [RATE, 3 * RATE]
    assert not second.recorded_controls


def test_idle_line_records_nothing_and_keeps_only_the_preroll(tmp_path):
    rec = RecordingLine(ReplayLine(noise(10.0)), tmp_path)
    while rec.read() is not None:
        assert sum(len(s) for _, s in rec._pending) <= RATE + 160
    rec.close()
    assert rec.files == [] and list(tmp_path.iterdir()) == []


def test_recorder_passes_everything_through(tmp_path):
    inner = ReplayLine(noise(2.0), {"events": [{"t": 0.1, "event": "ring_start"}]})
    rec = RecordingLine(inner, tmp_path)
    f = rec.read()
    assert rec.sample == inner.sample == 160
    rec.off_hook()
    assert inner.is_off_hook and rec.is_off_hook
    rec.write(np.ones(160, np.int16))
    rec.flash(100)
    rec.listen_callerid(False)
    assert [c.control for c in inner.controls] == ["off_hook", "flash", "listen_callerid"]
    assert np.array_equal(inner.sent, np.ones(160, np.int16))
    assert f.start == 0 and rec.frame_samples == 160
    rec.close()
    assert not inner.is_off_hook and len(rec.files) == 1


def test_recorder_config(tmp_path):
    inner = ReplayLine(noise(1.0))
    assert RecordingLine.from_config(inner, Table({}, "line.record")) is inner
    assert RecordingLine.from_config(inner, Table({"enabled": False, "dir": "x"})) is inner
    rec = RecordingLine.from_config(inner, Table({"enabled": True, "dir": str(tmp_path / "r")}))
    assert isinstance(rec, RecordingLine) and rec.directory == tmp_path / "r"
    with pytest.raises(ConfigError, match="line.record.enabled: expected true or false"):
        RecordingLine.from_config(inner, Table({"enabled": "yes"}, "line.record"))
    with pytest.raises(ConfigError, match="line.record.margin_ms: 5.0 is outside"):
        RecordingLine.from_config(inner, Table({"enabled": True, "dir": str(tmp_path),
                                                "margin_ms": 5}, "line.record"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LineError, match="cannot use as the recording directory"):
        RecordingLine(inner, blocker / "sub")


def test_recording_of_the_shipped_fixture_keeps_caller_id_and_drops_the_keys(tmp_path):
    source = ReplayLine(SAMPLE)
    rec = RecordingLine(source, tmp_path, seed=3)
    # the fixture has no sidecar (no ring events): answering early starts the recording,
    # with the pre-roll from the start; the caller ID at 2.5 s is then on the line
    run(rec, {1.0: "off_hook"})
    (wav,) = rec.files
    replay = ReplayLine(wav)
    recorded = np.concatenate([f.samples for f in frames(replay)])
    assert decode_dtmf(recorded) == []
    cids = decode_callerid(recorded)
    assert [(c.number, c.name, c.datetime) for c in cids] == [(NUMBER, NAME, "11231000")]
    assert rec.scrubbed == 5


class HardwareReportsLine(ReplayLine):
    """A replay that also reports what a modem decodes itself: caller ID, tones, keys."""

    def read(self):
        f = super().read()
        if f is not None and f.start == 2 * RATE:
            f.events += [CallerIdEvent(f.start, "MODEM", NUMBER, NAME, checksum_ok=True,
                                       raw=b"NMBR=" + NUMBER.encode()),
                         LineTone(f.start + 10, tone="data"),
                         DtmfEvent(f.start + 20, "7")]
        return f


def test_hardware_events_round_trip_but_reported_keys_do_not(tmp_path):
    rec = RecordingLine(HardwareReportsLine(noise(4.0)), tmp_path)
    run(rec, {})
    text = rec.files[0].with_suffix(".events.json").read_text()
    assert "dtmf" not in text and "NMBR" not in text
    replay = ReplayLine(rec.files[0])
    got = [e for f in frames(replay) for e in f.events]
    assert [(e.kind, e.sample) for e in got] == [("callerid", RATE), ("line_tone", RATE + 10)]
    assert (got[0].format, got[0].number, got[0].name, got[0].checksum_ok) == (
        "MODEM", NUMBER, NAME, True)
    assert got[1].tone == "data"
