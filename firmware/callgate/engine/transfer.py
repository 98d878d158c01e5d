"""Hook-flash transfer: flash, recall dial tone, dial, then blind or supervised.

    flash --FlashDone--> recall --dial tone--> dial --digits sent--> blind: settle, hang up
                           | no tone in recall_timeout_ms         supervised: listen
                           v                                        answer  -> "answered"
                       flash back ("no_recall")                     busy    -> flash back
                                                                    reorder -> flash back ("failed")
                                                                    timeout -> flash back ("no_answer")

While a transfer runs the engine ignores keys (the caller is on hold, and
what the receiver would hear is the echo of our own dialling) and gives the
exchange's tones to the transfer instead of the hang-up detector. Answer is
told by a voice (dsp.gates.VoiceGate, in the detector bank) once our dialling and its echo are over.
A blind transfer cannot know whether the extension rang: the exchange
recalls the caller if it did not, as it would for a person.
"""

from __future__ import annotations

import numpy as np

from ..dsp.dtmf import dtmf_tx
from ..call import Transfer

FLASH, RECALL, DIAL, SETTLE, LISTEN, BACK, DONE = (
    "flash", "recall", "dial", "settle", "listen", "back", "done")


class TransferJob:
    """One Transfer in progress. The engine feeds it events and polls it each frame."""

    def __init__(self, spec: Transfer, line, player, rate: int = 8000, flash_ms: int = 600,
                 dial_level_dbm0: float = -7.0, dial_on_ms: int = 80, dial_off_ms: int = 80,
                 settle_ms: int = 500, echo_guard_ms: int = 100) -> None:
        self.spec = spec
        self.line = line
        self.player = player
        self.ms = rate // 1000
        self.flash_ms = flash_ms
        self.dial_audio: np.ndarray = dtmf_tx(spec.extension, dial_level_dbm0, 0.0,
                                              dial_on_ms, dial_off_ms)
        self.settle = settle_ms * self.ms
        self.echo_guard = echo_guard_ms * self.ms
        self.state = ""
        self.outcome: str | None = None
        self.deadline = 0
        self.listen_from = 0
        self.flashes = 0
        self.back_at: int | None = None   # sample we were back with the caller (flash back)

    @property
    def done(self) -> bool:
        return self.state == DONE

    @property
    def listening(self) -> bool:
        """Answer detection wanted on this frame's audio."""
        return self.state == LISTEN

    def begin(self, now: int) -> None:
        self._flash(now)
        self.state = FLASH

    def _flash(self, now: int) -> None:
        self.player.stop()
        self.line.flash(self.flash_ms)
        self.flashes += 1
        self.deadline = now + (self.flash_ms + 2000) * self.ms   # FlashDone must come by then

    def flash_done(self, now: int) -> None:
        if self.state == FLASH:
            self.state = RECALL
            self.deadline = now + self.spec.recall_timeout_ms * self.ms
        elif self.state == BACK:
            self.back_at = now
            self.state = DONE

    def tone(self, name: str, now: int) -> None:
        if self.state == RECALL and name == "dial":
            self.state = DIAL
            self.player.start(self.dial_audio, f"dial {len(self.spec.extension)} digits")
        elif self.state == LISTEN:
            if name == "busy":
                self._fail("busy", now)
            elif name in ("reorder", "unobtainable", "dial"):
                self._fail("failed", now)

    def voice(self, now: int) -> None:
        if self.state == LISTEN and now >= self.listen_from:
            self.outcome = "answered"
            self.state = DONE

    def poll(self, now: int) -> None:
        state = self.state
        if state == FLASH and now >= self.deadline:
            self.flash_done(now)                  # the line never said; carry on
        elif state == RECALL and now >= self.deadline:
            self._fail("no_recall", now)
        elif state == DIAL and self.player.finished:
            self.player.stop()
            if self.spec.mode == "blind":
                self.state, self.deadline = SETTLE, now + self.settle
            else:
                self.state = LISTEN
                self.listen_from = now + self.echo_guard
                self.deadline = now + self.spec.answer_timeout_ms * self.ms
        elif state == SETTLE and now >= self.deadline:
            self.line.on_hook()
            self.outcome = "completed"
            self.state = DONE
        elif state == LISTEN and now >= self.deadline:
            self._fail("no_answer", now)
        elif state == BACK and now >= self.deadline:
            self.back_at = now
            self.state = DONE

    def _fail(self, outcome: str, now: int) -> None:
        """Take the caller back: flash again, report `outcome` once back."""
        self.outcome = outcome
        self._flash(now)
        self.state = BACK
