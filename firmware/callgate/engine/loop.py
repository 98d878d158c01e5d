"""The engine: one loop that owns one line and runs its calls.

Per frame: read from the line; on hook, count rings and listen for caller ID;
off hook, run the detectors (DTMF keys, call-progress tones, the call-waiting
alert) and the hang-up signals; hand what happened to the call handler;
carry out its actions; write exactly one frame (prompt, dialled digits or
silence). Nothing here looks at a wall clock: every timer is a count of the
line's samples, so a simulated call is deterministic and runs as fast as the
CPU allows, and a paced hardware line runs at its own rate.

Whatever happens in a call — the caller hangs up at any moment, the line
fails, the handler raises — the call ends with the line on hook, the handler
told (`end`), and the engine ready for the next ring. A handler that raises
never drops the caller: the engine logs one line (the exception's type and
where, never its message, which may hold keyed digits) and sends the call to
the configured fallback extension, or hangs up if there is none.

Optional handler hooks, called only if the handler has them (a handler
without them needs nothing): `use_prompts(prompts)` once the prompt set is
loaded, `ringing(call)` at the first ring of a call, `line_up(line)` when the
engine starts on the line and when a failed line works again,
`line_down(line, reason)` on a line fault. They feed the live line status;
a hook that raises costs one log line, never the call.
"""

from __future__ import annotations

import logging
import traceback
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import ConfigError, Table
from ..dsp.callerid import CallerIdEvent, CallerIdReceiver
from ..dsp.dtmf import DtmfReceiver
from ..dsp.level import dbm0_to_rms
from ..dsp.tones import CallProgressDetector
from ..toneplans import load_toneplan
from ..line.base import (FlashDone, Line, LineFault, LineRestored, LineTone, PolarityReversal,
                         RingStart, RingStop)
from .actions import (Action, CallerHungUp, CallInfo, Collect, Digits, HandlerEvent, HangUp,
                      Play, PromptDone, Transfer, TransferInfo, TransferResult, Work)
from .callerid import CallerIdCapture
from .collect import Collector
from .hangup import HangupDetector
from .player import Player
from .progress import CasGate, VoiceGate
from .prompts import PromptSet
from .ring import Abandoned, Ring, RingCounter, ring_cadence
from .transfer import TransferJob
from .work import WorkRunner

log = logging.getLogger("callgate.engine")

IDLE, RINGING, CALL = "idle", "ringing", "call"


@dataclass
class EngineConfig:
    """The [engine] table. Times in ms on the line's sample clock."""

    rings: int | None = None          # answer on this ring; None ("auto"): once caller ID came
    cpc_ms: int = 250                 # loop current drop that means the caller hung up
    silence_ms: int = 30000           # silence (both ways) that ends a call; 0: never
    abandon_ms: int = 8000            # no ring for this long: the caller gave up
    min_ring_ms: int = 200            # shorter ring bursts are noise
    flash_ms: int = 600               # hook flash length for transfers
    blind_settle_ms: int = 500        # after dialling, before hanging up (blind transfer)
    dial_level_dbm0: float = -7.0
    dial_on_ms: int = 80
    dial_off_ms: int = 80
    language: str = "en"
    prompts: str | None = None        # folder holding <language>/<name>.wav
    fallback_extension: str | None = None
    toneplan: str | None = None       # default: the line's country, else "us"
    max_call_ms: int = 3_600_000

    @classmethod
    def from_table(cls, t: Table) -> "EngineConfig":
        """Read and check [engine]; ConfigError names the bad key."""
        rings = t.get("rings", (str, int), "auto")
        if isinstance(rings, str):
            if rings != "auto":
                raise ConfigError(f"{t.key('rings')}: expected \"auto\" or a number of rings, "
                                  f"got {rings!r}")
            rings = None
        elif not 1 <= rings <= 15:
            raise ConfigError(f"{t.key('rings')}: {rings} is outside 1..15")

        def ms(name: str, default: int, low: int, high: int) -> int:
            value = t.get(name, int, default)
            if not low <= value <= high:
                raise ConfigError(f"{t.key(name)}: {value} is outside {low}..{high}")
            return value

        fallback = t.get("fallback_extension", str, "") or None
        if fallback and any(c not in "0123456789*#" for c in fallback):
            raise ConfigError(f"{t.key('fallback_extension')}: {fallback!r} is not DTMF digits")
        toneplan = t.get("toneplan", str, "") or None
        if toneplan:
            try:
                load_toneplan(toneplan)
            except (ValueError, OSError) as err:
                raise ConfigError(f"{t.key('toneplan')}: {err}") from None
        cfg = cls(
            rings=rings,
            cpc_ms=ms("cpc_ms", 250, 20, 5000),
            silence_ms=ms("silence_ms", 30000, 0, 600_000),
            abandon_ms=ms("abandon_ms", 8000, 1000, 60_000),
            min_ring_ms=ms("min_ring_ms", 200, 20, 2000),
            flash_ms=ms("flash_ms", 600, 50, 2000),
            blind_settle_ms=ms("blind_settle_ms", 500, 0, 10_000),
            dial_level_dbm0=t.number("dial_level_dbm0", -7.0, -30.0, -3.0),
            dial_on_ms=ms("dial_on_ms", 80, 40, 500),
            dial_off_ms=ms("dial_off_ms", 80, 40, 500),
            language=t.get("language", str, "en"),
            prompts=t.get("prompts", str, "") or None,
            fallback_extension=fallback,
            toneplan=toneplan,
            max_call_ms=ms("max_call_s", 3600, 10, 86_400) * 1000,
        )
        t.sub("script")     # read by the scripted handler
        unknown = t.unknown()
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key")
        return cfg


