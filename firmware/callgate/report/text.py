"""A report as text for people (`callgate report`), and the value formats the
web page shares with it so both say the same thing the same way."""

from __future__ import annotations

from .figures import FIELDS, STEP_LABELS, Report


def show(value, kind: str, none: str = "-") -> str:
    """A figure for people: 1,234 / 81.3 % / 850 ms / 12.4 s; `none` when there is
    nothing to say (a rate over no calls)."""
    if value is None:
        return none
    if kind == "rate":
        return f"{value * 100:.1f} %"
    if kind == "ms":
        return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"
    return f"{value:,}"


PERIOD_COLUMNS = (("calls", "calls"), ("verified", "verified"), ("identified", "id only"),
                  ("not_identified", "not id"), ("identification_rate", "id rate"),
                  ("verification_rate", "verif."), ("opted_out", "opt-out"),
                  ("locked", "locked"), ("abandoned", "abandon"), ("auth_p90_ms", "p90 auth"))


def render(report: Report) -> str:
    d = report.as_dict()
    f = report.filters
    lines = [f"callgate report  {d['since']} .. {d['until']} (until not included)",
             f"local time {d['timezone']}, by {report.bucket}; service "
             f"{f.get('service') or 'all'}, status {f.get('status') or 'all'}, reason "
             f"{f.get('reason') or 'all'}", ""]
    width = max(len(label) for label, _ in FIELDS.values())
    for key, (label, kind) in FIELDS.items():
        lines.append(f"  {label:<{width}}  {show(report.totals[key], kind):>10}")
    lines += ["", "Waterfall (calls left at each step)"]
    for w in report.waterfall:
        lines.append(f"  {w['label']:<34}{w['calls']:>8,}  drop {w['drop']:>6,}  "
                     f"{show(w['share'], 'rate'):>8}")
    lines += ["", "Abandoned, by step"]
    lines += [f"  {STEP_LABELS.get(k, k):<34}{n:>8,}" for k, n in
              report.abandoned_by_step.items()]
    lines += ["", "Transfers, by result"]
    lines += [f"  {k:<34}{n:>8,}" for k, n in report.transfers.items()]
    lines += ["", f"By {report.bucket}"]
    head = f"  {'period':<24}" + "".join(f"{name:>10}" for _, name in PERIOD_COLUMNS)
    lines.append(head)
    for b in report.buckets:
        cells = "".join(f"{show(b[k], FIELDS[k][1]):>10}" for k, _ in PERIOD_COLUMNS)
        lines.append(f"  {b['label']:<24}{cells}")
    return "\n".join(lines) + "\n"
