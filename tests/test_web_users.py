"""Web users: the file, the password hashes, the rules, and `callgate web init|user`."""

from __future__ import annotations

import io
import sqlite3
import stat

import pytest

from callgate import cli
from callgate.web.users import SCRYPT_N, UserError, Users


@pytest.fixture()
def users(tmp_path):
    with Users(tmp_path / "web.sqlite") as u:
        yield u


def test_passwords_are_kept_only_as_salted_scrypt_hashes(users, tmp_path):
    users.add("ann", "agent", "correct horse battery", ["201"])
    users.add("bob", "agent", "correct horse battery", ["202"])
    users.db.execute("PRAGMA wal_checkpoint(FULL)")
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("web.sqlite*"))
    assert b"correct horse" not in blob
    rows = users.db.execute("SELECT n, r, p, salt, hash FROM users ORDER BY username").fetchall()
    assert [r[:3] for r in rows] == [(SCRYPT_N, 8, 1)] * 2
    assert rows[0][3] != rows[1][3] and rows[0][4] != rows[1][4]     # own salt, own hash
    assert len(rows[0][3]) == 16 and len(rows[0][4]) == 32
    assert stat.S_IMODE((tmp_path / "web.sqlite").stat().st_mode) == 0o600


def test_authenticate(users):
    users.add("Ann", "agent", "correct horse battery", "201, 202")
    ann = users.authenticate("ann", "correct horse battery")
    assert ann is not None and ann.username == "ann" and ann.extensions == ("201", "202")
    assert users.authenticate(" ANN ", "correct horse battery") is not None
    assert users.authenticate("ann", "correct horse batterY") is None
    assert users.authenticate("ann", "") is None
    assert users.authenticate("nobody", "correct horse battery") is None
    users.set_disabled("ann", True)
    assert users.authenticate("ann", "correct horse battery") is None


def test_a_raised_cost_rehashes_at_the_next_sign_in(tmp_path):
    with Users(tmp_path / "web.sqlite", scrypt_n=2 ** 10) as cheap:
        cheap.add("ann", "agent", "correct horse battery")
    with Users(tmp_path / "web.sqlite") as users:
        assert users.authenticate("ann", "correct horse battery") is not None
        n = users.db.execute("SELECT n FROM users WHERE username = 'ann'").fetchone()[0]
        assert n == SCRYPT_N
        assert users.authenticate("ann", "correct horse battery") is not None


@pytest.mark.parametrize("call, message", [
    (lambda u: u.add("a b", "agent", "long-enough-1"), "user name"),
    (lambda u: u.add("x" * 33, "agent", "long-enough-1"), "user name"),
    (lambda u: u.add("carl", "boss", "long-enough-1"), "role 'boss'"),
    (lambda u: u.add("carl", "agent", "short"), "at least 10"),
    (lambda u: u.add("carl", "agent", "long-enough-1", ["20x"]), "extension '20x'"),
    (lambda u: u.add("ann", "agent", "long-enough-1"), "already exists"),
    (lambda u: u.set_password("nobody", "long-enough-1"), "no user 'nobody'"),
    (lambda u: u.set_extensions("ann", "1234567890123456789"), "extension"),
    (lambda u: u.set_disabled("root", True), "last enabled admin"),
    (lambda u: u.remove("root"), "last enabled admin"),
])
def test_bad_input_is_one_line_that_says_what(users, call, message):
    users.add("ann", "agent", "long-enough-1")
    users.add("root", "admin", "long-enough-1")
    with pytest.raises(UserError) as err:
        call(users)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "long-enough" not in str(err.value)


def test_a_second_admin_can_be_disabled(users):
    users.add("root", "admin", "long-enough-1")
    users.add("root2", "admin", "long-enough-1")
    users.set_disabled("root", True)
    with pytest.raises(UserError):
        users.set_disabled("root2", True)
    assert users.enabled_admins() == 1


def test_sessions_die_with_a_new_password(users):
    ann = users.add("ann", "agent", "long-enough-1")
    token = users.new_session(ann, 100.0)
    found = users.session(token)
    assert found is not None and found[0].username == "ann" and found[2:] == (100.0, 100.0)
    assert users.session("not-a-token") is None
    users.set_password("ann", "long-enough-2")
    assert users.session(token) is None
    digest_rows = users.db.execute("SELECT digest FROM sessions").fetchall()
    assert all(token.encode() not in bytes(r[0]) for r in digest_rows)


