"""The web app against hostile input (issue 16): the sign-in's next= target, the password
rule, names in URLs, report dates, the bounded password checks and the sign-in limits."""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

import pytest

from browser import USERS, ManualClock, client_sign_in, csrf_of, make_app
from callgate.web import users as users_module
from callgate.web.users import UserError, Users


@pytest.fixture()
def clock():
    return ManualClock()


@pytest.fixture()
def app(tmp_path, clock):
    return make_app(tmp_path, clock=clock)


def post_signin(client, name, password, **extra):
    token = csrf_of(client.get("/signin").data)
    return client.post("/signin", data={"csrf_token": token, "username": name,
                                        "password": password, **extra})


# ---------------------------------------------------------------- item 4: next=


@pytest.mark.parametrize("target", [
    "/\t/127.0.0.2:18081/", "/\n/x", "/\r\nSet-Cookie: a=b", "/%09/evil.example/",
    "//evil.example/", "/\\evil.example/", "/x\\y", "/ok//evil", "/\x00", "/\x7f/x",
    "https://evil.example/", "javascript:alert(1)", "evil.example", "/%2F%2Fevil.example",
    "/%5Cevil.example", "/%0a/x", "/.//evil.example", "/%2F/evil.example", "/%2e%2e//x",
])
def test_next_accepts_only_a_path_of_this_site(app, target):
    client = app.test_client()
    # as a link would carry it: the target percent-encoded in the query string
    r = client.get("/signin?next=" + quote(target, safe=""))
    assert r.status_code == 200
    assert 'name="next"' not in r.get_data(as_text=True) or "evil" not in r.get_data(
        as_text=True)
    r = post_signin(client, "ann", USERS["ann"][1], next=target)
    assert r.status_code == 302, r.status_code
    assert r.headers["Location"] in ("/agent/", "http://localhost/agent/"), r.headers["Location"]


@pytest.mark.parametrize("target", ["/\uff0f/evil.example", "/\u2215evil.example",
                                    "/\u3000/evil.example", "/\u200b/evil.example"])
def test_a_look_alike_slash_stays_a_path_of_this_site(app, target):
    """Browsers treat only "/" and "\\" as slashes in a path; a look-alike is sent on
    percent-encoded, so the redirect stays on this site."""
    r = post_signin(app.test_client(), "ann", USERS["ann"][1], next=target)
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith("/%") and location.isascii(), location


def test_next_still_goes_back_to_a_page_of_this_site(app):
    r = post_signin(app.test_client(), "ann", USERS["ann"][1], next="/agent/?ext=201")
    assert r.status_code == 302 and r.headers["Location"].endswith("/agent/?ext=201")


def test_a_signed_in_get_with_a_hostile_next_stays_on_site(app):
    client = app.test_client()
    client_sign_in(client, "ann")
    r = client.get("/signin?next=/%0A/x")
    assert r.status_code == 302 and r.headers["Location"].endswith("/agent/")
    r = client.get("/signin?next=/%09/127.0.0.2:18081/")
    assert r.status_code == 302 and "127.0.0.2" not in r.headers["Location"]


# ---------------------------------------------------------------- item 6: the password rule


@pytest.mark.parametrize("password, user, why", [
    ("aaaaaaaaaa", "carl", "too few characters"),
    (" " * 10, "carl", None),
    ("admin12345", "admin", None),
    ("carl-2024!!", "carl", "user name"),
    ("12345carl!", "CARL", "user name"),
    ("callgate2026", "carl", "product's name"),
    ("password12345", "carl", "common passwords"),
    ("qwertyuiop", "carl", "common passwords"),
    ("1234567890", "carl", None),
    ("abcdefghijk", "carl", None),
    ("9876543210", "carl", None),
    ("ababababab", "carl", "too few characters"),
    ("ab12ab12ab12", "carl", "pattern repeated"),
    ("hellohello!1", "carl", "pattern repeated"),
    ("Xy9#Xy9#Xy9#", "carl", "pattern repeated"),
    ("short", "carl", "at least 10"),
    ("Password123", "carl", "common passwords"),
])
def test_weak_passwords_are_refused_with_the_reason(tmp_path, password, user, why):
    with Users(tmp_path / "web.sqlite", scrypt_n=2) as users:
        with pytest.raises(UserError) as err:
            users.add(user, "agent", password)
        text = str(err.value)
        assert "\n" not in text and password not in text
        if why:
            assert why in text
        assert users.get(user) is None


