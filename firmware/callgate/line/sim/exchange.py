"""The simulated exchange behind the `sim` line: a central office and far end on the sample clock.

One `Exchange` serves one line. It works through a list of `SimCall`s: for
each it alerts the line (alerting.py: ring bursts with the country's cadence
and on-hook caller ID in the right window), connects the caller when we go
off hook and runs their script (caller.py: keys, call waiting, clearing
down), and on a hook flash puts the caller on hold, gives recall dial tone,
decodes the digits we dial and rings the agent's extension (pbx.py). All of
it happens at sample times on one clock, mixed into the frames we hear
(mixer.py), with the echo of what we send.

This module keeps what ties the parts together: the call in progress, the
line's hook as the exchange sees it, and what we send.

- Hook: on hook for FLASH_MIN..FLASH_MAX ms is a flash, shorter is ignored,
  longer clears the call (released at the moment we went on hook).
- Off hook with no call to answer, the exchange gives dial tone.
- After the last call, once idle on hook for IDLE_END_MS, the line ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...dsp.dtmf import DtmfReceiver
from ...dsp.tones import TonePlan
from ..base import FlashDone
from .alerting import Alerting
from .caller import Caller
from .calls import Clear, SimCall, SimOutcome
from .mixer import Mixer, Source, Timer, ms
from .pbx import Pbx
from .signals import Signals

FLASH_MIN_MS = 100
FLASH_MAX_MS = 1000
IDLE_END_MS = 2000           # idle on hook after the last call -> the line ends


@dataclass
class CallState:
    """The exchange's bookkeeping for the call in progress."""

    spec: SimCall
    outcome: SimOutcome
    phase: str = "waiting"       # waiting, alerting, talking, held, caller_gone, over
    rings: int = 0
    ringing: bool = False        # a ring burst is on
    timers: list | None = None
    step: int = 0
    prompt_since: int | None = None  # waiting for a prompt end after this sample
    had_sound: bool = False
    sound_end: int = 0
    caller_present: bool = True
    clear_pending: Clear | None = None   # cleared while on hold: shown when we come back
    leg: str | None = None       # held: recall, ringback, agent, busy, reorder
    digits: str = ""
    ext: str | None = None
    leg_timer: Timer | None = None
    dtmf: DtmfReceiver | None = None
    dtmf_base: int = 0
    dtmf_pos: int = 0
    agent_heard: list | None = None  # our audio to the agent once they answered
    agent_samples: int = 0


