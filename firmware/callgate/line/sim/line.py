"""`sim`: a simulated exchange and far end, the test bench of the engine and the call flow.

The line runs on its own sample clock, as fast as frames are asked for, or
with `paced` at the wall-clock rate through a capture ring of `periods`
frames, as a device's codec runs (line/paced.py): then a reader that falls
behind loses audio and `pacing` counts it. The
exchange (exchange.py) rings with the country's cadence (the [ring]
table of its tone plan), sends on-hook caller ID in the right window, plays
callers who key digits and hang up in every way lines signal it, sends call
waiting during a call, and on a hook flash gives recall dial tone, decodes
the digits we dial and rings the agent's extension. Our own audio comes back
at `echo_db` one frame later, over line noise at `noise_dbm0`. Everything is
deterministic for a given `seed`.

Audio we write covers the frame just read (full duplex: what we send and
what we hear share the clock); controls take effect from the next frame.
Paced, both happen at the codec's "now": after the frames the ring still
holds, when the reader is behind, as on a device; writes never wait.
`outcomes` says what happened to each call, for tests to check.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from ...config import ConfigError, Table
from ...dsp.callerid import callerid_tx
from ...dsp.fsk import BELL202
from ...dsp.level import dbm0_to_rms
from ...toneplans import available_toneplans, load_toneplan
from ..base import UNPACED, Capabilities, Frame, Line, LineError, Pacing
from ..paced import PacedCapture
from .alerting import CID_AFTER_RING_MS, CID_BEFORE_RING_MS
from .calls import HANGUP_SIGNALS, Clear, SimCall, SimOutcome, calls_from_config
from .exchange import Exchange
from .mixer import ms as to_samples

PERIODS_MIN, PERIODS_MAX = 2, 32
"""Capture ring sizes a paced sim line accepts (ALSA buffers of 40..640 ms)."""

__all__ = ["PERIODS_MAX", "PERIODS_MIN", "SimLine", "level_or_off"]


class SimLine(Line):
    """A line to a simulated exchange that works through `calls` in turn.

    `read()` returns None once every call is over and the line has been idle
    on hook for 2 s (or the clock reached `max_seconds`, a guard for tests).
    `paced` runs it on the wall clock (`clock`, `sleep`: injectable for tests)
    with a capture ring of `periods` frames.
    """

    capabilities = Capabilities(loop_current=True, polarity=True, parallel_handset=False,
                                full_duplex=True, onhook_audio=True, paced=False)

    def __init__(self, calls: list[SimCall], country: str = "us",
                 echo_db: float | None = -10.0, noise_dbm0: float | None = -65.0,
                 seed: int = 0, *, max_seconds: float | None = None, paced: bool = False,
                 periods: int = 4, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        try:
            plan = load_toneplan(country)
        except ValueError as err:
            raise ValueError(f"country: {err}") from None
        if not plan.ring_cadence_ms:
            raise ValueError(f"country: tone plan {plan.name!r} has no [ring] cadence_ms; "
                             "the simulated exchange needs it to ring")
        for what, value, low, high in (("echo_db", echo_db, -80, 0),
                                       ("noise_dbm0", noise_dbm0, -100, -20)):
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not low <= value <= high):
                raise ValueError(f"{what}: {value!r} is not a level of {low}..{high} dB "
                                 "(or None for none)")
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds: {max_seconds!r} must be above 0")
        if not isinstance(paced, bool):
            raise ValueError(f"paced: {paced!r} is not true or false")
        if isinstance(periods, bool) or not isinstance(periods, int) or not (
                PERIODS_MIN <= periods <= PERIODS_MAX):
            raise ValueError(f"periods: {periods!r} is not a whole number of "
                             f"{PERIODS_MIN}..{PERIODS_MAX}")
        self.calls = list(calls)
        for i, call in enumerate(self.calls):
            if not isinstance(call, SimCall):
                raise ValueError(f"calls[{i}]: expected a SimCall, got {call!r}")
            self._check_call(i, call, plan)
        self.country = country
        self.plan = plan
        self.seed = seed
        self._max_samples = None if max_seconds is None else int(max_seconds * self.rate)
        self._exchange = Exchange(
            self.calls, plan, plan.name,
            None if echo_db is None else 10 ** (echo_db / 20),
            None if noise_dbm0 is None else dbm0_to_rms(noise_dbm0), seed)
        self._tx_pos = 0
        self._rendered = 0        # samples the exchange has rendered: the line's "now"
        self._hook_at = 0
        self._closed = False
        self.paced = paced
        self._capture: PacedCapture | None = None
        if paced:
            self.capabilities = replace(SimLine.capabilities, paced=True)
            self._capture = PacedCapture(self._render, self.frame_samples / self.rate, periods,
                                         clock=clock, sleep=sleep)

    @staticmethod
    def _check_call(i: int, call: SimCall, plan) -> None:
        """What only the country decides: hang-up tones, and room for Bell 202 caller ID."""
        tones = set(plan.names)
        for k, step in enumerate(call.script):
            if isinstance(step, Clear):
                if step.how not in HANGUP_SIGNALS and step.how not in tones:
                    raise ValueError(f"calls[{i}].script[{k}].how: {step.how!r} is not one of "
                                     f"{', '.join(HANGUP_SIGNALS + plan.names)}")
                if step.tone_after is not None and step.tone_after not in tones:
                    raise ValueError(f"calls[{i}].script[{k}].tone_after: {step.tone_after!r} "
                                     f"is not a tone of plan {plan.name}")
        cid = call.callerid
        if cid is not None and cid.kind == "bell202":
            burst = len(callerid_tx(cid.message(), BELL202))
            room = to_samples(plan.ring_cadence_ms[-1] - CID_AFTER_RING_MS - CID_BEFORE_RING_MS)
            if burst > room:
                raise ValueError(f"calls[{i}].callerid: the Bell 202 burst "
                                 f"({burst * 1000 // 8000} ms) does not fit between the "
                                 f"rings of plan {plan.name}")

    @classmethod
    def from_config(cls, table: Table) -> "SimLine":
        """From [line.sim]: country, echo_db, noise_dbm0 (a level, or false), seed,
        max_seconds, paced, periods, repeat and [[line.sim.calls]] (see calls.py)."""
        country = table.choice("country", available_toneplans(), "us")
        echo_db = level_or_off(table, "echo_db", -10.0, -80, 0)
        noise = level_or_off(table, "noise_dbm0", -65.0, -100, -20)
        seed = table.get("seed", int, 0)
        max_seconds = table.number("max_seconds", None, 1, 1e7)
        paced = table.get("paced", bool, False)
        periods = table.get("periods", int, 4)
        if not PERIODS_MIN <= periods <= PERIODS_MAX:
            raise ConfigError(f"{table.key('periods')}: {periods} is outside "
                              f"{PERIODS_MIN}..{PERIODS_MAX}")
        try:
            tones = load_toneplan(country).names
        except ValueError as err:
            raise ConfigError(f"{table.key('country')}: {err}") from None
        calls = calls_from_config(table, tones)
        table.reject_unknown()
        try:
            return cls(calls, country, echo_db, noise, seed, max_seconds=max_seconds,
                       paced=paced, periods=periods)
        except ValueError as err:
            raise ConfigError(f"{table.path}.{err}") from None

    # -- results
    @property
    def outcomes(self) -> list[SimOutcome]:
        """One SimOutcome per call, filled in as the calls run."""
        return self._exchange.outcomes

    @property
    def position(self) -> int:
        """Samples the exchange has rendered so far (a scenario's wall clock runs on it)."""
        return self._rendered

    @property
    def pacing(self) -> Pacing:
        return self._capture.pacing if self._capture is not None else UNPACED

    def pacing_mark(self) -> Pacing:
        return self._capture.mark() if self._capture is not None else UNPACED

    # -- lifecycle
    def close(self) -> None:
        if not self._closed:
            self.on_hook()
            self._closed = True

    # -- audio
    def read(self) -> Frame | None:
        if self._closed:
            return None
        frame = self._render() if self._capture is None else self._capture.read()
        if frame is not None:
            self._sample = frame.end
        return frame

    def _render(self) -> Frame | None:
        """The exchange's next frame, or None once the line has ended."""
        start = self._rendered
        if self._exchange.finished(start) or (
                self._max_samples is not None and start >= self._max_samples):
            return None
        samples, events = self._exchange.render(start, self.frame_samples)
        self._rendered = start + self.frame_samples
        return Frame(start, samples, events)

    def _now(self) -> int:
        """The line's sample at this moment, where a control takes effect.

        Unpaced that is the end of the frame just read; paced, the end of what
        the codec has captured by now, which is later when the reader is behind.
        """
        if self._capture is not None:
            self._capture.catch_up()
        return self._rendered

    def write(self, samples: np.ndarray) -> None:
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError("SimLine.write: samples must be a 1-D int16 array")
        if not self._off_hook or x.size == 0:
            return
        if x.dtype != np.int16:
            x = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
        # Audio covers the frame last captured (the frame just read, for a reader that
        # keeps up), but never from before we went off hook; it is never waited for.
        now = self._now()
        start = max(self._tx_pos, now - self.frame_samples, self._hook_at, 0)
        self._tx_pos = start + x.size
        self._exchange.transmit(start, x, echo_at=max(start, now))

    # -- controls
    def off_hook(self) -> None:
        if self._closed:
            raise LineError("sim line: closed")
        if not self._off_hook:
            self._off_hook = True
            self._hook_at = self._now()
            self._exchange.hook(self._hook_at, True)

    def on_hook(self) -> None:
        if self._off_hook:
            self._off_hook = False
            self._exchange.cancel_flash()
            self._exchange.hook(self._now(), False)

    def flash(self, ms: float) -> None:
        if not self._off_hook:
            raise LineError("sim line: a hook flash needs the line off hook")
        if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not (
                math.isfinite(ms) and 0 < ms <= 5000):
            raise ValueError(f"flash: {ms!r} is not a time of 0..5000 ms")
        if self._exchange.flashing:
            return
        self._exchange.flash(self._now(), max(1, to_samples(ms)))


def level_or_off(table: Table, name: str, default: float, low: float, high: float):
    """A level in dB, or false for none."""
    value = table.get(name, (float, bool), default)
    if value is False:
        return None
    if value is True:
        raise ConfigError(f"{table.key(name)}: expected a level in dB or false, got true")
    if not low <= value <= high:
        raise ConfigError(f"{table.key(name)}: {value} is outside {low}..{high}")
    return value
