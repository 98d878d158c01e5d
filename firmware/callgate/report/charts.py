"""Charts of a report as inline SVG, drawn on the device: no script, no library in
the browser, nothing to build. Each chart has a <title> and a <desc> that says
in words what it shows (screen readers, and anyone who would rather read), every
bar has its own <title> with its numbers, and every piece of text is escaped.

Colours are from the Okabe-Ito set (told apart with the common colour-vision
deficiencies); the legend and the bar titles carry the same facts in words.
Only presentation attributes are used (fill=...), never style=, so a strict
Content-Security-Policy (no inline styles) leaves them intact.
"""

from __future__ import annotations

import itertools
from html import escape

from .figures import Report

STATUS_SERIES = (("verified", "Identified and verified", "#009E73"),
                 ("identified", "Identified only", "#E69F00"),
                 ("not_identified", "Not identified", "#0072B2"),
                 ("unfinished", "No outcome yet", "#999999"))
BAR = "#0072B2"
INK = "#222222"
GRID = "#d0d0d0"
_ids = itertools.count(1)


def _e(text) -> str:
    return escape(str(text), quote=True)


def _svg(width: int, height: int, title: str, desc: str, body: list[str]) -> str:
    n = next(_ids)
    tid, did = f"chart{n}-title", f"chart{n}-desc"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'aria-labelledby="{tid} {did}" font-family="sans-serif" font-size="12">'
            f'<title id="{tid}">{_e(title)}</title><desc id="{did}">{_e(desc)}</desc>'
            + "".join(body) + "</svg>")


