"""The generic REST connector against a real HTTPS server on loopback."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time

import pytest
import trustme

from callgate.config import ConfigError, Table
from callgate.crm import Customer, make_crm
from callgate.crm.breaker import CircuitBreaker
from https_server import HttpsServer, Reply, secret_file

TOKEN = "tok-SECRET-5f1e9c"
PIN = "739158"
IDENT = "98765432"


@pytest.fixture
def srv(tmp_path):
    with HttpsServer(tmp_path) as server:
        yield server


def reference(srv, tmp_path, **over) -> Table:
    data = {"kind": "reference", "base_url": srv.url + "/v1", "ca_bundle": str(srv.ca_path),
            "auth": {"kind": "bearer", "token_file": secret_file(tmp_path, "token", TOKEN)},
            "budget": 2.0}
    data.update(over)
    return Table(data, "crm")


def customers(*pairs):
    return Reply.json({"customers": [{"id": i, "name": n} for i, n in pairs]})


@pytest.fixture
def backend_of(srv, tmp_path):
    made = []

    def make(**over):
        b = make_crm(reference(srv, tmp_path, **over), tmp_path / "dir.sqlite")
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()


# --- lookups and verify ---------------------------------------------------------------

def test_lookup_hit_miss_ambiguous(srv, backend_of):
    srv.route({
        ("GET", "/v1/customers/by-phone/+15551234567"): customers(("1001", "Ada Lovelace")),
        ("GET", "/v1/customers/by-phone/+15550000000"): customers(),
        ("GET", "/v1/customers/by-phone/+15559999999"): customers(("1", "A"), ("2", "B")),
        ("GET", "/v1/customers/by-identifier/account/" + IDENT): customers(("1001", "Ada")),
    })
    b = backend_of()
    hit = b.lookup_phone("+15551234567")
    assert hit.status == "hit" and hit.customers == (Customer("1001", "Ada Lovelace"),)
    assert hit.error is None and hit.latency_ms > 0
    assert b.lookup_phone("+15550000000").status == "miss"
    amb = b.lookup_phone("(555) 999-9999")          # normalised to E.164 with the default country
    assert amb.status == "ambiguous" and [c.id for c in amb.customers] == ["1", "2"]
    assert b.lookup_identifier("account", IDENT).customers[0].id == "1001"
    assert b.lookup_identifier("account", "11").status == "miss"      # the server's 404
    assert srv.sent()[0].headers["accept"] == "application/json"


def test_lookups_say_which_secrets_are_on_file(srv, backend_of):
    """Issue 15: the reference API's `secrets` list; absent means "not said" (None)."""
    srv.route({
        ("GET", "/v1/customers/by-phone/+15551234567"): Reply.json({"customers": [
            {"id": "1001", "name": "Ada", "secrets": ["PIN", "dob"]}]}),
        ("GET", "/v1/customers/by-phone/+15557654321"): Reply.json({"customers": [
            {"id": "1002", "name": "Tom", "secrets": []}]}),
        ("GET", "/v1/customers/by-phone/+15550000001"): customers(("1003", "Lena")),
        ("GET", "/v1/customers/by-phone/+15550000002"): Reply.json({"customers": [
            {"id": "1004", "secrets": "pin"}]}),
    })
    b = backend_of()
    assert b.lookup_phone("+15551234567").customers[0].secrets == frozenset({"pin", "dob"})
    assert b.lookup_phone("+15557654321").customers[0].secrets == frozenset()
    assert b.lookup_phone("+15550000001").customers[0].secrets is None
    bad = b.lookup_phone("+15550000002")
    assert bad.status == "error" and "'secrets' is not a list of kinds" in bad.error


