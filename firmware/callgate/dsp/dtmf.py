"""DTMF (touch-tone) receiver and generator, after ITU-T Q.23/Q.24.

A digit is one tone from the low group (697, 770, 852, 941 Hz) plus one from
the high group (1209, 1336, 1477, 1633 Hz). The receiver must hear a 40 ms
digit at -30 dBm0 per tone in noise, yet stay deaf to speech and music
(talk-off), which are full of short-lived tonal components.

How the receiver works. Samples are cut into half-blocks of 53 samples; two
neighbouring halves make one analysis window of N = 106 samples (13.25 ms),
so windows overlap by half and one is judged every 6.6 ms. One matrix
product per frame gives the DFT of every complete half-block at the eight
DTMF frequencies and their second harmonics; a window's DFT is the sum of its
two halves' (phase-aligned), so nothing is computed twice. N = 106 puts the
neighbouring low-group tones (73-89 Hz apart) on or near the nulls of the
rectangular window (75.5 Hz), which is what makes the group peak test sharp.
The basis is rounded to integers so every product is an exact integer in
float64: the result does not depend on how the audio was split into frames.

A cheap first look drops windows whose strongest low and high bins are weak
or hold little of the energy (silence, noise, most speech). The rest are
measured: each group's strongest tone gets its frequency from the phase
advance of its DFT between two windows 53 samples apart, and its leakage
(computed from its amplitude and frequency) is removed from every other bin,
so one loud tone cannot disturb the level, phase or purity measured for the
other. A window is a candidate for a digit only when all of these guards
pass; each one removes a way that speech or music looks like a digit:

- Level: each tone at least `min_level_dbm0` (-40: a long rural loop brings
  digits at -36, libspandsp hears them there; -45 is still refused).
- Frequency: each tone within `max_deviation` (2.0 %) of nominal. Q.24 asks
  to accept 1.5 % and reject 3.5 %. Speech harmonics wander through the DTMF
  bins; on the talk-off corpus most windows that passed every other guard
  were 2-2.5 % off, so the limit sits at 2.0 %, leaving 0.5 % for noise.
- Group peak: each tone `relative_peak_db` (8 dB) above every other bin of
  its group. Voiced speech has harmonics every 80-300 Hz, which light up
  several bins of a group at once.
- Twist: the low tone at most `normal_twist_db` above the high one, the high
  at most `reverse_twist_db` above the low (Bellcore 8/4 dB by default, ETSI
  lines use 6/6), decided TWIST_MARGIN_DB beyond those accept figures. The
  speech spectrum falls steeply with frequency, so "digits" made of speech
  harmonics usually show large normal twist.
- Purity: the two tones carry at least `min_tone_ratio` (80 %) of the
  window's energy. A real digit is two pure tones; speech and music spread
  their energy over the band. This is the strongest single guard, and the
  one a digit keyed while someone talks fails: speech at the level of the
  tones leaves them half the energy. So a window also passes when the tones
  carry `min_band_ratio` (85 %) of the energy in the DTMF band itself (the
  window's DFT bins 8-23, 604-1736 Hz, from the same matrix product), still
  `min_tone_floor` (30 %) of all of it, and both are within
  `band_deviation` (1.5 %, Q.24's accept limit) of nominal: most of a
  voice's energy lies below the band, and white noise spreads over all of
  it, while the talk-off corpus's near misses on this path were voiced
  sounds 1.6-2 % off in opposite directions, with a tenth of the energy.
- Second harmonic: a tone whose second harmonic is within `max_harmonic_db`
  (-12 dB) of it is a voice or an instrument, not a DTMF sender.
- Duration: a digit starts after `onset_windows` (4) windows of the same
  digit, one silent window in a row tolerated between them. A 40 ms tone has
  at least 4 windows wholly inside it; a 20 ms tone has at most 3 windows
  even 75 % inside it. It ends after `release_windows` (4) windows without
  it. While a digit is held, a window whose two strongest bins are still
  that digit's and hold 40 % of the energy keeps it without the full guards
  (they decide onsets, not lengths; this also makes a held digit cheap).
  Such a window fails once the gap covers 64 of its 106 samples: a 40 ms
  pause gives at least 5 failing windows, a 10 ms drop-out at most 2. So a
  held key is one digit and a short drop-out does not split it.

The reported `sample` is the start of the first window of the run, within
about one half-block (53 samples) of the true tone onset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import RATE
from .events import Event
from .level import dbm0_to_amplitude, dbm0_to_rms

LOW_GROUP = (697, 770, 852, 941)
HIGH_GROUP = (1209, 1336, 1477, 1633)
KEYPAD = ("123A", "456B", "789C", "*0#D")

DTMF_FREQS: dict[str, tuple[int, int]] = {
    KEYPAD[r][c]: (LOW_GROUP[r], HIGH_GROUP[c]) for r in range(4) for c in range(4)
}
"""Digit -> (low-group Hz, high-group Hz)."""

HALF = 53
TWIST_MARGIN_DB = 1.5
"""The twist limits are accept figures; the decision sits this far beyond
them so that a window's measurement error (a few tenths of a dB) cannot
reject a digit at the limit. 8 dB -> decides at 9.5, well short of 12."""
ONSET_HOLES = 1
"""Silent windows in a row tolerated inside a digit's onset run."""
WINDOW = 2 * HALF
_BASIS_SCALE = 2.0 ** 14
_FUNDAMENTALS = np.array(LOW_GROUP + HIGH_GROUP, dtype=np.int64)
_FREQS = np.concatenate([_FUNDAMENTALS, 2 * _FUNDAMENTALS])
_NF = _FREQS.size
_OMEGA = 2.0 * np.pi * _FREQS / RATE
_BAND_FREQS = np.arange(8, 24) * RATE / WINDOW
"""The window's own DFT bins k = 8..23 (604-1736 Hz): the DTMF band, for the band purity."""


