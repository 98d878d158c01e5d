"""The first web admin from the one-time setup code (web/setup.py), on the real app
through Flask's test client; and the version in every page's footer."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from browser import ManualClock, csrf_of, make_app
from callgate import __version__
from callgate.web.setup import code_file, new_code

PASSWORD = "a long enough password"


@pytest.fixture()
def fresh(tmp_path):
    """An app with no user at all, and a setup code made as provisioning makes it."""
    app = make_app(tmp_path, clock=ManualClock(), users={})
    path = code_file(app.extensions["callgate"].settings.db)
    return app, path, new_code(path)


def location(response) -> str:
    assert response.status_code == 302
    return urlsplit(response.headers["Location"]).path


def post_setup(client, code, name="boss", password=PASSWORD, again=None):
    token = csrf_of(client.get("/signin").data)
    return client.post("/setup", data={"csrf_token": token, "code": code, "username": name,
                                       "password": password,
                                       "again": password if again is None else again})


def test_the_setup_code_makes_the_first_admin_once(fresh):
    app, path, code = fresh
    client = app.test_client()
    page = client.get("/signin").get_data(as_text=True)
    assert 'id="setup-link"' in page and "/setup" in page
    assert client.get("/setup").status_code == 200
    assert post_setup(client, "WRONG-CODE-XXXX").status_code == 401
    assert path.exists()
    assert post_setup(client, code, again="something else entirely").status_code == 400
    # typed in lower case and without dashes is the same code
    r = post_setup(client, code.lower().replace("-", " "))
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/status"
    assert client.get("/users/").status_code == 200         # signed in as the admin
    users = app.extensions["callgate"].users
    assert users.get("boss").role == "admin" and users.authenticate("boss", PASSWORD)
    assert not path.exists()
    other = app.test_client()
    assert location(other.get("/setup")) == "/signin"
    assert location(post_setup(other, code, name="intruder")) == "/signin"
    assert users.get("intruder") is None
    assert 'id="setup-link"' not in other.get("/signin").get_data(as_text=True)


def test_no_setup_page_once_an_admin_exists(tmp_path):
    app = make_app(tmp_path, clock=ManualClock())           # the usual users, an admin among them
    path = code_file(app.extensions["callgate"].settings.db)
    code = new_code(path)
    client = app.test_client()
    assert location(client.get("/setup")) == "/signin"
    assert location(post_setup(client, code, name="second")) == "/signin"
    assert app.extensions["callgate"].users.get("second") is None


def test_wrong_codes_are_limited(fresh):
    app, path, code = fresh
    client = app.test_client()
    limit = app.extensions["callgate"].settings.signin_attempts
    for _ in range(limit):
        assert post_setup(client, "AAAA-AAAA-AAAA").status_code == 401
    assert post_setup(client, code).status_code == 429       # even the right one, for now
    assert path.exists()


def test_the_code_file_holds_a_hash_not_the_code(fresh):
    _, path, code = fresh
    text = path.read_text()
    assert text.startswith("scrypt$") and code.replace("-", "") not in text
    assert (path.stat().st_mode & 0o777) == 0o600


def test_every_page_shows_the_version(fresh):
    app, _, _ = fresh
    page = app.test_client().get("/signin").get_data(as_text=True)
    assert f"callgate {__version__}</footer>" in page
