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


def test_an_uploaded_recording_becomes_the_announcement_the_engine_reads(tmp_path, store):
    """Upload a 22 kHz recording: converted by `prompts convert`'s rules (8 kHz, level),
    switched on, read back as the engine's Work reads it; switched off again."""
    import io
    from pathlib import Path

    import numpy as np

    from callgate.prompts_tool import measure
    from callgate.store.recorder import Recorder
    from callgate.wav import read_wav

    recording = Path(__file__).parent / "fixtures" / "announcement.wav"
    app = make_app(tmp_path)
    client = app.test_client()
    client_sign_in(client, "sam")
    page = client.get("/switches/")
    data = {"csrf_token": csrf_of(page.data), "service": "support",
            "recording": (io.BytesIO(recording.read_bytes()), "holiday.wav")}
    r = client.post("/switches/announcement", data=data, content_type="multipart/form-data",
                    follow_redirects=True)
    assert b"The announcement of support is on" in r.data
    stored = tmp_path / "announcements" / "support.wav"
    audio = read_wav(stored)
    assert audio.dtype == np.int16 and abs(measure(audio).level_dbm0 - (-19.0)) < 1.0
    rec = Recorder(tmp_path / "calls.sqlite", synchronous="NORMAL").start()
    try:
        day = rec.switches.today("support", "2026-12-07")
        assert not day.closed and np.array_equal(day.announcement, audio)
        assert rec.switches.today("sales", "2026-12-07").announcement is None
        page = client.get("/switches/")
        client.post("/switches/announcement/off", data={"csrf_token": csrf_of(page.data),
                                                        "service": "support"})
        assert rec.switches.today("support", "2026-12-07").announcement is None
    finally:
        rec.close()


def test_a_recording_that_cannot_be_used_changes_nothing(tmp_path, store):
    import io

    app = make_app(tmp_path)
    client = app.test_client()
    client_sign_in(client, "sam")
    page = client.get("/switches/")
    data = {"csrf_token": csrf_of(page.data), "service": "support",
            "recording": (io.BytesIO(b"RIFF....not a wav at all"), "broken.wav")}
    r = client.post("/switches/announcement", data=data, content_type="multipart/form-data",
                    follow_redirects=True)
    assert b"Not changed: the recording cannot be used" in r.data
    assert not (tmp_path / "announcements" / "support.wav").exists()
    assert store.db.execute("SELECT COUNT(*) FROM service_switches").fetchone()[0] == 0
    # other forms stay small: a big body anywhere else is refused before it is read
    big = {"csrf_token": csrf_of(page.data), "service": "x" * 100_000}
    assert client.post("/switches/closed-today", data=big).status_code == 413