def _basis(freqs: np.ndarray) -> np.ndarray:
    """Integer cos/-sin columns for one half-block: exact products in float64."""
    n = np.arange(HALF)[:, None]
    phase = 2.0 * np.pi * ((n * freqs[None, :]) % RATE) / RATE
    return np.round(np.hstack([np.cos(phase), -np.sin(phase)]) * _BASIS_SCALE)


def _half_shift(freqs: np.ndarray) -> np.ndarray:
    """A window's DFT is its first half plus its second half delayed by HALF samples."""
    return np.exp(-2j * np.pi * freqs / RATE * HALF)


_BASIS = _basis(_FREQS)
_BAND_BASIS = _basis(_BAND_FREQS)
_HALF_SHIFT = _half_shift(_FREQS)
_BAND_SHIFT = _half_shift(_BAND_FREQS)
# Phase a nominal tone advances between windows one half-block apart.
_NOMINAL_CONJ = np.exp(-1j * _OMEGA[:8] * HALF)
# |W|^2 -> power (mean square) of the sine that produced it.
_POWER_SCALE = 2.0 / (WINDOW * _BASIS_SCALE) ** 2


@dataclass(frozen=True)
class DtmfEvent(Event):
    """A DTMF digit; `sample` is the tone onset."""

    digit: str = ""
    low_dbm0: float = field(default=float("nan"), repr=False)
    high_dbm0: float = field(default=float("nan"), repr=False)
    kind = "dtmf"


def _dirichlet(delta: np.ndarray) -> np.ndarray:
    """Window DFT of a unit phasor `delta` rad/sample above the analysed bin.

    e^(j delta (N-1)/2) sin(N delta/2) / sin(delta/2); a tiny offset keeps
    delta = 0 (where it is N) away from 0/0.
    """
    half = delta * 0.5 + 1e-9
    mag = np.sin(WINDOW * half) / np.sin(half)
    phase = half * (WINDOW - 1)
    return mag * np.cos(phase) + 1j * (mag * np.sin(phase))


@dataclass
class _Measure:
    """Per-window measurements of the strongest tone of each group."""

    tones: np.ndarray        # (m, 2) bin index of the low and the high tone
    deviation: np.ndarray    # (m, 2) relative frequency error
    tone_power: np.ndarray   # (m, 2) mean-square power, corrected for roll-off
    group_rest: np.ndarray   # (m, 2) strongest other bin of the group, tones removed
    harmonic: np.ndarray     # (m, 2) power at twice each tone, tones removed


