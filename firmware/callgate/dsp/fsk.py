"""FSK modems for caller ID: Bell 202 and V.23, a streaming receiver and a transmitter.

Receiver chain, all on whole frames:

1. `CarrierGate`: one band-pass (shared by every modem that listens on the line)
   and its power measured in fixed 10 ms blocks counted from the start of the
   stream. The gate opens when the in-band power is above `on_dbm0` *and* most
   of the line's power is in the band, and closes with hysteresis. While it is
   closed nothing else runs, which keeps an idle line almost free.
2. `FskDemodulator`: non-coherent quadrature correlators at the mark and space
   frequencies, each integrated over one bit (a boxcar of shifted adds, with the
   last samples carried over). The soft decision (|M|^2 - |S|^2) / (|M|^2 + |S|^2)
   is level independent.
3. An asynchronous (UART-style) framer: a mark-to-space crossing is a candidate
   start bit; the ten bit centres after it are read by interpolation, so every
   byte re-times itself and a +-1 % bit-rate error never accumulates.

Because the gate works on blocks fixed to the stream and every filter carries
its state, any split of the same audio into frames gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np
from scipy.signal import butter, group_delay, lfilter, sos2tf

from . import RATE
from .events import Event
from .level import dbm0_to_amplitude, dbm0_to_rms


@dataclass(frozen=True)
class FskSpec:
    """A binary FSK modem: mark (binary 1) and space (binary 0) tones and the bit rate."""

    name: str
    mark_hz: float
    space_hz: float
    baud: float

    def __post_init__(self) -> None:
        for label, value in (("mark_hz", self.mark_hz), ("space_hz", self.space_hz),
                             ("baud", self.baud)):
            if not (0 < value < RATE / 2):
                raise ValueError(f"FskSpec.{label} must be between 0 and {RATE // 2} Hz, got {value}")
        if self.mark_hz == self.space_hz:
            raise ValueError("FskSpec mark_hz and space_hz must differ")

    @property
    def samples_per_bit(self) -> float:
        return RATE / self.baud


BELL202 = FskSpec("bell202", 1200.0, 2200.0, 1200.0)
V23 = FskSpec("v23", 1300.0, 2100.0, 1200.0)

BLOCK = 80  # carrier gate block: 10 ms
TONE_LAG = 4  # samples over which the tone check measures a correlator's turn
TONE_SAMPLES = 320  # steady-mark samples (40 ms) the tone check looks at


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class FskCarrier(Event):
    """The gate opened (`on`) or closed; `sample` is the estimated carrier edge."""

    on: bool = True
    kind = "fsk_carrier"


@dataclass(frozen=True)
class FskByte(Event):
    """One 8N1 character; `sample` is the leading edge of its start bit."""

    value: int = 0
    framing_ok: bool = True
    modem: str = field(default="", repr=False)
    mark_bits: float = field(default=0.0, repr=False)  # unbroken mark before the start bit
    kind = "fsk_byte"


# --------------------------------------------------------------------------- gate


@dataclass
class GateSpan:
    """A stretch of band-passed audio the demodulators must look at.

    `onset` is set on the span that opens a carrier (the span then starts one
    block early, so nothing of the first bits is lost); `ended` is set on the
    span that closes it.
    """

    start: int
    band: np.ndarray
    onset: int | None = None
    ended: int | None = None


class CarrierGate:
    """Band energy gate with hysteresis, shared by all modems on a line.

    Work is done on whole 10 ms blocks counted from the start of the stream.
    A block whose total power is too small to hold a carrier is not even
    band-passed (the filter restarts from rest, one block early, when the line
    wakes up), so a quiet line costs one power sum per frame.
    """

    def __init__(self, low_hz: float = 900.0, high_hz: float = 2500.0,
                 on_dbm0: float = -46.0, off_dbm0: float = -50.0,
                 on_ratio: float = 0.7, off_ratio: float = 0.6) -> None:
        if not (0 < low_hz < high_hz < RATE / 2):
            raise ValueError(f"CarrierGate band must satisfy 0 < low < high < {RATE // 2} Hz")
        if off_dbm0 > on_dbm0:
            raise ValueError("CarrierGate off_dbm0 must not exceed on_dbm0 (hysteresis)")
        sos = butter(2, [low_hz, high_hz], btype="bandpass", fs=RATE, output="sos")
        self._b, self._a = sos2tf(sos)
        _, gd = group_delay((self._b, self._a), w=[(low_hz + high_hz) / 2], fs=RATE)
        self.delay = float(gd[0])
        self._on_ms = dbm0_to_rms(on_dbm0) ** 2
        self._off_ms = dbm0_to_rms(off_dbm0) ** 2
        self._wake_ms = 0.5 * self._off_ms  # below this a block cannot hold the gate
        self._on_ratio = on_ratio
        self._off_ratio = off_ratio
        self.reset()

    def reset(self, at: int = 0) -> None:
        """Carrier off, filter at rest; the next sample fed is line sample `at` (blocks count
        from there)."""
        self._zi = np.zeros(self._a.size - 1)
        self._raw = np.zeros(0)
        self._pos = int(at)  # absolute index of _raw[0]
        self._prev_raw = np.zeros(0)  # last complete block, as received
        self._prev = np.zeros(0)  # ... and band-passed (when it was)
        self._filtering = False  # the filter state runs up to _pos
        self.on = False

    @property
    def position(self) -> int:
        """Absolute index of the next sample to be fed."""
        return self._pos + self._raw.size

    def feed(self, frame: np.ndarray) -> list[GateSpan]:
        """Take a frame; return the spans of complete blocks that carry a carrier."""
        x = np.asarray(frame, dtype=np.float64).ravel()
        if x.size:
            self._raw = np.concatenate((self._raw, x)) if self._raw.size else x
        nblocks = self._raw.size // BLOCK
        if nblocks == 0:
            return []
        used = nblocks * BLOCK
        raw = self._raw[:used]
        self._raw = self._raw[used:]
        base = self._pos
        self._pos += used

        rr = raw.reshape(nblocks, BLOCK)
        e_all = np.einsum("ij,ij->i", rr, rr) / BLOCK
        active = e_all >= self._wake_ms
        if not self.on and not active.any():
            self._rest(raw)
            return []
        band = self._filter(raw, active)
        bb = band.reshape(nblocks, BLOCK)
        e_band = np.einsum("ij,ij->i", bb, bb) / BLOCK
        spans = self._decide(base, band, e_band, e_all)
        if active[-1]:
            self._prev_raw, self._prev = raw[-BLOCK:], band[-BLOCK:]
        else:
            self._rest(raw)
        return spans

    def _rest(self, raw: np.ndarray) -> None:
        """The line is quiet at the end of this feed: let the filter come to rest."""
        self._prev_raw, self._prev = raw[-BLOCK:], np.zeros(0)
        self._zi = np.zeros_like(self._zi)
        self._filtering = False

    def _filter(self, raw: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Band-pass the active runs of blocks (and the block before each fresh run)."""
        band = np.zeros(raw.size)
        if active.all() and self._filtering:
            band, self._zi = lfilter(self._b, self._a, raw, zi=self._zi)
            return band
        edges = np.flatnonzero(np.diff(np.concatenate(([0], active.astype(np.int8), [0]))))
        for s, e in zip(edges[::2], edges[1::2]):
            lo, hi = s * BLOCK, e * BLOCK
            if s == 0 and self._filtering:
                band[lo:hi], zi = lfilter(self._b, self._a, raw[lo:hi], zi=self._zi)
            else:
                pre = raw[lo - BLOCK:lo] if s > 0 else self._prev_raw
                y, zi = lfilter(self._b, self._a, np.concatenate((pre, raw[lo:hi])),
                                zi=np.zeros_like(self._zi))
                if s > 0:
                    band[lo - BLOCK:hi] = y
                else:
                    self._prev = y[:pre.size]
                    band[lo:hi] = y[pre.size:]
            if e == active.size:
                self._zi, self._filtering = zi, True
        return band

    def _decide(self, base: int, band: np.ndarray, e_band: np.ndarray,
                e_all: np.ndarray) -> list[GateSpan]:
        """Run the hysteresis over the block powers; cut the on-stretches out."""
        opens = (e_band >= self._on_ms) & (e_band >= self._on_ratio * e_all)
        holds = (e_band >= self._off_ms) & (e_band >= self._off_ratio * e_all)
        if not self.on and not opens.any():
            return []
        if self.on and holds.all():
            return [GateSpan(base, band)]
        spans: list[GateSpan] = []
        cur: GateSpan | None = GateSpan(base, band[:0]) if self.on else None
        cur_from = 0
        for b in range(e_band.size):
            if not self.on:
                if opens[b]:
                    self.on = True
                    prev = band[(b - 1) * BLOCK:b * BLOCK] if b > 0 else self._prev
                    here = band[b * BLOCK:(b + 1) * BLOCK]
                    start = base + b * BLOCK - prev.size
                    onset = start + self._onset_in(np.concatenate((prev, here)))
                    cur = GateSpan(start, prev, onset=onset)
                    cur_from = b
            elif not holds[b]:
                self.on = False
                cur.band = np.concatenate((cur.band, band[cur_from * BLOCK:(b + 1) * BLOCK]))
                before = band[(b - 1) * BLOCK:b * BLOCK] if b > 0 else self._prev
                tail = np.concatenate((before, band[b * BLOCK:(b + 1) * BLOCK]))
                cur.ended = base + (b + 1) * BLOCK - tail.size + self._end_in(tail)
                spans.append(cur)
                cur = None
        if cur is not None:
            cur.band = np.concatenate((cur.band, band[cur_from * BLOCK:]))
            spans.append(cur)
        return spans

    def _end_in(self, band: np.ndarray) -> int:
        """Where the carrier falls within its last two blocks (mirror of `_onset_in`)."""
        return band.size - self._onset_in(band[::-1])

    def _onset_in(self, band: np.ndarray) -> int:
        """Where the carrier rises within two blocks: a quarter of its peak envelope."""
        win = 8
        p = band * band
        c = np.concatenate(([0.0], np.cumsum(p)))
        ma = (c[win:] - c[:-win]) / win
        idx = int(np.argmax(ma >= 0.25 * ma.max()))
        return max(0, int(round(idx + 0.75 * win - self.delay)))


