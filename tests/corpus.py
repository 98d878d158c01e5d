"""Recorded speech and music from Debian packages, for false-event and talk-off figures.

- Asterisk's prompt sets (asterisk-core-sounds-{en,es,fr,ru}-wav): real voices
  recorded for the telephone, 8 kHz, about 25 minutes a language;
- Asterisk's music on hold (asterisk-moh-opsound-wav): 18 minutes of music
  as a caller hears it while waiting.

tests/test_talkoff.py adds espeak-ng speech, gcin-voice syllables, the
alsa-utils announcements and asc-music; bench/signal_core.py uses all of it.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from callgate.wav import read_wav

ASTERISK_SOUNDS = "/usr/share/asterisk/sounds"
ASTERISK_MOH = "/usr/share/asterisk/moh"
LANGUAGES = ("en", "es", "fr", "ru")


def _joined(paths: list[str]) -> np.ndarray:
    if not paths:
        raise FileNotFoundError("no recordings found; run tools/test, which installs the "
                                "asterisk sound packages")
    return np.concatenate([read_wav(p) for p in paths])


def asterisk_speech(lang: str, every: int = 1) -> np.ndarray:
    """The language's prompts one after another (every `every`-th file, for a shorter set)."""
    paths = sorted(glob.glob(os.path.join(ASTERISK_SOUNDS, lang, "*.wav")))
    return _joined(paths[::every])


def music_on_hold() -> np.ndarray:
    return _joined(sorted(glob.glob(os.path.join(ASTERISK_MOH, "*.wav"))))


def minutes(x: np.ndarray) -> float:
    return x.size / 8000 / 60
