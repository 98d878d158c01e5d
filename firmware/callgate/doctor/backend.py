"""The back end check: `callgate crm test` (crm/sitecheck.py) run as a call would run it.

The site check shows DNS, the TLS certificate, the token fetch and the request; the
doctor keeps its verdict in one line. A lookup of a number nobody holds is enough to
prove the way to the back end (it must answer "no customer"); the technician may
give a real customer's number with --phone, which the site check masks.
"""

from __future__ import annotations

import argparse
import io

from ..crm.sitecheck import BACKEND_FAILED, CONFIG, FOUND, NOT_FOUND, cmd_crm_test
from .checks import Check, fail, ok, skip, warn

UNHELD_NUMBER = "+12025550100"
"""A number in the 555-0100..0199 block set aside for fiction: no customer has it."""


def check_backend(config: str | None, settings, phone: str | None = None) -> Check:
    if not settings.services:
        return skip("back end", "no [crm] or service line: the scripted handler answers, "
                                "no back end is asked")
    args = argparse.Namespace(config=config, phone=phone or UNHELD_NUMBER, identifier=None,
                              kind="customer_id", verify=False, secret_kind="pin")
    out = io.StringIO()
    status = cmd_crm_test(args, out=out, ask=_no_secret)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    said = _said(lines)
    if status in (FOUND, NOT_FOUND):
        steps = [ln.split(":")[0] for ln in lines if ln.startswith(("DNS", "TLS", "token"))]
        where = f" ({', '.join(dict.fromkeys(s.split()[0] for s in steps))} ok)" if steps else ""
        detail = f"{_kind(lines)} answered{where}: {said.get('result', '')}"
        if "warning" in said:            # its TLS certificate runs out soon
            return warn("back end", f"{detail}; {said['warning']}",
                        "ask the back end's owner to renew its TLS certificate", None)
        return ok("back end", detail)
    if status == CONFIG:
        refusal = lines[-1].removeprefix("callgate crm test: ") if lines else "refused"
        return fail("back end", refusal, "correct [crm] in the configuration; "
                    "`callgate crm test --phone NUMBER` shows each step")
    assert status == BACKEND_FAILED
    failed = next((ln for ln in reversed(lines) if not ln.startswith("diagnosis:")), "failed")
    return fail("back end", f"{_kind(lines)}: {failed}",
                said.get("diagnosis", "run `callgate crm test --phone NUMBER` to see each "
                                      "step"))


def _said(lines: list[str]) -> dict[str, str]:
    """The last "word: text" of each word the site check printed."""
    out = {}
    for ln in lines:
        word, sep, rest = ln.partition(": ")
        if sep and " " not in word:
            out[word] = rest
    return out


def _kind(lines: list[str]) -> str:
    for ln in lines:
        if ln.startswith("back end: "):
            return ln.removeprefix("back end: ")
    return "back end"


def _no_secret(prompt: str) -> str:
    raise EOFError                 # the doctor never verifies a secret
