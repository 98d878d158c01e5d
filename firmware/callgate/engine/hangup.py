"""Hang-up detection by every signal a line gives, strongest first.

- CPC: the exchange drops loop current when the far end clears. A drop must
  last `cpc_ms` (default 250): shorter ones are switching blips and ignored.
- Polarity reversal: some exchanges reverse the loop when the far end clears.
- Tones from the exchange: busy, reorder (or the UK's number unobtainable)
  and dial tone mean the caller is gone. Both the engine's own call-progress
  detector and tones the line hardware reports (a modem's DLE b/d) count.
- Silence, last resort for lines that give nothing else: nothing heard and
  nothing sent for `silence_ms` while we wait for the caller.
- A line fault: the caller is lost, the call ends.

During our own hook flash (transfer) loop and polarity changes are ours, and
tones are the transfer's business, so detection is suspended; see `pause`.
"""

from __future__ import annotations

from ..line.base import LineFault, LineTone, LoopCurrent, PolarityReversal

TONE_HANGUPS = {"busy": "busy", "reorder": "reorder", "unobtainable": "reorder", "dial": "dial"}


class HangupDetector:
    """Signals in, the first hang-up signal out ("cpc", "polarity", ... see TONE_HANGUPS)."""

    def __init__(self, rate: int = 8000, cpc_ms: int = 250, silence_ms: int = 30000) -> None:
        ms = rate // 1000
        self.cpc = cpc_ms * ms
        self.silence = silence_ms * ms if silence_ms else 0
        self.reset(0)

    def reset(self, now: int) -> None:
        self._drop: int | None = None
        self._quiet_since: int | None = None
        self.paused = False
        self._held: list = []
        self._found: str | None = None
        self.blips = 0                  # loop drops shorter than cpc_ms

    def pause(self, paused: bool, since: int | None = None) -> None:
        """Suspend (our flash/transfer) or resume detection; timers restart.

        On resuming, loop and polarity events that came while paused at or after
        sample `since` (we were back with the caller) are judged after all: a
        caller who hung up while on hold shows it the moment we flash back.
        """
        held, self._held = self._held, []
        self.paused = paused
        self._drop = None
        self._quiet_since = None
        if not paused and since is not None:
            for ev in held:
                if ev.sample >= since:
                    self._found = self._found or self.line_event(ev)

    def line_event(self, ev) -> str | None:
        if isinstance(ev, LineFault):
            return "fault"
        if self.paused:
            if isinstance(ev, (LoopCurrent, PolarityReversal)) and len(self._held) < 64:
                self._held.append(ev)
            return None
        if isinstance(ev, LoopCurrent):
            if not ev.present:
                if self._drop is None:
                    self._drop = ev.sample
            elif self._drop is not None:
                if ev.sample - self._drop < self.cpc:
                    self.blips += 1
                    self._drop = None
                else:
                    return "cpc"
        elif isinstance(ev, PolarityReversal):
            return "polarity"
        elif isinstance(ev, LineTone):
            return TONE_HANGUPS.get(ev.tone)
        return None

    def tone(self, name: str) -> str | None:
        """A tone recognised by the engine's own call-progress detector."""
        return None if self.paused else TONE_HANGUPS.get(name)

    def poll(self, now: int, quiet: bool, sending: bool) -> str | None:
        """Timers at sample `now`; `quiet`: nothing heard this frame; `sending`: we play."""
        if self.paused:
            return None
        if self._found is not None:
            return self._found
        if self._drop is not None and now - self._drop >= self.cpc:
            return "cpc"
        if not self.silence:
            return None
        if quiet and not sending:
            if self._quiet_since is None:
                self._quiet_since = now
            elif now - self._quiet_since >= self.silence:
                return "silence"
        else:
            self._quiet_since = None
        return None
