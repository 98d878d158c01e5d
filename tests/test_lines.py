"""Several lines on one device: [[line]] tables and lines/<name>.toml files, one process
per line (`callgate run --line NAME`), one shared call store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from browser import client_sign_in, make_app
from callgate import cli
from callgate.app import Settings
from callgate.config import ConfigError
from callgate.line.modem.line import ModemLine
from callgate.line.sim import SimLine

FIXTURES = Path(__file__).parent / "fixtures"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_line_tables_in_the_main_file_each_named(tmp_path):
    config = write(tmp_path / "callgate.toml", '''
        [[line]]
        name = "office"
        backend = "modem"
        [line.modem]
        port = "/dev/callgate-modem0"
        [[line]]
        name = "shop"
        backend = "sim"
    ''')
    settings = Settings.load(config, "shop")
    assert settings.name == "shop" and isinstance(settings.line, SimLine)
    assert list(settings.lines) == ["office", "shop"]
    office = Settings.load(config, "office")
    assert office.name == "office" and office.line.port == "/dev/callgate-modem0"


def test_line_files_beside_the_main_file(tmp_path):
    config = write(tmp_path / "callgate.toml", "[engine]\nrings = 2\n")
    write(tmp_path / "lines" / "front.toml", '[line]\nbackend = "modem"\n'
          '[line.modem]\nport = "/dev/callgate-modem0"\n')
    write(tmp_path / "lines" / "back.toml", '[line]\nbackend = "modem"\n'
          '[line.modem]\nport = "/dev/callgate-modem1"\n')
    write(tmp_path / "lines" / "notes.txt", "not a line")
    settings = Settings.load(config, pick=False)
    assert sorted(settings.lines) == ["back", "front"]
    front = Settings.load(config, "front")
    assert isinstance(front.line, ModemLine) and front.line.port == "/dev/callgate-modem0"
    assert Settings.load(config, "back").line.port == "/dev/callgate-modem1"


def test_without_line_several_lines_is_an_error_that_says_what_to_do(tmp_path):
    config = write(tmp_path / "c.toml", '[[line]]\nname = "a"\n[[line]]\nname = "b"\n')
    with pytest.raises(ConfigError, match=r"^line: 2 lines are configured \(a, b\): run one "
                                          r"process per line with --line NAME"):
        Settings.load(config)
    with pytest.raises(ConfigError, match=r"^--line c: no such line \(configured: a, b\)$"):
        Settings.load(config, "c")


def test_one_line_table_is_the_line_named_line_as_before(tmp_path):
    config = write(tmp_path / "c.toml", '[line]\nbackend = "sim"\n')
    settings = Settings.load(config)
    assert settings.name == "line" and list(settings.lines) == ["line"]
    assert Settings.load(config, "line").name == "line"
    assert Settings.load(None).name == "line"            # the embedded default sim line


@pytest.mark.parametrize("text, files, message", [
    ('[[line]]\nname = "a"\n[[line]]\nname = "a"\n', {},
     r"^line 'a': defined twice \(\[\[line\]\] a and \[\[line\]\] a\)$"),
    ('[[line]]\nname = "a"\n', {"a.toml": "[line]\n"},
     r"^line 'a': defined twice \(\[\[line\]\] a and lines/a\.toml\)$"),
    ('[[line]]\nbackend = "sim"\n', {}, r"^line\[0\]\.name: missing$"),
    ('[[line]]\nname = "é"\n', {}, r"^line\[0\]\.name: 'é' is not a line name"),
    ('[[line]]\nname = "a"\nbogus = 1\n', {}, r"^line\[a\]\.bogus: unknown key"),
    ('', {"a.toml": '[line]\nbackend = "modem"\n[line.modem]\nbaud = 7\n'},
     r"^lines/a\.toml: line\.modem\.baud: 7 is not one of"),
    ('', {"a.toml": "[engine]\nrings = 1\n"},
     r"^lines/a\.toml: engine: unknown key \(a line file holds one \[line\] table\)$"),
    ('', {"a.toml": "[line\n"}, r"^lines/a\.toml: not valid TOML"),
    ('', {"two words.toml": "[line]\n"}, r"^lines/two words\.toml: 'two words' is not a line"),
])
def test_bad_lines_are_named(tmp_path, text, files, message):
    config = write(tmp_path / "c.toml", text)
    for name, body in files.items():
        write(tmp_path / "lines" / name, body)
    with pytest.raises(ConfigError, match=message):
        Settings.load(config, pick=False)


def test_two_lines_never_on_one_serial_port_even_by_another_name(tmp_path):
    tty = write(tmp_path / "ttyACM0", "")
    (tmp_path / "callgate-modem0").symlink_to(tty)
    config = write(tmp_path / "c.toml", f'''
        [[line]]
        name = "a"
        backend = "modem"
        modem.port = "{tty}"
        [[line]]
        name = "b"
        backend = "modem"
        modem.port = "{tmp_path / 'callgate-modem0'}"
    ''')
    with pytest.raises(ConfigError, match=rf"^line 'b': serial port {tty} is already line 'a'"):
        Settings.load(config, pick=False)


def test_two_modem_lines_on_port_auto_are_one_port_and_refused(tmp_path):
    """port "auto" (the default) opens the device's one modem: two lines cannot share it."""
    config = write(tmp_path / "c.toml", '[[line]]\nname = "a"\nbackend = "modem"\n'
                   '[[line]]\nname = "b"\nbackend = "modem"\n')
    with pytest.raises(ConfigError, match=r"^line 'b': serial port \S+ \(port auto\) is "
                                          r"already line 'a''s \(one device, one line; give "
                                          r"each modem its /dev/serial/by-id name\)$"):
        Settings.load(config, pick=False)


