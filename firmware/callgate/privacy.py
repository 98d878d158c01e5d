"""The privacy rules every layer applies: what may be shown of a caller, and how.

One module, imported by the flow, the store, the CRM connectors, the engine
and the commands alike, so there is one masking rule and one idea of what
counts as a keyed secret:

- identifiers and calling numbers are shown masked to their last 2 digits
  (`mask`); a 4-digit value is masked completely;
- a field that claims to be masked but carries more than 4 digits is refused
  (`check_masked`): a last guard against a full number reaching a record;
- detail keys that would only ever hold what the caller keyed (`SECRET_KEYS`)
  never go into a trail;
- an exception is described by its type and where it was raised, never by its
  message, which may quote what the caller keyed (`where`).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

SECRET_KEYS = frozenset({"digits", "keyed", "pin", "secret", "password"})
"""Names of trail details that would only ever hold keyed digits."""


def mask(identifier: str | None, keep: int = 2) -> str | None:
    """'12345678' -> '******78': the last `keep` characters, the rest as '*'.

    Short values show less (never more than len - 4 characters), so a 4-digit
    identifier is masked completely. None stays None.
    """
    if identifier is None:
        return None
    text = "".join(str(identifier).split())
    shown = max(0, min(keep, len(text) - 4))
    return "*" * (len(text) - shown) + (text[-shown:] if shown else "")


def check_masked(name: str, value: Any) -> None:
    """ValueError if a value meant to be masked shows more than 4 digits."""
    if value is not None and sum(ch.isdigit() for ch in str(value)) > 4:
        raise ValueError(f"{name} must be masked (use privacy.mask)")


def secret_details(detail: dict) -> list[str]:
    """The keys of a trail detail that would hold keyed digits (sorted)."""
    return sorted(k for k, v in detail.items() if k.lower() in SECRET_KEYS and isinstance(v, str))


def where(err: BaseException) -> str:
    """`Type at file:line` of the innermost frame: no message (it may hold keyed digits)."""
    tb = traceback.extract_tb(err.__traceback__)
    if tb:
        last = tb[-1]
        return f"{type(err).__name__} at {Path(last.filename).name}:{last.lineno}"
    return type(err).__name__