def test_fetch_mode_empty_field_is_no_secret_a_missing_one_an_error(srv, backend_of):
    """Issue 15: a stored field that is null or "" means nothing on file (no_secret, the
    breaker untouched); a field the answer does not have at all is a configuration
    error, as before."""
    srv.route({("GET", "/v1/customers/1/record"): Reply.json({"f": {"ivr_pin": None}}),
               ("GET", "/v1/customers/2/record"): Reply.json({"f": {"ivr_pin": " "}}),
               ("GET", "/v1/customers/3/record"): Reply.json({"f": {}}),
               ("GET", "/v1/customers/4/record"): Reply.json({"f": {"ivr_pin": "2468"}})})
    lookup = {"method": "GET", "url": "/customers/by-phone/{e164}", "results": "customers"}
    by_id = {"method": "GET", "url": "/customers/{kind}/{value}", "results": "customers"}
    b = backend_of(kind="rest", lookup_phone=lookup, lookup_identifier=by_id,
                   verify={"mode": "fetch", "method": "GET", "url": "/customers/{id}/record",
                           "value": "f.{field}"}, verify_fields={"pin": "ivr_pin"})
    assert b.verify(Customer("1"), "pin", "2468").status == "no_secret"
    assert b.verify(Customer("2"), "pin", "2468").status == "no_secret"
    missing = b.verify(Customer("3"), "pin", "2468")
    assert missing.status == "error" and "no field for verification kind 'pin'" in missing.error
    ok = b.verify(Customer("4"), "pin", "2468")
    assert (ok.status, ok.assurance) == ("verified", "low")


def test_verify_yes_and_no(srv, backend_of):
    answers = iter([True, False])
    srv.route({("POST", "/v1/customers/1001/verify"):
               lambda req: Reply.json({"verified": next(answers)})})
    b = backend_of()
    yes = b.verify(Customer("1001"), "pin", PIN)
    no = b.verify(Customer("1001"), "pin", "000000")
    assert (yes.status, yes.assurance, no.status) == ("verified", "high", "rejected")
    first = srv.sent("POST")[0]
    assert first.json == {"kind": "pin", "secret": PIN}
    assert first.headers["content-type"] == "application/json"


def test_verify_answer_must_be_a_boolean(srv, backend_of):
    srv.route({("POST", "/v1/customers/7/verify"): Reply.json({"verified": "yes"})})
    v = backend_of().verify(Customer("7"), "pin", PIN)
    assert v.status == "error" and "true or false" in v.error


# --- auth profiles ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["none", "bearer", "api_key", "basic"])
def test_auth_headers_as_the_server_sees_them(srv, tmp_path, backend_of, kind):
    auth = {"kind": kind}
    if kind == "bearer":
        auth["token_file"] = secret_file(tmp_path, "t", TOKEN)
    elif kind == "api_key":
        auth.update(header="X-Api-Key", key_file=secret_file(tmp_path, "k", "key-SECRET-77"))
    elif kind == "basic":
        auth.update(username="callgate", password_file=secret_file(tmp_path, "p", "pw:SECRET é"))
    srv.route({("GET", "/v1/customers/by-phone/+15551234567"): customers(("1", "A"))})
    assert backend_of(auth=auth).lookup_phone("+15551234567").status == "hit"
    h = srv.sent()[0].headers
    if kind == "none":
        assert "authorization" not in h and "x-api-key" not in h
    elif kind == "bearer":
        assert h["authorization"] == f"Bearer {TOKEN}"
    elif kind == "api_key":
        assert h["x-api-key"] == "key-SECRET-77" and "authorization" not in h
    else:
        user, _, pw = base64.b64decode(h["authorization"].split()[1]).decode().partition(":")
        assert (user, pw) == ("callgate", "pw:SECRET é")


def oauth_server(srv, tokens, api):
    issued = iter(tokens)
    srv.route({
        ("POST", "/oauth/token"): lambda req: Reply.json(next(issued)),
        ("GET", "/v1/customers/by-phone/+15551234567"): api,
    })


def oauth_auth(srv, tmp_path, **over):
    return {"kind": "oauth2", "token_url": srv.url + "/oauth/token", "client_id": "cg-client",
            "client_secret_file": secret_file(tmp_path, "cs", "cs-SECRET-42"),
            "scope": "crm.read", **over}


