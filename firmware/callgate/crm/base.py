"""What every customer back end answers, whatever it talks to.

The flow codes against `Crm` only. Back-end trouble (a timeout, a 5xx, bad
JSON, a TLS failure, an open circuit) never raises: it comes back as status
"error" with a one-line reason that holds no keyed digit and no secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..privacy import mask  # noqa: F401  (one masking rule for logs and records)

LOOKUP_STATUSES = ("hit", "miss", "ambiguous", "error")
VERDICT_STATUSES = ("verified", "rejected", "no_secret", "error")
ASSURANCES = ("high", "hashed", "low")


def ascii_digits(text: str) -> bool:
    """Whether `text` is one or more ASCII digits, as a caller keys them: str.isdigit()
    alone also takes '²' (which int() refuses) and '١٢٣' (which int() reads)."""
    return text.isascii() and text.isdigit()

"""How much a "verified" is worth: "high" when the back end itself checked the secret
(a verify call, the embedded directory's scrypt); "hashed" when we fetched a salted
scrypt hash from the CRM and checked it here; "low" when we fetched the plaintext."""


@dataclass(frozen=True)
class Customer:
    id: str                    # the business's unique identifier
    name: str | None = None
    # kinds of secret on file ("pin", "dob", ...); None when the back end does not say.
    # A customer without the kind asked for skips the security step (nothing to guess).
    secrets: frozenset[str] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Lookup:
    status: str                # "hit" | "miss" | "ambiguous" | "error"
    customers: tuple[Customer, ...] = ()
    latency_ms: float = 0.0
    # one line, never the keyed digits or a secret: why an "error"; for an "ambiguous"
    # that is not several customers, why undecided (pages of candidates left unread)
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    status: str                # "verified" | "rejected" | "no_secret" | "error"
    assurance: str = "high"    # one of ASSURANCES
    latency_ms: float = 0.0
    error: str | None = None


@runtime_checkable
class Crm(Protocol):
    name: str

    def lookup_phone(self, e164: str) -> Lookup: ...

    def lookup_identifier(self, kind: str, digits: str) -> Lookup: ...

    def verify(self, customer: Customer, kind: str, secret: str) -> Verdict: ...

    def close(self) -> None: ...


def lookup_of(customers: list[Customer] | tuple[Customer, ...], latency_ms: float) -> Lookup:
    """hit / miss / ambiguous from the customers found (duplicates by id counted once)."""
    seen: dict[str, Customer] = {}
    for c in customers:
        seen.setdefault(c.id, c)
    found = tuple(seen.values())
    status = "miss" if not found else "hit" if len(found) == 1 else "ambiguous"
    return Lookup(status, found, latency_ms)