def _measure(dft: np.ndarray, nxt: np.ndarray, p: np.ndarray) -> _Measure:
    """Pick each group's tone, measure it, and take both tones out of every bin.

    With a rectangular window a tone leaks into bins far from it (-21 dB
    three bins away): a low tone 8 dB above the high one would shake the
    high tone's measured level by almost 2 dB and its phase, hence its
    measured frequency, by as much. Knowing each tone's complex amplitude and
    frequency, its leakage is computed and subtracted from the other bins
    (the eight fundamentals, the two tones' harmonics, and the next window's
    tone bins), then the frequencies are measured again on the cleaned bins.
    `p` is the raw power of the eight fundamentals.
    """
    m = dft.shape[0]
    n = np.arange(m)[:, None]
    tones = np.stack([np.argmax(p[:, :4], axis=1), 4 + np.argmax(p[:, 4:], axis=1)], axis=1)
    here, there = dft[n, tones], nxt[n, tones]
    offset = np.angle(there * np.conj(here) * _NOMINAL_CONJ[tones]) / HALF
    freq = _OMEGA[tones] + offset
    amp = here / _dirichlet(offset)
    targets = np.concatenate([np.broadcast_to(_OMEGA[:8], (m, 8)), _OMEGA[tones + 8]], axis=1)
    leak = amp[:, :, None] * _dirichlet(freq[:, :, None] - targets[:, None, :])
    leak[n, [0, 1], tones] = 0.0
    bins = np.concatenate([dft[:, :8], dft[n, tones + 8]], axis=1) - leak.sum(axis=1)
    # The other tone's leakage into each tone bin, one half-block later.
    cross = leak[n, [1, 0], tones] * np.exp(1j * HALF * freq[:, ::-1])
    here, there = bins[n, tones], there - cross
    offset = np.angle(there * np.conj(here) * _NOMINAL_CONJ[tones]) / HALF
    power = (bins.real ** 2 + bins.imag ** 2) * _POWER_SCALE
    tone_power = power[n, tones] / np.maximum(np.abs(_dirichlet(offset)) / WINDOW, 0.3) ** 2
    rest = power[:, :8].copy()
    rest[n, tones] = 0.0
    group_rest = np.stack([rest[:, :4].max(axis=1), rest[:, 4:].max(axis=1)], axis=1)
    return _Measure(tones, offset / _OMEGA[tones], tone_power, group_rest, power[:, 8:])


