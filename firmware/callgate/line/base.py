"""The one interface every line backend implements.

A line is a sample clock with audio on it. `read()` returns the next frame of
audio from the line (int16, 8 kHz, `frame_samples` long) together with the line
events that happened during it; `write()` sends one frame of audio to the line.
Controls (`off_hook`, `on_hook`, `flash`, `listen_callerid`) take effect from
the next frame. Every event is stamped with the line's own sample count, so the
engine never looks at a wall clock: the hardware backends pace `read()` at the
real rate, `sim` and `replay` return frames as fast as they are asked for.

While on hook a backend still returns frames (silence where it has no on-hook
audio path), so ring cadence and abandon timers run on the same clock.

Backends never raise from `read()` for a line fault: they report `LineFault`
and keep the clock running (silent frames) until `LineRestored`, so a call in
progress can still be finished and recorded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..dsp import RATE
from ..dsp.events import Event

FRAME_SAMPLES = 160
"""20 ms at 8 kHz: the engine's default frame."""


class LineError(Exception):
    """A line that cannot be opened or used; the message is one line naming why."""


# ----------------------------------------------------------------- line events


@dataclass(frozen=True)
class RingStart(Event):
    """Ringing voltage began (a ring burst). Modems report only this, once per burst.

    `pattern`: the distinctive-ring pattern the line reported for the burst ("A",
    "1", "DRON=8" from a modem), None where it reports none; a second number on
    the same line rings its own pattern and can be its own service line.
    """

    pattern: str | None = field(default=None, repr=False)
    kind = "ring_start"


@dataclass(frozen=True)
class RingStop(Event):
    """Ringing voltage ended (end of a ring burst)."""

    kind = "ring_stop"


@dataclass(frozen=True)
class LoopCurrent(Event):
    """Loop current went away (`present` False) or came back. Off hook only.

    The exchange drops loop current briefly when the far end hangs up (CPC,
    calling party control); the engine decides how long a drop must be.
    """

    present: bool = False
    kind = "loop_current"


@dataclass(frozen=True)
class PolarityReversal(Event):
    """Line polarity reversed: ETSI caller ID announcement, or far end answer/clear."""

    kind = "polarity_reversal"


@dataclass(frozen=True)
class ParallelHandset(Event):
    """Another phone on the same line went off hook (`off_hook` True) or back on."""

    off_hook: bool = True
    kind = "parallel_handset"


@dataclass(frozen=True)
class FlashDone(Event):
    """A hook flash asked for with `flash()` has finished: we are off hook again."""

    kind = "flash_done"


@dataclass(frozen=True)
class LineTone(Event):
    """A tone the line hardware detected itself (a modem's busy, dial tone, silence).

    `tone` uses the call-progress names of dsp.tones: "busy", "dial", "reorder",
    "ringback", "silence", "fax". The engine also runs its own detectors on
    the audio; these are an extra signal, never the only one.
    """

    tone: str = ""
    kind = "line_tone"


@dataclass(frozen=True)
class LineFault(Event):
    """The line stopped working (modem gone, audio device lost); frames are silence."""

    reason: str = ""
    kind = "line_fault"


@dataclass(frozen=True)
class LineRestored(Event):
    """The line works again after a `LineFault` (re-opened, re-initialised, on hook)."""

    kind = "line_restored"


# caller ID reported by hardware (a modem's NMBR=/NAME=) uses
# callgate.dsp.events.CallerIdEvent, the same event the FSK receiver gives.


@dataclass
class Frame:
    """One frame read from the line: audio and the line events during it."""

    start: int                      # line sample count at samples[0]
    samples: np.ndarray             # int16, usually frame_samples long
    events: list[Event] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can tell and do; the engine adapts its hang-up detection to it."""

    loop_current: bool = False       # reports LoopCurrent (CPC)
    polarity: bool = False           # reports PolarityReversal
    parallel_handset: bool = False   # reports ParallelHandset
    full_duplex: bool = True         # can listen while it plays
    onhook_audio: bool = False       # audio while on hook (FSK caller ID via our DSP)
    paced: bool = False              # read() runs at the wall-clock rate (hardware, paced sim)


@dataclass(frozen=True)
class Pacing:
    """How well the reader kept up with a line that runs on the wall clock.

    `overruns` (frames of audio lost because the reader was too late to take
    them) and `late_frames` (frames taken more than one period after they were
    captured) count from the line's start. `max_lag_ms` is the largest
    capture-to-take lag of the current window: since the last
    `Line.pacing_mark()`, or the start. So a per-call figure is
    `line.pacing.since(mark)` with `mark = line.pacing_mark()` at the call's start.
    """

    paced: bool
    overruns: int
    late_frames: int
    max_lag_ms: float

    def since(self, earlier: "Pacing") -> "Pacing":
        """The counts since `earlier` (a mark); the lag is this window's maximum."""
        return Pacing(self.paced, self.overruns - earlier.overruns,
                      self.late_frames - earlier.late_frames, self.max_lag_ms)


UNPACED = Pacing(False, 0, 0, 0.0)
"""What a line that is not paced (or does not measure it) reports."""


class Line(ABC):
    """A phone line: frames in, frames out, hook controls. See the module docstring."""

    rate: int = RATE
    frame_samples: int = FRAME_SAMPLES
    capabilities: Capabilities = Capabilities()
    country: str | None = None    # the tone plan the line's own network uses, if it knows

    def __init__(self) -> None:
        self._sample = 0          # samples read so far: the line's clock
        self._off_hook = False

    # -- clock and state
    @property
    def sample(self) -> int:
        """Samples read so far: the time, on this line's clock."""
        return self._sample

    @property
    def is_off_hook(self) -> bool:
        return self._off_hook

    @property
    def pacing(self) -> Pacing:
        """How well the reader has kept up with the wall clock (UNPACED if not measured)."""
        return UNPACED

    def pacing_mark(self) -> Pacing:
        """`pacing` now, then start a new max-lag window; the mark for `Pacing.since`."""
        return self.pacing

    # -- lifecycle
    def open(self) -> None:
        """Acquire the device; raise LineError with a one-line reason if it cannot be."""

    def close(self) -> None:
        """Go on hook and release the device. Safe to call twice."""

    def __enter__(self) -> "Line":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- audio
    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame from the line, or None when the line has ended (replay/sim over)."""

    @abstractmethod
    def write(self, samples: np.ndarray) -> None:
        """Send int16 audio to the line (ignored on hook). One frame per read keeps pace."""

    # -- controls
    @abstractmethod
    def off_hook(self) -> None:
        """Seize the line (answer a ringing call, or take it to dial)."""

    @abstractmethod
    def on_hook(self) -> None:
        """Release the line (hang up)."""

    @abstractmethod
    def flash(self, ms: float) -> None:
        """Go on hook for `ms` then back off hook; `FlashDone` is reported after it."""

    def listen_callerid(self, on: bool) -> None:
        """Switch the on-hook caller ID path, where the hardware needs it switched."""
