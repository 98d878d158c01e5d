"""Line backends behind one interface (see base.py).

Backends are imported only when chosen, so a device without pyserial,
gpiod or ALSA runs the others. Nothing outside line/ imports those libraries.
Beside them: paced.py (a capture ring on the wall clock, for `sim`) and
recording.py (the call recorder that wraps any line).
"""

from __future__ import annotations

from importlib import import_module

from ..config import ConfigError, Table
from .base import (UNPACED, Capabilities, FlashDone, Frame, Line, LineError, LineFault,
                   LineRestored, LineTone, LoopCurrent, Pacing, ParallelHandset, PolarityReversal,
                   RingStart, RingStop)

BACKENDS = {
    "sim": "callgate.line.sim.line:SimLine",
    "replay": "callgate.line.replay.line:ReplayLine",
    "modem": "callgate.line.modem.line:ModemLine",
    "hat": "callgate.line.hat.line:HatLine",
}
"""Each backend is a subpackage of line/; its Line class lives in its line.py."""


LINE_KEYS = ("backend", *BACKENDS, "record")
"""What [line] may hold: the backend's name, a table per backend (those not chosen are
kept, unread, so switching backends is one key), and [line.record] (the recorder's)."""


def make_line(table: Table) -> Line:
    """The backend named by `backend` in the [line] table, built from its own sub-table.

    Each backend class has `from_config(table: Table) -> Line`, reading
    [line.<backend>]; bad values raise ConfigError naming the key, and so do
    keys nobody reads, in [line] and in the backend's table.
    """
    name = table.choice("backend", tuple(BACKENDS), "sim")
    for key in LINE_KEYS[1:]:
        table.sub(key)                 # a table, if present; only the chosen one is read
    table.reject_unknown(LINE_KEYS)
    module, cls = BACKENDS[name].split(":")
    backend = getattr(import_module(module), cls)
    return backend.from_config(table.sub(name))


__all__ = ["BACKENDS", "LINE_KEYS", "UNPACED", "Capabilities", "ConfigError", "FlashDone", "Frame",
           "Line", "LineError", "LineFault", "LineRestored", "LineTone", "LoopCurrent", "Pacing",
           "ParallelHandset", "PolarityReversal", "RingStart", "RingStop", "make_line"]