@pytest.mark.parametrize("password", ["correct horse battery", "alice-password-1",
                                      "Tr0ub4dor&3-castle", "my phone line 4271"])
def test_ordinary_passphrases_pass(password):
    from callgate.web.passwords import refusal

    assert refusal(password, "alice") is None


def test_the_shipped_list_is_the_common_passwords():
    from callgate.web.passwords import common_passwords

    common = common_passwords()
    assert len(common) >= 9000
    assert {"123456", "password", "qwertyuiop", "1234567890"} <= common
    assert all(w == w.strip().lower() and not w.startswith("#") for w in common)


def test_a_new_password_is_checked_against_the_users_name(app):
    client = app.test_client()
    client_sign_in(client, "bob")
    token = csrf_of(client.get("/password").data)
    r = client.post("/password", data={"csrf_token": token, "current": USERS["bob"][1],
                                       "new": "bob_2026!!!", "again": "bob_2026!!!"})
    assert r.status_code == 400 and b"user name" in r.data
    assert app.extensions["callgate"].users.authenticate("bob", USERS["bob"][1])


# ---------------------------------------------------------------- item 7: names in URLs


@pytest.mark.parametrize("spelling", ["ALICE", "Alice", "alice"])
def test_an_admin_cannot_disable_themselves_by_another_spelling(tmp_path, spelling):
    app = make_app(tmp_path, users={**USERS, "root": ("admin", "root-password-1", ())})
    admin = app.test_client()
    client_sign_in(admin, "alice")
    token = csrf_of(admin.get("/users/").data)
    r = admin.post(f"/users/{spelling}/disable", data={"csrf_token": token},
                   follow_redirects=True)
    assert b"cannot disable yourself" in r.data.lower()
    assert not app.extensions["callgate"].users.get("alice").disabled
    assert admin.get("/users/").status_code == 200              # still signed in


