"""The configuration check: the file (and lines/ beside it) read as `run` reads it."""

from __future__ import annotations

from ..config import ConfigError
from .checks import Check, fail, ok


def check_config(path: str | None) -> tuple[Check, object | None]:
    """The check and the settings (None when the file is bad: no line can be tested)."""
    from ..app import Settings

    where = path or "the embedded defaults"
    try:
        settings = Settings.load(path, pick=False)
    except ConfigError as err:
        again = f"`callgate check-config {path}`" if path else "`callgate check-config`"
        return fail("config", str(err), f"correct it in {where}, then run {again} "
                    "until it says ok"), None
    lines = list(settings.lines)
    services = [p.name for p in settings.services]
    detail = (f"{where}: {len(lines)} line{'s' * (len(lines) != 1)} ({', '.join(lines)}), "
              + (f"service lines {', '.join(services)}" if services
                 else "no service line (the scripted handler answers)"))
    return ok("config", detail), settings
