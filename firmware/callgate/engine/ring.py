"""Ringing: debounced ring bursts, counted rings, abandoned calls, caller ID windows.

A ring detector's output is not clean: the ringing voltage chatters at its
edges, a lightning spike or a relay on the line makes a blip, and some
backends (voice modems) report only the start of each burst. So:

- edges closer than `debounce_ms` are chatter: one burst goes on;
- a burst counts once it has lasted `min_burst_ms` (or stopped after at
  least that long): shorter blips are line noise and never start a call;
- bursts whose gap is shorter than half the cadence's longest pause belong
  to one ring (the UK double ring is one ring, and a dropout inside a US
  burst does not make two);
- after `abandon_ms` (8 s) without a ring the caller has given up.

A ring is counted during its burst, so the engine can answer without waiting
for the burst to end. Start-only backends: a RingStart with no RingStop is
counted after `min_burst_ms` like any other burst (the modem already
validated it), and the next RingStart begins a new burst.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dsp import RATE
from ..dsp.tones import TonePlan
from ..line.base import RingStart, RingStop

DEFAULT_CADENCE_MS = (2000, 4000)


def ring_cadence(plan: TonePlan) -> tuple[int, ...]:
    """The ringing cadence of the tone plan's own [ring] table (or the North American one).

    Taken from the plan object itself, never reloaded by name: a plan given as a
    file has a name that is no shipped plan's."""
    return tuple(plan.ring_cadence_ms or ()) or DEFAULT_CADENCE_MS


@dataclass(frozen=True)
class Ring:
    """A counted ring: `number` 1, 2, ... of this call, `sample` its burst onset."""

    sample: int
    number: int


@dataclass(frozen=True)
class Abandoned:
    """No ring for abandon_ms after the last one: the caller gave up (or it was noise)."""

    sample: int
    rings: int


class RingCounter:
    """Ring events in, counted rings and abandonment out, on the line's sample clock."""

    def __init__(self, cadence_ms: tuple[int, ...] = DEFAULT_CADENCE_MS, rate: int = RATE,
                 min_burst_ms: int = 200, debounce_ms: int = 100,
                 abandon_ms: int = 8000) -> None:
        ons, offs = cadence_ms[0::2], cadence_ms[1::2]
        ms = rate // 1000
        # A blip threshold that a real burst of this cadence always passes.
        self.min_burst = int(min(min_burst_ms, 0.5 * min(ons)) * ms)
        self.debounce = debounce_ms * ms
        self.group_gap = int(0.5 * max(offs) * ms)
        self.abandon = abandon_ms * ms
        self.reset()

    def reset(self) -> None:
        self.rings = 0
        self.blips = 0                       # bursts rejected as too short
        self._on: int | None = None          # onset of the burst in progress
        self._off: int | None = None         # RingStop awaiting debounce
        self._counted = False                # the burst in progress has been counted
        self._last_end: int | None = None    # end of the last counted burst
        self._last_seen: int | None = None   # last sign of a real ring
        self._out: list = []

    @property
    def idle(self) -> bool:
        """No ring burst in progress or counted: nothing is ringing in."""
        return not self.rings and self._on is None and self._off is None

    @property
    def ringing(self) -> bool:
        """A call is ringing in: at least one ring counted and not yet given up."""
        return self.rings > 0

    def event(self, ev) -> None:
        if isinstance(ev, RingStart):
            if self._off is not None and ev.sample - self._off < self.debounce:
                self._off = None                      # chatter: the burst goes on
                return
            if self._off is not None:
                self._close(self._off)
            elif self._on is not None:
                # start-only backend: a new burst; the last one's end is unknown
                self._close(min(ev.sample, self._on + self.min_burst))
            self._on, self._counted = ev.sample, False
        elif isinstance(ev, RingStop):
            if self._on is not None and self._off is None:
                self._off = ev.sample

    def poll(self, now: int) -> list:
        """Rings counted and abandonment decided by sample `now`."""
        if self._off is not None and now - self._off >= self.debounce:
            self._close(self._off)
        if self._on is not None and not self._counted:
            end = self._off if self._off is not None else now
            if end - self._on >= self.min_burst:
                self._count()
        if self._counted and self._on is not None:
            self._last_seen = now
        out, self._out = self._out, []
        if (self.rings and self._on is None and self._last_seen is not None
                and now - self._last_seen >= self.abandon):
            out.append(Abandoned(now, self.rings))
            self.reset()
        return out

    def _count(self) -> None:
        """The burst in progress is long enough: a ring, or the rest of one."""
        self._counted = True
        self._last_seen = self._on
        if self._last_end is None or self._on - self._last_end >= self.group_gap:
            self.rings += 1
            self._out.append(Ring(self._on, self.rings))

    def _close(self, end: int) -> None:
        """The burst in progress ended at `end`."""
        if self._on is not None:
            if not self._counted and end - self._on >= self.min_burst:
                self._count()
            if self._counted:
                self._last_end = self._last_seen = end
            else:
                self.blips += 1
        self._on, self._off, self._counted = None, None, False