def test_a_password_reset_of_oneself_by_another_spelling_signs_out(tmp_path):
    app = make_app(tmp_path)
    admin = app.test_client()
    client_sign_in(admin, "alice")
    token = csrf_of(admin.get("/users/").data)
    r = admin.post("/users/ALICE/password", data={"csrf_token": token,
                                                 "password": "a-new-secret-9",
                                                 "again": "a-new-secret-9"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/signin")


# ---------------------------------------------------------------- item 1: bounded scrypt


class BlockingScrypt:
    """Stands in for hashlib.scrypt: counts the runs in progress and holds each until
    released, so a test can see how many run at once."""

    def __init__(self, real):
        self.real, self.running, self.most = real, 0, 0
        self.lock = threading.Lock()
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.entered.release()
        try:
            self.release.wait(30)
            return self.real(*args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def test_password_checks_run_a_few_at_a_time_and_the_rest_get_429(tmp_path, monkeypatch):
    app = make_app(tmp_path, clock=ManualClock(), hash_checks=2, hash_queue=1,
                   hash_wait_s=30.0)
    st = app.extensions["callgate"]
    fake = BlockingScrypt(users_module._scrypt)
    monkeypatch.setattr(users_module, "_scrypt", fake)
    answers: list[int] = []

    def try_wrong(i):
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"10.0.0.{i}"
        answers.append(post_signin(c, "ann", "wrong-password-x").status_code)

    threads = [threading.Thread(target=try_wrong, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for _ in range(2):                       # two inside scrypt ...
        assert fake.entered.acquire(timeout=30)
    assert st.users.checks.wait_until_queued(1, 30)      # ... and one waiting its turn
    # a fourth finds the two running and the queue full: refused at once, not hashed
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = "10.0.0.99"
    r = post_signin(c, "ann", "wrong-password-x")
    assert r.status_code == 429 and b"Too many sign-ins at once" in r.data
    assert r.headers.get("Retry-After")
    fake.release.set()
    for t in threads:
        t.join(30)
    assert sorted(answers) == [401, 401, 401]
    assert fake.most == 2
    # nothing held afterwards: a right password goes through
    assert post_signin(app.test_client(), "ann", USERS["ann"][1]).status_code == 302


def test_a_busy_refusal_does_not_count_as_a_failure(tmp_path):
    app = make_app(tmp_path, clock=ManualClock(), hash_checks=1, hash_queue=0)
    st = app.extensions["callgate"]
    with st.users.checks.held():             # the one slot is taken
        for _ in range(10):
            assert post_signin(app.test_client(), "ann", USERS["ann"][1]).status_code == 429
    assert post_signin(app.test_client(), "ann", USERS["ann"][1]).status_code == 302


def test_a_browser_known_to_the_user_waits_its_turn_when_strangers_fill_the_queue(tmp_path):
    """During a flood the queue is full and strangers get 429 at once; a browser the user
    signed in from before still waits for a check slot and signs in."""
    app = make_app(tmp_path, clock=ManualClock(), hash_checks=1, hash_queue=0,
                   hash_wait_s=30.0)
    st = app.extensions["callgate"]
    own = app.test_client()
    assert post_signin(own, "ann", USERS["ann"][1]).status_code == 302      # its cookie
    own.post("/signout", data={"csrf_token": csrf_of(own.get("/password").data)})
    answers = []
    with st.users.checks.held():                 # the flood has the only slot
        assert post_signin(app.test_client(), "ann", USERS["ann"][1]).status_code == 429
        t = threading.Thread(target=lambda: answers.append(
            post_signin(own, "ann", USERS["ann"][1]).status_code))
        t.start()
        assert st.users.checks.wait_until_queued(1, 30)      # waiting, not refused
    t.join(30)
    assert answers == [302]


def test_callgate_web_loads_no_numpy_or_scipy(tmp_path):
    """The web process builds only its own command line: the DSP commands' NumPy and SciPy
    would take 85 MiB of a 512 MiB board for nothing."""
    import subprocess
    import sys

    probe = ("import sys\nfrom callgate.cli import main\n"
             f"rc = main(['web', '--config', {str(tmp_path / 'missing.toml')!r}])\n"
             "print(rc, sorted(m for m in ('numpy', 'scipy') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert "missing.toml" in done.stderr                 # it went as far as the config
    assert done.stdout.split() == ["2", "[]"], done.stdout + done.stderr


def test_memory_is_given_back_after_every_check(tmp_path, monkeypatch):
    from callgate.web import memory

    assert memory.available()                 # Debian's glibc has malloc_trim
    memory.give_back()                        # and calling it is harmless
    calls = []
    monkeypatch.setattr(users_module, "give_back", lambda: calls.append(1) or True)
    with Users(tmp_path / "web.sqlite", scrypt_n=2) as users:
        users.add("carl", "agent", "correct horse battery")
        assert len(calls) == 1
        assert users.authenticate("carl", "wrong horse battery") is None
        assert users.authenticate("nobody", "correct horse battery") is None
        assert users.authenticate("carl", "correct horse battery") is not None
        assert len(calls) == 4


# ---------------------------------------------------------------- item 3: sign-in limits


def test_an_account_slows_down_exponentially_whatever_the_address(app, clock):
    """200 wrong passwords from 40 addresses no longer go through: past the free tries the
    account waits 1, 2, 4 ... seconds between tries (capped), whichever address asks."""
    checked = 0
    refused = 0
    for i in range(200):
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"10.1.{i % 40}.1"
        code = post_signin(c, "alice", f"guess-number-{i}").status_code
        checked += code == 401
        refused += code == 429
        clock.advance(0.05)                               # 200 tries in 10 s
    assert checked + refused == 200
    assert checked <= 10 + 4                              # the free tries and a few more
    # the right password, once the delay has passed, still signs in: never a lockout
    clock.advance(st_cap(app) + 1)
    assert post_signin(app.test_client(), "alice", USERS["alice"][1]).status_code == 302


def st_cap(app) -> float:
    return app.extensions["callgate"].settings.signin_window_s


def test_the_delay_doubles_and_stops_at_the_cap(app, clock):
    delays, waits = [], []
    for i in range(20):
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"10.2.{i}.1"
        r = post_signin(c, "bob", "wrong-password-x")
        while r.status_code == 429:                        # wait as the answer says
            waits.append(int(r.headers["Retry-After"]))
            clock.advance(waits[-1])
            r = post_signin(c, "bob", "wrong-password-x")
        assert r.status_code == 401
        delays.append(app.extensions["callgate"].limits.account_delay("bob", clock()))
    assert delays[:10] == [0] * 9 + [1]
    assert delays[10:15] == [2, 4, 8, 16, 32]
    assert delays[-2:] == [st_cap(app)] * 2
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_once_delayed_an_account_is_tried_once_at_a_time(tmp_path, monkeypatch):
    """Past the free tries, tries sent at the same moment from many addresses would all
    pass the delay check before the first failure is written: only one is checked, the
    others are refused at once."""
    clock = ManualClock()
    app = make_app(tmp_path, clock=clock, hash_checks=2, hash_queue=4, hash_wait_s=30.0)
    limits = app.extensions["callgate"].limits
    for i in range(12):                                   # past the free tries
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"10.5.{i}.1"
        assert post_signin(c, "alice", f"guess-number-{i}").status_code == 401
        clock.advance(limits.account_delay("alice", clock()) + 1)
    fake = BlockingScrypt(users_module._scrypt)
    monkeypatch.setattr(users_module, "_scrypt", fake)
    answers: list[int] = []

    def try_wrong(address):
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = address
        answers.append(post_signin(c, "alice", "wrong-password-x").status_code)

    first = threading.Thread(target=try_wrong, args=("10.6.0.1",))
    first.start()
    assert fake.entered.acquire(timeout=30)               # the first is being checked
    others = [threading.Thread(target=try_wrong, args=(f"10.6.{i}.1",)) for i in (1, 2, 3)]
    for t in others:
        t.start()
    for t in others:
        t.join(30)
    assert answers == [429, 429, 429] and fake.most == 1
    fake.release.set()
    first.join(30)
    assert answers[-1] == 401
    clock.advance(st_cap(app) + 1)                        # and it is not left claimed
    assert post_signin(app.test_client(), "alice", USERS["alice"][1]).status_code == 302


def test_a_browser_that_signed_in_before_is_not_kept_out(app, clock):
    """An attacker behind the admin's NAT cannot keep the admin out: a browser the admin
    signed in from before (its device cookie) skips the account's delay."""
    own = app.test_client()
    assert client_sign_in(own, "alice").status_code == 302
    own.post("/signout", data={"csrf_token": csrf_of(own.get("/password").data)})
    for i in range(30):
        attacker = app.test_client()
        if i % 3:                                   # from elsewhere, and from the NAT
            attacker.environ_base["REMOTE_ADDR"] = f"10.4.{i}.1"
        post_signin(attacker, "alice", f"guess-{i}-xxxxx")
        clock.advance(0.1)
    assert post_signin(app.test_client(), "alice", USERS["alice"][1]).status_code == 429
    assert post_signin(own, "alice", USERS["alice"][1]).status_code == 302


def test_an_address_spraying_many_names_is_limited(app, clock):
    c = app.test_client()
    codes = [post_signin(c, f"user{i}", "wrong-password-x").status_code for i in range(40)]
    limit = app.extensions["callgate"].settings.signin_address_attempts
    assert codes[:limit] == [401] * limit
    assert set(codes[limit:]) == {429}
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert post_signin(other, "ann", USERS["ann"][1]).status_code == 302


def test_the_pattern_is_logged_once(app, clock, caplog):
    caplog.set_level(logging.WARNING, "callgate.web")
    for i in range(60):
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"10.3.{i % 20}.1"
        post_signin(c, "alice", f"guess-number-{i}")
        clock.advance(0.1)
    noted = [r.getMessage() for r in caplog.records if "repeated failed sign-ins" in
             r.getMessage()]
    assert len(noted) == 1, noted
    assert "alice" in noted[0] and "addresses" in noted[0]
    per_try = [r for r in caplog.records if r.getMessage().startswith("sign-in refused")]
    assert len(per_try) <= 1


# ---------------------------------------------------------------- the new [web] keys


def test_the_hardening_keys_are_read_and_checked():
    from callgate.config import ConfigError, Table
    from callgate.web.settings import WebSettings

    s = WebSettings.from_table(Table({"web": {
        "streams": 8, "request_seconds": 5, "body_seconds": 20,
        "connections_per_address": 16, "signin_address_attempts": 30}}))
    assert (s.streams, s.request_s, s.body_s, s.connections_per_address,
            s.signin_address_attempts) == (8, 5, 20, 16, 30)
    for key, bad in (("streams", 0), ("request_seconds", 0), ("connections_per_address", 0),
                     ("body_seconds", 0)):
        with pytest.raises(ConfigError) as err:
            WebSettings.from_table(Table({"web": {key: bad}}))
        assert str(err.value).startswith(f"web.{key}: ")
