"""Record calls from any line as replay fixtures, with keyed digits scrubbed.

`RecordingLine` wraps a Line and passes everything through; on the side it
writes what the line received as a WAV plus the sidecar JSON of line events
and of our controls, in exactly the format `replay` reads (line/replay/sidecar.py).
So a call from the field becomes a fixture.

One file pair per call. Recording starts at the first sign of a call (a
line event, or our going off hook) with a second of audio from before it,
and ends once the line has been on hook with no event for 8 s (or on
close/end of the line). Files are named call-0001.wav / call-0001.events.json
with the next free number, 0600, in a directory the recorder keeps at 0700.

Security (DEVELOPERS.md): a recording must not hold the digits a caller
keys (a PIN is DTMF audio). The signal core's DtmfReceiver runs on the
received audio; each digit's span, from its onset until its tones have been
gone for longer than the receiver's release time, plus a margin either side,
is replaced with low comfort noise before anything reaches the disk. Audio is
held back `HOLDBACK_MS` so a digit is known before its onset is written, and
a held key stays scrubbed however long it is held. The only digits kept are
those heard on hook before we first went off hook in this recording and
while no parallel handset is known off hook: that is where DTMF caller ID
lives, and no caller can key into a call that has not been answered. The
sidecar never holds digits (modem-reported DTMF events are dropped).
The receiver runs with a shorter onset than the engine's (2 windows), so
marginal digits are scrubbed too; a little speech lost to talk-off is the
price.

After a hook flash we are on the agent's leg, and what we send there may
speak the customer's identifier (the agent whisper reads it digit by digit).
Its echo would reach the received audio, so while we are on that leg every
stretch in which we send sound, plus `ECHO_TAIL_MS`, is scrubbed the same
way. What the exchange and the agent send while we are quiet is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..config import Table
from ..dsp.dtmf import DTMF_FREQS, DtmfReceiver
from ..dsp.events import Event
from ..dsp.level import dbm0_to_rms, power_to_dbm0
from .base import FlashDone, Frame, Line, LineError, Pacing, ParallelHandset
from .recording_writer import RecordingWriter
from .replay.sidecar import SIDECAR_SUFFIX, Control, event_entry, sidecar_object

RATE = 8000
PREROLL_MS = 1000        # audio kept from before the first sign of a call
IDLE_MS = 8000           # on hook with no event this long: the call (and file) is over
HOLDBACK_MS = 500        # > the receiver's detection delay (~70 ms) plus the margin
MARGIN_MS = 40           # scrubbed before each digit's onset and after its end
COMFORT_DBM0 = -65.0     # level of the noise that replaces a digit
BLOCK = 40               # 5 ms blocks for following a digit's tones to their end
QUIET_BLOCKS = 10        # 50 ms without the tones ends a digit: longer than the
                         # receiver's release, so a tone that comes back is a new digit
TONE_DROP_DB = 18.0      # a tone counts as present down to this far below its onset level
TONE_FLOOR_DBM0 = -50.0  # ... and never below this
ECHO_TAIL_MS = 300       # after our own audio on the agent's leg, its echo may still come
SENDING_DBM0 = -55.0     # our audio above this level counts as sound


class _Span:
    """One digit's scrubbed stretch of audio, in line samples; `end` None while held."""

    def __init__(self, onset: int, digit: str, low_dbm0: float, high_dbm0: float,
                 margin: int) -> None:
        self.start = onset - margin
        self.end: int | None = None
        self.checked = onset            # audio up to here has been looked at for the tones
        self.quiet = 0                  # blocks in a row without the tones
        self.margin = margin
        self.freqs = DTMF_FREQS[digit]
        levels = [x if np.isfinite(x) else -30.0 for x in (low_dbm0, high_dbm0)]
        self.threshold = np.array([max(x - TONE_DROP_DB, TONE_FLOOR_DBM0) for x in levels])
        n = np.arange(BLOCK)
        self.basis = np.exp(-2j * np.pi * np.outer(n, self.freqs) / RATE)   # (BLOCK, 2)

    def follow(self, audio: np.ndarray, base: int) -> None:
        """Look at the audio from `checked` on (`audio[0]` is line sample `base`)."""
        if self.end is not None:
            return
        offset = self.checked - base
        blocks = (len(audio) - offset) // BLOCK
        if blocks <= 0:
            return
        x = audio[offset: offset + blocks * BLOCK].astype(np.float64).reshape(blocks, BLOCK)
        power = 2.0 * np.abs(x @ self.basis) ** 2 / BLOCK ** 2        # mean square of each tone
        present = (power_to_dbm0(power) >= self.threshold).any(axis=1)
        for k, here in enumerate(present):   # per 5 ms block, only while a digit is open
            self.quiet = 0 if here else self.quiet + 1
            if self.quiet >= QUIET_BLOCKS:
                quiet_start = self.checked + (k + 1 - QUIET_BLOCKS) * BLOCK
                self.end = quiet_start + self.margin
                return
        self.checked += blocks * BLOCK


