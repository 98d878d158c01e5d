"""Call-progress tones: tone plans, a streaming detector and a generator.

A tone plan (TOML, see callgate/toneplans/us.toml for the keys) names the tones a
network sends: their frequencies and on/off cadence. The detector works in
two stages, because busy and reorder share frequencies and differ only by
cadence:

1. Every 20 ms block is classified as "tone X present" or "no tone". Each
   frequency set of the plan has a small signal subspace (sines across its
   frequency tolerance band); a least-squares fit onto it gives the energy
   each component carries. A block holds a tone when every component is
   above the minimum level, the components together carry most of the block's
   energy (speech, DTMF, FSK and noise do not) and their twist is in limits.
   Two matrix products cover all complete blocks of a frame at once.
2. Runs of equal blocks (a one-block glitch is absorbed) form on/off
   segments, matched against each tone's cadence with a tolerance.
   Continuous tones are reported after `min_ms`.

Several plans can be listened for at once (`combined_plan`, what `callgate
decode` does by default): their frequency sets share the one projection, equal
tones are one matcher, and each event names the plan(s) whose tone it is.

The fax tones CNG (1100 Hz, 0.5 s on / 3 s off) and CED/ANS (2100 Hz) are
always listened for, whatever the plan (ITU-T T.30, V.25), unless the
detector is built with fax=False.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from . import RATE
from .events import Event
from .level import dbm0_to_amplitude, power_to_dbm0

BLOCK = 160
"""Analysis block: 20 ms, short against the shortest burst (225 ms)."""

DEBOUNCE = 2
"""Blocks a new state must last before it counts; shorter ones are glitches."""

DUAL_HANDICAP = 0.08
"""Share of a block's energy a two-component set must capture beyond a
one-component set to be preferred. Its subspace is twice as large, so it also
fits single tones near its components: with every plan at once, 400 + 450 Hz
(UK ringing) fits a 419 Hz tone (425 Hz - 1.5 %) better than 425 Hz does."""

MIN_TOLERANCE_MS = 40
"""Cadence tolerance floor: two blocks of timing quantisation."""

HEAD_BLOCKS = 10
"""A tone's reported level is that of the first 200 ms of its first burst."""

_BLOCK_MS = 1000 * BLOCK // RATE
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_KEYS = {"name", "description", "tolerance", "frequency_tolerance", "min_ms", "tones",
             "ring"}
_TONE_KEYS = {"frequencies", "cadence_ms", "tolerance", "frequency_tolerance", "min_ms",
              "confirm"}


# --------------------------------------------------------------------------
# Tone plans


@dataclass(frozen=True)
class Tone:
    """One network tone: what it sounds like and how sure we must be."""

    name: str
    frequencies: tuple[float, ...]
    cadence_ms: tuple[int, ...] = ()
    tolerance: float = 0.15
    frequency_tolerance: float = 0.02
    min_ms: int = 1000
    confirm: int = 0
    plans: tuple[str, ...] = ()
    """The tone plans that send this tone, preferred first; () for the fax tones."""

    @property
    def continuous(self) -> bool:
        """True for a steady tone (dial, unobtainable, CED)."""
        return not self.cadence_ms

    @property
    def segments_to_confirm(self) -> int:
        """Cadence segments seen before reporting: a cycle and the next burst."""
        return self.confirm or len(self.cadence_ms) + 1


