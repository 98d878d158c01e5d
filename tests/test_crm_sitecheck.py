"""`callgate crm test` against each vendor's fake (tests/crm_fakes.py) over real HTTPS:
found, not found, ambiguous, bad credentials, TLS failure, wrong base URL, --verify,
each with its steps, its diagnosis and its exit status (0 / 3 / 1 / 2)."""

from __future__ import annotations

import json
import re
import socket

import pytest
import trustme

from callgate import cli
from callgate.crm.directory import Directory
from callgate.privacy import mask
from crm_fakes import VENDORS
from https_server import HttpsServer, Reply, secret_file

CALLER = "+16465550134"
OAUTH = ("salesforce", "zoho", "dataverse")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def write_config(tmp_path, crm: dict) -> str:
    path = tmp_path / "callgate.toml"
    path.write_text("[crm]\n" + "".join(f"{json.dumps(k)} = {toml_value(v)}\n"
                                        for k, v in crm.items()))
    return str(path)


def without_hosts(out: str) -> str:
    """The output without the fakes' loopback ports and the base_url line (which names
    the ca_bundle's temporary path): either may hold digits a test looks for."""
    shown = "\n".join(line for line in out.splitlines() if not line.startswith("base_url:"))
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", shown)


def crm_test(capsys, config, *args, secret=None, monkeypatch=None):
    if secret is not None:
        monkeypatch.setattr("callgate.crm.sitecheck.getpass.getpass", lambda prompt: secret)
    code = cli.main(["crm", "test", "--config", config, *args])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(params=list(VENDORS))
def vendor(request, tmp_path):
    with VENDORS[request.param](tmp_path) as fake:
        yield fake


def test_found(vendor, tmp_path, capsys):
    vendor.add("Dora Decoy", phone="(212) 555-0134")
    ada = vendor.add("Ada Lovelace", phone="(646) 555-0134")
    code, out = crm_test(capsys, write_config(tmp_path, vendor.crm(tmp_path)), "--phone", CALLER)
    assert code == 0, out
    assert "DNS  127.0.0.1:" in out and "TLS  127.0.0.1:" in out
    assert "certificate for 127.0.0.1, localhost, expires " in out and " days) in " in out
    assert ("token   POST" in out) == (vendor.preset in OAUTH)
    assert "request GET " in out or "request POST " in out
    assert "-> HTTP 200 in " in out
    assert f"result: customer found: id {mask(ada)}, Ada Lovelace" in out
    assert "6465550134" not in out and ada not in without_hosts(out)    # number, id masked
    for name in ("TOKEN", "CLIENT_SECRET", "API_TOKEN"):    # no credential shown
        if hasattr(vendor, name):
            assert getattr(vendor, name) not in out


def test_not_found(vendor, tmp_path, capsys):
    vendor.add("Dora Decoy", phone="(212) 555-0134")
    code, out = crm_test(capsys, write_config(tmp_path, vendor.crm(tmp_path)), "--phone", CALLER)
    assert code == 3 and "result: no customer found" in out


def test_identifier_not_found_when_it_is_another_customers_pin(vendor, tmp_path, capsys):
    vendor.add("Bob Byron", ident="7007", pin="9876")
    code, out = crm_test(capsys, write_config(tmp_path, vendor.crm(tmp_path)),
                         "--identifier", "9876")
    assert code == 3 and "result: no customer found" in out and "9876" not in without_hosts(out)


def test_ambiguous(vendor, tmp_path, capsys):
    vendor.add("Ada Lovelace", phone="(646) 555-0134")
    vendor.add("Bob Lovelace", mobile="646-555-0134")
    code, out = crm_test(capsys, write_config(tmp_path, vendor.crm(tmp_path)), "--phone", CALLER)
    assert code == 3 and "result: several customers (2)" in out
    assert "asked for an identifier" in out


