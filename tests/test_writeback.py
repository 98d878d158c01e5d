"""Back-end write-back from the on-device outbox, against a real HTTPS server on loopback.

Outcomes come from real calls (Engine + sim line + ID&V flow + embedded directory)
or are queued directly; the outbox is the real call-record SQLite file; the back
end is tests/https_server.py (TLS from a trustme CA the client trusts through
`ca_bundle`). Proved here: delivered once when the back end is up; kept and
retried with back-off while nothing listens or it answers 503/429 (Retry-After
honoured), delivered when it is back; kept across a SIGKILL in the middle of a
request and delivered after the restart; refused for good on other 4xx; given
up (dead, never dropped) after max_age_s; nothing keyed in any payload and the
payload cleared once delivered.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme

from callgate import cli
from callgate.config import ConfigError, Table
from callgate.crm.directory import Directory
from callgate.crm.writeback import Delivery, DeliveryWorker, load_writeback
from callgate.engine import Engine, EngineConfig
from callgate.flow import IdvFlow, policy_from_table
from callgate.line.sim import Agent, CallerIdSpec, Press, SimCall, SimLine
from callgate.store.outbox import PAYLOAD_FIELDS, Outbox, payload_from_record
from callgate.store.records import AttemptCounter, CallStore
from https_server import HttpsServer, Reply, secret_file
from steps import StepsToStore

from callgate.line.sim import Clear

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
JANE_PHONE, JANE_ID, JANE_PIN = "2015550123", "12345678", "4271"
STRANGER_ID = "99887766"            # keyed by a caller, known to nobody
TOKEN = "wb-token-7f3a9c"
PATH = "/api/call-outcomes"


@pytest.fixture()
def ca():
    return trustme.CA()


@pytest.fixture()
def srv(tmp_path, ca):
    with HttpsServer(tmp_path, ca=ca) as server:
        yield server


@pytest.fixture()
def store(tmp_path):
    s = CallStore(tmp_path / "calls.sqlite")
    yield s
    s.close()


def wb_table(tmp_path, url, ca_path, **over) -> Table:
    data = {"url": url + PATH, "ca_bundle": str(ca_path), "timeout_s": 2,
            "retry_min_s": 0.2, "retry_max_s": 2,
            "auth": {"kind": "bearer", "token_file": secret_file(tmp_path, "wb-token", TOKEN)}}
    data.update(over)
    return Table(data, "writeback")


def settings(tmp_path, url, ca_path, **over):
    return load_writeback(wb_table(tmp_path, url, ca_path, **over))


def queue_one(store, call_id="line-1-1", identifier=JANE_ID, **fields):
    record = {"call_id": call_id, "line": "line", "service": "support",
              "started": 1_700_000_000.0, "ended": 1_700_000_042.5, "status": "verified",
              "identified_by": "keyed", "transfer_target": "201", "transfer_mode": "blind",
              "transfer_result": "completed", "auth_ms": 17250, **fields}
    return Outbox(store).enqueue(call_id, payload_from_record(record, identifier))


def row(store, row_id):
    (r,) = [r for r in Outbox(store).rows() if r["id"] == row_id]
    return r


def wait_for(predicate, timeout=10.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def posts(srv):
    return srv.sent("POST", PATH)


# ---------------------------------------------------------------- real calls, delivered once


def test_outcomes_of_real_calls_are_queued_durably_and_delivered_once(tmp_path, srv, store):
    directory = Directory(tmp_path / "directory.sqlite", scrypt_n=16)
    directory.import_csv(FIXTURES / "customers.csv")
    policy = policy_from_table(Table({"identifier": {"min_digits": 8, "max_digits": 8},
                                      "transfer": {"agent": "201"}}, "service.support"),
                               "support")
    flow = IdvFlow(policy, directory, counter=AttemptCounter(store), writeback_max_age_s=3600)
    calls = [SimCall(callerid=CallerIdSpec(number=JANE_PHONE),
                     script=[Press(JANE_PIN + "#", when="prompt_end", after_ms=700)],
                     agents={"201": Agent()}),
             SimCall(callerid=CallerIdSpec(absent="P"),
                     script=[Press(STRANGER_ID + "#", when="prompt_end", after_ms=300),
                             Press("*", when="prompt_end", after_ms=300),
                             Clear("cpc", after_ms=30000)],
                     agents={"201": Agent()})]
    Engine(SimLine(calls, max_seconds=600), flow, EngineConfig(),
           recorder=StepsToStore(store)).run()
    directory.close()
    jane_call, stranger_call = (r["call_id"] for r in reversed(store.recent()))

    # durable before anything is sent: another connection sees both rows pending
    other = CallStore(store.path)
    assert Outbox(other).counts() == {"pending": 2, "delivered": 0, "dead": 0}
    other.close()

    srv.route({("POST", PATH): Reply.json({"ok": True}, 201)})
    delivery = Delivery(Outbox(store), settings(tmp_path, srv.url, srv.ca_path))
    assert delivery.run_once() == {"delivered": 2, "retry": 0, "dead": 0}
    assert delivery.run_once() == {"delivered": 0, "retry": 0, "dead": 0}
    sent = posts(srv)
    assert len(sent) == 2                                   # once each, no more

    jane, stranger = (r.json for r in sent)
    assert list(jane) == list(PAYLOAD_FIELDS)
    assert jane["call_id"] == jane_call and jane["identifier"] == JANE_ID
    assert jane["status"] == "verified" and jane["reason"] is None
    assert jane["identified_by"] == "number" and jane["verify_result"] == "verified"
    assert jane["transfer_target"] == "201" and jane["transfer_result"] == "completed"
    assert jane["service"] == "support" and jane["line"] == "line"
    assert isinstance(jane["auth_ms"], int) and 0 < jane["auth_ms"] < 60000
    assert jane["started"].endswith("Z") and jane["started"] < jane["ended"]
    assert stranger["call_id"] == stranger_call and stranger["identifier"] is None
    assert stranger["status"] == "not_identified" and stranger["reason"] == "opted_out"
    assert stranger["opted_out"] == "identifier"

    for req, call_id in zip(sent, (jane_call, stranger_call)):
        assert req.headers["authorization"] == f"Bearer {TOKEN}"
        assert req.headers["content-type"] == "application/json"
        key = req.headers["idempotency-key"]
        assert key.startswith("callgate-") and key.endswith(call_id)
        everything = req.body.decode() + json.dumps(req.headers)
        assert JANE_PIN not in everything and STRANGER_ID not in everything

    rows = Outbox(store).rows()
    assert {(r["state"], r["last_status"], r["holds_payload"]) for r in rows} == {
        ("delivered", 201, 0)}
    # the identifier held until delivery is gone from the file (secure_delete + checkpoint)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("calls.sqlite*"))
    assert JANE_ID.encode() not in blob and JANE_PIN.encode() not in blob
    assert STRANGER_ID.encode() not in blob


# ---------------------------------------------------------------- back end down, then back


def test_nothing_listening_keeps_it_with_growing_back_off_then_delivers(tmp_path, ca, store):
    with HttpsServer(tmp_path, ca=ca) as gone:      # note a port, then nothing listens there
        port, url, ca_path = gone.port, gone.url, gone.ca_path
    row_id = queue_one(store)
    now = [time.time()]          # the delivery's own clock, moved by the test: no race
    delivery = Delivery(Outbox(store), settings(tmp_path, url, ca_path),
                        clock=lambda: now[0],
                        rng=lambda: 1.0)           # no jitter: the waits are the back-off itself
    waits = []
    for attempt in (1, 2, 3):
        assert delivery.run_once() == {"delivered": 0, "retry": 1, "dead": 0}
        r = row(store, row_id)
        assert r["state"] == "pending" and r["attempts"] == attempt and r["holds_payload"]
        assert r["last_status"] is None and r["last_error"] == "connection failed (refused)"
        waits.append(r["next_at"] - now[0])
        now[0] = r["next_at"] - 0.01
        assert delivery.run_once()["retry"] == 0          # not due yet: not tried
        now[0] = r["next_at"]
    assert waits == pytest.approx([0.2, 0.4, 0.8], abs=1e-6)

    with HttpsServer(tmp_path, ca=ca, port=port) as back:
        back.route({("POST", PATH): Reply(204)})
        assert delivery.run_once() == {"delivered": 1, "retry": 0, "dead": 0}
        assert len(posts(back)) == 1 and posts(back)[0].json["identifier"] == JANE_ID
    r = row(store, row_id)
    assert r["state"] == "delivered" and r["last_status"] == 204 and not r["holds_payload"]


def test_the_worker_retries_503_and_honours_retry_after(tmp_path, srv, store):
    replies = [Reply(503), Reply(429, headers={"Retry-After": "1"}), Reply(200)]
    at = []

    def answer(req):
        at.append(time.monotonic())
        return replies[min(len(at), 3) - 1]

    srv.handler = answer
    row_id = queue_one(store)
    worker = DeliveryWorker(store.path, settings(tmp_path, srv.url, srv.ca_path,
                                                 retry_min_s=0.05, retry_max_s=0.1),
                            poll_s=0.05).start()
    try:
        assert wait_for(lambda: row(store, row_id)["state"] == "delivered", timeout=10)
    finally:
        worker.stop(drain_s=1)
    sent = posts(srv)
    assert len(sent) == 3
    keys = {r.headers["idempotency-key"] for r in sent}
    bodies = {r.body for r in sent}
    assert len(keys) == 1 and len(bodies) == 1              # the same request each time
    r = row(store, row_id)
    assert r["attempts"] == 3 and r["last_status"] == 200
    assert at[1] - at[0] < 0.9 and at[2] - at[1] >= 0.95     # 503: back-off; 429: 1 s


def test_retry_after_sets_the_next_attempt(tmp_path, srv, store):
    srv.route({("POST", PATH): Reply(429, headers={"Retry-After": "30"})})
    row_id = queue_one(store)
    delivery = Delivery(Outbox(store), settings(tmp_path, srv.url, srv.ca_path))
    t = time.time()
    assert delivery.run_once()["retry"] == 1
    r = row(store, row_id)
    assert r["next_at"] - t == pytest.approx(30, abs=1.0)   # not the 0.2 s back-off
    assert r["last_status"] == 429 and r["last_error"] == "HTTP 429"


# ---------------------------------------------------------------- killed mid-request


def test_a_sigkill_in_the_middle_of_a_request_loses_nothing(tmp_path, srv, store):
    first = {"seen": False}

    def slow_then_fine(req):
        if not first["seen"]:
            first["seen"] = True
            return Reply(201, delay=5.0)          # the sender is killed while waiting
        return Reply(201)

    srv.handler = slow_then_fine
    row_id = queue_one(store, call_id="line-1700000000000-7")
    config = tmp_path / "callgate.toml"
    token = secret_file(tmp_path, "tok", TOKEN)
    config.write_text(f'[store]\npath = "{store.path}"\n[writeback]\nurl = "{srv.url}{PATH}"\n'
                      f'ca_bundle = "{srv.ca_path}"\ntimeout_s = 1\nretry_min_s = 0.1\n'
                      f'[writeback.auth]\nkind = "bearer"\ntoken_file = "{token}"\n')
    proc = subprocess.Popen([sys.executable, "-c",
                             "import sys; from callgate.cli import main; sys.exit(main())",
                             "outbox", "deliver", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: len(posts(srv)) == 1, timeout=20)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    r = row(store, row_id)                         # still there, payload and all
    assert r["state"] == "pending" and r["holds_payload"] and r["attempts"] == 1

    # the restart: the killed sender's claim runs out, then the row is sent again
    delivery = Delivery(Outbox(store), settings(tmp_path, srv.url, srv.ca_path, timeout_s=1))
    assert delivery.run_once()["delivered"] == 0           # claimed: left alone for now
    assert wait_for(lambda: delivery.run_once()["delivered"] == 1, timeout=6, step=0.1)
    sent = posts(srv)
    assert len(sent) == 2
    assert sent[0].headers["idempotency-key"] == sent[1].headers["idempotency-key"] == (
        f"callgate-{row_id}-line-1700000000000-7")
    assert sent[0].body == sent[1].body
    assert row(store, row_id)["state"] == "delivered"


# ---------------------------------------------------------------- refused, given up


@pytest.mark.parametrize("status", [400, 404, 422, 301])
def test_a_refusal_is_dead_at_once_with_its_status_not_retried(tmp_path, srv, store, status,
                                                                caplog):
    srv.route({("POST", PATH): Reply(status, headers={"Location": "https://elsewhere/"})})
    row_id = queue_one(store)
    delivery = Delivery(Outbox(store), settings(tmp_path, srv.url, srv.ca_path))
    with caplog.at_level(logging.ERROR, logger="callgate.writeback"):
        assert delivery.run_once() == {"delivered": 0, "retry": 0, "dead": 1}
    time.sleep(0.3)
    assert delivery.run_once() == {"delivered": 0, "retry": 0, "dead": 0}
    assert len(posts(srv)) == 1
    r = row(store, row_id)
    assert r["state"] == "dead" and r["last_status"] == status and r["holds_payload"]
    assert f"HTTP {status}" in r["last_error"]
    assert "refused for good" in caplog.text and JANE_ID not in caplog.text


@pytest.mark.parametrize("status", [408, 429, 500, 502])
def test_408_429_and_5xx_are_tried_again(tmp_path, srv, store, status):
    srv.route({("POST", PATH): Reply(status)})
    row_id = queue_one(store)
    delivery = Delivery(Outbox(store), settings(tmp_path, srv.url, srv.ca_path))
    assert delivery.run_once()["retry"] == 1
    assert row(store, row_id)["state"] == "pending"


def test_an_untrusted_certificate_is_never_sent_to(tmp_path, store):
    with HttpsServer(tmp_path) as stranger:           # its own CA, not ours
        stranger.route({("POST", PATH): Reply(200)})
        other_ca = trustme.CA()
        ca_path = tmp_path / "our-ca.pem"
        other_ca.cert_pem.write_to_path(str(ca_path))
        row_id = queue_one(store)
        delivery = Delivery(Outbox(store), settings(tmp_path, stranger.url, ca_path))
        assert delivery.run_once()["retry"] == 1
        assert posts(stranger) == []
    assert "TLS handshake failed" in row(store, row_id)["last_error"]


def test_undelivered_past_max_age_is_dead_never_dropped(tmp_path, srv, store, caplog):
    srv.route({("POST", PATH): Reply(503)})
    wb = settings(tmp_path, srv.url, srv.ca_path, max_age_s=1, retry_min_s=0.1,
                  retry_max_s=0.2)
    outbox = Outbox(store)
    row_id = outbox.enqueue("line-1-1", payload_from_record({"status": "identified"}, JANE_ID),
                            max_age_s=wb.max_age_s)
    delivery = Delivery(outbox, wb)
    with caplog.at_level(logging.ERROR, logger="callgate.writeback"):
        assert wait_for(lambda: delivery.run_once()["dead"] == 1, timeout=5, step=0.05)
    r = row(store, row_id)
    assert r["state"] == "dead" and r["holds_payload"] and r["last_status"] == 503
    assert r["last_error"].startswith("gave up after 1 s")
    assert 3 <= r["attempts"] <= 12 and "gave up" in caplog.text


# ---------------------------------------------------------------- the command line


def test_outbox_list_retry_purge(tmp_path, srv, store, capsys):
    srv.route({("POST", PATH): [Reply(400), Reply(201)]})
    row_id = queue_one(store)
    wb = settings(tmp_path, srv.url, srv.ca_path)
    Delivery(Outbox(store), wb).run_once()
    db = ["--db", str(store.path)]
    assert cli.main(["outbox", "list", *db]) == 0
    out = capsys.readouterr().out
    assert f"{row_id}\tline-1-1\tdead\tattempts=1" in out and "status=400" in out
    assert JANE_ID not in out
    assert cli.main(["outbox", "list", "--json", "--state", "dead", *db]) == 0
    (listed,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert listed["id"] == row_id and "payload" not in listed and listed["holds_payload"] == 1

    assert cli.main(["outbox", "retry", *db]) == 0
    assert capsys.readouterr().out.strip() == "1 row due again"
    assert Delivery(Outbox(store), wb).run_once()["delivered"] == 1
    assert cli.main(["outbox", "purge", *db]) == 0
    assert capsys.readouterr().out.strip() == "1 row deleted"
    assert Outbox(store).rows() == []


def test_callgate_run_sends_the_outcome_of_its_calls(tmp_path, srv, capsys):
    db, calls = tmp_path / "directory.sqlite", tmp_path / "calls.sqlite"
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"), "--db", str(db)]) == 0
    srv.route({("POST", PATH): Reply(201)})
    token = secret_file(tmp_path, "tok", TOKEN)
    config = tmp_path / "callgate.toml"
    config.write_text(f'[line]\nbackend = "sim"\n[crm]\ndirectory = "{db}"\n'
                      f'[store]\npath = "{calls}"\n[[service]]\nname = "support"\n'
                      '[service.transfer]\nagent = "201"\n'
                      f'[writeback]\nurl = "{srv.url}{PATH}"\nca_bundle = "{srv.ca_path}"\n'
                      f'[writeback.auth]\nkind = "bearer"\ntoken_file = "{token}"\n')
    assert cli.main(["check-config", str(config)]) == 0
    capsys.readouterr()
    assert cli.main(["run", "--config", str(config)]) == 0
    (sent,) = posts(srv)
    assert sent.json["status"] == "verified" and sent.json["identifier"] == JANE_ID
    assert JANE_PIN not in sent.body.decode()
    with CallStore(calls) as store:
        assert Outbox(store).counts()["delivered"] == 1


# ---------------------------------------------------------------- body template, config


def test_a_body_template_shapes_the_request_with_proper_escaping(tmp_path, srv, store):
    srv.route({("PUT", PATH): Reply(201)})
    body = {"activity": {"subject": "Call {status} on {line}", "customer": "{identifier}",
                         "ms": "{auth_ms}", "why": "{reason}", "key": "{idempotency_key}"},
            "tags": ["callgate", "{service}"]}
    wb = settings(tmp_path, srv.url, srv.ca_path, body=body, method="PUT",
                  headers={"X-Source": "callgate"})
    row_id = queue_one(store, line='fxo "1" \\ main')
    assert Delivery(Outbox(store), wb).run_once()["delivered"] == 1
    (req,) = srv.sent("PUT", PATH)
    assert req.json == {"activity": {"subject": 'Call verified on fxo "1" \\ main',
                                     "customer": JANE_ID, "ms": 17250, "why": None,
                                     "key": f"callgate-{row_id}-line-1-1"},
                        "tags": ["callgate", "support"]}
    assert req.headers["x-source"] == "callgate"


def test_oauth2_fetches_a_new_token_when_the_api_says_401(tmp_path, srv, store):
    tokens = iter(["t-old", "t-new"])
    srv.route({("POST", "/oauth/token"): lambda req: Reply.json(
                   {"access_token": next(tokens), "expires_in": 3600}),
               ("POST", PATH): lambda req: Reply(
                   201 if req.headers.get("authorization") == "Bearer t-new" else 401)})
    secret = secret_file(tmp_path, "client-secret", "s3cr3t")
    wb = settings(tmp_path, srv.url, srv.ca_path,
                  auth={"kind": "oauth2", "token_url": srv.url + "/oauth/token",
                        "client_id": "callgate", "client_secret_file": secret})
    queue_one(store)
    assert Delivery(Outbox(store), wb).run_once()["delivered"] == 1
    assert len(srv.sent("POST", "/oauth/token")) == 2 and len(posts(srv)) == 2


@pytest.mark.parametrize("over, key", [
    ({"url": "http://crm.example/x"}, "writeback.url"),
    ({"retries": 3}, "writeback.retries"),
    ({"method": "DELETE"}, "writeback.method"),
    ({"timeout_s": 0}, "writeback.timeout_s"),
    ({"headers": {"Bad Name": "x"}}, "writeback.headers.Bad Name"),
    ({"body": {"note": "{pin}"}}, "writeback.body.note"),
    ({"auth": {"kind": "bearer", "token_file": "/nonexistent/tok"}}, "writeback.auth.token_file"),
])
def test_config_errors_name_the_key(tmp_path, over, key):
    with pytest.raises(ConfigError) as err:
        load_writeback(Table({"url": "https://crm.example/x", **over}, "writeback"))
    assert str(err.value).startswith(key + ":")


def test_a_loose_credential_file_is_refused(tmp_path):
    loose = secret_file(tmp_path, "tok", TOKEN, mode=0o644)
    with pytest.raises(ConfigError, match=r"writeback\.auth\.token_file: .* chmod 600"):
        load_writeback(Table({"url": "https://crm.example/x",
                              "auth": {"kind": "bearer", "token_file": loose}}, "writeback"))


def test_absent_or_disabled_means_no_writeback():
    assert load_writeback(Table({}, "writeback")) is None
    assert load_writeback(Table({"enabled": False, "url": "https://x.example/"},
                                "writeback")) is None


def test_run_refuses_writeback_without_the_flow(tmp_path, capsys):
    config = tmp_path / "callgate.toml"
    config.write_text('[line]\nbackend = "sim"\n[writeback]\nurl = "https://crm.example/x"\n')
    assert cli.main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("callgate run: writeback:")


def test_check_config_names_a_bad_writeback_key(tmp_path, capsys):
    config = tmp_path / "callgate.toml"
    config.write_text('[[service]]\nname = "s"\n[writeback]\nurl = "https://crm.example/x"\n'
                      'retry_min = 3\n')
    assert cli.main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "writeback.retry_min: unknown key" in err


def test_the_write_back_refuses_an_api_host_from_the_token(tmp_path):
    """api_base_from serves the connector's lookups; the write-back sends to its url."""
    from callgate.config import ConfigError, Table
    from callgate.crm.writeback import load_writeback
    from https_server import secret_file

    table = Table({"url": "https://crm.example.com/calls", "auth": {
        "kind": "oauth2", "token_url": "https://login.example.com/token", "client_id": "c",
        "client_secret_file": secret_file(tmp_path, "s", "x"),
        "api_base_from": "instance_url"}}, "writeback")
    with pytest.raises(ConfigError, match="writeback.auth.api_base_from: not for the write-back"):
        load_writeback(table)


def test_a_credential_header_in_the_writeback_config_is_refused(tmp_path, srv):
    with pytest.raises(ConfigError, match=r"headers\.X-Api-Key: a credential header") as err:
        settings(tmp_path, srv.url, srv.ca_path, headers={"X-Api-Key": "k-998877"})
    assert "k-998877" not in str(err.value)