def test_two_hat_lines_on_the_same_board_pins_are_refused(tmp_path):
    config = write(tmp_path / "c.toml", '[[line]]\nname = "a"\nbackend = "hat"\n'
                   '[[line]]\nname = "b"\nbackend = "hat"\n[line.hat]\ndevice = "hw:CARD=B"\n')
    with pytest.raises(ConfigError, match=r"^line 'b': GPIO GPIO17 is already line 'a'"):
        Settings.load(config, pick=False)


def test_check_config_lists_the_lines_and_warns_of_a_service_on_no_line(tmp_path, capsys):
    db = tmp_path / "d.sqlite"
    config = write(tmp_path / "c.toml", f'''
        [[line]]
        name = "a"
        [[line]]
        name = "b"
        [crm]
        directory = "{db}"
        [store]
        path = "{tmp_path / 'calls.sqlite'}"
        [[service]]
        name = "s"
        lines = ["a", "z"]
        [service.transfer]
        agent = "201"
    ''')
    assert cli.main(["check-config", str(config)]) == 0
    out = capsys.readouterr()
    assert f"{config}: 2 lines: a, b" in out.out
    assert "warning: service.s.lines: no line 'z' is configured" in out.err
    write(tmp_path / "lines" / "a.toml", "[line]\n")
    assert cli.main(["check-config", str(config)]) == 2
    assert "line 'a': defined twice" in capsys.readouterr().err
    # a device's one unnamed line: service lines' `lines` are not held against it
    single = write(tmp_path / "single" / "c.toml",
                   '[line]\nbackend = "sim"\n[crm]' + config.read_text().split("[crm]")[1])
    assert cli.main(["check-config", str(single)]) == 0
    out = capsys.readouterr()
    assert "no line" not in out.err and " lines: " not in out.out


def test_run_names_an_unknown_line_in_one_line(tmp_path, capsys):
    config = write(tmp_path / "c.toml", '[[line]]\nname = "a"\n')
    assert cli.main(["run", "--config", str(config), "--line", "b"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "callgate run: --line b: no such line (configured: a)"


def test_two_lines_share_one_store_and_both_show_in_records_and_status(tmp_path):
    """Two `callgate run --line` processes at once, as two callgate@ instances run, each
    with its own sim line, write to one call store; the records and the status page
    name both lines."""
    db, calls = tmp_path / "directory.sqlite", tmp_path / "calls.sqlite"
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"), "--db",
                     str(db)]) == 0
    config = write(tmp_path / "callgate.toml", f'''
        [[line]]
        name = "front"
        backend = "sim"
        [line.sim]
        seed = 1
        [crm]
        directory = "{db}"
        [store]
        path = "{calls}"
        [[service]]
        name = "support"
        [service.transfer]
        agent = "201"
    ''')
    write(tmp_path / "lines" / "back.toml", '[line]\nbackend = "sim"\n[line.sim]\nseed = 2\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, "-m", "callgate.cli", "run", "--config",
                               str(config), "--line", name, "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("front", "back")]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip(), err
    store = sqlite3.connect(calls)
    rows = store.execute(
        "select line, count(*), min(status) from calls group by line order by line").fetchall()
    assert rows == [("back", 1, "verified"), ("front", 1, "verified")]
    assert store.execute("pragma integrity_check").fetchall() == [("ok",)]
    assert store.execute("pragma foreign_key_check").fetchall() == []
    # each line's trail is its own call's: the events of a call name its line's record
    trails = store.execute("select c.line, count(*) from events e join calls c "
                           "using (call_id) group by c.line order by c.line").fetchall()
    assert [line for line, n in trails if n > 0] == ["back", "front"]
    assert all(cid.startswith(f"{line}-") for cid, line in
               store.execute("select call_id, line from calls"))
    app = make_app(tmp_path, clock=time.time)
    client = app.test_client()
    client_sign_in(client, "sam")
    lines = client.get("/status.json").get_json()["lines"]
    assert sorted(r["line"] for r in lines) == ["back", "front"]
    assert all(r["state"] == "down" for r in lines)       # both stopped: "callgate stopped"