def test_bad_credentials(vendor, tmp_path, capsys):
    crm = vendor.crm(tmp_path)
    key = next(k for k in ("client_secret_file", "token_file", "key_file") if k in crm["auth"])
    crm["auth"][key] = bad = secret_file(tmp_path, "wrong-credential", "not-the-secret")
    code, out = crm_test(capsys, write_config(tmp_path, crm), "--phone", CALLER)
    assert code == 1, out
    if vendor.preset == "zoho":          # Zoho answers HTTP 200 {"error": "invalid_client"}
        assert (f"diagnosis: the token endpoint answered without a token (invalid_client): "
                f"check the client id, the secret in {bad}") in out
    elif vendor.preset in OAUTH:
        assert "from the token endpoint (invalid_client): check the client id and the " \
               f"secret in {bad}" in out
    else:
        assert f"diagnosis: 401 from the API: the credentials were refused (check {bad}" in out
    assert "not-the-secret" not in out


def test_tls_failure(vendor, tmp_path, capsys):
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    crm = vendor.crm(tmp_path) | {"ca_bundle": str(other)}
    code, out = crm_test(capsys, write_config(tmp_path, crm), "--phone", CALLER)
    assert code == 1 and "certificate refused" in out
    assert f"diagnosis: the certificate is not signed by the CA in {other}: set [crm] " \
           f"ca_bundle" in out
    assert "request " not in out                 # nothing was sent to an untrusted host


def test_wrong_base_url(vendor, tmp_path, capsys):
    """base_url (or, where the token comes first, the token host) names a host that is
    not the API: a status page answering 200 {"status": "ok"} to everything."""
    with HttpsServer(tmp_path, ca=vendor.ca,
                     handler=lambda req: Reply.json({"status": "ok"})) as page:
        crm = vendor.crm(tmp_path)
        if vendor.preset == "zoho":
            crm["auth"]["token_url"] = page.url + "/oauth/v2/token"
        elif vendor.preset == "dataverse":
            crm["base_url"] = page.url
            crm["auth"]["scope"] = vendor.api.url + "/.default"
            crm["auth"]["token_url"] = vendor.crm(tmp_path)["auth"]["token_url"]
        else:
            crm["base_url"] = page.url
        code, out = crm_test(capsys, write_config(tmp_path, crm), "--phone", CALLER)
    assert code == 1, out
    if vendor.preset in ("salesforce", "zoho"):
        assert "diagnosis: the token endpoint answered without a token" in out
    else:
        assert "HTTP 200 but no field '" in out and "is base_url the API host" in out


def test_verify(vendor, tmp_path, capsys, monkeypatch):
    vendor.add("Ada Lovelace", phone="(646) 555-0134", pin="2468")
    config = write_config(tmp_path, vendor.crm(tmp_path))
    code, out = crm_test(capsys, config, "--phone", CALLER, "--verify", secret="2468",
                         monkeypatch=monkeypatch)
    assert code == 0 and "verify: verified (low assurance)" in out and "2468" not in out
    code, out = crm_test(capsys, config, "--phone", CALLER, "--verify", secret="1111",
                         monkeypatch=monkeypatch)
    assert code == 3 and "verify: refused: the pin does not match" in out