class DtmfReceiver:
    """Streaming DTMF receiver: int16 frames in, one DtmfEvent per key press."""

    def __init__(self, normal_twist_db: float = 8.0, reverse_twist_db: float = 4.0,
                 min_level_dbm0: float = -40.0, max_deviation: float = 0.02,
                 relative_peak_db: float = 8.0, min_tone_ratio: float = 0.8,
                 max_harmonic_db: float = -12.0, onset_windows: int = 4,
                 release_windows: int = 4, min_band_ratio: float = 0.85,
                 min_tone_floor: float = 0.3, band_deviation: float = 0.015) -> None:
        _check(normal_twist_db >= 0, f"normal_twist_db must be >= 0, got {normal_twist_db}")
        _check(reverse_twist_db >= 0, f"reverse_twist_db must be >= 0, got {reverse_twist_db}")
        _check(-80 <= min_level_dbm0 <= 3.14,
               f"min_level_dbm0 must be within -80..3.14, got {min_level_dbm0}")
        _check(0 < max_deviation < 0.05, f"max_deviation must be within 0..0.05, got {max_deviation}")
        _check(relative_peak_db >= 0, f"relative_peak_db must be >= 0, got {relative_peak_db}")
        _check(0 < min_tone_ratio <= 1, f"min_tone_ratio must be within 0..1, got {min_tone_ratio}")
        _check(0 < min_band_ratio <= 2, f"min_band_ratio must be within 0..2, got {min_band_ratio}")
        _check(0 <= min_tone_floor <= 1, f"min_tone_floor must be within 0..1, got {min_tone_floor}")
        _check(0 < band_deviation <= max_deviation,
               f"band_deviation must be within 0..max_deviation, got {band_deviation}")
        _check(int(onset_windows) == onset_windows and onset_windows >= 1,
               f"onset_windows must be a positive integer, got {onset_windows}")
        _check(int(release_windows) == release_windows and release_windows >= 1,
               f"release_windows must be a positive integer, got {release_windows}")
        self.normal_twist = 10.0 ** ((normal_twist_db + TWIST_MARGIN_DB) / 10.0)
        self.reverse_twist = 10.0 ** ((reverse_twist_db + TWIST_MARGIN_DB) / 10.0)
        self.min_power = dbm0_to_rms(min_level_dbm0) ** 2
        self.max_deviation = max_deviation
        self.relative_peak = 10.0 ** (relative_peak_db / 10.0)
        self.min_tone_ratio = min_tone_ratio
        self.min_band_ratio = min_band_ratio
        self.min_tone_floor = min_tone_floor
        self.band_deviation = band_deviation
        self.max_harmonic = 10.0 ** (max_harmonic_db / 10.0)
        self.onset_windows = int(onset_windows)
        self.release_windows = int(release_windows)
        self.reset()

    def reset(self, at: int = 0) -> None:
        """Forget any digit in progress; the next sample fed is line sample `at`."""
        self._buf = np.zeros(0, dtype=np.float64)
        self._base = int(at)     # absolute index of self._buf[0], a half-block start
        self._digit = -1         # digit being held, -1 when idle
        self._misses = 0         # windows in a row without the held digit
        self._run_code = -1      # candidate of the current run of equal windows
        self._run_len = 0
        self._run_holes = 0      # silent windows in a row inside the run
        self._run_start = 0

    def feed(self, frame: np.ndarray) -> list[DtmfEvent]:
        """Consume int16 samples of any length; return digits that began in them."""
        frame = np.asarray(frame)
        if frame.ndim != 1:
            raise ValueError(f"frame must be one-dimensional, got shape {frame.shape}")
        if frame.size == 0:
            return []
        self._buf = np.concatenate([self._buf, frame.astype(np.float64)])
        return self._process()

    def flush(self) -> list[DtmfEvent]:
        """End of stream: judge the last windows as if silence followed, then restart at 0."""
        self._buf = np.concatenate([self._buf, np.zeros(WINDOW + HALF)])
        events = self._process()
        self.reset()
        return events

    def _process(self) -> list[DtmfEvent]:
        halves = self._buf.size // HALF
        if halves < 3:
            return []
        decided = halves - 2     # window k needs halves k, k+1 and k+2 (for phase)
        blocks = self._buf[: halves * HALF].reshape(halves, HALF)
        events = self._track(_Frame(self, blocks, decided))
        self._buf = self._buf[decided * HALF:]
        self._base += decided * HALF
        return events

    def _judge(self, frame: "_Frame", idx: np.ndarray) -> None:
        """Apply every guard to windows `idx` of the frame; store codes and levels."""
        half = frame.half_dft
        dft = half[idx] + _HALF_SHIFT * half[idx + 1]
        nxt = half[idx + 1, :8] + _HALF_SHIFT[:8] * half[idx + 2, :8]
        m = _measure(dft, nxt, frame.power[idx])
        tone_p, rest_p, harm_p = m.tone_power, m.group_rest, m.harmonic
        low_p, high_p = tone_p[:, 0], tone_p[:, 1]
        pair, energy = low_p + high_p, frame.energy[idx]
        deviation = np.abs(m.deviation).max(axis=1)
        pure = ((pair >= self.min_tone_ratio * energy)
                | ((pair >= self.min_band_ratio * frame.band[idx])
                   & (pair >= self.min_tone_floor * energy)
                   & (deviation <= self.band_deviation)))
        ok = ((low_p >= self.min_power) & (high_p >= self.min_power)
              & (deviation <= self.max_deviation)
              & (tone_p >= self.relative_peak * rest_p).all(axis=1)
              & (low_p <= self.normal_twist * high_p)
              & (high_p <= self.reverse_twist * low_p)
              & pure
              & (harm_p <= self.max_harmonic * tone_p).all(axis=1))
        frame.codes[idx] = np.where(ok, m.tones[:, 0] * 4 + m.tones[:, 1] - 4, -1)
        frame.levels[idx] = tone_p

    def _track(self, frame: "_Frame") -> list[DtmfEvent]:
        """Duration and pause validation over the run of window decisions.

        A run is a stretch of windows showing one digit; one silent window
        inside it (a noise hit on a weak tone) does not break it, another
        digit does. Its length counts only the windows that showed the digit.
        While a digit is held, a window whose two strongest bins are still
        that digit's keeps it without the full set of guards: they decide
        whether a digit starts, not how long it lasts.
        """
        events: list[DtmfEvent] = []
        if self._digit < 0 and self._run_code < 0 and not frame.likely.any():
            return events
        for k in range(frame.likely.size):
            if self._digit >= 0 and frame.held[k] and frame.raw_code[k] == self._digit:
                code = self._digit
            elif not frame.likely[k]:
                code = -1
            else:
                if frame.codes[k] == _UNJUDGED:
                    ahead = np.arange(k, min(k + _JUDGE_AHEAD, frame.likely.size))
                    self._judge(frame, ahead[frame.likely[ahead]])
                code = int(frame.codes[k])
            if code == self._run_code:
                self._run_len += 1
                self._run_holes = 0
            elif code < 0 and self._run_holes < ONSET_HOLES:
                self._run_holes += 1
            else:
                self._run_code, self._run_len, self._run_holes = code, 1, 0
                self._run_start = self._base + k * HALF
            if self._digit >= 0:
                self._misses = 0 if code == self._digit else self._misses + 1
                if self._misses < self.release_windows:
                    continue
                self._digit = -1
                if self._run_code == -1 or self._run_holes:
                    continue
            if self._run_code >= 0 and self._run_len >= self.onset_windows:
                self._digit = self._run_code
                self._misses = 0
                events.append(self._event(frame.levels[k]))
        return events

    def _event(self, power: np.ndarray) -> DtmfEvent:
        low, high = (10.0 * np.log10(max(p, 1e-12) / dbm0_to_rms(0.0) ** 2)
                     for p in power)
        row, col = divmod(self._digit, 4)
        return DtmfEvent(self._run_start, KEYPAD[row][col], round(low, 1), round(high, 1))


