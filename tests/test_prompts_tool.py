"""`callgate prompts convert|check` on recordings made by sox and espeak-ng, and the
shipped prompt set."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from callgate import cli
from callgate.dsp.speech import clipped_runs, measure
from callgate.engine.prompts import PromptSet, default_prompt_root
from callgate.flow.policy import PROMPT_ROLES
from callgate.wav import read_wav, write_wav
from external import require

TEXT = "Thank you for calling. Please key your customer number, then hash."
SHIPPED = default_prompt_root() / "en"


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> Path:
    """espeak-ng's own WAV (22.05 kHz mono 16-bit)."""
    path = tmp_path_factory.mktemp("voice") / "spoken.wav"
    subprocess.run([require("espeak-ng"), "-v", "en-us", "-s", "170", "-w", str(path), TEXT],
                   check=True, capture_output=True)
    return path


def sox(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run([require("sox"), "-q", str(src), *args[:args.index("--")], str(dst),
                    *args[args.index("--") + 1:]], check=True, capture_output=True)
    return dst


def header(path: Path) -> tuple[int, int, int]:
    """(rate, channels, bytes per sample) as sox reads the file."""
    def ask(flag: str) -> int:
        return int(subprocess.run([require("soxi"), flag, str(path)], check=True,
                                  capture_output=True, text=True).stdout)
    return ask("-r"), ask("-c"), ask("-b") // 8


def lead_and_tail_s(x: np.ndarray, dbfs: float = -50.0) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(x.astype(float)) >= 32768 * 10 ** (dbfs / 20))
    return loud[0] / 8000, (x.size - 1 - loud[-1]) / 8000


