"""Where each message goes: every topic of a device lies under `<prefix>/<device_id>/`.

    availability   "online" / "offline", retained (offline is also the last will)
    state          the state document, JSON, retained
    event          one QoS 1 message per call outcome or fault, not retained
    config         the signed remote configuration for the device, retained (the
                   installer publishes it; the device only reads it)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AVAILABILITY, STATE, EVENT, CONFIG = "availability", "state", "event", "config"
ONLINE, OFFLINE = "online", "offline"
_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")   # no wildcard, "/", "$" or lead "."


def is_level(text: str) -> bool:
    """One topic level we are willing to build topics from (a prefix part, a device id)."""
    return isinstance(text, str) and bool(_LEVEL.match(text))


@dataclass(frozen=True)
class Topics:
    prefix: str
    device_id: str

    def of(self, what: str) -> str:
        return f"{self.prefix}/{self.device_id}/{what}"

    @property
    def availability(self) -> str:
        return self.of(AVAILABILITY)

    @property
    def state(self) -> str:
        return self.of(STATE)

    @property
    def event(self) -> str:
        return self.of(EVENT)

    @property
    def config(self) -> str:
        return self.of(CONFIG)


def device_of(topic: str, prefix: str) -> tuple[str, str] | None:
    """(device_id, what) of a device topic under `prefix`, None for any other topic."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    if len(parts) != 2 or not is_level(parts[0]):
        return None
    return parts[0], parts[1]
