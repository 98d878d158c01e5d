"""The supervisor's live status: every line's state, calls in progress, today's figures.

The engine publishes each line's state (line_status table: idle, ringing, in
flow at a step, transferring, down, and since when); the page asks for
/status.json every 2 s. Today's figures are the reports' own (callgate.report),
from local midnight to now, so the dashboard and a report of today agree.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, jsonify, render_template

from ..report import ReportError, compute_report
from ..report.figures import STEP_LABELS
from ..report.period import parse_when
from .auth import require
from .context import state

log = logging.getLogger("callgate.web")
bp = Blueprint("status", __name__)

STATES = {"idle": "Idle", "ringing": "Ringing", "in_flow": "In flow",
          "transferring": "Transferring", "down": "Down"}
# the figures shown as tiles, in this order (keys of Report.totals)
TODAY = (("calls", "Calls"), ("verified", "Identified and verified"),
         ("identified", "Identified only"), ("not_identified", "Not identified"),
         ("opted_out", "Opted out"), ("locked", "Locked"), ("abandoned", "Abandoned"))
# the report's step labels, as words inside a sentence
STEP_WORDS = {k: v[0].lower() + v[1:] for k, v in STEP_LABELS.items()} | {
    "transferred": "transferred"}


@bp.get("/status")
@require("supervisor")
def page():
    return render_template("status.html", tiles=TODAY)


@bp.get("/status.json")
@require("supervisor")
def data():
    now = time.time()
    with state().reader.open() as view:
        lines = [_line(r, now) for r in view.line_status()]
        calls = [_call(r) for r in view.in_progress(now)]
    return jsonify(now=now, lines=lines, in_progress=calls, today=today(now))


def _line(r: dict, now: float) -> dict:
    label = STATES.get(r["state"], r["state"])
    if r["state"] == "in_flow" and r.get("step"):
        label = f"In flow at {STEP_WORDS.get(r['step'], r['step'])}"
    return {"line": r["line"], "state": r["state"], "label": label, "step": r.get("step"),
            "call_id": r.get("call_id"), "since": r["since"], "updated": r["updated"]}


def _call(r: dict) -> dict:
    step = r.get("last_step")
    return {"call_id": r["call_id"], "line": r["line"], "service": r["service"],
            "started": r["started"], "ani_masked": r["ani_masked"],
            "customer_id_masked": r["customer_id_masked"], "customer_name": r["customer_name"],
            "status": r["status"], "reason": r["reason"], "extension": r["transfer_target"],
            "step": STEP_WORDS.get(step, step)}


def today(now: float) -> dict | None:
    """Today's totals (local midnight to now, as the reports' "today"), or None when they
    cannot be computed."""
    try:
        totals = compute_report(state().settings.store, parse_when("today", now), now + 1,
                                missing_ok=True).totals
    except ReportError as err:
        log.error("today's figures: %s", err)
        return None
    return {key: totals.get(key) for key, _ in TODAY}
