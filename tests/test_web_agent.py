"""The agent's screen-pop data: who sees which transfers (history and event stream), the
words of each badge, Last-Event-ID resumption, and a push that arrives while the stream
is open. Real app, real call store (CallStore) written as the flow writes it."""

from __future__ import annotations

import json
import threading
import time

import pytest

from browser import client_sign_in, make_app, seed_transfer
from callgate.store.records import CallStore


@pytest.fixture()
def app(tmp_path):
    return make_app(tmp_path, clock=time.time, stream_s=0.3, poll_s=0.05)


def signed_in(app, name, password=None):
    client = app.test_client()
    assert client_sign_in(client, name, password).status_code == 302
    return client


def sse(body: bytes) -> list[dict]:
    """The messages of an event stream: [{"id":..., "event":..., "data":...}, ...]."""
    out = []
    for block in body.decode().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            out.append(fields)
    return out


def transfers(body: bytes) -> list[dict]:
    return [m for m in sse(body) if m.get("event") == "transfer"]


def test_an_agent_sees_only_transfers_to_their_own_extensions(app, store):
    mine = [seed_transfer(store, "201", "verified", name="Jane Smith"),
            seed_transfer(store, "201", "identified", name="Carlos Diaz", id_masked="******89")]
    seed_transfer(store, "202", "verified", name="Amira Haddad", id_masked="******90")
    seed_transfer(store, "2010", "verified", name="Tom Okafor", id_masked="******01")
    ann = signed_in(app, "ann")
    history = ann.get("/agent/history.json").get_json()
    assert history["extensions"] == ["201"]
    assert [t["call_id"] for t in history["history"]] == mine[::-1]          # newest first
    stream = ann.get("/agent/stream?after=0")
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    assert stream.headers["Cache-Control"] == "no-store"
    got = transfers(stream.data)
    assert [m["data"]["call_id"] for m in got] == mine                      # oldest first
    assert all(m["data"]["extension"] == "201" for m in got)
    body = stream.data + ann.get("/agent/history.json").data
    for other in (b"Amira", b"Okafor", b"******90", b"2010"):
        assert other not in body
    # asking for someone else's extension is refused, not filtered silently
    for path in ("/agent/history.json?ext=202", "/agent/stream?ext=202&after=0",
                 "/agent/?ext=202", "/agent/history.json?ext=201,202"):
        r = ann.get(path)
        assert r.status_code == 403 and b"Amira" not in r.data, path
    # an agent with two extensions sees both, or one of them when asking
    bob = signed_in(app, "bob")
    seed_transfer(store, "203", "not_identified", reason="opted_out")
    assert [t["extension"] for t in bob.get("/agent/history.json").get_json()["history"]] \
        == ["203", "202"]
    assert [t["extension"] for t in
            bob.get("/agent/history.json?ext=203").get_json()["history"]] == ["203"]


def test_a_supervisor_chooses_the_extension_to_watch(app, store):
    seed_transfer(store, "201", "verified")
    seed_transfer(store, "202", "identified", name="Carlos Diaz")
    sam = signed_in(app, "sam")
    assert sam.get("/agent/history.json").get_json()["history"] == []
    page = sam.get("/agent/").data.decode()
    assert "Choose an extension to watch" in page
    assert '<option value="201">' in page and '<option value="203">' in page   # calls, users
    only_202 = sam.get("/agent/history.json?ext=202").get_json()["history"]
    assert [t["customer_name"] for t in only_202] == ["Carlos Diaz"]
    both = transfers(sam.get("/agent/stream?ext=201,202&after=0").data)
    assert sorted(m["data"]["extension"] for m in both) == ["201", "202"]
    assert sam.get("/agent/history.json?ext=<b>").status_code == 400


def test_the_history_keeps_the_last_ten(app, store):
    ids = [seed_transfer(store, "201", "verified", at=1_700_000_000 + i) for i in range(13)]
    got = signed_in(app, "ann").get("/agent/history.json").get_json()["history"]
    assert [t["call_id"] for t in got] == ids[::-1][:10]


@pytest.mark.parametrize("status, reason, badge, reason_text", [
    ("verified", None, "Identified and verified", None),
    ("identified", None, "Identified only", None),
    ("not_identified", None, "Not identified", None),
    ("identified", "locked", "Identified only", "Locked"),
    ("not_identified", "opted_out", "Not identified", "Opted out"),
    ("identified", "opted_out", "Identified only", "Opted out"),
    ("not_identified", "backend_down", "Not identified", "Back end unavailable"),
])
def test_the_words_of_each_badge(app, store, status, reason, badge, reason_text):
    identified = status != "not_identified"
    seed_transfer(store, "201", status, reason, by="keyed" if identified else None)
    (t,) = signed_in(app, "ann").get("/agent/history.json").get_json()["history"]
    assert (t["status"], t["reason"], t["badge"], t["reason_text"]) == \
        (status, reason, badge, reason_text)
    if identified:
        assert (t["customer_name"], t["customer_id_masked"], t["how"]) == \
            ("Jane Smith", "******78", "by keyed identifier")
    else:
        assert t["customer_name"] is None and t["customer_id_masked"] is None
        assert t["how"] is None
    assert t["ani_masked"] == "**********23"


def test_reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(app, store):
    app.extensions["callgate"].settings.stream_s = 0.3
    ann = signed_in(app, "ann")
    first = [seed_transfer(store, "201", "verified") for _ in range(3)]
    got = transfers(ann.get("/agent/stream?after=0").data)
    assert [m["data"]["call_id"] for m in got] == first
    ids = [int(m["id"]) for m in got]
    assert ids == sorted(ids) and len(set(ids)) == 3
    later = [seed_transfer(store, "202", "verified"), seed_transfer(store, "201", "identified")]
    # the browser reconnects with the id of the last message it had; `after` is the page's
    # first position and must not win over it
    again = transfers(ann.get("/agent/stream?after=0",
                              headers={"Last-Event-ID": str(ids[-1])}).data)
    assert [m["data"]["call_id"] for m in again] == [later[1]]
    assert transfers(ann.get("/agent/stream?after=0",
                             headers={"Last-Event-ID": again[-1]["id"]}).data) == []