def _where(err: BaseException) -> str:
    """`Type at file:line` of the innermost frame: no message (it may hold keyed digits)."""
    tb = traceback.extract_tb(err.__traceback__)
    if tb:
        last = tb[-1]
        return f"{type(err).__name__} at {Path(last.filename).name}:{last.lineno}"
    return type(err).__name__


class Engine:
    """Runs calls on one line with one handler. `run()` until the line ends."""

    def __init__(self, line: Line, handler, config: EngineConfig | None = None,
                 prompts: PromptSet | None = None, name: str = "line",
                 on_call: Callable[[CallInfo], None] | None = None,
                 watchdog: Callable[[], None] | None = None) -> None:
        self.cfg = cfg = config or EngineConfig()
        self.line = line
        self.handler = handler
        self.name = name
        self.on_call = on_call
        self.watchdog = watchdog
        self.rate = line.rate
        self.ms = self.rate // 1000
        self.plan = load_toneplan(cfg.toneplan or getattr(line, "country", None) or "us")
        need = tuple(getattr(handler, "prompts_needed", ()))
        if prompts is None:
            try:
                prompts = PromptSet(cfg.language, cfg.prompts, require=need)
            except ConfigError as err:
                key = "engine.prompts" if cfg.prompts else "engine.language"
                raise ConfigError(f"{key}: {str(err).removeprefix('prompts: ')}") from None
        self.prompts = prompts
        missing = [p for p in need if p not in self.prompts]
        if missing:
            raise ConfigError(f"prompts: {self.prompts.folder} has no {missing[0]}.wav")
        self._tell("use_prompts", self.prompts)
        caps = line.capabilities
        self.caps = caps
        self.rings = RingCounter(ring_cadence(self.plan), self.rate, cfg.min_ring_ms,
                                 abandon_ms=cfg.abandon_ms)
        self.cid = CallerIdCapture(listen_always=caps.onhook_audio and not caps.polarity,
                                   rate=self.rate)
        self.player = Player(line.frame_samples)
        self.work = WorkRunner(caps.paced, self.rate)
        self.hangup = HangupDetector(self.rate, cfg.cpc_ms, cfg.silence_ms)
        self.voice = VoiceGate(self.plan, self.rate)
        self.cas = CasGate(self.rate)
        # off-hook detectors, reused call after call (flush() restarts them at sample 0)
        self.dtmf = DtmfReceiver()
        self.cpd = CallProgressDetector(self.plan)
        self.cw_rx = CallerIdReceiver()
        self._cw_fed = 0
        self._cw_until = -1
        self._cw_offset = 0
        self._origin = 0                 # line sample of the off-hook detectors' sample 0
        self._quiet = dbm0_to_rms(-45.0) ** 2
        self.state = IDLE
        self.call: CallInfo | None = None
        self.calls = 0
        self.finished: deque[CallInfo] = deque(maxlen=100)
        self.frames = 0
        self.faults = 0                  # engine faults survived (see _engine_failed)
        self._reset_call_state()
        self._silence = np.zeros(line.frame_samples, dtype=np.int16)

    # ------------------------------------------------------------------ running

    def run(self, max_calls: int | None = None) -> int:
        """Run until the line ends (or `max_calls` calls are over); the number of calls."""
        self.line.listen_callerid(True)
        self._tell("line_up", self.name)
        try:
            while self.step():
                if max_calls is not None and self.calls >= max_calls and self.call is None:
                    break
        finally:
            self.work.close()
        return self.calls

    def step(self) -> bool:
        """One frame: read, listen, decide, write. False once the line has ended."""
        frame = self.line.read()
        if frame is None:
            if self.call is not None:
                self._end_call("line_ended", self.line.sample)
            return False
        self.frames += 1
        if self.watchdog is not None and self.frames % 50 == 0:
            self.watchdog()
        try:
            out = self._in_call(frame) if self.state == CALL else self._on_hook(frame)
        except Exception as err:        # noqa: BLE001 - last resort: never leave the line stuck
            out = self._silence
            self._engine_failed(err, frame.end)
        self.line.write(out)
        return True

    def _engine_failed(self, err: Exception, now: int) -> None:
        """A fault in the engine itself: end the call with the line on hook, carry on."""
        log.error("%s: engine fault (%s); call ended, line on hook", self.name, _where(err))
        self.faults += 1
        call = self.call
        if call is not None:
            call.handler_error = call.handler_error or f"engine: {_where(err)}"
            try:
                self._end_call("error", now)
            except Exception:           # noqa: BLE001
                self.call = None
        if self.line.is_off_hook:
            self.line.on_hook()
        self._reset_call_state()
        self.state = IDLE
        self.rings.reset()
        self.cid.close()

    # ------------------------------------------------------------------ on hook

    def _on_hook(self, frame) -> np.ndarray:
        now = frame.end
        for ev in frame.events:
            if isinstance(ev, (RingStart, RingStop)):
                self.rings.event(ev)
                if isinstance(ev, RingStart):
                    self.cid.open(ev.sample)
            elif isinstance(ev, PolarityReversal):
                self.cid.open(ev.sample)
            elif isinstance(ev, CallerIdEvent):
                self.cid.line_event(ev)
            elif isinstance(ev, (LineFault, LineRestored)):
                self._line_health(ev)
        if self.caps.onhook_audio:
            self.cid.feed(frame.start, frame.samples)
        for got in self.rings.poll(now):
            if isinstance(got, Ring):
                if self.call is None:
                    self.calls += 1
                    self.call = CallInfo(self.calls, self.name, got.sample)
                    self.state = RINGING
                    self._tell("ringing", self.call)
                self.call.rings = got.number
                if self._answer_now(got):
                    self._answer(now)
                    return self._silence
            elif isinstance(got, Abandoned) and self.call is not None:
                self.call.callerid, self.call.callerid_error = self.cid.best()
                self._end_call("abandoned", now)
        self.cid.expire(now, self.rings.ringing)
        return self._silence

    def _answer_now(self, ring: Ring) -> bool:
        if self.cfg.rings is not None:
            return ring.number >= self.cfg.rings
        heard = self.cid.heard
        if heard and heard[0].sample < ring.sample:
            return True                  # caller ID came before this ring began
        return ring.number >= 2          # no caller ID on this line (or not yet): 2 rings

    def _answer(self, now: int) -> None:
        call = self.call
        self.line.off_hook()
        self.line.listen_callerid(False)
        call.answered_at = now
        call.callerid, call.callerid_error = self.cid.best()
        self.cid.close()
        self.rings.reset()
        self.state = CALL
        self._restart_detectors(now)
        self.hangup.reset(now)
        self._reset_call_state()
        try:
            self._queue(self.handler.start(call), now)
        except Exception as err:        # noqa: BLE001 - a broken handler must not drop the call
            self._handler_failed(err, "start", now)
        self._advance(now)

    def _restart_detectors(self, now: int) -> None:
        self.dtmf.flush()
        self.cpd.flush()
        self._origin = now
        self.voice.reset()

    def _reset_call_state(self) -> None:
        self.queue: deque[Action] = deque()
        self.current: Action | None = None
        self.collector: Collector | None = None
        self.transfer: TransferJob | None = None
        self.typeahead: deque[tuple[str, int]] = deque(maxlen=32)
        self.swallow: tuple[str, int] | None = None   # (terminator, until sample)
        self.handler_ok = True
        self.agent = False              # supervised transfer answered: we talk to the agent
        self._ending = False

    # ------------------------------------------------------------------ in a call

    def _in_call(self, frame) -> np.ndarray:
        now = frame.end
        call = self.call
        x = frame.samples
        xf = x.astype(np.float32)
        energy = float(xf @ xf)
        job = self.transfer
        hang: str | None = None
        for ev in frame.events:
            if isinstance(ev, FlashDone):
                if job is not None:
                    job.flash_done(ev.sample)
            elif isinstance(ev, CallerIdEvent):
                call.callwaiting.append(ev)
            elif isinstance(ev, (RingStart, RingStop)):
                continue                 # off hook: never a new call
            elif isinstance(ev, LineTone) and job is not None:
                job.tone(ev.tone, now)
            else:
                if isinstance(ev, (LineFault, LineRestored)):
                    self._line_health(ev)
                hang = hang or self.hangup.line_event(ev)
        digits, tones = self._detect(frame, xf, energy)
        if job is not None:
            for t in tones:
                job.tone(t.tone, now)
            if job.listening and self.voice.feed(xf, energy):
                job.voice(now)
            digits = ()                  # the caller is on hold; we hear our own dialling
        elif self.agent:
            digits = ()
        else:
            for t in tones:
                hang = hang or self.hangup.tone(t.tone)
        if hang is None:
            quiet = energy < self._quiet * len(x)
            hang = self.hangup.poll(now, quiet, self.player.playing)
        if hang is not None:
            self._caller_hung_up(hang, now)
            return self._silence
        for d in digits:
            self._key(d.digit, self._origin + d.sample, now)
            if self.call is None:
                return self._silence
        self._timers(now)
        if self.call is None:
            return self._silence
        self._advance(now)
        if self.call is None:
            return self._silence
        return self.player.next_frame(len(x), now)

    def _detect(self, frame, xf: np.ndarray, energy: float):
        """The off-hook detectors on one frame. A detector that fails is replaced by a
        fresh one (one log line); the call goes on."""
        x = frame.samples
        try:
            digits = self.dtmf.feed(x)
        except Exception as err:        # noqa: BLE001
            log.error("%s: DTMF receiver failed (%s); restarted", self.name, type(err).__name__)
            self.dtmf, self._origin, digits = DtmfReceiver(), frame.end, []
        try:
            tones = self.cpd.feed(x)
        except Exception as err:        # noqa: BLE001
            log.error("%s: tone detector failed (%s); restarted", self.name, type(err).__name__)
            self.cpd, tones = CallProgressDetector(self.plan), []
        try:
            self._listen_callwaiting(frame.start, x, xf, energy)
        except Exception as err:        # noqa: BLE001
            log.error("%s: call-waiting receiver failed (%s); restarted", self.name,
                      type(err).__name__)
            self.cw_rx, self._cw_fed, self._cw_until = CallerIdReceiver(), 0, -1
        return digits, tones

    def _listen_callwaiting(self, start: int, x: np.ndarray, xf: np.ndarray,
                            energy: float) -> None:
        """Off-hook (type 2) caller ID: run the FSK receiver for a while after the alert."""
        if self.cas.feed(xf, energy) and self._cw_until < start:
            self._cw_offset = start - self._cw_fed
            self._cw_until = start + 3 * self.rate
        if start <= self._cw_until:
            for ev in self.cw_rx.feed(x):
                if ev.checksum_ok and ev.error is None:
                    self.call.callwaiting.append(replace(ev, sample=ev.sample + self._cw_offset))
            self._cw_fed += len(x)

    def _key(self, digit: str, sample: int, now: int) -> None:
        self.call.keys += 1
        if self._swallowed(digit, sample):
            return
        if (isinstance(self.current, Play) and self.current.barge_in
                and self.player.playing):
            self._barge_in(sample, now)
        if self.collector is not None:
            done = self.collector.key(digit, sample)
            if done is not None:
                self._collected(done)
        else:
            self.typeahead.append((digit, sample))

    def _barge_in(self, onset: int, now: int) -> None:
        """A key during a barge-in prompt: stop it now, drop the prompts queued after it."""
        self.player.stop()
        self.call.barge_ins.append((onset, now))
        stopped = [self.current]
        self.current = None
        while self.queue and isinstance(self.queue[0], Play) and self.queue[0].barge_in:
            stopped.append(self.queue.popleft())
        for play in stopped:
            self._deliver(PromptDone(now, play.label, interrupted=True))

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
                            digits.sample + spec.inter_timeout_ms * self.rate // 1000)
        self.collector = None
        self.current = None
        self._deliver(digits)

    def _timers(self, now: int) -> None:
        call = self.call
        # replies first: a prompt that ends in the same frame then finds the handler's next
        # actions queued, instead of the handler filling the gap for one more frame
        for reply in self.work.poll(now):
            self._deliver(reply)
            if self.call is None:
                return
        if isinstance(self.current, Play) and self.player.finished:
            play = self.current
            self.player.stop()
            self.current = None
            self._deliver(PromptDone(now, play.label, interrupted=False))
        if self.collector is not None:
            done = self.collector.poll(now)
            if done is not None:
                self._collected(done)
        if self.transfer is not None:
            self.transfer.poll(now)
            if self.transfer.done:
                self._transfer_done(now)
                if self.call is None:
                    return
        if call.answered_at is not None and now - call.answered_at >= self.cfg.max_call_ms:
            log.warning("call %d: longer than max_call_s, hanging up", call.call_id)
            self._end_call("hangup", now)

    def _transfer_done(self, now: int) -> None:
        job, call = self.transfer, self.call
        self.transfer = None
        self.current = None
        outcome = job.outcome or "failed"
        call.transfer.outcome = outcome
        result = TransferResult(now, job.spec.extension, outcome)
        if outcome == "completed":
            self._ending = True          # already on hook: nothing more can be done
            self._deliver(result)
            self._end_call("transferred", now)
            return
        if outcome == "answered":
            self.agent = True
            self._deliver(result)
            return
        # back with the caller
        self.hangup.pause(False, since=job.back_at)
        self._restart_detectors(now)
        self._deliver(result)

    # ------------------------------------------------------------------ actions

    def _queue(self, actions, now: int) -> None:
        if actions is None:
            return
        if not isinstance(actions, (list, tuple)):
            raise TypeError("handler must return a list of actions")
        for a in actions:
            if not isinstance(a, (Play, Collect, Transfer, Work, HangUp)):
                raise TypeError(f"not an action: {type(a).__name__}")
            if isinstance(a, Play) and isinstance(a.prompt, str) and a.prompt not in self.prompts:
                raise KeyError("unknown prompt")
        if not self._ending:
            self.queue.extend(actions)

    def _advance(self, now: int) -> None:
        """Start queued actions until one holds the line (or the call ends)."""
        while self.call is not None and self.current is None:
            if not self.queue:
                if self.agent and not self.work.pending:
                    self._end_call("transferred", now)    # supervised transfer: let go
                return
            action = self.queue.popleft()
            if isinstance(action, Play):
                audio = (self.prompts[action.prompt] if isinstance(action.prompt, str)
                         else action.prompt)
                self.player.start(audio, action.label, action.barge_in)
                self.current = action
            elif isinstance(action, Collect):
                self.current = action
                self.collector = Collector(action, now, self.rate)
                while self.typeahead and self.collector is not None:
                    digit, sample = self.typeahead.popleft()
                    if self._swallowed(digit, sample):
                        continue
                    done = self.collector.key(digit, sample)
                    if done is not None:
                        self._collected(done)
            elif isinstance(action, Transfer):
                self.current = action
                self.call.transfer = TransferInfo(action.extension, action.mode)
                self.typeahead.clear()   # keys meant for an earlier menu
                self.hangup.pause(True)
                self.transfer = TransferJob(
                    action, self.line, self.player, self.rate, self.cfg.flash_ms,
                    self.cfg.dial_level_dbm0, self.cfg.dial_on_ms, self.cfg.dial_off_ms,
                    self.cfg.blind_settle_ms)
                self.transfer.begin(now)
            elif isinstance(action, Work):
                self.work.start(action, now)
            elif isinstance(action, HangUp):
                self._end_call("transferred" if self.agent else "hangup", now)
                return

    # ------------------------------------------------------------------ the handler

    def _line_health(self, ev: LineFault | LineRestored) -> None:
        """A line fault or its end, on hook or in a call: logged and told to the handler."""
        if isinstance(ev, LineFault):
            log.warning("%s: line fault (%s)", self.name, ev.reason or "no reason given")
            self._tell("line_down", self.name, ev.reason)
        else:
            log.info("%s: line restored", self.name)
            self._tell("line_up", self.name)

    def _tell(self, hook: str, *args) -> None:
        """An optional handler hook (see the module docstring); never fails the engine."""
        fn = getattr(self.handler, hook, None)
        if not callable(fn):
            return
        try:
            fn(*args)
        except Exception as err:        # noqa: BLE001 - status is never worth a call
            log.error("%s: handler hook %s failed (%s)", self.name, hook, _where(err))

    def _deliver(self, event: HandlerEvent) -> None:
        if self.call is None:
            return
        if not self.handler_ok:
            self._fallback_event(event)
            return
        try:
            actions = self.handler.on_event(event)
            self._queue(actions, event.sample)
        except Exception as err:        # noqa: BLE001 - a broken handler must not drop the call
            self._handler_failed(err, event.kind, event.sample)

    def _handler_failed(self, err: Exception, where: str, now: int) -> None:
        call = self.call
        call.handler_error = _where(err)
        target = self.cfg.fallback_extension
        then = f"transferring to fallback {target}" if target and not self.agent else "hanging up"
        log.error("call %d: handler failed on %s (%s); %s", call.call_id, where,
                  call.handler_error, then)
        self.handler_ok = False
        self.queue.clear()
        if self.transfer is not None:
            return                       # let the transfer finish; its result decides
        if isinstance(self.current, Play):
            self.player.stop()
        self.current = None
        self.collector = None
        if target and not self.agent:
            self.queue.append(Transfer(target, "blind"))
        else:
            self.queue.append(HangUp())

    def _fallback_event(self, event: HandlerEvent) -> None:
        """The handler is out: only what gets the caller somewhere safe."""
        if isinstance(event, TransferResult) and event.outcome not in ("completed", "answered"):
            self.queue.append(HangUp())
        elif isinstance(event, TransferResult) and event.outcome == "answered":
            self.queue.append(HangUp())
        elif not self.queue and self.transfer is None and self.current is None:
            target = self.cfg.fallback_extension
            tried = self.call.transfer is not None and self.call.transfer.extension == target
            self.queue.append(Transfer(target, "blind") if target and not tried else HangUp())

    # ------------------------------------------------------------------ ending

    def _caller_hung_up(self, how: str, now: int) -> None:
        call = self.call
        call.hangup_how = how
        self._ending = True
        if self.handler_ok:
            try:
                self.handler.on_event(CallerHungUp(now, how))
            except Exception as err:    # noqa: BLE001
                call.handler_error = call.handler_error or _where(err)
                log.error("call %d: handler failed on caller_hung_up (%s)", call.call_id,
                          call.handler_error)
        self._end_call("fault" if how == "fault" else "caller", now)

    def _end_call(self, reason: str, now: int) -> None:
        """Whatever happened: on hook, handler told, ready for the next ring."""
        call = self.call
        if call is None:
            return
        self.call = None
        if self.state == CALL or self.line.is_off_hook:
            self.line.on_hook()
        if call.handler_error and reason in ("hangup", "transferred"):
            reason = "error" if reason == "hangup" else reason
        call.ended_at = now
        call.end_reason = reason
        self.player.stop()
        self.work.cancel()
        self._reset_call_state()
        self.state = IDLE
        self.rings.reset()
        self.cid.close()
        self.hangup.pause(False)
        self._cw_until = -1
        self.line.listen_callerid(True)
        try:
            self.handler.end(call)
        except Exception as err:        # noqa: BLE001
            log.error("call %d: handler failed on end (%s)", call.call_id, _where(err))
        self.finished.append(call)
        if self.on_call is not None:
            self.on_call(call)


__all__ = ["Engine", "EngineConfig"]
