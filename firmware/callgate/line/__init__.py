"""Line backends behind one interface (see base.py).

Backends are imported only when chosen, so a device without pyserial,
gpiod or ALSA runs the others. Nothing outside line/ imports those libraries.
"""

from __future__ import annotations

from importlib import import_module

from ..config import ConfigError, Table
from .base import (Capabilities, FlashDone, Frame, Line, LineError, LineFault, LineRestored,
                   LineTone, LoopCurrent, ParallelHandset, PolarityReversal, RingStart, RingStop)

BACKENDS = {
    "sim": "callgate.line.sim:SimLine",
    "replay": "callgate.line.replay:ReplayLine",
    "modem": "callgate.line.modem:ModemLine",
    "hat": "callgate.line.hat:HatLine",
}


def make_line(table: Table) -> Line:
    """The backend named by `backend` in the [line] table, built from its own sub-table.

    Each backend class has `from_config(table: Table) -> Line`, reading
    [line.<backend>]; bad values raise ConfigError naming the key.
    """
    name = table.choice("backend", tuple(BACKENDS), "sim")
    module, cls = BACKENDS[name].split(":")
    backend = getattr(import_module(module), cls)
    return backend.from_config(table.sub(name))


__all__ = ["BACKENDS", "Capabilities", "ConfigError", "FlashDone", "Frame", "Line", "LineError",
           "LineFault", "LineRestored", "LineTone", "LoopCurrent", "ParallelHandset",
           "PolarityReversal", "RingStart", "RingStop", "make_line"]
