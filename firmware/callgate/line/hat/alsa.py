"""The HAT's audio through ALSA (pyalsaaudio): capture and playback at 8 kHz.

The codec runs at 8 kHz with 20 ms periods where it can, or at a multiple of
8 kHz (48 kHz on most USB adapters and I2S codecs) and is resampled here with
the same anti-alias filter scipy.signal.resample_poly designs, run as a
streaming FIR whose state carries across periods, so frame boundaries are
seamless.

pyalsaaudio's contract, which this module relies on: PCM.read() blocks for
one period and returns (frames, bytes), or (-EPIPE, b"") after an overrun
(the next read prepares the stream again); PCM.write() returns the frames it
took (0 when a non-blocking buffer is full), prepares a stream left in XRUN
itself, and raises ALSAAudioError when the device fails. Overruns and
underruns are counted, never raised.

This module never imports alsaaudio itself: the caller passes the module in.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import numpy as np
from scipy.signal import firwin, lfilter

from ...dsp import RATE
from ..base import LineError

XRUN_STATE = 4  # SND_PCM_STATE_XRUN, for pyalsaaudio builds without PCM_STATE_XRUN


@dataclass(frozen=True)
class AudioSpec:
    """The codec as hw/<board>.toml describes it (overridable from [line.hat])."""

    device: str = "default"          # ALSA PCM name, e.g. "hw:CARD=Device,DEV=0"
    rate: int = RATE                 # codec rate: 8000 or a multiple of it
    period_ms: int = 20
    periods: int = 4                 # ALSA buffer = periods x period
    capture_channels: int = 1
    capture_channel: int = 0         # which channel carries the line
    playback_channels: int = 1
    rx_gain_db: float = 0.0          # calibration: codec level -> dBm0 on the line
    tx_gain_db: float = 0.0


def _filter(factor: int) -> np.ndarray:
    if factor == 1:
        return np.ones(1)
    # resample_poly's default design: 2*10*factor+1 taps, Kaiser beta 5, cutoff at
    # the lower Nyquist; gain `factor` so interpolation keeps the level.
    return firwin(2 * 10 * factor + 1, 1.0 / factor, window=("kaiser", 5.0)) * factor


class Decimator:
    """Streaming rate / factor -> 8 kHz: FIR low-pass with carried state, keep every factor-th."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.taps = _filter(factor) / factor
        self.delay = (len(self.taps) - 1) // 2 // factor   # output samples of group delay
        self._zi = np.zeros(len(self.taps) - 1)
        self._phase = 0          # index in the next block of the next kept sample

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return x.astype(np.float64)
        y, self._zi = lfilter(self.taps, 1.0, x.astype(np.float64), zi=self._zi)
        out = y[self._phase::self.factor]
        self._phase = (self._phase - len(x)) % self.factor
        return out

    def reset(self) -> None:
        self._zi[:] = 0.0
        self._phase = 0


