"""One detector bank: everything a line carries, as one event stream on the line's clock.

`callgate decode`, the engine's on-hook caller ID capture and the engine's
call loop each build a DetectorBank with the detectors they need on:

    DTMF keys                 dtmf=True
    DTMF caller ID            dtmf_callerid=True   (ETSI DTMF signalling, before the ring)
    FSK caller ID             fsk=(BELL202, V23)   (or one of them)
    call-waiting caller ID    callwaiting=True     (FSK only in the window a CAS alert opens)
    call-progress tones       tones=<TonePlan>
    answer by voice           voice=True           (needs the tone plan, whose tones it ignores)

The bank owns the sample clock: `reset(at)` says which line sample comes
next, every event is stamped on that clock, and `feed(samples, at)` checks
it. So whoever feeds it never adds offsets.

Only DTMF and the two gates need an answer within a frame (a key stops a
prompt, an alert opens the FSK window, a voice ends a transfer), so they see
every frame as it comes. FSK caller ID and call-progress tones tolerate a
tenth of a second more, so by default they are fed in blocks of at least
`slow_block` samples: with 20 ms frames this cuts the fixed cost of their
NumPy work by five. Stamps do not change; only when an event is returned does.
"""

from __future__ import annotations

from collections import deque
from operator import attrgetter
from typing import Sequence

import numpy as np

from . import RATE
from .callerid import CallerIdReceiver, DtmfCallerIdDecoder
from .dtmf import DtmfReceiver
from .events import Event
from .fsk import FskSpec, specs_tuple
from .gates import BlockCutter, CasGate, VoiceGate
from .tones import CallProgressDetector, TonePlan

SLOW_BLOCK = 800
"""Samples (100 ms) gathered before the FSK and tone detectors run."""

KEY_BLOCK = 320
"""Samples (40 ms) gathered before the DTMF receiver runs: a key still stops a
prompt within a frame or two of its onset being confirmed, and the receiver's
fixed cost per call is paid half as often at 20 ms frames."""

CAS_WINDOW_MS = 3000
"""How long after a call-waiting alert the FSK receiver listens (GR-30: the burst
starts within 0.5 s of the CPE's acknowledgement and lasts under 1 s)."""

_onset = attrgetter("sample")


class _Gather:
    """Samples held back for detectors that can wait, in one reused buffer.

    Size 0 holds nothing back: every add is ready at once."""

    __slots__ = ("size", "buf", "fill", "at")

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = np.empty(max(2 * size, 1), dtype=np.int16)
        self.fill = 0
        self.at = 0           # line sample of buf[0]

    def reset(self, at: int) -> None:
        self.fill, self.at = 0, at

    def add(self, x: np.ndarray) -> None:
        fill, n = self.fill, x.size
        if fill + n > self.buf.size:
            grown = np.empty(max(fill + n, 2 * self.buf.size), dtype=np.int16)
            grown[:fill] = self.buf[:fill]
            self.buf = grown
        self.buf[fill:fill + n] = x
        self.fill = fill + n

    @property
    def ready(self) -> bool:
        return self.fill >= self.size

    def take(self) -> tuple[np.ndarray, int]:
        """What is held (a view, valid until the next add) and its first line sample."""
        block, at = self.buf[:self.fill], self.at
        self.at, self.fill = at + self.fill, 0
        return block, at


class _Window:
    """One stretch [start, end) of line samples the call-waiting FSK receiver hears."""

    __slots__ = ("start", "end", "opened")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end, self.opened = start, end, False


