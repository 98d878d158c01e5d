"""`callgate prompts`: make a business's own recordings into prompts, and check a set.

A prompt on the line should be 8 kHz mono 16-bit, in the telephone band,
start and end within ~50 ms of its speech, and be as loud as every other
prompt: about -19 dBm0 active speech level (dsp/speech.py), never clipped.
`convert` does all of that to any WAV the project reads; `check` measures a
folder of prompts and fails those a caller would hear too quiet, too loud or
distorted. tools/make-prompts builds the default set through `convert`.

Choices written down here:
- Stereo input keeps its first channel, as everywhere in the project.
- Gain is one number per file (no compression): the speech keeps its own
  dynamics. If reaching the target would push a peak above -1 dBFS, the gain
  stops there and a warning says how far below the target the prompt is.
- Output names are the input's name in lower case with anything but letters,
  digits, - and _ turned into _ (a prompt name in the config), or --name.
- No dither: the same input gives the same bytes on every run.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter1d
from scipy.signal import butter, sosfiltfilt

from .dsp import RATE
from .dsp.speech import (INT16_FULL_SCALE, SpeechLevel, active_mask, clipped_runs, envelope,
                         measure)
from .wav import WavError, read_source, read_wav, resample, to_int16, write_wav

TARGET_DBM0 = -19.0
TOLERANCE_DB = 3.0
LEVEL_RANGE = (-30.0, -10.0)       # what --level accepts
PEAK_LIMIT_DBFS = -1.0
BAND_HZ = (300.0, 3400.0)
EDGE_S = 0.05                      # silence kept before and after the speech
TRIM_BELOW_DB = 12.0               # edges: envelope this far under the activity threshold
LOW_LEVEL_DBM0 = -35.0             # a source this quiet has its noise raised with it
MIN_SPEECH_S = 0.2
MIN_ACTIVITY = 0.3
LONG_SILENCE_S = 1.0
LONG_PROMPT_S = 10.0

_BAND = butter(4, BAND_HZ, btype="bandpass", fs=RATE, output="sos")


class PromptError(Exception):
    """A recording that cannot become a prompt; the message is one line."""


@dataclass
class Converted:
    """A prompt ready to write, and what was found on the way."""

    audio: np.ndarray              # int16 at 8 kHz
    before: SpeechLevel            # band-limited and trimmed, before the gain
    after: SpeechLevel             # what is written
    gain_db: float
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ conversion


def telephone_band(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz, zero phase (no delay, and the same on every run)."""
    if x.size <= 27:               # sosfiltfilt's padding needs a little audio
        return x
    return sosfiltfilt(_BAND, x)


