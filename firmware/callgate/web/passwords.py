"""The password rule of web users, after NIST SP 800-63B (5.1.1.2, memorized secrets).

Length first (at least MIN_PASSWORD characters, any characters, spaces too), then
what an attacker tries first: a password on the shipped list of common passwords
(data/common-passwords.txt, the 10,000 most used), one of those padded with digits
or punctuation to reach the length ("password12345"), one character or a short
pattern repeated ("aaaaaaaaaa", "abababab12"), a run like "abcdefghij" or
"9876543210", and the user's own name or the product's name with only digits or
punctuation around it ("admin12345"). No composition rule (NIST advises against
them): a long phrase of ordinary words passes.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
COMMON_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt"
CONTEXT_WORDS = ("callgate",)      # the product's name, which an attacker tries first
_PADDING = string.digits + string.punctuation + " "
_MIN_DISTINCT = 4                  # "aaaaaaaaaa", "ababababab", "1212121212" have fewer


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower case (read once)."""
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(ln.strip().lower() for ln in lines if ln.strip() and not ln.startswith("#"))


def refusal(password: str, username: str | None = None) -> str | None:
    """Why `password` is refused for `username` (one line), or None if it is acceptable."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        return f"the password must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"the password must be at most {MAX_PASSWORD} characters"
    low = password.lower()
    core = low.strip(_PADDING)
    common = common_passwords()
    if low in common or low.strip() in common or (len(core) >= 4 and core in common):
        return "the password is on the list of common passwords; choose another"
    if len(set(low)) < _MIN_DISTINCT:
        return "the password repeats too few characters; choose another"
    if _is_repeat(low) or (len(core) >= 4 and _is_repeat(core)):
        return "the password is a short pattern repeated; choose another"
    if _is_run(low):
        return "the password is a run of consecutive characters; choose another"
    for word in (*CONTEXT_WORDS, (username or "").strip().lower()):
        if len(word) >= 3 and word in low and not low.replace(word, "").strip(_PADDING):
            return ("the password is the user name with digits or punctuation; choose another"
                    if word != "callgate" else
                    "the password is the product's name with digits or punctuation; "
                    "choose another")
    return None


def _is_repeat(text: str) -> bool:
    """The text is a shorter piece said at least twice over ("ab12ab12ab12", "hellohello"),
    the last time perhaps cut short: it equals itself shifted by that piece's length."""
    return any(text[p:] == text[:-p] for p in range(1, len(text) // 2 + 1))


def _is_run(text: str) -> bool:
    """Each character one step from the one before, all in the same direction."""
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    return steps in ({1}, {-1})


__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "common_passwords", "refusal"]
