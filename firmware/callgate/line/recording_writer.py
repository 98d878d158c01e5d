"""The recording's disk writes, on a thread of their own.

RecordingLine (recording.py) runs inside the engine's frame loop, which must
never wait on a disk. So it only hands over what to write, through a bounded
queue, and this thread creates the WAV, appends its audio and writes the
sidecar. On a paced line, if the queue fills (the card is stuck for
seconds), that recording is abandoned: its partial files are removed and one
log line says so. A fixture with a hole in it would replay wrong, and the
call itself never waits for it. An unpaced line (sim, replay) has no frame
deadline and runs faster than any disk: there the hand-over waits for room.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import wave
from pathlib import Path

log = logging.getLogger("callgate.line")

QUEUE_ITEMS = 1000             # about 20 s of 20 ms frames waiting at most
RATE = 8000


class RecordingWriter:
    """Writes recordings n = 1, 2, ... from `open`, `audio` and `finish` hand-overs."""

    def __init__(self, directory: Path, suffix: str, files: list[Path],
                 wait: bool = False) -> None:
        self.directory = directory
        self.wait = wait                     # unpaced line: wait for room, lose nothing
        self.suffix = suffix                 # the sidecar's (".events.json")
        self.files = files                   # finished WAVs are appended here
        self.abandoned = 0
        self._queue: queue.Queue = queue.Queue(QUEUE_ITEMS)
        self._late: list[tuple] = []         # control hand-overs waiting for room
        self._broken: set[int] = set()       # recordings that lost audio: abandoned
        self._n = 0
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="callgate-recording", daemon=True)
        self._thread.start()                 # now, not from the frame loop

    # -- the frame loop's side: never blocks

    def open(self) -> int:
        """A new recording; its number."""
        self._n += 1
        self._control(("open", self._n))
        return self._n

    def audio(self, n: int, data: bytes) -> None:
        if n in self._broken:
            return
        self._hand_over_late()
        try:
            if self._late:                   # its open is still waiting: no room
                raise queue.Full
            self._queue.put(("audio", n, data), block=self.wait)
        except queue.Full:
            self._broken.add(n)
            log.error("recording %d: the disk is too slow; the recording is abandoned", n)

    def finish(self, n: int, sidecar: dict) -> None:
        self._control(("finish", n, sidecar, n in self._broken))
        self._broken.discard(n)

    def _control(self, item: tuple) -> None:
        self._late.append(item)
        self._hand_over_late()

    def _hand_over_late(self) -> None:
        while self._late:
            try:
                self._queue.put(self._late[0], block=self.wait)
            except queue.Full:
                return
            self._late.pop(0)

    # -- closing (not in the frame loop): waits for the disk

    def close(self, timeout_s: float = 30.0) -> None:
        if self._thread is None:
            return
        try:
            for item in [*self._late, None]:
                self._queue.put(item, timeout=timeout_s)
        except queue.Full:
            log.error("recording: the disk is stuck; the last recording is not finished")
        self._late = []
        self._thread.join(timeout_s)
        self._thread = None

    # -- the writer's thread

    def _run(self) -> None:
        current: tuple[int, Path, wave.Wave_write] | None = None
        while True:
            item = self._queue.get()
            if item is None:
                if current is not None:
                    current[2].close()
                return
            try:
                current = self._do(item, current)
            except Exception as err:         # noqa: BLE001 - the writer must keep draining
                where = getattr(err, "filename", None) or self.directory
                log.error("recording: %s (%s)", where,
                          getattr(err, "strerror", None) or type(err).__name__)
                if current is not None:
                    self._discard(current)
                current = None

    def _do(self, item: tuple, current):
        kind, n = item[0], item[1]
        if kind == "open":
            if current is not None:
                self._discard(current)
            base = self._next_name()
            fd = os.open(base.with_suffix(".wav"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            wav = wave.open(os.fdopen(fd, "wb"), "wb")
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            return n, base, wav
        if current is None or current[0] != n:
            return current                   # its file could not be made: nothing to add
        if kind == "audio":
            current[2].writeframes(item[2])
            return current
        sidecar, broken = item[2], item[3]
        if broken:
            self._discard(current)
            self.abandoned += 1
            return None
        _, base, wav = current
        wav.close()
        path = base.with_name(base.name + self.suffix)
        tmp = path.with_name(path.name + ".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(sidecar, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
        self.files.append(base.with_suffix(".wav"))
        return None

    def _discard(self, current) -> None:
        _, base, wav = current
        try:
            wav.close()
        except OSError:
            pass
        for path in (base.with_suffix(".wav"), base.with_name(base.name + self.suffix)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def _next_name(self) -> Path:
        used = [int(p.stem[5:]) for p in self.directory.glob("call-*.wav")
                if p.stem[5:].isdigit()]
        return self.directory / f"call-{max(used, default=0) + 1:04d}"