# ---------------------------------------------------------------- the command line


def run(argv, stdin="", monkeypatch=None, capsys=None):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def config(tmp_path):
    path = tmp_path / "callgate.toml"
    path.write_text(f'[web]\ndb = "{tmp_path / "state" / "web.sqlite"}"\n'
                    f'secret_key_file = "{tmp_path / "state" / "web-secret.key"}"\n')
    return str(path)


def test_init_makes_the_key_and_the_first_admin(config, tmp_path, monkeypatch, capsys):
    code, out, err = run(["web", "init", "--admin", "Root", "--config", config],
                         "a-good-password-1\n", monkeypatch, capsys)
    assert code == 0 and err == "" and "admin root" in out
    key = tmp_path / "state" / "web-secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    with Users(tmp_path / "state" / "web.sqlite") as users:
        assert users.authenticate("root", "a-good-password-1").role == "admin"
    before = key.read_bytes()
    # once there is an admin, init refuses (and keeps the key)
    code, out, err = run(["web", "init", "--admin", "other", "--config", config],
                         "a-good-password-2\n", monkeypatch, capsys)
    assert code == 1 and "already has an admin" in err and len(err.splitlines()) == 1
    assert key.read_bytes() == before


def test_init_refuses_a_short_password(config, tmp_path, monkeypatch, capsys):
    code, out, err = run(["web", "--config", config, "init", "--admin", "root"], "short\n",
                         monkeypatch, capsys)
    assert code == 1 and err.strip() == "callgate web init: the password must be at least 10 " \
                                        "characters"
    assert "short" not in err.replace("at least", "")
    with Users(tmp_path / "state" / "web.sqlite") as users:
        assert users.all() == []


def test_user_commands(config, tmp_path, monkeypatch, capsys):
    assert run(["web", "init", "--admin", "root", "--config", config], "a-good-password-1\n",
               monkeypatch, capsys)[0] == 0
    code, out, _ = run(["web", "user", "add", "ann", "--role", "agent", "--extension", "201",
                        "--extension", "202", "--config", config], "ann-password-1\n",
                       monkeypatch, capsys)
    assert code == 0 and out.strip() == "added ann (agent)"
    code, out, _ = run(["web", "user", "list", "--config", config], "", monkeypatch, capsys)
    assert out.splitlines() == ["ann\tagent\tenabled\t201,202", "root\tadmin\tenabled\t-"]
    assert run(["web", "user", "extensions", "ann", "301", "--config", config], "",
               monkeypatch, capsys)[1].strip() == "extensions of ann: 301"
    assert run(["web", "user", "passwd", "ann", "--config", config], "ann-password-2\n",
               monkeypatch, capsys)[0] == 0
    assert run(["web", "user", "disable", "ann", "--config", config], "", monkeypatch,
               capsys)[0] == 0
    with Users(tmp_path / "state" / "web.sqlite") as users:
        ann = users.get("ann")
        assert ann.extensions == ("301",) and ann.disabled
        users.set_disabled("ann", False)
        assert users.authenticate("ann", "ann-password-2") is not None
    # errors: one line, non-zero
    for argv, stdin, words in (
            (["web", "user", "add", "ann", "--role", "agent"], "ann-password-3\n",
             "already exists"),
            (["web", "user", "remove", "root"], "", "last enabled admin"),
            (["web", "user", "passwd", "nobody"], "whatever-password\n", "no user"),
            (["web", "user", "extensions", "ann", "2o1"], "", "extension '2o1'")):
        code, out, err = run([*argv, "--config", config], stdin, monkeypatch, capsys)
        assert code == 1 and words in err and len(err.splitlines()) == 1, argv
    assert run(["web", "user", "remove", "ann", "--config", config], "", monkeypatch,
               capsys)[0] == 0
    with Users(tmp_path / "state" / "web.sqlite") as users:
        assert [u.username for u in users.all()] == ["root"]


def test_a_bad_web_key_is_named(tmp_path, monkeypatch, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[web]\ndb = "/tmp/x.sqlite"\nlisen = "0.0.0.0:80"\n')
    code, out, err = run(["web", "user", "list", "--config", str(path)], "", monkeypatch, capsys)
    assert code == 2 and err.strip() == "callgate web user list: web.lisen: unknown key"


def test_the_users_file_is_sqlite_with_wal(users, tmp_path):
    users.add("ann", "agent", "long-enough-1")
    mode = sqlite3.connect(tmp_path / "web.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
