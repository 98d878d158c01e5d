"""MQTT telemetry against a real Mosquitto (tests/mosquitto.py): TLS with a trustme CA,
password logins, availability and the last will, retained state, events in order
through the outbox across a broker outage, Home Assistant discovery, remote config."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jinja2
import pytest

from callgate.app import App
from callgate.config import Table
from callgate.engine import EngineConfig
from callgate.flow import policy_from_table
from callgate.line.sim import Agent, CallerIdSpec, Clear, Press, SimCall, SimLine
from callgate.store.outbox import Outbox
from callgate.store.records import CallStore
from callgate.telemetry.settings import load_mqtt
from mosquitto import Broker, Spy

JANE_PHONE, JANE_ID, JANE_PIN = "2015550123", "12345678", "4271"
STRANGER_ID = "99887766"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with Broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


def mqtt_settings(broker, user="office-1", **over):
    return load_mqtt(Table(broker.table(user, **over), "telemetry.mqtt"))


def three_calls():
    """Jane verified by number and PIN, a stranger who opts out, Jane again who hangs up."""
    return [SimCall(callerid=CallerIdSpec(number=JANE_PHONE),
                    script=[Press(JANE_PIN + "#", when="prompt_end", after_ms=500)],
                    agents={"201": Agent()}),
            SimCall(callerid=CallerIdSpec(absent="P"),
                    script=[Press(STRANGER_ID + "#", when="prompt_end", after_ms=300),
                            Press("*", when="prompt_end", after_ms=300),
                            Clear("cpc", after_ms=30000)],
                    agents={"201": Agent()}),
            SimCall(callerid=CallerIdSpec(number=JANE_PHONE),
                    script=[Clear("cpc", after_ms=1500)], agents={"201": Agent()})]


def make_app(tmp_path, directory, telemetry, calls=None, **kw):
    policy = policy_from_table(Table({"identifier": {"min_digits": 8, "max_digits": 8},
                                      "transfer": {"agent": "201"}}, "service.support"),
                               "support")
    line = SimLine(calls if calls is not None else three_calls(), max_seconds=600)
    return App(line, EngineConfig(), policy=policy, crm=directory,
               store=tmp_path / "calls.sqlite", synchronous="NORMAL", telemetry=telemetry,
               **kw)


def text(msg) -> str:
    return msg.payload.decode("utf-8")


# ---------------------------------------------------------------- a device's day


def test_calls_become_ordered_events_with_a_retained_state_and_availability(
        tmp_path, broker, directory):
    s = mqtt_settings(broker, device_id="office-1")
    base = "callgate/office-1"
    with Spy(broker, (f"{base}/#",)) as spy:
        app = make_app(tmp_path, directory, s)
        with app:
            assert app.telemetry.link.wait_up(15)
            assert app.run() == 3
            assert spy.wait(lambda m: len([x for x in m if x.topic == f"{base}/event"]) >= 3)
        # a clean stop: offline, retained
        assert spy.wait(lambda m: any(x.topic == f"{base}/availability"
                                      and x.payload == b"offline" for x in m))
        avail = [text(m) for m in spy.on(f"{base}/availability")]
        assert avail[0] == "online" and avail[-1] == "offline"
        events = spy.json_on(f"{base}/event")
    calls = [e for e in events if e["kind"] == "call"]
    assert [e["status"] for e in calls] == ["verified", "not_identified", "identified"]
    assert [e["seq"] for e in calls] == sorted(e["seq"] for e in calls)
    assert calls[0]["transfer_result"] == "completed" and calls[0]["caller"] == "**********23"
    assert calls[1]["reason"] == "opted_out" and calls[1]["caller"] is None
    assert all(e["device"] == "office-1" for e in events)
    with CallStore(tmp_path / "calls.sqlite") as store:
        assert Outbox(store, "outbox_mqtt").counts()["pending"] == 0

    # what a newcomer (an installer's `callgate fleet`) finds: the retained messages
    with Spy(broker, (f"{base}/state", f"{base}/availability")) as late:
        assert late.wait(lambda m: len({x.topic for x in m}) == 2)
        state = late.json_on(f"{base}/state")[-1]
        assert [text(m) for m in late.on(f"{base}/availability")] == ["offline"]
    assert all(m.retain for m in late.messages)
    assert state["device"] == "office-1"
    assert state["calls_today"] == {"verified": 1, "identified": 1, "not_identified": 1,
                                    "total": 3}
    assert state["lines"]["line"]["state"] in ("idle", "down")
    assert state["events_pending"] == 0 and state["schema"] == 1
    assert state["lines"]["line"]["callerid"]["rang"] == 3     # health.py's snapshot


WORKER_SCRIPT = textwrap.dedent("""
    import sys, time
    from callgate.config import Table
    from callgate.telemetry.settings import load_mqtt
    from callgate.telemetry.state import StateBuilder
    from callgate.telemetry.worker import TelemetryWorker
    from callgate.store.records import CallStore
    import datetime as dt, json
    table = json.loads(sys.argv[1])
    s = load_mqtt(Table(table, "telemetry.mqtt"))
    CallStore(sys.argv[2]).close()
    w = TelemetryWorker(s, sys.argv[2], StateBuilder(s.device_id, dt.timezone.utc,
                        lambda store: {}), ["line"]).start()
    assert w.link.wait_up(15)
    print("up", flush=True)
    time.sleep(600)