def test_connection_refused(tmp_path, capsys):
    with VENDORS["hubspot"](tmp_path) as fake:
        crm = fake.crm(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    crm["base_url"] = f"https://127.0.0.1:{port}"
    code, out = crm_test(capsys, write_config(tmp_path, crm), "--phone", CALLER)
    assert code == 1 and "no TLS session (connection refused)" in out
    assert f"diagnosis: 127.0.0.1:{port} refused the connection" in out


def test_bad_config_and_arguments(tmp_path, capsys):
    bad = write_config(tmp_path, {"kind": "hubspot", "auth": {"kind": "none"}, "bogus": 1})
    code, out = crm_test(capsys, bad, "--phone", CALLER)
    assert code == 2 and "crm.bogus: unknown key" in out
    loose = secret_file(tmp_path, "loose", "x", mode=0o644)
    cfg = write_config(tmp_path, {"kind": "hubspot", "auth": {"kind": "bearer",
                                                              "token_file": loose}})
    code, out = crm_test(capsys, cfg, "--phone", CALLER)
    assert code == 2 and "open to group or others" in out
    code, out = crm_test(capsys, cfg, "--identifier", "12ab")
    assert code == 2 and "--identifier takes digits" in out
    with pytest.raises(SystemExit) as exit_:
        cli.main(["crm", "test", "--config", cfg])              # neither --phone nor --identifier
    assert exit_.value.code == 2


def test_the_embedded_directory(tmp_path, capsys, monkeypatch):
    db = tmp_path / "directory.sqlite"
    with Directory(db) as d:
        d.add("70012345", "Ada Lovelace", ["(646) 555-0134"])
        d.set_secret("70012345", "pin", "2468")
    config = write_config(tmp_path, {"kind": "directory", "directory": str(db)})
    code, out = crm_test(capsys, config, "--phone", CALLER, "--verify", secret="2468",
                         monkeypatch=monkeypatch)
    assert code == 0 and "customer found: id ******45, Ada Lovelace" in out
    assert "verified (high assurance)" in out
    code, out = crm_test(capsys, config, "--identifier", "99999999")
    assert code == 3


# --- review findings on issue 12 ------------------------------------------------------------

def request_paths(out: str) -> list[str]:
    """The path and query of every request line (what follows the host)."""
    return [m.group(1) for m in re.finditer(r"^(?:request|token  ) [A-Z]+ https://[^/\s]+(\S*)",
                                            out, re.M)]


@pytest.mark.parametrize("preset, typed", [("salesforce", "000005001"), ("dataverse", "0077123")])
def test_a_number_identifier_with_leading_zeros_is_masked(preset, typed, tmp_path, capsys):
    """A number-typed field gets the keyed digits as a number (leading zeros dropped):
    that form is hidden too."""
    with VENDORS[preset](tmp_path) as fake:
        ada = fake.add("Ada Lovelace", ident=str(int(typed)))
        code, out = crm_test(capsys, write_config(tmp_path, fake.crm(tmp_path)),
                             "--identifier", typed)
    assert code == 0 and f"customer found: id {mask(ada)}" in out, out
    assert str(int(typed)) not in without_hosts(out) and typed not in out


def test_verify_hides_the_customer_id_in_its_request(vendor, tmp_path, capsys, monkeypatch):
    ada = vendor.add("Ada Lovelace", phone="(646) 555-0134", pin="2468")
    code, out = crm_test(capsys, write_config(tmp_path, vendor.crm(tmp_path)), "--phone",
                         CALLER, "--verify", secret="2468", monkeypatch=monkeypatch)
    assert code == 0 and "verify: verified" in out, out
    assert len(request_paths(out)) >= 2                     # the lookup and the verify shown
    assert ada not in without_hosts(out)


def test_verify_without_a_secret_on_file(vendor, tmp_path, capsys, monkeypatch):
    vendor.add("Ada Lovelace", phone="(646) 555-0134", pin=None)
    code, out = crm_test(capsys, write_config(tmp_path, vendor.crm(tmp_path)), "--phone",
                         CALLER, "--verify", secret="2468", monkeypatch=monkeypatch)
    assert code == 3 and "verify: no pin on file for this customer" in out, out


@pytest.mark.parametrize("given", ["", None])
def test_verify_with_no_secret_given(given, tmp_path, capsys, monkeypatch):
    """`--verify </dev/null`: getpass meets the end of input (EOFError) or an empty line."""
    def ask(prompt):
        if given is None:
            raise EOFError
        return given

    with VENDORS["hubspot"](tmp_path) as fake:
        fake.add("Ada Lovelace", phone="(646) 555-0134", pin="2468")
        monkeypatch.setattr("callgate.crm.sitecheck.getpass.getpass", ask)
        code = cli.main(["crm", "test", "--config", write_config(tmp_path, fake.crm(tmp_path)),
                         "--phone", CALLER, "--verify"])
        out = capsys.readouterr()
        assert code == 2 and "callgate crm test: --verify: no secret given" in out.out + out.err
        assert len(fake.api_requests()) == 1                # the lookup, no verify sent


def test_a_ca_bundle_that_is_not_pem(tmp_path, capsys):
    from callgate.cli import check_config
    from callgate.config import ConfigError

    with VENDORS["hubspot"](tmp_path) as fake:
        crm = fake.crm(tmp_path)
    bad = tmp_path / "ca.der"
    bad.write_bytes(b"\x30\x82\x01\x0a not a PEM certificate")
    crm["ca_bundle"] = str(bad)
    config = write_config(tmp_path, crm)
    code, out = crm_test(capsys, config, "--phone", CALLER)
    assert code == 2 and f"crm.ca_bundle: {bad} holds no PEM certificate" in out, out
    with pytest.raises(ConfigError, match="crm.ca_bundle: .* holds no PEM certificate"):
        check_config(config)


@pytest.mark.parametrize("typed", ["²", "١٢٣", "12 3"])
def test_identifier_digits_are_ascii(typed, tmp_path, capsys):
    with VENDORS["salesforce"](tmp_path) as fake:
        code, out = crm_test(capsys, write_config(tmp_path, fake.crm(tmp_path)),
                             "--identifier", typed)
        assert code == 2 and "--identifier takes digits" in out, out
        assert fake.api_requests() == []


@pytest.mark.parametrize("args, says", [
    (["--phone", "abc"], "--phone: not a phone number"),
    (["--phone", "12"], "--phone: not a phone number"),
    (["--identifier", "5001", "--kind", "foo"], "--kind foo: no field configured for "
                                                "identifier kind 'foo' (crm.identifier_fields)"),
    (["--phone", CALLER, "--verify", "--secret-kind", "dob"],
     "--secret-kind dob: no field configured for verification kind 'dob' (crm.verify_fields)"),
])
def test_arguments_the_config_cannot_serve_are_refused_before_any_request(
        args, says, vendor, tmp_path, capsys, monkeypatch):
    vendor.add("Ada Lovelace", phone="(646) 555-0134", ident="5001", pin="2468")
    code, out = crm_test(capsys, write_config(tmp_path, vendor.crm(tmp_path)), *args,
                         secret="2468", monkeypatch=monkeypatch)
    assert code == 2 and f"callgate crm test: {says}" in out, out
    assert "request " not in out and vendor.api_requests() == []


def test_the_directory_phone_argument_is_checked(tmp_path, capsys):
    db = tmp_path / "directory.sqlite"
    Directory(db).close()
    code, out = crm_test(capsys, write_config(tmp_path, {"directory": str(db)}),
                         "--phone", "12")
    assert code == 2 and "--phone: not a phone number" in out


def test_a_missing_directory_is_not_created(tmp_path, capsys, monkeypatch):
    from callgate.crm import directory as directory_module

    default = tmp_path / "var" / "directory.sqlite"
    monkeypatch.setattr(directory_module, "DEFAULT_PATH", default)
    code = cli.main(["crm", "test", "--phone", CALLER])          # no --config: the default
    out = capsys.readouterr()
    assert code == 2 and f"the directory {default} does not exist" in out.out + out.err
    named = tmp_path / "named.sqlite"
    code, out = crm_test(capsys, write_config(tmp_path, {"directory": str(named)}),
                         "--identifier", "5001")
    assert code == 2 and f"the directory {named} does not exist" in out
    assert not default.exists() and not named.exists() and not default.parent.exists()


def test_unread_pages_leave_the_lookup_undecided(tmp_path, capsys):
    with VENDORS["salesforce"](tmp_path) as fake:
        fake.batch_size = 1
        fake.add("Ada Lovelace", ident="5001")
        fake.add("Ada Again", ident="5001")
        code, out = crm_test(capsys, write_config(tmp_path, fake.crm(tmp_path, max_pages=1)),
                             "--identifier", "5001")
    assert code == 3 and "result: undecided:" in out and "crm.max_pages" in out, out


def test_a_short_identifier_does_not_mask_the_host(vendor, tmp_path, capsys):
    code, out = crm_test(capsys, write_config(tmp_path, vendor.crm(tmp_path)),
                         "--identifier", "1")
    assert code == 3, out
    assert re.search(r"^request [A-Z]+ " + re.escape(vendor.api.url) + "/", out, re.M), out


@pytest.mark.parametrize("args", [["--phone", CALLER],
                                  ["--identifier", "6465550134", "--kind", "phone"]])
def test_the_callers_last_four_digits_are_hidden(args, vendor, tmp_path, capsys):
    vendor.add("Ada Lovelace", phone="(646) 555-0134")
    code, out = crm_test(capsys, write_config(tmp_path, vendor.crm(tmp_path)), *args)
    assert code == 0, out
    paths = request_paths(out)
    assert paths and not any("0134" in p for p in paths), paths
