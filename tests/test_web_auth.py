"""Sign-in, sessions, roles, CSRF and the security headers, through Flask's test client
on the real app (real SQLite users file, real scrypt, the real CSRF check)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from browser import USERS, ManualClock, client_sign_in, csrf_of, make_app, seed_transfer
from callgate.store.records import CallStore


@pytest.fixture()
def clock():
    return ManualClock()


@pytest.fixture()
def app(tmp_path, clock):
    app = make_app(tmp_path, clock=clock)
    with CallStore(tmp_path / "calls.sqlite", synchronous="NORMAL") as store:
        seed_transfer(store, "201", "verified", name="Jane Smith")
        store.set_line_status("line1", "in_flow", step="security", call_id="x")
    return app


def get_routes(app, method):
    """Every rule of the app that answers `method`, with sample arguments filled in."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or method not in rule.methods:
            continue
        out.append(re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "ann" if m.group(1) == "name" else "x",
                          rule.rule))
    return sorted(set(out))


def location(response) -> str:
    return urlsplit(response.headers["Location"]).path


def test_sign_in_lands_on_the_page_of_the_role(app):
    for name, home in (("ann", "/agent/"), ("sam", "/status"), ("alice", "/status")):
        client = app.test_client()
        r = client_sign_in(client, name)
        assert r.status_code == 302 and location(r) == home, name
        assert client.get(home).status_code == 200


def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_site(app):
    client = app.test_client()
    r = client.get("/agent/?ext=201")
    assert r.status_code == 302 and location(r) == "/signin"
    nxt = parse_qs(urlsplit(r.headers["Location"]).query)["next"][0]
    assert nxt == "/agent/?ext=201"
    token = csrf_of(client.get("/signin").data)
    r = client.post("/signin", data={"csrf_token": token, "username": "ann",
                                     "password": USERS["ann"][1], "next": nxt})
    assert r.headers["Location"].endswith("/agent/?ext=201")
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        c = app.test_client()
        token = csrf_of(c.get("/signin").data)
        r = c.post("/signin", data={"csrf_token": token, "username": "ann",
                                    "password": USERS["ann"][1], "next": evil})
        assert location(r) == "/agent/" and "evil" not in r.headers["Location"]