def convert(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main(["prompts", "convert", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_48k_stereo_24bit_becomes_an_8k_mono_16bit_prompt_at_minus_19(spoken, tmp_path, capsys):
    src = sox(spoken, tmp_path / "Welcome Message.wav", "-r", "48000", "-c", "2", "-b", "24",
              "--", "gain", "-9", "pad", "1", "1.5")
    assert header(src) == (48000, 2, 3)
    status, out, err = convert(capsys, str(src), "--out", str(tmp_path / "out"))
    assert status == 0 and err == ""
    dst = tmp_path / "out" / "welcome_message.wav"
    assert out.strip().startswith(str(dst)) and "-19.0 dBm0" in out
    assert header(dst) == (8000, 1, 2)
    x = read_wav(dst)
    m = measure(x)
    assert abs(m.level_dbm0 - -19.0) <= 0.5
    assert m.peak_dbfs <= -1.0
    # the 1 s and 1.5 s of silence around the speech are cut to about 50 ms
    lead, tail = lead_and_tail_s(x)
    assert 0.03 <= lead <= 0.08 and 0.03 <= tail <= 0.08
    assert m.seconds < read_wav(src).size / 8000 - 2.3
    # nothing below 300 Hz is left of a hum added to the source (the telephone band)
    hummed = sox(src, tmp_path / "hum.wav", "--", "synth", "sine", "mix", "50", "gain", "-3")
    status, _, _ = convert(capsys, str(hummed), "--out", str(tmp_path / "out"), "--name", "hum")
    spectrum = np.abs(np.fft.rfft(read_wav(tmp_path / "out" / "hum.wav").astype(float)))
    freqs = np.fft.rfftfreq(read_wav(tmp_path / "out" / "hum.wav").size, 1 / 8000)
    assert status == 0
    assert spectrum[(freqs > 45) & (freqs < 55)].max() < 0.05 * spectrum.max()


def test_level_option_and_the_same_bytes_every_run(spoken, tmp_path, capsys):
    for run in ("a", "b"):
        status, _, _ = convert(capsys, str(spoken), "--out", str(tmp_path / run),
                               "--level", "-24", "--name", "quiet_prompt")
        assert status == 0
    a, b = (tmp_path / r / "quiet_prompt.wav" for r in "ab")
    assert a.read_bytes() == b.read_bytes()
    assert abs(measure(read_wav(a)).level_dbm0 - -24.0) <= 0.5


def test_a_clipped_source_is_warned_and_still_written(spoken, tmp_path, capsys):
    src = sox(spoken, tmp_path / "loud.wav", "--", "gain", "18")      # sox clips it
    status, out, err = convert(capsys, str(src), "--out", str(tmp_path / "out"))
    assert status == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "loud.wav" in lines[0] and "clipping in the source" in lines[0]
    x = read_wav(tmp_path / "out" / "loud.wav")
    assert abs(measure(x).level_dbm0 - -19.0) <= 0.5 and clipped_runs(x) == 0


def test_a_quiet_source_is_warned_and_brought_up(spoken, tmp_path, capsys):
    src = sox(spoken, tmp_path / "quiet.wav", "-b", "24", "--", "gain", "-35")
    status, out, err = convert(capsys, str(src), "--out", str(tmp_path / "out"))
    assert status == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "quiet.wav" in lines[0] and "low level" in lines[0]
    assert abs(measure(read_wav(tmp_path / "out" / "quiet.wav")).level_dbm0 - -19.0) <= 0.5


def test_peaky_audio_is_limited_at_minus_1_dbfs_and_says_so(spoken, tmp_path, capsys):
    x = read_wav(spoken, 8000).astype(float) * 10 ** (-30 / 20)
    x[len(x) // 2] = 30000.0                                      # one loud click
    write_wav(tmp_path / "click.wav", x)
    status, out, err = convert(capsys, str(tmp_path / "click.wav"), "--out", str(tmp_path / "o"))
    assert status == 0 and "gain limited" in err and len(err.strip().splitlines()) == 1
    m = measure(read_wav(tmp_path / "o" / "click.wav"))
    assert -1.1 <= m.peak_dbfs <= -1.0 and m.level_dbm0 < -20.0


def test_long_silences_and_little_speech_are_warned(spoken, tmp_path, capsys):
    src = sox(spoken, tmp_path / "gappy.wav", "--", "pad", "0", "2.5")
    gappy = sox(src, tmp_path / "gappy2.wav", "--", "repeat", "1")        # speech, 2.5 s, speech
    short = sox(spoken, tmp_path / "short.wav", "--", "trim", "0.3", "0.1", "pad", "2", "2")
    status, _, err = convert(capsys, str(gappy), str(short), "--out", str(tmp_path / "o"))
    assert status == 0
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert "gappy2.wav" in lines[0] and "long silence inside (2." in lines[0]
    assert "short.wav" in lines[1] and "too little speech" in lines[1]


def test_unreadable_files_are_one_line_each_and_the_rest_converted(spoken, tmp_path, capsys):
    bad = tmp_path / "garbage.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(40)))
    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros(8000, np.int16))
    missing = tmp_path / "missing.wav"
    status, out, err = convert(capsys, str(bad), str(missing), str(silent), str(spoken),
                               "--out", str(tmp_path / "out"))
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert "garbage.wav" in lines[0] and "missing.wav" in lines[1] and "no such file" in lines[1]
    assert "silent.wav" in lines[2] and "no speech" in lines[2]
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["spoken.wav"]


def test_bad_options_are_one_line(spoken, tmp_path, capsys):
    for args, word in ((["--level", "-3"], "--level"), (["--name", "a b"], "--name")):
        status, _, err = convert(capsys, str(spoken), "--out", str(tmp_path), *args)
        assert status == 2 and len(err.strip().splitlines()) == 1 and word in err
    status, _, err = convert(capsys, str(spoken), str(spoken), "--out", str(tmp_path),
                             "--name", "x")
    assert status == 2 and "single input" in err


def check(capsys, folder: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main(["prompts", "check", str(folder)])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_the_shipped_prompts_pass_check(capsys):
    status, out, err = check(capsys, SHIPPED)
    assert status == 0, out + err
    assert "0 failed" in out.splitlines()[-1]
    for path in SHIPPED.glob("*.wav"):
        assert header(path) == (8000, 1, 2), path.name


def test_check_fails_loud_clipped_and_wrong_format_prompts(spoken, tmp_path, capsys):
    folder = tmp_path / "en"
    assert convert(capsys, str(spoken), "--out", str(folder), "--name", "good")[0] == 0
    good = read_wav(folder / "good.wav").astype(float)
    write_wav(folder / "loud.wav", good * 10 ** (8 / 20))                     # -11 dBm0
    write_wav(folder / "clipped.wav", np.clip(good * 10, -32768, 32767))
    sox(folder / "good.wav", folder / "wideband.wav", "-r", "16000", "--")
    status, out, err = check(capsys, folder)
    assert status == 1
    rows = {line.split()[0]: line for line in out.splitlines()[:-1]}
    assert rows["good.wav"].endswith("ok")
    assert "FAIL" in rows["loud.wav"] and "outside -19 +-3" in rows["loud.wav"]
    assert "FAIL" in rows["clipped.wav"] and "clipped" in rows["clipped.wav"]
    assert "FAIL" in rows["wideband.wav"] and "16000 Hz" in rows["wideband.wav"]
    assert "1 ok, 3 failed" in out.splitlines()[-1]
    assert check(capsys, tmp_path / "nowhere")[0] == 2


def test_every_prompt_a_policy_can_name_is_shipped():
    prompts = PromptSet("en")
    defaults = {name for name, _ in PROMPT_ROLES.values() if name}
    readback = {"customer_number", *(f"digit_{d}" for d in range(10))}
    whispers = {f"whisper_{s}" for s in ("verified", "identified", "not_identified", "locked",
                                         "opted_out", "backend_down")}
    missing = sorted((defaults | readback | whispers) - set(prompts.names()))
    assert missing == []
