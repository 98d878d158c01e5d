"""On-hook caller ID: listened for in its window, attached to the call it belongs to.

Where caller ID comes: Bell 202 (GR-30) between the first and second ring;
ETSI V.23 and DTMF caller ID after a polarity reversal, before the first ring.
So on a line that reports polarity the receivers run only from a reversal or
a ring until the call is answered (or nothing rang for `hold_ms`): an idle line
costs nothing. A line that cannot report polarity is listened to whenever it
is on hook. Caller ID that hardware decoded itself (a modem's NMBR=) arrives
as a CallerIdEvent line event and is taken the same way.

Only a checksum-good message identifies the caller; a garbled one is kept as
an error note, never as a number.
"""

from __future__ import annotations

import logging

import numpy as np

from ..dsp import RATE
from ..dsp.bank import DetectorBank
from ..dsp.events import CallerIdEvent
from ..dsp.fsk import BELL202, V23

log = logging.getLogger("callgate.engine")


class CallerIdCapture:
    """FSK and DTMF caller ID receivers over on-hook audio, stamped on the line's clock."""

    def __init__(self, listen_always: bool, rate: int = RATE, hold_ms: int = 10000) -> None:
        self.listen_always = listen_always
        self.hold = hold_ms * rate // 1000
        self.heard: list[CallerIdEvent] = []
        # every frame straight through (slow_block=0): a message is taken the frame it ends
        self._bank = DetectorBank(dtmf=False, dtmf_callerid=True, fsk=(BELL202, V23),
                                  slow_block=0)
        self._listening = False
        self._fresh = True               # the bank starts afresh at the next frame fed
        self._last_activity: int | None = None
        self.errors = 0                 # receiver faults survived

    @property
    def listening(self) -> bool:
        return self._listening

    @property
    def idle(self) -> bool:
        """Nothing heard and no window open that caller ID may yet come in."""
        return self._last_activity is None and not self.heard

    def open(self, sample: int) -> None:
        """A ring or a polarity reversal: caller ID may follow (or may be in progress)."""
        self._last_activity = sample
        if not self._listening:
            self._listening = True
            self._fresh = True

    def close(self) -> None:
        """Stop listening (answered, or the window passed) and forget what was heard."""
        self._listening = False
        self.heard = []
        self._last_activity = None

    def line_event(self, ev: CallerIdEvent) -> None:
        """Caller ID the hardware decoded itself."""
        self.heard.append(ev)
        self._last_activity = ev.sample

    def feed(self, start: int, samples: np.ndarray) -> None:
        """On-hook audio of one frame starting at line sample `start`."""
        if not self._listening:
            if not self.listen_always:
                return
            self.open(start)
        if self._fresh:
            self._bank.reset(start)
            self._fresh = False
        try:
            got = self._bank.feed(samples, at=start)
        except Exception as err:        # noqa: BLE001 - a receiver fault must not stop the line
            log.warning("caller ID receiver failed (%s); listening afresh", type(err).__name__)
            self.errors += 1
            self._fresh = True
            self.open(start + len(samples))
            return
        if got:
            self.heard += got
            self._last_activity = start + len(samples)

    def expire(self, now: int, ringing: bool) -> None:
        """Close a window that no call came to (kept open while a call rings)."""
        if ringing:
            self._last_activity = now
        elif (self._last_activity is not None and now - self._last_activity >= self.hold):
            if self.listen_always:
                self.heard = []
                self._last_activity = None
            else:
                self.close()

    def best(self) -> tuple[CallerIdEvent | None, str | None]:
        """(the first good message, else None; an error note if only bad ones came)."""
        for ev in self.heard:
            if ev.checksum_ok and ev.error is None and (ev.number or ev.number_absent):
                return ev, None
        for ev in self.heard:
            if ev.checksum_ok and ev.error is None:
                return ev, None
        if self.heard:
            bad = self.heard[-1]
            return None, bad.error or "checksum"
        return None, None

    @property
    def arrived(self) -> bool:
        """Any caller ID message (good or not) has been heard in this window."""
        return bool(self.heard)
