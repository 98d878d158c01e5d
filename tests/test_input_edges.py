"""Issue 16 item 13: input edges that gave a traceback or silently did the wrong thing.

Each gives one clear line naming what is wrong, through the commands a user runs."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from callgate.config import ConfigError, Table

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "sample-call.wav"


def callgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callgate.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def pcm_wav(path: Path, channels: int, rate: int, width: int = 2) -> Path:
    """A PCM WAV whose format chunk says exactly what it is told (even nonsense)."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * channels * width) & 0xFFFFFFFF,
                      (channels * width) & 0xFFFF, width * 8)
    data = b"\0" * 800
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.mark.parametrize("channels, rate, said", [
    (0, 8000, "0 channels"),
    (1, 0xFFFFFFFF, "invalid sample rate 4294967295"),
])
def test_a_nonsense_wav_is_one_line_and_the_batch_goes_on(tmp_path, channels, rate, said):
    bad = pcm_wav(tmp_path / "bad.wav", channels, rate)
    res = callgate("decode", bad, SAMPLE)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and said in res.stderr and str(bad) in res.stderr
    assert any('"callerid"' in line for line in res.stdout.splitlines())   # SAMPLE decoded
    out = tmp_path / "out"
    res = callgate("prompts", "convert", bad, SAMPLE, "--out", out)
    assert "Traceback" not in res.stderr and said in res.stderr
    assert (out / "sample-call.wav").exists()


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    cfg = tmp_path / "callgate.toml"
    cfg.write_bytes(b'[line]\nbackend = "sim"\n# caf\xe9\n')
    for cmd in (["run", "--config", cfg], ["check-config", cfg]):
        res = callgate(*cmd)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.count("\n") == 1 and "not UTF-8" in res.stderr


def test_nan_passes_no_range_check():
    with pytest.raises(ConfigError, match=r"crm\.budget: nan is not a number"):
        Table({"budget": float("nan")}, "crm").number("budget", 3.0, 0.05, 30.0)
    with pytest.raises(ConfigError, match="nan is not a number"):
        Table({"x": float("nan")}, "t").number("x")


def test_nan_in_a_run_config_is_refused(tmp_path):
    cfg = tmp_path / "callgate.toml"
    cfg.write_text('[line]\nbackend = "sim"\n[crm]\nkind = "reference"\n'
                   'base_url = "https://127.0.0.1:9/v1"\nbudget = nan\n'
                   '[crm.auth]\nkind = "none"\n')
    res = callgate("run", "--config", cfg)
    assert res.returncode == 2 and "crm.budget: nan is not a number" in res.stderr
    assert res.stderr.count("\n") == 1


def test_a_missing_directory_is_named_not_made(tmp_path):
    missing = tmp_path / "nowhere" / "directory.sqlite"
    cfg = tmp_path / "callgate.toml"
    cfg.write_text(f'[line]\nbackend = "sim"\n[crm]\ndirectory = "{missing}"\n'
                   f'[store]\npath = "{tmp_path / "calls.sqlite"}"\n'
                   '[[service]]\nname = "support"\n')
    res = callgate("run", "--config", cfg, "--calls", "1")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"crm.directory: {missing}: no such directory file" in res.stderr
    assert not missing.exists() and not missing.parent.exists()


def test_a_mistyped_lines_table_is_refused(tmp_path):
    cfg = tmp_path / "callgate.toml"
    cfg.write_text('[lines]\nbackend = "modem"\n')
    res = callgate("run", "--config", cfg, "--calls", "1")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("callgate run: lines: unknown key")
