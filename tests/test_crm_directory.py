"""The embedded customer directory: a real SQLite file, real scrypt, the real CLI."""

import io
import os
from pathlib import Path

import pytest

from callgate import cli
from callgate.crm import directory as directory_module
from callgate.crm.base import Crm, Customer
from callgate.crm.directory import Directory, DirectoryError

FIXTURE = Path(__file__).parent / "fixtures" / "customers.csv"
JANE = Customer("12345678", "Jane Smith")


def raw_bytes(path) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            out += Path(f"{path}{suffix}").read_bytes()
    return out


@pytest.fixture
def directory(tmp_path):
    d = Directory(tmp_path / "directory.sqlite")
    d.import_csv(FIXTURE)
    yield d
    d.close()


def count(d: Directory) -> int:
    return d.db.execute("SELECT COUNT(*) FROM customers").fetchone()[0]


def test_is_a_backend(directory):
    assert isinstance(directory, Crm)
    assert directory.name == "directory"


def test_lookups_from_the_sample(directory):
    for form in ("+12015550123", "2015550123", "(201) 555-0123", "1-201-555-0123"):
        hit = directory.lookup_phone(form)
        assert (hit.status, hit.customers) == ("hit", (JANE,)), form
    assert directory.lookup_phone("+12125550188").customers == (JANE,)   # her second number
    assert directory.lookup_phone("+12025550100").status == "miss"
    assert directory.lookup_phone("P").status == "miss"                  # withheld marker
    shared = directory.lookup_phone("3125550176")
    assert shared.status == "ambiguous"
    assert [c.name for c in shared.customers] == ["Tom Okafor", "Lena Okafor"]
    assert directory.lookup_identifier("customer_id", "12345678").customers == (JANE,)
    assert directory.lookup_identifier("customer_id", "12345679").status == "miss"
    assert directory.lookup_identifier("account", "55501234").customers == (JANE,)
    assert directory.lookup_identifier("account", "12345678").status == "miss"
    assert directory.lookup_identifier("phone", "4155550142").customers[0].id == "23456789"
    assert directory.lookup_identifier("customer_id", "12*45").status == "miss"
    assert directory.lookup_identifier("customer_id", "12345678").latency_ms >= 0


def test_verify_right_wrong_and_unknown(directory, monkeypatch):
    calls = []
    real = directory_module.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(directory_module.hmac, "compare_digest", spy)
    assert directory.verify(JANE, "pin", "4271").status == "verified"
    assert directory.verify(JANE, "pin", "4270").status == "rejected"
    assert directory.verify(JANE, "pin", "").status == "rejected"
    assert directory.verify(JANE, "dob", "4271").status == "rejected"       # no such secret
    assert directory.verify(Customer("99999999"), "pin", "4271").status == "rejected"
    assert directory.verify(Customer("45678901"), "pin", "0000").status == "rejected"  # no PIN
    assert len(calls) == 6          # every verdict, known customer or not, went through it
    assert all(len(a) == 32 and len(b) == 32 for a, b in calls)
    assert directory.verify(JANE, "pin", "4271").assurance == "high"


def test_unknown_customer_costs_a_full_scrypt(directory, monkeypatch):
    runs = []
    real = directory_module.scrypt_digest
    monkeypatch.setattr(directory_module, "scrypt_digest",
                        lambda s, salt, n, r, p, dklen=32: runs.append(n) or real(s, salt, n, r,
                                                                                  p, dklen))
    directory.verify(Customer("99999999"), "pin", "1111")
    directory.verify(JANE, "pin", "1111")
    assert runs == [2 ** 14, 2 ** 14]


def test_secrets_stored_only_as_salted_scrypt(tmp_path, directory):
    path = tmp_path / "directory.sqlite"
    raw = raw_bytes(path)
    assert b"Jane Smith" in raw and b"+12015550123" in raw
    for pin in (b"4271", b"8305", b"6619", b"9052"):
        assert pin not in raw, pin
    rows = directory.db.execute("SELECT algorithm, n, r, p, salt, hash FROM secrets").fetchall()
    assert len(rows) == 4
    assert {(a, n, r, p) for a, n, r, p, _, _ in rows} == {("scrypt", 2 ** 14, 8, 1)}
    assert len({salt for *_, salt, _ in rows}) == 4 and all(len(s) == 16 for *_, s, _ in rows)
    # the same PIN for two customers still gives two different hashes
    directory.set_secret("23456789", "pin", "4271")
    hashes = directory.db.execute("SELECT hash FROM secrets WHERE customer_id IN "
                                  "('12345678', '23456789')").fetchall()
    assert hashes[0] != hashes[1]
    directory.close()
    assert b"4271" not in raw_bytes(path)


