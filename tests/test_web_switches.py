"""The supervisor's "closed today" switch: written from the web app into the real call
store, read back the way the engine reads it at the start of a call; supervisors and
admins only, with a CSRF token."""

from __future__ import annotations

import datetime as dt

from browser import ManualClock, client_sign_in, csrf_of, make_app
from callgate.store.switches import closed_at


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
    assert closed_at(store.db, "support") == clock()          # the flow works out the date
    assert closed_at(store.db, "sales") is None
    page = client.get("/switches/")
    assert b"Closed (switched" in page.data and b"support is closed for today" in page.data
    client.post("/switches/open", data={"csrf_token": csrf_of(page.data), "service": "support"})
    assert closed_at(store.db, "support") is None


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
        day = rec.switches.today("support")
        assert day.closed_at is None and day.announcement
        assert np.array_equal(rec.switches.announcement("support"), audio)
        assert not rec.switches.today("sales").announcement
        page = client.get("/switches/")
        client.post("/switches/announcement/off", data={"csrf_token": csrf_of(page.data),
                                                        "service": "support"})
        assert not rec.switches.today("support").announcement
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


def test_closed_today_from_the_web_holds_in_the_service_lines_own_zone(tmp_path, store,
                                                                        directory, monkeypatch):
    """The device runs on UTC, the service line's hours on Los Angeles time. At 17:00 on
    Monday in Los Angeles (01:00 Tuesday UTC) the supervisor closes the line: a call a
    minute later is closed (override), and so is one at 23:30 Los Angeles; the first
    call of Tuesday in Los Angeles goes by the hours again (the switch ended there at
    midnight, not at the device's midnight)."""
    import time

    from callgate.flow import IdvFlow
    from callgate.store.records import AttemptCounter
    from callgate.store.recorder import Recorder
    from test_flow import JANE_PHONE, JANE_PIN, Clock, Run, cid, policy

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        at = dt.datetime(2026, 12, 8, 1, 0, tzinfo=dt.timezone.utc).timestamp()
        app = make_app(tmp_path, clock=ManualClock(at))
        client = app.test_client()
        client_sign_in(client, "sam")
        page = client.get("/switches/")
        client.post("/switches/closed-today", data={"csrf_token": csrf_of(page.data),
                                                    "service": "support"})
        page = client.get("/switches/")
        assert b"support is closed for today" in page.data
        hours = {"timezone": "America/Los_Angeles", "after_hours": "300",
                 **{d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri")}}
        rec = Recorder(tmp_path / "calls.sqlite", synchronous="NORMAL").start()
        try:
            def call(wall):
                flow = IdvFlow(policy(hours=hours), directory, counter=AttemptCounter(store),
                               switches=rec.switches)
                Run(flow, cid(JANE_PHONE), keys=[JANE_PIN + "#"], clock=Clock(wall)).go()
                return store.get(flow.record_id)["hours"]

            assert call(at + 60) == "override"                 # 17:01 Monday, LA
            assert call(at + 6.5 * 3600) == "override"         # 23:30 Monday, LA
            assert call(at + 7.5 * 3600) == "open"             # 00:30 Tuesday, LA
        finally:
            rec.close()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def _upload(client, body: bytes, service="support"):
    import io

    page = client.get("/switches/")
    data = {"csrf_token": csrf_of(page.data), "service": service,
            "recording": (io.BytesIO(body), "holiday.wav")}
    return client.post("/switches/announcement", data=data, content_type="multipart/form-data",
                       follow_redirects=True)


def _tone_wav(seconds: float) -> bytes:
    import io
    import wave

    import numpy as np

    t = np.arange(int(seconds * 8000)) / 8000
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def test_an_announcement_longer_than_a_minute_is_refused(tmp_path, store):
    """Every caller hears the announcement whole, before the greeting: 61 s is refused with
    one line, and nothing is switched on or written."""
    app = make_app(tmp_path)
    client = app.test_client()
    client_sign_in(client, "sam")
    r = _upload(client, _tone_wav(61))
    assert b"Not changed: the recording cannot be used (61 s long, the limit is 60 s" in r.data
    assert not (tmp_path / "announcements" / "support.wav").exists()
    assert store.db.execute("SELECT COUNT(*) FROM service_switches").fetchone()[0] == 0
    assert b"The announcement of support is on" in _upload(client, _tone_wav(59)).data


def test_an_unreadable_upload_is_one_clean_line_without_paths(tmp_path, store):
    app = make_app(tmp_path)
    client = app.test_client()
    client_sign_in(client, "sam")
    r = _upload(client, b"RIFF\x24\x00\x00\x00WAVEdata\x00\x00\x00\x00")
    assert b"Not changed: the recording cannot be used (not a WAV file" in r.data
    assert b"/tmp" not in r.data and b"callgate-upload" not in r.data


def test_a_switch_that_cannot_be_written_leaves_the_old_announcement(tmp_path, store,
                                                                     monkeypatch):
    """The switch-on fails (the records are locked): the new recording is not put in place,
    and switching off fails as one line, not a server error."""
    import sqlite3

    import callgate.web.switches as web

    app = make_app(tmp_path)
    client = app.test_client()
    client_sign_in(client, "sam")
    assert b"is on" in _upload(client, _tone_wav(2)).data
    before = (tmp_path / "announcements" / "support.wav").read_bytes()

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(web, "set_announcement", locked)
    r = _upload(client, _tone_wav(5))
    assert b"Not changed: the announcement could not be stored" in r.data
    assert (tmp_path / "announcements" / "support.wav").read_bytes() == before
    page = client.get("/switches/")
    r = client.post("/switches/announcement/off", data={"csrf_token": csrf_of(page.data),
                                                        "service": "support"},
                    follow_redirects=True)
    assert r.status_code == 200 and b"Not changed: the call records could not be written" in r.data


def test_service_names_are_ascii_only(tmp_path, store):
    app = make_app(tmp_path)
    client = app.test_client()
    client_sign_in(client, "sam")
    for name in ("caf\u00e9", "line\u00b2", "\u0661\u0662"):
        r = _upload(client, _tone_wav(2), service=name)
        assert b"Not changed: a service line is named with letters A-Z" in r.data, name
    assert not (tmp_path / "announcements").exists()


def test_the_announcement_is_decoded_once_while_its_file_is_unchanged(tmp_path, store,
                                                                     monkeypatch):
    """Each call reads the switches; the audio is decoded again only when the file changes
    (size or time), and the row is read within the flow's own wait."""
    import os

    import numpy as np

    import callgate.wav
    from callgate.store.recorder import Recorder
    from callgate.store.switches import QUERY_TIMEOUT_S, RecordedSwitches

    app = make_app(tmp_path)
    client = app.test_client()
    client_sign_in(client, "sam")
    _upload(client, _tone_wav(2))
    reads = []
    real = callgate.wav.read_wav
    monkeypatch.setattr(callgate.wav, "read_wav", lambda p, *a: reads.append(p) or real(p, *a))
    rec = Recorder(tmp_path / "calls.sqlite", synchronous="NORMAL").start()
    try:
        first = rec.switches.announcement("support")
        assert np.array_equal(rec.switches.announcement("support"), first)
        assert len(reads) == 1
        _upload(client, _tone_wav(3))
        path = tmp_path / "announcements" / "support.wav"
        os.utime(path, ns=(1, 1))                  # a new file, whatever the clock says
        assert len(rec.switches.announcement("support")) != len(first) and len(reads) == 2
    finally:
        rec.close()

    class FakeRecorder:
        path = tmp_path / "calls.sqlite"
        asked = []

        def query(self, fn, timeout_s=5.0, *, read_only=False):
            self.asked.append(timeout_s)
            return None, False

    fake = FakeRecorder()
    RecordedSwitches(fake).today("support")
    assert fake.asked == [QUERY_TIMEOUT_S] and QUERY_TIMEOUT_S <= 1.0