# --------------------------------------------------------------------------- demodulator


def _mixer_table(freq: float) -> tuple[np.ndarray | None, int]:
    """exp(-j w n) over one exact period when the period is short; else none."""
    ratio = Fraction(freq).limit_denominator(10_000) / RATE
    if ratio == Fraction(freq) / RATE and ratio.denominator <= RATE:
        period = ratio.denominator
        n = np.arange(period)
        return np.exp(-2j * np.pi * freq / RATE * n), period
    return None, 0


class FskDemodulator:
    """Correlator demodulator and async framer for one modem (fed by a `CarrierGate`)."""

    def __init__(self, spec: FskSpec, delay: float = 0.0) -> None:
        if not isinstance(spec, FskSpec):
            raise ValueError(f"FskDemodulator needs an FskSpec, got {type(spec).__name__}")
        self.spec = spec
        self.T = spec.samples_per_bit
        self.L = max(2, int(self.T))
        self._delay = delay
        self._lo = [_mixer_table(spec.mark_hz), _mixer_table(spec.space_hz)]
        self._w = np.array([spec.mark_hz, spec.space_hz]) * 2 * np.pi / RATE
        self._W = self.L + TONE_LAG + 1
        self.start(0)

    def start(self, sample: int, onset: int | None = None) -> None:
        """Forget everything: audio of a new carrier (rising at `onset`) begins at `sample`."""
        self._zi = np.zeros((2, self.L - 1), dtype=complex)  # the last L-1 mixer outputs
        self._d = np.zeros(0)
        self._y = np.zeros((2, 0), dtype=complex)
        self._base = sample  # absolute index of _d[0]
        self._next = sample  # absolute index of the next sample to arrive
        self._search = sample + 1
        self._onset = int(sample if onset is None else onset)
        self._run_from = self._onset
        self._hist_d = np.zeros(self._W - 1)
        self._hist_y = np.zeros((2, TONE_LAG), dtype=complex)
        self._turn = np.zeros(2, dtype=complex)
        self.steady_mark = 0  # samples of steady mark measured since start()

    def process(self, start: int, band: np.ndarray) -> list[FskByte]:
        """Demodulate band-passed samples starting at absolute `start`; return whole bytes."""
        if band.size == 0:
            return []
        if start != self._next:
            raise ValueError(f"FskDemodulator expected sample {self._next}, got {start}")
        self._next = start + band.size
        n = np.arange(start, start + band.size)
        z = np.empty((2, band.size), dtype=complex)
        for k, (table, period) in enumerate(self._lo):
            if table is not None:
                z[k] = band * table[n % period]
            else:
                z[k] = band * np.exp(-1j * self._w[k] * n)
        # one-bit boxcar as L shifted adds: the same sums whatever the frame split
        zz = np.concatenate((self._zi, z), axis=1)
        m = band.size
        y = zz[:, :m].copy()
        for k in range(1, self.L):
            y += zz[:, k:k + m]
        self._zi = zz[:, -(self.L - 1):]
        pw = y.real ** 2 + y.imag ** 2
        d = (pw[0] - pw[1]) / (pw[0] + pw[1] + 1e-9)
        self._measure_tones(d, y)
        if self._d.size:
            self._d = np.concatenate((self._d, d))
            self._y = np.concatenate((self._y, y), axis=1)
        else:
            self._d, self._y = d, y
        return self._frame()

    def _measure_tones(self, d: np.ndarray, y: np.ndarray) -> None:
        """Accumulate how the correlators turn inside steady mark or space stretches.

        A tone off the correlator's frequency by f makes its output turn by
        2*pi*f per second; the modem whose tones are really on the line turns
        least. Only windows wholly inside one tone count, so the bit edges
        (and the seizure) do not bias it.
        """
        W = self._W
        dd = np.concatenate((self._hist_d, d))
        cs = np.concatenate(([0], np.cumsum(dd <= 0)))
        spaces = cs[W:] - cs[:-W]
        yy = np.concatenate((self._hist_y, y), axis=1)
        turn = yy[:, TONE_LAG:] * np.conj(yy[:, :-TONE_LAG])
        mark_at = np.flatnonzero(spaces == 0)
        room = TONE_SAMPLES - self.steady_mark
        if room > 0:  # measure only the first TONE_SAMPLES of steady mark: a fixed, split-proof span
            cut = mark_at[room] if mark_at.size > room else spaces.size
            mark_at = mark_at[:room]
            space_at = np.flatnonzero(spaces[:cut] == W)
            self._turn[0] += turn[0][mark_at].sum()
            self._turn[1] += turn[1][space_at].sum()
            self.steady_mark += int(mark_at.size)
        self._hist_d = dd[-(W - 1):]
        self._hist_y = yy[:, -TONE_LAG:]

    @property
    def tone_error_hz(self) -> float | None:
        """Mean distance (Hz) between the tones heard and this modem's tones; None until measured.

        Measured over the first TONE_SAMPLES samples of steady mark (normally
        in the mark signal) and the steady space seen meanwhile.
        """
        heard = [t for t in self._turn if t != 0]
        if self.steady_mark < TONE_SAMPLES or not heard:
            return None
        return float(np.mean([abs(np.angle(t)) for t in heard]) * RATE / (2 * np.pi * TONE_LAG))

    def _frame(self) -> list[FskByte]:
        """Find start bits and read the characters that are complete in the buffer.

        Every mark-to-space crossing is read as if it were a start bit, all at
        once; a short loop then keeps those that a real UART would have seen
        (a valid start bit, not inside the previous character).
        """
        d, base, T = self._d, self._base, self.T
        n = d.size
        if n < 2:
            return []
        space = d <= 0
        all_downs = downs = np.flatnonzero(~space[:-1] & space[1:]) + 1
        ups = np.flatnonzero(space[:-1] & ~space[1:]) + 1
        c = downs - 1 + d[downs - 1] / (d[downs - 1] - d[downs])
        pos = c[:, None] + (np.arange(10) + 0.5) * T
        whole = pos[:, -1] + 1 < n
        downs, c, pos = downs[whole], c[whole], pos[whole]
        fl = pos.astype(np.int64)
        fr = pos - fl
        v = d[fl] * (1 - fr) + d[fl + 1] * fr
        start_ok = (v[:, 0] < 0).tolist()
        accepted: list[int] = []
        i_search = max(1, self._search - base)
        for k, i in enumerate(downs.tolist()):
            if i >= i_search and start_ok[k]:
                accepted.append(k)
                i_search = int(np.ceil(pos[k, -1]))
        if not whole.all():  # the first character still arriving: look at it again
            i_search = max(i_search, int(all_downs[whole.sum()]))
        else:
            i_search = max(i_search, n - 1)
        out = self._bytes(np.array(accepted, dtype=np.int64), c, pos, fl, v, ups)
        self._trim(i_search, ups)
        return out

    def _bytes(self, acc: np.ndarray, c: np.ndarray, pos: np.ndarray, fl: np.ndarray,
               v: np.ndarray, ups: np.ndarray) -> list[FskByte]:
        """Turn accepted start bits into FskByte records."""
        if acc.size == 0:
            return []
        base, T = self._base, self.T
        v, c, fl = v[acc], c[acc], fl[acc]
        values = (v[:, 1:9] > 0).astype(np.int64) @ (1 << np.arange(8))
        framing = v[:, 9] > 0
        j = np.searchsorted(ups, c) - 1
        if ups.size:
            run_from = np.where(j >= 0, base + ups[np.maximum(j, 0)], self._run_from)
        else:  # no mark began in the buffer: every byte's mark run began before it
            run_from = np.full(c.shape, self._run_from)
        run_from = np.maximum(run_from, self._onset)  # a mark cannot start before the carrier
        # whole samples first, in exact integers, so any frame split gives the same figures
        whole = np.floor(c)
        frac = c - whole
        edge = (base + whole.astype(np.int64)) - run_from.astype(np.int64)
        marks = np.round((edge + frac) / T, 3)
        samples = (base + whole.astype(np.int64)
                   + np.round(frac - (self.L - 1) / 2 - self._delay).astype(np.int64))
        return [FskByte(sample=int(s), value=int(val), framing_ok=bool(f), modem=self.spec.name,
                        mark_bits=float(m))
                for s, val, f, m in zip(samples, values, framing, marks)
                if s >= self._onset - T / 2]  # noise just before the carrier is no character

    def _trim(self, i_search: int, ups: np.ndarray) -> None:
        """Drop what no future start bit can need; remember where the last mark began."""
        keep = max(0, i_search - 1)
        j = int(np.searchsorted(ups, keep, side="right")) - 1
        if j >= 0:
            self._run_from = int(self._base + ups[j])
        self._search = self._base + i_search
        if keep:
            self._d = self._d[keep:]
            self._y = self._y[:, keep:]
            self._base += keep


