"""What kind of failure a back end's one-line error is, in one word, for health and metrics.

The connectors say why a request failed in one line for people (the trail,
the log). Someone looking after many devices needs the kind instead: is the
token expired (auth), is the CRM down (connection, http_5xx), slow (timeout),
refusing us (rate_limited), or answering something we cannot read
(malformed)? The kinds are a closed set, so a device's state and a metric
label never carry free text (nor anything a caller keyed).
"""

from __future__ import annotations

import re

KINDS = ("timeout", "circuit_open", "tls", "connection", "auth", "rate_limited",
         "http_4xx", "http_5xx", "malformed", "config", "store", "other")

_HTTP = re.compile(r"\bHTTP (\d{3})\b")
_RULES = (
    ("circuit_open", ("circuit open",)),
    ("tls", ("tls handshake",)),
    ("timeout", ("no answer within", "timed out", "timeout")),
    ("malformed", ("malformed", "not json", "empty body", "response:", "larger than",
                   "unexpected reply", "not a list", "is not true or false")),
    # the rules above win over an HTTP status in the same line, those below lose to it
    ("auth", ("oauth2", "credential", "token")),
    ("connection", ("connection failed", "connection refused", "host not found",
                    "unreachable", "broken off", "back end closed")),
    ("config", ("no field configured", "would hold a line break", "redirects are not")),
    ("store", ("directory:",)),
)
_BEFORE_STATUS = 4


def failure_kind(error: str | None) -> str | None:
    """The kind (one of KINDS) of a back end's one-line error; None when there is none."""
    if error is None:
        return None
    text = str(error).lower()
    for kind, words in _RULES[:_BEFORE_STATUS]:
        if any(w in text for w in words):
            return kind
    status = _HTTP.search(str(error))
    if status:
        code = int(status.group(1))
        if code in (401, 403) or "token endpoint" in text:
            return "auth"
        if code == 429:
            return "rate_limited"
        if code >= 500:
            return "http_5xx"
        if code >= 400:
            return "http_4xx"
    for kind, words in _RULES[_BEFORE_STATUS:]:
        if any(w in text for w in words):
            return kind
    return "other"
