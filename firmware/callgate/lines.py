"""Several lines on one device: which lines the configuration names, and which one runs.

A device answers one line per process (`callgate run --line NAME`, the unit
callgate@NAME.service); every line's process writes to the one call store, and
each record and line state carries its line's name. The lines come from:

    [line]                  one table: the device's only line, named "line"
    [[line]] + name = ...   an array of tables in the main file, one per line
    lines/<name>.toml       a file per line beside the main file (/etc/callgate/lines/),
                            holding that line's [line] table; its name is the file's

Two lines may not share a name, nor a device (a modem port, after symlinks such
as /dev/callgate-modem0 are followed; a HAT's ALSA device or GPIO pins): two
processes on one serial port or codec would fight over it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, Table, is_name, read_toml

DEFAULT_LINE = "line"
LINES_DIR = "lines"


@dataclass(frozen=True)
class LineSpec:
    """One configured line: its name, its [line] table, and where it was written."""

    name: str
    table: Table
    origin: str


def configured_lines(table: Table, lines_dir: Path | None = None) -> list[LineSpec]:
    """Every line the configuration names, in file order then lines/ by name; ConfigError
    for a bad name, a name used twice or a lines/ file that cannot be read."""
    found = _main_file_lines(table)
    if lines_dir is not None and lines_dir.is_dir():
        found += [_line_file(p) for p in sorted(lines_dir.glob("*.toml"))]
    if not found:
        found = [LineSpec(DEFAULT_LINE, Table({}, "line"), "the default line")]
    seen: dict[str, str] = {}
    for spec in found:
        if spec.name in seen:
            raise ConfigError(f"line {spec.name!r}: defined twice ({seen[spec.name]} and "
                              f"{spec.origin})")
        seen[spec.name] = spec.origin
    return found


def lines_dir_of(config: str | Path | None) -> Path | None:
    """lines/ beside the main file (None for the embedded defaults)."""
    return Path(config).parent / LINES_DIR if config else None


def choose_line(lines: list[LineSpec], name: str | None) -> LineSpec:
    """The line `--line NAME` asks for; without one, the only line there is."""
    names = [s.name for s in lines]
    if name is None:
        if len(lines) > 1:
            raise ConfigError(f"line: {len(lines)} lines are configured ({', '.join(names)}): "
                              "run one process per line with --line NAME "
                              "(systemd: callgate@NAME.service)")
        return lines[0]
    for spec in lines:
        if spec.name == name:
            return spec
    raise ConfigError(f"--line {name}: no such line (configured: {', '.join(names)})")


def check_devices(built: dict[str, object]) -> None:
    """ConfigError if two lines would open the same device."""
    owner: dict[str, str] = {}
    for name, line in built.items():
        for device in devices_of(line):
            if device in owner:
                raise ConfigError(f"line {name!r}: {device}{_as_configured(line)} is already "
                                  f"line {owner[device]!r}'s (one device, one line"
                                  f"{_SERIAL_HINT if device.startswith('serial') else ''})")
            owner[device] = name


def devices_of(line) -> list[str]:
    """The devices a built (not opened) line would hold: a modem's serial port, a HAT's
    ALSA device and GPIO lines. Sim and replay lines hold none."""
    port = getattr(line, "port", None)
    if isinstance(port, str):
        return [f"serial port {_real(port)}"]
    board = getattr(line, "board", None)
    if board is None:
        return []
    pins = [f"GPIO {pin.name}" if pin.name else f"GPIO {_real(pin.chip)} line {pin.offset}"
            for pin in board.pins.values()]
    return [f"ALSA device {board.audio.device}", *pins]


_SERIAL_HINT = "; give each modem its /dev/serial/by-id name"


def _as_configured(line) -> str:
    """How the line named its port when that was not the port itself ("auto")."""
    return " (port auto)" if getattr(line, "configured_port", None) == "auto" else ""


def _real(path: str | None) -> str:
    """A device path after symlinks (a by-id or udev name and its ttyACMn are one port);
    URLs such as socket:// stay as they are."""
    if not path or "://" in path:
        return str(path)
    return os.path.realpath(path)


def _main_file_lines(table: Table) -> list[LineSpec]:
    value = table.data.get("line")
    table.used.add("line")
    if value is None:
        return []
    if isinstance(value, dict):
        return [LineSpec(DEFAULT_LINE, Table(value, "line"), "[line]")]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError("line: expected a [line] table or [[line]] tables")
    out = []
    for i, data in enumerate(value):
        name = data.get("name")
        if not is_name(name):
            raise ConfigError(f"line[{i}].name: " + ("missing" if name is None else
                              f"{name!r} is not a line name (letters, digits, - and _)"))
        rest = {k: v for k, v in data.items() if k != "name"}
        out.append(LineSpec(name, Table(rest, f"line[{name}]"), f"[[line]] {name}"))
    return out


def _line_file(path: Path) -> LineSpec:
    name = path.stem
    where = f"{path.parent.name}/{path.name}"
    if not is_name(name):
        raise ConfigError(f"{where}: {name!r} is not a line name (letters, digits, - and _)")
    try:
        data = read_toml(path)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    extra = [k for k in data if k != "line"]
    if extra:
        raise ConfigError(f"{where}: {extra[0]}: unknown key (a line file holds one [line] "
                          "table)")
    if not isinstance(data.get("line", {}), dict):
        raise ConfigError(f"{where}: line: expected a table")
    return LineSpec(name, Table(data.get("line", {}), f"{where}: line"), where)


__all__ = ["DEFAULT_LINE", "LINES_DIR", "LineSpec", "check_devices", "choose_line",
           "configured_lines", "devices_of", "lines_dir_of"]
