"""Request templates: `{name}` placeholders filled with data, never pasted as code.

Where a value lands decides how it is escaped: in a URL path each value is
percent-encoded whole (a "/" in it cannot add a path segment); query values are
percent-encoded by the caller; in a JSON body the value is put into the data
structure and serialised by `json`, so quotes and backslashes cannot break out.
Query languages carried inside a parameter (SOQL, OData $filter, Zoho criteria)
need their own literal escaping, asked for with a filter: `{value|soql}`.
A `_literal` filter writes the whole literal, quotes included, unless the value
is a number for the field it is compared with (`[crm.identifier_types]`): SOQL
and OData refuse `Amount__c = '123'` with HTTP 400, so a number goes bare.
`{{` and `}}` are literal braces.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ..config import ConfigError
from .base import ascii_digits

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:\|([a-z_]+))?\}|[{}]")


def _soql(value: str) -> str:
    """A SOQL string literal's body: backslash, quotes and the LIKE wildcards escaped."""
    out = []
    for ch in value:
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        else:
            out.append(ch)
    return "".join(out)


def _odata(value: str) -> str:
    """An OData string literal's body: a single quote is doubled."""
    return value.replace("'", "''")


def _zoho(value: str) -> str:
    """A Zoho CRM criteria value: backslash, parentheses and commas escaped."""
    return re.sub(r"([\\(),])", r"\\\1", value)


FILTERS: dict[str, Callable[[str], str]] = {"soql": _soql, "odata": _odata, "zoho": _zoho}
LITERALS: dict[str, Callable[[str], str]] = {"soql_literal": _soql, "odata_literal": _odata}


def _literal(filt: str, value: str, number: bool) -> str:
    """A query-language literal: bare when a number-typed field is compared, else quoted.
    Only keyed digits are ever numbers (the connector checks), so a bare one cannot
    carry anything but digits into the query."""
    if number and ascii_digits(value):
        return str(int(value))
    return "'" + LITERALS[filt](value) + "'"


class Template:
    """One string with placeholders, checked against the names its step offers."""

    def __init__(self, text: str, allowed: set[str] | frozenset[str], key: str) -> None:
        self.text = text
        self.key = key
        self.parts: list[str | tuple[str, str | None]] = []
        self.names: set[str] = set()
        pos = 0
        for m in _TOKEN.finditer(text):
            if m.start() > pos:
                self.parts.append(text[pos:m.start()])
            tok = m.group(0)
            if tok in ("{{", "}}"):
                self.parts.append(tok[0])
            elif m.group(1) is None:
                raise ConfigError(f"{key}: unmatched {tok!r} in {text!r} "
                                  f"(write {tok * 2} for a literal)")
            else:
                name, filt = m.group(1), m.group(2)
                if name not in allowed:
                    raise ConfigError(f"{key}: unknown placeholder {{{name}}}; "
                                      f"this step offers {', '.join(sorted(allowed))}")
                if filt is not None and filt not in FILTERS and filt not in LITERALS:
                    raise ConfigError(f"{key}: unknown filter |{filt}; use one of "
                                      f"{', '.join(sorted({**FILTERS, **LITERALS}))}")
                self.parts.append((name, filt))
                self.names.add(name)
            pos = m.end()
        if pos < len(text):
            self.parts.append(text[pos:])

    @property
    def whole(self) -> str | None:
        """The name when the template is exactly one unfiltered placeholder."""
        if len(self.parts) == 1 and isinstance(self.parts[0], tuple) and self.parts[0][1] is None:
            return self.parts[0][0]
        return None

    def render(self, values: dict[str, str], escape: Callable[[str], str] | None = None,
               numbers: frozenset[str] = frozenset()) -> str:
        """The text with `values` filled in; names in `numbers` are numbers to `_literal`."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name, filt = part
            value = str(values[name])
            if filt in LITERALS:
                value = _literal(filt, value, name in numbers)
            elif filt is not None:
                value = FILTERS[filt](value)
            out.append(escape(value) if escape else value)
        return "".join(out)


def compile_body(obj: Any, allowed: set[str] | frozenset[str], key: str) -> Any:
    """A TOML body template with every string compiled to a Template."""
    if isinstance(obj, str):
        return Template(obj, allowed, key)
    if isinstance(obj, dict):
        return {k: compile_body(v, allowed, f"{key}.{k}") for k, v in obj.items()}
    if isinstance(obj, list):
        return [compile_body(v, allowed, f"{key}[{i}]") for i, v in enumerate(obj)]
    return obj


def render_body(obj: Any, values: dict, typed: bool = False) -> Any:
    """The body as data: placeholders replaced by values, to be serialised by json (so
    nothing can break out). `typed`: a string that is exactly one placeholder takes the
    value as it is (a number stays a number, None is null), and None is empty text in
    longer strings; otherwise every value is text."""
    if isinstance(obj, Template):
        if not typed:
            return obj.render(values)
        if obj.whole is not None:
            return values.get(obj.whole)
        return obj.render({k: "" if v is None else v for k, v in values.items()})
    if isinstance(obj, dict):
        return {k: render_body(v, values, typed) for k, v in obj.items()}
    if isinstance(obj, list):
        return [render_body(v, values, typed) for v in obj]
    return obj


def body_names(obj: Any) -> set[str]:
    if isinstance(obj, Template):
        return set(obj.names)
    if isinstance(obj, dict):
        return set().union(*(body_names(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(body_names(v) for v in obj)) if obj else set()
    return set()
