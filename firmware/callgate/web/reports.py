"""The reports page for supervisors: figures, charts and exports over any period.

Everything comes from report/ (the same figures as `callgate report`); this
module only turns the query string into a period and filters, and the report
into a page, a CSV or an XLSX. The filter form is a GET form: reading a report
changes nothing, so the URL can be bookmarked or shared, and the export links
carry the same query. Aggregates only: no page or export here shows a caller's
identifier or number.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, Response, render_template, request, url_for
from markupsafe import Markup

from ..report import charts
from ..report.figures import (BUCKETS, FIELDS, REASONS, STATUSES, STEP_LABELS, ReportError,
                              compute_report, services)
from ..report.period import PRESETS, day_range, preset
from ..report.text import show
from .auth import require
from .context import state

bp = Blueprint("reports", __name__, url_prefix="/reports")

OUTCOMES = {"": "All outcomes", "verified": "Identified and verified",
            "identified": "Identified only", "not_identified": "Not identified",
            "locked": "Locked out", "opted_out": "Opted out",
            "backend_down": "Back end unavailable", "no_secret": "No secret on file"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# the figures shown as tiles at the top of the page: (key, detail keys)
TILES = (("calls", ()),
         ("identification_rate", ("identified_by_number", "identified_by_keyed")),
         ("verification_rate", ("first_try_rate",)),
         ("opted_out", ("opt_out_rate",)),
         ("locked", ("backend_down",)),
         ("abandoned", ("abandon_rate",)),
         ("after_hours", ("fallback_used", "menu_chosen")),
         ("auth_avg_ms", ("auth_p90_ms",)),
         ("backend_errors", ("backend_ms_per_request", "backend_p90_ms")))


@dataclass
class Query:
    """The report asked for by the query string (or the error that it holds)."""

    period: str = "7d"
    first: str = ""                  # custom period: first day (YYYY-MM-DD)
    last: str = ""                   # custom period: last day, included
    bucket: str = "day"
    service: str = ""
    outcome: str = ""
    since: float = 0.0
    until: float = 0.0

    @property
    def status(self) -> str | None:
        return self.outcome if self.outcome in STATUSES else None

    @property
    def reason(self) -> str | None:
        return self.outcome if self.outcome in REASONS else None

    def args(self) -> dict:
        """The query string that asks for this report again (export links)."""
        out = {"period": self.period, "bucket": self.bucket}
        if self.period == "custom":
            out.update({"from": self.first, "to": self.last})
        if self.service:
            out["service"] = self.service
        if self.outcome:
            out["outcome"] = self.outcome
        return out


def read_query(args) -> Query:
    """The query string as typed (checked by `resolve`; shown again in the form)."""
    period = args.get("period", "7d") or "7d"
    return Query(period=period[:20], first=args.get("from", "")[:20],
                 last=args.get("to", "")[:20], service=args.get("service", "").strip(),
                 outcome=args.get("outcome", "")[:20],
                 bucket=(args.get("bucket") or ("hour" if period in ("today", "yesterday")
                                                else "day"))[:20])


def resolve(q: Query, now: float) -> Query:
    """Check the query and fix its period; ReportError naming the field that is wrong."""
    if q.period not in PRESETS:
        raise ReportError(f"period: {q.period!r} is not one of {', '.join(PRESETS)}")
    if q.bucket not in BUCKETS:
        raise ReportError(f"bucket: {q.bucket!r} is not one of {', '.join(BUCKETS)}")
    if q.outcome not in OUTCOMES:
        raise ReportError(f"outcome: {q.outcome!r} is not one of "
                          f"{', '.join(k for k in OUTCOMES if k)}")
    if len(q.service) > 100:
        raise ReportError("service: longer than 100 characters")
    if q.period == "custom":
        q.since, q.until = day_range(q.first, q.last)
    else:
        q.since, q.until = preset(q.period, now)
    return q


def _report(q: Query):
    return compute_report(state().settings.store, q.since, q.until, service=q.service or None,
                          status=q.status, reason=q.reason, bucket=q.bucket, missing_ok=True)


@bp.get("/")
@require("supervisor")
def page():
    now = state().clock()
    error, report, q = None, None, read_query(request.args)
    try:
        report = _report(resolve(q, now))
    except ReportError as err:
        error = str(err)
    try:
        known = services(state().settings.store)
    except ReportError:
        known = []
    view = _view(report, q) if report is not None else None
    status = 400 if error and report is None else 200
    return render_template("reports.html", q=q, error=error, view=view, presets=PRESETS,
                           buckets=BUCKETS, outcomes=OUTCOMES,
                           services=sorted(set(known) | ({q.service} if q.service else set())),
                           today=datetime.fromtimestamp(now).strftime("%Y-%m-%d")), status


@bp.get("/export.csv")
@require("supervisor")
def export_csv():
    from ..report.export import write_csv

    q, report = _export_report()
    if report is None:
        return q                     # the error response
    buf = io.StringIO()
    write_csv(report, buf)
    return _download(buf.getvalue().encode("utf-8"), "text/csv; charset=utf-8", q, "csv")


@bp.get("/export.xlsx")
@require("supervisor")
def export_xlsx():
    from ..report.export import write_xlsx

    q, report = _export_report()
    if report is None:
        return q
    buf = io.BytesIO()
    write_xlsx(report, buf)
    return _download(buf.getvalue(), XLSX, q, "xlsx")


def _export_report():
    try:
        q = resolve(read_query(request.args), state().clock())
        return q, _report(q)
    except ReportError as err:
        return Response(f"{err}\n", status=400, mimetype="text/plain"), None


def _download(body: bytes, mimetype: str, q: Query, ext: str) -> Response:
    first = datetime.fromtimestamp(q.since).strftime("%Y%m%d")
    last = datetime.fromtimestamp(q.until - 1).strftime("%Y%m%d")
    name = f"callgate-report-{first}-{last}.{ext}"
    resp = Response(body, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _view(report, q: Query) -> dict:
    """What the template shows, formatted once here (the same formats as the CLI)."""
    t = report.totals

    def fmt(key: str) -> str:
        return show(t[key], FIELDS[key][1], none="–")

    tiles = [{"label": FIELDS[k][0], "value": fmt(k),
              "detail": [f"{FIELDS[d][0]}: {fmt(d)}" for d in details]}
             for k, details in TILES]
    period_cols = (("calls", "Calls"), ("verified", "Verified"), ("identified", "Identified only"),
                   ("not_identified", "Not identified"), ("identification_rate", "ID rate"),
                   ("verification_rate", "Verification"), ("opted_out", "Opt-outs"),
                   ("locked", "Lockouts"), ("abandoned", "Abandoned"),
                   ("auth_p90_ms", "Auth p90"), ("backend_errors", "Back-end errors"))
    return {
        "report": report,
        "since": datetime.fromtimestamp(report.since).strftime("%Y-%m-%d %H:%M"),
        "until": datetime.fromtimestamp(report.until).strftime("%Y-%m-%d %H:%M"),
        "timezone": report.timezone,
        "tiles": tiles,
        "figures": [(label, fmt(k)) for k, (label, _) in FIELDS.items()],
        "waterfall": [(w["label"], f"{w['calls']:,}", f"{w['drop']:,}",
                       show(w["share"], "rate", none="–")) for w in report.waterfall],
        "abandoned": [(STEP_LABELS.get(k, k), n) for k, n in report.abandoned_by_step.items()],
        "transfers": [(k.replace("_", " "), n) for k, n in report.transfers.items()],
        "period_cols": [name for _, name in period_cols],
        "periods": [(b["label"], [show(b[k], FIELDS[k][1], none="–") for k, _ in period_cols])
                    for b in report.buckets],
        "status_chart": Markup(charts.status_chart(report)),
        "waterfall_chart": Markup(charts.waterfall_chart(report)),
        "auth_chart": Markup(charts.auth_chart(report)),
        "csv_url": url_for("reports.export_csv", **q.args()),
        "xlsx_url": url_for("reports.export_xlsx", **q.args()),
    }
