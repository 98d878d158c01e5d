"""The events detectors emit, and the small protocol every detector follows."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Protocol

import numpy as np


@dataclass(frozen=True)
class Event:
    """Something heard on the line, stamped with its onset in samples."""

    sample: int
    kind: ClassVar[str] = "event"

    def as_dict(self) -> dict:
        """The event's fields as the `callgate decode` contract names them."""
        out = {"event": self.kind}
        for f in fields(self):
            if f.name != "sample" and f.repr:
                out[f.name] = getattr(self, f.name)
        return out


class Detector(Protocol):
    """A streaming detector: any frame length in, the same events out."""

    def feed(self, frame: np.ndarray) -> list[Event]:
        """Consume int16 samples; return events completed by them."""

    def flush(self) -> list[Event]:
        """End of stream: return anything still pending."""