def test_a_stream_without_a_position_starts_now(app, store):
    seed_transfer(store, "201", "verified")
    ann = signed_in(app, "ann")
    r = ann.get("/agent/stream")
    msgs = sse(r.data)
    assert msgs[0]["event"] == "hello" and abs(msgs[0]["data"]["now"] - time.time()) < 30
    assert "retry: 1000" in r.data.decode()
    assert transfers(r.data) == []
    assert ann.get("/agent/history.json").get_json()["last_id"] >= 1


def test_a_transfer_is_pushed_while_the_stream_is_open(app, store, tmp_path):
    app.extensions["callgate"].settings.stream_s = 2.0
    ann = signed_in(app, "ann")
    last = ann.get("/agent/history.json").get_json()["last_id"]
    written = {}

    def write_soon():
        time.sleep(0.4)
        with CallStore(tmp_path / "calls.sqlite") as other:      # as the engine would
            written["id"] = seed_transfer(other, "201", "verified", name="Lena Okafor")
            written["at"] = time.monotonic()

    writer = threading.Thread(target=write_soon)
    writer.start()
    r = ann.get(f"/agent/stream?after={last}", buffered=False)
    arrived = None
    buffer = b""
    for chunk in r.response:
        buffer += chunk
        if b"event: transfer" in buffer and arrived is None:
            arrived = time.monotonic()
    writer.join()
    (got,) = transfers(buffer)
    assert got["data"]["call_id"] == written["id"] and got["data"]["customer_name"] == "Lena Okafor"
    assert arrived is not None and arrived - written["at"] < 1.0


def test_the_stream_ends_when_the_session_does(app, store):
    app.extensions["callgate"].settings.stream_s = 20.0
    app.extensions["callgate"].settings.recheck_s = 0.2
    ann = signed_in(app, "ann")
    users = app.extensions["callgate"].users

    def disable_soon():
        time.sleep(0.3)
        users.set_disabled("ann", True)

    t0 = time.monotonic()
    threading.Thread(target=disable_soon).start()
    r = ann.get("/agent/stream?after=0")
    assert time.monotonic() - t0 < 5                             # not the 20 s of the stream
    assert sse(r.data)[-1]["event"] == "signedout"


def test_no_store_yet_is_an_empty_page_not_an_error(app):
    ann = signed_in(app, "ann")
    r = ann.get("/agent/history.json")
    assert r.status_code == 200 and r.get_json()["history"] == [] and r.get_json()["last_id"] == 0
    assert transfers(ann.get("/agent/stream?after=0").data) == []
    assert ann.get("/agent/").status_code == 200


def test_an_agent_without_an_extension_is_told_so(app):
    app.extensions["callgate"].users.add("cleo", "agent", "cleo-password-1")
    cleo = signed_in(app, "cleo", "cleo-password-1")
    page = cleo.get("/agent/").data.decode()
    assert "No extension is tied to your user yet" in page
    assert cleo.get("/agent/history.json").get_json()["history"] == []


def test_a_name_from_the_crm_stays_text(app, store):
    seed_transfer(store, "201", "verified", name='<img src=x onerror="alert(1)">')
    ann = signed_in(app, "ann")
    (t,) = ann.get("/agent/history.json").get_json()["history"]
    assert t["customer_name"] == '<img src=x onerror="alert(1)">'          # data, as given
    assert b"<img" not in ann.get("/agent/").data                      # never put in the HTML


def test_the_screen_pop_knows_fallbacks_after_hours_menu_and_no_secret(tmp_path, capsys):
    """Calls run by `callgate simulate` (issue 15 scenarios), their store read by the web
    app: the extension that rang after a fallback shows the call, with what happened."""
    from pathlib import Path

    from callgate import cli

    scenarios = Path(__file__).parent / "scenarios"
    for name in ("transfer_fallback_each", "hours_override", "menu_choices",
                 "no_secret_on_file"):
        keep = tmp_path / name
        assert cli.main(["simulate", "--keep", str(keep),
                         str(scenarios / f"{name}.toml")]) == 0, name
    capsys.readouterr()

    def history(name, ext):
        web = tmp_path / f"web-{name}-{ext}"
        web.mkdir()
        app = make_app(web, clock=time.time, store=str(tmp_path / name / "calls.sqlite"))
        sam = signed_in(app, "sam")
        return sam.get(f"/agent/history.json?ext={ext}").get_json()["history"]

    at_210 = history("transfer_fallback_each", "210")
    assert len(at_210) == 4                       # 210 rang in each call, always second
    assert all(t["fallback_text"] == "Fallback: tried 1 before this extension" for t in at_210)
    assert all(t["badge"] == "Identified and verified" for t in at_210)
    first = history("transfer_fallback_each", "201")
    assert len(first) == 4 and all(t["fallback_text"] is None for t in first)
    (closed,) = history("hours_override", "300")
    assert closed["hours_text"] == "After hours (closed today)"
    assert closed["badge"] == "Not identified"
    assert [t["menu_choice"] for t in history("menu_choices", "210")] == ["1", "1"]
    tom = history("no_secret_on_file", "202")     # identified only: that extension
    assert len(tom) == 2 and {t["reason_text"] for t in tom} == {"No secret on file"}
    assert {t["customer_name"] for t in tom} == {"Tom Okafor"}
