"""/metrics on the web app: parsed with prometheus_client's own parser and checked against
calls run through the real parts (the scenario library: App, Engine, IdvFlow, the HTTPS
connector against the reference server on loopback, the recorder on its own thread),
and its access rules (off by default, a 0600 token file, the supervisor role)."""

from __future__ import annotations

import math
import os
import secrets
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from browser import client_sign_in, make_app
from callgate.config import ConfigError, Table
from callgate.engine import Engine, EngineConfig
from callgate.flow import IdvFlow, policy_from_table
from callgate.line.sim import Agent, CallerIdSpec, Press, SimCall, SimLine
from callgate.scenario.run import simulate
from callgate.store.health import LATENCY_BUCKETS_S, BackendProbe
from callgate.store.recorder import Recorder
from callgate.store.records import CallStore
from callgate.telemetry.health import device_state
from callgate.web.keyfile import KeyFileError
from callgate.web.metrics import CONTENT_TYPE, MetricsSettings
from callgate.web.settings import WebSettings

FIXTURES = Path(__file__).parent / "fixtures"
SERVICE = """
[[service]]
name = "support"
[service.transfer]
agent = "200"
verified = "201"
identified = "202"
not_identified = "203"
opted_out = "204"
locked = "205"
backend_down = "206"
"""
CALLS_OK = """
[[calls]]
callerid = { number = "2015550123", name = "JANE SMITH" }
script = [{ press = "4271", when = "prompt_end", after_ms = 500 }]

[[calls]]
callerid = { number = "4155550142", name = "CARLOS DIAZ" }
abandon_after_rings = 1

[[calls]]
callerid = { number = "6175550199", name = "PAT DOE" }
gap_ms = 12000
script = [{ press = "12345678#", when = "prompt_end", after_ms = 500 },
          { press = "4271", when = "prompt_end", after_ms = 500 }]
"""
CALLS_DOWN = """
[[calls]]
callerid = { number = "2015550123", name = "JANE SMITH" }
"""
SECRETS = ("2015550123", "6175550199", "4155550142", "12345678", "4271")


def scenario(folder: Path, name: str, store: Path, behaviour: str, calls: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f"""
[backend]
kind = "https"
customers = "{FIXTURES / 'customers.csv'}"
scrypt_n = 16
behaviour = "{behaviour}"

[store]
path = "{store}"
{SERVICE}
{calls}""")
    return path


def token_file(folder: Path, mode: int = 0o600, token: str | None = None) -> tuple[Path, str]:
    token = token or secrets.token_urlsafe(24)
    path = folder / "metrics.token"
    path.write_text(token + "\n")
    os.chmod(path, mode)
    return path, token


def metrics_app(folder: Path, token_path: Path | None = None):
    return make_app(folder, metrics=MetricsSettings(True, str(token_path) if token_path
                                                    else None))


def samples(text: str) -> dict:
    """{(sample name, frozenset of labels): value} of a page, through prometheus_client's
    own parser (which refuses anything not in the exposition format)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def labelled(got: dict, name: str) -> dict:
    return {labels: v for (n, labels), v in got.items() if n == name}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Four calls through the real parts into one store: two verified over HTTPS, one that
    rang out, then one with the back end down (nothing listens)."""
    folder = tmp_path_factory.mktemp("metrics")
    store = folder / "calls.sqlite"
    quiet = lambda line: None                          # noqa: E731
    ok = simulate(scenario(folder, "ok", store, "ok", CALLS_OK), quiet)
    down = simulate(scenario(folder, "down", store, "down", CALLS_DOWN), quiet)
    return folder, store, [*ok.calls, *down.calls]


