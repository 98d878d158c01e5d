"""The state document's alarms, what counts as a change, and the recorder's tap."""

from __future__ import annotations

import time

from callgate.call import LineState, Record
from callgate.store.outbox import Outbox
from callgate.store.recorder import Recorder
from callgate.store.records import CallStore
from callgate.telemetry.events import EventTap, call_event
from callgate.telemetry.state import alarms, changed

HEALTHY = {
    "lines": {"line": {"state": "idle", "up": True, "modem_present": True,
                       "callerid": {"rang": 10, "received": 9, "window": 10}}},
    "backend": {"breaker": "closed", "last_error_kind": None, "last_success": 10.0,
                "last_error": None},
    "outbox": {"pending": 0, "dead": 0, "oldest_pending_s": None},
    "storage": {"free_bytes": 8 << 30, "total_bytes": 16 << 30},
    "board": {"cpu_temp_c": 48.0, "throttled": {"under_voltage": False, "throttled": False}},
    "records": {"dropped": 0}, "remote_config": None,
}


def with_(path: str, value) -> dict:
    import copy

    doc = copy.deepcopy(HEALTHY)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    node[last] = value
    return doc


def names(doc) -> list[str]:
    return [a["alarm"] for a in alarms(doc)]


def test_a_healthy_device_has_no_alarm_and_each_fault_has_its_own():
    assert alarms(HEALTHY) == []
    cases = {
        "line_down": with_("lines.line.state", "down"),
        "modem_missing": with_("lines.line.modem_present", False),
        "no_callerid": with_("lines.line.callerid", {"rang": 5, "received": 0, "window": 10}),
        "backend_down": with_("backend.breaker", "open"),
        "backend_auth": with_("backend", {"breaker": "closed", "last_error_kind": "auth",
                                          "last_success": 10.0, "last_error": 20.0}),
        "writeback_dead": with_("outbox.dead", 2),
        "writeback_backlog": with_("outbox.oldest_pending_s", 7200.0),
        "disk_low": with_("storage.free_bytes", 1 << 30),
        "hot": with_("board.cpu_temp_c", 83.5),
        "throttled": with_("board.throttled", {"under_voltage": True}),
        "records_dropped": with_("records.dropped", 3),
        "remote_config_refused": with_("remote_config", {"result": "refused",
                                                         "why": "bad signature"}),
        "remote_config_not_running": with_("remote_config", {
            "result": "applied", "serial": 4, "running": None, "restarting": False}),
    }
    for name, doc in cases.items():
        assert names(doc) == [name], name
    # an auth error that a success followed is over; two rings without caller ID are
    # not yet a pattern
    assert names(with_("backend", {"last_error_kind": "auth", "last_success": 30.0,
                                   "last_error": 20.0})) == []
    assert names(with_("lines.line.callerid", {"rang": 2, "received": 0})) == []
    # a config applied and running, or applied with the restart still to come
    for remote in ({"result": "applied", "serial": 4, "running": 4, "restarting": False},
                   {"result": "applied", "serial": 4, "running": None, "restarting": True}):
        assert names(with_("remote_config", remote)) == [], remote
    down = alarms(with_("lines.line.state", "down"))[0]
    assert down["line"] == "line" and down["why"]


def test_news_is_a_line_state_alarms_or_calls_not_a_step_or_the_clock():
    a = {**HEALTHY, "at": "x", "calls_today": {"total": 1}}
    assert not changed(a, {**a, "at": "y", "uptime_s": 5})
    assert not changed(a, with_("lines.line.step", "security") | {"at": "x",
                                                                   "calls_today": {"total": 1}})
    assert changed(a, {**a, "calls_today": {"total": 2}})
    assert changed(a, {**a, "lines": {"line": {"state": "ringing"}}})
    assert changed(None, a)


def test_an_event_never_shows_more_of_a_number_than_the_mask():
    row = {"call_id": "line-1-1", "started": 1.0, "ended": 2.0, "status": "identified",
           "ani_masked": "+12015550123"}                 # a record that was not masked
    assert call_event(row, "caller")["caller"] is None
    row["ani_masked"] = "**********23"
    assert call_event(row, "caller")["caller"] == "**********23"


def test_a_tap_that_fails_costs_its_event_never_the_record(tmp_path):
    def broken(store, step):
        raise RuntimeError("telemetry bug")

    rec = Recorder(tmp_path / "calls.sqlite", tap=broken).start()
    now = time.time()
    rec.submit(Record("start", "c1", now, {"line": "line", "service": "s", "started": now}))
    rec.submit(Record("update", "c1", now, {"status": "verified"}))
    assert rec.flush()
    rec.close()
    assert rec.stats.refused == rec.stats.lost == 0
    with CallStore(tmp_path / "calls.sqlite") as store:
        assert store.get("c1")["status"] == "verified"


def test_the_tap_queues_a_call_at_its_end_and_a_line_fault_and_its_end(tmp_path):
    tap = EventTap()
    woken = []
    rec = Recorder(tmp_path / "calls.sqlite", tap=tap, on_tap=lambda: woken.append(1)).start()
    now = time.time()
    rec.submit(Record("start", "c1", now, {"line": "line", "service": "s", "started": now,
                                           "ani_masked": "********23"}))
    rec.submit(Record("update", "c1", now, {"status": "verified", "ended": now + 5}))
    rec.submit(Record("event", "c1", now, {"step": "hangup", "detail": {}}))
    assert rec.flush() and tap.queued == 0        # not over yet: no event
    rec.submit(Record("event", "c1", now, {"step": "end", "detail": {"reason": "caller"}}))
    rec.submit(LineState("line", "down", "modem gone", at=now))
    rec.submit(LineState("line", "idle", at=now + 1))
    rec.submit(LineState("line", "down", "callgate stopped", at=now + 2))   # not a fault
    assert rec.flush()
    rec.close()
    assert woken
    with CallStore(tmp_path / "calls.sqlite") as store:
        pending = Outbox(store, "outbox_mqtt").pending()
    kinds = [(p.payload["kind"], p.payload.get("status") or p.payload.get("fault"))
             for p in pending]
    assert kinds == [("call", "verified"), ("fault", "line_down"), ("fault", "line_restored")]
    assert pending[0].payload["caller"] == "********23" and pending[0].payload["end"] == "caller"
    assert pending[1].payload["why"] == "modem gone"


def test_a_call_event_carries_no_key_the_caller_pressed():
    """The menu choice is a key the caller pressed: it stays in the record, off the broker."""
    row = {"call_id": "c1", "started": time.time(), "ended": time.time(), "line": "line",
           "service": "support", "status": "verified", "menu_choice": "7"}
    event = call_event(row, "caller")
    assert "menu_choice" not in event
    assert "7" not in [str(v) for v in event.values()]
    assert event["service"] == "support" and event["status"] == "verified"
