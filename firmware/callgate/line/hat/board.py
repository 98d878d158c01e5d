"""The HAT's board file: hw/<board>.toml, which pins, which levels, which timing, which codec.

A board is data, so a new DAA board is a file, not code. `load_board` reads
and checks one, with errors "<file>: <key>: <what>"; `find_board` looks a
board name up in `[line.hat] hw_dir`, then $CALLGATE_HW, then the source
tree's hw/ (hw/README.md describes the format).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ...config import ConfigError, Table, load
from ...dsp import RATE
from .alsa import AudioSpec
from .gpio import BIASES, INPUTS, SIGNALS, PinSpec

HW_ENV = "CALLGATE_HW"
DEFAULT_BOARD = "xe0092-usb"


# ----------------------------------------------------------------- finding hw/


def hw_dirs(hw_dir: str | None = None) -> list[Path]:
    """Where board files are looked for, first match wins.

    An explicit `hw_dir` ([line.hat] key), then $CALLGATE_HW, then the source
    checkout's hw/ (beside firmware/), then the system places an image
    installs them to.
    """
    dirs = []
    if hw_dir:
        dirs.append(Path(hw_dir))
    if os.environ.get(HW_ENV):
        dirs.append(Path(os.environ[HW_ENV]))
    dirs.append(Path(__file__).resolve().parents[4] / "hw")
    dirs.append(Path(sys.prefix) / "hw")          # a release's own (appliance/update.py)
    dirs += [Path("/etc/callgate/hw"), Path("/usr/share/callgate/hw")]
    return dirs


def find_board(board: str, hw_dir: str | None = None) -> Path:
    """The board file for a name ("xe0092-usb") or a path; ConfigError if none."""
    if "/" in board or board.endswith(".toml"):
        path = Path(board).expanduser()
        if not path.is_file():
            raise ConfigError(f"line.hat.board: no board file {path}")
        return path
    places = hw_dirs(hw_dir)
    for d in places:
        path = d / f"{board}.toml"
        if path.is_file():
            return path
    raise ConfigError(f"line.hat.board: no {board}.toml in {', '.join(map(str, places))} "
                      f"(set line.hat.hw_dir or ${HW_ENV})")


# ----------------------------------------------------------------- the board file


@dataclass(frozen=True)
class RingSpec:
    gap_ms: float = 200.0       # a burst ends after this long without a pulse
    min_edges: int = 3          # edges before a burst counts
    settle_ms: float = 60.0     # ring input ignored this long after the hook relay moves


@dataclass(frozen=True)
class HookSpec:
    operate_ms: float = 10.0    # relay: coil energised -> contacts closed and settled
    release_ms: float = 5.0     # relay: coil released -> contacts open
    loop_settle_ms: float = 100.0   # loop current input ignored after going off hook


@dataclass(frozen=True)
class Board:
    name: str
    path: Path
    pins: dict[str, PinSpec]
    ring: RingSpec = field(default_factory=RingSpec)
    hook: HookSpec = field(default_factory=HookSpec)
    audio: AudioSpec = field(default_factory=AudioSpec)
    onhook_audio: bool = True   # the DAA passes line audio on hook (caller ID path)


def _pin(signal: str, t: Table) -> PinSpec:
    name = t.get("name", str, None)
    chip = t.get("chip", str, None)
    offset = t.get("offset", int, None)
    if name is None and (chip is None or offset is None):
        raise ConfigError(f"{t.key('name')}: missing (or give chip and offset)")
    if offset is not None and offset < 0:
        raise ConfigError(f"{t.key('offset')}: {offset} is negative")
    pin = PinSpec(signal, name, chip, offset,
                  active_low=t.get("active_low", bool, False),
                  bias=t.choice("bias", BIASES, "pull_up" if signal in INPUTS else "as_is"),
                  debounce_ms=t.number("debounce_ms", 0.0, 0.0, 100.0)
                  if signal in INPUTS else 0.0)
    t.reject_unknown()
    return pin


def audio_spec(t: Table, base: AudioSpec | None = None) -> AudioSpec:
    base = base or AudioSpec()
    rate = t.get("rate", int, base.rate)
    if rate <= 0 or rate % RATE:
        raise ConfigError(f"{t.key('rate')}: {rate} is not a multiple of {RATE} "
                          f"(use 8000, 16000, 48000 ...)")
    spec = AudioSpec(
        device=t.get("device", str, base.device), rate=rate,
        period_ms=int(t.number("period_ms", base.period_ms, 20, 20)),
        periods=t.get("periods", int, base.periods),
        capture_channels=t.get("capture_channels", int, base.capture_channels),
        capture_channel=t.get("capture_channel", int, base.capture_channel),
        playback_channels=t.get("playback_channels", int, base.playback_channels),
        rx_gain_db=t.number("rx_gain_db", base.rx_gain_db, -40.0, 40.0),
        tx_gain_db=t.number("tx_gain_db", base.tx_gain_db, -40.0, 40.0))
    if not 2 <= spec.periods <= 64:
        raise ConfigError(f"{t.key('periods')}: {spec.periods} is outside 2..64")
    for key in ("capture_channels", "playback_channels"):
        if not 1 <= getattr(spec, key) <= 8:
            raise ConfigError(f"{t.key(key)}: {getattr(spec, key)} is outside 1..8")
    if not 0 <= spec.capture_channel < spec.capture_channels:
        raise ConfigError(f"{t.key('capture_channel')}: {spec.capture_channel} is not one of "
                          f"the {spec.capture_channels} capture channels")
    return spec


def load_board(path: str | Path) -> Board:
    """Read and check a board file; ConfigError "<file>: <key>: <what>" on any fault."""
    path = Path(path)
    top = load(path)
    try:
        meta = top.sub("board")
        name = meta.get("name", str, path.stem)
        meta.get("description", str, "")
        onhook_audio = meta.get("onhook_audio", bool, True)
        meta.reject_unknown()
        gpio = top.sub("gpio")
        pins = {s: _pin(s, gpio.sub(s)) for s in SIGNALS if s in gpio.data}
        gpio.reject_unknown()
        for needed in ("ring", "hook"):
            if needed not in pins:
                raise ConfigError(f"gpio.{needed}: missing (a DAA needs ring detect and hook)")
        r = top.sub("ring")
        ring = RingSpec(gap_ms=r.number("gap_ms", 200.0, 60.0, 1000.0),
                        min_edges=r.get("min_edges", int, 3),
                        settle_ms=r.number("settle_ms", 60.0, 0.0, 1000.0))
        if not 1 <= ring.min_edges <= 50:
            raise ConfigError(f"ring.min_edges: {ring.min_edges} is outside 1..50")
        r.reject_unknown()
        h = top.sub("hook")
        hook = HookSpec(operate_ms=h.number("operate_ms", 10.0, 0.0, 100.0),
                        release_ms=h.number("release_ms", 5.0, 0.0, 100.0),
                        loop_settle_ms=h.number("loop_settle_ms", 100.0, 0.0, 2000.0))
        h.reject_unknown()
        a = top.sub("audio")
        audio = audio_spec(a)
        a.reject_unknown()
        top.reject_unknown()
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return Board(name, path, pins, ring, hook, audio, onhook_audio)


__all__ = ["DEFAULT_BOARD", "HW_ENV", "Board", "HookSpec", "RingSpec", "audio_spec", "find_board",
           "hw_dirs", "load_board"]
