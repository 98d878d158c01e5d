"""The web app in a real browser: headless Debian Chromium driven by selenium, the app
served by cheroot on loopback. Sign in through the form, watch the screen-pop appear when
`callgate run` (a separate process: engine, simulated line, ID&V flow, embedded directory)
transfers a call, check the badge of every status, and check that screenshots of the
agent page and the status dashboard are not blank."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import browser, live_app, sign_in  # noqa: F401  (pytest fixtures)
from browser import colour_stats, png_pixels, seed_transfer
from callgate import cli
from callgate.store.records import CallStore

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def wait(browser, check, timeout=15.0):
    return WebDriverWait(browser, timeout, poll_frequency=0.05,
                         ignored_exceptions=(StaleElementReferenceException,)).until(check)


def line_row(browser, line: str) -> str:
    """The text of a line's row, read in one go (the page redraws its rows every second)."""
    return browser.execute_script(
        "var r = document.querySelector('#lines tr[data-line=\"' + arguments[0] + '\"]');"
        "return r ? r.innerText : '';", line)


def text(browser, element_id: str) -> str:
    return browser.find_element(By.ID, element_id).text


def open_agent_page(browser, live, name="ann", query=""):
    sign_in(browser, live, name)
    browser.get(live.url + "/agent/" + query)
    wait(browser, lambda b: b.find_element(By.ID, "live").get_attribute("data-state") == "live")


def not_blank(browser, min_colours=40, min_ink=0.03):
    pixels = png_pixels(browser.get_screenshot_as_png())
    colours, ink = colour_stats(pixels)
    assert pixels.shape[0] > 500 and pixels.shape[1] >= 1200, pixels.shape
    assert colours >= min_colours and ink >= min_ink, (colours, ink)
    return colours, ink


def test_the_png_reader_reads_what_chromium_drew(browser):
    """The screenshot check below is worth something: known colours come back exactly."""
    browser.get("data:text/html,<body style='margin:0;background:%23ff0000'>"
                "<div style='width:300px;height:200px;background:%230000ff'></div>"
                "<p style='font:40px serif;color:%23008000'>callgate</p></body>")
    pixels = png_pixels(browser.get_screenshot_as_png())
    assert tuple(pixels[100, 150, :3]) == (0, 0, 255)
    assert tuple(pixels[600, 900, :3]) == (255, 0, 0)
    assert colour_stats(pixels)[0] >= 3
    browser.get("data:text/html,<body style='background:white'></body>")
    blank = png_pixels(browser.get_screenshot_as_png())
    assert colour_stats(blank) == (1, 0.0)                # what "blank" looks like


def test_signed_out_the_browser_lands_on_the_sign_in_form(browser, live_app):
    browser.delete_all_cookies()
    browser.get(live_app.url + "/agent/")
    assert "/signin" in browser.current_url
    assert browser.find_element(By.ID, "signin").is_displayed()
    browser.find_element(By.ID, "username").send_keys("ann")
    browser.find_element(By.ID, "password").send_keys("not-her-password")
    browser.find_element(By.ID, "signin-button").click()
    wait(browser, lambda b: b.find_elements(By.ID, "signin-error"))
    assert text(browser, "signin-error") == "Wrong user name or password."
    assert "/signin" in browser.current_url


def test_screen_pop_from_a_real_simulated_call(browser, live_app, tmp_path, capsys):
    directory = tmp_path / "directory.sqlite"
    assert cli.main(["directory", "import", str(FIXTURES / "customers.csv"),
                     "--db", str(directory)]) == 0
    capsys.readouterr()
    config = tmp_path / "callgate.toml"
    config.write_text(f'[line]\nbackend = "sim"\n[crm]\ndirectory = "{directory}"\n'
                      f'[store]\npath = "{live_app.store}"\n[[service]]\nname = "support"\n'
                      '[service.transfer]\nagent = "201"\n')
    open_agent_page(browser, live_app, "ann")
    assert text(browser, "badge") == "Waiting for a transfer…"
    before = time.time()
    engine = subprocess.run([sys.executable, "-m", "callgate.cli", "run", "--config",
                             str(config), "--json"], capture_output=True, text=True,
                            timeout=120)
    after = time.time()
    assert engine.returncode == 0, engine.stderr
    assert '"extension": "201"' in engine.stdout
    # stamped when it happened: within the run, never ahead of the clock (a call
    # simulated in 0.3 s was once stamped 11 s in the future, "0 s ago" for 11 s)
    with CallStore(live_app.store) as store:
        row = store.recent()[0]
    assert before <= row["started"] <= row["ended"] <= after
    wait(browser, lambda b: text(b, "badge") == "Identified and verified", timeout=60)
    pop = browser.find_element(By.ID, "pop")
    assert pop.get_attribute("data-status") == "verified"
    assert not browser.find_element(By.ID, "reason").is_displayed()
    assert text(browser, "pop-name") == "Jane Smith"
    assert text(browser, "pop-id") == "******78"
    assert text(browser, "pop-ani") == "**********23"
    assert text(browser, "pop-how") == "by calling number"
    assert text(browser, "pop-ext") == "201"
    first = text(browser, "pop-ago")
    assert first.endswith("ago")
    wait(browser, lambda b: text(b, "pop-ago") != first, timeout=60)       # it ticks
    rows = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert rows and "Jane Smith" in rows[0].text and "Identified and verified" in rows[0].text
    assert "4271" not in browser.page_source                              # her PIN
    browser.save_screenshot(str(tmp_path / "agent.png"))       # kept for a person to look at
    not_blank(browser)


