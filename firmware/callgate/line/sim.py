"""`sim`: a simulated exchange and far end, the test bench of the engine and the call flow.

The line runs on its own sample clock, as fast as frames are asked for. The
exchange (line/exchange.py) rings with the country's cadence (the [ring]
table of its tone plan), sends on-hook caller ID in the right window, plays
callers who key digits and hang up in every way lines signal it, sends call
waiting during a call, and on a hook flash gives recall dial tone, decodes
the digits we dial and rings the agent's extension. Our own audio comes back
at `echo_db` one frame later, over line noise at `noise_dbm0`. Everything is
deterministic for a given `seed`.

Audio we write covers the frame just read (full duplex: what we send and
what we hear share the clock); controls take effect from the next frame.
`outcomes` says what happened to each call, for tests to check.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import ConfigError, Table
from ..dsp.callerid import callerid_tx
from ..dsp.fsk import BELL202
from ..dsp.level import dbm0_to_rms
from ..toneplans import available_toneplans, load_toneplan
from .base import Capabilities, Frame, Line, LineError
from .exchange import CID_AFTER_RING_MS, CID_BEFORE_RING_MS, Exchange
from .exchange import ms as to_samples
from .sim_calls import (HANGUP_SIGNALS, Agent, CallerIdSpec, CallWaiting, HangUp, Press,
                        SimCall, SimOutcome, calls_from_config, default_calls)

__all__ = ["Agent", "CallWaiting", "CallerIdSpec", "HangUp", "Press", "SimCall", "SimLine",
           "SimOutcome", "default_calls"]


class SimLine(Line):
    """A line to a simulated exchange that works through `calls` in turn.

    `read()` returns None once every call is over and the line has been idle
    on hook for 2 s (or the clock reached `max_seconds`, a guard for tests).
    """

    capabilities = Capabilities(loop_current=True, polarity=True, parallel_handset=False,
                                full_duplex=True, onhook_audio=True, paced=False)

    def __init__(self, calls: list[SimCall], country: str = "us",
                 echo_db: float | None = -10.0, noise_dbm0: float | None = -65.0,
                 seed: int = 0, *, max_seconds: float | None = None) -> None:
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
        self._last_read = 0
        self._hook_at = 0
        self._closed = False

    @staticmethod
    def _check_call(i: int, call: SimCall, plan) -> None:
        """What only the country decides: hang-up tones, and room for Bell 202 caller ID."""
        tones = set(plan.names)
        for k, step in enumerate(call.script):
            if isinstance(step, HangUp):
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
        max_seconds, repeat and [[line.sim.calls]] (see sim_calls.py)."""
        country = table.choice("country", available_toneplans(), "us")
        echo_db = level_or_off(table, "echo_db", -10.0, -80, 0)
        noise = level_or_off(table, "noise_dbm0", -65.0, -100, -20)
        seed = table.get("seed", int, 0)
        max_seconds = table.number("max_seconds", None, 1, 1e7)
        try:
            tones = load_toneplan(country).names
        except ValueError as err:
            raise ConfigError(f"{table.key('country')}: {err}") from None
        calls = calls_from_config(table, tones)
        bad = table.unknown()
        if bad:
            raise ConfigError(f"{bad[0]}: unknown key")
        try:
            return cls(calls, country, echo_db, noise, seed, max_seconds=max_seconds)
        except ValueError as err:
            raise ConfigError(f"{table.path}.{err}") from None

    # -- results
    @property
    def outcomes(self) -> list[SimOutcome]:
        """One SimOutcome per call, filled in as the calls run."""
        return self._exchange.outcomes

    # -- lifecycle
    def close(self) -> None:
        if not self._closed:
            self.on_hook()
            self._closed = True

    # -- audio
    def read(self) -> Frame | None:
        if self._closed or self._exchange.finished(self._sample) or (
                self._max_samples is not None and self._sample >= self._max_samples):
            return None
        start = self._sample
        samples, events = self._exchange.render(start, self.frame_samples)
        self._last_read = start
        self._sample = start + self.frame_samples
        return Frame(start, samples, events)

    def write(self, samples: np.ndarray) -> None:
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError("SimLine.write: samples must be a 1-D int16 array")
        if not self._off_hook or x.size == 0:
            return
        if x.dtype != np.int16:
            x = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
        # Audio covers the frame just read, but never from before we went off hook.
        start = max(self._tx_pos, self._last_read, self._hook_at)
        self._tx_pos = start + x.size
        self._exchange.transmit(start, x, echo_at=max(start, self._sample))

    # -- controls
    def off_hook(self) -> None:
        if self._closed:
            raise LineError("sim line: closed")
        if not self._off_hook:
            self._off_hook = True
            self._hook_at = self._sample
            self._exchange.hook(self._sample, True)

    def on_hook(self) -> None:
        if self._off_hook:
            self._off_hook = False
            self._exchange.cancel_flash()
            self._exchange.hook(self._sample, False)

    def flash(self, ms: float) -> None:
        if not self._off_hook:
            raise LineError("sim line: a hook flash needs the line off hook")
        if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not (
                math.isfinite(ms) and 0 < ms <= 5000):
            raise ValueError(f"flash: {ms!r} is not a time of 0..5000 ms")
        if self._exchange.flashing:
            return
        self._exchange.flash(self._sample, max(1, to_samples(ms)))


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
