"""The reports page and its exports through the real Flask app (test client): who may see
them, the filters, CSV and XLSX read back, and that nothing a caller keyed or an
identifier ever shows. The call store is a real SQLite file built from the known calls
of test_report.py; the users file is real too (scrypt kept cheap for speed)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from html.parser import HTMLParser

import pytest
from openpyxl import load_workbook

from browser import client_sign_in, make_app
from callgate.store.records import CallStore
from test_report import OUTSIDE, SHAPES, build, local, paris  # noqa: F401  (paris: a fixture)

PASSWORD = "correct horse battery"
EVIL_SERVICE = '<img src=x onerror="alert(1)">'
# what must never leave the device in a page or an export (a PIN, a full identifier,
# the stored masked forms and the customer's name belong to per-call views, not reports)
NEVER = ("4271", "12345678", "2015550123", "******78", "********23", "Jane Smith")


@pytest.fixture()
def site(tmp_path, paris):
    calls = build(tmp_path / "calls.sqlite", SHAPES + OUTSIDE)
    with CallStore(calls, synchronous="NORMAL") as store:
        store.start("evil", "line1", EVIL_SERVICE, local(2026, 5, 4, 16), None)
        store.update("evil", status="not_identified")
    now = local(2026, 5, 5, 12, 0)                 # Tuesday noon
    return make_app(tmp_path, clock=lambda: now, scrypt_n=2,
                    users={"ada": ("admin", PASSWORD, ()), "sam": ("supervisor", PASSWORD, ()),
                           "al": ("agent", PASSWORD, ("201",))})


def signed_in(app, name):
    client = app.test_client()
    r = client_sign_in(client, name, PASSWORD)
    assert r.status_code == 302, r.get_data(as_text=True)
    return client


CUSTOM = "period=custom&from=2026-05-03&to=2026-05-04"


class Page(HTMLParser):
    """Tiles, links and table cells of the reports page, as a browser would read them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tiles, self.links, self.svgs, self.tables = {}, {}, 0, {}
        self._tile, self._part, self._table, self._row = None, None, None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "")
        if tag == "li" and cls == "tile":
            self._tile = {}
        elif tag == "span" and self._tile is not None:
            self._part = cls
        elif tag == "a" and "export" in cls:
            self.links[a["href"].split("?")[0].rsplit("/", 1)[-1]] = a["href"]
        elif tag == "svg":
            self.svgs += 1
        elif tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
            self.tables[self._table].append(self._row)

    def handle_endtag(self, tag):
        if tag == "li" and self._tile is not None:
            self.tiles[self._tile["tile-label"]] = self._tile["tile-value"]
            self._tile = None
        elif tag == "span":
            self._part = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._tile is not None and self._part in ("tile-label", "tile-value"):
            self._tile[self._part] = self._tile.get(self._part, "") + data.strip()
        elif self._row is not None and self._table and data.strip():
            self._row.append(data.strip())


def test_signed_out_is_sent_to_sign_in(site):
    client = site.test_client()
    for path in ("/reports/", "/reports/export.csv", "/reports/export.xlsx"):
        r = client.get(path + "?" + CUSTOM)
        assert r.status_code == 302 and "/signin" in r.headers["Location"], path
        assert b"svg" not in r.data and b"calls" not in r.data.lower()


def test_an_agent_is_refused(site):
    client = signed_in(site, "al")
    for path in ("/reports/", "/reports/export.csv", "/reports/export.xlsx"):
        r = client.get(path + "?" + CUSTOM)
        assert r.status_code == 403, path
        assert b"<svg" not in r.data and b"period,start" not in r.data


@pytest.mark.parametrize("who", ["sam", "ada"])
def test_supervisor_and_admin_see_the_figures_and_charts(site, who):
    r = signed_in(site, who).get("/reports/?" + CUSTOM)
    assert r.status_code == 200
    page = Page(r.get_data(as_text=True))
    assert page.tiles["Calls answered"] == "21"            # 20 + the evil-named service
    assert page.tiles["Identification rate"] == "66.7 %"   # 14 / 21
    assert page.tiles["Verification success rate"] == "61.5 %"   # 8 / 13
    assert page.tiles["Time to authenticate, average"] == "20.5 s"
    assert page.svgs == 3
    water = {row[0]: row[1] for row in page.tables["waterfall"][1:]}
    assert water["Verified"] == "8" and water["Reached security"] == "13"
    periods = page.tables["periods"][1:]
    assert [(row[0], row[1]) for row in periods] == [("2026-05-03", "10"), ("2026-05-04", "11")]
    assert "Content-Security-Policy" in r.headers


