"""Serving: real HTTPS on loopback with a device certificate (trustme CA, verification on),
the one-line errors of a bad [web] table or a bad key file, and `callgate web` as the
appliance runs it (a process that serves, and stops cleanly on SIGTERM)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests
import trustme

from browser import USERS, csrf_of, make_app, make_settings, serve
from callgate import cli
from callgate.config import ConfigError, Table
from callgate.web.server import ServerError, make_server
from callgate.web.settings import WebSettings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def device_certificate(ca, folder: Path, key_mode=0o600) -> tuple[str, str, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = folder / "web.crt", folder / "web.key", folder / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    os.chmod(key_path, key_mode)
    ca.cert_pem.write_to_path(str(ca_path))
    return str(cert_path), str(key_path), str(ca_path)


def test_https_with_the_device_certificate(tmp_path, ca):
    cert, key, ca_file = device_certificate(ca, tmp_path)
    app = make_app(tmp_path, tls_cert=cert, tls_key=key)
    server, url = serve(app, app.extensions["callgate"].settings)
    try:
        assert url.startswith("https://127.0.0.1:")
        with requests.Session() as s:
            # verification on, against the device's CA (per request: REQUESTS_CA_BUNDLE in
            # the environment would win over a session-wide setting)
            r = s.get(url + "/signin", verify=ca_file, timeout=10)
            assert r.status_code == 200
            r = s.post(url + "/signin", data={"csrf_token": csrf_of(r.text), "username": "sam",
                                              "password": USERS["sam"][1]},
                       verify=ca_file, allow_redirects=False, timeout=10)
            assert r.status_code == 302
            cookie = r.headers["Set-Cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
            assert s.get(url + "/status.json", verify=ca_file, timeout=10).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):     # an unknown CA is refused
            requests.get(url + "/signin", verify=True, timeout=10)
        assert server.ssl_adapter.context.minimum_version == ssl.TLSVersion.TLSv1_2
    finally:
        server.stop()


def test_the_tls_key_must_be_private(tmp_path, ca):
    cert, key, _ = device_certificate(ca, tmp_path, key_mode=0o644)
    settings = make_settings(tmp_path, tls_cert=cert, tls_key=key)
    with pytest.raises(ServerError) as err:
        make_server(object(), settings)
    text = str(err.value)
    assert text.startswith("web.tls_key: ") and "owner only" in text and "chmod 600" in text
    assert "\n" not in text and "PRIVATE KEY" not in text


def test_tls_files_that_are_missing_or_not_a_pair(tmp_path, ca):
    cert, key, _ = device_certificate(ca, tmp_path)
    with pytest.raises(ServerError, match=r"^web.tls_cert: .*nothere.crt"):
        make_server(object(), make_settings(tmp_path, tls_cert=str(tmp_path / "nothere.crt"),
                                            tls_key=key))
    other = tmp_path / "other.key"
    trustme.CA().issue_cert("x.example").private_key_pem.write_to_path(str(other))
    os.chmod(other, 0o600)
    with pytest.raises(ServerError, match=r"^web.tls_cert: .* not a PEM certificate and its key"):
        make_server(object(), make_settings(tmp_path, tls_cert=cert, tls_key=str(other)))


@pytest.mark.parametrize("web, message", [
    ('listen = "8080"', "web.listen: '8080' is not host:port (e.g. \"0.0.0.0:8080\")"),
    ('listen = "0.0.0.0:99999"',
     "web.listen: '0.0.0.0:99999' is not host:port (e.g. \"0.0.0.0:8080\")"),
    ('tls_cert = "/etc/callgate/web.crt"', "web.tls_key: give tls_cert and tls_key together"),
    ("idle_minutes = 0", "web.idle_minutes: 0.0 is outside 1..1440"),
    ("idle_minutes = 600\nsession_hours = 8", "web.idle_minutes: longer than session_hours"),
    ("threads = 2", "web.threads: 2 is outside 4..256"),
    ('sesion_hours = 8', "web.sesion_hours: unknown key"),
    ('db = 5', "web.db: expected a string, got 5"),
])
def test_config_errors_name_the_key(tmp_path, capsys, web, message):
    with pytest.raises(ConfigError) as err:
        WebSettings.from_table(Table({"web": tomllib.loads(web)}))
    assert str(err.value) == message
    # check-config reads [web] too
    config = tmp_path / "c.toml"
    config.write_text(f"[web]\n{web}\n")
    assert cli.main(["check-config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == f"callgate check-config: {message}"


def test_settings_defaults_and_the_store_path():
    s = WebSettings.from_table(Table({"store": {"path": "/data/calls.sqlite"},
                                      "web": {"listen": "[::]:8443"}}))
    assert (s.host, s.port, s.store, s.https) == ("::", 8443, "/data/calls.sqlite", False)
    assert (s.idle_s, s.lifetime_s, s.signin_attempts, s.signin_window_s) == \
        (1800, 43200, 5, 300)
    assert WebSettings.from_table(Table({})).store == "/var/lib/callgate/calls.sqlite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def web_config(tmp_path: Path, port: int, **extra) -> Path:
    lines = [f'listen = "127.0.0.1:{port}"', f'db = "{tmp_path / "web.sqlite"}"',
             f'secret_key_file = "{tmp_path / "web-secret.key"}"',
             f'store = "{tmp_path / "calls.sqlite"}"']
    lines += [f'{k} = "{v}"' for k, v in extra.items()]
    path = tmp_path / "callgate.toml"
    path.write_text("[web]\n" + "\n".join(lines) + "\n")
    return path


def test_serve_needs_the_secret_key_made_by_init(tmp_path, capsys):
    config = web_config(tmp_path, free_port())
    assert cli.main(["web", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"callgate web: web.secret_key_file: {tmp_path / 'web-secret.key'} does not "
                   "exist (run `callgate web init` first)")
    key = tmp_path / "web-secret.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o644)
    assert cli.main(["web", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("callgate web: web.secret_key_file: ") and "owner only" in err


def test_serve_names_an_address_it_cannot_listen_on(tmp_path, capsys):
    key = tmp_path / "web-secret.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = web_config(tmp_path, port)
        assert cli.main(["web", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"callgate web: web.listen: cannot listen on 127.0.0.1:{port}")
    assert len(err.splitlines()) == 1


def test_callgate_web_serves_and_stops_on_sigterm(tmp_path):
    port = free_port()
    config = web_config(tmp_path, port)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "firmware")}
    init = subprocess.run([sys.executable, "-m", "callgate.cli", "web", "init", "--admin",
                           "root", "--config", str(config)], input="root-password-1\n",
                          capture_output=True, text=True, env=env, timeout=60)
    assert init.returncode == 0, init.stderr
    proc = subprocess.Popen([sys.executable, "-m", "callgate.cli", "web", "--config",
                             str(config)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert line.strip() == f"callgate web: serving on http://127.0.0.1:{port}", line
        r = requests.get(f"http://127.0.0.1:{port}/agent/", allow_redirects=False, timeout=10)
        assert r.status_code == 302 and r.headers["Location"].startswith("/signin")
        with requests.Session() as s:
            page = s.get(f"http://127.0.0.1:{port}/signin", timeout=10).text
            r = s.post(f"http://127.0.0.1:{port}/signin", timeout=10, allow_redirects=False,
                       data={"csrf_token": csrf_of(page), "username": "root",
                             "password": "root-password-1"})
            assert r.status_code == 302 and r.headers["Location"] == "/status"
        proc.send_signal(signal.SIGTERM)
        # a hang guard only: how long a loaded machine takes to stop is not the behaviour
        assert proc.wait(timeout=120) == 0
        rest = proc.stderr.read()
        assert "Traceback" not in rest and "root-password" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
