"""Configuration: one TOML file, checked at start, errors that name the key.

Each part of the firmware reads its own table through `Table`, which knows
its dotted path, so a wrong value is reported as e.g.
``line.modem.port: expected a string, got 5`` and never as a traceback.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

_MISSING = object()


NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def is_name(text: str, longest: int = 64) -> bool:
    """A service line or prompt name: ASCII letters, digits, - and _ (it becomes a file
    name, a URL part and a log field, so no "é" or "²" that str.isalnum lets through)."""
    return isinstance(text, str) and 0 < len(text) <= longest and set(text) <= NAME_CHARS


class ConfigError(Exception):
    """A bad or missing setting; str() is one line that names the key."""


class Table:
    """A TOML table with its dotted path, and typed getters that name bad keys."""

    def __init__(self, data: dict | None = None, path: str = "") -> None:
        self.data = dict(data or {})
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def sub(self, name: str) -> "Table":
        """The sub-table `name` (empty if absent)."""
        value = self.data.get(name, {})
        self.used.add(name)
        if not isinstance(value, dict):
            raise ConfigError(f"{self.key(name)}: expected a table, got {value!r}")
        return Table(value, self.key(name))

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        """The value of `name`, which must be of `kind`; `default` when absent."""
        self.used.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise ConfigError(f"{self.key(name)}: missing")
            return default
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(f"{self.key(name)}: expected {_names(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise ConfigError(f"{self.key(name)}: expected {_names(kinds)}, got {value!r}")
        return value

    def number(self, name: str, default: Any = _MISSING, low: float | None = None,
               high: float | None = None) -> float:
        """A number within [low, high]."""
        return self._within(name, self.get(name, float, default), low, high)

    def integer(self, name: str, default: Any = _MISSING, low: int | None = None,
                high: int | None = None) -> int:
        """A whole number within [low, high]."""
        return self._within(name, self.get(name, int, default), low, high)

    def _within(self, name: str, value, low, high):
        if isinstance(value, float) and math.isnan(value):
            # NaN compares false with everything: it would pass every range check
            raise ConfigError(f"{self.key(name)}: nan is not a number")
        if value is not None and ((low is not None and value < low)
                                  or (high is not None and value > high)):
            raise ConfigError(f"{self.key(name)}: {value} is outside {low}..{high}")
        return value

    def choice(self, name: str, choices: tuple[str, ...] | list[str], default: Any = _MISSING) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise ConfigError(f"{self.key(name)}: {value!r} is not one of {', '.join(choices)}")
        return value

    def unknown(self) -> list[str]:
        """Keys present in the file that nobody asked for (likely typos)."""
        return [self.key(k) for k in self.data if k not in self.used]

    def reject_unknown(self, known: tuple[str, ...] | list[str] = ()) -> None:
        """ConfigError naming the first key nobody asked for; call it after reading the
        table, so a typo is reported instead of silently ignored. `known` is listed in
        the message when given."""
        bad = self.unknown()
        if bad:
            hint = f" (known: {', '.join(known)})" if known else ""
            raise ConfigError(f"{bad[0]}: unknown key{hint}")


def _names(kinds: tuple[type, ...]) -> str:
    words = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return " or ".join(words.get(k, k.__name__) for k in kinds)


def read_toml(path: str | Path) -> dict:
    """A TOML file as a dict; ConfigError (one line, without the file's name: the caller
    says which file) if it cannot be read or parsed."""
    try:
        with Path(path).open("rb") as f:
            return tomllib.load(f)
    except OSError as err:
        raise ConfigError(f"cannot read ({err.strerror or err})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML ({err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start} cannot be read; TOML files are "
                          "UTF-8)") from None


def load(path: str | Path) -> Table:
    """Read a TOML config file; ConfigError (one line, naming the file) if it cannot be
    read or parsed."""
    try:
        return Table(read_toml(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
