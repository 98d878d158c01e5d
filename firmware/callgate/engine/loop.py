"""The engine's frame loop: one loop that owns one line and runs its calls.

Per frame: read from the line; on hook, count rings and listen for caller ID;
off hook, run the detectors (DTMF keys, call-progress tones, the call-waiting
alert) and the hang-up signals; hand what happened to the action runner
(runner.py), which tells the handler and carries out its actions; write
exactly one frame (prompt, dialled digits or silence). Every timer is a count
of the line's samples, so a simulated call is deterministic and runs as fast
as the CPU allows, and a paced line runs at its own rate. The wall clock is
read only to stamp when things happened, for the records.

Nothing in the frame path waits: the handler's record steps go to the
recorder's bounded queue (`recorder.submit` never blocks), work leaves
through the work runner, and the optional handler hooks (ringing, line up,
line down) return record steps like any other action.

Whatever happens in a call (the caller hangs up at any moment, the line
fails, the handler raises) the call ends with the line on hook, the handler
told (`end`), and the engine ready for the next ring.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable

import numpy as np

from ..call import RECORD_STEPS, CallerHungUp, CallInfo, Handler
from ..config import ConfigError
from ..dsp.bank import DetectorBank
from ..dsp.dtmf import DtmfEvent
from ..dsp.events import CallerIdEvent
from ..dsp.fsk import BELL202, V23
from ..dsp.level import dbm0_to_rms
from ..dsp.tones import ToneEvent, TonePlan
from ..line.base import (FlashDone, Line, LineFault, LineRestored, LineTone, PolarityReversal,
                         RingStart, RingStop)
from ..privacy import where
from ..toneplans import load_toneplan
from .callerid import CallerIdCapture
from .config import EngineConfig
from .hangup import HangupDetector
from .keys import KeyMerge
from .player import Player
from .prompts import PromptSet
from .ring import Abandoned, Ring, RingCounter, ring_cadence
from .runner import ActionRunner
from .work import WorkRunner

log = logging.getLogger("callgate.engine")
AUTO_LAST_RING = 3       # rings = "auto" with no caller ID: answer on this ring

IDLE, RINGING, CALL = "idle", "ringing", "call"


class Engine:
    """Runs calls on one line with one handler. `run()` until the line ends.

    `recorder` takes the handler's record steps (`submit(step)`, never
    blocking; store/recorder.py); None drops them. `plan` is the tone plan
    (default: [engine] toneplan, else the line's country, else US); `player`
    plays the prompts (a scenario's listening player may stand in);
    `wall_clock` stamps the records.
    """

    def __init__(self, line: Line, handler: Handler, config: EngineConfig | None = None,
                 prompts: PromptSet | None = None, name: str = "line",
                 on_call: Callable[[CallInfo], None] | None = None,
                 watchdog: Callable[[], None] | None = None, recorder=None,
                 plan: TonePlan | None = None, player: Player | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if not isinstance(handler, Handler):
            raise TypeError(f"handler: {type(handler).__name__} is not a callgate.call.Handler")
        self.cfg = cfg = config or EngineConfig()
        self.line = line
        self.handler = handler
        self.name = name
        self.on_call = on_call
        self.watchdog = watchdog
        self.recorder = recorder
        self.wall = wall_clock
        self.rate = line.rate
        self.plan = plan or load_toneplan(cfg.toneplan or line.country or "us")
        self.prompts = self._prompt_set(prompts, tuple(handler.prompts_needed))
        caps = line.capabilities
        self.caps = caps
        self.rings = RingCounter(ring_cadence(self.plan), self.rate, cfg.min_ring_ms,
                                 abandon_ms=cfg.abandon_ms)
        self.cid = CallerIdCapture(listen_always=caps.onhook_audio and not caps.polarity,
                                   rate=self.rate)
        self.player = player or Player(line.frame_samples)
        self.work = WorkRunner(caps.paced, self.rate)
        self.hangup = HangupDetector(self.rate, cfg.cpc_ms, cfg.silence_ms)
        # off-hook detectors, reused call after call; reset() at answer puts them on the line clock
        self.bank = DetectorBank(dtmf=True, fsk=(BELL202, V23), callwaiting=True,
                                 tones=self.plan, voice=True,
                                 dtmf_min_level_dbm0=cfg.dtmf_min_level_dbm0)
        self.keys = KeyMerge(self.rate)              # a modem's key reports + the detector's
        self._ring_pattern: str | None = None        # of the ringing in progress
        self._quiet = dbm0_to_rms(-45.0) ** 2        # mean square: below it a frame is quiet
        self.state = IDLE
        self.call: CallInfo | None = None
        self.calls = 0
        self.finished: deque[CallInfo] = deque(maxlen=100)
        self.frames = 0
        self.faults = 0                  # engine faults survived (see _engine_failed)
        self.runner = ActionRunner(self)
        self._pacing_mark = None
        self._stopping = False
        self._silences: dict[int, np.ndarray] = {}
        self._silence = np.zeros(line.frame_samples, dtype=np.int16)

    def _prompt_set(self, prompts: PromptSet | None, need: tuple[str, ...]) -> PromptSet:
        cfg = self.cfg
        if prompts is None:
            try:
                prompts = PromptSet(cfg.language, cfg.prompts, require=need)
            except ConfigError as err:
                key = "engine.prompts" if cfg.prompts else "engine.language"
                raise ConfigError(f"{key}: {str(err).removeprefix('prompts: ')}") from None
        missing = [p for p in need if p not in prompts]
        if missing:
            raise ConfigError(f"prompts: {prompts.folder} has no {missing[0]}.wav")
        return prompts

    # ------------------------------------------------------------------ running

    def run(self, max_calls: int | None = None) -> int:
        """Run until the line ends (or `max_calls` calls are over); the number of calls.

        The handler hears `line_up` now and `line_down("callgate stopped")` when
        the loop ends, whatever ends it."""
        self.line.listen_callerid(True)
        self._hook(self.handler.line_up, self.name, self.wall())
        self._mark_pacing()
        try:
            while not self._stopping and self.step():
                if max_calls is not None and self.calls >= max_calls and self.call is None:
                    break
        finally:
            if self.call is not None:    # stopped mid-call: ended and recorded all the same
                self.end_call("stopped", self.line.sample)
            self.work.close()
            self._hook(self.handler.line_down, self.name, "callgate stopped", self.wall())
        return self.calls

    def stop(self) -> None:
        """End `run` after the frame in progress (safe from a signal handler): a call in
        progress is ended, on hook, its record finished."""
        self._stopping = True

    def step(self) -> bool:
        """One frame: read, listen, decide, write. False once the line has ended."""
        frame = self.line.read()
        if frame is None:
            if self.call is not None:
                self.end_call("line_ended", self.line.sample)
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
        log.error("%s: engine fault (%s); call ended, line on hook", self.name, where(err))
        self.faults += 1
        call = self.call
        if call is not None:
            call.handler_error = call.handler_error or f"engine: {where(err)}"
            try:
                self.end_call("error", now)
            except Exception:           # noqa: BLE001
                self.call = None
        if self.line.is_off_hook:
            self.line.on_hook()
        self.runner.reset()
        self.state = IDLE
        self.rings.reset()
        self._ring_pattern = None
        self.cid.close()

    # ------------------------------------------------------------------ what the runner uses

    def record(self, actions) -> None:
        """Hand the record steps among `actions` to the recorder; never waits (a full
        queue is its loss). Anything else is not a hook's to ask for: ignored."""
        if self.recorder is None or not actions:
            return
        for step in actions:
            if isinstance(step, RECORD_STEPS):
                self.recorder.submit(step)

    def silence_of(self, ms: int) -> np.ndarray:
        """Silence for a Pause; one array per length, reused (hold comes a frame at a time)."""
        audio = self._silences.get(ms)
        if audio is None:
            audio = self._silences[ms] = np.zeros(ms * self.rate // 1000, dtype=np.int16)
            audio.setflags(write=False)
        return audio

    # ------------------------------------------------------------------ on hook

    def _on_hook(self, frame) -> np.ndarray:
        now = frame.end
        for ev in frame.events:
            if isinstance(ev, (RingStart, RingStop)):
                self.rings.event(ev)
                if isinstance(ev, RingStart):
                    self.cid.open(ev.sample)
                    self._ring_pattern = ev.pattern or self._ring_pattern
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
                    self._new_call(got.sample)
                self.call.rings = got.number
                self.call.ring_pattern = self.call.ring_pattern or self._ring_pattern
                if self._answer_now(got):
                    self._answer(now)
                    return self._silence
            elif isinstance(got, Abandoned) and self.call is not None:
                self.call.callerid, self.call.callerid_error = self.cid.best()
                self.end_call("abandoned", now)
        self.cid.expire(now, self.rings.ringing)
        return self._silence

    def _new_call(self, sample: int) -> None:
        self.calls += 1
        self.call = CallInfo(self.calls, self.name, sample, started_wall=self.wall())
        self.state = RINGING
        self._hook(self.handler.ringing, self.call)

    def _answer_now(self, ring: Ring) -> bool:
        if self.cfg.rings is not None:
            return ring.number >= self.cfg.rings
        heard = self.cid.heard
        if heard and heard[0].sample < ring.sample:
            return True                  # caller ID came before this ring began
        # none yet: it can come "anytime between 0 and 2 rings" (a modem prints it only
        # once whole, after ring 2 on some lines), so wait for the ring after that window
        return ring.number >= AUTO_LAST_RING

    def _answer(self, now: int) -> None:
        call = self.call
        self.line.off_hook()
        self.line.listen_callerid(False)
        call.answered_at = now
        call.answered_wall = self.wall()
        call.callerid, call.callerid_error = self.cid.best()
        self.cid.close()
        self.rings.reset()
        self._ring_pattern = None
        self.state = CALL
        self.restart_detectors(now)
        self.hangup.reset(now)
        self.runner.reset()
        self.runner.begin(call, now)

    def restart_detectors(self, now: int) -> None:
        """Off-hook detectors from a clean state at line sample `now` (after answer, and
        when a failed transfer brings the caller back)."""
        self.bank.reset(now)
        self.keys.reset()

    # ------------------------------------------------------------------ in a call

    def _in_call(self, frame) -> np.ndarray:
        now = frame.end
        call = self.call
        run = self.runner
        job = run.transfer
        hang: str | None = None
        reported: list[DtmfEvent] = []     # keys the line heard itself (a modem's <DLE> digit)
        for ev in frame.events:
            if isinstance(ev, DtmfEvent):
                reported.append(ev)
            elif isinstance(ev, FlashDone):
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
        digits, tones = self._detect(frame, job is not None and job.listening)
        digits = self._merge_keys(reported, digits)
        if job is not None:
            for t in tones:
                job.tone(t.tone, now)
            if job.listening and self.bank.voiced:
                job.voice(now)
            digits = ()                  # the caller is on hold; we hear our own dialling
        elif run.agent:
            digits = ()
        else:
            for t in tones:
                hang = hang or self.hangup.tone(t.tone)
        if hang is None:
            hang = self.hangup.poll(now, self.bank.power < self._quiet, self.player.playing)
        if hang is not None:
            self._caller_hung_up(hang, now)
            return self._silence
        for d in digits:
            run.key(d.digit, d.sample, now)
            if self.call is None:
                return self._silence
        run.timers(now)
        if self.call is None:
            return self._silence
        run.advance(now)
        if self.call is None:
            return self._silence
        return self.player.next_frame(len(frame.samples), now)

    def _merge_keys(self, reported: list[DtmfEvent], heard: list[DtmfEvent]) -> list[DtmfEvent]:
        """The line's key reports and the detector's keys, each press once, in time order."""
        if not reported:
            return [d for d in heard if self.keys.take(d.digit, d.sample, "audio")]
        both = [(d, "line") for d in reported] + [(d, "audio") for d in heard]
        both.sort(key=lambda pair: pair[0].sample)
        return [d for d, source in both if self.keys.take(d.digit, d.sample, source)]

    def _detect(self, frame, answer_wanted: bool):
        """The off-hook detector bank on one frame: (keys, tones); call-waiting caller ID
        goes to the call. A bank that fails starts afresh (one log line); the call goes on."""
        bank = self.bank
        bank.listen_voice(answer_wanted)
        try:
            events = bank.feed(frame.samples, at=frame.start)
        except Exception as err:        # noqa: BLE001
            log.error("%s: detectors failed (%s); restarted", self.name, type(err).__name__)
            bank.reset(frame.end)
            return [], []
        digits, tones = [], []
        for ev in events:
            if isinstance(ev, DtmfEvent):
                digits.append(ev)
            elif isinstance(ev, ToneEvent):
                tones.append(ev)
            elif isinstance(ev, CallerIdEvent) and ev.checksum_ok and ev.error is None:
                self.call.callwaiting.append(ev)
        return digits, tones

    # ------------------------------------------------------------------ the handler's hooks

    def _line_health(self, ev: LineFault | LineRestored) -> None:
        """A line fault or its end, on hook or in a call: logged and told to the handler."""
        if isinstance(ev, LineFault):
            log.warning("%s: line fault (%s)", self.name, ev.reason or "no reason given")
            self._hook(self.handler.line_down, self.name, ev.reason, self.wall())
        else:
            log.info("%s: line restored", self.name)
            self._hook(self.handler.line_up, self.name, self.wall())

    def _hook(self, hook: Callable[..., list], *args) -> None:
        """A status hook of the handler (ringing, line_up, line_down): its record steps
        go to the recorder; a hook that raises costs one log line, never the call."""
        try:
            steps = hook(*args)
        except Exception as err:        # noqa: BLE001 - status is never worth a call
            log.error("%s: handler hook %s failed (%s)", self.name, hook.__name__, where(err))
            return
        self.record(steps)

    # ------------------------------------------------------------------ ending

    def _caller_hung_up(self, how: str, now: int) -> None:
        call = self.call
        call.hangup_how = how
        self.runner.ending = True
        if self.runner.handler_ok:
            try:
                self.runner.queue_actions(self.handler.on_event(
                    CallerHungUp(now, how, wall=self.wall())))
            except Exception as err:    # noqa: BLE001
                call.handler_error = call.handler_error or where(err)
                log.error("call %d: handler failed on caller_hung_up (%s)", call.call_id,
                          call.handler_error)
        self.end_call("fault" if how == "fault" else "caller", now)

    def end_call(self, reason: str, now: int) -> None:
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
        call.ended_wall = self.wall()
        call.end_reason = reason
        call.pacing = self._pacing_of_call()
        self.player.stop()
        self.work.cancel()
        self.runner.reset()
        self.state = IDLE
        self.rings.reset()
        self._ring_pattern = None
        self.cid.close()
        self.hangup.pause(False)
        self.line.listen_callerid(True)
        try:
            self.record(self.handler.end(call))
        except Exception as err:        # noqa: BLE001
            log.error("call %d: handler failed on end (%s)", call.call_id, where(err))
        self.finished.append(call)
        if self.on_call is not None:
            self.on_call(call)
        self._mark_pacing()

    def _mark_pacing(self) -> None:
        """A call's pacing covers the line from the end of the call before it (its
        rings and caller ID, and whatever the end of the last call cost) to its end."""
        self._pacing_mark = self.line.pacing_mark() if self.caps.paced else None

    def _pacing_of_call(self) -> dict | None:
        """How well the loop kept up with a paced line during this call."""
        if self._pacing_mark is None:
            return None
        got = self.line.pacing.since(self._pacing_mark)
        if not got.paced:
            return None                  # a line that paces itself but counts nothing
        return {"overruns": got.overruns, "late_frames": got.late_frames,
                "max_lag_ms": round(got.max_lag_ms, 1)}


__all__ = ["Engine", "EngineConfig"]