def test_oauth2_token_cached_across_calls_then_renewed_before_expiry(srv, tmp_path, backend_of):
    oauth_server(srv, [{"access_token": "at-1", "expires_in": 1, "token_type": "Bearer"},
                       {"access_token": "at-2", "expires_in": 3600}],
                 customers(("1", "A")))
    b = backend_of(auth=oauth_auth(srv, tmp_path))
    for _ in range(3):
        assert b.lookup_phone("+15551234567").status == "hit"
    token_reqs = srv.sent("POST", "/oauth/token")
    assert len(token_reqs) == 1
    assert token_reqs[0].form == {"grant_type": "client_credentials", "client_id": "cg-client",
                                  "client_secret": "cs-SECRET-42", "scope": "crm.read"}
    assert token_reqs[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert {r.headers["authorization"] for r in srv.sent("GET")} == {"Bearer at-1"}
    time.sleep(0.95)                                  # 1 s life, renewed 0.1 s early
    assert b.lookup_phone("+15551234567").status == "hit"
    assert len(srv.sent("POST", "/oauth/token")) == 2
    assert srv.sent("GET")[-1].headers["authorization"] == "Bearer at-2"


def test_oauth2_refreshed_once_on_401(srv, tmp_path, backend_of):
    def api(req):
        if req.headers["authorization"] == "Bearer at-2":
            return customers(("1", "A"))
        return Reply.json({"error": {"code": "unauthorized"}}, 401)
    oauth_server(srv, [{"access_token": "at-1", "expires_in": 3600},
                       {"access_token": "at-2", "expires_in": 3600},
                       {"access_token": "at-3", "expires_in": 3600}], api)
    b = backend_of(auth=oauth_auth(srv, tmp_path, client_auth="basic"))
    assert b.lookup_phone("+15551234567").status == "hit"
    assert len(srv.sent("POST", "/oauth/token")) == 2
    assert "client_secret" not in srv.sent("POST")[0].form
    assert srv.sent("POST")[0].headers["authorization"].startswith("Basic ")
    # a token the API keeps refusing: one refresh, then an error (no loop)
    srv.route({("POST", "/oauth/token"): Reply.json({"access_token": "bad", "expires_in": 60}),
               ("GET", "/v1/customers/by-phone/+15551234567"):
               Reply.json({"error": {"code": "unauthorized"}}, 401)})
    b2 = backend_of(auth=oauth_auth(srv, tmp_path))
    before = len(srv.sent("GET"))
    r = b2.lookup_phone("+15551234567")
    assert r.status == "error" and r.error == "HTTP 401"
    assert len(srv.sent("GET")) - before == 2


def test_oauth2_token_endpoint_failure_is_an_error(srv, tmp_path, backend_of):
    srv.route({("POST", "/oauth/token"): Reply.json({"error": "invalid_client"}, 400)})
    r = backend_of(auth=oauth_auth(srv, tmp_path)).lookup_phone("+15551234567")
    assert r.status == "error" and r.error == "oauth2 token endpoint answered HTTP 400 (invalid_client)"


# --- retries, budget, bad answers ----------------------------------------------------

PHONE_PATH = ("GET", "/v1/customers/by-phone/+15551234567")


def test_500_then_success_is_retried(srv, backend_of):
    srv.route({PHONE_PATH: [Reply.json({"error": {}}, 500), Reply.json({}, 502),
                            customers(("1", "A"))]})
    r = backend_of().lookup_phone("+15551234567")
    assert r.status == "hit" and len(srv.sent()) == 3


def test_retries_give_up_after_the_configured_count(srv, backend_of):
    srv.route({PHONE_PATH: Reply.json({"error": {}}, 503)})
    r = backend_of(retries=1).lookup_phone("+15551234567")
    assert r.status == "error" and r.error == "HTTP 503 after 2 attempts"
    assert len(srv.sent()) == 2


def test_429_retry_after_is_honoured(srv, backend_of):
    srv.route({PHONE_PATH: [Reply.json({}, 429, headers={"Retry-After": "1"}),
                            customers(("1", "A"))]})
    t0 = time.monotonic()
    r = backend_of(budget=3.0).lookup_phone("+15551234567")
    assert r.status == "hit" and time.monotonic() - t0 >= 0.95


def test_429_retry_after_beyond_the_budget_gives_up_at_once(srv, backend_of):
    srv.route({PHONE_PATH: Reply.json({}, 429, headers={"Retry-After": "30"})})
    t0 = time.monotonic()
    r = backend_of(budget=2.0).lookup_phone("+15551234567")
    assert r.status == "error" and "HTTP 429" in r.error and "exceeds the budget" in r.error
    assert time.monotonic() - t0 < 1.0 and len(srv.sent()) == 1


def test_verify_is_never_retried(srv, backend_of):
    srv.route({("POST", "/v1/customers/1/verify"): Reply.json({}, 503)})
    v = backend_of().verify(Customer("1"), "pin", PIN)
    assert v.status == "error" and v.error == "HTTP 503" and len(srv.sent()) == 1
    srv.route({("POST", "/v1/customers/1/verify"): Reply.json({}, 429,
                                                             headers={"Retry-After": "0"})})
    v = backend_of().verify(Customer("1"), "pin", PIN)
    assert v.status == "error" and len(srv.sent()) == 2


def test_budget_exceeded_answers_error_in_about_the_budget(srv, backend_of):
    srv.route({PHONE_PATH: Reply(200, b'{"customers": []}', {"Content-Type": "application/json"},
                                 delay=3.0)})
    t0 = time.monotonic()
    r = backend_of(budget=0.5).lookup_phone("+15551234567")
    took = time.monotonic() - t0
    assert r.status == "error" and "0.5 s budget" in r.error
    assert 0.4 <= took < 1.2


def test_a_dripping_server_cannot_hold_the_caller_past_the_budget(srv, backend_of):
    body = json.dumps({"customers": [{"id": "1", "name": "x" * 200}]}).encode()
    srv.route({PHONE_PATH: Reply(200, body, {"Content-Type": "application/json"}, drip=0.02)})
    t0 = time.monotonic()
    r = backend_of(budget=0.5, read_timeout=5.0).lookup_phone("+15551234567")
    assert r.status == "error" and time.monotonic() - t0 < 1.2


def test_a_slow_server_within_the_budget_is_fine(srv, backend_of):
    srv.route({PHONE_PATH: Reply(200, b'{"customers": [{"id": "5"}]}',
                                 {"Content-Type": "application/json"}, delay=0.3)})
    r = backend_of(budget=2.0).lookup_phone("+15551234567")
    assert r.status == "hit" and r.customers == (Customer("5", None),) and r.latency_ms >= 300


@pytest.mark.parametrize("reply, reason", [
    (Reply(200, b'{"customers": [', {"Content-Type": "application/json"}), "malformed JSON in response"),
    (Reply(200, b"<html>maintenance</html>", {"Content-Type": "text/html"}),
     "response is text/html, not JSON"),
    (Reply.json({"people": []}), "response has no 'customers'"),
    (Reply.json({"customers": [{"name": "no id"}]}), "response: a record has no usable 'id'"),
    (Reply.json({"customers": ["1001"]}), "response: a record under 'customers' is not an object"),
    (Reply(200, b"", {"Content-Type": "application/json"}), "HTTP 200 with an empty body"),
    (Reply(302, b"", {"Location": "https://elsewhere.example/"}),
     "HTTP 302: redirects are not followed"),
])
def test_bad_answers_are_errors(srv, backend_of, reply, reason):
    srv.route({PHONE_PATH: reply})
    r = backend_of().lookup_phone("+15551234567")
    assert (r.status, r.error) == ("error", reason)


def test_connection_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ca = trustme.CA()
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    b = make_crm(Table({"kind": "reference", "base_url": f"https://127.0.0.1:{port}",
                            "ca_bundle": str(ca_path), "auth": {"kind": "none"}}, "crm"))
    t0 = time.monotonic()
    r = b.lookup_phone("+15551234567")
    assert (r.status, r.error) == ("error", "connection refused") and time.monotonic() - t0 < 2
    b.close()


def test_an_untrusted_certificate_is_refused(tmp_path):
    with HttpsServer(tmp_path) as good, HttpsServer(tmp_path, ca=trustme.CA()) as rogue:
        rogue.route({PHONE_PATH: customers(("1", "A"))})
        # the client trusts `good`'s CA; the rogue server's cert is from another CA
        table = Table({"kind": "reference", "base_url": rogue.url + "/v1",
                       "ca_bundle": str(good.ca_path), "auth": {"kind": "none"}}, "crm")
        b = make_crm(table)
        r = b.lookup_phone("+15551234567")
        assert r.status == "error" and r.error.startswith("TLS handshake failed")
        assert rogue.sent() == []
        # and with the system store alone, a private CA is not trusted either
        b2 = make_crm(Table({"kind": "reference", "base_url": rogue.url + "/v1",
                                 "auth": {"kind": "none"}}, "crm"))
        assert b2.lookup_phone("+15551234567").status == "error"
        b.close()
        b2.close()


def test_tls_verification_cannot_be_turned_off(srv, tmp_path):
    with pytest.raises(ConfigError, match=r"^crm.verify_tls: unknown key$"):
        make_crm(reference(srv, tmp_path, verify_tls=False))
    with pytest.raises(ConfigError, match=r"^crm.base_url: must start with https://"):
        make_crm(reference(srv, tmp_path, base_url="http://127.0.0.1:1/v1"))


# --- circuit breaker -------------------------------------------------------------------

def test_circuit_breaker_opens_and_recovers(srv, backend_of):
    srv.route({PHONE_PATH: Reply.json({}, 500)})
    b = backend_of(retries=0, breaker_failures=2, breaker_cooldown=0.4)
    assert b.lookup_phone("+15551234567").error == "HTTP 500"
    assert b.lookup_phone("+15551234567").error == "HTTP 500"
    t0 = time.monotonic()
    opened = b.lookup_phone("+15551234567")
    assert opened.error == "circuit open after repeated failures" and time.monotonic() - t0 < 0.05
    assert len(srv.sent()) == 2                      # the open circuit sent nothing
    v = b.verify(Customer("1"), "pin", PIN)
    assert v.status == "error" and "circuit open" in v.error
    time.sleep(0.45)
    srv.route({PHONE_PATH: customers(("1", "A"))})
    assert b.lookup_phone("+15551234567").status == "hit"   # the half-open trial succeeds
    assert b.breaker.state == "closed"


def test_breaker_half_open_failure_opens_again():
    now = [0.0]
    br = CircuitBreaker(failures=3, cooldown=10, clock=lambda: now[0])
    for _ in range(3):
        assert br.allow()
        br.failure()
    assert br.state == "open" and not br.allow()
    now[0] = 10.0
    assert br.allow() and not br.allow()            # one trial at a time
    br.failure()
    assert br.state == "open"
    now[0] = 25.0
    assert br.allow()
    br.success()
    assert br.state == "closed" and br.allow()


# --- escaping of hostile input ----------------------------------------------------------

HOSTILE = 'a/../"b\'\\c ü?x=1&y#z{}'


def test_url_and_json_escaping_of_hostile_input(srv, tmp_path):
    table = Table({
        "kind": "rest", "base_url": srv.url + "/api", "ca_bundle": str(srv.ca_path),
        "auth": {"kind": "none"},
        "identifier_fields": {"account": "Account_No"},
        "lookup_phone": {"url": "/phone/{e164}", "results": "r"},
        "lookup_identifier": {
            "method": "POST", "url": "/by/{kind}/{value}",
            "query": {"q": "SELECT Id FROM Contact WHERE {field} = '{value|soql}'",
                      "$filter": "x eq '{value|odata}'", "criteria": "({field}:equals:{value|zoho})"},
            "body": {"value": "{value}", "words": ["id {value}!", 5, True], "nested": {"k": "{kind}"}},
            "results": "matches[*]", "id": "ref", "name": ["first", "last"]},
        "verify": {"method": "POST", "url": "/v/{id}", "body": {"secret": "{secret}"}},
    }, "crm")
    srv.handler = lambda req: Reply.json({"matches": [{"ref": 42, "first": "Zoë", "last": None}]})
    b = make_crm(table)
    r = b.lookup_identifier("account", HOSTILE)
    assert r.status == "hit" and r.customers == (Customer("42", "Zoë"),)
    req = srv.sent()[0]
    segments = req.raw_path.split("/")
    assert segments[:3] == ["", "api", "by"] and len(segments) == 5   # no segment added
    assert req.path == "/api/by/account/" + HOSTILE                   # decodes back exactly
    assert req.query["q"] == "SELECT Id FROM Contact WHERE Account_No = 'a/../\\\"b\\'\\\\c ü?x=1&y#z{}'"
    assert req.query["$filter"] == "x eq 'a/../\"b''\\c ü?x=1&y#z{}'"
    assert req.query["criteria"] == "(Account_No:equals:a/../\"b'\\\\c ü?x=1&y#z{})"
    assert req.json == {"value": HOSTILE, "words": [f"id {HOSTILE}!", 5, True],
                        "nested": {"k": "account"}}
    # a secret goes into the body as data, and only there
    srv.handler = lambda req: Reply.json({"verified": False})
    assert b.verify(Customer('1/2"'), "pin", '"}\n]').status == "rejected"
    v = srv.sent()[-1]
    assert v.path == '/api/v/1/2"' and v.raw_path == "/api/v/1%2F2%22"
    assert v.json == {"secret": '"}\n]'}
    b.close()


@pytest.mark.parametrize("over, message", [
    ({"verify": {"method": "POST", "url": "/v/{id}/{secret}"}},
     r"^crm.verify: \{secret\} may only appear in the body"),
    ({"lookup_phone": {"url": "/p/{nope}", "results": "r"}},
     r"^crm.lookup_phone.url: unknown placeholder \{nope\}"),
    ({"lookup_phone": {"url": "/p/{e164|sql}", "results": "r"}},
     r"^crm.lookup_phone.url: unknown filter \|sql"),
    ({"lookup_phone": {"url": "/p/{e164", "results": "r"}}, r"^crm.lookup_phone.url: unmatched"),
    ({"lookup_phone": {"url": "https://evil.example/p", "results": "r"}},
     r"^crm.lookup_phone.url: must be a path"),
    ({"lookup_phone": {"url": "/p", "results": "a..b"}}, r"^crm.lookup_phone.results: bad JSON path"),
    ({"identifier_fields": {"account": "x' OR 1=1"}}, r"^crm.identifier_fields.account: "),
    ({"lookup_phone": {"url": "/p", "results": "r", "colour": "red"}},
     r"^crm.lookup_phone.colour: unknown key$"),
])
def test_bad_templates_are_config_errors(srv, tmp_path, over, message):
    with pytest.raises(ConfigError, match=message) as err:
        make_crm(reference(srv, tmp_path, **over))
    assert "\n" not in str(err.value)


# --- credentials and what reaches a log -------------------------------------------------

def test_token_file_with_loose_permissions_is_refused(srv, tmp_path):
    loose = secret_file(tmp_path, "loose-token", TOKEN, mode=0o644)
    with pytest.raises(ConfigError) as err:
        make_crm(reference(srv, tmp_path, auth={"kind": "bearer", "token_file": loose}))
    text = str(err.value)
    assert text == f"crm.auth.token_file: {loose} is open to group or others (mode 0644); chmod 600 it"
    assert TOKEN not in text and "\n" not in text
    with pytest.raises(ConfigError, match=r"^crm.auth.token_file: cannot read .*missing"):
        make_crm(reference(srv, tmp_path, auth={"kind": "bearer",
                                                    "token_file": str(tmp_path / "missing")}))


def test_no_secret_in_any_log_record_or_error(srv, tmp_path, backend_of, caplog):
    caplog.set_level(logging.DEBUG)
    srv.route({
        ("POST", "/oauth/token"): Reply.json({"access_token": TOKEN, "expires_in": 3600}),
        ("GET", "/v1/customers/by-identifier/account/" + IDENT): [
            Reply.json({}, 500), customers(("C-1001", "Ada"))],
        ("POST", "/v1/customers/C-1001/verify"): [Reply.json({"verified": True}),
                                                 Reply.json({}, 500),
                                                 Reply(200, b"{bad", {"Content-Type": "application/json"})],
    })
    b = backend_of(auth=oauth_auth(srv, tmp_path))
    results = [b.lookup_identifier("account", IDENT)]
    results += [b.verify(Customer("C-1001"), "pin", PIN) for _ in range(3)]
    assert [r.status for r in results] == ["hit", "verified", "error", "error"]
    records = [rec.getMessage() for rec in caplog.records]
    assert any("crm lookup_identifier" in m and "******32" in m for m in records)
    assert any("urllib3" in rec.name for rec in caplog.records)      # we did capture its lines
    for text in records + [r.error or "" for r in results]:
        for secret in (TOKEN, PIN, IDENT, "cs-SECRET-42"):
            assert secret not in text, (secret, text)


# --- make_crm -------------------------------------------------------------------

def test_make_backend_kinds(tmp_path):
    with pytest.raises(ConfigError, match=r"^crm.directory: .*: no such directory file"):
        make_crm(Table({}, "crm"), tmp_path / "directory.sqlite")    # never made empty
    assert not (tmp_path / "directory.sqlite").exists()
    from callgate.crm.directory import Directory
    Directory(tmp_path / "directory.sqlite").close()                 # `directory import`
    d = make_crm(Table({}, "crm"), tmp_path / "directory.sqlite")
    assert d.name == "directory" and d.lookup_phone("+15551234567").status == "miss"
    d.close()
    with pytest.raises(ConfigError, match=r"^crm.kind: 'sugarcrm' is not one of directory, rest, "):
        make_crm(Table({"kind": "sugarcrm"}, "crm"))
    with pytest.raises(ConfigError, match=r"^crm.base_url: missing$"):
        make_crm(Table({"kind": "salesforce"}, "crm"))


def test_a_keyed_alternate_phone_number_is_looked_up_as_a_phone(srv, backend_of):
    srv.route({PHONE_PATH: customers(("1", "A"))})
    assert backend_of().lookup_identifier("phone", "5551234567").status == "hit"
    assert srv.sent()[0].path == "/v1/customers/by-phone/+15551234567"


# --- issue 16: a dripping CRM never takes the connector's workers -------------------------

def _wait_until(test, limit_s: float = 20.0) -> bool:
    """Poll a condition the code under test makes true (bounded, not a timing assert)."""
    end = time.monotonic() + limit_s
    while not test():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("stall", [
    {"drip": 0.05},          # the answer trickles: 20 kB at a byte per 50 ms is 17 minutes
    {"delay": 600.0},        # nothing at all after the request, for ten minutes
])
def test_a_stuck_answer_is_cut_and_the_workers_stay_free(srv, backend_of, stall):
    body = b'{"customers": [' + b" " * 20000 + b"]}"
    srv.route({PHONE_PATH: Reply(200, body, {"Content-Type": "application/json"}, **stall)})
    b = backend_of(budget=0.3, read_timeout=60.0, breaker_failures=1000)
    for _ in range(6):                       # more stuck requests than the 4 workers
        r = b.lookup_phone("+15551234567")
        assert r.status == "error" and "0.3 s budget" in r.error
    assert _wait_until(lambda: b.stuck == 0)  # every cut request let its worker go
    srv.route({PHONE_PATH: customers(("5", "Eve"))})
    r = b.lookup_phone("+15551234567")
    assert r.status == "hit" and r.customers == (Customer("5", "Eve"),)
    assert len(srv.sent()) == 7


def test_a_worker_that_will_not_let_go_is_replaced(srv, backend_of, monkeypatch):
    """Should a cut not free a worker, the connector starts fresh workers (counted)."""
    from callgate.crm import https
    monkeypatch.setattr(https._Watch, "cut", lambda self: None)     # the cut does nothing
    body = b'{"customers": [' + b" " * 20000 + b"]}"
    srv.route({PHONE_PATH: Reply(200, body, {"Content-Type": "application/json"}, drip=0.05)})
    b = backend_of(budget=0.3, read_timeout=60.0, breaker_failures=1000)
    for _ in range(4):
        assert b.lookup_phone("+15551234567").status == "error"
    assert b.abandoned == 4 and b.stuck == 4
    srv.route({PHONE_PATH: customers(("5", "Eve"))})
    assert b.lookup_phone("+15551234567").status == "hit"
    monkeypatch.undo()
    b.close()
    srv.close()                              # the dripping server stops; stuck reads end


@pytest.mark.parametrize("where", ["top", "step"])
@pytest.mark.parametrize("name", ["Authorization", "x-api-key", "Cookie", "X-Auth-Token",
                                  "Proxy-Authorization"])
def test_credential_headers_in_the_config_are_refused(srv, tmp_path, where, name):
    over = {"headers": {name: "Bearer abc123"}} if where == "top" else {
        "lookup_phone": {"url": "/customers/by-phone/{e164}", "results": "customers",
                         "headers": {name: "Bearer abc123"}}}
    with pytest.raises(ConfigError) as err:
        make_crm(reference(srv, tmp_path, **over), tmp_path / "dir.sqlite")
    text = str(err.value)
    assert f"headers.{name}" in text and "0600" in text and "abc123" not in text
    ok = make_crm(reference(srv, tmp_path, headers={"X-Source": "callgate"}),
                  tmp_path / "dir.sqlite")
    ok.close()
