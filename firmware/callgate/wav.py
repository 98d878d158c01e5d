"""WAV files in and out: any common format and rate in, int16 at 8 kHz out.

Reading tries the standard library's `wave` first (PCM 8/16/24/32 bit) and
falls back to SciPy (float, extensible headers). Stereo keeps the first
channel; other rates are resampled with a polyphase filter.
"""

from __future__ import annotations

import struct
import warnings
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

from .dsp import RATE

MAX_RATE = 768000               # the highest rate any audio tool writes (and then some)


class WavError(Exception):
    """A WAV file that cannot be used; the message is one line for a person."""


def read_wav(path: str | Path, rate: int = RATE) -> np.ndarray:
    """Return the first channel of `path` as int16 samples at `rate` Hz."""
    samples, src_rate = read_source(path)
    return to_int16(resample(samples, src_rate, rate))


def read_source(path: str | Path) -> tuple[np.ndarray, int]:
    """Float samples in [-1, 1) of the first channel at the file's own rate: for tools
    that must see a recording as it is (clipping is flat tops before resampling)."""
    path = Path(path)
    try:
        samples, src_rate = _read_pcm(path)
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WavError(f"{path}: is a directory, not a WAV file") from None
    except PermissionError:
        raise WavError(f"{path}: permission denied") from None
    if not 0 < src_rate <= MAX_RATE:
        raise WavError(f"{path}: invalid sample rate {src_rate} (1 to {MAX_RATE} Hz)")
    return samples, src_rate


def _read_pcm(path: Path) -> tuple[np.ndarray, int]:
    """Float samples in [-1, 1) of the first channel, and the file's rate."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() < 1:
                raise WavError(f"{path}: the format chunk says 0 channels")
            return _from_wave(w), w.getframerate()
    except (wave.Error, EOFError, ValueError, struct.error, RuntimeError, ZeroDivisionError):
        pass
    try:
        with warnings.catch_warnings():     # "chunk not understood": the error says it all
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            src_rate, data = wavfile.read(str(path), mmap=False)
    except (ValueError, EOFError, OSError, struct.error, MemoryError, RuntimeError,
            UnboundLocalError, ZeroDivisionError) as err:   # UnboundLocalError: SciPy's own
        if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):   # for
            raise                                           # a file with no fmt chunk
        if isinstance(err, ZeroDivisionError):      # a frame of 0 bytes: 0 channels or width
            raise WavError(f"{path}: not a readable WAV file (0 channels or a sample width "
                           "of 0 in the format chunk)") from None
        if isinstance(err, UnboundLocalError):
            raise WavError(f"{path}: not a readable WAV file (no format chunk)") from None
        raise WavError(f"{path}: not a readable WAV file ({_first_line(err)})") from None
    return _normalise(data), int(src_rate)


def _from_wave(w: wave.Wave_read) -> np.ndarray:
    width, channels = w.getsampwidth(), w.getnchannels()
    raw = w.readframes(w.getnframes())
    usable = len(raw) - len(raw) % (width * channels)
    raw = raw[:usable]
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)
    else:
        raise ValueError(f"unsupported sample width {width}")
    return x[::channels].copy() if channels > 1 else x


def _normalise(data: np.ndarray) -> np.ndarray:
    if data.ndim > 1:
        data = data[:, 0]
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float64) / float(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float64)


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Polyphase resampling by the exact rational ratio of the two rates."""
    if src_rate == dst_rate or x.size == 0:
        return x
    ratio = Fraction(dst_rate, src_rate).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1) to int16 with clipping (not wrap-around)."""
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = RATE) -> None:
    """Write int16 mono samples as a 16-bit PCM WAV."""
    data = np.asarray(samples)
    if data.dtype != np.int16:
        data = np.clip(np.round(data), -32768, 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.astype("<i2").tobytes())


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
