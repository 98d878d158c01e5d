"""Outgoing audio, one frame at a time: prompts (with barge-in) and dialled digits.

The engine writes exactly one frame per frame read. A barge-in stops the
prompt at the next frame written, so the caller hears at most the frame
that was already on its way: a key stops a prompt within one frame of being
recognised.
"""

from __future__ import annotations

import numpy as np


class Player:
    """Plays one piece of int16 audio in frames; `stop()` cuts it at the frame boundary."""

    def __init__(self, frame_samples: int = 160) -> None:
        self.frame = frame_samples
        self._silence = np.zeros(frame_samples, dtype=np.int16)
        self._audio: np.ndarray | None = None
        self._pos = 0
        self.label = ""
        self.barge_in = False
        self.last_sound_end: int | None = None    # line sample our audio last ended

    @property
    def playing(self) -> bool:
        return self._audio is not None

    def start(self, audio: np.ndarray, label: str = "", barge_in: bool = False) -> None:
        self._audio = np.asarray(audio, dtype=np.int16)
        self._pos = 0
        self.label = label
        self.barge_in = barge_in

    def stop(self) -> None:
        self._audio = None
        self._pos = 0

    @property
    def finished(self) -> bool:
        """Everything has been written (the last frame may have been partial)."""
        return self._audio is not None and self._pos >= len(self._audio)

    def next_frame(self, n: int, at: int) -> np.ndarray:
        """The next `n` samples to write (silence when idle); `at` is their line sample."""
        audio = self._audio
        if audio is None or self._pos >= len(audio):
            return self._silence if n == self.frame else np.zeros(n, dtype=np.int16)
        chunk = audio[self._pos:self._pos + n]
        self._pos += n
        self.last_sound_end = at + len(chunk)
        if len(chunk) < n:
            chunk = np.concatenate([chunk, np.zeros(n - len(chunk), dtype=np.int16)])
        return chunk
