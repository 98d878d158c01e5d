"""`callgate doctor [--config FILE] [--line NAME] [--phone NUMBER] [--json]`.

Exit status: 0 when no check failed (warnings allowed), 1 when one did, 2 for bad
arguments (a --line that is not configured).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from .backend import check_backend
from .checks import Check, summary
from .config import check_config
from .line import check_line, survey
from .system import check_clock, check_space, check_zone

DEFAULT_CONFIG = "/etc/callgate/callgate.toml"
DEFAULT_DATA = Path("/var/lib/callgate/calls.sqlite")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "doctor", help="check this device on site: line hardware, config, back end, clock",
        description="The technician's check: finds and tests each line's hardware (modem "
                    "by ATI, HAT pins and codec), off hook listens for audio, loop current "
                    "and dial tone and hears its own test tone come back, then checks the "
                    "configuration, the back end (as `callgate crm test`), the clock, the "
                    "time zone and free space for the call store. One line per check, with "
                    "a fix for each failure. Stop the line's service first (systemctl stop "
                    "callgate or callgate@NAME): doctor opens the line itself. Exit status: "
                    "0 nothing failed, 1 a check failed, 2 bad arguments.")
    p.add_argument("--config", metavar="FILE", default=DEFAULT_CONFIG,
                   help=f"the configuration (default: {DEFAULT_CONFIG})")
    p.add_argument("--line", metavar="NAME", help="check this line only (default: every line)")
    p.add_argument("--phone", metavar="NUMBER",
                   help="look this customer's number up in the back end (default: a number "
                        "nobody holds, which must come back \"no customer\")")
    p.add_argument("--json", action="store_true", help="one JSON document for scripts")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        checks = run_checks(args.config, args.line, args.phone)
    except _BadLine as err:
        print(f"callgate doctor: {err}", file=sys.stderr)
        return 2
    failed = any(c.failed for c in checks)
    if args.json:
        json.dump({"ok": not failed, "checks": [c.as_dict() for c in checks]}, out, indent=1)
        out.write("\n")
    else:
        for check in checks:
            print(check.text(), file=out)
        print(summary(checks), file=out)
    out.flush()
    return 1 if failed else 0


class _BadLine(Exception):
    pass


def run_checks(config: str | None, line: str | None = None,
               phone: str | None = None) -> list[Check]:
    checked, settings = check_config(config)
    checks = [checked]
    if settings is not None:
        if line is not None and line not in settings.lines:
            raise _BadLine(f"--line {line}: no such line (configured: "
                           f"{', '.join(settings.lines)})")
        for name, built in settings.lines.items():
            if line is None or name == line:
                checks += check_line(name, built, settings.engine.toneplan)
        checks.append(check_backend(config, settings, phone))
    else:
        checks.append(survey())          # no line to test: what hardware is there
    checks += [check_clock(), check_zone(),
               check_space(settings.store_path if settings is not None else DEFAULT_DATA)]
    return checks
