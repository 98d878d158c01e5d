"""The supervisor's live status: line states, calls in progress and today's figures, from
a real call store; only supervisors and admins see it."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from browser import client_sign_in, make_app, seed_transfer
from callgate.store.records import CallStore


@pytest.fixture()
def app(tmp_path):
    return make_app(tmp_path, clock=time.time)


def status(app, name="sam"):
    client = app.test_client()
    client_sign_in(client, name)
    r = client.get("/status.json")
    assert r.status_code == 200
    return r.get_json()


def test_each_line_state_with_its_words_and_since(app, store):
    now = time.time()
    store.set_line_status("line1", "in_flow", step="security", call_id="c1", at=now - 30)
    store.set_line_status("line2", "idle", at=now - 600)
    store.set_line_status("line3", "down", at=now - 5)
    store.set_line_status("line4", "transferring", call_id="c4", at=now - 2)
    store.set_line_status("line5", "ringing", at=now - 1)
    lines = {x["line"]: x for x in status(app)["lines"]}
    assert {k: v["label"] for k, v in lines.items()} == {
        "line1": "In flow at security question", "line2": "Idle", "line3": "Down",
        "line4": "Transferring", "line5": "Ringing"}
    assert lines["line1"]["state"] == "in_flow" and lines["line1"]["call_id"] == "c1"
    assert abs(lines["line1"]["since"] - (now - 30)) < 1e-3
    # the same state again keeps its `since`; a new step starts a new one
    store.set_line_status("line1", "in_flow", step="security", call_id="c1", at=now)
    assert abs(status(app)["lines"][0]["since"] - (now - 30)) < 1e-3
    store.set_line_status("line1", "in_flow", step="verify", call_id="c1", at=now + 1)
    first = status(app)["lines"][0]
    assert first["label"] == "In flow at verification" and first["since"] == now + 1


def test_calls_in_progress_are_the_ones_not_ended(app, store):
    now = time.time()
    store.start("live-1", "line1", "support", now - 12, "********23")
    store.update("live-1", identified_by="number", customer_id_masked="******78",
                 customer_name="Jane Smith")
    store.event("live-1", "lookup", {"source": "number", "result": "hit"}, now - 11)
    seed_transfer(store, "201", "verified", at=now - 100)                    # ended
    store.start("stale", "line2", "support", now - 9 * 3600, None)          # left by a crash
    calls = status(app)["in_progress"]
    assert [c["call_id"] for c in calls] == ["live-1"]
    c = calls[0]
    assert (c["customer_name"], c["customer_id_masked"], c["ani_masked"], c["step"]) == \
        ("Jane Smith", "******78", "********23", "lookup")


def test_todays_figures(app, store):
    now = time.time()
    midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    # seed_transfer starts a call 20 s before `at`: that start is today and before now
    today = now - min(3600, (now - midnight.timestamp()) / 2) + 20
    yesterday = (midnight - timedelta(hours=2)).timestamp()
    for status_, reason in (("verified", None), ("verified", None), ("verified", None),
                            ("identified", None), ("identified", "locked"),
                            ("not_identified", "opted_out"), ("not_identified", None)):
        seed_transfer(store, "201", status_, reason, at=today)
    seed_transfer(store, "201", "verified", at=yesterday)               # not today
    store.start("gone", "line1", "support", today - 20, None)          # hung up at security
    store.update("gone", status="identified", hangup_step="security", ended=today)
    figures = status(app)["today"]
    assert figures == {"calls": 8, "verified": 3, "identified": 3, "not_identified": 2,
                       "opted_out": 1, "locked": 1, "abandoned": 1}


def test_no_store_yet_shows_empty_status(app):
    data = status(app)
    assert data["lines"] == [] and data["in_progress"] == []
    assert data["today"]["calls"] == 0


def test_only_supervisors_and_admins(app, store):
    store.set_line_status("line1", "idle")
    assert status(app, "alice")["lines"][0]["line"] == "line1"
    ann = app.test_client()
    client_sign_in(ann, "ann")
    for path in ("/status", "/status.json"):
        r = ann.get(path)
        assert r.status_code == 403 and b"line1" not in r.data