def trim(x: np.ndarray, level: SpeechLevel, rate: int = RATE) -> np.ndarray:
    """Leading and trailing silence cut to EDGE_S (padded to it when shorter).

    The speech starts and ends where the peaks of 10 ms windows (no smoothing
    lag either way) pass a threshold TRIM_BELOW_DB under the activity
    threshold, but above twice the recording's own noise floor.
    """
    if x.size == 0 or level.threshold <= 0:
        return x
    peaks = maximum_filter1d(np.abs(x), size=max(1, rate // 100))
    floor = 2.0 * float(np.percentile(peaks, 10))
    threshold = min(max(level.threshold * 10 ** (-TRIM_BELOW_DB / 20), floor), level.threshold)
    heard = np.flatnonzero(peaks >= threshold)
    if heard.size == 0:
        return x
    edge = round(EDGE_S * rate)
    first, last = int(heard[0]), int(heard[-1]) + 1
    body = x[max(0, first - edge):min(x.size, last + edge)]
    before = max(0, edge - first)
    after = max(0, last + edge - x.size)
    return np.concatenate([np.zeros(before), body, np.zeros(after)]) if before or after else body


def convert(samples: np.ndarray, rate: int, level_dbm0: float = TARGET_DBM0) -> Converted:
    """Float samples in [-1, 1) at any rate -> an 8 kHz int16 prompt at `level_dbm0`."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise PromptError("no audio in the file")
    if not np.all(np.isfinite(x)):
        raise PromptError("samples that are not numbers (NaN or infinity)")
    warnings = []
    clips = clipped_runs(x, full_scale=1.0)
    if clips:
        warnings.append(f"clipping in the source ({clips} flat run{'s' * (clips != 1)} at "
                        "full scale): re-record it quieter")
    y = telephone_band(resample(x, rate, RATE) * INT16_FULL_SCALE)
    rough = measure(y)
    if rough.activity == 0.0:
        raise PromptError("no speech found (silent recording)")
    y = trim(y, rough)
    before = measure(y)
    if before.activity == 0.0:
        raise PromptError("no speech found (silent recording)")
    gain = level_dbm0 - before.level_dbm0
    if before.peak_dbfs + gain > PEAK_LIMIT_DBFS:
        gain = PEAK_LIMIT_DBFS - before.peak_dbfs - 0.01      # room for rounding to int16
        warnings.append(f"gain limited so that peaks stay under {PEAK_LIMIT_DBFS:.0f} dBFS: "
                        f"{before.level_dbm0 + gain:.1f} dBm0 instead of {level_dbm0:.1f} "
                        "(very peaky audio)")
    if before.level_dbm0 < LOW_LEVEL_DBM0:
        warnings.append(f"low level ({before.level_dbm0:.1f} dBm0 active before a gain of "
                        f"{gain:+.1f} dB; its noise is raised as much): re-record it louder")
    audio = to_int16(y * 10 ** (gain / 20) / INT16_FULL_SCALE)
    after = measure(audio)
    warnings += findings(audio, after)
    return Converted(audio, before, after, gain, warnings)


def findings(audio: np.ndarray, level: SpeechLevel, rate: int = RATE) -> list[str]:
    """What a caller would notice in a prompt, besides its level and clipping."""
    out = []
    if level.active_seconds < MIN_SPEECH_S or level.activity < MIN_ACTIVITY:
        out.append(f"too little speech ({level.active_seconds:.2f} s, "
                   f"{level.activity * 100:.0f} % of the prompt)")
    gaps = long_silences(audio, level, rate)
    if gaps:
        out.append(f"long silence{'s' * (len(gaps) > 1)} inside ("
                   + ", ".join(f"{g:.1f} s" for g in gaps) + ")")
    if level.seconds > LONG_PROMPT_S:
        out.append(f"very long prompt ({level.seconds:.1f} s; callers barge in or hang up)")
    return out


def long_silences(audio: np.ndarray, level: SpeechLevel, rate: int = RATE) -> list[float]:
    """Pauses between speech longer than LONG_SILENCE_S (the edges are not pauses)."""
    if level.threshold <= 0 or audio.size == 0:
        return []
    active = active_mask(envelope(audio, rate), level.threshold, rate)
    edges = np.diff(np.concatenate(([1], active.astype(np.int8), [1])))
    starts, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    hang = 0.2                      # the hangover counts the start of a pause as speech
    return [round((e - s) / rate + hang, 1) for s, e in zip(starts, ends)
            if s > 0 and e < audio.size and (e - s) / rate + hang > LONG_SILENCE_S]


def prompt_name(path: Path) -> str:
    """A config-friendly prompt name from a file name."""
    name = re.sub(r"[^a-z0-9_-]+", "_", path.stem.lower()).strip("_")
    return name or "prompt"


def write_prompt(path: Path, audio: np.ndarray) -> None:
    """Write through a temporary file: a failed run never leaves half a prompt."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        write_wav(tmp, audio)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ checking


@dataclass
class Checked:
    """One prompt file as `check` found it."""

    name: str
    level: SpeechLevel | None = None
    problems: list[str] = field(default_factory=list)      # make the check fail
    warnings: list[str] = field(default_factory=list)


def check_file(path: Path, level_dbm0: float = TARGET_DBM0,
               tolerance_db: float = TOLERANCE_DB) -> Checked:
    out = Checked(path.name)
    fmt = _format_problem(path)
    audio = read_wav(path)                         # WavError: the caller reports it
    if fmt:
        out.problems.append(fmt)
    m = out.level = measure(audio)
    if m.activity == 0.0:
        out.problems.append("no speech (silent)")
        return out
    if abs(m.level_dbm0 - level_dbm0) > tolerance_db:
        out.problems.append(f"level {m.level_dbm0:.1f} dBm0 is outside {level_dbm0:g} "
                            f"+-{tolerance_db:g} dB")
    clips = clipped_runs(audio)
    if clips:
        out.problems.append(f"clipped ({clips} flat run{'s' * (clips != 1)} at full scale)")
    out.warnings = findings(audio, m)
    return out


def _format_problem(path: Path) -> str | None:
    """None for 8 kHz mono 16-bit PCM, else what it is instead."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
    except (wave.Error, EOFError, OSError):
        return "not 16-bit PCM (convert it)"
    if (rate, channels, width) == (RATE, 1, 2):
        return None
    return (f"{rate} Hz, {channels} channel{'s' * (channels != 1)}, {8 * width}-bit, not "
            f"{RATE} Hz mono 16-bit (convert it)")


# ------------------------------------------------------------------ the command


def add_parser(sub) -> None:
    """`callgate prompts convert|check`."""
    top = sub.add_parser("prompts", help="convert recordings into prompts, check a prompt set",
                         description="Make any WAV recording into a prompt (8 kHz mono 16-bit, "
                                     "300-3400 Hz, ~50 ms of silence at each end, about "
                                     f"{TARGET_DBM0:g} dBm0 active speech level), or check "
                                     "a folder of prompts.")
    top.set_defaults(func=lambda args: (top.print_help(sys.stderr), 2)[1])
    acts = top.add_subparsers(metavar="ACTION")

    conv = acts.add_parser("convert", help="convert recordings into prompts",
                           description="Convert each WAV (any rate, bit depth and channels; "
                                       "the first channel is used) into DIR/<name>.wav. "
                                       "Warnings (clipping in the source, low level, little "
                                       "speech, long silences, very long prompt) go to stderr, "
                                       "one line per file, and the prompt is still written. "
                                       "A file that cannot be read is one line on stderr; the "
                                       "others are still converted and the exit status is 1.")
    conv.add_argument("inputs", nargs="+", metavar="IN.wav")
    conv.add_argument("--out", required=True, metavar="DIR", help="folder to write prompts to")
    conv.add_argument("--level", type=float, default=TARGET_DBM0, metavar="DBM0",
                      help=f"active speech level to reach (default {TARGET_DBM0:g})")
    conv.add_argument("--name", help="prompt name for a single input (default: its file name)")
    conv.set_defaults(func=cmd_convert)

    chk = acts.add_parser("check", help="measure a folder of prompts",
                          description="Print each prompt's duration, active speech level, "
                                      "activity and peak, with anything wrong. Exits 1 when a "
                                      "prompt is out of the level range, clipped, silent or "
                                      "not 8 kHz mono 16-bit.")
    chk.add_argument("folder", metavar="DIR")
    chk.add_argument("--level", type=float, default=TARGET_DBM0, metavar="DBM0",
                     help=f"expected active speech level (default {TARGET_DBM0:g})")
    chk.add_argument("--tolerance", type=float, default=TOLERANCE_DB, metavar="DB",
                     help=f"allowed distance from --level (default {TOLERANCE_DB:g})")
    chk.set_defaults(func=cmd_check)


def _say(line: str) -> None:
    print(f"callgate prompts: {line}", file=sys.stderr)


def cmd_convert(args: argparse.Namespace) -> int:
    low, high = LEVEL_RANGE
    if not (math.isfinite(args.level) and low <= args.level <= high):
        _say(f"--level: {args.level:g} is outside {low:g}..{high:g} dBm0")
        return 2
    if args.name is not None and len(args.inputs) != 1:
        _say("--name: only with a single input file")
        return 2
    if args.name is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", args.name):
        _say(f"--name: {args.name!r} must be letters, digits, - and _")
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _say(f"--out: {out}: {err.strerror or err}")
        return 2
    status, made = 0, {}
    for item in args.inputs:
        src = Path(item)
        name = args.name or prompt_name(src)
        if name in made:
            _say(f"{src}: would also be {name}.wav (as {made[name]}); rename one or use --name")
            status = 1
            continue
        try:
            samples, rate = read_source(src)
            result = convert(samples, rate, args.level)
            dst = out / f"{name}.wav"
            write_prompt(dst, result.audio)
        except (WavError, PromptError) as err:
            _say(str(err) if isinstance(err, WavError) else f"{src}: {err}")
            status = 1
            continue
        except OSError as err:
            _say(f"{out / (name + '.wav')}: {err.strerror or err}")
            status = 1
            continue
        made[name] = src
        a = result.after
        print(f"{dst}: {a.seconds:.2f} s, {a.level_dbm0:.1f} dBm0 active speech "
              f"(gain {result.gain_db:+.1f} dB), peak {a.peak_dbfs:.1f} dBFS")
        if result.warnings:
            _say(f"{src}: warning: {'; '.join(result.warnings)}")
    return status


def cmd_check(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        _say(f"{folder}: not a folder")
        return 2
    if not math.isfinite(args.level):
        _say(f"--level: {args.level:g} is not a level")
        return 2
    if not (math.isfinite(args.tolerance) and args.tolerance > 0):
        _say(f"--tolerance: {args.tolerance:g} must be above 0 dB")
        return 2
    paths = sorted(folder.glob("*.wav"))
    if not paths:
        _say(f"{folder}: no .wav prompts in it")
        return 2
    width = max(len(p.name) for p in paths)
    failed = 0
    for path in paths:
        try:
            c = check_file(path, args.level, args.tolerance)
        except WavError as err:
            _say(str(err))
            failed += 1
            continue
        m = c.level
        verdict = "FAIL: " + "; ".join(c.problems) if c.problems else "ok"
        if c.warnings:
            verdict += " (warning: " + "; ".join(c.warnings) + ")"
        print(f"{c.name:<{width}}  {m.seconds:6.2f} s  {m.level_dbm0:6.1f} dBm0  "
              f"speech {m.activity * 100:3.0f} %  peak {m.peak_dbfs:6.1f} dBFS  {verdict}")
        failed += bool(c.problems)
    print(f"{len(paths)} prompt{'s' * (len(paths) != 1)} in {folder}: "
          f"{len(paths) - failed} ok, {failed} failed "
          f"(level {args.level:g} +-{args.tolerance:g} dBm0 active speech)")
    return 1 if failed else 0
