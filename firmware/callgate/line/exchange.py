"""The simulated exchange behind the `sim` line: a central office and far end on the sample clock.

One `Exchange` serves one line. It works through a list of `SimCall`s: for
each it alerts the line (ring bursts with the country's cadence and on-hook
caller ID in the right window), connects the caller when we go off hook, runs
the caller's script (keys, call waiting, hang-up), and on a hook flash puts
the caller on hold, gives recall dial tone, decodes the digits we dial with
the signal core's DTMF receiver and rings the agent's extension.

Everything happens at sample times: timers sit in a heap and fire while a
frame is rendered; audio is a list of sources (pre-rendered arrays, some
looped, each with a start and a stop sample) mixed into each frame with a
few slice additions, plus line noise and the echo of what we sent.

Signal timing:

- Bell 202 (GR-30-CORE on-hook type 1): the burst starts 600 ms after the
  first ring ends (>= 500 ms) and must end >= 200 ms before the second.
- ETSI V.23 (EN 300 659-1, "prior to ringing with DT-AS"): polarity
  reversal, 300 ms, DT-AS 2130+2750 Hz for 100 ms, 100 ms, the FSK burst,
  600 ms, the first ring.
- DTMF caller ID (EN 300 659-1 DTMF variants): polarity reversal, 300 ms,
  the digits, 600 ms, the first ring.
- A "ring" is one cadence cycle: the UK double burst counts once.
- Hook: on hook for FLASH_MIN..FLASH_MAX ms is a flash, shorter is ignored,
  longer clears the call (released at the moment we went on hook).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.signal import butter, sosfilt

from ..dsp import RATE
from ..dsp.callerid import callerid_tx, build_mdmf
from ..dsp.dtmf import DtmfReceiver, dtmf_tx
from ..dsp.events import Event
from ..dsp.fsk import BELL202, V23
from ..dsp.level import dbm0_to_amplitude, dbm0_to_rms
from ..dsp.tones import TonePlan, plan_tone_tx, tone_tx
from .base import FlashDone, LoopCurrent, PolarityReversal, RingStart, RingStop
from .sim_calls import CallWaiting, HangUp, Press, SimCall, SimOutcome

FLASH_MIN_MS = 100
FLASH_MAX_MS = 1000
PROMPT_QUIET_MS = 300        # our audio quiet this long after sound = a prompt ended
SOUND_DBM0 = -45.0           # our audio louder than this is sound (prompt)
RECALL_DELAY_MS = 100        # flash done -> recall dial tone
FIRST_DIGIT_MS = 10000       # recall dial tone without a digit -> reorder
INTER_DIGIT_MS = 4000        # an incomplete extension -> reorder
MAX_RINGS = 30               # a call nobody answers is given up after this many rings
IDLE_END_MS = 2000           # idle on hook after the last call -> the line ends
CID_AFTER_RING_MS = 600      # Bell 202: first ring end -> burst (GR-30: >= 500)
CID_BEFORE_RING_MS = 200     # Bell 202: burst end -> second ring (GR-30: >= 200)
ETSI_ALERT_MS = 300          # polarity reversal -> DT-AS or DTMF digits
DTAS_MS = 100
DTAS_TO_FSK_MS = 100         # EN 300 659-1: 45..500 ms
CID_TO_RING_MS = 600         # last caller ID signal -> first ring (>= 500)
CAS_MS = 80
SAS_MS = 300
CW_FSK_DELAY_MS = 250        # CAS end -> off-hook FSK (as if acknowledged)
TONE_DBM0 = -16.0            # call-progress tones
ALERT_DBM0 = -15.0           # DT-AS / CAS, per component
CID_DBM0 = -13.5
CID_DTMF_DBM0 = -10.0
HELLO_DBM0 = -20.0
NOISE_BLOCK = 4 * RATE       # line noise is drawn this many samples at a time
AGENT_AUDIO_MAX_S = 60       # what the agent hears from us is kept up to this long


def ms(value: float) -> int:
    """Milliseconds to samples."""
    return int(round(value * RATE / 1000))


class _Timer:
    __slots__ = ("fn", "args", "cancelled")

    def __init__(self, fn: Callable, args: tuple) -> None:
        self.fn, self.args, self.cancelled = fn, args, False

    def cancel(self) -> None:
        self.cancelled = True


class _Source:
    """Audio from `start` (looped when `loop`) until `stop` (None: its end)."""

    __slots__ = ("start", "stop", "data", "loop", "leg")

    def __init__(self, start: int, data: np.ndarray, leg: str, loop: bool = False) -> None:
        self.start, self.data, self.leg, self.loop = start, data, leg, loop
        self.stop: int | None = None if loop else start + len(data)


class Signals:
    """The exchange's pre-rendered audio for one tone plan (float32 arrays)."""

    def __init__(self, plan: TonePlan, country: str, rng: np.random.Generator) -> None:
        self.plan = plan
        self.cw_spec = BELL202 if country == "us" else V23
        self._loops: dict[str, np.ndarray] = {}
        self._cache: dict[tuple, np.ndarray] = {}
        self.dtas = _f32(tone_tx([2130, 2750], ALERT_DBM0, [], DTAS_MS / 1000))
        cas = _f32(tone_tx([2130, 2750], ALERT_DBM0, [], CAS_MS / 1000))
        sas = _f32(tone_tx([440], -13.0, [], SAS_MS / 1000)) if country == "us" else np.zeros(0)
        self.cw_alert = np.concatenate([sas, np.zeros(ms(20) if sas.size else 0, np.float32), cas,
                                        np.zeros(ms(CW_FSK_DELAY_MS), np.float32)])
        self.hello = _speechlike(rng, 0.6, HELLO_DBM0)

    def loop(self, name: str) -> np.ndarray:
        """One seamless cycle of a plan tone (1 s for a steady one)."""
        if name not in self._loops:
            tone = self.plan.tone(name)
            seconds = sum(tone.cadence_ms) / 1000 if tone.cadence_ms else 1.0
            self._loops[name] = _f32(plan_tone_tx(self.plan, name, seconds, TONE_DBM0))
        return self._loops[name]

    def fsk(self, message: bytes, kind: str, offhook: bool = False) -> np.ndarray:
        key = ("fsk", message, kind, offhook)
        if key not in self._cache:
            spec = BELL202 if kind == "bell202" else V23
            extra = {"seizure": 0, "mark": 80} if offhook else {}
            self._cache[key] = _f32(callerid_tx(message, spec, CID_DBM0, **extra))
        return self._cache[key]

    def dtmf(self, digits: str, on_ms: float, off_ms: float, level: float) -> np.ndarray:
        key = ("dtmf", digits, on_ms, off_ms, level)
        if key not in self._cache:
            self._cache[key] = _f32(dtmf_tx(digits, level, 0.0, on_ms, off_ms))
        return self._cache[key]

    def callwaiting(self, step: CallWaiting, datetime: str) -> np.ndarray:
        msg = build_mdmf(step.number, None, datetime)
        return np.concatenate([self.cw_alert, self.fsk(msg, self.cw_spec.name, offhook=True)])


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _speechlike(rng: np.random.Generator, seconds: float, level_dbm0: float) -> np.ndarray:
    """A short "hello": band-limited noise in three syllables (no tone, no DTMF)."""
    n = ms(seconds * 1000)
    sos = butter(4, [300, 3000], btype="bandpass", fs=RATE, output="sos")
    noise = sosfilt(sos, rng.standard_normal(n))
    envelope = np.zeros(n)
    syllable = np.hanning(ms(170))
    for at in (0, ms(210), ms(420)):
        part = envelope[at:at + syllable.size]
        part += syllable[:part.size]
    x = noise * envelope
    x *= dbm0_to_rms(level_dbm0) / np.sqrt(np.mean(x * x))
    return _f32(x)


