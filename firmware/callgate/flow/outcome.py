"""What the agent is shown: verified, identified only, or neither, and why.

The outcome also picks the extension: locked, opted-out, back-end-down and
no-secret-on-file calls have their own (a business may send them to a different queue); the
rest go by status.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("verified", "identified", "not_identified")
REASONS = ("locked", "opted_out", "backend_down", "no_secret")


@dataclass(frozen=True)
class Outcome:
    status: str                    # verified | identified | not_identified
    reason: str | None = None      # locked | opted_out | backend_down | no_secret | None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.reason is not None and self.reason not in REASONS:
            raise ValueError(f"reason {self.reason!r} is not one of {', '.join(REASONS)}")
        if self.status == "verified" and self.reason is not None:
            raise ValueError("a verified caller has no reason to be sent to an agent")

    @property
    def route(self) -> str:
        """The outcome key of the policy's extensions: the reason if any, else the status."""
        return self.reason or self.status


def outcome_for(identified: bool, verified: bool = False, reason: str | None = None) -> Outcome:
    """Fail safe: verified only when identified, verified and nothing went wrong."""
    if verified and identified and reason is None:
        return Outcome("verified")
    return Outcome("identified" if identified else "not_identified", reason)