def scrape(folder: Path) -> str:
    """The page as a scraper with the token gets it."""
    path, token = token_file(folder)
    r = metrics_app(folder, path).test_client().get(
        "/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.data
    assert r.headers["Content-Type"] == CONTENT_TYPE
    return r.get_data(as_text=True)


def test_the_page_counts_the_calls_as_the_records_and_transcripts_say(ran):
    folder, store, calls = ran
    assert [c.end for c in calls] == ["transferred", "abandoned", "transferred",
                                      "transferred"]
    text = scrape(folder)
    got = samples(text)
    by_outcome = {dict(k)["status"] + "/" + dict(k)["reason"]: v
                  for k, v in labelled(got, "callgate_calls_total").items()}
    assert by_outcome == {"verified/none": 2, "not_identified/backend_down": 1}
    with CallStore(store) as cs:
        rows = cs.recent()
        assert Counter((r["status"], r["reason"] or "none") for r in rows) == {
            ("verified", "none"): 2, ("not_identified", "backend_down"): 1}
        latencies = [e["detail"]["ms"] for r in rows for e in cs.events(r["call_id"])
                     if e["step"] in ("lookup", "identifier", "verify") and "ms" in e["detail"]]
    assert {dict(k)["line"] for k in labelled(got, "callgate_calls_total")} == {"line"}

    # the histogram: one observation per request the transcripts saw, in the buckets the
    # trail's own latencies fall in (cumulative), the sum theirs
    requests = sum(len(c.requests) for c in calls)
    assert requests == 2 + 3 + 1 == len(latencies)
    buckets = labelled(got, "callgate_backend_request_seconds_bucket")
    assert {dict(k)["backend"] for k in buckets} == {"reference"}   # the connector to the reference API
    hist = {dict(k)["le"]: v for k, v in buckets.items()}
    assert list(hist) == [*map(repr, LATENCY_BUCKETS_S), "+Inf"]
    for le, n in hist.items():
        bound = math.inf if le == "+Inf" else float(le)
        assert n == sum(1 for ms in latencies if ms / 1000 <= bound), le
    (count,) = labelled(got, "callgate_backend_request_seconds_count").values()
    (total,) = labelled(got, "callgate_backend_request_seconds_sum").values()
    assert count == requests and total == pytest.approx(sum(latencies) / 1000, abs=1e-3)
    errors = {dict(k)["kind"]: v for k, v in labelled(got, "callgate_backend_errors_total")
              .items()}
    assert errors == {"connection": 1}                  # nothing listened the second time
    breaker = {dict(k)["state"]: v for k, v in
               labelled(got, "callgate_backend_breaker_state").items()}
    assert breaker == {"closed": 1, "open": 0, "half-open": 0}

    # the line and the device: the same values as the snapshot
    state = device_state(store)
    (ln,) = state["lines"]
    assert got[("callgate_line_up", frozenset({("line", "line")}))] == 0   # engine stopped
    assert labelled(got, "callgate_line_state")[
        frozenset({("line", "line"), ("state", "down")})] == 1
    assert got[("callgate_line_interface_present",
                frozenset({("line", "line"), ("interface", "sim")}))] == 1
    assert got[("callgate_line_callerid_calls", frozenset({("line", "line")}))] == \
        ln["callerid"]["rang"]
    assert got[("callgate_line_overruns_total", frozenset({("line", "line")}))] == 0
    assert got[("callgate_outbox_pending", frozenset())] == 0
    assert got[("callgate_build_info", frozenset({("version", state["version"])}))] == 1
    assert 0 < got[("callgate_data_free_bytes", frozenset())] <= \
        got[("callgate_data_size_bytes", frozenset())]
    for secret in SECRETS:
        assert secret not in text


def test_a_live_line_is_up_in_flow_while_a_call_runs(directory, tmp_path):
    """Scraped from the engine's watchdog during a call (the records flushed first): the
    line is up and in flow; after the run it is down."""
    store = tmp_path / "calls.sqlite"
    path, token = token_file(tmp_path)
    app = metrics_app(tmp_path, path)
    client = app.test_client()
    recorder = Recorder(store, synchronous="NORMAL", backend=BackendProbe.of(directory)).start()
    seen = []

    def look():
        recorder.flush()
        r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        seen.append(samples(r.get_data(as_text=True)))

    p = policy_from_table(Table({"transfer": {"agent": "201"}}, "service.s"), "s")
    call = SimCall(callerid=CallerIdSpec(number="2015550123"),
                   script=[Press("4271#", when="prompt_end", after_ms=700)],
                   agents={"201": Agent(answer_after_rings=1)})
    try:
        Engine(SimLine([call], max_seconds=120), IdvFlow(p, directory,
               counter=recorder.counter), EngineConfig(), name="fxo1", watchdog=look,
               recorder=recorder).run()
    finally:
        recorder.close()
    up = frozenset({("line", "fxo1")})
    in_flow = frozenset({("line", "fxo1"), ("state", "in_flow")})
    assert any(s.get(("callgate_line_up", up)) == 1 and s.get(("callgate_line_state", in_flow))
               == 1 for s in seen)
    assert all(s.get(("callgate_line_up", up), 1) == 1 for s in seen)   # never down mid-run
    after = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert samples(after.get_data(as_text=True))[("callgate_line_up", up)] == 0


# ---------------------------------------------------------------- who may read it


def test_off_by_default_there_is_no_such_page(tmp_path):
    app = make_app(tmp_path)
    assert WebSettings().metrics.enabled is False
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    client_sign_in(client, "sam")
    assert client.get("/metrics").status_code == 404


def test_the_token_opens_it_a_wrong_or_missing_one_does_not(tmp_path):
    path, token = token_file(tmp_path)
    client = metrics_app(tmp_path, path).test_client()
    r = client.get("/metrics")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer " + token[:-1] + "x"}
                      ).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic " + token}
                      ).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    families = {f.name: f.type for f in text_string_to_metric_families(ok.get_data(as_text=True))}
    assert families["callgate_calls"] == "counter" and families["callgate_line_up"] == "gauge"
    assert families["callgate_backend_request_seconds"] == "histogram"
    assert ok.headers["Cache-Control"] == "no-store"