class DetectorBank:
    """The detectors a line needs, fed once, stamped on the line's sample clock.

    Events out: DtmfEvent (dsp.dtmf), CallerIdEvent (dsp.events; FSK, DTMF or
    call-waiting caller ID, checksum not yet judged), ToneEvent (dsp.tones),
    CasEvent and VoiceEvent (dsp.gates). `power` is the mean square (int16
    units squared) of the last feed's samples, for a silence check.
    """

    def __init__(self, *, dtmf: bool = True, dtmf_callerid: bool = False,
                 fsk: FskSpec | Sequence[FskSpec] | None = None, callwaiting: bool = False,
                 tones: TonePlan | None = None, voice: bool = False,
                 slow_block: int = SLOW_BLOCK, voice_level_dbm0: float = -42.0,
                 voice_max_tone_share: float = 0.5, cas_level_dbm0: float = -40.0,
                 cas_min_share: float = 0.5, cas_window_ms: int = CAS_WINDOW_MS,
                 dtmf_min_level_dbm0: float | None = None,
                 key_block: int = KEY_BLOCK) -> None:
        if callwaiting and not fsk:
            raise ValueError("DetectorBank: callwaiting needs the FSK modems (fsk=...)")
        if voice and tones is None:
            raise ValueError("DetectorBank: voice needs the tone plan (tones=...)")
        if tones is not None and not isinstance(tones, TonePlan):
            raise TypeError("DetectorBank: tones must be a TonePlan "
                            "(callgate.toneplans.load_toneplan), not a name")
        if not isinstance(slow_block, int) or slow_block < 0:
            raise ValueError(f"DetectorBank: slow_block must be a whole number >= 0, "
                             f"got {slow_block!r}")
        levels = {} if dtmf_min_level_dbm0 is None else {"min_level_dbm0": dtmf_min_level_dbm0}
        self._digits = DtmfReceiver(**levels) if dtmf or dtmf_callerid else None
        self._report_digits = dtmf
        self._dtmf_cid = DtmfCallerIdDecoder() if dtmf_callerid else None
        self._fsk = CallerIdReceiver(specs_tuple(fsk)) if fsk else None
        self._tones = CallProgressDetector(tones) if tones is not None else None
        self._cas = CasGate(cas_level_dbm0, cas_min_share) if callwaiting else None
        self._voice = (VoiceGate(tones, voice_level_dbm0, voice_max_tone_share)
                       if voice else None)
        self._listening = voice
        self._cas_window = cas_window_ms * RATE // 1000
        self._cutter = BlockCutter()
        if not isinstance(key_block, int) or key_block < 0:
            raise ValueError(f"DetectorBank: key_block must be a whole number >= 0, "
                             f"got {key_block!r}")
        self._pending = _Gather(slow_block)
        self._keys = _Gather(key_block)
        self.gaps = 0
        """Times `feed` was given a later `at` than expected (samples lost): a fresh start."""
        self.reset(0)

    # ------------------------------------------------------------------ the clock

    def reset(self, at: int) -> None:
        """Clear every detector; the next sample fed is line sample `at`.

        Digits, tones or bursts in progress are forgotten, not reported."""
        at = int(at)
        self._next = at
        self._pending.reset(at)
        self._keys.reset(at)
        self._windows: deque[_Window] = deque()
        self.power = 0.0
        self._cutter.reset(at)
        for det in (self._digits, self._dtmf_cid, self._fsk, self._tones, self._cas,
                    self._voice):
            if det is not None:
                det.reset(at)

    @property
    def position(self) -> int:
        """Line sample of the next sample to be fed."""
        return self._next

    # ------------------------------------------------------------------ switches

    def listen_voice(self, on: bool) -> None:
        """Run the voice gate or not; switching it on starts with a clean history."""
        if self._voice is None:
            if on:
                raise ValueError("DetectorBank: built without the voice gate (voice=True)")
            return
        if on and not self._listening:
            self._voice.clear()
        self._listening = bool(on)

    @property
    def voiced(self) -> bool:
        """The voice gate, listening, finds voice in the latest blocks."""
        return self._listening and self._voice is not None and self._voice.voiced

    @property
    def callwaiting_window(self) -> tuple[int, int] | None:
        """[start, end) line samples of the open call-waiting FSK window, if one is open."""
        if not self._windows:
            return None
        w = self._windows[0]
        return (w.start, w.end)

    # ------------------------------------------------------------------ audio in

    def feed(self, samples: np.ndarray, at: int | None = None) -> list[Event]:
        """Consume int16 samples (line sample `at` first, if given); events in onset order.

        A later `at` than expected (the line lost samples) restarts every
        detector there, as reset(at) would, and counts in `gaps`; an earlier one
        is a caller's error."""
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"DetectorBank.feed: samples must be one-dimensional, "
                             f"got shape {x.shape}")
        if at is not None and at != self._next:
            if at < self._next:
                raise ValueError(f"DetectorBank.feed: sample {at} was already fed "
                                 f"(next is {self._next}); reset(at) to start again")
            self.gaps += 1
            self.reset(at)
        n = x.size
        if n == 0:
            return []
        end = self._next = self._next + n
        out: list[Event] = []
        self._gates(x, out)
        if self._digits is not None:
            self._keys.add(x)
            if self._keys.ready:
                out += self._key_events(self._keys.take()[0], end)
        self._pending.add(x)
        if self._pending.ready:
            out += self._run_pending()
        if len(out) > 1:
            out.sort(key=_onset)
        return out

    def flush(self) -> list[Event]:
        """End of stream: whatever the detectors still hold; then a fresh start at `position`."""
        out: list[Event] = []
        if self._digits is not None:
            if self._keys.fill:
                out += self._key_events(self._keys.take()[0], self._next)
            digits = self._digits.flush()
            if self._report_digits:
                out += digits
            if self._dtmf_cid is not None:
                out += self._dtmf_cid.feed(digits)
                out += self._dtmf_cid.flush()
        if self._pending.fill:
            out += self._run_pending()
        if self._fsk is not None and (self._cas is None or
                                      (self._windows and self._windows[0].opened)):
            out += self._fsk.flush()
        if self._tones is not None:
            out += self._tones.flush()
        self.reset(self._next)
        out.sort(key=_onset)
        return out

    # ------------------------------------------------------------------ inside

    def _gates(self, x: np.ndarray, out: list[Event]) -> None:
        """The frame-by-frame gates; also measures the frame's power."""
        gated = self._cas is not None or (self._listening and self._voice is not None)
        first, blocks, energy, frame_energy = self._cutter.cut(x, energies=gated)
        self.power = frame_energy / x.size
        if not energy:
            return
        if self._cas is not None:
            for ev in self._cas.feed_blocks(first, blocks, energy):
                if not self._windows or ev.confirmed >= self._windows[-1].end:
                    self._windows.append(_Window(ev.confirmed, ev.confirmed + self._cas_window))
                    out.append(ev)
        if self._listening and self._voice is not None:
            out += self._voice.feed_blocks(first, blocks, energy)

    def _key_events(self, x: np.ndarray, end: int) -> list[Event]:
        """DTMF over the samples up to line sample `end`, and the DTMF caller ID they make."""
        out: list[Event] = []
        digits = self._digits.feed(x)
        if self._report_digits:
            out += digits
        if self._dtmf_cid is not None:
            out += self._dtmf_cid.feed(digits, now=end)
        return out

    def _run_pending(self) -> list[Event]:
        block, at = self._pending.take()
        return self._slow(block, at)

    def _slow(self, x: np.ndarray, start: int) -> list[Event]:
        """FSK caller ID and call-progress tones over samples from line sample `start`."""
        out: list[Event] = []
        if self._fsk is not None:
            out += self._fsk.feed(x) if self._cas is None else self._in_windows(x, start)
        if self._tones is not None:
            out += self._tones.feed(x)
        return out

    def _in_windows(self, x: np.ndarray, start: int) -> list[Event]:
        """Call-waiting FSK: the receiver hears only the windows its alerts opened."""
        out: list[Event] = []
        end = start + x.size
        while self._windows and self._windows[0].start < end:
            w = self._windows[0]
            if not w.opened:
                self._fsk.reset(w.start)
                w.opened = True
            lo, hi = max(start, w.start) - start, min(end, w.end) - start
            if hi > lo:
                out += self._fsk.feed(x[lo:hi])
            if end < w.end:
                break
            out += self._fsk.flush()
            self._windows.popleft()
        return out
