"""The action runner: the handler's actions carried out in order, its events delivered.

The engine's frame loop (loop.py) listens; this half acts. Per call it keeps
the queue of actions, the one that holds the line now (a prompt, a
collection, a transfer), the work in flight and the keys typed ahead, and it
turns what happens into the handler's events: PromptDone, Digits, WorkDone,
TransferResult.

Record steps (call.Record, call.LineState) hold nothing: they go to the
recorder the moment the handler returns them, never behind a prompt, and the
recorder's `submit` never blocks.

A handler that raises never drops the caller: one log line (the exception's
type and where, never its message, which may hold keyed digits) and the call
goes to the configured fallback extension, or is hung up if there is none.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING

from ..call import (ACTIONS, RECORD_STEPS, Action, Collect, Digits, HandlerEvent, HangUp, Pause,
                    Play, PromptDone, SayDigits, Transfer, TransferInfo, TransferResult, Work)
from ..privacy import where
from .collect import Collector
from .readback import render_digits
from .transfer import TransferJob

if TYPE_CHECKING:
    from .loop import Engine

log = logging.getLogger("callgate.engine")

HOLDING = (Play, Pause, SayDigits)          # actions that play audio until they finish


class ActionRunner:
    """Carries out one call's actions for the engine that owns it."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.reset()

    def reset(self) -> None:
        self.queue: deque[Action] = deque()
        self.current: Action | None = None
        self.collector: Collector | None = None
        self.transfer: TransferJob | None = None
        self.typeahead: deque[tuple[str, int]] = deque(maxlen=32)
        self.swallow: tuple[str, int] | None = None   # (terminator, until sample)
        self.handler_ok = True
        self.agent = False              # supervised transfer answered: we talk to the agent
        self.ending = False

    # ------------------------------------------------------------------ the handler's calls

    def begin(self, call, now: int) -> None:
        """The call was answered: the handler's first actions."""
        e = self.engine
        try:
            self.queue_actions(e.handler.start(call))
        except Exception as err:        # noqa: BLE001 - a broken handler must not drop the call
            self.handler_failed(err, "start", now)
        self.advance(now)

    def deliver(self, event: HandlerEvent) -> None:
        e = self.engine
        if e.call is None:
            return
        event = replace(event, wall=e.wall())
        if not self.handler_ok:
            self._fallback_event(event)
            return
        try:
            self.queue_actions(e.handler.on_event(event))
        except Exception as err:        # noqa: BLE001 - a broken handler must not drop the call
            self.handler_failed(err, event.kind, event.sample)

    def queue_actions(self, actions) -> None:
        """Check the handler's actions; record steps go to the recorder now, the rest
        wait their turn."""
        if actions is None:
            return
        if not isinstance(actions, (list, tuple)):
            raise TypeError("handler must return a list of actions")
        prompts = self.engine.prompts
        for a in actions:
            if not isinstance(a, ACTIONS):
                raise TypeError(f"not an action: {type(a).__name__}")
            if isinstance(a, Play) and isinstance(a.prompt, str) and a.prompt not in prompts:
                raise KeyError("unknown prompt")
            if isinstance(a, SayDigits) and any(
                    name not in prompts for name in (*a.digit_prompts, *filter(None, [a.lead]))):
                raise KeyError("unknown prompt")
        self.engine.record(actions)
        if not self.ending:
            self.queue.extend(a for a in actions if not isinstance(a, RECORD_STEPS))

    # ------------------------------------------------------------------ running the queue

    def advance(self, now: int) -> None:
        """Start queued actions until one holds the line (or the call ends)."""
        e = self.engine
        while e.call is not None and self.current is None:
            if not self.queue:
                if self.agent and not e.work.pending:
                    e.end_call("transferred", now)    # supervised transfer: let go
                return
            action = self.queue.popleft()
            if isinstance(action, HOLDING):
                e.player.start(self._audio(action), action.label, action.barge_in)
                self.current = action
            elif isinstance(action, Collect):
                self._collect(action, now)
            elif isinstance(action, Transfer):
                self._transfer(action, now)
            elif isinstance(action, Work):
                e.work.start(action, now)
            elif isinstance(action, HangUp):
                e.end_call("transferred" if self.agent else "hangup", now)
                return

    def _audio(self, action):
        e = self.engine
        if isinstance(action, Pause):
            return e.silence_of(action.ms)
        if isinstance(action, SayDigits):
            return render_digits(action, e.prompts, e.rate)
        return e.prompts[action.prompt] if isinstance(action.prompt, str) else action.prompt

    def _collect(self, action: Collect, now: int) -> None:
        self.current = action
        self.collector = Collector(action, now, self.engine.rate)
        while self.typeahead and self.collector is not None:
            digit, sample = self.typeahead.popleft()
            if self._swallowed(digit, sample):
                continue
            done = self.collector.key(digit, sample)
            if done is not None:
                self._collected(done)

    def _transfer(self, action: Transfer, now: int) -> None:
        e = self.engine
        self.current = action
        e.call.transfer = TransferInfo(action.extension, action.mode)
        self.typeahead.clear()           # keys meant for an earlier menu
        e.hangup.pause(True)
        cfg = e.cfg
        self.transfer = TransferJob(action, e.line, e.player, e.rate, cfg.flash_ms,
                                    cfg.dial_level_dbm0, cfg.dial_on_ms, cfg.dial_off_ms,
                                    cfg.blind_settle_ms)
        self.transfer.begin(now)

    # ------------------------------------------------------------------ keys

    def key(self, digit: str, sample: int, now: int) -> None:
        e = self.engine
        e.call.keys += 1
        if self._swallowed(digit, sample):
            return
        if isinstance(self.current, Play) and self.current.barge_in and e.player.playing:
            self._barge_in(sample, now)
        if self.collector is not None:
            done = self.collector.key(digit, sample)
            if done is not None:
                self._collected(done)
        else:
            self.typeahead.append((digit, sample))

    def _barge_in(self, onset: int, now: int) -> None:
        """A key during a barge-in prompt: stop it now, drop the prompts queued after it."""
        e = self.engine
        e.player.stop()
        e.call.barge_ins.append((onset, now))
        stopped = [self.current]
        self.current = None
        while self.queue and isinstance(self.queue[0], Play) and self.queue[0].barge_in:
            stopped.append(self.queue.popleft())
        for play in stopped:
            self.deliver(PromptDone(now, play.label, interrupted=True))

    def _swallowed(self, digit: str, sample: int) -> bool:
        """The terminator a caller adds out of habit after an entry that was already
        complete at its maximum length: it belongs to that entry, not to the next one
        (where it would end the entry empty and cost the caller a try)."""
        swallow, self.swallow = self.swallow, None
        return swallow is not None and digit == swallow[0] and sample <= swallow[1]

    def _collected(self, digits: Digits) -> None:
        spec = self.collector.spec if self.collector is not None else None
        if spec is not None and spec.terminator and digits.reason == "max":
            self.swallow = (spec.terminator,
                            digits.sample + spec.inter_timeout_ms * self.engine.rate // 1000)
        self.collector = None
        self.current = None
        self.deliver(digits)

    # ------------------------------------------------------------------ timers

    def timers(self, now: int) -> None:
        e = self.engine
        call = e.call
        # replies first: a prompt that ends in the same frame then finds the handler's next
        # actions queued, instead of the handler filling the gap for one more frame
        for reply in e.work.poll(now):
            self.deliver(reply)
            if e.call is None:
                return
        if isinstance(self.current, HOLDING) and e.player.finished:
            play = self.current
            e.player.stop()
            self.current = None
            self.deliver(PromptDone(now, play.label, interrupted=False))
        if self.collector is not None:
            done = self.collector.poll(now)
            if done is not None:
                self._collected(done)
        if self.transfer is not None:
            self.transfer.poll(now)
            if self.transfer.done:
                self._transfer_done(now)
                if e.call is None:
                    return
        if call.answered_at is not None and now - call.answered_at >= e.cfg.max_call_ms:
            log.warning("call %d: longer than max_call_s, hanging up", call.call_id)
            e.end_call("hangup", now)

    def _transfer_done(self, now: int) -> None:
        e = self.engine
        job, call = self.transfer, e.call
        self.transfer = None
        self.current = None
        outcome = job.outcome or "failed"
        call.transfer.outcome = outcome
        result = TransferResult(now, job.spec.extension, outcome)
        if outcome == "completed":
            self.ending = True           # already on hook: nothing more can be done
            self.deliver(result)
            e.end_call("transferred", now)
            return
        if outcome == "answered":
            self.agent = True
            self.deliver(result)
            return
        # back with the caller
        e.hangup.pause(False, since=job.back_at)
        e.restart_detectors(now)
        self.deliver(result)

    # ------------------------------------------------------------------ a failed handler

    def handler_failed(self, err: Exception, step: str, now: int) -> None:
        e = self.engine
        call = e.call
        call.handler_error = where(err)
        target = e.cfg.fallback_extension
        then = f"transferring to fallback {target}" if target and not self.agent else "hanging up"
        log.error("call %d: handler failed on %s (%s); %s", call.call_id, step,
                  call.handler_error, then)
        self.handler_ok = False
        self.queue.clear()
        if self.transfer is not None:
            return                       # let the transfer finish; its result decides
        if isinstance(self.current, HOLDING):
            e.player.stop()
        self.current = None
        self.collector = None
        if target and not self.agent:
            self.queue.append(Transfer(target, "blind"))
        else:
            self.queue.append(HangUp())

    def _fallback_event(self, event: HandlerEvent) -> None:
        """The handler is out: only what gets the caller somewhere safe."""
        if isinstance(event, TransferResult):
            self.queue.append(HangUp())
        elif not self.queue and self.transfer is None and self.current is None:
            e = self.engine
            target = e.cfg.fallback_extension
            tried = e.call.transfer is not None and e.call.transfer.extension == target
            self.queue.append(Transfer(target, "blind") if target and not tried else HangUp())