@dataclass
class _Call:
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
    hangup_pending: HangUp | None = None
    leg: str | None = None       # held: recall, ringback, agent, busy, reorder
    digits: str = ""
    ext: str | None = None
    leg_timer: _Timer | None = None
    dtmf: DtmfReceiver | None = None
    dtmf_base: int = 0
    dtmf_pos: int = 0
    agent_heard: list | None = None  # our audio to the agent once they answered
    agent_samples: int = 0


class Exchange:
    """The central office and far end of one simulated line. See the module docstring."""

    def __init__(self, calls: list[SimCall], plan: TonePlan, country: str,
                 echo_gain: float | None, noise_rms: float | None, seed: int) -> None:
        self.plan = plan
        self.ring = plan.ring_cadence_ms
        self.rng = np.random.default_rng(seed)
        self.signals = Signals(plan, country, self.rng)
        self.echo_gain = echo_gain
        self.noise_rms = noise_rms
        self._noise_buf = np.zeros(0, np.float32)
        self._noise_pos = 0
        self.calls = calls
        self.outcomes = [SimOutcome() for _ in calls]
        self.now = 0
        self._heap: list = []
        self._seq = 0
        self._sources: list[_Source] = []
        self._events: list[Event] = []
        self._hook_off = False
        self._onhook_at: int | None = None
        self._onhook_timer: _Timer | None = None
        self._flash_timer: _Timer | None = None
        self._loop: tuple[str, str] | None = None    # (tone, leg) of the tone now looping
        self._seized = False                         # off hook with no call: dial tone
        self._call: _Call | None = None
        self._next = 0                               # index of the next call to start
        self._idle_since = 0
        self._sound_ms = dbm0_to_rms(SOUND_DBM0) ** 2
        self._sound_amp = dbm0_to_amplitude(SOUND_DBM0)
        self._cycle = ms(sum(self.ring))
        self._bursts_end = ms(sum(self.ring[:-1]))
        self._schedule_next_call(0)

    # ------------------------------------------------------------- the clock

    def at(self, t: int, fn: Callable, *args) -> _Timer:
        timer = _Timer(fn, args)
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, timer))
        return timer

    def _call_at(self, call: _Call, t: int, fn: Callable, *args) -> _Timer:
        """A timer that dies with the call."""
        timer = self.at(t, fn, call, *args)
        call.timers.append(timer)
        return timer

    def finished(self, now: int) -> bool:
        """Every call is over and the line has been idle on hook long enough."""
        return (self._call is None and self._next >= len(self.calls) and not self._hook_off
                and now >= self._idle_since + ms(IDLE_END_MS))

    def render(self, start: int, n: int) -> tuple[np.ndarray, list[Event]]:
        """The received audio of [start, start + n) and the line events in it."""
        end = start + n
        heap = self._heap
        while heap and heap[0][0] < end:
            t, _, timer = heapq.heappop(heap)
            if not timer.cancelled:
                self.now = max(t, start)
                timer.fn(*timer.args)
        buf = self._noise(n)
        keep = []
        for src in self._sources:
            stop = end if src.stop is None else src.stop
            if stop <= start:
                continue              # played out or cut: gone for good
            keep.append(src)
            a, b = max(src.start, start), min(stop, end)
            if a < b:
                if src.loop:
                    buf[a - start:b - start] += src.data.take(
                        np.arange(a - src.start, b - src.start), mode="wrap")
                else:
                    buf[a - start:b - start] += src.data[a - src.start:b - src.start]
        self._sources = keep
        events = self._events
        self._events = []
        if len(events) > 1:
            events.sort(key=lambda e: e.sample)
        np.rint(buf, out=buf)
        np.minimum(buf, 32767, out=buf)
        np.maximum(buf, -32768, out=buf)
        return buf.astype(np.int16), events

    def _noise(self, n: int) -> np.ndarray:
        """The next n samples of line noise (float32), drawn a few seconds at a time."""
        if not self.noise_rms:
            return np.zeros(n, np.float32)
        if self._noise_pos + n > self._noise_buf.size:
            fresh = self.rng.standard_normal(max(NOISE_BLOCK, n), dtype=np.float32)
            fresh *= np.float32(self.noise_rms)
            self._noise_buf = np.concatenate([self._noise_buf[self._noise_pos:], fresh])
            self._noise_pos = 0
        out = self._noise_buf[self._noise_pos:self._noise_pos + n].copy()
        self._noise_pos += n
        return out

    # ------------------------------------------------------------- audio helpers

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _audible(self, leg: str) -> bool:
        """On hook we hear only the on-hook signals (caller ID); nothing else is sent."""
        return leg == "alert" or (self._hook_off and self._onhook_at is None)

    def _play(self, t: int, data: np.ndarray, leg: str) -> int:
        """Add a one-shot source; returns its end sample."""
        if self._audible(leg):
            self._sources.append(_Source(t, data, leg))
        return t + len(data)

    def _play_loop(self, t: int, tone: str | None, leg: str) -> None:
        """Make `tone` the looping tone (None: silence) from t, replacing any other.

        On hook it is only remembered, and starts when we are back off hook.
        """
        self._stop_loop(t)
        self._loop = (tone, leg) if tone else None
        if tone and self._audible(leg):
            self._sources.append(_Source(t, self.signals.loop(tone), leg, loop=True))

    def _stop_loop(self, t: int) -> None:
        if self._loop is not None:
            for src in self._sources:
                if src.loop and (src.stop is None or src.stop > t):
                    src.stop = t
            self._loop = None

    def _cut(self, t: int, legs: tuple[str, ...]) -> None:
        """Silence every source of these legs from t (loops too, but remember the loop)."""
        for src in self._sources:
            if src.leg in legs and (src.stop is None or src.stop > t):
                src.stop = t

    def _resume_loop(self, t: int) -> None:
        """Back off hook after a glitch or an ignored flash: the looping tone goes on."""
        if self._loop is not None:
            tone, leg = self._loop
            self._play_loop(t, tone, leg)

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
        call = _Call(self.calls[index], self.outcomes[index], timers=[])
        self._call = call
        call.phase = "alerting"
        t0 = self.now
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

    def _ring_cycle(self, call: _Call) -> None:
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

    def _ring_burst(self, call: _Call, on: bool) -> None:
        call.ringing = on
        self._emit(RingStart(self.now) if on else RingStop(self.now))

    def _abandon(self, call: _Call) -> None:
        """The caller gives up before answer."""
        call.outcome.caller_hung_up_at = self.now
        self._end_call(call, self.now)

    def _answer(self, call: _Call, t: int) -> None:
        for timer in call.timers:
            timer.cancel()
        call.timers = []
        if call.ringing:
            call.ringing = False
            self._emit(RingStop(t))             # ring trip
        self._cut(t, ("alert",))
        call.phase = "talking"
        call.outcome.answered_at = t
        call.step = 0
        self._next_step(call, t)

    def _end_call(self, call: _Call, t: int) -> None:
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

    # ------------------------------------------------------------- the caller's script

    def _next_step(self, call: _Call, t_prev: int) -> None:
        if call.step >= len(call.spec.script) or not call.caller_present:
            return
        step = call.spec.script[call.step]
        if step.when == "prompt_end":
            call.prompt_since = t_prev
            return
        ref = call.outcome.answered_at if step.when == "answer" else t_prev
        self._call_at(call, max(ref + ms(step.after_ms), self.now), self._run_step)

    def _prompt_ended(self, call: _Call, end: int, noticed: int) -> None:
        if call.prompt_since is None or end < call.prompt_since:
            return
        call.prompt_since = None
        step = call.spec.script[call.step]
        self._call_at(call, max(end + ms(step.after_ms), noticed), self._run_step)

    def _caller_audible(self, call: _Call) -> bool:
        return call.phase == "talking" and self._hook_off and self._onhook_at is None

    def _run_step(self, call: _Call) -> None:
        t = self.now
        step = call.spec.script[call.step]
        call.step += 1
        if isinstance(step, HangUp):
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

    def _step_done(self, call: _Call) -> None:
        self._next_step(call, self.now)

    def _caller_hangs_up(self, call: _Call, step: HangUp, t: int) -> None:
        call.outcome.caller_hung_up_at = t
        call.caller_present = False
        call.prompt_since = None
        if self._caller_audible(call):
            self._caller_clears(call, step, t)
        else:
            call.hangup_pending = step          # noticed when we come back to the caller

    def _caller_clears(self, call: _Call, step: HangUp, t: int) -> None:
        """What the line shows us when the caller has gone."""
        call.phase = "caller_gone"
        call.hangup_pending = None
        self._cut(t, ("caller", "agent"))
        self._stop_loop(t)
        if step.how == "cpc":
            self._emit(LoopCurrent(t, present=False))
            self._call_at(call, t + ms(step.drop_ms), self._loop_restored, step)
        elif step.how == "polarity":
            self._emit(PolarityReversal(t))
        elif step.how != "silence":
            self._play_loop(t, step.how, "caller")

    def _loop_restored(self, call: _Call, step: HangUp) -> None:
        if self._hook_off and self._onhook_at is None:
            self._emit(LoopCurrent(self.now, present=True))
            if step.tone_after:
                self._play_loop(self.now, step.tone_after, "caller")

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
                for ev in call.dtmf.flush():    # the last digit we sent before hanging up
                    self.at(call.dtmf_base + ev.sample, self._digit, call, ev.digit)
                call.dtmf = DtmfReceiver()
                call.dtmf_base = call.dtmf_pos = t
            self._onhook_at = t
            self._onhook_timer = self.at(t + ms(FLASH_MAX_MS) + 1, self._cleared, call, t)
            call.had_sound = False
        elif call is not None and call.phase == "caller_gone":
            self._release(call, t)
        else:
            self._seized = False
            self._stop_loop(t)
            self._idle_since = max(self._idle_since, t)

    def _cleared(self, call: _Call, t_on: int) -> None:
        """On hook longer than a flash: the call is released."""
        if self._onhook_at == t_on and not self._hook_off:
            self._onhook_at = None
            self._release(call, t_on)

    def _release(self, call: _Call, t_on: int) -> None:
        if call.phase == "held" and call.caller_present:
            if call.leg == "recall" and call.ext is None and call.digits in call.spec.agents:
                self._route(call, call.digits)
            if call.ext is not None and call.leg in ("ringback", "agent"):
                call.outcome.transferred_to = call.ext
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

    def _back_to(self, call: _Call, t: int) -> None:
        """Off hook again after a glitch (or an ignored flash): nothing changed."""
        if call.phase == "talking" and call.hangup_pending is not None:
            self._caller_clears(call, call.hangup_pending, t)
        else:
            self._resume_loop(t)

    def _flashed(self, call: _Call, t: int) -> None:
        if call.phase == "talking":
            if call.hangup_pending is not None or not call.spec.recall_dial_tone:
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
            if call.hangup_pending is not None:
                self._caller_clears(call, call.hangup_pending, t)
        else:
            self._resume_loop(t)

    # ------------------------------------------------------------- transfer

    def _set_leg_timer(self, call: _Call, t: int, fn: Callable) -> None:
        self._cancel_leg_timer(call)
        call.leg_timer = self._call_at(call, t, fn)

    def _cancel_leg_timer(self, call: _Call) -> None:
        if call.leg_timer is not None:
            call.leg_timer.cancel()
            call.leg_timer = None

    def _digit(self, call: _Call, digit: str) -> None:
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

    def _digits_timeout(self, call: _Call) -> None:
        if call.digits in call.spec.agents:
            self._route(call, call.digits)
        else:
            self._unobtainable(call)

    def _unobtainable(self, call: _Call) -> None:
        self._cancel_leg_timer(call)
        call.leg = "reorder"
        self._play_loop(self.now, "reorder", "agent")

    def _route(self, call: _Call, ext: str) -> None:
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

    def _agent_answers(self, call: _Call) -> None:
        call.leg_timer = None
        call.leg = "agent"
        call.agent_heard = []
        self._stop_loop(self.now)
        self._play(self.now + ms(300), self.signals.hello, "agent")

    # ------------------------------------------------------------- what we send

    def transmit(self, t: int, x: np.ndarray, echo_at: int) -> None:
        """Our audio covering [t, t + len(x)) while off hook: echo, prompt ends, dialled digits.

        Its echo is heard from `echo_at` (the next frame read).
        """
        if not self._hook_off or self._onhook_at is not None or self.flashing:
            return
        n = x.size
        xf = x.astype(np.float32)
        if self.echo_gain:
            self._sources.append(_Source(echo_at, xf * np.float32(self.echo_gain), "echo"))
        call = self._call
        if call is None:
            return
        if call.phase == "talking":
            if float(xf @ xf) > self._sound_ms * n:
                loud = np.flatnonzero(np.abs(xf) > self._sound_amp)
                call.sound_end = t + (int(loud[-1]) + 1 if loud.size else n)
                call.had_sound = True
                call.outcome.prompt_audio_ms += round(n * 1000 / RATE)
            elif call.had_sound and t + n - call.sound_end >= ms(PROMPT_QUIET_MS):
                call.had_sound = False
                self._prompt_ended(call, call.sound_end, t + n)
        elif call.phase == "held" and call.dtmf is not None:
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

    def _agent_hears(self, call: _Call, x: np.ndarray, xf: np.ndarray) -> None:
        """The agent's ear: our audio once they answered (the whisper), kept for tests."""
        n = x.size
        if float(xf @ xf) > self._sound_ms * n:
            call.outcome.agent_heard_ms += round(n * 1000 / RATE)
        if call.agent_samples < AGENT_AUDIO_MAX_S * RATE:
            call.agent_heard.append(x.astype(np.int16, copy=True))
            call.agent_samples += n
