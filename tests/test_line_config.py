"""Every line config table refuses keys nobody reads, naming them: a typo in [line]
or a backend's table is an error at check-config, not a setting silently ignored."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from callgate.config import ConfigError, Table
from callgate.line import make_line
from callgate.line.recording import RecordingLine
from callgate.line.replay import ReplayLine
from callgate.line.sim import SimLine
from callgate.wav import write_wav


def line_table(text: str) -> Table:
    return Table(tomllib.loads(text)).sub("line")


@pytest.fixture()
def wav(tmp_path):
    path = tmp_path / "call.wav"
    write_wav(path, np.zeros(8000, np.int16))
    return path


def test_an_unknown_key_in_line_is_named():
    with pytest.raises(ConfigError, match=r"^line\.bogus: unknown key \(known: backend, sim"):
        make_line(line_table("[line]\nbogus = 1"))


def test_an_unknown_key_in_line_replay_is_named(wav):
    text = f'[line]\nbackend = "replay"\n[line.replay]\npath = "{wav}"\nbogus = 1'
    with pytest.raises(ConfigError, match=r"^line\.replay\.bogus: unknown key"):
        make_line(line_table(text))


@pytest.mark.parametrize("backend, table, key", [
    ("sim", "seed = 1\nbogus = 1", "line.sim.bogus"),
    ("modem", 'port = "/dev/ttyACM0"\nbogus = 1', "line.modem.bogus"),
    ("hat", 'board = "xe0092-usb"\nbogus = 1', "line.hat.bogus"),
])
def test_an_unknown_key_in_each_backend_table_is_named(backend, table, key):
    text = f'[line]\nbackend = "{backend}"\n[line.{backend}]\n{table}'
    with pytest.raises(ConfigError, match="^" + key.replace(".", r"\.") + ": unknown key"):
        make_line(line_table(text))


def test_the_unknown_key_in_line_is_reported_before_the_backend_is_built():
    # a typo of `backend` must not be hidden behind the default backend's errors
    with pytest.raises(ConfigError, match=r"^line\.backnd: unknown key"):
        make_line(line_table('[line]\nbacknd = "modem"\n[line.sim]\nperiods = 99'))


def test_tables_of_backends_not_chosen_and_the_recorder_are_allowed(wav):
    line = make_line(line_table(f'''
        [line]
        backend = "sim"
        [line.sim]
        seed = 2
        [line.replay]
        path = "{wav}"
        [line.modem]
        port = "/dev/ttyUSB0"
        [line.record]
        enabled = false
    '''))
    assert isinstance(line, SimLine)
    with pytest.raises(ConfigError, match=r"^line\.modem: expected a table"):
        make_line(line_table('[line]\nmodem = 3'))


def test_an_unknown_key_in_line_record_is_named(wav):
    inner = ReplayLine(wav)
    for enabled in (False, True):
        table = Table({"enabled": enabled, "dir": "rec", "margn_ms": 40}, "line.record")
        with pytest.raises(ConfigError, match=r"^line\.record\.margn_ms: unknown key"):
            RecordingLine.from_config(inner, table)


def test_reject_unknown_lists_what_is_known_when_told():
    table = Table({"a": 1, "b": 2}, "x")
    table.get("a", int)
    with pytest.raises(ConfigError, match=r"^x\.b: unknown key$"):
        table.reject_unknown()
    with pytest.raises(ConfigError, match=r"^x\.b: unknown key \(known: a\)$"):
        table.reject_unknown(("a",))
    table.get("b", int)
    table.reject_unknown()
