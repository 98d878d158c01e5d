"""`callgate decode`: everything a recording carries, as one event stream.

The detector bank (bank.py) with the DTMF receiver, both caller ID receivers
(FSK, Bell 202 and V.23 at once, and DTMF-signalled) and, given a tone plan,
the call-progress detector; stamps count from the start of the recording.

The CLI's default plan is every shipped plan combined (toneplans.auto_toneplan,
tones.combined_plan): one detector whose frequency sets are shared wherever
plans coincide, so trying them all costs about what one plan does.
"""

from __future__ import annotations

import numpy as np

from .bank import DetectorBank
from .events import Event
from .fsk import BELL202, V23
from .tones import TonePlan


def line_decoder(toneplan: TonePlan | None = None) -> DetectorBank:
    """The bank `callgate decode` runs: keys, every caller ID, and the plan's tones."""
    return DetectorBank(dtmf=True, dtmf_callerid=True, fsk=(BELL202, V23), tones=toneplan)


DECODE_FRAME = 8000
"""A recording is decoded a second at a time: no caller waits on a file, every
detector gives the same events however the audio is split, and each NumPy call
then covers fifty 20 ms frames, which halves the cost of a file."""


def decode(samples: np.ndarray, toneplan: TonePlan | None = None,
           frame: int = DECODE_FRAME) -> list[Event]:
    """Decode a whole recording (int16, 8 kHz) in frames; events in onset order."""
    bank = line_decoder(toneplan)
    events: list[Event] = []
    for start in range(0, len(samples), frame):
        events.extend(bank.feed(samples[start:start + frame]))
    events.extend(bank.flush())
    events.sort(key=lambda e: e.sample)
    return events
