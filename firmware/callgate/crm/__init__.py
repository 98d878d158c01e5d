"""Customer back ends: the embedded directory (default), a generic HTTPS REST
connector and presets for common CRMs, all behind one `Crm` interface."""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError, Table
from .base import Crm, Customer, Lookup, Verdict, mask
from .phone import normalise_phone
from .presets import PRESETS, apply_preset

KINDS = ("directory", "rest", *PRESETS)

__all__ = ["Crm", "Customer", "Lookup", "Verdict", "make_crm", "normalise_phone",
           "mask", "KINDS", "ConfigError"]


def make_crm(table: Table, directory_path: str | Path | None = None) -> Crm:
    """The back end the [crm] table asks for; ConfigError (one line naming the key) if bad.

    kind = "directory" (default): the embedded SQLite directory at `directory_path`.
    kind = "rest": the generic connector, every request described in the table.
    kind = a preset name: the generic connector with that CRM's request shapes.
    """
    kind = table.choice("kind", KINDS, "directory")
    if kind == "directory":
        from .directory import DEFAULT_PATH, Directory, DirectoryError
        country = table.get("default_country", str, "US")
        try:
            return Directory(directory_path or DEFAULT_PATH, default_country=country,
                             create=False)
        except DirectoryError as err:
            raise ConfigError(f"{table.key('directory')}: {err}") from None
    from .rest import RestConnector
    if kind == "rest":
        return RestConnector(table, name="rest")
    merged = apply_preset(kind, table)
    backend = RestConnector(merged, name=kind)
    table.used |= set(table.data)            # every key was checked through the merged table
    return backend
