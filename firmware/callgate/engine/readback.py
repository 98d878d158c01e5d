"""Digits read to the line (the agent whisper's customer number), from the prompt set.

The flow asks with `SayDigits`; the engine renders it here as one piece of
audio: the lead prompt ("customer number"), a gap, then every digit in a slot
as long as the longest digit prompt plus a gap. Equal slots mean the audio's
length tells only how many digits there are, and no prompt name, label or log
line ever spells them.
"""

from __future__ import annotations

import numpy as np

from ..call import SayDigits


def render_digits(say: SayDigits, prompts, rate: int = 8000) -> np.ndarray:
    """The int16 audio of `say` from `prompts` (a PromptSet or a name -> audio mapping)."""
    digits = [np.asarray(prompts[name], dtype=np.int16) for name in say.digit_prompts]
    lead = np.asarray(prompts[say.lead], dtype=np.int16) if say.lead else np.zeros(0, np.int16)
    ms = rate // 1000
    start = len(lead) + (say.lead_gap_ms * ms if len(lead) else 0)
    slot = max(len(a) for a in digits) + say.digit_gap_ms * ms
    out = np.zeros(start + slot * len(say.digits), dtype=np.int16)
    out[:len(lead)] = lead
    for i, ch in enumerate(say.digits):
        audio = digits[ord(ch) - 48]
        at = start + i * slot
        out[at:at + len(audio)] = audio
    return out