def test_wrong_password_and_unknown_user_get_the_same_answer(app):
    client = app.test_client()
    wrong = client_sign_in(client, "ann", "not-the-password")
    unknown = client_sign_in(client, "nobody", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert b"Wrong user name or password." in wrong.data
    assert b"Wrong user name or password." in unknown.data
    assert client.get("/agent/history.json").status_code == 401      # still signed out


def test_failed_sign_ins_are_limited_per_name_and_address(app, clock):
    client = app.test_client()
    for _ in range(5):
        assert client_sign_in(client, "ann", "wrong-password").status_code == 401
    # the sixth try is refused even with the right password, without checking it
    r = client_sign_in(client, "ann")
    assert r.status_code == 429 and b"Too many failed sign-ins" in r.data
    assert client.get("/agent/history.json").status_code == 401
    # another user from the same address, and the same user from elsewhere, still can
    assert client_sign_in(app.test_client(), "bob").status_code == 302
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert client_sign_in(other, "ann").status_code == 302
    # once the window has passed, the right password works again
    clock.advance(5 * 60 + 1)
    assert client_sign_in(client, "ann").status_code == 302


def test_signed_out_users_are_sent_to_sign_in_and_see_nothing(app):
    client = app.test_client()
    pages = get_routes(app, "GET")
    assert {"/agent/", "/agent/history.json", "/agent/stream", "/status", "/status.json",
            "/users/"} <= set(pages)
    for path in pages:
        if path in ("/", "/signin"):
            continue
        r = client.get(path)
        if path.endswith((".json", "/stream")):
            assert r.status_code == 401, path
            assert r.get_json() == {"error": "not signed in"}, path
        else:
            assert r.status_code == 302 and location(r) == "/signin", path
        assert b"Jane" not in r.data and b"******78" not in r.data, path
    # an event stream asked for by a browser (Accept: text/event-stream) too
    r = client.get("/agent/stream", headers={"Accept": "text/event-stream"})
    assert r.status_code == 401


def test_every_post_without_a_csrf_token_is_refused(app):
    client = app.test_client()
    # signed out: the sign-in form itself
    r = client.post("/signin", data={"username": "ann", "password": USERS["ann"][1]})
    assert r.status_code == 400 and b"CSRF" in r.data
    assert client.get("/agent/history.json").status_code == 401
    # signed in as admin, so no role check stands in the way: every POST route
    client_sign_in(client, "alice")
    posts = get_routes(app, "POST")
    assert {"/signin", "/signout", "/password", "/users/add", "/users/ann/disable",
            "/users/ann/enable", "/users/ann/extensions", "/users/ann/password"} <= set(posts)
    form = {"username": "zed", "role": "admin", "password": "x" * 12, "again": "x" * 12,
            "extensions": "999", "new": "y" * 12, "current": USERS["alice"][1]}
    for path in posts:
        r = client.post(path, data=form)
        assert r.status_code == 400, path
        r = client.post(path, data={**form, "csrf_token": "forged-token"})
        assert r.status_code == 400, path
    users = app.extensions["callgate"].users
    assert users.get("zed") is None and not users.get("ann").disabled
    assert users.get("ann").extensions == ("201",)
    assert client.get("/status.json").status_code == 200          # signout was refused too


def test_a_script_sends_the_token_in_the_x_csrftoken_header(app):
    client = app.test_client()
    client_sign_in(client, "alice")
    page = client.get("/users/").data.decode()
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    r = client.post("/users/ann/extensions", data={"extensions": "201, 299"},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 302
    assert app.extensions["callgate"].users.get("ann").extensions == ("201", "299")


@pytest.mark.parametrize("name, allowed, refused", [
    ("ann", ["/agent/", "/agent/history.json", "/password"],
     ["/status", "/status.json", "/users/", "/reports/"]),
    ("sam", ["/agent/", "/status", "/status.json", "/reports/"], ["/users/"]),
    ("alice", ["/agent/", "/status", "/status.json", "/reports/", "/users/"], []),
])
def test_roles(app, name, allowed, refused):
    client = app.test_client()
    client_sign_in(client, name)
    for path in allowed:
        assert client.get(path).status_code == 200, (name, path)
    for path in refused:
        r = client.get(path)
        assert r.status_code == 403, (name, path)
        assert b"Jane" not in r.data and b"security" not in r.data


def test_the_nav_shows_the_links_of_the_role(app):
    expected = {"ann": ["Agent"], "sam": ["Agent", "Status", "Reports"],
                "alice": ["Agent", "Status", "Reports", "Users"]}
    for name, links in expected.items():
        client = app.test_client()
        client_sign_in(client, name)
        html = client.get("/agent/" + ("?ext=201" if name != "ann" else "")).data.decode()
        nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S).group(1)
        assert re.findall(r">(\w+)</a>", nav) == links, name


def test_a_supervisor_cannot_manage_users(app):
    client = app.test_client()
    client_sign_in(client, "sam")
    token = csrf_of(client.get("/password").data)
    for path, data in (("/users/add", {"username": "eve", "role": "admin", "password": "p" * 12,
                                       "again": "p" * 12}),
                       ("/users/ann/disable", {}), ("/users/ann/password",
                                                    {"password": "q" * 12, "again": "q" * 12})):
        r = client.post(path, data={**data, "csrf_token": token})
        assert r.status_code == 403, path
    users = app.extensions["callgate"].users
    assert users.get("eve") is None and not users.get("ann").disabled
    assert users.authenticate("ann", USERS["ann"][1]) is not None


def test_idle_sessions_expire_and_use_keeps_them_alive(app, clock):
    client = app.test_client()
    client_sign_in(client, "sam")
    for _ in range(4):                       # used every 25 min for 100 min: still signed in
        clock.advance(25 * 60)
        assert client.get("/status.json").status_code == 200
    clock.advance(30 * 60)                   # 30 min without use
    assert client.get("/status.json").status_code == 401
    r = client.get("/status")
    assert r.status_code == 302 and location(r) == "/signin"
    assert client.get("/status").status_code == 302      # the session is gone, not resumed


def test_a_session_tells_why_it_ended(app, clock):
    client = app.test_client()
    client_sign_in(client, "sam")
    clock.advance(31 * 60)
    r = client.get("/status", follow_redirects=True)
    assert b"without use" in r.data and b'id="signin"' in r.data


def test_sessions_end_at_their_lifetime_however_busy(app, clock):
    client = app.test_client()
    client_sign_in(client, "ann")
    used = 0.0
    while used < 12 * 3600 - 600:
        clock.advance(600)
        used += 600
        assert client.get("/agent/history.json").status_code == 200
    clock.advance(600)
    assert client.get("/agent/history.json").status_code == 401


def test_a_new_password_ends_every_old_session(app):
    users = app.extensions["callgate"].users
    one, two = app.test_client(), app.test_client()
    client_sign_in(one, "ann")
    client_sign_in(two, "ann")
    # the agent changes it herself: her other session ends, this one goes on
    token = csrf_of(one.get("/password").data)
    r = one.post("/password", data={"csrf_token": token, "current": USERS["ann"][1],
                                    "new": "a-new-password-2", "again": "a-new-password-2"})
    assert r.status_code == 302
    assert one.get("/agent/history.json").status_code == 200
    assert two.get("/agent/history.json").status_code == 401
    assert client_sign_in(app.test_client(), "ann").status_code == 401       # old password
    # an admin resets it: every session of hers ends
    admin = app.test_client()
    client_sign_in(admin, "alice")
    token = csrf_of(admin.get("/users/").data)
    r = admin.post("/users/ann/password", data={"csrf_token": token, "password": "third-pass-33",
                                                "again": "third-pass-33"})
    assert r.status_code == 302
    assert one.get("/agent/history.json").status_code == 401
    assert users.authenticate("ann", "third-pass-33") is not None
    # the CLI path (set_password) does the same
    three = app.test_client()
    client_sign_in(three, "ann", "third-pass-33")
    users.set_password("ann", "fourth-pass-44")
    assert three.get("/agent/history.json").status_code == 401


def test_password_change_checks_the_current_one_and_the_length(app):
    client = app.test_client()
    client_sign_in(client, "ann")
    token = csrf_of(client.get("/password").data)
    for current, new, again, why in ((USERS["ann"][1], "short", "short", b"at least 10"),
                                     ("wrong-password", "long-enough-1", "long-enough-1",
                                      b"current password is wrong"),
                                     (USERS["ann"][1], "long-enough-1", "long-enough-2",
                                      b"differ")):
        r = client.post("/password", data={"csrf_token": token, "current": current,
                                           "new": new, "again": again})
        assert r.status_code == 400 and why in r.data
    assert app.extensions["callgate"].users.authenticate("ann", USERS["ann"][1])


def test_disabling_a_user_ends_their_sessions_and_sign_in(app):
    agent, admin = app.test_client(), app.test_client()
    client_sign_in(agent, "bob")
    client_sign_in(admin, "alice")
    token = csrf_of(admin.get("/users/").data)
    assert admin.post("/users/bob/disable", data={"csrf_token": token}).status_code == 302
    assert agent.get("/agent/history.json").status_code == 401
    assert client_sign_in(app.test_client(), "bob").status_code == 401
    assert admin.post("/users/bob/enable", data={"csrf_token": token}).status_code == 302
    assert client_sign_in(app.test_client(), "bob").status_code == 302
    # an admin cannot disable themselves (nor the last admin)
    r = admin.post("/users/alice/disable", data={"csrf_token": token}, follow_redirects=True)
    assert b"cannot disable yourself" in r.data.lower()
    assert not app.extensions["callgate"].users.get("alice").disabled


def test_sign_out_ends_the_session_on_the_server(app):
    client = app.test_client()
    client_sign_in(client, "sam")
    cookie = client.get_cookie("callgate_session").value
    token = csrf_of(client.get("/status").data)
    r = client.post("/signout", data={"csrf_token": token})
    assert r.status_code == 302 and location(r) == "/signin"
    assert client.get("/status.json").status_code == 401
    copy = app.test_client()                 # a copy of the old cookie is worth nothing now
    copy.set_cookie("callgate_session", cookie)
    assert copy.get("/status.json").status_code == 401


def test_security_headers_and_cookie_flags(app):
    client = app.test_client()
    r = client.get("/signin")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    client_sign_in(client, "alice")
    for path in ("/signin", "/agent/?ext=201", "/agent/history.json?ext=201", "/status",
                 "/status.json", "/users/", "/password", "/nowhere"):
        h = client.get(path).headers
        csp = h["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert h["X-Frame-Options"] == "DENY" and h["Referrer-Policy"] == "no-referrer"
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Cache-Control"] == "no-store", path


def test_pages_carry_no_inline_script(app):
    client = app.test_client()
    client_sign_in(client, "alice")
    for path in ("/signin", "/agent/?ext=201", "/status", "/users/", "/password", "/nowhere"):
        html = client.get(path).data.decode()
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
        assert all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert "style=" not in html, path



def test_a_password_typed_as_the_user_name_is_not_logged_or_stored(app, tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO)
    secret = "correct-horse-battery-9"
    for _ in range(7):                                   # failures, then the rate limit
        r = client_sign_in(app.test_client(), secret, "whatever")
    assert r.status_code == 429                          # still counted per name
    assert "unknown name" in caplog.text and secret not in caplog.text
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*.sqlite*"))
    assert secret.encode() not in blob
    client_sign_in(app.test_client(), "ann", "nope")
    assert "for ann from" in caplog.text                 # a known name is still shown