def test_filters_narrow_the_figures(site):
    client = signed_in(site, "sam")

    def calls(query):
        r = client.get("/reports/?" + query)
        assert r.status_code == 200, r.get_data(as_text=True)
        return Page(r.get_data(as_text=True)).tiles["Calls answered"]

    assert calls(CUSTOM + "&service=sales") == "5"
    assert calls(CUSTOM + "&outcome=verified") == "8"
    assert calls(CUSTOM + "&outcome=opted_out") == "2"
    assert calls(CUSTOM + "&service=support&outcome=not_identified") == "5"
    assert calls("period=7d") == "23"                     # Wed 29 Apr .. now: x1, x2 too
    assert calls("period=yesterday") == "11"
    r = client.get("/reports/?period=yesterday")
    assert len(Page(r.get_data(as_text=True)).tables["periods"]) == 25   # by hour: 24 + head


@pytest.mark.parametrize("query, words", [
    ("period=custom&from=2026-05-33&to=2026-05-04", "from: &#39;2026-05-33&#39; is not a date"),
    ("period=custom&from=2026-05-04&to=2026-05-01", "to: 2026-05-01 is before"),
    (CUSTOM + "&outcome=happy", "outcome: &#39;happy&#39; is not one of"),
    (CUSTOM + "&bucket=year", "bucket: &#39;year&#39;"),
    ("period=forever", "period: &#39;forever&#39;"),
    ("period=custom&from=0001-01-01&to=2026-05-04", "from: 0001-01-01 is outside the years"),
    ("period=custom&from=2026-05-01&to=9999-12-31", "to: 9999-12-31 is outside the years"),
    ("period=custom&from=0001-01-01&to=9999-12-31", "from: 0001-01-01 is outside the years"),
])
def test_bad_filters_say_which(site, query, words):
    client = signed_in(site, "sam")
    r = client.get("/reports/?" + query)
    assert r.status_code == 400 and words in r.get_data(as_text=True)
    r = client.get("/reports/export.csv?" + query)
    assert r.status_code == 400 and r.mimetype == "text/plain"
    assert len(r.get_data(as_text=True).strip().splitlines()) == 1


def test_export_links_keep_the_filters_and_csv_reads_back(site):
    client = signed_in(site, "sam")
    page = Page(client.get("/reports/?" + CUSTOM + "&service=sales&bucket=week")
                .get_data(as_text=True))
    href = page.links["export.csv"]
    assert "service=sales" in href and "bucket=week" in href and "from=2026-05-03" in href
    r = client.get(href)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="callgate-report-20260503-20260504.csv"'
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["period"] for row in rows] == ["2026-W18 (2026-04-27)", "2026-W19 (2026-05-04)",
                                              "Total"]
    assert [int(row["calls"]) for row in rows] == [2, 3, 5]
    assert float(rows[-1]["identification_rate"]) == pytest.approx(4 / 5)   # c03 c06 c12 c13


def test_xlsx_export_reads_back(site):
    client = signed_in(site, "sam")
    href = Page(client.get("/reports/?" + CUSTOM).get_data(as_text=True)).links["export.xlsx"]
    r = client.get(href)
    assert r.status_code == 200
    assert r.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert r.headers["Content-Disposition"].endswith('.xlsx"')
    wb = load_workbook(io.BytesIO(r.data))
    assert wb.sheetnames == ["Summary", "By period", "Waterfall", "Abandoned", "Transfers"]
    values = {row[2].value: row[1].value for row in wb["Summary"].iter_rows() if row[2].value}
    assert values["calls"] == 21 and values["verified"] == 8
    assert wb["Waterfall"]["B5"].value == 13           # reached security


def test_no_response_holds_a_secret_or_identifier(site):
    client = signed_in(site, "sam")
    bodies = []
    for path in ("/reports/?" + CUSTOM, "/reports/export.csv?" + CUSTOM,
                 "/reports/?period=7d&outcome=verified"):
        bodies.append(client.get(path).get_data(as_text=True))
    xlsx = client.get("/reports/export.xlsx?" + CUSTOM).data
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        bodies += [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
    for body in bodies:
        for secret in NEVER:
            assert secret not in body


def test_page_text_is_escaped_and_has_no_inline_script(site):
    r = signed_in(site, "sam").get("/reports/?" + CUSTOM)
    html = r.get_data(as_text=True)
    assert EVIL_SERVICE not in html and "&lt;img src=x" in html   # the service filter choice
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert " style=" not in html
