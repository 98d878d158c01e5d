"""The supervisor's "closed today" switch: written from the web app into the real call
store, read back the way the engine reads it at the start of a call; supervisors and
admins only, with a CSRF token."""

from __future__ import annotations

import datetime as dt

from browser import ManualClock, client_sign_in, csrf_of, make_app
from callgate.store.switches import closed_today


def test_a_supervisor_closes_a_line_for_today_and_opens_it_again(tmp_path, store):
    clock = ManualClock(dt.datetime(2026, 12, 7, 10, 0).timestamp())    # local time
    app = make_app(tmp_path, clock=clock)
    client = app.test_client()
    client_sign_in(client, "sam")
    page = client.get("/switches/")
    assert page.status_code == 200
    r = client.post("/switches/closed-today", data={"csrf_token": csrf_of(page.data),
                                                    "service": "support"})
    assert r.status_code == 302
    assert closed_today(store.db, "support", "2026-12-07")
    assert not closed_today(store.db, "support", "2026-12-08")      # ends by itself
    assert not closed_today(store.db, "sales", "2026-12-07")
    page = client.get("/switches/")
    assert b"Closed (switched)" in page.data and b"support is closed for today" in page.data
    client.post("/switches/open", data={"csrf_token": csrf_of(page.data), "service": "support"})
    assert not closed_today(store.db, "support", "2026-12-07")


def test_agents_cannot_switch_and_bad_names_are_refused(tmp_path, store):
    app = make_app(tmp_path)
    client = app.test_client()
    client_sign_in(client, "ann")
    assert client.get("/switches/").status_code == 403
    token = csrf_of(client.get("/password").data)
    r = client.post("/switches/closed-today", data={"csrf_token": token, "service": "support"})
    assert r.status_code == 403
    client = app.test_client()
    client_sign_in(client, "sam")
    page = client.get("/switches/")
    r = client.post("/switches/closed-today", data={"csrf_token": csrf_of(page.data),
                                                    "service": "no such;line"},
                    follow_redirects=True)
    assert b"Not changed" in r.data
    assert store.db.execute("SELECT COUNT(*) FROM service_switches").fetchone()[0] == 0
