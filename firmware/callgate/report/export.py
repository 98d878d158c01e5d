"""A report as files a spreadsheet opens: CSV (one table) and XLSX (a workbook).

Aggregates only: no identifier, number or name of any caller is in either.

CSV: ONE rectangular table, which is what a spreadsheet user can sort, filter
and chart without cutting it up: a header row of figure keys, one row per
period (hour, day or week, local time) and a last row "Total" for the whole
report, all with the same columns. Rates are fractions (0.8125 = 81.25 %),
times are milliseconds, an empty cell means "no calls to say" (e.g. a rate
over zero calls). Period start and end are ISO 8601 with the UTC offset.

XLSX: sheets Summary, By period (with a stacked chart of outcomes), Waterfall
(with a bar chart), Abandoned and Transfers; percentages and milliseconds
carry number formats, so cells hold the numbers themselves.
"""

from __future__ import annotations

import csv
from typing import IO

from .figures import FIELDS, STEP_LABELS, Report, columns

CSV_LEAD = ("period", "start", "end")
_FORMATS = {"count": "#,##0", "rate": "0.0%", "ms": '#,##0" ms"'}


def csv_header() -> list[str]:
    return [*CSV_LEAD, *(key for key, _, _ in columns())]


def csv_rows(report: Report) -> list[list]:
    """The rows under csv_header: each period, then the Total row."""
    cols = columns()
    rows = []
    for b in report.buckets:
        rows.append([b["label"], b["start"], b["end"],
                     *(_csv_value(b[k], kind) for k, _, kind in cols)])
    total = report.as_dict()
    rows.append(["Total", total["since"], total["until"],
                 *(_csv_value(report.totals[k], kind) for k, _, kind in cols)])
    return rows


def write_csv(report: Report, out: IO[str]) -> None:
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(csv_header())
    w.writerows(csv_rows(report))


def _csv_value(value, kind: str):
    if value is None:
        return ""
    if kind == "rate":
        return f"{value:.4f}"
    if kind == "ms":
        return f"{value:.1f}"
    return value


# ---------------------------------------------------------------------- XLSX


def write_xlsx(report: Report, out) -> None:
    """Write the workbook to a path or a binary file object."""
    from openpyxl import Workbook

    wb = Workbook()
    _summary(wb.active, report)
    _by_period(wb.create_sheet("By period"), report)
    _waterfall(wb.create_sheet("Waterfall"), report)
    _abandoned(wb.create_sheet("Abandoned"), report)
    _transfers(wb.create_sheet("Transfers"), report)
    wb.save(out)


def _text(ws, row: int, col: int, value) -> None:
    """A cell that is text even when it starts with '=' (a filter typed by a user
    must never become a formula)."""
    cell = ws.cell(row=row, column=col, value=value)
    if isinstance(value, str):
        cell.data_type = "s"


def _number(ws, row: int, col: int, value, kind: str) -> None:
    cell = ws.cell(row=row, column=col, value=value)
    cell.number_format = _FORMATS[kind]


def _header(ws, row: int, names: list[str]) -> None:
    from openpyxl.styles import Font

    for col, name in enumerate(names, 1):
        _text(ws, row, col, name)
        ws.cell(row=row, column=col).font = Font(bold=True)


def _summary(ws, report: Report) -> None:
    from openpyxl.styles import Font

    d = report.as_dict()
    ws.title = "Summary"
    _text(ws, 1, 1, "callgate report")
    ws.cell(row=1, column=1).font = Font(bold=True, size=14)
    facts = [("From", d["since"]), ("Until (not included)", d["until"]),
             ("Time zone", d["timezone"]), ("Periods of", report.bucket),
             ("Service line", report.filters.get("service") or "all"),
             ("Status", report.filters.get("status") or "all"),
             ("Reason", report.filters.get("reason") or "all")]
    row = 3
    for name, value in facts:
        _text(ws, row, 1, name)
        _text(ws, row, 2, value)
        row += 1
    row += 1
    _header(ws, row, ["Figure", "Value", "Key"])
    for key, (label, kind) in FIELDS.items():
        row += 1
        _text(ws, row, 1, label)
        _number(ws, row, 2, report.totals[key], kind)
        _text(ws, row, 3, key)
    ws.column_dimensions["A"].width = 48
    ws.column_dimensions["B"].width = 28
    ws.column_dimensions["C"].width = 26


