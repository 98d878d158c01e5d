"""How the simulated exchange announces a call: ring cadence and on-hook caller ID timing.

Signal timing:

- Bell 202 (GR-30-CORE on-hook type 1): the burst starts 600 ms after the
  first ring ends (>= 500 ms) and must end >= 200 ms before the second.
- ETSI V.23 (EN 300 659-1, "prior to ringing with DT-AS"): polarity
  reversal, 300 ms, DT-AS 2130+2750 Hz for 100 ms, 100 ms, the FSK burst,
  600 ms, the first ring.
- DTMF caller ID (EN 300 659-1 DTMF variants): polarity reversal, 300 ms,
  the digits, 600 ms, the first ring.
- A "ring" is one cadence cycle (the country's [ring] cadence_ms): the UK
  double burst counts once. A caller who is not answered gives up after
  `abandon_after_rings` rings (or MAX_RINGS), in the silence after the last.

`Alerting` is a part of `Exchange` (exchange.py), which owns the call state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import PolarityReversal, RingStart, RingStop
from .mixer import ms
from .signals import CID_DTMF_DBM0, DTAS_MS

if TYPE_CHECKING:
    from .exchange import CallState

MAX_RINGS = 30               # a call nobody answers is given up after this many rings
CID_AFTER_RING_MS = 600      # Bell 202: first ring end -> burst (GR-30: >= 500)
CID_BEFORE_RING_MS = 200     # Bell 202: burst end -> second ring (GR-30: >= 200)
ETSI_ALERT_MS = 300          # polarity reversal -> DT-AS or DTMF digits
DTAS_TO_FSK_MS = 100         # EN 300 659-1: 45..500 ms
CID_TO_RING_MS = 600         # last caller ID signal -> first ring (>= 500)


class Alerting:
    """Rings the line for a call, with its caller ID, until it is answered or abandoned."""

    def _alert(self, call: CallState, t0: int) -> None:
        """Start alerting at t0: ETSI caller ID comes before the first ring."""
        cid = call.spec.callerid
        first_ring = t0
        if cid is not None and cid.kind in ("v23", "dtmf"):
            self._emit(PolarityReversal(t0))
            t = t0 + ms(ETSI_ALERT_MS)
            if cid.kind == "v23":
                self._play(t, self.signals.dtas, "alert")
                end = self._play(t + ms(DTAS_MS + DTAS_TO_FSK_MS),
                                 self.signals.fsk(cid.message(), "v23"), "alert")
            else:
                end = self._play(t, self.signals.dtmf(cid.digits(), 70, 70, CID_DTMF_DBM0),
                                 "alert")
            first_ring = end + ms(CID_TO_RING_MS)
        self._call_at(call, first_ring, self._ring_cycle)

    def _ring_cycle(self, call: CallState) -> None:
        """One ring: its bursts, then the next ring, caller ID or the caller giving up."""
        t = self.now
        call.rings += 1
        call.outcome.rings = call.rings
        offset = 0
        for i, d in enumerate(self.ring):
            if i % 2 == 0:
                self._call_at(call, t + offset, self._ring_burst, True)
                self._call_at(call, t + offset + ms(d), self._ring_burst, False)
            offset += ms(d)
        cid = call.spec.callerid
        if call.rings == 1 and cid is not None and cid.kind == "bell202":
            self._play(t + self._bursts_end + ms(CID_AFTER_RING_MS),
                       self.signals.fsk(cid.message(), "bell202"), "alert")
        limit = call.spec.abandon_after_rings or MAX_RINGS
        if call.rings >= limit:
            last_off = ms(self.ring[-1])
            self._call_at(call, t + self._bursts_end + min(ms(1000), last_off // 2),
                          self._abandon)
        else:
            self._call_at(call, t + self._cycle, self._ring_cycle)

    def _ring_burst(self, call: CallState, on: bool) -> None:
        call.ringing = on
        self._emit(RingStart(self.now) if on else RingStop(self.now))

    def _abandon(self, call: CallState) -> None:
        """The caller gives up before answer."""
        call.outcome.caller_hung_up_at = self.now
        self._end_call(call, self.now)

    def _ring_trip(self, call: CallState, t: int) -> None:
        """Answered: ringing stops at once (mid-burst too) and so does caller ID."""
        if call.ringing:
            call.ringing = False
            self._emit(RingStop(t))
        self._cut(t, ("alert",))
