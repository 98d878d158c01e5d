"""HTTPS plumbing shared by the REST connector (rest.py) and the write-back (writeback.py).

Both talk to the business's back end under the same rules: TLS verification is
always on and nothing is taken from the environment (no proxy, netrc or CA
override); a request that got no answer is told in one line that names
neither the URL nor a header; Retry-After is read the same way.
"""

from __future__ import annotations

import email.utils
import time

import requests

MAX_BODY = 1 << 20                     # an answer larger than 1 MiB is not an answer
REFUSED = "connection failed (refused)"


def session() -> requests.Session:
    """A session that takes no proxy, netrc or CA override from the environment."""
    s = requests.Session()
    s.trust_env = False
    return s


def failure(err: requests.exceptions.RequestException, timed_out: str) -> str:
    """Why a request got no answer, in one line; `timed_out` is what a read timeout says.

    A refused connection is exactly REFUSED (the connector retries those).
    """
    if isinstance(err, requests.exceptions.SSLError):
        return "TLS handshake failed (certificate not trusted or invalid)"
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return "connect timed out"
    if isinstance(err, requests.exceptions.ReadTimeout):
        return timed_out
    if isinstance(err, requests.exceptions.ConnectionError):
        return f"connection failed ({reason(err)})"
    return f"request failed ({type(err).__name__})"


def reason(err: Exception) -> str:
    """A connection failure in a word or two (the exception text may hold the URL)."""
    text = repr(err).lower()
    for word, why in (("refused", "refused"), ("reset", "reset"),
                      ("name or service", "host not found"), ("unreachable", "unreachable"),
                      ("timed out", "timed out")):
        if word in text:
            return why
    return type(err).__name__


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date); None if absent or odd."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return None if when is None else max(0.0, when.timestamp() - time.time())