@dataclass(frozen=True)
class TonePlan:
    """The call-progress tones of one network."""

    name: str
    description: str
    tones: tuple[Tone, ...]
    ring_cadence_ms: tuple[int, ...] = ()
    """Ringing voltage bursts (on, off, ...) of the plan's [ring] table; () if it has none."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tones)

    def tone(self, name: str) -> Tone:
        """The tone called `name` in this plan (or a fax tone)."""
        for tone in self.tones + FAX_TONES:
            if tone.name == name:
                return tone
        known = ", ".join(self.names + tuple(t.name for t in FAX_TONES))
        raise ValueError(f"tone plan {self.name}: no tone {name!r} (has {known})")


FAX_TONES: tuple[Tone, ...] = (
    # T.30 calling tone: 1100 Hz +-38 Hz, 0.5 s on, 3 s off; one burst suffices.
    Tone("cng", (1100.0,), (500, 3000), tolerance=0.15, frequency_tolerance=0.03, confirm=1),
    # V.25 answer tone (T.30 CED): 2100 Hz +-15 Hz for 2.6-4 s, maybe phase reversed.
    Tone("ced", (2100.0,), (), frequency_tolerance=0.02, min_ms=500),
)


def plan_from_dict(data: dict, origin: str) -> TonePlan:
    """A TonePlan from a parsed TOML table; ValueError naming `origin` and the key.

    The signal core does no I/O: reading the file is callgate.toneplans' job."""
    def bad(key: str, problem: str) -> ValueError:
        return ValueError(f"tone plan {origin}: {key}: {problem}")

    for key in data:
        if key not in _TOP_KEYS:
            raise bad(key, "unknown key")
    name = data.get("name", Path(origin).stem)
    if not isinstance(name, str) or not name:
        raise bad("name", "must be a non-empty string")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise bad("description", "must be a string")
    defaults = {
        "tolerance": _fraction(data, "tolerance", 0.15, 0.5, bad),
        "frequency_tolerance": _fraction(data, "frequency_tolerance", 0.02, 0.1, bad),
        "min_ms": _positive_ms(data, "min_ms", 1000, bad),
    }
    tones_table = data.get("tones")
    if not isinstance(tones_table, dict) or not tones_table:
        raise bad("tones", "missing or empty; add a [tones.NAME] table per tone")
    tones = tuple(replace(_tone_from_dict(tone_name, spec, defaults, bad), plans=(name,))
                  for tone_name, spec in tones_table.items())
    _check_continuous_vs_bursts(tones, bad)
    return TonePlan(name, description, tones, _ring_cadence(data.get("ring"), bad))


