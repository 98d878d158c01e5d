"""The exchange's transfer side: hook flash, recall dial tone, the extension we dial, the agent.

A flash while talking puts the caller on hold and gives recall dial tone
(unless the call has no flash service: `recall_dial_tone` false); the digits
we send are decoded with the signal core's DTMF receiver, as a PBX would. A
complete extension rings the agent (ringback, then their "hello") or gives
busy; an unknown or incomplete one gives reorder. Going on hook while the
agent's leg rings or talks completes the transfer; a second flash drops the
agent's leg and brings the caller back. What we send to an agent who has
answered (the whisper) is kept in the call's outcome for tests.

`Pbx` is a part of `Exchange` (exchange.py), which owns the call state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ...dsp import RATE
from ...dsp.dtmf import DtmfReceiver
from .caller import SOUND_POWER
from .mixer import ms

if TYPE_CHECKING:
    from .exchange import CallState

RECALL_DELAY_MS = 100        # flash done -> recall dial tone
FIRST_DIGIT_MS = 10000       # recall dial tone without a digit -> reorder
INTER_DIGIT_MS = 4000        # an incomplete extension -> reorder
AGENT_AUDIO_MAX_S = 60       # what the agent hears from us is kept up to this long


class Pbx:
    """The flash service of the call in progress: hold, dial, ring the agent, hand over."""

    def _flashed(self, call: CallState, t: int) -> None:
        if call.phase == "talking":
            if call.clear_pending is not None or not call.spec.recall_dial_tone:
                self._back_to(call, t)      # no flash service: still the caller
                return
            call.phase = "held"
            call.leg = "recall"
            call.digits, call.ext = "", None
            call.dtmf = DtmfReceiver()
            call.dtmf_base = call.dtmf_pos = t
            self._play_loop(t + ms(RECALL_DELAY_MS), "dial", "agent")
            self._set_leg_timer(call, t + ms(FIRST_DIGIT_MS), self._digits_timeout)
        elif call.phase == "held":
            # Flash again: the agent leg is dropped and we are back with the caller.
            self._cancel_leg_timer(call)
            self._cut(t, ("agent",))
            self._stop_loop(t)
            call.phase, call.leg, call.dtmf = "talking", None, None
            if call.clear_pending is not None:
                self._caller_clears(call, call.clear_pending, t)
        else:
            self._resume_loop(t)

    def _complete_transfer(self, call: CallState) -> None:
        """We hung up while holding the caller: a dialled or ringing agent takes the call."""
        if call.phase == "held" and call.caller_present:
            if call.leg == "recall" and call.ext is None and call.digits in call.spec.agents:
                self._route(call, call.digits)
            if call.ext is not None and call.leg in ("ringback", "agent"):
                call.outcome.transferred_to = call.ext

    # ------------------------------------------------------------- the digits we dial

    def _dialled(self, call: CallState, t: int, x: np.ndarray, xf: np.ndarray) -> None:
        """Our audio on the held call's leg: the agent hears it, the DTMF receiver decodes it."""
        if call.leg == "agent":
            self._agent_hears(call, x, xf)
        if t > call.dtmf_pos:               # a gap in what we sent: silence
            call.dtmf.feed(np.zeros(t - call.dtmf_pos, np.int16))
        elif t < call.dtmf_pos:             # overlaps what was fed already
            x = x[call.dtmf_pos - t:]
            t = call.dtmf_pos
        call.dtmf_pos = t + x.size
        for ev in call.dtmf.feed(x):
            self.at(call.dtmf_base + ev.sample, self._digit, call, ev.digit)

    def _flush_dialled(self, call: CallState, t: int) -> None:
        """On hook at t: the last digit we sent before it still counts; decoding starts over."""
        for ev in call.dtmf.flush():
            self.at(call.dtmf_base + ev.sample, self._digit, call, ev.digit)
        call.dtmf = DtmfReceiver()
        call.dtmf_base = call.dtmf_pos = t

    def _set_leg_timer(self, call: CallState, t: int, fn: Callable) -> None:
        self._cancel_leg_timer(call)
        call.leg_timer = self._call_at(call, t, fn)

    def _cancel_leg_timer(self, call: CallState) -> None:
        if call.leg_timer is not None:
            call.leg_timer.cancel()
            call.leg_timer = None

    def _digit(self, call: CallState, digit: str) -> None:
        if call.phase != "held" or call.leg != "recall" or call.ext is not None:
            return
        if not call.digits:
            self._stop_loop(self.now)           # dial tone stops at the first digit
        call.digits += digit
        call.outcome.heard_digits += digit
        exts = call.spec.agents
        longer = [e for e in exts if e != call.digits and e.startswith(call.digits)]
        if call.digits in exts and not longer:
            self._route(call, call.digits)
        elif not longer and call.digits not in exts:
            self._unobtainable(call)
        else:
            self._set_leg_timer(call, self.now + ms(INTER_DIGIT_MS), self._digits_timeout)

    def _digits_timeout(self, call: CallState) -> None:
        if call.digits in call.spec.agents:
            self._route(call, call.digits)
        else:
            self._unobtainable(call)

    def _unobtainable(self, call: CallState) -> None:
        self._cancel_leg_timer(call)
        call.leg = "reorder"
        # Plans whose congestion tone sounds like busy (au, fr) list no reorder.
        tone = "reorder" if "reorder" in self.plan.names else "busy"
        self._play_loop(self.now, tone, "agent")

    # ------------------------------------------------------------- the agent's leg

    def _route(self, call: CallState, ext: str) -> None:
        self._cancel_leg_timer(call)
        call.ext = ext
        agent = call.spec.agents[ext]
        if agent.busy:
            call.leg = "busy"
            self._play_loop(self.now, "busy", "agent")
            return
        call.leg = "ringback"
        n = agent.answer_after_rings
        if n == 0:
            self._agent_answers(call)
            return
        self._play_loop(self.now, "ringback", "agent")
        if n is not None:
            cadence = self.plan.tone("ringback").cadence_ms
            cycle = ms(sum(cadence))
            bursts = ms(sum(cadence[:-1]))
            delay = (n - 1) * cycle + bursts + min(ms(500), ms(cadence[-1]) // 2)
            self._set_leg_timer(call, self.now + delay, self._agent_answers)

    def _agent_answers(self, call: CallState) -> None:
        call.leg_timer = None
        call.leg = "agent"
        call.agent_heard = []
        self._stop_loop(self.now)
        self._play(self.now + ms(300), self.signals.hello, "agent")

    def _agent_hears(self, call: CallState, x: np.ndarray, xf: np.ndarray) -> None:
        """The agent's ear: our audio once they answered (the whisper), kept for tests."""
        n = x.size
        if float(xf @ xf) > SOUND_POWER * n:
            call.outcome.agent_heard_ms += round(n * 1000 / RATE)
        if call.agent_samples < AGENT_AUDIO_MAX_S * RATE:
            call.agent_heard.append(x.astype(np.int16, copy=True))
            call.agent_samples += n
