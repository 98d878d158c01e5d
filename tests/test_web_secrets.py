"""No page, event stream, JSON or export shows a keyed secret or a full identifier.

The store is filled by REAL calls (engine + simulated line + ID&V flow on the embedded
directory) in which callers key a known identifier, the right PIN and wrong PINs; then
every GET route of the app (W2's reports and exports included, found from the URL map)
is fetched as an admin and every body is searched for those digits."""

from __future__ import annotations

import io
import re
import zipfile

import pytest

from browser import client_sign_in, make_app
from callgate.config import Table
from callgate.crm.directory import Directory
from callgate.engine import Engine, EngineConfig
from callgate.flow import IdvFlow, policy_from_table
from callgate.line.sim import Agent, CallerIdSpec, Press, SimCall, SimLine
from callgate.store.records import AttemptCounter, CallStore
from steps import StepsToStore

from callgate.line.sim import Clear

CUSTOMER_ID = "908172635401"
PIN = "73915584"
WRONG_PINS = ("55117733", "66228844", "99330022")
PHONE = "6465550199"
SECRETS = (CUSTOMER_ID, PIN, *WRONG_PINS, PHONE)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secrets")
    csv = folder / "customers.csv"
    csv.write_text(f"id,name,phones,pin\n{CUSTOMER_ID},Nora Quist,{PHONE},{PIN}\n")
    directory = Directory(folder / "directory.sqlite", scrypt_n=16)
    directory.import_csv(csv)
    store = CallStore(folder / "calls.sqlite", synchronous="NORMAL")
    policy = policy_from_table(Table({
        "identifier": {"min_digits": 8, "max_digits": 16},
        "security": {"min_digits": 8, "max_digits": 8},
        "transfer": {"agent": "201", "opted_out": "202"}}, "service.support"), "support")
    agents = {"201": Agent(), "202": Agent()}
    calls = [
        # withheld number: keys the identifier, then the right PIN -> verified, keyed
        SimCall(callerid=CallerIdSpec(absent="P"),
                script=[Press(CUSTOMER_ID + "#"), Press(PIN + "#")], agents=agents),
        # her number identifies her; three wrong PINs -> identified only
        SimCall(callerid=CallerIdSpec(number=PHONE, name="NORA QUIST"),
                script=[Press(p + "#") for p in WRONG_PINS], agents=agents),
        # withheld, opts out at the identifier question
        SimCall(callerid=CallerIdSpec(absent="O"),
                script=[Press("*", after_ms=300), Clear("cpc", after_ms=30000)],
                agents=agents),
    ]
    flow = IdvFlow(policy, directory, counter=AttemptCounter(store))
    Engine(SimLine(calls, max_seconds=900), flow, EngineConfig(),
           recorder=StepsToStore(store)).run()
    rows = {(r["status"], r["identified_by"], r["reason"]) for r in store.recent()}
    assert rows == {("verified", "keyed", None), ("identified", "number", None),
                    ("not_identified", None, "opted_out")}, rows
    store.close()
    directory.close()
    return make_app(folder)


def unzipped(data: bytes) -> bytes:
    """An XLSX (a zip of XML) as the text of its parts, so digits in it can be searched."""
    if not data.startswith(b"PK"):
        return data
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return b"\n".join(z.read(name) for name in z.namelist())


def every_get(app) -> list[str]:
    """Every GET route; extension pages for each extension, the stream from the start."""
    paths = ["/agent/?ext=201", "/agent/?ext=202", "/agent/history.json?ext=201",
             "/agent/history.json?ext=202", "/agent/stream?ext=201,202&after=0",
             "/agent/history.json?ext=201,202"]
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint != "static" and "<" not in rule.rule:
            paths.append(rule.rule)
            if rule.rule.startswith("/reports"):
                paths.append(rule.rule + "?period=week&bucket=hour")
    return paths


def test_no_response_shows_a_keyed_secret_or_a_full_identifier(app):
    client = app.test_client()
    client_sign_in(client, "alice")
    bodies = {}
    for path in every_get(app):
        r = client.get(path)
        assert r.status_code in (200, 302), path
        bodies[path] = unzipped(r.data)
    joined = b"\n".join(bodies.values())
    # the data is there (masked), so the search below is not a search of empty pages
    assert b"Nora Quist" in joined and b"**********01" in joined and b"********99" in joined
    assert {"/reports/", "/reports/export.csv", "/reports/export.xlsx"} <= set(bodies)
    spread = [re.compile(r"[\s().-]?".join(secret)) for secret in SECRETS]
    for path, body in bodies.items():
        text = body.decode("utf-8", "replace")
        for secret, pattern in zip(SECRETS, spread):
            # as keyed, or formatted with spaces, dashes, dots or brackets
            assert not pattern.search(text), (path, secret)