class Interpolator:
    """Streaming 8 kHz -> 8 kHz x factor: polyphase FIR, one sub-filter per output phase."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        taps = _filter(factor)
        self.phases = [taps[p::factor] for p in range(factor)]
        self._zi = [np.zeros(len(h) - 1) for h in self.phases]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return x.astype(np.float64)
        x = x.astype(np.float64)
        out = np.empty(len(x) * self.factor)
        for p, h in enumerate(self.phases):
            out[p::self.factor], self._zi[p] = lfilter(h, 1.0, x, zi=self._zi[p])
        return out

    def reset(self) -> None:
        for zi in self._zi:
            zi[:] = 0.0


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


class AlsaAudio:
    """Capture and playback PCMs of one codec, in 8 kHz int16 frames."""

    def __init__(self, alsaaudio, spec: AudioSpec, frame_samples: int) -> None:
        if spec.rate % RATE:
            raise LineError(f"audio rate {spec.rate} is not a multiple of {RATE}")
        self.alsa = alsaaudio
        self.spec = spec
        self.factor = spec.rate // RATE
        self.frame_samples = frame_samples
        self.period = frame_samples * self.factor           # device frames per line frame
        self.rx_gain = 10.0 ** (spec.rx_gain_db / 20.0)
        self.tx_gain = 10.0 ** (spec.tx_gain_db / 20.0)
        self.decimate = Decimator(self.factor)
        self.interpolate = Interpolator(self.factor)
        self.capture = None
        self.playback = None
        self.overruns = 0
        self.underruns = 0
        self.dropped_tx = 0      # 8 kHz samples the playback buffer had no room for
        self._pending = b""      # playback bytes a non-blocking write did not take
        self._primed = False     # playback started with a cushion of silence

    @property
    def delay(self) -> int:
        """Line samples by which captured audio lags the codec (resampling filter)."""
        return self.decimate.delay

    # ------------------------------------------------------------ lifecycle
    def _pcm(self, kind, mode, channels: int):
        a = self.alsa
        pcm = a.PCM(type=kind, mode=mode, device=self.spec.device, rate=self.spec.rate,
                    channels=channels, format=a.PCM_FORMAT_S16_LE, periodsize=self.period,
                    periods=self.spec.periods)
        info = pcm.info() if hasattr(pcm, "info") else {}
        rate = info.get("rate", self.spec.rate)
        if rate != self.spec.rate:
            pcm.close()
            raise LineError(f"audio device {self.spec.device} runs at {rate} Hz, not "
                            f"{self.spec.rate} Hz; set rate in the board file or [line.hat]")
        return pcm

    def open(self) -> None:
        a = self.alsa
        try:
            self.capture = self._pcm(a.PCM_CAPTURE, a.PCM_NORMAL, self.spec.capture_channels)
            self.playback = self._pcm(a.PCM_PLAYBACK, a.PCM_NONBLOCK, self.spec.playback_channels)
        except a.ALSAAudioError as err:
            self.close()
            raise LineError(f"audio device {self.spec.device}: {_first_line(err)}") from None
        self.decimate.reset()
        self.interpolate.reset()
        self._pending = b""
        self._primed = False

    def close(self) -> None:
        for pcm in (self.capture, self.playback):
            if pcm is not None:
                try:
                    pcm.close()
                except Exception:   # a device already gone closes as well as it can
                    pass
        self.capture = self.playback = None

    # ------------------------------------------------------------ audio
    def read(self) -> np.ndarray | None:
        """One line frame (blocks for one period); None if an overrun left no data.

        Every overrun adds one to `overruns`; the caller compares it to learn of a gap.
        Raises ALSAAudioError when the device itself fails (unplugged).
        """
        if self._is_xrun(self.capture):
            # overran while we were away: read() prepares and restarts the stream itself,
            # and what it returns is the first period after the gap
            self.overruns += 1
        length, data = self.capture.read()
        if length < 0:
            if length != -errno.EPIPE:
                raise self.alsa.ALSAAudioError(f"capture failed: {errno.errorcode.get(-length)}")
            self.overruns += 1
            return None
        if length == 0:
            return None
        x = np.frombuffer(data, dtype="<i2", count=length * self.spec.capture_channels)
        if self.spec.capture_channels > 1:
            x = x.reshape(-1, self.spec.capture_channels)[:, self.spec.capture_channel]
        y = self.decimate(x)
        if self.rx_gain != 1.0:
            y = y * self.rx_gain
        return _to_int16(y)

    def write(self, samples: np.ndarray) -> None:
        """Queue one frame (int16, 8 kHz) for playback, without blocking."""
        y = self.interpolate(np.asarray(samples))
        if self.tx_gain != 1.0:
            y = y * self.tx_gain
        y = _to_int16(y)
        if self.spec.playback_channels > 1:
            y = np.repeat(y[:, None], self.spec.playback_channels, axis=1)
        data = self._pending + y.astype("<i2").tobytes()
        frame_bytes = 2 * self.spec.playback_channels
        if self._is_xrun(self.playback):
            self.underruns += 1          # write() prepares the stream again itself
            self._primed = False
        if not self._primed:
            # start (or restart) half a buffer ahead, so one late frame is not an underrun
            cushion = max(1, self.spec.periods // 2) * self.period * frame_bytes
            data = bytes(cushion) + data
            self._primed = True
        try:
            taken = self.playback.write(data)
        except self.alsa.ALSAAudioError as err:
            if "broken pipe" not in str(err).lower():
                raise
            self.underruns += 1          # underrun during the write: the next one prepares
            self._primed = False
            taken = 0
        rest = data[max(taken, 0) * frame_bytes:]
        limit = self.period * frame_bytes   # keep at most one frame back: never build latency
        if len(rest) > limit:
            self.dropped_tx += (len(rest) - limit) // frame_bytes // self.factor
            rest = rest[-limit:]
        self._pending = rest

    def _is_xrun(self, pcm) -> bool:
        if not hasattr(pcm, "state"):
            return False
        return pcm.state() == getattr(self.alsa, "PCM_STATE_XRUN", XRUN_STATE)


def _first_line(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