# --------------------------------------------------------------------------- receiver


class ByteHold:
    """Holds characters back until the gate has vouched that the carrier outlived them.

    The gate closes only at the first failing block, and the carrier's fall is
    placed within the last two blocks, so a character is released once its stop
    bit lies a block behind everything the gate has passed. Releasing at a
    fixed distance from block edges (not at frame edges) keeps any frame split
    giving the same characters.
    """

    def __init__(self, spec: FskSpec) -> None:
        self._reach = 9.5 * spec.samples_per_bit - spec.samples_per_bit / 2
        self._held: list[FskByte] = []

    def clear(self) -> None:
        self._held = []

    def pass_span(self, span: GateSpan, got: list[FskByte]) -> list[FskByte]:
        """Characters demodulated from `span` in; the ones now certain out."""
        self._held += got
        if span.ended is not None:
            limit = span.ended - self._reach
            out = [b for b in self._held if b.sample <= limit]
            self._held = []
            return out
        limit = span.start + span.band.size - BLOCK - self._reach
        k = 0
        while k < len(self._held) and self._held[k].sample <= limit:
            k += 1
        out, self._held = self._held[:k], self._held[k:]
        return out

    def flush(self) -> list[FskByte]:
        """End of stream while the carrier is up: what is held was complete."""
        out, self._held = self._held, []
        return out