""")


def test_an_abrupt_stop_leaves_the_last_will_offline_retained(tmp_path, broker):
    base = "callgate/office-2"
    with Spy(broker, (f"{base}/availability",)) as spy:
        proc = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT,
                                 json.dumps(broker.table("office-2")),
                                 str(tmp_path / "calls.sqlite")],
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT / "firmware")})
        try:
            assert proc.stdout.readline().strip() == "up"
            assert spy.wait(lambda m: any(x.payload == b"online" for x in m))
            os.kill(proc.pid, signal.SIGKILL)          # no DISCONNECT: the will is sent
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert spy.wait(lambda m: m and m[-1].payload == b"offline")
    with Spy(broker, (f"{base}/availability",)) as late:
        assert late.wait(lambda m: m)
        assert [(x.payload, x.retain) for x in late.messages] == [(b"offline", True)]


def test_events_wait_in_the_outbox_through_an_outage_and_a_broker_restart(
        tmp_path, directory):
    with Broker(tmp_path / "own-broker") as broker:
        s = mqtt_settings(broker, device_id="office-1")
        base = "callgate/office-1"
        app = make_app(tmp_path, directory, s)
        app.start()
        try:
            link = app.telemetry.link
            assert link.wait_up(15)
            link.client.reconnect_delay_set(min_delay=1, max_delay=1)
            # a persistent session: what the device sends after the restart is kept for
            # the spy even if the device is back on the broker before the spy is
            with Spy(broker, (f"{base}/#",), lasting=True) as spy:
                assert spy.wait(lambda m: any(x.topic == f"{base}/state" for x in m))
                broker.stop()
                before = len(spy.messages)
                assert app.run() == 3                    # a batch of calls, broker away
                assert app.recorder.flush()
                with CallStore(tmp_path / "calls.sqlite") as store:
                    pending = Outbox(store, "outbox_mqtt").pending()
                assert [p.payload["status"] for p in pending] == [
                    "verified", "not_identified", "identified"]
                broker.start()                           # same port, its persistence kept
                assert spy.wait(lambda m: len([x for x in m if x.topic.endswith("/event")])
                                >= 3, timeout=30)
                events = spy.json_on(f"{base}/event")
                # the state is renewed after the restart
                assert spy.wait(lambda m: any(x.topic == f"{base}/state"
                                              for x in m[before:]))
        finally:
            app.close()
    assert [e["seq"] for e in events] == [p.id for p in pending]   # in order, no gap
    assert [e["status"] for e in events] == ["verified", "not_identified", "identified"]


def test_a_broker_whose_certificate_is_not_trusted_is_never_talked_to(tmp_path, broker):
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    s = mqtt_settings(broker, ca_file=str(other), device_id="office-9")
    from callgate.telemetry.client import Link

    link = Link(s).start()
    try:
        assert link.wait_refused(15)                     # the handshake fails, every time
        assert "TLS not trusted" in link.last_error
        assert link.connects == 0 and not link.up
    finally:
        link.stop()


def test_a_wrong_password_is_refused_by_the_broker(tmp_path, broker):
    from callgate.telemetry.client import Link

    pw = tmp_path / "wrong.secret"
    pw.write_text("not-the-password\n")
    os.chmod(pw, 0o600)
    s = mqtt_settings(broker, password_file=str(pw), device_id="office-8")
    link = Link(s).start()
    try:
        assert link.wait_refused(15)
        assert "broker refused the connection" in link.last_error
        assert link.connects == 0 and not link.up
    finally:
        link.stop()


# ---------------------------------------------------------------- Home Assistant


HA_TOPIC = re.compile(r"^homeassistant/(sensor|binary_sensor)/"
                      r"(?:[a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config$")
SENSOR_KEYS = {"name", "unique_id", "state_topic", "value_template", "availability_topic",
               "payload_available", "payload_not_available", "device", "icon",
               "unit_of_measurement", "state_class", "entity_category", "device_class",
               "json_attributes_topic", "json_attributes_template"}
BINARY_KEYS = SENSOR_KEYS - {"unit_of_measurement", "state_class"} | {"payload_on",
                                                                      "payload_off"}
DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model", "sw_version"}


def ha_render(template: str, state: dict) -> str:
    """A value template as Home Assistant renders it (Jinja2, the payload as value_json)."""
    return jinja2.Environment().from_string(template).render(value_json=state)


def test_home_assistant_discovery_configs_follow_the_documented_schema(
        tmp_path, broker, directory):
    s = mqtt_settings(broker, device_id="office-3", discovery=True)
    with Spy(broker, ("homeassistant/#", "callgate/office-3/state")) as spy:
        app = make_app(tmp_path, directory, s, calls=three_calls()[:1])
        with app:
            assert app.run() == 1
        assert spy.wait(lambda m: len([x for x in m if x.topic.startswith("home")]) >= 6)
        configs = {m.topic: (json.loads(m.payload), m.retain) for m in spy.messages
                   if m.topic.startswith("homeassistant/")}
        state = spy.json_on("callgate/office-3/state")[-1]
    assert len(configs) == 7                 # one line, four call counts, alarm, alarms
    with Spy(broker, ("homeassistant/+/office-3/#",)) as late:    # kept for HA's restarts
        assert late.wait(lambda m: len(m) >= 7)
        assert {m.topic for m in late.messages if m.retain} == set(configs)
    uids = set()
    for topic, (cfg, _) in configs.items():
        component = HA_TOPIC.match(topic)
        assert component, topic
        assert cfg["state_topic"] == "callgate/office-3/state"
        assert cfg["availability_topic"] == "callgate/office-3/availability"
        allowed = SENSOR_KEYS if component.group(1) == "sensor" else BINARY_KEYS
        assert set(cfg) <= allowed, set(cfg) - allowed
        assert {"name", "unique_id", "state_topic", "device"} <= set(cfg)
        assert set(cfg["device"]) <= DEVICE_KEYS and cfg["device"]["identifiers"]
        assert cfg.get("state_class") in (None, "measurement", "total", "total_increasing")
        assert cfg.get("entity_category") in (None, "config", "diagnostic")
        assert topic.split("/")[-2] == cfg["unique_id"].removeprefix("callgate_office-3_")
        uids.add(cfg["unique_id"])
        rendered = ha_render(cfg["value_template"], state)
        if component.group(1) == "binary_sensor":
            assert rendered in (cfg["payload_on"], cfg["payload_off"])
            attrs = json.loads(ha_render(cfg["json_attributes_template"], state))
            assert attrs == {"alarms": state["alarms"]}
        configs[topic] = (cfg, rendered)
    assert len(uids) == len(configs)
    values = {cfg["unique_id"].removeprefix("callgate_office-3_"): v
              for cfg, v in configs.values()}
    assert values["line_line"] in ("idle", "down")
    assert values["calls_today_verified"] == "1" and values["calls_today_total"] == "1"
    assert values["alarm"] == ("ON" if state["alarms"] else "OFF")


def test_a_device_that_starts_with_no_broker_and_restarts_loses_no_event(
        tmp_path, directory):
    """The broker unreachable for a first run of calls and the device restarted: the
    rows wait in the outbox file and go, in order, once the broker is there."""
    broker = Broker(tmp_path / "late-broker")            # made, not started
    s = mqtt_settings(broker, device_id="office-1")
    first = make_app(tmp_path, directory, s)
    with first:
        first.telemetry.link.client.reconnect_delay_set(min_delay=1, max_delay=1)
        assert first.run() == 3
        assert not first.telemetry.link.up
    with CallStore(tmp_path / "calls.sqlite") as store:
        waiting = [p.id for p in Outbox(store, "outbox_mqtt").pending()]
    assert len(waiting) == 3
    with broker, Spy(broker, ("callgate/office-1/event",)) as spy:
        second = make_app(tmp_path, directory, s, calls=[])
        with second:
            assert spy.wait(lambda m: len(m) >= 3)
        events = spy.json_on("callgate/office-1/event")
    assert [e["seq"] for e in events] == waiting


def test_an_event_past_its_age_is_dropped_before_the_link_delivers_it(tmp_path, broker):
    """After an outage longer than the events' age, the stale ones are not sent late."""
    import datetime as dt
    import time

    from callgate.telemetry.events import MAX_AGE_S, TABLE
    from callgate.telemetry.state import StateBuilder
    from callgate.telemetry.worker import TelemetryWorker

    path = tmp_path / "calls.sqlite"
    now = time.time()
    with CallStore(path) as store:
        box = Outbox(store, TABLE)
        box.enqueue("", {"kind": "fault", "n": "old"}, at=now - MAX_AGE_S - 60,
                    max_age_s=MAX_AGE_S)
        fresh = box.enqueue("", {"kind": "fault", "n": "new"}, at=now, max_age_s=MAX_AGE_S)
    s = mqtt_settings(broker, device_id="office-1")
    with Spy(broker, ("callgate/office-1/event",)) as spy:
        w = TelemetryWorker(s, path, StateBuilder("office-1", dt.timezone.utc,
                                                  lambda store: {}), ["line"]).start()
        try:
            assert spy.wait(lambda m: m)       # oldest first: the stale one would lead
        finally:
            w.stop()
        events = spy.json_on("callgate/office-1/event")
    assert [(e["n"], e["seq"]) for e in events] == [("new", fresh)]


def test_events_past_their_age_are_dropped_not_kept_forever(tmp_path):
    from callgate.telemetry.events import TABLE

    with CallStore(tmp_path / "calls.sqlite") as store:
        box = Outbox(store, TABLE)
        old = box.enqueue("", {"kind": "fault"}, at=1000.0, max_age_s=10.0)
        new = box.enqueue("", {"kind": "fault"}, at=2000.0, max_age_s=10.0)
        assert box.expire(now=1500.0) == 1
        assert [p.id for p in box.pending()] == [new] and old != new
