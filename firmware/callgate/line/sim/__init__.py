"""The `sim` backend: a simulated exchange and far end, the engine's and the flow's test bench.

    line.py       SimLine, the Line (paced or not)
    calls.py      what it is asked to do: calls, callers' scripts, agents, outcomes
    exchange.py   the exchange: the call in progress, the hook, what we send; made of
    alerting.py     ring cadence and on-hook caller ID timing
    caller.py       the caller's script and how they clear down
    pbx.py          flash, recall dial tone, the extension we dial, the agent
    mixer.py        the sample clock: timers, audio sources, line noise
    signals.py      the tones and caller ID it plays
"""

from .calls import (Agent, CallerIdSpec, CallWaiting, Clear, Press, SimCall, SimOutcome,
                    calls_from_config, default_calls)
from .line import SimLine, level_or_off

__all__ = ["Agent", "CallWaiting", "CallerIdSpec", "Clear", "Press", "SimCall", "SimLine",
           "SimOutcome", "calls_from_config", "default_calls", "level_or_off"]
