"""Issue 16, the fault test of the call path: the call store on a file system that is full.

The store lives on a small tmpfs the test mounts (CI runs the suite as root on
Debian; so does tools/test), filled to the last byte with a filler file. Four
calls from the same number key wrong PINs again and again, through the real
`run` stack (App, recorder thread, flow, sim line, embedded directory on a
healthy disk). Whether the disk fills before the appliance starts or while it
runs: every call reaches an agent, no caller gets more tries than the policy
allows (lockout_limit 5 across calls, 3 per call), and the log says "disk full".
The same holds on a store the kernel remounted read-only (the engine starts on
it, answers every call, and says "read-only").
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from pathlib import Path

import pytest

from callgate import cli
from callgate.app import App, Settings
from callgate.crm.directory import Directory
from callgate.store.records import CallStore

FIXTURES = Path(__file__).parent / "fixtures"
WRONG = "1111#"
CALLS = 4
LIMIT, RETRIES = 5, 3


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs mounted for the test (unmounted after)."""
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                           str(where)], capture_output=True, text=True)
    assert done.returncode == 0, f"mounting a tmpfs needs root: {done.stderr.strip()}"
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path) -> None:
    """Write a filler file until the file system says ENOSPC, to its last byte."""
    fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as err:
                    assert err.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)


def config(tmp_path: Path, store: Path) -> Path:
    db = tmp_path / "directory.sqlite"
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"), "--db",
                     str(db)]) == 0
    presses = ", ".join([f'{{press = "{WRONG}"}}'] * (RETRIES + 1))
    calls = "".join(
        "[[line.sim.calls]]\n"
        f"script = [{presses}]\n"
        'agents = {"202" = {answer_after_rings = 1}, "205" = {answer_after_rings = 1}}\n'
        for _ in range(CALLS))
    path = tmp_path / "callgate.toml"
    path.write_text(f'[line]\nbackend = "sim"\n{calls}[crm]\ndirectory = "{db}"\n'
                    f'[store]\npath = "{store}"\n[[service]]\nname = "support"\n'
                    f'[service.security]\nlockout_limit = {LIMIT}\nretries = {RETRIES}\n'
                    '[service.transfer]\nagent = "200"\nidentified = "202"\n'
                    'locked = "205"\n')
    return path


@pytest.mark.parametrize("when", ["before the start", "while running", "read-only"])
def test_a_full_disk_never_gives_a_guesser_more_tries(tmp_path, small_fs, monkeypatch,
                                                      caplog, when):
    store = small_fs / "calls.sqlite"
    CallStore(store).close()                  # an existing store, as on a device
    cfg = config(tmp_path, store)
    tries = []
    real = Directory.verify
    monkeypatch.setattr(Directory, "verify",
                        lambda self, *a: tries.append(1) or real(self, *a))
    infos = []
    caplog.set_level(logging.INFO)
    if when == "before the start":
        fill(small_fs)
    if when == "read-only":                   # a card the kernel remounted read-only
        subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    app = App.from_settings(Settings.load(str(cfg)), on_call=infos.append)
    with app:
        if when == "while running":
            fill(small_fs)
        with app.line:
            app.engine.run(max_calls=CALLS)
        outcomes = app.line.outcomes      # the sim tells the last one after the engine stops
        fs = os.statvfs(small_fs)
        assert fs.f_bavail == 0 or fs.f_flag & os.ST_RDONLY      # so all along
    assert [i.end_reason for i in infos] == ["transferred"] * CALLS
    assert [(i.transfer.extension, i.transfer.outcome) for i in infos] == \
        [("202", "completed")] + [("205", "completed")] * (CALLS - 1)
    assert [o.transferred_to for o in outcomes[:-1]] == ["202", "205", "205"]
    assert len(tries) == LIMIT                # 3 on the first call, 2 on the second
    assert ("read-only" if when == "read-only" else "disk full") in caplog.text
    assert "OperationalError" not in caplog.text
    assert "1111" not in caplog.text
    assert caplog.text.count("not written") <= 3   # once per outage, not once per step
