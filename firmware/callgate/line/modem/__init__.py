"""The `modem` backend: a USB voice modem (ITU-T V.253) over pyserial.

    line.py       ModemLine, the Line: the call as the modem sees it, faults, recovery
    v253.py       the protocol: the byte stream (<DLE> shielding, events), caller ID lines
    audio.py      the modem's sample formats (u-law, 8-bit linear) to and from int16
    profiles.py   what differs between modem chipsets, and how to tell them apart
"""

from . import audio, profiles, v253
from .line import ModemLine

__all__ = ["ModemLine", "audio", "profiles", "v253"]
