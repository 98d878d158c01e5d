"""DTMF keys and extensions as the configuration names them: one check for every table
that names a destination ([service.transfer], its fallbacks, [service.hours]
after_hours, [service.menu]), so they cannot drift apart."""

from __future__ import annotations

from ..config import ConfigError, Table

DTMF = "0123456789*#ABCD"


def is_extension(value) -> bool:
    """What the exchange can be dialled with after a hook flash: DTMF keys, at least one."""
    return isinstance(value, str) and bool(value) and all(c in DTMF for c in value)


def extension(table: Table, name: str, default: str = "", allow_empty: bool = True,
              empty_means: str = "") -> str:
    """The extension at `name`; "" when allowed (`empty_means` says what "" does)."""
    value = table.get(name, str, default)
    if not value and allow_empty:
        return ""
    if not is_extension(value):
        tail = f", or \"\" {empty_means}" if empty_means else ""
        raise ConfigError(f"{table.key(name)}: {value!r} is not an extension (DTMF digits "
                          f"0-9, *, #, A-D){tail}")
    return value
