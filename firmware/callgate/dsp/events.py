"""The events detectors emit, and the small protocol every detector follows.

Plain data only: importing this module does not import NumPy, so the
contract between engine and flow (call.py) and the line backends can name
caller ID without pulling in the signal core.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    import numpy as np

    from .callerid import CallerId


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


@dataclass(frozen=True)
class CallerIdEvent(Event):
    """A caller ID message heard on the line; `sample` is the onset of its burst.

    Also what a line backend reports when its hardware decoded caller ID itself
    (format "MODEM"). Act on it only if `checksum_ok` and `error` is None.
    """

    format: str = "MDMF"
    number: str | None = None
    name: str | None = None
    datetime: str | None = None
    number_absent: str | None = None
    name_absent: str | None = None
    checksum_ok: bool = False
    error: str | None = None
    modem: str | None = field(default=None, repr=False)
    raw: bytes = field(default=b"", repr=False)
    kind = "callerid"

    @classmethod
    def from_message(cls, sample: int, msg: "CallerId", modem: str | None) -> "CallerIdEvent":
        return cls(sample, msg.format, msg.number, msg.name, msg.datetime, msg.number_absent,
                   msg.name_absent, msg.checksum_ok, msg.error, modem=modem, raw=msg.raw)


class Detector(Protocol):
    """A streaming detector: any frame length in, the same events out.

    Sample stamps count from the `at` of the last reset (0 when built), so a
    detector reset at the line's sample clock reports on that clock.
    """

    def reset(self, at: int = 0) -> None:
        """Forget everything heard; the next sample fed is line sample `at`."""

    def feed(self, frame: "np.ndarray") -> list[Event]:
        """Consume int16 samples; return events completed by them."""

    def flush(self) -> list[Event]:
        """End of stream: return anything still pending."""
