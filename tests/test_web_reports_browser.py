"""The reports page in headless Chromium: sign in as a supervisor, read the figures and
the charts, use the filter form, download the CSV and the XLSX by clicking their links,
and check a screenshot of the dashboard is a drawn page, not a blank one."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np
from openpyxl import load_workbook
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from browser import browser, colour_stats, live_app, png_pixels, sign_in  # noqa: F401
from test_report import OUTSIDE, SHAPES, build

CUSTOM = "/reports/?period=custom&from=2026-05-03&to=2026-05-04"
VERIFIED_GREEN = (0x00, 0x9E, 0x73)          # charts.STATUS_SERIES "verified"


def tile(driver, label: str) -> str:
    for t in driver.find_elements(By.CSS_SELECTOR, "li.tile"):
        if t.find_element(By.CLASS_NAME, "tile-label").text == label:
            return t.find_element(By.CLASS_NAME, "tile-value").text
    raise AssertionError(f"no tile {label!r}")


def downloaded(folder: Path, suffix: str, timeout: float = 15.0) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = [p for p in folder.glob(f"*{suffix}")]
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded into {folder}: {list(folder.iterdir())}")


def test_supervisor_reads_filters_downloads_and_sees_a_drawn_dashboard(
        browser, live_app, tmp_path):  # noqa: F811
    build(live_app.store, SHAPES + OUTSIDE)
    sign_in(browser, live_app, "sam")
    browser.get(live_app.url + CUSTOM)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Reports"
    assert tile(browser, "Calls answered") == "20"
    assert tile(browser, "Identification rate") == "70.0 %"
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart-box svg")
    assert len(charts) == 3
    for svg in charts:
        assert svg.size["width"] > 300 and svg.size["height"] > 100
    assert len(charts[0].find_elements(By.TAG_NAME, "rect")) >= 7   # bars + legend

    shot = browser.get_screenshot_as_png()
    (tmp_path / "reports.png").write_bytes(shot)
    pixels = png_pixels(shot)
    distinct, not_white = colour_stats(pixels)
    assert distinct > 50 and not_white > 0.03, (distinct, not_white)
    rgb = pixels[..., :3].reshape(-1, 3)
    assert np.any(np.all(rgb == VERIFIED_GREEN, axis=1)), "the status chart is not drawn"

    Select(browser.find_element(By.NAME, "outcome")).select_by_value("verified")
    browser.find_element(By.CSS_SELECTOR, ".report-filters button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda b: "outcome=verified" in b.current_url)
    assert tile(browser, "Calls answered") == "8"

    folder = tmp_path / "downloads"
    folder.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(folder)})
    browser.find_element(By.LINK_TEXT, "Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(downloaded(folder, ".csv").read_text())))
    assert rows[-1]["period"] == "Total" and int(rows[-1]["calls"]) == 8
    assert int(rows[-1]["first_try"]) == 6
    browser.find_element(By.LINK_TEXT, "Download XLSX").click()
    wb = load_workbook(downloaded(folder, ".xlsx"))
    values = {row[2].value: row[1].value for row in wb["Summary"].iter_rows() if row[2].value}
    assert values["calls"] == 8 and values["verified"] == 8
    assert (wb["Summary"]["B7"].value, wb["Summary"]["B8"].value) == ("all", "verified")


def test_an_agent_gets_no_report_in_the_browser(browser, live_app):  # noqa: F811
    sign_in(browser, live_app, "ann")
    browser.get(live_app.url + CUSTOM)
    assert "does not give access" in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "svg.chart")
