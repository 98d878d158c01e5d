"""The agent's screen-pop: who is on the line being transferred to my extension.

The flow writes an "outcome" event (status, reason, extension) the moment it
decides where a call goes; this page shows it, pushed by server-sent events:
the stream looks in the store every `poll_s` for outcome events past the last
one it sent, for the watched extensions only, and sends each with its event id.
It ends after `stream_s` and the browser reconnects with Last-Event-ID, so a
transfer is neither missed nor shown twice across reconnections. At most
`streams` are open at once (each holds a server thread of its own, apart from the
threads pages are served by); one more is refused with 503 and the page retries.

An agent sees only the extensions they are tied to; a supervisor or an admin
chooses the extensions to watch. Everything shown is as the store holds it:
identifiers and numbers masked, the customer's name as the CRM gave it (the
page puts it in with textContent, never as HTML).
"""

from __future__ import annotations

import json
import time

from flask import (Blueprint, Response, abort, jsonify, render_template, request, session,
                   stream_with_context)

from .auth import current_user, require, session_valid
from .context import state
from .users import User, UserError, check_extensions

bp = Blueprint("agent", __name__, url_prefix="/agent")

BADGES = {"verified": "Identified and verified",
          "identified": "Identified only",
          "not_identified": "Not identified"}
REASONS = {"locked": "Locked", "opted_out": "Opted out", "backend_down": "Back end unavailable",
           "no_secret": "No secret on file"}
HOURS = {"closed": "After hours", "holiday": "After hours (holiday)",
         "override": "After hours (closed today)"}
HOW = {"number": "by calling number", "keyed": "by keyed identifier"}
HISTORY = 10
KEEPALIVE_S = 15.0


def describe(t: dict) -> dict:
    """A transfer as the page shows it: the stored fields plus the words for them."""
    status = t.get("status")
    return {
        "id": t["id"], "at": t["at"], "call_id": t["call_id"], "extension": t["extension"],
        "line": t.get("line"), "service": t.get("service"),
        "status": status, "badge": BADGES.get(status, "Not identified"),
        "reason": t.get("reason"), "reason_text": REASONS.get(t.get("reason")),
        "customer_id_masked": t.get("customer_id_masked"),
        "customer_name": t.get("customer_name"),
        "ani_masked": t.get("ani_masked"),
        "identified_by": t.get("identified_by"), "how": HOW.get(t.get("identified_by")),
        "transfer_mode": t.get("transfer_mode"),
        "hours_text": HOURS.get(t.get("hours")),
        "menu_choice": t.get("menu_choice"),
        "fallback_text": (f"Fallback: tried {t['fallback']} before this extension"
                          if t.get("fallback") else None),
    }


def watched(user: User) -> tuple[str, ...]:
    """The extensions this request may watch: an agent's own (or some of them); any that a
    supervisor or admin asks for. 403 for an agent asking for someone else's."""
    asked: list[str] = []
    for value in request.args.getlist("ext"):
        try:
            asked.extend(check_extensions(value))
        except UserError:
            abort(400)
    if user.role == "agent":
        if any(ext not in user.extensions for ext in asked):
            abort(403)
        return tuple(asked) or user.extensions
    return tuple(dict.fromkeys(asked))


@bp.get("/")
@require("agent", "supervisor")
def page():
    user = current_user()
    exts = watched(user)
    known: list[str] = []
    if user.role != "agent":
        with state().reader.open() as view:
            known = view.known_extensions()
        for u in state().users.all():
            known.extend(u.extensions)
        known = sorted(set(known))
    return render_template("agent.html", exts=exts, known=known,
                           chooser=user.role != "agent")


@bp.get("/history.json")
@require("agent", "supervisor")
def history():
    exts = watched(current_user())
    with state().reader.open() as view:
        last = view.last_event_id()
        recent = [describe(t) for t in view.recent_transfers(exts, HISTORY)]
    return jsonify(now=time.time(), extensions=list(exts), last_id=last, history=recent)


@bp.get("/stream")
@require("agent", "supervisor")
def stream():
    exts = watched(current_user())
    after = _after()
    token = session.get("sid")
    st = state()
    if after is None:
        with st.reader.open() as view:
            after = view.last_event_id()
    if not st.streams.acquire(blocking=False):
        return (jsonify(error="too many screen-pops open on this device"), 503,
                {"Retry-After": "5"})
    gen = _Held(stream_with_context(_events(st, exts, after, token)), st.streams.release)
    return Response(gen, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class _Held:
    """A stream's events, holding its place among the `streams` until the server closes
    it (after the last event, or when the browser went away), started or not."""

    def __init__(self, events, release) -> None:
        self.events, self._release = events, release

    def __iter__(self):
        return iter(self.events)

    def close(self) -> None:
        release, self._release = self._release, None
        try:
            self.events.close()
        finally:
            if release is not None:
                release()


def _after() -> int | None:
    """Where the stream starts: the browser's Last-Event-ID on a reconnection, else the
    page's `after`, else now."""
    for value in (request.headers.get("Last-Event-ID"), request.args.get("after")):
        if value is not None and value.strip().isdigit():
            return int(value.strip())
    return None


def _events(st, exts: tuple[str, ...], after: int, token: str | None):
    end = time.monotonic() + st.settings.stream_s
    yield f"retry: 1000\nevent: hello\ndata: {json.dumps({'now': time.time()})}\n\n"
    last_beat = last_check = time.monotonic()
    view = st.reader.open()
    try:
        while True:
            if view.db is None:               # the store appeared after the stream began
                view = st.reader.open()
            for t in view.transfers_after(after, exts):
                after = t["id"]
                yield f"id: {after}\nevent: transfer\ndata: {json.dumps(describe(t))}\n\n"
            now = time.monotonic()
            if now >= end:
                return
            if now - last_check >= st.settings.recheck_s:
                last_check = now
                if not session_valid(token):
                    yield "event: signedout\ndata: {}\n\n"
                    return
            if now - last_beat >= KEEPALIVE_S:
                last_beat = now
                yield ": keep-alive\n\n"
            if st.stopping.wait(min(st.settings.poll_s, max(0.0, end - now))):
                return
    finally:
        view.close()