class FskReceiver:
    """Streaming FSK receiver for one modem: carrier events and 8N1 bytes."""

    def __init__(self, spec: FskSpec, **gate_options) -> None:
        if not isinstance(spec, FskSpec):
            raise ValueError(f"FskReceiver needs an FskSpec, got {type(spec).__name__}")
        self.spec = spec
        self.gate = CarrierGate(**gate_options)
        self.demod = FskDemodulator(spec, self.gate.delay)
        self.hold = ByteHold(spec)

    def reset(self, at: int = 0) -> None:
        """Forget any carrier in progress; the next sample fed is line sample `at`."""
        self.gate.reset(at)
        self.demod.start(at)
        self.hold.clear()

    def feed(self, frame: np.ndarray) -> list[Event]:
        """Consume int16 samples; return FskCarrier and FskByte events in time order."""
        out: list[Event] = []
        for span in self.gate.feed(frame):
            if span.onset is not None:
                self.demod.start(span.start, span.onset)
                self.hold.clear()
                out.append(FskCarrier(span.onset, on=True))
            out += self.hold.pass_span(span, self.demod.process(span.start, span.band))
            if span.ended is not None:
                out.append(FskCarrier(span.ended, on=False))
        return out

    def flush(self) -> list[Event]:
        """End of stream: a carrier still up is reported as lost where the audio ends."""
        if not self.gate.on:
            return []
        self.gate.on = False
        return [*self.hold.flush(), FskCarrier(self.gate.position, on=False)]