def _by_period(ws, report: Report) -> None:
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Font

    cols = columns()
    _header(ws, 1, ["Period", "Start", "End", *(label for _, label, _ in cols)])
    rows = [(b["label"], b["start"], b["end"], b) for b in report.buckets]
    d = report.as_dict()
    rows.append(("Total", d["since"], d["until"], report.totals))
    for i, (label, start, end, values) in enumerate(rows, 2):
        _text(ws, i, 1, label)
        _text(ws, i, 2, start)
        _text(ws, i, 3, end)
        for j, (key, _, kind) in enumerate(cols, 4):
            _number(ws, i, j, values[key], kind)
    for col in range(1, len(cols) + 4):
        ws.cell(row=len(rows) + 1, column=col).font = Font(bold=True)
    ws.freeze_panes = "B2"
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 26
    ws.column_dimensions["C"].width = 26
    if not report.buckets:
        return
    chart = BarChart()
    chart.type, chart.grouping, chart.overlap = "col", "stacked", 100
    chart.title = "Calls by outcome"
    chart.y_axis.title = "Calls"
    keys = [k for k, _, _ in cols]
    last = len(report.buckets) + 1
    for key in ("verified", "identified", "not_identified"):
        col = keys.index(key) + 4
        chart.add_data(Reference(ws, min_col=col, min_row=1, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=last))
    chart.width, chart.height = 24, 9
    ws.add_chart(chart, f"A{last + 4}")


def _waterfall(ws, report: Report) -> None:
    from openpyxl.chart import BarChart, Reference

    _header(ws, 1, ["Step", "Calls", "Drop from the step before", "Share of calls answered"])
    for i, w in enumerate(report.waterfall, 2):
        _text(ws, i, 1, w["label"])
        _number(ws, i, 2, w["calls"], "count")
        _number(ws, i, 3, w["drop"], "count")
        _number(ws, i, 4, w["share"], "rate")
    ws.column_dimensions["A"].width = 34
    ws.column_dimensions["C"].width = 26
    ws.column_dimensions["D"].width = 24
    chart = BarChart()
    chart.type = "bar"
    chart.title = "Calls left at each step"
    chart.y_axis.title = "Calls"
    chart.x_axis.scaling.orientation = "maxMin"       # the first step on top
    n = len(report.waterfall) + 1
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=n), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=n))
    chart.legend = None
    chart.width, chart.height = 18, 8
    ws.add_chart(chart, "F2")


def _abandoned(ws, report: Report) -> None:
    _header(ws, 1, ["Step the caller hung up at", "Calls", "Share of abandoned", "Key"])
    total = sum(report.abandoned_by_step.values())
    for i, (step, n) in enumerate(report.abandoned_by_step.items(), 2):
        _text(ws, i, 1, STEP_LABELS.get(step, step))
        _number(ws, i, 2, n, "count")
        _number(ws, i, 3, n / total if total else None, "rate")
        _text(ws, i, 4, step)
    ws.column_dimensions["A"].width = 30
    ws.column_dimensions["C"].width = 20


def _transfers(ws, report: Report) -> None:
    _header(ws, 1, ["Transfer result", "Calls", "Share of transfers"])
    total = sum(report.transfers.values())
    for i, (result, n) in enumerate(report.transfers.items(), 2):
        _text(ws, i, 1, result)
        _number(ws, i, 2, n, "count")
        _number(ws, i, 3, n / total if total else None, "rate")
    ws.column_dimensions["A"].width = 20
    ws.column_dimensions["C"].width = 20
