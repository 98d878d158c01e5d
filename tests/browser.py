"""Shared pieces of the web tests: the app on a temporary directory, signed-in test
clients, the app served for real by cheroot on loopback, headless Chromium, and a PNG
reader for checking screenshots.

Test-client tests:  `app = make_app(tmp_path)`; `client = app.test_client()`;
`client_sign_in(client, "ann")` (users from USERS, made by make_app).

Browser tests import the module-scoped fixtures into their module:

    from browser import browser, live_app, sign_in   # noqa: F401  (pytest fixtures)

`live_app` serves a fresh app (users from USERS, call store `live_app.store`, not
created yet: seed it with store.records.CallStore) at `live_app.url`; `browser` is one
Chromium per module; `sign_in(browser, live_app, "sam")` signs in through the form.
There is no skip: without Debian's chromium and chromium-driver (tools/test installs
them) the browser tests fail and say so.
"""

from __future__ import annotations

import re
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from callgate.web.app import create_app
from callgate.web.server import make_server
from callgate.web.settings import WebSettings
from callgate.web.users import SCRYPT_N

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--window-size=1280,900")

# name -> (role, password, extensions)
USERS = {
    "alice": ("admin", "alice-password-1", ()),
    "sam": ("supervisor", "sam-password-1", ()),
    "ann": ("agent", "ann-password-1", ("201",)),
    "bob": ("agent", "bob-password-1", ("202", "203")),
}


class ManualClock:
    """A wall clock a test moves by hand (sessions, sign-in limits)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_settings(folder: Path, **over) -> WebSettings:
    folder = Path(folder)
    base = dict(store=str(folder / "calls.sqlite"), db=str(folder / "web.sqlite"),
                secret_key_file=str(folder / "web-secret.key"), host="127.0.0.1", port=0,
                stream_s=2.0, poll_s=0.1)
    base.update(over)
    return WebSettings(**base)


def make_app(folder: Path, clock=None, users: dict | None = None, scrypt_n: int = 2 ** 12,
             **over):
    """The real app on files in `folder`, with the USERS (or `users`) added.

    Password hashing runs at a quarter of the device's scrypt cost (2**12, not 2**14) to
    keep test-client suites quick; test_web_users checks the real cost, and `live_app`
    uses it."""
    settings = make_settings(folder, **over)
    app = create_app(settings, clock=clock or ManualClock(), secret_key=secrets.token_bytes(32),
                     scrypt_n=scrypt_n)
    for name, (role, password, exts) in (USERS if users is None else users).items():
        app.extensions["callgate"].users.add(name, role, password, exts)
    return app


def csrf_of(html: str | bytes) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    found = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert found, "no CSRF token in the page"
    return found.group(1)


def client_sign_in(client, name: str, password: str | None = None):
    """Sign in through the real form (with its CSRF token); returns the POST's response."""
    token = csrf_of(client.get("/signin").data)
    return client.post("/signin", data={"csrf_token": token, "username": name,
                                        "password": password or USERS[name][1]})


_seq = iter(range(1, 1_000_000))


def seed_transfer(store, ext: str, status: str, reason: str | None = None, *,
                  name: str | None = "Jane Smith", id_masked: str | None = "******78",
                  ani_masked: str | None = "**********23", by: str | None = "number",
                  at: float | None = None, line: str = "line1", service: str = "support",
                  ended: bool = True) -> str:
    """Write one call the way the flow does (record, then the "outcome" event with its
    extension, then the transfer) into a store.records.CallStore; returns its call_id."""
    at = time.time() if at is None else at
    call_id = f"{line}-{int(at * 1000)}-{next(_seq)}"
    store.start(call_id, line, service, at - 20, ani_masked)
    identified = status in ("verified", "identified")
    store.update(call_id, lookup="hit" if by == "number" else "miss",
                 identified_by=by if identified else None,
                 customer_id_masked=id_masked if identified else None,
                 customer_name=name if identified else None,
                 verify_result={"verified": "verified", "identified": "failed"}.get(status),
                 status=status, reason=reason, auth_ms=15000, transfer_target=ext,
                 transfer_mode="blind",
                 opted_out=("security" if identified else "identifier")
                 if reason == "opted_out" else None)
    store.event(call_id, "outcome", {"status": status, "reason": reason, "extension": ext}, at)
    store.update(call_id, transfer_result="completed")
    store.event(call_id, "transfer", {"extension": ext, "result": "completed"}, at + 1)
    if ended:
        store.update(call_id, ended=at + 2, hangup_step=None)
    return call_id


# ---------------------------------------------------------------- served for real


@dataclass
class LiveApp:
    url: str
    app: object
    settings: WebSettings
    server: object
    passwords: dict = field(default_factory=lambda: {n: u[1] for n, u in USERS.items()})

    @property
    def store(self) -> Path:
        return Path(self.settings.store)


def serve(app, settings: WebSettings) -> tuple[object, str]:
    """Serve `app` with cheroot on 127.0.0.1 (port 0: a free one) in a thread."""
    server = make_server(app, settings)
    server.prepare()
    host, port = server.bind_addr[:2]
    threading.Thread(target=server.serve, name="cheroot", daemon=True).start()
    scheme = "https" if settings.https else "http"
    return server, f"{scheme}://{host}:{port}"


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    app = make_app(folder, clock=time.time, scrypt_n=SCRYPT_N)
    settings = app.extensions["callgate"].settings
    server, url = serve(app, settings)
    yield LiveApp(url, app, settings, server)
    app.extensions["callgate"].stopping.set()
    server.stop()


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"browser tests need Debian's chromium and chromium-driver: missing "
                    f"{', '.join(missing)} (tools/test installs them)", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(browser, live: LiveApp, name: str, password: str | None = None) -> None:
    """Sign in through the form as a person would; waits for the page after it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.delete_all_cookies()
    browser.get(live.url + "/signin")
    browser.find_element(By.ID, "username").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(password or live.passwords[name])
    browser.find_element(By.ID, "signin-button").click()
    WebDriverWait(browser, 10).until(lambda b: "/signin" not in b.current_url)


# ---------------------------------------------------------------- screenshots


def png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) to (h, w, c).

    The five row filters are undone over anti-diagonals: every pixel on one depends only
    on pixels of the diagonals before it (left, up, up-left), so each diagonal is one
    vectorised step."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 1 + w * bpp)
    kinds = raw[:, 0].astype(np.intp)
    assert kinds.max() <= 4, "unknown PNG filter"
    filtered = raw[:, 1:].reshape(h * w, bpp).astype(np.int32)
    stride = w + 1
    out = np.zeros(((h + 1) * stride, bpp), np.int32)    # row 0 and column 0: zeros
    zero = np.zeros((min(h, w), bpp), np.int32)
    for d in range(h + w - 1):
        r = np.arange(max(0, d - w + 1), min(h, d + 1))
        x = d - r
        at = (r + 1) * stride + x + 1
        a, b, c = out[at - 1], out[at - stride], out[at - stride - 1]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.choose(kinds[r][:, None], (zero[:len(r)], a, b, (a + b) >> 1, paeth))
        out[at] = (filtered[r * w + x] + pred) & 255
    return out.reshape(h + 1, stride, bpp)[1:, 1:].astype(np.uint8)


def colour_stats(pixels: np.ndarray) -> tuple[int, float]:
    """(distinct RGB colours, fraction of pixels that are not near-white)."""
    rgb = pixels[..., :3].reshape(-1, 3).astype(np.int64)
    distinct = len(np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]))
    not_white = float(np.mean(rgb.min(axis=1) < 235))
    return distinct, not_white