# --------------------------------------------------------------------------- transmitter


def _as_bits(bits: Iterable[int]) -> np.ndarray:
    arr = np.asarray(list(bits) if not isinstance(bits, np.ndarray) else bits)
    if arr.size and (arr.ndim != 1 or not np.isin(arr, (0, 1)).all()):
        raise ValueError("FSK bits must be a flat sequence of 0 and 1")
    return arr.astype(np.int8).ravel()


def frame_8n1(data: bytes) -> np.ndarray:
    """Bits of each byte as sent on the line: start 0, eight bits LSB first, stop 1."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"frame_8n1 needs bytes, got {type(data).__name__}")
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    bits = (raw[:, None] >> np.arange(8)) & 1
    framed = np.concatenate((np.zeros((raw.size, 1), np.int8), bits.astype(np.int8),
                             np.ones((raw.size, 1), np.int8)), axis=1)
    return framed.ravel()


def seizure_bits(n: int) -> np.ndarray:
    """Channel seizure: n alternating bits, 0 first (the same as 0x55 sent 8N1)."""
    if n < 0:
        raise ValueError(f"seizure length must be >= 0 bits, got {n}")
    return (np.arange(n) % 2).astype(np.int8)


def mark_bits(n: int) -> np.ndarray:
    """Mark signal: n bits of steady mark (binary 1)."""
    if n < 0:
        raise ValueError(f"mark length must be >= 0 bits, got {n}")
    return np.ones(n, dtype=np.int8)


class FskTransmitter:
    """Phase-continuous FSK; successive calls continue both the phase and the bit clock."""

    def __init__(self, spec: FskSpec, level_dbm0: float = -13.5) -> None:
        if not isinstance(spec, FskSpec):
            raise ValueError(f"FskTransmitter needs an FskSpec, got {type(spec).__name__}")
        if not (-80.0 <= level_dbm0 <= 3.14):
            raise ValueError(f"FSK level must be between -80 and +3.14 dBm0, got {level_dbm0}")
        self.spec = spec
        self.amplitude = dbm0_to_amplitude(level_dbm0)
        self._phase = 0.0
        self._bits_sent = 0
        self._samples_sent = 0

    def send_bits(self, bits: Iterable[int]) -> np.ndarray:
        """Audio (int16) for raw bits, 1 = mark."""
        bits = _as_bits(bits)
        if bits.size == 0:
            return np.zeros(0, dtype=np.int16)
        spec = self.spec
        end_bit = self._bits_sent + bits.size
        end_sample = int(np.ceil(end_bit * RATE / spec.baud - 1e-9))
        n = np.arange(self._samples_sent, end_sample)
        idx = np.floor(n * spec.baud / RATE + 1e-9).astype(np.int64) - self._bits_sent
        idx = np.clip(idx, 0, bits.size - 1)
        freq = np.where(bits[idx] == 1, spec.mark_hz, spec.space_hz)
        step = 2 * np.pi * freq / RATE
        phase = self._phase + np.concatenate(([0.0], np.cumsum(step[:-1])))
        self._phase = float((phase[-1] + step[-1]) % (2 * np.pi))
        self._bits_sent = end_bit
        self._samples_sent = end_sample
        return np.round(self.amplitude * np.sin(phase)).astype(np.int16)

    def send_bytes(self, data: bytes) -> np.ndarray:
        """Audio for bytes framed 8N1."""
        return self.send_bits(frame_8n1(data))


def fsk_tx(spec: FskSpec, bits_or_bytes, level_dbm0: float = -13.5) -> np.ndarray:
    """One-shot FSK: bytes/bytearray are framed 8N1, any other sequence is raw bits."""
    tx = FskTransmitter(spec, level_dbm0)
    if isinstance(bits_or_bytes, (bytes, bytearray, memoryview)):
        return tx.send_bytes(bits_or_bytes)
    return tx.send_bits(bits_or_bytes)


def callerid_bits(message: bytes, seizure: int, mark: int, trailer: int = 2) -> np.ndarray:
    """The whole caller ID burst as bits: seizure, mark signal, 8N1 message, mark trailer."""
    return np.concatenate((seizure_bits(seizure), mark_bits(mark), frame_8n1(message),
                           mark_bits(trailer)))


def specs_tuple(specs: FskSpec | Sequence[FskSpec]) -> tuple[FskSpec, ...]:
    """Accept one spec or several; refuse anything else with a clear message."""
    if isinstance(specs, FskSpec):
        return (specs,)
    out = tuple(specs)
    if not out or not all(isinstance(s, FskSpec) for s in out):
        raise ValueError("specs must be one FskSpec or a non-empty sequence of FskSpec")
    return out
