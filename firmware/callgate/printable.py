"""Text from outside (a caller ID name, a CRM's customer name, a CSV cell) made safe to print.

A caller chooses the name the exchange sends, so it may hold ESC (a terminal
escape that rewrites the screen), CR or LF (a line that looks like a log line
of ours) or a Unicode line separator or direction override. Everything that
prints or logs such a name passes it through `printable`: each control or
format character becomes a visible escape (\\x1b, \\n, \\u2028), the rest is
kept as it was. JSON output needs nothing more (json.dumps escapes controls).
"""

from __future__ import annotations

import logging
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    # Cc: C0/C1 controls and DEL; Cf: format (bidi overrides, zero-width);
    # Zl/Zp: the Unicode line and paragraph separators
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def printable(value: object) -> str:
    """`value` as text with every control character shown as an escape; None -> ''."""
    if value is None:
        return ""
    text = str(value)
    if text.isprintable():
        return text                         # the common case, at C speed
    return "".join(_escaped(ch) if _unsafe(ch) else ch for ch in text)


class PrintableFormatter(logging.Formatter):
    """A log formatter whose message is `printable`: a name quoted in a log line cannot
    end the line or forge the next one (a traceback below it keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)