def _nice_max(value: float) -> int:
    """A round top for an axis at or above `value` (1, 2, 5 x 10^n), at least 1."""
    if value <= 1:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def _ticks(top: int) -> list[int]:
    """0..top in 4 or 5 whole steps (fewer for a tiny top)."""
    for parts in (4, 5, 2, 1):
        if top % parts == 0:
            return [top * i // parts for i in range(parts + 1)]
    return [0, top]


def _short(label: str, bucket: str) -> str:
    if bucket == "hour":                     # "2026-05-01 14:00" -> "14:00"; midnight: the day
        return label[5:10] if label.endswith(" 00:00") else label[11:16]
    if bucket == "week":
        return label.split(" ")[0][5:]       # "2026-W18 (...)" -> "W18"
    return label[5:]                         # "2026-05-01" -> "05-01"


def status_chart(report: Report, width: int = 1100, height: int = 300) -> str:
    """Calls per period, stacked by outcome."""
    left, right, top, bottom = 44, 12, 34, 40
    pw, ph = width - left - right, height - top - bottom
    buckets = report.buckets
    t = report.totals
    desc = (f"{t['calls']} calls from {buckets[0]['label'] if buckets else '-'} to "
            f"{buckets[-1]['label'] if buckets else '-'}, by {report.bucket}: "
            + ", ".join(f"{t[k]} {name.lower()}" for k, name, _ in STATUS_SERIES) + ".")
    body = _legend(STATUS_SERIES, left, 14)
    peak = max((b["calls"] for b in buckets), default=0)
    ymax = _nice_max(peak)
    body += _y_axis(ymax, left, top, pw, ph)
    n = max(1, len(buckets))
    slot = pw / n
    bar = max(1.0, slot * 0.72)
    every = max(1, -(-n // 16))               # at most ~16 labels under the axis
    for i, b in enumerate(buckets):
        x = left + i * slot + (slot - bar) / 2
        y = top + ph
        for key, name, colour in STATUS_SERIES:
            count = b[key]
            if not count:
                continue
            h = ph * count / ymax
            y -= h
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                        f'fill="{colour}"><title>{_e(b["label"])}: {count} '
                        f'{_e(name.lower())}</title></rect>')
        if i % every == 0:
            body.append(f'<text x="{x + bar / 2:.1f}" y="{top + ph + 16}" text-anchor="middle" '
                        f'fill="{INK}">{_e(_short(b["label"], report.bucket))}</text>')
    if not peak:
        body.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" text-anchor="middle" '
                    f'fill="{INK}">No calls in this period</text>')
    return _svg(width, height, f"Calls by outcome, per {report.bucket}", desc, body)


def waterfall_chart(report: Report, width: int = 560) -> str:
    """Calls left at each step of the flow, first step on top."""
    rows = report.waterfall
    label_w, row_h, top = 210, 30, 8
    height = top * 2 + row_h * len(rows)
    first = rows[0]["calls"] if rows else 0
    scale = (width - label_w - 110) / first if first else 0
    body, words = [], []
    for i, w in enumerate(rows):
        y = top + i * row_h
        share = "" if w["share"] is None else f" ({w['share'] * 100:.1f} %)"
        words.append(f"{w['label']} {w['calls']}{share}")
        body.append(f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end" '
                    f'fill="{INK}">{_e(w["label"])}</text>')
        bw = max(w["calls"] * scale, 1 if w["calls"] else 0)
        body.append(f'<rect x="{label_w}" y="{y + 4}" width="{bw:.1f}" height="{row_h - 8}" '
                    f'fill="{BAR}"><title>{_e(w["label"])}: {w["calls"]} calls{_e(share)}, '
                    f'{w["drop"]} fewer than the step before</title></rect>')
        body.append(f'<text x="{label_w + bw + 6:.1f}" y="{y + row_h / 2 + 4:.1f}" '
                    f'fill="{INK}">{w["calls"]}{_e(share)}</text>')
    return _svg(width, height, "Waterfall: calls left at each step",
                "; ".join(words) + "." if words else "No calls.", body)


def auth_chart(report: Report, width: int = 560, height: int = 260) -> str:
    """How long callers took from answer to outcome, as a histogram."""
    left, right, top, bottom = 44, 12, 16, 40
    pw, ph = width - left - right, height - top - bottom
    bins = report.auth_histogram
    peak = max((b["calls"] for b in bins), default=0)
    ymax = _nice_max(peak)
    body = _y_axis(ymax, left, top, pw, ph)
    slot = pw / max(1, len(bins))
    for i, b in enumerate(bins):
        x = left + i * slot + slot * 0.1
        h = ph * b["calls"] / ymax
        body.append(f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{slot * 0.8:.1f}" '
                    f'height="{h:.1f}" fill="{BAR}"><title>{_e(b["label"])}: {b["calls"]} '
                    f'calls</title></rect>')
        body.append(f'<text x="{x + slot * 0.4:.1f}" y="{top + ph + 16}" text-anchor="middle" '
                    f'fill="{INK}">{_e(b["label"].removesuffix(" s"))}</text>')
        if b["calls"]:
            body.append(f'<text x="{x + slot * 0.4:.1f}" y="{top + ph - h - 4:.1f}" '
                        f'text-anchor="middle" fill="{INK}">{b["calls"]}</text>')
    body.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'fill="{INK}">seconds from answer to outcome</text>')
    t = report.totals
    desc = (", ".join(f"{b['label']}: {b['calls']}" for b in bins)
            + f". Average {_seconds(t['auth_avg_ms'])}, 90th percentile "
              f"{_seconds(t['auth_p90_ms'])}.")
    return _svg(width, height, "Time to authenticate (answer to outcome)", desc, body)


def _seconds(ms) -> str:
    return "none" if ms is None else f"{ms / 1000:.1f} s"


def _legend(series, x: int, y: int) -> list[str]:
    out = []
    for _, name, colour in series:
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 16}" y="{y}" fill="{INK}">{_e(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def _y_axis(ymax: int, left: int, top: int, pw: float, ph: float) -> list[str]:
    out = []
    for v in _ticks(ymax):
        y = top + ph - ph * v / ymax
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw:.1f}" y2="{y:.1f}" '
                   f'stroke="{GRID}" stroke-width="1"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'fill="{INK}">{v}</text>')
    return out
