"""A secret kept in a CRM field as a salted scrypt hash (crm/hashed.py) and the command
that makes one, `callgate directory hash-secret`."""

from __future__ import annotations

import base64
import io

import pytest

from callgate import cli
from callgate.crm import hashed


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


GOOD_SALT, GOOD_DIGEST = b64(b"s" * 16), b64(b"d" * 32)


def test_made_and_checked():
    stored = hashed.make("2468", n=2 ** 4)
    assert stored.startswith("scrypt$16$8$1$") and "2468" not in stored
    assert hashed.check("2468", stored) and not hashed.check("2469", stored)
    assert hashed.make("2468", n=2 ** 4) != stored          # a fresh salt each time


@pytest.mark.parametrize("stored, says", [
    ("2468", "not a callgate scrypt hash"),
    (f"bcrypt$16$8$1${GOOD_SALT}${GOOD_DIGEST}", "not a callgate scrypt hash"),
    (f"scrypt$16$8${GOOD_SALT}${GOOD_DIGEST}", "not a callgate scrypt hash"),
    (f"scrypt$-16$8$1${GOOD_SALT}${GOOD_DIGEST}", "not a callgate scrypt hash"),
    (f"scrypt$²$8$1${GOOD_SALT}${GOOD_DIGEST}", "not a callgate scrypt hash"),
    (f"scrypt$16$8$١${GOOD_SALT}${GOOD_DIGEST}", "not a callgate scrypt hash"),
    (f"scrypt$1048576$8$1${GOOD_SALT}${GOOD_DIGEST}", "cost out of bounds"),   # 1 GiB
    (f"scrypt$131072$8$1${GOOD_SALT}${GOOD_DIGEST}", "cost out of bounds"),    # 128 MiB
    (f"scrypt$1000$8$1${GOOD_SALT}${GOOD_DIGEST}", "cost out of bounds"),      # not 2^k
    (f"scrypt$1$8$1${GOOD_SALT}${GOOD_DIGEST}", "cost out of bounds"),
    (f"scrypt$16$0$1${GOOD_SALT}${GOOD_DIGEST}", "cost out of bounds"),
    (f"scrypt$16$8$5${GOOD_SALT}${GOOD_DIGEST}", "cost out of bounds"),
    (f"scrypt$16$8$0${GOOD_SALT}${GOOD_DIGEST}", "cost out of bounds"),
    (f"scrypt$16$8$1$not*base64${GOOD_DIGEST}", "not valid base64"),
    (f"scrypt$16$8$1${GOOD_SALT}$ZGlnZXN0", "wrong length"),                   # 6 bytes
    (f"scrypt$16$8$1${b64(b's' * 7)}${GOOD_DIGEST}", "wrong length"),
    (f"scrypt$16$8$1${GOOD_SALT}${b64(b'd' * 65)}", "wrong length"),
    (f"scrypt$16$8$1${GOOD_SALT}${b64(b'd' * 15)}", "wrong length"),
])
def test_a_stored_value_that_is_not_a_hash_is_refused(stored, says):
    with pytest.raises(hashed.NotAHash, match=says) as err:
        hashed.check("2468", stored)
    assert "2468" not in str(err.value) and GOOD_SALT not in str(err.value)


def test_the_limits_themselves_are_accepted():
    """The bounds are inclusive: 64 MiB of memory, p = 4, an 8-byte salt, 16 and 64-byte
    digests parse (and simply do not match)."""
    for stored in (f"scrypt$32768$16$1${GOOD_SALT}${GOOD_DIGEST}",
                   f"scrypt$16$8$4${b64(b's' * 8)}${b64(b'd' * 16)}",
                   f"scrypt$16$8$1${GOOD_SALT}${b64(b'd' * 64)}"):
        assert hashed.check("2468", stored) is False


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_cli_hash_secret_from_stdin(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("1357\n"))
    assert cli.main(["directory", "hash-secret"]) == 0
    printed = capsys.readouterr().out.strip()
    assert hashed.check("1357", printed) and "1357" not in printed


def test_cli_hash_secret_on_a_terminal_asks_twice(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", Tty(""))
    answers = iter(["1357", "1375"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert cli.main(["directory", "hash-secret"]) == 1
    out = capsys.readouterr()
    assert "the two entries differ" in out.err and out.out == ""
    answers = iter(["1357", "1357"])
    assert cli.main(["directory", "hash-secret", "--kind", "pin"]) == 0
    assert hashed.check("1357", capsys.readouterr().out.strip())


def test_cli_hash_secret_refuses_an_empty_secret(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert cli.main(["directory", "hash-secret"]) == 2
    out = capsys.readouterr()
    assert "empty secret" in out.err and out.out == ""