def combined_plan(plans: Sequence[TonePlan], name: str = "auto",
                  description: str = "") -> TonePlan:
    """Every tone of several plans at once, for audio from a network not known.

    `plans` come in preference order: it settles which plan an event names when
    several fit equally. A tone sent alike by several plans (same name,
    frequencies, cadence and tolerances) becomes one tone listing them all: one
    cadence matcher, one event. A steady tone must outlast every burst of its
    frequencies in every plan (the 425 Hz dial tone of ETSI against Spain's
    1.5 s ringing bursts), so all steady tones of one frequency set wait as
    long as the most demanding of them. The combined plan has no [ring]: it
    describes what a recording may hold, not one exchange.
    """
    if not plans or not all(isinstance(p, TonePlan) for p in plans):
        raise ValueError("combined_plan: give one or more TonePlans")
    merged: dict[tuple, Tone] = {}
    for plan in plans:
        for tone in plan.tones:
            key = (tone.name, tuple(sorted(tone.frequencies)), tone.cadence_ms,
                   tone.tolerance, tone.frequency_tolerance, tone.confirm)
            known = merged.get(key)
            tagged = tone.plans or (plan.name,)
            if known is None:
                merged[key] = replace(tone, plans=tagged)
            else:
                merged[key] = replace(known, plans=tuple(dict.fromkeys(known.plans + tagged)),
                                      min_ms=max(known.min_ms, tone.min_ms))
    tones = list(merged.values())
    wait: dict[tuple[float, ...], int] = {}
    for tone in tones:
        key = tuple(sorted(tone.frequencies))
        if tone.continuous:
            wait[key] = max(wait.get(key, 0), tone.min_ms)
    for tone in tones:
        key = tuple(sorted(tone.frequencies))
        if key in wait and not tone.continuous:
            longest = max(tone.cadence_ms[0::2])
            limit = longest + max(longest * tone.tolerance, MIN_TOLERANCE_MS)
            wait[key] = max(wait[key], (int(limit) // _BLOCK_MS + 1) * _BLOCK_MS)
    tones = [replace(t, min_ms=wait[tuple(sorted(t.frequencies))]) if t.continuous else t
             for t in tones]
    return TonePlan(name, description or "every tone of " + ", ".join(p.name for p in plans),
                    tuple(tones))


def _ring_cadence(ring, bad) -> tuple[int, ...]:
    """The optional [ring] table: the cadence of the ringing voltage, not a tone."""
    if ring is None:
        return ()
    if not isinstance(ring, dict):
        raise bad("ring", "must be a table with cadence_ms")
    for key in ring:
        if key != "cadence_ms":
            raise bad(f"ring.{key}", "unknown key")
    cadence = ring.get("cadence_ms")
    if not isinstance(cadence, list) or not cadence or len(cadence) % 2:
        raise bad("ring.cadence_ms", "must be a list of on, off durations in ms (an even count)")
    for d in cadence:
        if not _is_number(d) or not 50 <= d <= 60000:
            raise bad("ring.cadence_ms", f"{d!r} is not a duration between 50 and 60000 ms")
    return tuple(int(round(d)) for d in cadence)


def _tone_from_dict(tone_name: str, spec, defaults: dict, bad) -> Tone:
    where = f"tones.{tone_name}"
    if not _NAME.match(tone_name):
        raise bad(where, "tone names are lower-case letters, digits and _")
    if tone_name in {t.name for t in FAX_TONES}:
        raise bad(where, "cng and ced are the fax tones, always detected; use another name")
    if not isinstance(spec, dict):
        raise bad(where, "must be a table")
    for key in spec:
        if key not in _TONE_KEYS:
            raise bad(f"{where}.{key}", "unknown key")
    freqs = spec.get("frequencies")
    key = f"{where}.frequencies"
    if freqs is None:
        raise bad(key, "missing")
    if not isinstance(freqs, list) or not 1 <= len(freqs) <= 2:
        raise bad(key, "must be a list of one or two frequencies in Hz")
    for f in freqs:
        if not _is_number(f) or not 50 <= f <= RATE / 2 - 200:
            raise bad(key, f"{f!r} is not a frequency between 50 and {RATE // 2 - 200} Hz")
    if len(freqs) == 2 and abs(freqs[0] - freqs[1]) < 20:
        raise bad(key, "the two frequencies must differ by at least 20 Hz")
    cadence = spec.get("cadence_ms")
    key = f"{where}.cadence_ms"
    if cadence is None:
        raise bad(key, "missing (use [] for a continuous tone)")
    if not isinstance(cadence, list) or len(cadence) % 2:
        raise bad(key, "must be a list of on, off durations in ms (an even count)")
    for d in cadence:
        if not _is_number(d) or not 2 * _BLOCK_MS * DEBOUNCE <= d <= 60000:
            raise bad(key, f"{d!r} is not a duration between {2 * _BLOCK_MS * DEBOUNCE} "
                           "and 60000 ms")
    confirm = spec.get("confirm", 0)
    if "confirm" in spec:
        if not isinstance(confirm, int) or isinstance(confirm, bool) or not (
                1 <= confirm <= 2 * len(cadence)):
            raise bad(f"{where}.confirm", "must be a whole number of segments, "
                                          "1 to twice the cadence length (cadenced tones)")
    return Tone(
        name=tone_name,
        frequencies=tuple(float(f) for f in freqs),
        cadence_ms=tuple(int(round(d)) for d in cadence),
        tolerance=_fraction(spec, "tolerance", defaults["tolerance"], 0.5, bad, where),
        frequency_tolerance=_fraction(spec, "frequency_tolerance",
                                      defaults["frequency_tolerance"], 0.1, bad, where),
        min_ms=_positive_ms(spec, "min_ms", defaults["min_ms"], bad, where),
        confirm=confirm,
    )


def _check_continuous_vs_bursts(tones: tuple[Tone, ...], bad) -> None:
    """A steady tone must outlast every burst of a cadenced tone it sounds like."""
    for steady in (t for t in tones if t.continuous):
        for other in tones:
            if other.continuous or sorted(other.frequencies) != sorted(steady.frequencies):
                continue
            longest = max(other.cadence_ms[0::2])
            limit = longest + max(longest * other.tolerance, MIN_TOLERANCE_MS)
            if steady.min_ms <= limit:
                raise bad(f"tones.{steady.name}.min_ms",
                          f"{steady.min_ms} ms would mistake the {longest} ms bursts of "
                          f"tones.{other.name} for it; use more than {limit:.0f} ms")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fraction(table: dict, key: str, default: float, top: float, bad, where: str = "") -> float:
    value = table.get(key, default)
    full = f"{where}.{key}" if where else key
    if not _is_number(value) or not 0 < value <= top:
        raise bad(full, f"{value!r} must be a fraction above 0 and at most {top}")
    return float(value)


def _positive_ms(table: dict, key: str, default: int, bad, where: str = "") -> int:
    value = table.get(key, default)
    full = f"{where}.{key}" if where else key
    if not _is_number(value) or not 2 * _BLOCK_MS <= value <= 60000:
        raise bad(full, f"{value!r} must be a duration between {2 * _BLOCK_MS} and 60000 ms")
    return int(round(value))


# --------------------------------------------------------------------------
# Generators


def tone_tx(freqs: Sequence[float], level_dbm0: float | Sequence[float],
            cadence_ms: Sequence[float], seconds: float, rate: int = RATE) -> np.ndarray:
    """int16 samples of a tone: each component at `level_dbm0`, gated by the cadence.

    `level_dbm0` may also give one level per frequency (for twist). An empty
    cadence is a continuous tone; bursts keep the oscillator's phase running.
    """
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise ValueError(f"tone_tx: rate must be a positive whole number, not {rate!r}")
    freqs = _as_number_list(freqs, "freqs")
    if not 1 <= len(freqs) <= 4:
        raise ValueError("tone_tx: freqs must hold one to four frequencies")
    for f in freqs:
        if not 0 < f < rate / 2:
            raise ValueError(f"tone_tx: frequency {f} Hz is outside 0..{rate / 2:g} Hz")
    levels = ([level_dbm0] * len(freqs) if _is_number(level_dbm0)
              else _as_number_list(level_dbm0, "level_dbm0"))
    if len(levels) != len(freqs):
        raise ValueError("tone_tx: level_dbm0 must be one number or one per frequency")
    amps = [dbm0_to_amplitude(lv) for lv in levels]
    if sum(amps) > 32767:
        raise ValueError(f"tone_tx: levels too high, peak {sum(amps):.0f} "
                         "exceeds 16-bit full scale")
    cadence = _as_number_list(cadence_ms, "cadence_ms")
    if len(cadence) % 2 or any(d < 0 for d in cadence) or (cadence and sum(cadence) <= 0):
        raise ValueError("tone_tx: cadence_ms must be on, off pairs of durations >= 0 ms")
    if not _is_number(seconds) or seconds < 0:
        raise ValueError(f"tone_tx: seconds must be a number >= 0, not {seconds!r}")
    n = int(round(seconds * rate))
    t = np.arange(n, dtype=np.float64)
    wave = np.zeros(n)
    for f, a in zip(freqs, amps):
        wave += a * np.sin(2 * np.pi * f / rate * t)
    if cadence:
        wave *= _cadence_gate(n, cadence, rate)
    return np.rint(wave).astype(np.int16)


def plan_tone_tx(plan: TonePlan, name: str, seconds: float,
                 level_dbm0: float = -13.0) -> np.ndarray:
    """A tone of a plan (or a fax tone), as the network would send it."""
    tone = plan.tone(name)
    return tone_tx(tone.frequencies, level_dbm0, tone.cadence_ms, seconds)


def _as_number_list(values, what: str) -> list[float]:
    try:
        items = list(values)
    except TypeError:
        raise ValueError(f"tone_tx: {what} must be a list of numbers") from None
    if not all(_is_number(v) for v in items):
        raise ValueError(f"tone_tx: {what} must be a list of numbers")
    return [float(v) for v in items]


def _cadence_gate(n: int, cadence: list[float], rate: int) -> np.ndarray:
    """1 where the cadence is in an on segment, 0 in an off segment."""
    edges = np.rint(np.cumsum(cadence) * rate / 1000.0).astype(np.int64)
    period = int(edges[-1])
    pos = np.arange(n) % period
    segment = np.searchsorted(edges, pos, side="right")
    return (segment % 2 == 0).astype(np.float64)


# --------------------------------------------------------------------------
# Detection, stage 1: which tone (if any) each block holds


@dataclass(frozen=True)
class ToneEvent(Event):
    """A call-progress or fax tone recognised by frequency and cadence."""

    tone: str
    frequencies: tuple[float, ...] = field(default=(), repr=False)
    level_dbm0: float = field(default=float("nan"), repr=False)
    plan: str | None = None
    """The tone plan whose tone this is (the best fit of `plans`); None for fax tones."""
    plans: tuple[str, ...] = ()
    """Every plan whose tone of this name matched the same bursts, `plan` first."""
    kind: ClassVar[str] = "tone"


def _band_basis(freq: float, tolerance: float) -> np.ndarray:
    """Orthonormal block-length sines spanning freq +- tolerance.

    A grid of sines across the band, reduced by SVD to the few directions
    that matter: an in-band tone lies (almost) inside, an off-band one not.
    """
    lo, hi = freq * (1 - tolerance), freq * (1 + tolerance)
    count = max(2, int(np.ceil((hi - lo) * BLOCK / RATE * 4)) + 1)
    w = 2 * np.pi * np.linspace(lo, hi, count) / RATE
    t = np.arange(BLOCK)[:, None]
    grid = np.concatenate([np.cos(t * w), np.sin(t * w)], axis=1)
    u, s, _ = np.linalg.svd(grid, full_matrices=False)
    return u[:, s >= 0.3 * s[0]]


class _ToneBank:
    """Classifies blocks against every frequency set of the tones at once.

    Per block and frequency set two kinds of figure decide: the energy the
    set's subspace captures, and each component's energy in a least-squares
    fit (component bases are orthonormal, so that is the squared norm of its
    coefficients). One matrix product gives all coefficients of all blocks
    of a frame, a second sums their squares into figures; the few comparisons
    per block that remain are cheaper in plain Python than as NumPy calls.
    """

    def __init__(self, tones: Sequence[Tone], min_level_dbm0: float,
                 max_twist_db: float, min_fraction: float) -> None:
        sets: dict[tuple[float, ...], float] = {}
        for tone in tones:
            key = tuple(sorted(tone.frequencies))
            sets[key] = max(sets.get(key, 0.0), tone.frequency_tolerance)
        self.signatures = list(sets)
        n_sig = len(sets)
        columns, owner = [], []
        # (set, first component, second component, handicap)
        self._tests: list[tuple[int, int, int, float]] = []
        comp = n_sig
        for s, (freqs, tol) in enumerate(sets.items()):
            bases = [_band_basis(f, tol) for f in freqs]
            basis = np.concatenate(bases, axis=1)
            q, _ = np.linalg.qr(basis)
            columns += [q, np.linalg.pinv(basis).T]
            owner += [s] * q.shape[1]
            for k, b in enumerate(bases):
                owner += [comp + k] * b.shape[1]
            self._tests.append((s, comp, comp + len(freqs) - 1,
                                DUAL_HANDICAP if len(freqs) == 2 else 0.0))
            comp += len(freqs)
        # Figures per block: captured energy per set, then energy per component.
        self._project = np.concatenate(columns, axis=1).astype(np.float32)
        owner = np.array(owner)
        self._gather = (owner[:, None] == np.arange(comp)).astype(np.float32)
        self._floor = BLOCK * dbm0_to_amplitude(min_level_dbm0) ** 2 / 2
        self._twist = 10 ** (max_twist_db / 10)
        self._fraction = min_fraction

    def classify(self, blocks: np.ndarray) -> tuple[list[int], list[float]] | None:
        """Per block: index of the tone set present (-1: none) and its energy.

        None when every block is too quiet to hold any tone.
        """
        energy = np.einsum("ij,ij->i", blocks, blocks).tolist()
        floor = self._floor
        if max(energy) < floor:
            return None
        coef = blocks @ self._project
        figures = ((coef * coef) @ self._gather).tolist()
        twist, fraction = self._twist, self._fraction
        states, powers = [], []
        for fig, total in zip(figures, energy):
            state, top, power = -1, -total, 0.0
            if total >= floor:
                need = fraction * total
                for s, a, b, handicap in self._tests:
                    captured = fig[s]
                    score = captured - handicap * total
                    if captured >= need and score > top:
                        ea, eb = fig[a], fig[b]
                        if (ea >= floor and eb >= floor
                                and ea <= twist * eb and eb <= twist * ea):
                            state, top, power = s, score, captured
            states.append(state)
            powers.append(power)
        return states, powers


# --------------------------------------------------------------------------
# Detection, stage 2: cadence


@dataclass
class _Run:
    """A stretch of blocks in one state; `head` is the energy of its first blocks."""

    state: int
    start: int
    length: int
    head: float = 0.0
    head_blocks: int = 0

    def add(self, energies: list[float] | None) -> None:
        """Count blocks of this run's own state towards the level reading."""
        if energies is not None and self.head_blocks < HEAD_BLOCKS:
            take = energies[: HEAD_BLOCKS - self.head_blocks]
            self.head += sum(take)
            self.head_blocks += len(take)


class _Matcher:
    """Cadence bookkeeping for one tone."""

    def __init__(self, tone: Tone, signature: int) -> None:
        self.tone = tone
        self.signature = signature
        self.active = False
        self.phase = 0
        self.min_blocks = -(-tone.min_ms // _BLOCK_MS)
        self.slack = [max(d * tone.tolerance, MIN_TOLERANCE_MS) for d in tone.cadence_ms]

    def misfit(self, run: _Run, element: int, loose: bool = False) -> float | None:
        """How far a completed run is from cadence element `element` (even: on), in
        slacks (0 = exact); None when it does not fit.

        A tone already recognised is followed with twice the slack, so one
        that sits near the edge of the tolerance is not reported again and
        again as its segments wander in and out.
        """
        on = element % 2 == 0
        if run.state != (self.signature if on else -1):
            return None
        # Blocks only partly filled by a burst rarely count as tone: on runs
        # measure about half a block short and off runs as much long.
        measured = run.length * _BLOCK_MS + (_BLOCK_MS / 2 if on else -_BLOCK_MS / 2)
        slack = self.slack[element] * (2 if loose else 1)
        error = abs(measured - self.tone.cadence_ms[element]) / slack
        return error if error <= 1 else None


class CallProgressDetector:
    """Streaming call-progress and fax tone detector for one tone plan (or several
    combined: `combined_plan`).

    feed() int16 frames of any length; each tone is reported once, when its
    cadence is recognised, stamped with the onset of the first burst of the
    recognised pattern. A tone that keeps going is not reported again; once
    it stops (or its cadence breaks) it may be reported anew.
    """

    def __init__(self, plan: TonePlan, *, fax: bool = True,
                 min_level_dbm0: float = -43.0, max_twist_db: float = 10.0,
                 min_fraction: float = 0.8) -> None:
        if not isinstance(plan, TonePlan):
            raise TypeError("CallProgressDetector: give a TonePlan (callgate.toneplans.load_toneplan)")
        if not _is_number(min_level_dbm0) or not -70 <= min_level_dbm0 <= 0:
            raise ValueError("CallProgressDetector: min_level_dbm0 must be -70..0 dBm0")
        if not _is_number(max_twist_db) or not 0 <= max_twist_db <= 30:
            raise ValueError("CallProgressDetector: max_twist_db must be 0..30 dB")
        if not _is_number(min_fraction) or not 0.3 <= min_fraction <= 1:
            raise ValueError("CallProgressDetector: min_fraction must be 0.3..1")
        self.plan = plan
        tones = plan.tones + (FAX_TONES if fax else ())
        self._bank = _ToneBank(tones, min_level_dbm0, max_twist_db, min_fraction)
        sig_index = {s: i for i, s in enumerate(self._bank.signatures)}
        self._matchers = [_Matcher(t, sig_index[tuple(sorted(t.frequencies))]) for t in tones]
        self._steady: dict[int, list[_Matcher]] = {}
        for m in self._matchers:
            if m.tone.continuous:
                self._steady.setdefault(m.signature, []).append(m)
        self._cadenced = [m for m in self._matchers if not m.tone.continuous]
        self._history_len = max([m.tone.segments_to_confirm for m in self._cadenced] + [1])
        self.reset()

    def reset(self, at: int = 0) -> None:
        """Forget every burst and cadence in progress; the next sample fed is line sample `at`.

        Blocks are counted from `at`, so events are stamped on the caller's clock."""
        self._origin = int(at)
        self._buf = np.zeros(0, dtype=np.float32)
        self._block = 0
        self._run = _Run(-1, 0, 0)
        self._pending: _Run | None = None
        self._history: deque[_Run] = deque(maxlen=self._history_len)
        for m in self._matchers:
            m.active, m.phase = False, 0

    def feed(self, frame: np.ndarray) -> list[Event]:
        """Consume samples; return the tones recognised by them."""
        x = np.asarray(frame)
        if x.ndim != 1:
            raise ValueError("CallProgressDetector.feed: frame must be a 1-D array of samples")
        if self._buf.size:
            x = np.concatenate((self._buf, x))
        nb = x.size // BLOCK
        cut = nb * BLOCK
        self._buf = x[cut:].astype(np.float32)
        if nb == 0:
            return []
        return self._process(x[:cut].reshape(nb, BLOCK).astype(np.float32))

    def flush(self) -> list[Event]:
        """End of stream: close the last burst, then start afresh at sample 0."""
        tail = np.zeros((DEBOUNCE + 1) * BLOCK, dtype=np.float32)
        tail[: self._buf.size] = self._buf
        events = self._process(tail.reshape(-1, BLOCK))
        self.reset()
        return events

    def _process(self, blocks: np.ndarray) -> list[Event]:
        first = self._block
        nb = blocks.shape[0]
        self._block += nb
        out: list[Event] = []
        found = self._bank.classify(blocks)
        if found is None:                         # all quiet
            if self._pending is None and self._run.state == -1:
                self._extend(first, nb, None, out)
            else:
                self._piece(-1, first, nb, None, out)
            return out
        states, energy = found
        # Runs of equal blocks, each handed on whole.
        start = 0
        for i in range(1, nb + 1):
            if i == nb or states[i] != states[start]:
                state = states[start]
                self._piece(state, first + start, i - start,
                            energy[start:i] if state >= 0 else None, out)
                start = i
        return out

    def _piece(self, state: int, start: int, n: int, energies: list[float] | None,
               out: list) -> None:
        """A stretch of n equal blocks: extend, suspect a change, or confirm one."""
        pending = self._pending
        if pending is not None and state == pending.state:
            pending.length += n
        elif state == self._run.state:
            self._pending = None          # the suspected change was a glitch
            self._extend(start, n, energies, out)
            return
        else:
            pending = self._pending = _Run(state, start, n)
        pending.add(energies)
        if pending.length >= DEBOUNCE:
            self._switch(out)

    def _extend(self, start: int, n: int, energies: list[float] | None, out: list) -> None:
        run = self._run
        run.length = start + n - run.start
        run.add(energies)
        self._check_steady(out)

    def _switch(self, out: list) -> None:
        new = self._pending
        done = self._run
        done.length = new.start - done.start
        self._check_steady(out)
        self._pending = None
        self._run = new
        if done.length > 0:
            self._complete(done, out)
        self._check_steady(out)

    def _check_steady(self, out: list) -> None:
        """Report continuous tones once their run is long enough."""
        run = self._run
        fired = []
        for m in self._steady.get(run.state, ()):
            if not m.active and run.length >= m.min_blocks:
                m.active = True
                fired.append((0.0, m, run))
        if fired:
            out.extend(self._events(fired))

    def _complete(self, run: _Run, out: list) -> None:
        """A run ended: follow active cadences and look for new ones."""
        self._history.append(run)
        for m in self._steady.get(run.state, ()):
            m.active = False
        fired, following = [], set()
        for m in self._cadenced:
            if m.active:
                if m.misfit(run, m.phase, loose=True) is not None:
                    m.phase = (m.phase + 1) % len(m.tone.cadence_ms)
                    following.add(m.tone.name)
                    continue
                m.active = False
            found = self._match(m)
            if found is not None:
                m.active, m.phase = True, found[0]
                need = m.tone.segments_to_confirm
                fired.append((found[1], m, self._history[-need]))
        # A tone still followed under one plan is not news under another (Spain's
        # congestion keeps restarting Italy's 200/200 ms congestion).
        fired = [f for f in fired if f[1].tone.name not in following]
        if fired:
            out.extend(self._events(fired))

    def _match(self, m: _Matcher) -> tuple[int, float] | None:
        """(cadence phase, misfit) after the newest runs, if they spell the tone's cadence."""
        need = m.tone.segments_to_confirm
        if len(self._history) < need:
            return None
        runs = list(self._history)[-need:]
        size = len(m.tone.cadence_ms)
        for rotation in range(0, size, 2):
            total = 0.0
            for k, run in enumerate(runs):
                error = m.misfit(run, (rotation + k) % size)
                if error is None:
                    break
                total += error
            else:
                return (rotation + need) % size, total / need
        return None

    def _events(self, fired: list[tuple[float, _Matcher, _Run]]) -> list[ToneEvent]:
        """One event per tone name among the tones recognised at once.

        Plans that call the same bursts by the same name (busy at 480/480 ms in
        Germany, 500/500 ms elsewhere in Europe) give one event: named after
        the best fit, listing them all. Matchers come in plan preference order,
        which settles ties."""
        best: dict[str, tuple[float, _Matcher, _Run]] = {}
        plans: dict[str, list[str]] = {}
        for entry in fired:
            name = entry[1].tone.name
            if name not in best or entry[0] < best[name][0]:
                best[name] = entry
            plans.setdefault(name, []).extend(entry[1].tone.plans)
        events = []
        for name, (_, m, burst) in best.items():
            ranked = list(dict.fromkeys(m.tone.plans + tuple(plans[name])))
            events.append(self._event(m, burst, tuple(ranked)))
        return events

    def _event(self, m: _Matcher, burst: _Run, plans: tuple[str, ...]) -> ToneEvent:
        level = float(power_to_dbm0(burst.head / max(burst.head_blocks, 1) / BLOCK))
        return ToneEvent(self._origin + burst.start * BLOCK, m.tone.name,
                         frequencies=m.tone.frequencies, level_dbm0=round(level, 1),
                         plan=plans[0] if plans else None, plans=plans)