def test_weak_hashes_are_upgraded_on_success(tmp_path):
    path = tmp_path / "d.sqlite"
    with Directory(path, scrypt_n=2 ** 10) as weak:
        weak.add("12345678", "Jane Smith", ["2015550123"])
        weak.set_secret("12345678", "pin", "4271")
    with Directory(path) as d:
        assert d.verify(JANE, "pin", "0000").status == "rejected"
        assert d.db.execute("SELECT n FROM secrets").fetchone()[0] == 2 ** 10
        assert d.verify(JANE, "pin", "4271").status == "verified"
        assert d.db.execute("SELECT n FROM secrets").fetchone()[0] == 2 ** 14
        assert d.verify(JANE, "pin", "4271").status == "verified"


def test_db_file_is_private(tmp_path, directory):
    assert os.stat(tmp_path / "directory.sqlite").st_mode & 0o777 == 0o600
    assert directory.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    loose = tmp_path / "sub" / "loose.sqlite"
    Directory(loose).close()
    os.chmod(loose, 0o644)
    Directory(loose).close()
    assert os.stat(loose).st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "sub").st_mode & 0o777 == 0o700


GOOD_HEAD = "id,name,phones,pin,account\n11111111,Ann Lee,2015550101,1234,777\n"


@pytest.mark.parametrize("bad_row, column", [
    ("22222222,Bob Roe,555,1234,", "phones"),
    ("22222222,Bob Roe,2015550102,12a4,", "pin"),
    ("2222x222,Bob Roe,2015550102,1234,", "id"),
    (",Bob Roe,2015550102,1234,", "id"),
    ("22222222,Bob Roe,2015550102,1234,77-x", "account"),
    ("11111111,Bob Roe,2015550102,1234,", "id"),          # the same id as row 2
])
def test_bad_row_names_row_and_column_and_imports_nothing(tmp_path, bad_row, column):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(GOOD_HEAD + "33333333,Cy Doe,2015550103,,\n" + bad_row + "\n")
    with Directory(tmp_path / "d.sqlite") as d:
        with pytest.raises(DirectoryError) as err:
            d.import_csv(csv_path)
        message = str(err.value)
        assert f"row 4, column {column}" in message
        assert "\n" not in message and "12a4" not in message and "77-x" not in message
        assert count(d) == 0


def test_failed_import_leaves_existing_directory_untouched(tmp_path, directory):
    before = list(directory.customers())
    new = tmp_path / "more.csv"
    new.write_text("id,name,phones\n70000001,New One,2015550111\n12345678,Dup,2015550112\n")
    with pytest.raises(DirectoryError, match="row 3, column id: .*already exists"):
        directory.import_csv(new)
    assert list(directory.customers()) == before
    assert directory.lookup_identifier("customer_id", "70000001").status == "miss"
    # with --replace the same file goes in, and Jane keeps her PIN
    assert directory.import_csv(new, replace=True) == 2
    assert directory.lookup_identifier("customer_id", "12345678").customers[0].name == "Dup"
    assert directory.lookup_phone("2015550123").status == "miss"
    assert directory.verify(Customer("12345678"), "pin", "4271").status == "verified"


