"""The `hat` line backend against fakes of libgpiod v2 and pyalsaaudio.

The fakes (tests/fake_gpiod.py, tests/fake_alsaaudio.py) behave as the real
APIs and the kernel do: debounced, kernel-stamped GPIO edges; ALSA capture
that blocks per period and overruns when read late; playback that underruns
when fed late. Both share one fake CLOCK_MONOTONIC, which moves only when the
fake codec blocks or the line sleeps, so every timing here is exact.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

import fake_alsaaudio
import fake_gpiod
from callgate.config import ConfigError, Table
from callgate.dsp.callerid import CallerIdReceiver, build_mdmf, callerid_tx
from callgate.dsp.dtmf import DtmfReceiver, dtmf_tx
from callgate.line import make_line
from callgate.line.hat.alsa import Decimator, Interpolator
from callgate.line.base import (FlashDone, LineError, LineFault, LineRestored, LoopCurrent,
                                PolarityReversal, RingStart, RingStop)
from callgate.line.hat import HatLine, find_board, load_board

REPO = Path(__file__).resolve().parents[1]
BOARD = REPO / "hw" / "xe0092-usb.toml"
DEVICE = "hw:CARD=Device,DEV=0"
RING, HOOK, CID, LED_RING, LED_CALL = 17, 27, 22, 5, 6
MS = 1_000_000   # ns


class FakeBench:
    """A Pi with the xe0092-usb board: fake GPIO chip, fake USB codec, one fake clock."""

    def __init__(self, rate: int = 48000, board=None, card_rates=None,
                 playback_channels: int | None = None) -> None:
        card_rates = card_rates or ((8000,) if rate == 8000 else (44100, 48000))
        self.clock = fake_alsaaudio.FakeClock()
        self.chip = fake_gpiod.pi_chip(self.clock)
        self.gpiod = fake_gpiod.make_module([self.chip])
        self.card = fake_alsaaudio.FakeSoundCard(self.clock, rates=card_rates)
        self.alsa = fake_alsaaudio.make_module({DEVICE: self.card})
        board = board or load_board(BOARD)
        audio = dataclasses.replace(board.audio, rate=rate, playback_channels=(
            playback_channels or board.audio.playback_channels))
        self.board = dataclasses.replace(board, audio=audio)
        self.rate = rate
        self.line = HatLine(self.board, gpiod=self.gpiod, alsaaudio=self.alsa,
                            chips=["/dev/gpiochip0"], now_ns=self.clock.now_ns,
                            sleep=self.clock.sleep)
        self.t0 = self.clock.now_ns()      # line sample 0 (capture starts at the first read)

    def ns(self, sample: float) -> int:
        return self.t0 + int(round(sample * 1e9 / 8000))

    def ring_burst(self, start_sample: int, ms: int = 2000, hz: float = 20.0) -> int:
        """Ringing voltage on the optocoupler: low half of each cycle. Returns the last edge."""
        period = int(1e9 / hz)
        t = self.ns(start_sample)
        end = t + ms * MS
        while t < end:
            self.chip.drive(RING, 0, t)
            self.chip.drive(RING, 1, t + period // 2)
            last = t + period // 2
            t += period
        return last

    def line_audio(self, signal8k: np.ndarray, at_sample: int) -> None:
        """Put 8 kHz line audio on the codec input, starting at line sample `at_sample`."""
        sig = signal8k if self.rate == 8000 else resample_poly(
            signal8k.astype(float), self.rate // 8000, 1)
        k = self.rate // 8000
        line = np.zeros(at_sample * k + len(sig), dtype=np.int16)
        line[at_sample * k:] = np.clip(np.rint(sig), -32768, 32767).astype(np.int16)
        self.card.line = line

    def run(self, samples: int):
        """Read frames until `samples` line samples have passed; audio and events."""
        audio, events = [], []
        while self.line.sample < samples:
            frame = self.line.read()
            audio.append(frame.samples)
            events += frame.events
        return np.concatenate(audio), events


def sample_of(ns_from_t0: int) -> int:
    return int(round(ns_from_t0 * 8000 / 1e9))


# --------------------------------------------------------------------- the pin map


def test_board_file_loads():
    board = load_board(BOARD)
    assert board.name == "xe0092-usb"
    assert board.pins["ring"].name == "GPIO17" and board.pins["ring"].active_low
    assert board.pins["hook"].name == "GPIO27" and not board.pins["hook"].active_low
    assert set(board.pins) == {"ring", "hook", "cid_enable", "led_ring", "led_call"}
    assert board.audio.rate == 48000 and board.audio.device == DEVICE
    assert board.ring.gap_ms == 200.0
    assert (REPO / "hw" / "xe0092-usb.md").is_file()
    assert "xe0092-usb" in (REPO / "hw" / "README.md").read_text()


@pytest.mark.parametrize("edit, key", [
    (('name = "GPIO27"              # header pin 13\nactive_low = false',
      'name = "GPIO27"              # header pin 13\nactive_low = "yes"'), "gpio.hook.active_low"),
    (("debounce_ms = 2.0", "debounse_ms = 2.0"), "gpio.ring.debounse_ms"),
    (('[gpio.ring]', '[gpio.rong]'), "gpio.rong"),
    (("rate = 48000", "rate = 44100"), "audio.rate"),
    (("gap_ms = 200.0", "gap_ms = 5.0"), "ring.gap_ms"),
    (('name = "GPIO27"', 'nome = "GPIO27"'), "gpio.hook.name"),
])
def test_bad_board_file_is_one_line_naming_the_key(tmp_path, edit, key):
    text = BOARD.read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as err:
        load_board(bad)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{bad}: {key}")


def test_board_file_not_toml(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("[gpio\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_board(bad)


def test_from_config_finds_board_and_overrides(tmp_path, monkeypatch):
    line = HatLine.from_config(Table({"board": "xe0092-usb", "rate": 8000,
                                      "device": "hw:1,0"}, "line.hat"))
    assert line.board.audio.rate == 8000 and line.board.audio.device == "hw:1,0"
    assert line.capabilities.paced and line.capabilities.onhook_audio
    assert not line.capabilities.loop_current
    # by path, and through $CALLGATE_HW from an installed package's point of view
    assert HatLine.from_config(Table({"board": str(BOARD)}, "line.hat")).board.name == "xe0092-usb"
    shutil.copy(BOARD, tmp_path / "myboard.toml")
    monkeypatch.setenv("CALLGATE_HW", str(tmp_path))
    assert find_board("myboard") == tmp_path / "myboard.toml"
    line = make_line(Table({"backend": "hat", "hat": {"board": "myboard"}}))
    assert isinstance(line, HatLine)
    assert "gpiod" not in sys.modules and "alsaaudio" not in sys.modules


@pytest.mark.parametrize("table, key", [
    ({"rate": 44100}, "line.hat.rate"),
    ({"bord": "x"}, "line.hat.bord"),
    ({"board": "no-such-board"}, "line.hat.board"),
    ({"device": 3}, "line.hat.device"),
    ({"period_ms": 20}, "line.hat.period_ms"),
])
def test_bad_line_hat_config_names_the_key(table, key):
    with pytest.raises(ConfigError) as err:
        HatLine.from_config(Table(table, "line.hat"))
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_board_with_loop_and_polarity_inputs(tmp_path):
    path = tmp_path / "lp.toml"
    path.write_text(BOARD.read_text() + (
        '\n[gpio.loop_current]\nname = "GPIO23"\nactive_low = true\ndebounce_ms = 5.0\n'
        '[gpio.polarity]\nname = "GPIO24"\nactive_low = true\ndebounce_ms = 5.0\n'))
    bench = FakeBench(rate=8000, board=load_board(path), playback_channels=1)
    line = bench.line
    assert line.capabilities.loop_current and line.capabilities.polarity
    line.open()
    bench.chip.drive(24, 0, bench.ns(2400))        # polarity reversal on hook (ETSI CID)
    _, events = bench.run(3200)
    assert [(type(e), e.sample) for e in events] == [(PolarityReversal, 2400)]
    line.off_hook()                                # at 3200; loop input settles 100 ms
    bench.chip.drive(23, 0, bench.ns(3300))        # loop current flows (ignored: settling)
    bench.chip.drive(23, 1, bench.ns(6400))        # drop (CPC) ...
    bench.chip.drive(23, 0, bench.ns(9600))        # ... for 400 ms
    _, events = bench.run(12000)
    loops = [(e.present, e.sample) for e in events if isinstance(e, LoopCurrent)]
    assert loops == [(False, 6400), (True, 9600)]
    line.close()


# --------------------------------------------------------------------- ring detect


@pytest.mark.parametrize("rate", [8000, 48000])
def test_ring_bursts_stamped_in_line_samples(rate):
    bench = FakeBench(rate=rate, playback_channels=1 if rate == 8000 else None)
    line = bench.line
    line.open()
    last1 = bench.ring_burst(4000)                 # 2 s burst from 0.5 s
    last2 = bench.ring_burst(4000 + 48000)         # next burst 6 s later (US cadence)
    _, events = bench.run(8000 * 9)
    rings = [e for e in events if isinstance(e, (RingStart, RingStop))]
    delay = line.audio.delay
    assert [type(e) for e in rings] == [RingStart, RingStop, RingStart, RingStop]
    assert rings[0].sample == 4000 + delay
    assert rings[1].sample == sample_of(last1 - bench.t0) + delay
    assert rings[2].sample == 52000 + delay
    assert rings[3].sample == sample_of(last2 - bench.t0) + delay
    # the burst ends 200 ms after the last pulse, not on every pulse
    assert rings[1].sample - rings[0].sample == pytest.approx(15800, abs=2)
    # LED followed the burst
    history = bench.chip.outputs[LED_RING]
    assert [v for _, v in history][:3] == [0, 1, 0]
    line.close()


def test_lone_spike_is_not_a_ring_and_ring_is_ignored_off_hook():
    bench = FakeBench(rate=8000, playback_channels=1)
    line = bench.line
    line.open()
    bench.chip.drive(RING, 0, bench.ns(800))       # one 30 ms click
    bench.chip.drive(RING, 1, bench.ns(1040))
    _, events = bench.run(8000)
    assert not [e for e in events if isinstance(e, (RingStart, RingStop))]
    line.off_hook()
    bench.ring_burst(9000)
    _, events = bench.run(8000 * 4)
    assert not [e for e in events if isinstance(e, (RingStart, RingStop))]


def test_answer_during_a_burst_ends_it():
    bench = FakeBench(rate=8000, playback_channels=1)
    line = bench.line
    line.open()
    bench.ring_burst(800, ms=2000)
    _, events = bench.run(8000)
    assert [type(e) for e in events] == [RingStart]
    line.off_hook()
    frame = line.read()
    assert [type(e) for e in frame.events] == [RingStop]
    assert frame.events[0].sample >= 8000 - 400


# --------------------------------------------------------------------- hook and flash


def test_hook_relay_and_callerid_path():
    bench = FakeBench()
    line = bench.line
    line.open()
    assert bench.chip.output(HOOK) == 0 and bench.chip.output(CID) == 0
    line.listen_callerid(True)
    assert bench.chip.output(CID) == 1                 # on hook: caller ID path on
    line.off_hook()
    assert line.is_off_hook
    assert bench.chip.output(HOOK) == 1 and bench.chip.output(LED_CALL) == 1
    assert bench.chip.output(CID) == 0                 # never across the loop off hook
    line.on_hook()
    assert bench.chip.output(HOOK) == 0 and bench.chip.output(LED_CALL) == 0
    assert bench.chip.output(CID) == 1                 # back for the next call
    line.listen_callerid(False)
    assert bench.chip.output(CID) == 0
    line.close()
    assert bench.chip.output(HOOK) == 0
    assert not bench.chip.requested                    # lines released
    line.close()                                       # twice is fine


@pytest.mark.parametrize("ms", [90.0, 100.0, 600.0])
def test_flash_releases_the_relay_for_the_asked_time(ms):
    bench = FakeBench()
    line = bench.line
    line.open()
    line.off_hook()
    bench.run(800)
    at = line.sample
    line.flash(ms)
    assert bench.chip.output(HOOK) == 0
    events = []
    while not any(isinstance(e, FlashDone) for e in events):
        events += line.read().events
        assert line.sample < at + 8000
    (released, v0), (closed, v1) = bench.chip.outputs[HOOK][-2:]
    assert (v0, v1) == (0, 1)
    assert closed - released == pytest.approx(ms * MS, abs=0.2 * MS)
    done = [e for e in events if isinstance(e, FlashDone)][0]
    # stamped on the line's clock (audio lags the codec by the resampler's delay),
    # plus the relay's operate time (10 ms)
    assert done.sample == at + line.audio.delay + int(ms * 8) + 80
    assert line.is_off_hook and bench.chip.output(HOOK) == 1


# --------------------------------------------------------------------- audio


def _digits(audio: np.ndarray) -> list:
    rx = DtmfReceiver()
    return rx.feed(audio) + rx.flush()


@pytest.mark.parametrize("rate", [8000, 48000])
def test_capture_dtmf_decodes(rate):
    bench = FakeBench(rate=rate, playback_channels=1 if rate == 8000 else None)
    bench.line_audio(dtmf_tx("159#", level_dbm0=-10), at_sample=1000)
    bench.line.open()
    audio, _ = bench.run(8000)
    assert audio.dtype == np.int16
    events = _digits(audio)
    assert "".join(e.digit for e in events) == "159#"
    assert abs(events[0].sample - 1000 - bench.line.audio.delay) < 120


@pytest.mark.parametrize("rate", [8000, 48000])
def test_onhook_callerid_burst_decodes(rate):
    bench = FakeBench(rate=rate, playback_channels=1 if rate == 8000 else None)
    message = build_mdmf(number="2015550123", name="JANE SMITH", datetime="11231000")
    bench.line_audio(callerid_tx(message), at_sample=4000)
    line = bench.line
    line.open()
    line.listen_callerid(True)
    audio, _ = bench.run(8000 * 2)
    rx = CallerIdReceiver()
    events = rx.feed(audio)
    assert len(events) == 1 and events[0].checksum_ok
    assert (events[0].number, events[0].name) == ("2015550123", "JANE SMITH")


@pytest.mark.parametrize("rate", [8000, 48000])
def test_playback_writes_reach_the_codec(rate):
    bench = FakeBench(rate=rate, playback_channels=1 if rate == 8000 else None)
    line = bench.line
    line.open()
    tone = dtmf_tx("42", level_dbm0=-10)
    tone = np.concatenate([tone, np.zeros(-len(tone) % 160, np.int16)])
    line.write(tone[:160])                   # on hook: nothing is sent
    line.read()
    assert not bench.card.played
    line.off_hook()
    for i in range(0, len(tone), 160):
        line.read()
        line.write(tone[i:i + 160])
    for _ in range(5):
        line.read()
        line.write(np.zeros(160, np.int16))
    played = bench.card.playback_signal()
    if rate != 8000:
        played = resample_poly(played.astype(float), 1, rate // 8000)
    assert "".join(e.digit for e in _digits(np.rint(played).astype(np.int16))) == "42"
    assert line.underruns == 0 and line.audio.dropped_tx == 0


def test_overrun_is_counted_and_the_clock_keeps_real_time():
    bench = FakeBench(rate=48000)
    line = bench.line
    bench.line_audio(dtmf_tx("7", level_dbm0=-10), at_sample=8000 + 2400 + 800)
    line.open()
    bench.run(8000)
    bench.clock.sleep(0.3)                 # the loop stalled: 300 ms > 80 ms of buffer
    frame = line.read()
    assert line.overruns == 1
    # the lost 300 ms come back as silence, followed by the first period after the gap
    assert len(frame.samples) == 2400 + 160 and not frame.samples[:2400].any()
    assert line.sample == 8000 + 2400 + 160
    audio, _ = bench.run(8000 * 2)
    events = _digits(audio)
    assert [e.digit for e in events] == ["7"]
    # the digit is where the line had it: the sample clock kept up with real time
    onset = events[0].sample + 8000 + 2400 + 160
    assert abs(onset - (8000 + 2400 + 800) - line.audio.delay) < 120
    last = bench.ring_burst(line.sample + 800)
    _, events = bench.run(line.sample + 8000 * 3)
    rings = [e for e in events if isinstance(e, (RingStart, RingStop))]
    assert [type(e) for e in rings] == [RingStart, RingStop]
    assert rings[1].sample == sample_of(last - bench.t0) + line.audio.delay
    assert line.overruns == 1


def test_underrun_is_counted_and_recovered():
    bench = FakeBench(rate=8000, playback_channels=1)
    line = bench.line
    line.open()
    line.off_hook()
    for _ in range(10):
        line.read()
        line.write(np.full(160, 1000, np.int16))
    assert line.underruns == 0
    bench.clock.sleep(0.5)                 # playback ran dry
    line.read()                            # (capture overran too)
    line.write(np.full(160, 2000, np.int16))
    assert line.underruns == 1
    for _ in range(10):
        line.read()
        line.write(np.full(160, 3000, np.int16))
    assert line.underruns == 1
    assert (bench.card.playback_signal() == 3000).sum() == 1600


def test_audio_device_lost_and_back_is_a_fault_not_a_crash():
    bench = FakeBench(rate=8000, playback_channels=1)
    line = bench.line
    line.open()
    bench.run(1600)
    bench.card.present = False
    frame = line.read()
    assert [type(e) for e in frame.events] == [LineFault]
    assert "audio device" in frame.events[0].reason
    bench.run(line.sample + 8000 // 2)
    bench.card.present = True
    _, events = bench.run(line.sample + 8000 * 2)
    assert [type(e) for e in events] == [LineRestored]
    assert len(line.read().samples) == 160


# --------------------------------------------------------------------- streaming resampler


def test_resampler_is_resample_poly_streamed():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(9600) * 1000
    d = Decimator(6)
    ys = np.concatenate([d(x[i:i + 960]) for i in range(0, len(x), 960)])
    yr = resample_poly(x, 1, 6)
    assert np.allclose(ys[d.delay + 20:1500], yr[20:1500 - d.delay], atol=1e-6)
    it = Interpolator(6)
    x8 = x[:1600]
    ys = np.concatenate([it(x8[i:i + 160]) for i in range(0, len(x8), 160)])
    yr = resample_poly(x8, 6, 1)
    assert np.allclose(ys[60 + 200:9000], yr[200:9000 - 60], atol=1e-6)


# --------------------------------------------------------------------- missing pieces


def test_missing_libraries_are_a_line_error(monkeypatch):
    board = load_board(BOARD)
    monkeypatch.setitem(sys.modules, "gpiod", None)
    with pytest.raises(LineError, match="gpiod") as err:
        HatLine(board).open()
    assert "\n" not in str(err.value)
    clock = fake_alsaaudio.FakeClock()
    gpiod = fake_gpiod.make_module([fake_gpiod.pi_chip(clock)])
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setitem(sys.modules, "alsaaudio", None)
    with pytest.raises(LineError, match="alsaaudio"):
        HatLine(board, chips=["/dev/gpiochip0"]).open()


def test_gpiod_v1_is_refused():
    import types
    v1 = types.ModuleType("gpiod")
    v1.Chip = object
    with pytest.raises(LineError, match="gpiod >= 2"):
        HatLine(load_board(BOARD), gpiod=v1, alsaaudio=object()).open()


def test_missing_devices_are_a_line_error():
    bench = FakeBench()
    nochip = HatLine(bench.board, gpiod=bench.gpiod, alsaaudio=bench.alsa, chips=[])
    with pytest.raises(LineError, match="GPIO17"):
        nochip.open()
    board = dataclasses.replace(bench.board, audio=dataclasses.replace(
        bench.board.audio, device="hw:CARD=Gone,DEV=0"))
    line = HatLine(board, gpiod=bench.gpiod, alsaaudio=bench.alsa, chips=["/dev/gpiochip0"])
    with pytest.raises(LineError, match=r"audio device hw:CARD=Gone,DEV=0: No such file"):
        line.open()
    assert not bench.chip.requested               # the GPIO lines were given back
    wrong = FakeBench(rate=8000, card_rates=(44100, 48000))   # a USB codec asked for 8 kHz
    with pytest.raises(LineError, match="runs at 44100 Hz, not 8000"):
        wrong.line.open()


def test_only_line_modules_touch_the_hardware_libraries():
    root = REPO / "firmware" / "callgate"
    pattern = re.compile(r"^\s*(import|from)\s+(gpiod|alsaaudio|RPi)\b", re.M)
    for path in root.rglob("*.py"):
        if pattern.search(path.read_text()):
            assert (root / "line") in path.parents, path
    for path in (root / "line" / "hat").glob("*.py"):                 # lazily, in open()
        assert not pattern.search(path.read_text()), path
