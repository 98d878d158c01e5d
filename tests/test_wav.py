"""WAV input: every common format and rate, converted by sox (not by us)."""

import subprocess

import numpy as np
import pytest

from callgate.dsp.level import dbm0_to_amplitude
from callgate.wav import WavError, read_wav, write_wav
from external import require

RATE = 8000


def tone(freq=1000.0, seconds=0.5, dbm0=-10.0):
    n = np.arange(int(seconds * RATE))
    return np.round(dbm0_to_amplitude(dbm0) * np.sin(2 * np.pi * freq * n / RATE)).astype(np.int16)


def peak_freq(x):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * RATE / len(x)


@pytest.fixture()
def source(tmp_path):
    path = tmp_path / "src.wav"
    write_wav(path, tone())
    return path


FORMATS = [
    ("u8", ["-b", "8", "-e", "unsigned-integer"]),
    ("s16-44k1", ["-r", "44100"]),
    ("s24-48k", ["-b", "24", "-r", "48000"]),
    ("s32-16k", ["-b", "32", "-r", "16000"]),
    ("float32-22k05", ["-e", "floating-point", "-b", "32", "-r", "22050"]),
    ("float64", ["-e", "floating-point", "-b", "64"]),
    ("stereo-11k025", ["-c", "2", "-r", "11025"]),
]


@pytest.mark.parametrize("name,opts", FORMATS, ids=[f[0] for f in FORMATS])
def test_reads_formats_converted_by_sox(tmp_path, source, name, opts):
    out = tmp_path / f"{name}.wav"
    subprocess.run([require("sox"), str(source), *opts, str(out)], check=True)
    x = read_wav(out)
    assert x.dtype == np.int16
    assert abs(len(x) - RATE // 2) <= 8
    assert abs(peak_freq(x.astype(float)) - 1000.0) < 20
    rms = np.sqrt(np.mean(x.astype(float) ** 2))
    want = dbm0_to_amplitude(-10.0) / np.sqrt(2)
    assert abs(20 * np.log10(rms / want)) < 0.5


def test_stereo_keeps_first_channel(tmp_path):
    left = tone(700.0)
    right = tone(1900.0)
    path = tmp_path / "lr.raw"
    path.write_bytes(np.column_stack([left, right]).astype("<i2").tobytes())
    out = tmp_path / "lr.wav"
    subprocess.run([require("sox"), "-r", "8000", "-b", "16", "-e", "signed", "-c", "2",
                    str(path), str(out)], check=True)
    assert abs(peak_freq(read_wav(out).astype(float)) - 700.0) < 20


def test_round_trip_is_exact(tmp_path):
    x = (np.arange(-2000, 2000) * 7).astype(np.int16)
    write_wav(tmp_path / "x.wav", x)
    assert np.array_equal(read_wav(tmp_path / "x.wav"), x)


@pytest.mark.parametrize("content,needle", [
    (b"", "not a readable WAV"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt garbage", "not a readable WAV"),
    (b"hello, this is plain text\n" * 10, "not a readable WAV"),
])
def test_bad_files_give_one_line_errors(tmp_path, content, needle):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(WavError) as err:
        read_wav(path)
    message = str(err.value)
    assert needle in message and "\n" not in message and str(path) in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(WavError, match="no such file"):
        read_wav(tmp_path / "absent.wav")
    with pytest.raises(WavError, match="directory"):
        read_wav(tmp_path)
