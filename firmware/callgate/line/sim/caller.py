"""The simulated caller: their script once we answer, and how they clear down.

A script runs in order, one step at a time (calls.py has the timing rules):
keys (`Press`), a second call arriving (`CallWaiting`), the caller clearing
(`Clear`). The caller listens to us: our audio going quiet for 300 ms after
sound is a prompt's end, the reference of a "prompt_end" step. A caller on
hold goes on with the script unheard; one who clears while on hold is noticed
when we come back to them.

`Caller` is a part of `Exchange` (exchange.py), which owns the call state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...dsp import RATE
from ...dsp.level import dbm0_to_amplitude, dbm0_to_rms
from ..base import LoopCurrent, PolarityReversal
from .calls import Clear, Press
from .mixer import ms

if TYPE_CHECKING:
    from .exchange import CallState

PROMPT_QUIET_MS = 300        # our audio quiet this long after sound = a prompt ended
SOUND_DBM0 = -45.0           # our audio louder than this is sound (prompt)
SOUND_POWER = dbm0_to_rms(SOUND_DBM0) ** 2
SOUND_AMPLITUDE = dbm0_to_amplitude(SOUND_DBM0)


class Caller:
    """The far end of the call in progress: runs its script, hears our prompts, clears."""

    def _next_step(self, call: CallState, t_prev: int) -> None:
        if call.step >= len(call.spec.script) or not call.caller_present:
            return
        step = call.spec.script[call.step]
        if step.when == "prompt_end":
            call.prompt_since = t_prev
            return
        ref = call.outcome.answered_at if step.when == "answer" else t_prev
        self._call_at(call, max(ref + ms(step.after_ms), self.now), self._run_step)

    def _prompt_ended(self, call: CallState, end: int, noticed: int) -> None:
        if call.prompt_since is None or end < call.prompt_since:
            return
        call.prompt_since = None
        step = call.spec.script[call.step]
        self._call_at(call, max(end + ms(step.after_ms), noticed), self._run_step)

    def _caller_audible(self, call: CallState) -> bool:
        return call.phase == "talking" and self._hook_off and self._onhook_at is None

    def _run_step(self, call: CallState) -> None:
        t = self.now
        step = call.spec.script[call.step]
        call.step += 1
        if isinstance(step, Clear):
            self._caller_hangs_up(call, step, t)
            return
        if isinstance(step, Press):
            audio = self.signals.dtmf(step.digits, step.on_ms, step.off_ms, step.level_dbm0)
        else:
            audio = self.signals.callwaiting(step, call.spec.callerid.datetime
                                             if call.spec.callerid else "11231000")
        if self._caller_audible(call):
            self._play(t, audio, "caller")
        self._call_at(call, t + len(audio), self._step_done)

    def _step_done(self, call: CallState) -> None:
        self._next_step(call, self.now)

    def _hears_us(self, call: CallState, t: int, xf: np.ndarray) -> None:
        """Our audio of [t, t + len) while talking: prompt sound, or the quiet after it."""
        n = xf.size
        if float(xf @ xf) > SOUND_POWER * n:
            loud = np.flatnonzero(np.abs(xf) > SOUND_AMPLITUDE)
            call.sound_end = t + (int(loud[-1]) + 1 if loud.size else n)
            call.had_sound = True
            call.outcome.prompt_audio_ms += round(n * 1000 / RATE)
        elif call.had_sound and t + n - call.sound_end >= ms(PROMPT_QUIET_MS):
            call.had_sound = False
            self._prompt_ended(call, call.sound_end, t + n)

    # ------------------------------------------------------------- clearing down

    def _caller_hangs_up(self, call: CallState, step: Clear, t: int) -> None:
        call.outcome.caller_hung_up_at = t
        call.caller_present = False
        call.prompt_since = None
        if self._caller_audible(call):
            self._caller_clears(call, step, t)
        else:
            call.clear_pending = step           # noticed when we come back to the caller

    def _caller_clears(self, call: CallState, step: Clear, t: int) -> None:
        """What the line shows us when the caller has gone."""
        call.phase = "caller_gone"
        call.clear_pending = None
        self._cut(t, ("caller", "agent"))
        self._stop_loop(t)
        if step.how == "cpc":
            self._emit(LoopCurrent(t, present=False))
            self._call_at(call, t + ms(step.drop_ms), self._loop_restored, step)
        elif step.how == "polarity":
            self._emit(PolarityReversal(t))
        elif step.how != "silence":
            self._play_loop(t, step.how, "caller")

    def _loop_restored(self, call: CallState, step: Clear) -> None:
        if self._hook_off and self._onhook_at is None:
            self._emit(LoopCurrent(self.now, present=True))
            if step.tone_after:
                self._play_loop(self.now, step.tone_after, "caller")