class _Sent:
    """A stretch of our own audio on the agent's leg (fixed ends), scrubbed like a digit."""

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end


class RecordingLine(Line):
    """A Line that records what passes through it; see the module docstring."""

    def __init__(self, inner: Line, directory: str | Path, margin_ms: float = MARGIN_MS,
                 seed: int = 0) -> None:
        super().__init__()
        self.inner = inner
        self.rate = inner.rate
        self.frame_samples = inner.frame_samples
        self.capabilities = inner.capabilities
        self.country = inner.country
        self.directory = Path(directory)
        self.margin = int(round(margin_ms * RATE / 1000))
        self.files: list[Path] = []               # WAVs finished so far
        self.scrubbed = 0                         # digit spans replaced
        self._rng = np.random.default_rng(seed)
        self._rx = DtmfReceiver(onset_windows=2)
        self._pending: list[tuple[int, np.ndarray]] = []   # frames not yet written (or dropped)
        self._spans: list[_Span] = []
        self._now = 0                             # line sample at the end of the last frame
        self._start: int | None = None            # line sample of the recording's first sample
        self._last_activity = 0
        self._answered = False                    # went off hook during this recording
        self._parallel = False                    # a parallel handset is off hook
        self._agent_leg = False                   # flashed away from the caller
        self._events: list[tuple[int, Event]] = []
        self._controls: list[Control] = []
        self._prepare_directory()
        self._writer = RecordingWriter(self.directory, SIDECAR_SUFFIX, self.files,
                                       wait=not inner.capabilities.paced)
        self._rec = 0                             # the writer's number of this recording

    @classmethod
    def from_config(cls, inner: Line, table: Table) -> Line:
        """[line.record]: `enabled` (default false), `dir`, `margin_ms`. Off: `inner` itself."""
        enabled, directory, margin = cls.settings(table)
        return cls(inner, directory, margin) if enabled else inner

    @staticmethod
    def settings(table: Table) -> tuple[bool, str, float]:
        """[line.record] read and checked, nothing made (check-config): enabled, dir,
        margin_ms."""
        enabled = table.get("enabled", bool, False)
        directory = table.get("dir", str, "/var/lib/callgate/recordings")
        margin = table.number("margin_ms", MARGIN_MS, 20, 500)
        table.reject_unknown(("enabled", "dir", "margin_ms"))
        return enabled, directory, margin

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
        except OSError as err:
            raise LineError(f"{self.directory}: cannot use as the recording directory "
                            f"({err.strerror or err})") from None

    # -- pass-through
    @property
    def sample(self) -> int:
        return self.inner.sample

    @property
    def is_off_hook(self) -> bool:
        return self.inner.is_off_hook

    @property
    def pacing(self) -> Pacing:
        return self.inner.pacing

    def pacing_mark(self) -> Pacing:
        return self.inner.pacing_mark()

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self._finish()
            self._writer.close()             # the last files are on disk when close returns

    def write(self, samples: np.ndarray) -> None:
        self.inner.write(samples)
        if self._agent_leg and len(samples):
            self._sent(len(samples), samples)

    def off_hook(self) -> None:
        self._control(Control(self.inner.sample, "off_hook"))
        self._answered = True
        self._agent_leg = False
        self.inner.off_hook()

    def on_hook(self) -> None:
        self._control(Control(self.inner.sample, "on_hook"))
        self._agent_leg = False
        self.inner.on_hook()

    def flash(self, ms: float) -> None:
        self._control(Control(self.inner.sample, "flash", ms=float(ms)))
        self._agent_leg = not self._agent_leg      # a second flash brings the caller back
        self.inner.flash(ms)

    def _sent(self, n: int, samples: np.ndarray) -> None:
        """Our audio on the agent's leg: scrub where it (or its echo) can be heard."""
        x = np.asarray(samples, dtype=np.float64)
        if power_to_dbm0(float(x @ x) / len(x)) < SENDING_DBM0:
            return
        now = self.inner.sample
        start = now - 2 * n - self.margin          # the frame it covers, and the one before
        end = now + n + ECHO_TAIL_MS * RATE // 1000
        last = self._spans[-1] if self._spans else None
        if isinstance(last, _Sent) and last.end >= start:
            last.end = max(last.end, end)
        else:
            self._spans.append(_Sent(start, end))

    def listen_callerid(self, on: bool) -> None:
        self._control(Control(self.inner.sample, "listen_callerid", on=bool(on)), start=False)
        self.inner.listen_callerid(on)

    def read(self) -> Frame | None:
        frame = self.inner.read()
        if frame is None:
            self._finish()
            return None
        self._take(frame)
        return frame

    # -- recording
    def _control(self, control: Control, start: bool = True) -> None:
        if self._start is None and start:
            self._begin()
        if self._start is not None:
            self._controls.append(control)
            self._last_activity = control.sample

    def _take(self, frame: Frame) -> None:
        samples = np.asarray(frame.samples, dtype=np.int16)
        self._pending.append((frame.start, samples))
        self._now = frame.end
        kept = [e for e in frame.events if event_entry(e, 0) is not None]
        for e in frame.events:
            if isinstance(e, ParallelHandset):
                self._parallel = e.off_hook
        if kept or any(isinstance(e, FlashDone) for e in frame.events):
            if self._start is None:
                self._begin()
            self._last_activity = frame.end
        if self._start is not None:
            self._events.extend((e.sample, e) for e in kept)
        keyed = self._answered or self._parallel or self.inner.is_off_hook
        for digit in self._rx.feed(samples):
            if keyed:
                self.scrubbed += 1
                self._spans.append(_Span(digit.sample, digit.digit, digit.low_dbm0,
                                         digit.high_dbm0, self.margin))
        self._follow_spans()
        if self._start is None:
            self._drop_before(self._now - PREROLL_MS * RATE // 1000)
            return
        self._write_before(self._now - HOLDBACK_MS * RATE // 1000)
        if (not self.inner.is_off_hook and not any(s.end is None for s in self._spans)
                and self._now - self._last_activity >= IDLE_MS * RATE // 1000):
            self._finish()

    def _follow_spans(self) -> None:
        open_spans = [s for s in self._spans if s.end is None]
        if not open_spans:
            return
        base = min(s.checked for s in open_spans)
        audio = self._slice(base, self._now)
        for span in open_spans:
            span.follow(audio[span.checked - base:], span.checked)

    def _slice(self, a: int, b: int) -> np.ndarray:
        parts = [s[max(a - start, 0): max(b - start, 0)] for start, s in self._pending
                 if start + len(s) > a and start < b]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def _drop_before(self, limit: int) -> None:
        while self._pending and self._pending[0][0] + len(self._pending[0][1]) <= limit:
            self._pending.pop(0)
        self._spans = [s for s in self._spans if s.end is None or s.end > limit]

    def _begin(self) -> None:
        self._start = self._pending[0][0] if self._pending else self.inner.sample
        self._last_activity = self._now
        self._answered = self.inner.is_off_hook
        self._events, self._controls = [], []
        self._rec = self._writer.open()

    def _write_before(self, limit: int) -> None:
        """Write (scrubbed) every pending frame that ends before `limit`."""
        while self._pending and self._pending[0][0] + len(self._pending[0][1]) <= limit:
            start, samples = self._pending.pop(0)
            self._writer.audio(self._rec, self._scrub(start, samples).astype("<i2").tobytes())
        self._spans = [s for s in self._spans if s.end is None or s.end > limit]

    def _scrub(self, start: int, samples: np.ndarray) -> np.ndarray:
        end = start + len(samples)
        out = samples
        for span in self._spans:
            stop = end if span.end is None else min(span.end, end)
            a, b = max(span.start, start), stop
            if a >= b:
                continue
            if out is samples:
                out = samples.copy()
            noise = self._rng.normal(0.0, dbm0_to_rms(COMFORT_DBM0), b - a)
            out[a - start: b - start] = np.round(noise).astype(np.int16)
        return out

    def _finish(self) -> None:
        """Close the current recording: flush the held-back audio, write the sidecar."""
        if self._start is None:
            return
        for span in self._spans:              # a key still held at the end: scrub to the end
            if span.end is None:
                span.end = self._now + self.margin
        self._write_before(self._now + self.frame_samples)
        start = self._start
        events = [(s - start, e) for s, e in self._events if s >= start]
        controls = [Control(c.sample - start, c.control, c.ms, c.on) for c in self._controls]
        self._writer.finish(self._rec, sidecar_object(events, controls, self.capabilities,
                                                      recorded_from=type(self.inner).__name__))
        self._start = None
        self._events, self._controls = [], []
        self._answered = False
