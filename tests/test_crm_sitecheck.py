"""`callgate crm test` against each vendor's fake (tests/crm_fakes.py) over real HTTPS:
found, not found, ambiguous, bad credentials, TLS failure, wrong base URL, --verify,
each with its steps, its diagnosis and its exit status (0 / 3 / 1 / 2)."""

from __future__ import annotations

import json
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
    assert "6465550134" not in out and ada not in out       # number and id masked
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
    assert code == 3 and "result: no customer found" in out and "9876" not in out


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