CASES = [
    ("verified", None, "Identified and verified", ""),
    ("identified", None, "Identified only", ""),
    ("not_identified", None, "Not identified", ""),
    ("identified", "locked", "Identified only", "Locked"),
    ("not_identified", "opted_out", "Not identified", "Opted out"),
    ("not_identified", "backend_down", "Not identified", "Back end unavailable"),
]


def test_the_badge_of_each_status(browser, live_app):
    open_agent_page(browser, live_app, "bob")                       # extensions 202 and 203
    latencies = []
    with CallStore(live_app.store) as store:
        for i, (status, reason, badge, reason_text) in enumerate(CASES):
            name = f"Customer {i}"
            t0 = time.monotonic()
            seed_transfer(store, "202" if i % 2 else "203", status, reason, name=name,
                          by="keyed")
            wait(browser, lambda b: text(b, "badge") == badge
                 and b.find_element(By.ID, "pop").get_attribute("data-status") == status
                 and browser.find_element(By.ID, "reason").text == reason_text)
            latencies.append(time.monotonic() - t0)
            assert browser.find_element(By.ID, "reason").is_displayed() == bool(reason_text)
            if status == "not_identified":
                assert text(browser, "pop-name") == "—" and text(browser, "pop-how") == \
                    "not identified"
            else:
                assert text(browser, "pop-name") == name
            seed_transfer(store, "201", "verified", name="Not for Bob")   # someone else's
    rows = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, ".chip").text for r in rows][:len(CASES)] == [
        b + (f" · {r}" if r else "") for _, _, b, r in reversed(CASES)]
    assert "Not for Bob" not in browser.page_source
    # pushed, not polled by a person: each badge was up about a stream poll after the write
    assert max(latencies) < 3.0, latencies


def test_a_crm_name_is_shown_as_text_never_as_html(browser, live_app):
    open_agent_page(browser, live_app, "ann")
    evil = '<img src=x id=injected onerror="document.title=\'pwned\'">'
    with CallStore(live_app.store) as store:
        seed_transfer(store, "201", "identified", name=evil)
    wait(browser, lambda b: text(b, "pop-name") == evil)
    assert browser.find_elements(By.ID, "injected") == []
    assert browser.title != "pwned"


def test_a_supervisor_watches_an_extension(browser, live_app):
    open_agent_page(browser, live_app, "sam", "?ext=203")
    with CallStore(live_app.store) as store:
        seed_transfer(store, "203", "verified", name="Watched Caller")
    wait(browser, lambda b: text(b, "pop-name") == "Watched Caller")
    assert text(browser, "extensions") == "203"


def test_the_status_dashboard(browser, live_app, tmp_path):
    now = time.time()
    with CallStore(live_app.store) as store:
        store.set_line_status("line1", "in_flow", step="security", call_id="c1", at=now - 42)
        store.set_line_status("line2", "idle", at=now - 3600)
        store.start("in-progress-1", "line1", "support", now - 42, "********23")
        store.update("in-progress-1", identified_by="number", customer_id_masked="******78",
                     customer_name="Jane Smith")
        store.event("in-progress-1", "verify", {"attempt": 1, "result": "rejected"}, now - 5)
    sign_in(browser, live_app, "sam")
    browser.get(live_app.url + "/status")
    wait(browser, lambda b: {"line1", "line2"} <= {
        r.get_attribute("data-line") for r in b.find_elements(By.CSS_SELECTOR, "#lines tbody tr")})
    assert "In flow at security question" in line_row(browser, "line1")
    line2 = line_row(browser, "line2")
    assert "Idle" in line2 and "1 h 0 min" in line2
    calls = browser.execute_script("return document.getElementById('calls').innerText")
    assert "Jane Smith (******78)" in calls and "verification" in calls
    wait(browser, lambda b: text(b, "today-calls") not in ("–", ""))
    assert int(text(browser, "today-calls")) >= 1
    assert int(text(browser, "today-verified")) >= 1
    browser.save_screenshot(str(tmp_path / "status.png"))
    not_blank(browser)
    # live: a change in the store shows without a reload
    with CallStore(live_app.store) as store:
        store.set_line_status("line2", "ringing")
    wait(browser, lambda b: "Ringing" in line_row(b, "line2"), timeout=6)


def test_an_agent_is_refused_the_status_page(browser, live_app):
    sign_in(browser, live_app, "ann")
    browser.get(live_app.url + "/status")
    assert "Your role does not give access" in browser.page_source
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav a")] == ["Agent"]


def test_signing_out_from_the_page(browser, live_app):
    open_agent_page(browser, live_app, "ann")
    browser.find_element(By.CSS_SELECTOR, "form.inline button").click()
    wait(browser, lambda b: "/signin" in b.current_url)
    browser.get(live_app.url + "/agent/")
    assert "/signin" in browser.current_url