_UNJUDGED = -2
_BAND_LOOK = 0.75
"""The first look's share of the band path's purity figures. The bins it reads sit at
the nominal frequencies, within 0.3 dB of the measured tone for a digit within 1.5 %;
speech that comes nowhere near is not worth the full measurement."""
_JUDGE_AHEAD = 8
"""Windows judged per call of the full guards: enough to share the cost of
the NumPy calls, few enough not to judge windows a held digit makes moot."""


class _Frame:
    """One batch of windows: their DFTs, and a cheap first look at each.

    The first look keeps windows whose strongest low and high bins are both
    near the level floor and hold a fair share of the energy; only those can
    be a digit, and most speech, noise and silence goes no further.
    """

    def __init__(self, rx: DtmfReceiver, blocks: np.ndarray, decided: int) -> None:
        energy = np.einsum("ij,ij->i", blocks, blocks)
        self.energy = (energy[:-2] + energy[1:-1]) / WINDOW      # mean square
        self.likely = self.energy >= 2.0 * rx.min_power
        self.held = self.likely  # windows that may keep a digit already held
        if not self.likely.any():
            return          # silence: nothing else is looked at (see _track)
        self.codes = np.full(decided, _UNJUDGED, dtype=np.int64)
        self.levels = np.zeros((decided, 2))
        y = blocks @ _BASIS
        self.half_dft = y[:, :_NF] + 1j * y[:, _NF:]
        dft = self.half_dft[:-2, :8] + _HALF_SHIFT[:8] * self.half_dft[1:-1, :8]
        self.power = dft.real ** 2 + dft.imag ** 2
        row, col = self.power[:, :4].argmax(axis=1), self.power[:, 4:].argmax(axis=1)
        self.raw_code = row * 4 + col
        low, high = self.power[:, :4].max(axis=1), self.power[:, 4:].max(axis=1)
        floor = 0.5 * rx.min_power / _POWER_SCALE
        pair = (low + high) * _POWER_SCALE
        # both paths below need at least this much of the energy in the two tones
        self.likely &= ((low >= floor) & (high >= floor)
                        & (pair >= 0.5 * rx.min_tone_floor * self.energy))
        self.band = np.zeros(decided)
        near = np.flatnonzero(self.likely)
        if near.size == 0:
            return      # `held` is `likely` still (the same array, narrowed in place)
        self.band[near] = _band_power(blocks, near)
        clear = pair >= 0.5 * rx.min_tone_ratio * self.energy
        self.held = self.likely & (clear | (pair >= 0.5 * rx.min_band_ratio * self.band))
        self.likely &= clear | ((pair >= _BAND_LOOK * rx.min_band_ratio * self.band)
                                & (pair >= _BAND_LOOK * rx.min_tone_floor * self.energy))


