"""The `replay` backend: a recorded WAV of a line played back as if live.

A recording carries the line's audio but not what the line hardware saw
besides it: ring voltage, loop current, polarity. Those come from a sidecar
JSON file beside the WAV (``call.wav`` -> ``call.events.json``, or a path
given explicitly), in the format of sidecar.py, which the call recorder
(line/recording.py) writes, so a call from the field becomes a test fixture.
Events are delivered by `read()` in the 20 ms frame they fall in, stamped
with their exact sample; `flash()` is answered with FlashDone after its time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...config import Table
from ...dsp.events import Event
from ...wav import WavError, read_wav
from ..base import FRAME_SAMPLES, Capabilities, FlashDone, Frame, Line, LineError
from .sidecar import Control, Sidecar, load_sidecar, parse_sidecar, sidecar_path


class ReplayLine(Line):
    """Plays a recording as the line's received audio, as fast as it is read.

    `audio` is a WAV path or int16 samples at 8 kHz; `events` a sidecar path,
    a decoded sidecar object, or None to use the WAV's own sidecar if one
    exists. Writes are kept in `sent`, controls in `controls`.
    """

    def __init__(self, audio: str | Path | np.ndarray, events: str | Path | dict | None = None,
                 frame_samples: int = FRAME_SAMPLES) -> None:
        super().__init__()
        self.frame_samples = int(frame_samples)
        if isinstance(audio, np.ndarray):
            self.audio = np.asarray(audio, dtype=np.int16).ravel()
            self.path: Path | None = None
        else:
            self.path = Path(audio)
            if self.path.is_dir():
                raise LineError(f"{self.path}: is a directory, not a WAV recording")
            try:
                self.audio = read_wav(self.path)
            except WavError as err:
                raise LineError(str(err)) from None
        n = len(self.audio)
        if isinstance(events, dict):
            sidecar = parse_sidecar(events, "sidecar", n)
        elif events is not None:
            sidecar = load_sidecar(events, n)
        elif self.path is not None and sidecar_path(self.path).is_file():
            sidecar = load_sidecar(sidecar_path(self.path), n)
        else:
            sidecar = Sidecar([], [], {})
        self.sidecar = sidecar
        self.recorded_controls = list(sidecar.controls)
        kinds = {e.kind for e in sidecar.events}
        caps = {"loop_current": "loop_current" in kinds, "polarity": "polarity_reversal" in kinds,
                "parallel_handset": "parallel_handset" in kinds, "full_duplex": True,
                "onhook_audio": True}
        caps.update(sidecar.capabilities)
        self.capabilities = Capabilities(**caps, paced=False)
        self._events = sidecar.events
        self._next_event = 0
        self._flash_end: int | None = None
        self._sent: list[np.ndarray] = []
        self.writes: list[tuple[int, int]] = []   # (line sample, samples) of each write
        self.controls: list[Control] = []
        self.closed = False

    @classmethod
    def from_config(cls, table: Table) -> "ReplayLine":
        """[line.replay]: `path` of the WAV, optional `events` (sidecar path)."""
        path = table.get("path", str)
        events = table.get("events", str, None)
        table.reject_unknown(("path", "events"))
        return cls(path, events)

    # -- audio
    @property
    def sent(self) -> np.ndarray:
        """Everything written while off hook, in order, as int16."""
        if not self._sent:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._sent)

    def read(self) -> Frame | None:
        start = self._sample
        if start >= len(self.audio):
            return None
        end = start + self.frame_samples
        samples = self.audio[start:end]
        if len(samples) < self.frame_samples:       # last frame: pad with silence
            samples = np.concatenate([samples, np.zeros(self.frame_samples - len(samples),
                                                        dtype=np.int16)])
        events: list[Event] = []
        while self._next_event < len(self._events) and self._events[self._next_event].sample < end:
            events.append(self._events[self._next_event])
            self._next_event += 1
        if self._flash_end is not None and self._flash_end < end:
            events.append(FlashDone(max(self._flash_end, start)))
            events.sort(key=lambda e: e.sample)
            self._flash_end = None
            self._off_hook = True
        self._sample = end
        return Frame(start, samples.copy(), events)

    def write(self, samples: np.ndarray) -> None:
        if not self._off_hook or self._flash_end is not None:
            return
        data = np.asarray(samples)
        if data.dtype != np.int16:
            data = np.clip(np.round(data), -32768, 32767).astype(np.int16)
        self._sent.append(data.ravel().copy())
        self.writes.append((self._sample, data.size))

    # -- controls
    def off_hook(self) -> None:
        self.controls.append(Control(self._sample, "off_hook"))
        self._off_hook = True
        self._flash_end = None

    def on_hook(self) -> None:
        self.controls.append(Control(self._sample, "on_hook"))
        self._off_hook = False
        self._flash_end = None

    def flash(self, ms: float) -> None:
        if not ms > 0:
            raise ValueError(f"flash time must be > 0 ms, got {ms}")
        self.controls.append(Control(self._sample, "flash", ms=float(ms)))
        self._off_hook = False
        self._flash_end = self._sample + int(round(ms * self.rate / 1000))

    def listen_callerid(self, on: bool) -> None:
        self.controls.append(Control(self._sample, "listen_callerid", on=bool(on)))

    def close(self) -> None:
        if self._off_hook and not self.closed:
            self.on_hook()
        self.closed = True
