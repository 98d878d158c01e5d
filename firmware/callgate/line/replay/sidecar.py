"""The replay sidecar: what a recording of a line carries besides its audio.

A recording carries the line's audio but not what the line hardware saw
besides it: ring voltage, loop current, polarity. Those come from a sidecar
JSON file beside the WAV (``call.wav`` -> ``call.events.json``, or a path
given explicitly): the call recorder (line/recording.py) writes it, `replay`
(line.py) reads it, so a call from the field becomes a test fixture.

The sidecar format
------------------
One JSON object::

    {"version": 1,
     "rate": 8000,
     "capabilities": {"loop_current": true, "polarity": true},
     "events": [
       {"t": 1.0, "event": "ring_start"},
       {"t": 3.0, "event": "ring_stop"},
       {"sample": 72000, "event": "loop_current", "present": false},
       {"t": 9.6, "event": "loop_current", "present": true},
       {"t": 9.7, "event": "polarity_reversal"},
       {"t": 9.8, "event": "parallel_handset", "off_hook": true}],
     "controls": [{"t": 5.2, "control": "off_hook"}]}

Every key is optional. Each event or control entry has exactly one time: `t`
in seconds from the start of the recording, or `sample`, counted at `rate` Hz
(default 8000, the line's rate; give the WAV's own rate when counting in its
samples). Times are rounded to the nearest 8 kHz sample and must fall inside
the recording. Events are delivered by `read()` in the 20 ms frame they fall
in, stamped with their exact sample.

Events (`event` is the line event's `kind`): ring_start, ring_stop,
polarity_reversal, line_restored (no fields); loop_current (`present`:
bool); parallel_handset (`off_hook`: bool); line_tone (`tone`: a
call-progress name the hardware reported: "busy", "dial", "reorder",
"ringback", "silence", "fax", "data"...); line_fault (`reason`:
string, optional); callerid (caller ID the hardware decoded itself, as a
modem does: `format`, `number`, `name`, `datetime`, `number_absent`,
`name_absent`, `checksum_ok`, `error`, each optional). Keyed digits are never
stored (there is no dtmf event): the recorder scrubs them from the audio.
flash_done is not an event here: replay reports it after each `flash()`.

`controls` are what the recorded engine did (off_hook, on_hook, flash with
`ms`, listen_callerid with `on`); replay does not act on them, it keeps them
in `recorded_controls` so a test can compare them with what the engine does
now (`controls`). `capabilities` (loop_current, polarity, parallel_handset,
full_duplex, onhook_audio: bools) says what the recorded hardware could tell;
absent ones default to "reported if the sidecar holds such events", and to
true for full_duplex and onhook_audio. Unknown keys are errors, so a typo is
reported instead of silently ignored.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ...dsp.events import CallerIdEvent
from ...dsp.events import Event
from ..base import (Capabilities, LineError, LineFault, LineRestored, LineTone, LoopCurrent,
                    ParallelHandset, PolarityReversal, RingStart, RingStop)

RATE = 8000
SIDECAR_SUFFIX = ".events.json"
SIDECAR_VERSION = 1
TONE_NAME = re.compile(r"[a-z][a-z_]{0,31}")   # busy, dial, reorder, ringback, silence, fax...
CONTROLS = ("off_hook", "on_hook", "flash", "listen_callerid")
CAPABILITY_KEYS = ("loop_current", "polarity", "parallel_handset", "full_duplex", "onhook_audio")
TOP_KEYS = {"version", "rate", "capabilities", "events", "controls", "recorded_from", "note"}

_STR = (str,)
_OPT_STR = (str, type(None))
_BOOL = (bool,)

# kind -> (event class, {field: (accepted JSON types, required)})
EVENT_TYPES: dict[str, tuple[type[Event], dict[str, tuple[tuple[type, ...], bool]]]] = {
    "ring_start": (RingStart, {}),
    "ring_stop": (RingStop, {}),
    "polarity_reversal": (PolarityReversal, {}),
    "line_restored": (LineRestored, {}),
    "loop_current": (LoopCurrent, {"present": (_BOOL, True)}),
    "parallel_handset": (ParallelHandset, {"off_hook": (_BOOL, True)}),
    "line_tone": (LineTone, {"tone": (_STR, True)}),
    "line_fault": (LineFault, {"reason": (_STR, False)}),
    "callerid": (CallerIdEvent, {"format": (_STR, False), "number": (_OPT_STR, False),
                                 "name": (_OPT_STR, False), "datetime": (_OPT_STR, False),
                                 "number_absent": (_OPT_STR, False),
                                 "name_absent": (_OPT_STR, False),
                                 "checksum_ok": (_BOOL, False), "error": (_OPT_STR, False)}),
}
_NOT_EVENTS = {
    "dtmf": "keyed digits are never stored in a sidecar",
    "flash_done": "replay reports flash_done itself after each flash()",
}


@dataclass(frozen=True)
class Control:
    """A control the engine used, stamped with the line sample it was asked at."""

    sample: int
    control: str                  # off_hook | on_hook | flash | listen_callerid
    ms: float | None = None       # flash only
    on: bool | None = None        # listen_callerid only

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"t": seconds(self.sample), "control": self.control}
        if self.ms is not None:
            out["ms"] = self.ms
        if self.on is not None:
            out["on"] = self.on
        return out


@dataclass
class Sidecar:
    """The parsed sidecar: events and controls sorted by sample, capabilities as given."""

    events: list[Event]
    controls: list[Control]
    capabilities: dict[str, bool]
    recorded_from: str | None = None


def seconds(sample: int) -> float:
    """A sample count as seconds; exact at 8 kHz with 6 decimals (1/8000 = 0.000125)."""
    return round(sample / RATE, 6)


def sidecar_path(wav: str | Path) -> Path:
    """Where the sidecar of `wav` lives: the same name with .events.json."""
    return Path(wav).with_suffix(SIDECAR_SUFFIX)


# ------------------------------------------------------------------ reading


def load_sidecar(path: str | Path, length: int | None = None) -> Sidecar:
    """Read and check a sidecar file; LineError (one line naming the entry) if bad."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LineError(f"{path}: no such sidecar file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LineError(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LineError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    return parse_sidecar(data, str(path), length)


def parse_sidecar(data: Any, source: str = "sidecar", length: int | None = None) -> Sidecar:
    """Check a decoded sidecar object; `length` (8 kHz samples) bounds the times."""
    def fail(where: str, what: str) -> LineError:
        return LineError(f"{source}: {where}: {what}" if where else f"{source}: {what}")

    if not isinstance(data, dict):
        raise fail("", f"expected a JSON object, got {type(data).__name__}")
    for key in data:
        if key not in TOP_KEYS:
            raise fail(key, f"unknown key (known: {', '.join(sorted(TOP_KEYS))})")
    version = data.get("version", SIDECAR_VERSION)
    if version != SIDECAR_VERSION or isinstance(version, bool):
        raise fail("version", f"{version!r} is not supported "
                              f"(this firmware reads {SIDECAR_VERSION})")
    rate = data.get("rate", RATE)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise fail("rate", f"expected a positive integer (Hz), got {rate!r}")
    recorded_from = data.get("recorded_from")
    if recorded_from is not None and not isinstance(recorded_from, str):
        raise fail("recorded_from", f"expected a string, got {recorded_from!r}")
    if not isinstance(data.get("note", ""), str):
        raise fail("note", f"expected a string, got {data['note']!r}")

    caps = data.get("capabilities", {})
    if not isinstance(caps, dict):
        raise fail("capabilities", f"expected an object, got {caps!r}")
    for key, value in caps.items():
        if key not in CAPABILITY_KEYS:
            raise fail(f"capabilities.{key}", f"unknown (known: {', '.join(CAPABILITY_KEYS)})")
        if not isinstance(value, bool):
            raise fail(f"capabilities.{key}", f"expected true or false, got {value!r}")

    events = [_parse_event(entry, f"events[{i}]", rate, length, fail)
              for i, entry in enumerate(_list(data, "events", fail))]
    controls = [_parse_control(entry, f"controls[{i}]", rate, length, fail)
                for i, entry in enumerate(_list(data, "controls", fail))]
    events.sort(key=lambda e: e.sample)
    controls.sort(key=lambda c: c.sample)
    return Sidecar(events, controls, dict(caps), recorded_from)


def _list(data: dict, key: str, fail) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise fail(key, f"expected a list, got {type(value).__name__}")
    return value


def _parse_time(entry: dict, where: str, rate: int, length: int | None, fail,
                at_end_ok: bool = False) -> int:
    has_t, has_sample = "t" in entry, "sample" in entry
    if has_t == has_sample:
        raise fail(where, "needs exactly one of 't' (seconds) or 'sample'")
    if has_t:
        t = entry["t"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise fail(where, f"t must be seconds >= 0, got {t!r}")
        sample = int(round(t * RATE))
    else:
        s = entry["sample"]
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise fail(where, f"sample must be an integer >= 0, got {s!r}")
        sample = int(round(s * RATE / rate))
    if length is not None and (sample > length or (sample == length and not at_end_ok)):
        raise fail(where, f"at {sample / RATE:.3f} s, after the end of the recording "
                          f"({length / RATE:.3f} s)")
    return sample


def _parse_event(entry: Any, where: str, rate: int, length: int | None, fail) -> Event:
    if not isinstance(entry, dict):
        raise fail(where, f"expected an object, got {entry!r}")
    kind = entry.get("event")
    if kind in _NOT_EVENTS:
        raise fail(where, f"{kind!r} is not allowed: {_NOT_EVENTS[kind]}")
    if kind not in EVENT_TYPES:
        raise fail(where, f"unknown event {kind!r} (known: {', '.join(EVENT_TYPES)})")
    cls, spec = EVENT_TYPES[kind]
    for key in entry:
        if key not in ("t", "sample", "event") and key not in spec:
            allowed = ", ".join(spec) or "none"
            raise fail(where, f"unknown key {key!r} for {kind} (its fields: {allowed})")
    values = {}
    for key, (types, required) in spec.items():
        if key not in entry:
            if required:
                raise fail(where, f"{kind} needs {key!r}")
            continue
        value = entry[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise fail(where, f"{key} has the wrong type: {value!r}")
        values[key] = value
    if kind == "line_tone" and not TONE_NAME.fullmatch(values["tone"]):
        raise fail(where, f"tone {values['tone']!r} is not a tone name such as busy or dial")
    return cls(_parse_time(entry, where, rate, length, fail), **values)


def _parse_control(entry: Any, where: str, rate: int, length: int | None, fail) -> Control:
    if not isinstance(entry, dict):
        raise fail(where, f"expected an object, got {entry!r}")
    control = entry.get("control")
    if control not in CONTROLS:
        raise fail(where, f"unknown control {control!r} (known: {', '.join(CONTROLS)})")
    allowed = {"t", "sample", "control"} | ({"ms"} if control == "flash" else set()) \
        | ({"on"} if control == "listen_callerid" else set())
    for key in entry:
        if key not in allowed:
            raise fail(where, f"unknown key {key!r} for {control}")
    ms = on = None
    if control == "flash":
        ms = entry.get("ms")
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 < ms <= 10000:
            raise fail(where, f"flash needs 'ms' within 0..10000, got {ms!r}")
        ms = float(ms)
    if control == "listen_callerid":
        on = entry.get("on")
        if not isinstance(on, bool):
            raise fail(where, f"listen_callerid needs 'on' (true or false), got {on!r}")
    # a control may be asked just after the last frame (hang up, then the line ends)
    return Control(_parse_time(entry, where, rate, length, fail, at_end_ok=True), control, ms, on)


# ------------------------------------------------------------------ writing


def event_entry(event: Event, sample: int) -> dict | None:
    """The sidecar entry of a line event at `sample`, or None if it is not stored."""
    kind = getattr(event, "kind", None)
    if kind not in EVENT_TYPES or not isinstance(event, EVENT_TYPES[kind][0]):
        return None
    entry: dict[str, Any] = {"t": seconds(sample), "event": kind}
    spec = EVENT_TYPES[kind][1]
    for f in fields(event):
        if f.name in spec:
            entry[f.name] = getattr(event, f.name)
    return entry


def sidecar_object(events: list[tuple[int, Event]], controls: list[Control],
                   capabilities: Capabilities | None = None,
                   recorded_from: str | None = None) -> dict:
    """The JSON object of a sidecar; events the format does not hold are left out."""
    out: dict[str, Any] = {"version": SIDECAR_VERSION, "rate": RATE}
    if recorded_from:
        out["recorded_from"] = recorded_from
    if capabilities is not None:
        caps = asdict(capabilities)
        out["capabilities"] = {k: bool(caps[k]) for k in CAPABILITY_KEYS}
    entries = [event_entry(e, s) for s, e in events]
    out["events"] = [e for e in entries if e is not None]
    out["controls"] = [c.as_dict() for c in controls]
    return out