def test_csv_headers_and_identifier_forms(tmp_path):
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("\ufeffCustomer_ID,Name,Phone,identifiers,secret:dob,tracking\n"
                        "42,A B,+44 20 7946 0000,account:9988;member:5,19800131,111;222\n")
    with Directory(tmp_path / "d.sqlite") as d:
        assert d.import_csv(csv_path) == 1
        (c,) = d.customers()
        assert c["identifiers"] == {"account": ["9988"], "member": ["5"],
                                    "tracking": ["111", "222"]}
        assert c["phones"] == ["+442079460000"] and c["secrets"] == ["dob"]
        assert d.verify(Customer("42"), "dob", "19800131").status == "verified"
    for text, needle in [("name,phones\nA,1\n", "no id column"),
                         ("", "empty file"),
                         ("id,id\n1,2\n", "appears twice"),
                         ("id,Bad Kind\n1,2\n", "column bad kind"),
                         ("id,name\n1,a,b,c\n", "row 2: 4 cells")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with Directory(tmp_path / "e.sqlite") as d, pytest.raises(DirectoryError, match=needle):
            d.import_csv(bad)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,name\n1,Jos\xe9\n".encode("latin-1"))
    with Directory(tmp_path / "e.sqlite") as d, pytest.raises(DirectoryError, match="UTF-8"):
        d.import_csv(latin)


def test_export_has_no_secrets_and_round_trips(tmp_path, directory):
    out = io.StringIO()
    assert directory.export_csv(out) == 5
    text = out.getvalue()
    assert text.splitlines()[0] == "id,name,phones,account"
    assert "12345678,Jane Smith,+12015550123;+12125550188,55501234" in text
    for secret in ("pin", "4271", "8305", "scrypt"):
        assert secret not in text
    (tmp_path / "out.csv").write_text(text)
    with Directory(tmp_path / "copy.sqlite") as copy:
        assert copy.import_csv(tmp_path / "out.csv") == 5
        assert list(copy.customers()) == [dict(c, secrets=[]) for c in directory.customers()]


def test_add_remove_and_errors(directory):
    directory.add("70000001", "Kim Ito", ["+1 646 555 0100"], [("account", "5550")])
    assert directory.lookup_identifier("account", "5550").customers == (
        Customer("70000001", "Kim Ito"),)
    with pytest.raises(DirectoryError, match=r"\*\*\*\*\*\*01 already exists"):
        directory.add("70000001", "Again")
    with pytest.raises(DirectoryError, match="phone number"):
        directory.add("70000002", "X", ["12"])
    with pytest.raises(DirectoryError, match="customer_id is built in"):
        directory.add("70000002", "X", [], [("customer_id", "1")])
    with pytest.raises(DirectoryError, match="no customer"):
        directory.set_secret("70000009", "pin", "1234")
    assert directory.remove("70000001") is True
    assert directory.remove("70000001") is False
    assert directory.lookup_identifier("account", "5550").status == "miss"
    assert directory.db.execute("SELECT COUNT(*) FROM identifiers WHERE customer_id = "
                                "'70000001'").fetchone()[0] == 0


def test_database_trouble_is_an_error_status_not_an_exception(tmp_path):
    d = Directory(tmp_path / "d.sqlite")
    d.db.close()                      # the file went away under us
    result = d.lookup_phone("2015550123")
    assert result.status == "error" and "\n" not in result.error
    assert d.verify(JANE, "pin", "4271").status == "error"


def test_unopenable_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not sqlite" * 200)
    with pytest.raises(DirectoryError, match="bad.sqlite") as err:
        Directory(bad)
    assert "\n" not in str(err.value)


# -- the CLI ---------------------------------------------------------------------------

def run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(["directory", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_import_list_export(tmp_path, capsys):
    db = str(tmp_path / "d.sqlite")
    code, out, _ = run(capsys, "import", str(FIXTURE), "--db", db)
    assert code == 0 and "imported 5 customers" in out
    assert os.stat(db).st_mode & 0o777 == 0o600
    code, out, _ = run(capsys, "list", "--db", db)
    assert code == 0 and len(out.splitlines()) == 5
    assert "******78\tJane Smith" in out
    for full in ("12345678", "2015550123", "4271"):
        assert full not in out
    code, out, _ = run(capsys, "export", "--db", db)
    assert code == 0 and out.startswith("id,name,phones,account\n") and "4271" not in out
    target = tmp_path / "export.csv"
    code, _, _ = run(capsys, "export", "--db", db, "-o", str(target))
    assert code == 0 and target.read_text() == out
    assert os.stat(target).st_mode & 0o777 == 0o600


def test_cli_bad_csv_is_one_line_and_nothing_imported(tmp_path, capsys):
    db = tmp_path / "d.sqlite"
    bad = tmp_path / "bad.csv"
    bad.write_text(GOOD_HEAD + "22222222,Bob Roe,555,1234,\n")
    code, out, err = run(capsys, "import", str(bad), "--db", str(db))
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0
    assert "row 3, column phones" in err
    with Directory(db) as d:
        assert count(d) == 0
    code, _, err = run(capsys, "import", str(tmp_path / "missing.csv"), "--db", str(db))
    assert code == 1 and "cannot read" in err and "Traceback" not in err


def test_cli_add_remove_set_secret_from_stdin(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "d.sqlite")
    code, out, _ = run(capsys, "add", "12345678", "--name", "Jane Smith", "--phone",
                       "2015550123", "--identifier", "account:55501234", "--db", db)
    assert code == 0 and out.strip() == "added customer ******78"
    code, out, err = run(capsys, "set-secret", "12345678", "--kind", "pin", "--db", db,
                         stdin="4271\n", monkeypatch=monkeypatch)
    assert code == 0 and "4271" not in out + err
    with Directory(db) as d:
        assert d.verify(JANE, "pin", "4271").status == "verified"
        assert d.lookup_identifier("account", "55501234").customers == (JANE,)
    assert b"4271" not in raw_bytes(db)
    code, _, err = run(capsys, "set-secret", "12345678", "--db", db, stdin="12ab\n",
                       monkeypatch=monkeypatch)
    assert code == 1 and "must be 1 to 32 digits" in err and "12ab" not in err
    code, _, err = run(capsys, "set-secret", "99", "--db", db, stdin="1234\n",
                       monkeypatch=monkeypatch)
    assert code == 1 and "no customer" in err
    with pytest.raises(SystemExit):                    # never a secret on the command line
        cli.main(["directory", "set-secret", "12345678", "--pin", "4271", "--db", db])
    capsys.readouterr()
    code, out, _ = run(capsys, "remove", "12345678", "--db", db)
    assert code == 0 and "removed customer ******78" in out
    code, _, err = run(capsys, "remove", "12345678", "--db", db)
    assert code == 1 and "no customer ******78" in err


def test_cli_set_secret_on_a_terminal_asks_twice(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "d.sqlite")
    with Directory(db) as d:
        d.add("12345678", "Jane Smith")

    class Tty(io.StringIO):
        def isatty(self):
            return True

    answers = iter(["4271", "4217"])
    monkeypatch.setattr("sys.stdin", Tty(""))
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert cli.main(["directory", "set-secret", "12345678", "--db", db]) == 1
    assert "differ" in capsys.readouterr().err
    answers = iter(["4271", "4271"])
    assert cli.main(["directory", "set-secret", "12345678", "--db", db]) == 0
    with Directory(db) as d:
        assert d.verify(JANE, "pin", "4271").status == "verified"


def test_cli_db_path_from_config(tmp_path, capsys):
    db = tmp_path / "from-config.sqlite"
    config = tmp_path / "callgate.toml"
    config.write_text(f'[crm]\nkind = "directory"\ndirectory = "{db}"\n')
    code, _, _ = run(capsys, "import", str(FIXTURE), "--config", str(config))
    assert code == 0 and db.exists()
    config.write_text("[crm]\ndirectory = 5\n")
    code, _, err = run(capsys, "list", "--config", str(config))
    assert code == 2 and "crm.directory: expected a string" in err


def test_cli_directory_without_action_shows_help(capsys):
    assert cli.main(["directory"]) == 2
    assert "import" in capsys.readouterr().err


def test_fixture_has_the_demo_customer():
    rows = FIXTURE.read_text().splitlines()
    assert rows[0].startswith("id,name,phones,pin")
    assert any(r.startswith("12345678,Jane Smith,") and ",4271," in r for r in rows)


def test_lookups_say_which_secrets_are_on_file(directory):
    """Issue 15: the directory knows; Tom Okafor has no PIN, Lena on his number has one."""
    jane = directory.lookup_phone("+12015550123").customers[0]
    assert jane.secrets == frozenset({"pin"})
    both = {c.name: c.secrets for c in directory.lookup_phone("+13125550176").customers}
    assert both == {"Tom Okafor": frozenset(), "Lena Okafor": frozenset({"pin"})}
    assert directory.lookup_identifier("customer_id", "45678901").customers[0].secrets == \
        frozenset()


# -- issue 16: CSV edges, validate-then-hash, export onto an old file ------------------------

def test_unbalanced_quote_is_refused_naming_its_row(tmp_path, capsys):
    bad = tmp_path / "quote.csv"
    bad.write_text('id,name,pin\n11111111,Ann,1111\n22222222,"Bob Roe,2222\n'
                   '33333333,Cy,3333\n44444444,Di,4444\n')
    db = tmp_path / "d.sqlite"
    with Directory(db) as d:
        with pytest.raises(DirectoryError, match=r"row 3: a quote opened on this row is "
                                                 r"never closed"):
            d.import_csv(bad)
        assert count(d) == 0
    code, out, err = run(capsys, "import", str(bad), "--db", str(db))
    assert code == 1 and out == "" and "row 3" in err and err.count("\n") == 1


def test_a_clash_with_the_directory_is_found_before_any_hash(tmp_path, directory,
                                                             monkeypatch):
    runs = []
    real = directory_module.scrypt_digest
    monkeypatch.setattr(directory_module, "scrypt_digest",
                        lambda *a, **k: runs.append(1) or real(*a, **k))
    rows = "".join(f"{90000000 + i},Name {i},,{1000 + i},\n" for i in range(50))
    clash = tmp_path / "clash.csv"
    clash.write_text("id,name,phones,pin,account\n" + rows + "12345678,Again,,1234,\n")
    with pytest.raises(DirectoryError, match=r"row 52, column id: customer \*+78 already "
                                             r"exists"):
        directory.import_csv(clash)
    assert runs == [] and count(directory) == 5


def test_import_hashes_on_several_threads_and_tells_progress(tmp_path, monkeypatch):
    threads = set()
    real = directory_module.scrypt_digest

    def spy(*a, **k):
        import threading
        threads.add(threading.current_thread().name)
        return real(*a, **k)

    monkeypatch.setattr(directory_module, "scrypt_digest", spy)
    monkeypatch.setattr(directory_module.os, "cpu_count", lambda: 4)
    many = tmp_path / "many.csv"
    many.write_text("id,name,pin,secret:dob\n" +
                    "".join(f"{70000000 + i},N{i},{2000 + i},1980010{i % 9 + 1}\n"
                            for i in range(12)))
    told = []
    with Directory(tmp_path / "d.sqlite", scrypt_n=16) as d:
        assert d.import_csv(many, progress=lambda done, total: told.append((done, total))) == 12
        hashed_on = set(threads)
        assert d.verify(Customer("70000005"), "pin", "2005").status == "verified"
        assert d.verify(Customer("70000005"), "dob", "19800106").status == "verified"
        assert d.verify(Customer("70000005"), "pin", "2006").status == "rejected"
    assert told[0] == (0, 24) and told[-1] == (24, 24)
    assert [done for done, _ in told] == list(range(25))
    assert hashed_on and all(name.startswith("callgate-hash") for name in hashed_on)


def test_progress_bar_only_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert cli._progress_bar(io.StringIO(), "hashing") is None
    screen = Terminal()
    bar = cli._progress_bar(screen, "hashing secrets")
    for done in range(5):
        bar(done, 4)
    shown = screen.getvalue()
    assert shown.count("\r") == 5 and shown.endswith("4/4\n")
    assert "[" + "#" * 30 + "]" in shown


def test_export_onto_an_existing_open_file_makes_it_private(tmp_path, capsys, directory):
    target = tmp_path / "old.csv"
    target.write_text("stale\n")
    os.chmod(target, 0o644)
    code, _, _ = run(capsys, "export", "--db", str(directory.path), "-o", str(target))
    assert code == 0 and "12345678" in target.read_text()
    assert os.stat(target).st_mode & 0o777 == 0o600


def test_list_escapes_control_characters_in_a_name(tmp_path, capsys):
    forged = tmp_path / "forged.csv"
    forged.write_text('id,name\n11111111,"Ann\x1b]0;owned\x07\nroot"\n')
    db = str(tmp_path / "d.sqlite")
    assert run(capsys, "import", str(forged), "--db", db)[0] == 0
    code, out, _ = run(capsys, "list", "--db", db)
    assert code == 0 and out.count("\n") == 1 and "\x1b" not in out
    assert "Ann\\x1b]0;owned\\x07\\nroot" in out