def _band_power(blocks: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Mean-square power in the DTMF band of the given windows (Parseval over bins 8..23).

    Each half-block's products are exact integers, as for the tone bins, and
    the second half is turned by its delay element by element, so a window's
    figure does not depend on how the audio was split into frames.
    """
    nb = _BAND_FREQS.size
    first, second = blocks[windows] @ _BAND_BASIS, blocks[windows + 1] @ _BAND_BASIS
    c, s = _BAND_SHIFT.real, _BAND_SHIFT.imag
    re = first[:, :nb] + c * second[:, :nb] - s * second[:, nb:]
    im = first[:, nb:] + s * second[:, :nb] + c * second[:, nb:]
    return (re * re + im * im).sum(axis=1) * _POWER_SCALE


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def dtmf_tx(digits: str, level_dbm0: float = -7.0, twist_db: float = 0.0,
            on_ms: float = 70.0, off_ms: float = 70.0, rate: int = RATE) -> np.ndarray:
    """DTMF digits as int16 audio: each digit `on_ms` of tone then `off_ms` of silence.

    `level_dbm0` is the level of the low-group tone; the high-group tone is
    `twist_db` above it (negative twist_db makes the low group louder). Above
    about -2.9 dBm0 per tone the sum exceeds full scale and is clipped, as a
    codec would clip it.
    """
    if not isinstance(digits, str):
        raise ValueError(f"digits must be a string, got {type(digits).__name__}")
    bad = sorted({d for d in digits.upper() if d not in DTMF_FREQS})
    _check(not bad, f"not DTMF digits: {''.join(bad)!r} (allowed: 0-9 * # A-D)")
    _check(isinstance(rate, int) and rate >= 4000, f"rate must be an integer >= 4000, got {rate}")
    _check(on_ms > 0, f"on_ms must be > 0, got {on_ms}")
    _check(off_ms >= 0, f"off_ms must be >= 0, got {off_ms}")
    _check(np.isfinite(level_dbm0) and level_dbm0 <= 10,
           f"level_dbm0 must be a finite number <= 10, got {level_dbm0}")
    _check(np.isfinite(twist_db) and abs(twist_db) <= 20,
           f"twist_db must be within -20..20, got {twist_db}")
    on = int(round(on_ms * rate / 1000.0))
    off = int(round(off_ms * rate / 1000.0))
    t = np.arange(on) / rate
    a_low = dbm0_to_amplitude(level_dbm0)
    a_high = dbm0_to_amplitude(level_dbm0 + twist_db)
    out = np.zeros(len(digits) * (on + off))
    for i, d in enumerate(digits.upper()):
        low, high = DTMF_FREQS[d]
        start = i * (on + off)
        out[start:start + on] = (a_low * np.sin(2 * np.pi * low * t)
                                 + a_high * np.sin(2 * np.pi * high * t))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


class DtmfGenerator:
    """Streaming DTMF sender for dialling: queue digits, read frames of audio."""

    def __init__(self, level_dbm0: float = -7.0, twist_db: float = 0.0,
                 on_ms: float = 70.0, off_ms: float = 70.0) -> None:
        dtmf_tx("", level_dbm0, twist_db, on_ms, off_ms)   # validates the settings
        self._settings = (level_dbm0, twist_db, on_ms, off_ms)
        self._pending = np.zeros(0, dtype=np.int16)

    def send(self, digits: str) -> None:
        """Queue digits to be played after anything already queued."""
        self._pending = np.concatenate([self._pending, dtmf_tx(digits, *self._settings)])

    @property
    def busy(self) -> bool:
        """True while queued digits remain to be read."""
        return self._pending.size > 0

    def read(self, n: int) -> np.ndarray:
        """The next `n` samples: queued tones, then silence."""
        _check(isinstance(n, (int, np.integer)) and n >= 0, f"n must be an integer >= 0, got {n}")
        out = np.zeros(n, dtype=np.int16)
        take = min(n, self._pending.size)
        out[:take] = self._pending[:take]
        self._pending = self._pending[take:]
        return out