class Exchange(Alerting, Caller, Pbx, Mixer):
    """The central office and far end of one simulated line. See the module docstring."""

    def __init__(self, calls: list[SimCall], plan: TonePlan, country: str,
                 echo_gain: float | None, noise_rms: float | None, seed: int) -> None:
        super().__init__(np.random.default_rng(seed), noise_rms)
        self.plan = plan
        self.ring = plan.ring_cadence_ms
        self.signals = Signals(plan, country, self.rng)
        self.echo_gain = echo_gain
        self.calls = calls
        self.outcomes = [SimOutcome() for _ in calls]
        self._hook_off = False
        self._onhook_at: int | None = None
        self._onhook_timer: Timer | None = None
        self._flash_timer: Timer | None = None
        self._seized = False                         # off hook with no call: dial tone
        self._call: CallState | None = None
        self._next = 0                               # index of the next call to start
        self._idle_since = 0
        self._cycle = ms(sum(self.ring))
        self._bursts_end = ms(sum(self.ring[:-1]))
        self._schedule_next_call(0)

    def _call_at(self, call: CallState, t: int, fn, *args) -> Timer:
        """A timer that dies with the call."""
        timer = self.at(t, fn, call, *args)
        call.timers.append(timer)
        return timer

    def finished(self, now: int) -> bool:
        """Every call is over and the line has been idle on hook long enough."""
        return (self._call is None and self._next >= len(self.calls) and not self._hook_off
                and now >= self._idle_since + ms(IDLE_END_MS))

    def _audible(self, leg: str) -> bool:
        """On hook we hear only the on-hook signals (caller ID); nothing else is sent."""
        return leg == "alert" or (self._hook_off and self._onhook_at is None)

    # ------------------------------------------------------------- calls

    def _schedule_next_call(self, t: int) -> None:
        self._idle_since = t
        if self._next < len(self.calls):
            self.at(t + ms(self.calls[self._next].gap_ms), self._start_call)

    def _start_call(self) -> None:
        if self._hook_off or self._call is not None:
            self.at(self.now + ms(500), self._start_call)   # line in use: the caller retries
            return
        index = self._next
        self._next += 1
        call = CallState(self.calls[index], self.outcomes[index], timers=[])
        self._call = call
        call.phase = "alerting"
        self._alert(call, self.now)

    def _answer(self, call: CallState, t: int) -> None:
        for timer in call.timers:
            timer.cancel()
        call.timers = []
        self._ring_trip(call, t)
        call.phase = "talking"
        call.outcome.answered_at = t
        call.step = 0
        self._next_step(call, t)

    def _end_call(self, call: CallState, t: int) -> None:
        for timer in call.timers:
            timer.cancel()
        call.timers = []
        call.phase = "over"
        if call.agent_heard:
            call.outcome.agent_audio = np.concatenate(call.agent_heard)
        self._cut(t, ("alert", "caller", "agent"))
        self._stop_loop(t)
        self._call = None
        self._schedule_next_call(t)

    # ------------------------------------------------------------- hook

    def hook(self, t: int, off: bool) -> None:
        """We went off hook (answer, seize, end of a flash) or on hook at t."""
        if off == self._hook_off:
            return
        self.now = t
        self._hook_off = off
        if off:
            self._went_off(t)
        else:
            self._went_on(t)

    def flash(self, t: int, length: int) -> None:
        """On hook for `length` samples from t, then off hook and FlashDone."""
        self.hook(t, False)
        self._flash_timer = self.at(t + length, self._flash_back)

    def _flash_back(self) -> None:
        self._flash_timer = None
        self.hook(self.now, True)
        self._emit(FlashDone(self.now))

    def cancel_flash(self) -> None:
        """on_hook() during a flash: we stay on hook."""
        if self._flash_timer is not None:
            self._flash_timer.cancel()
            self._flash_timer = None

    @property
    def flashing(self) -> bool:
        return self._flash_timer is not None

    def _went_on(self, t: int) -> None:
        call = self._call
        self._cut(t, ("caller", "agent", "idle", "echo"))
        if call is not None and call.phase in ("talking", "held"):
            if call.dtmf is not None:
                self._flush_dialled(call, t)
            self._onhook_at = t
            self._onhook_timer = self.at(t + ms(FLASH_MAX_MS) + 1, self._cleared, call, t)
            call.had_sound = False
        elif call is not None and call.phase == "caller_gone":
            self._release(call, t)
        else:
            self._seized = False
            self._stop_loop(t)
            self._idle_since = max(self._idle_since, t)

    def _cleared(self, call: CallState, t_on: int) -> None:
        """On hook longer than a flash: the call is released."""
        if self._onhook_at == t_on and not self._hook_off:
            self._onhook_at = None
            self._release(call, t_on)

    def _release(self, call: CallState, t_on: int) -> None:
        self._complete_transfer(call)
        call.outcome.released_at = t_on
        self._end_call(call, self.now)
        self._idle_since = max(self.now, t_on)

    def _went_off(self, t: int) -> None:
        call = self._call
        if self._onhook_at is not None:
            t_on = self._onhook_at
            self._onhook_at = None
            self._onhook_timer.cancel()
            if call is None:
                self._seize(t)
            elif t - t_on < ms(FLASH_MIN_MS):
                self._back_to(call, t)
            else:
                call.outcome.flashes += 1
                self._flashed(call, t)
            return
        if call is not None and call.phase == "alerting":
            self._answer(call, t)
        else:
            self._seize(t)

    def _seize(self, t: int) -> None:
        """Off hook with no call to answer: the exchange offers dial tone."""
        self._seized = True
        self._play_loop(t, "dial", "idle")

    def _back_to(self, call: CallState, t: int) -> None:
        """Off hook again after a glitch (or an ignored flash): nothing changed."""
        if call.phase == "talking" and call.clear_pending is not None:
            self._caller_clears(call, call.clear_pending, t)
        else:
            self._resume_loop(t)

    # ------------------------------------------------------------- what we send

    def transmit(self, t: int, x: np.ndarray, echo_at: int) -> None:
        """Our audio covering [t, t + len(x)) while off hook: echo, prompt ends, dialled digits.

        Its echo is heard from `echo_at` (the next frame read).
        """
        if not self._hook_off or self._onhook_at is not None or self.flashing:
            return
        xf = x.astype(np.float32)
        if self.echo_gain:
            self._sources.append(Source(echo_at, xf * np.float32(self.echo_gain), "echo"))
        call = self._call
        if call is None:
            return
        if call.phase == "talking":
            self._hears_us(call, t, xf)
        elif call.phase == "held" and call.dtmf is not None:
            self._dialled(call, t, x, xf)
