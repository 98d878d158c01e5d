"""`callgate report`: the figures of the reports page, on the command line."""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time

from ..store.records import DEFAULT_PATH as DEFAULT_DB
from ..store.records import store_path
from .figures import BUCKETS, REASONS, STATUSES, ReportError, compute_report
from .period import FORMS, parse_when

ME = "callgate report"


def add_parser(sub) -> None:
    rep = sub.add_parser(
        "report", help="figures of the calls over a period (text, JSON, CSV, XLSX)",
        description="The figures of the reports page for the calls answered in [--since, "
                    "--until), in local time: outcomes, identification by number and keyed "
                    "identifier, verification, opt-outs, lockouts, time to authenticate, "
                    "abandonment by step, transfers, back-end errors and latency, the "
                    "waterfall, and the same per hour, day or week. Aggregates only: no "
                    f"caller's identifier or number is ever printed. Dates: {FORMS}.")
    src = rep.add_mutually_exclusive_group()
    src.add_argument("--db", metavar="PATH", help=f"call records file (default: [store] path "
                                                  f"of --config, else {DEFAULT_DB})")
    src.add_argument("--config", metavar="FILE", help="TOML configuration ([store] path)")
    rep.add_argument("--since", default="-7d", metavar="WHEN",
                     help="first moment included (default: -7d, midnight 7 days ago)")
    rep.add_argument("--until", default="now", metavar="WHEN",
                     help="first moment NOT included (default: now)")
    rep.add_argument("--period", choices=BUCKETS, default="day",
                     help="bucket the figures by local hour, day or week (default: day)")
    rep.add_argument("--service", metavar="NAME", help="only this service line")
    rep.add_argument("--status", choices=STATUSES, help="only calls with this outcome")
    rep.add_argument("--reason", choices=REASONS, help="only calls sent on for this reason")
    rep.add_argument("--format", choices=("text", "json", "csv", "xlsx"), default="text")
    rep.add_argument("--output", "-o", metavar="FILE",
                     help="write here instead of standard output (required for xlsx)")
    rep.set_defaults(func=cmd_report)
    # let "--since -7d" be a value, not an unknown option: argparse takes a value that
    # looks like a negative number, and -7d is one here (7d and --since=-7d work anyway)
    if hasattr(rep, "_negative_number_matcher"):
        rep._negative_number_matcher = re.compile(r"^-\d+([hdw]|\.\d+)?$")


def records_path(db: str | None, config: str | None) -> str:
    """--db, else [store] path of the config, else the default path."""
    if db:
        return db
    if not config:
        return DEFAULT_DB
    from ..config import load

    return store_path(load(config))


def cmd_report(args: argparse.Namespace) -> int:
    from ..config import ConfigError

    if args.format == "xlsx" and not args.output:
        print(f"{ME}: --format xlsx needs --output FILE", file=sys.stderr)
        return 2
    now = time.time()
    try:
        path = records_path(args.db, args.config)
        since = parse_when(args.since, now, "--since")
        until = parse_when(args.until, now, "--until")
        if until <= since:
            raise ReportError(f"--until ({args.until}) is not after --since ({args.since})")
    except (ConfigError, ReportError) as err:
        print(f"{ME}: {err}", file=sys.stderr)
        return 2
    try:
        report = compute_report(path, since, until, service=args.service, status=args.status,
                                reason=args.reason, bucket=args.period)
    except ReportError as err:
        print(f"{ME}: {err}", file=sys.stderr)
        return 1
    try:
        _write(report, args.format, args.output)
    except OSError as err:
        print(f"{ME}: {args.output}: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0


def _write(report, fmt: str, output: str | None) -> None:
    if fmt == "xlsx":
        from .export import write_xlsx

        buf = io.BytesIO()
        write_xlsx(report, buf)
        with open(output, "wb") as f:
            f.write(buf.getvalue())
        return
    if fmt == "json":
        text = json.dumps(report.as_dict(), indent=2) + "\n"
    elif fmt == "csv":
        from .export import write_csv

        buf = io.StringIO()
        write_csv(report, buf)
        text = buf.getvalue()
    else:
        from .text import render

        text = render(report)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