def test_a_supervisor_session_opens_it_an_agent_session_does_not(tmp_path):
    path, _token = token_file(tmp_path)
    app = metrics_app(tmp_path, path)
    agent = app.test_client()
    client_sign_in(agent, "ann")
    assert agent.get("/metrics").status_code == 403
    for name in ("sam", "alice"):                        # supervisor; admin passes every check
        c = app.test_client()
        client_sign_in(c, name)
        assert c.get("/metrics").status_code == 200
    # no token file: only sessions, and a bearer token is always wrong
    bare = metrics_app(tmp_path / "bare").test_client()
    assert bare.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32}
                    ).status_code == 401


def test_a_token_file_open_to_others_or_too_short_is_refused_naming_it(tmp_path):
    path, _ = token_file(tmp_path, mode=0o644)
    with pytest.raises(KeyFileError, match=r"web\.metrics\.token_file: .* chmod 600"):
        metrics_app(tmp_path, path)
    path, _ = token_file(tmp_path, token="short")
    with pytest.raises(KeyFileError, match=r"web\.metrics\.token_file: .*at least 16"):
        metrics_app(tmp_path, path)
    with pytest.raises(KeyFileError, match=r"web\.metrics\.token_file: .*does-not-exist"):
        metrics_app(tmp_path, tmp_path / "does-not-exist")


def test_the_config_keys_are_checked(tmp_path):
    on = WebSettings.from_table(Table({"web": {"metrics": {
        "enabled": True, "token_file": "/etc/callgate/metrics.token"}}}))
    assert on.metrics == MetricsSettings(True, "/etc/callgate/metrics.token")
    with pytest.raises(ConfigError, match=r"web\.metrics\.tokenfile: unknown key"):
        WebSettings.from_table(Table({"web": {"metrics": {"enabled": True,
                                                           "tokenfile": "x"}}}))
    with pytest.raises(ConfigError, match=r"web\.metrics\.token_file: set enabled = true"):
        WebSettings.from_table(Table({"web": {"metrics": {"token_file": "/x"}}}))
    with pytest.raises(ConfigError, match=r"web\.metrics\.enabled"):
        WebSettings.from_table(Table({"web": {"metrics": {"enabled": "yes"}}}))


def test_check_config_knows_the_table(tmp_path):
    from callgate.app import Settings

    conf = tmp_path / "callgate.toml"
    conf.write_text('[web.metrics]\nenabled = true\ntoken_file = "/etc/callgate/m.token"\n')
    assert Settings.load(conf).table.sub("web").sub("metrics").data["enabled"] is True
    conf.write_text('[web.metrics]\nenable = true\n')
    with pytest.raises(ConfigError, match=r"web\.metrics\.enable: unknown key"):
        Settings.load(conf)
