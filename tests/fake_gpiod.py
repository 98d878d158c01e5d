"""A fake of the libgpiod v2 Python binding (PyPI `gpiod` >= 2) over fake GPIO chips.

Same names and types as the real binding: gpiod.Chip(path) (context manager,
line_offset_from_id(name|offset), get_info()), gpiod.request_lines(path, consumer=,
config={offset|name|tuple: LineSettings}, output_values=), gpiod.LineSettings (a
dataclass with direction, edge_detection, bias, drive, active_low, debounce_period
(timedelta), event_clock, output_value), gpiod.line.{Direction, Edge, Bias, Drive,
Clock, Value}, LineRequest.get_value/set_value/wait_edge_events(timeout)/
read_edge_events(max_events)/release, EdgeEvent with event_type (EdgeEvent.Type),
timestamp_ns, line_offset, global_seqno, line_seqno.

Edges behave as the kernel's GPIO character device makes them: logical level =
physical level inverted when active_low; with a debounce period an edge is
reported only once the input has been stable that long, stamped when the
debounce period expired (so a pulse shorter than it is never seen); events sit
in a bounded buffer from which the oldest are dropped on overflow; timestamps
are on the fake CLOCK_MONOTONIC the ALSA fake also uses.
"""

from __future__ import annotations

import errno
import types
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum


class Value(Enum):
    INACTIVE = 0
    ACTIVE = 1


class Direction(Enum):
    AS_IS = 1
    INPUT = 2
    OUTPUT = 3


class Bias(Enum):
    AS_IS = 1
    UNKNOWN = 2
    DISABLED = 3
    PULL_UP = 4
    PULL_DOWN = 5


class Drive(Enum):
    PUSH_PULL = 1
    OPEN_DRAIN = 2
    OPEN_SOURCE = 3


class Edge(Enum):
    NONE = 1
    RISING = 2
    FALLING = 3
    BOTH = 4


class Clock(Enum):
    MONOTONIC = 1
    REALTIME = 2
    HTE = 3


@dataclass
class LineSettings:
    direction: Direction = Direction.AS_IS
    edge_detection: Edge = Edge.NONE
    bias: Bias = Bias.AS_IS
    drive: Drive = Drive.PUSH_PULL
    active_low: bool = False
    debounce_period: timedelta = timedelta()
    event_clock: Clock = Clock.MONOTONIC
    output_value: Value = Value.INACTIVE


class EdgeEvent:
    class Type(Enum):
        RISING_EDGE = 1
        FALLING_EDGE = 2

    def __init__(self, event_type: int, timestamp_ns: int, line_offset: int,
                 global_seqno: int, line_seqno: int) -> None:
        self.event_type = EdgeEvent.Type(event_type)
        self.timestamp_ns = timestamp_ns
        self.line_offset = line_offset
        self.global_seqno = global_seqno
        self.line_seqno = line_seqno

    def __repr__(self) -> str:
        return (f"<EdgeEvent type={self.event_type} timestamp_ns={self.timestamp_ns} "
                f"line_offset={self.line_offset}>")


class RequestReleasedError(Exception):
    pass


class FakeGpioChip:
    """The hardware: named lines, the physical level history of inputs, outputs driven."""

    def __init__(self, clock, path: str, names: dict[int, str], num_lines: int = 54,
                 label: str = "pinctrl-fake") -> None:
        self.clock = clock
        self.path = path
        self.names = dict(names)
        self.num_lines = num_lines
        self.label = label
        self.inputs: dict[int, list[tuple[int, int]]] = {}    # offset -> [(ns, level)]
        self.outputs: dict[int, list[tuple[int, int]]] = {}   # offset -> [(ns, physical)]
        self.requested: set[int] = set()

    def offset(self, name: str) -> int:
        for off, n in self.names.items():
            if n == name:
                return off
        raise KeyError(name)

    def drive(self, offset: int, level: int, at_ns: int) -> None:
        """The outside world sets input `offset` to physical `level` at time `at_ns`."""
        hist = self.inputs.setdefault(offset, [])
        hist.append((int(at_ns), int(level)))
        hist.sort()

    def level_at(self, offset: int, ns: int, default: int = 1) -> int:
        level = default
        for t, v in self.inputs.get(offset, []):
            if t <= ns:
                level = v
        return level

    def output(self, offset: int) -> int | None:
        hist = self.outputs.get(offset)
        return hist[-1][1] if hist else None


class _Line:
    def __init__(self, chip: FakeGpioChip, offset: int, settings: LineSettings) -> None:
        self.chip, self.offset, self.s = chip, offset, settings
        self.cursor = chip.clock.now_ns()     # edges before the request are not reported
        self.level = chip.level_at(offset, self.cursor)   # debounced physical level
        self.seqno = 0

    def edges_until(self, now: int) -> list[tuple[int, int]]:
        """(timestamp, logical level) of edges the kernel would have reported by `now`."""
        deb = int(self.s.debounce_period.total_seconds() * 1e9)
        changes = [(t, v) for t, v in self.chip.inputs.get(self.offset, []) if t > self.cursor]
        out = []
        i = 0
        while i < len(changes):
            t, v = changes[i]
            # with debounce, bounces closer than the period merge; the work runs after the last
            while deb and i + 1 < len(changes) and changes[i + 1][0] - t < deb:
                i += 1
                t, v = changes[i]
            fire = t + deb
            if fire > now:
                break
            self.cursor = t
            i += 1
            if v == self.level:
                continue
            self.level = v
            logical = v ^ int(self.s.active_low)
            e = self.s.edge_detection
            if e == Edge.BOTH or (e == Edge.RISING and logical) or (e == Edge.FALLING and not logical):
                out.append((fire, logical))
        return out


class FakeLineRequest:
    def __init__(self, chip: FakeGpioChip, lines: dict[int, _Line], buffer: int) -> None:
        self.chip = chip
        self.lines = lines
        self.buffer = buffer
        self.queue: list[EdgeEvent] = []
        self.seqno = 0
        self.released = False
        self.dropped = 0

    def _check(self):
        if self.released:
            raise RequestReleasedError()

    def _collect(self):
        now = self.chip.clock.now_ns()
        new = []
        for off, line in self.lines.items():
            if line.s.edge_detection == Edge.NONE:
                continue
            for ts, logical in line.edges_until(now):
                new.append((ts, off, logical))
        for ts, off, logical in sorted(new):
            line = self.lines[off]
            line.seqno += 1
            self.seqno += 1
            kind = EdgeEvent.Type.RISING_EDGE if logical else EdgeEvent.Type.FALLING_EDGE
            self.queue.append(EdgeEvent(kind.value, ts, off, self.seqno, line.seqno))
        if len(self.queue) > self.buffer:          # v2 uAPI: overflow drops the oldest
            self.dropped += len(self.queue) - self.buffer
            self.queue = self.queue[-self.buffer:]

    @property
    def offsets(self) -> list[int]:
        return list(self.lines)

    def wait_edge_events(self, timeout=None) -> bool:
        self._check()
        self._collect()
        return bool(self.queue)

    def read_edge_events(self, max_events=None) -> list[EdgeEvent]:
        self._check()
        self._collect()
        n = len(self.queue) if max_events is None else max_events
        out, self.queue = self.queue[:n], self.queue[n:]
        return out

    def get_value(self, line) -> Value:
        self._check()
        s = self.lines[line].s
        if s.direction == Direction.OUTPUT:
            physical = self.chip.output(line)
        else:
            physical = self.chip.level_at(line, self.chip.clock.now_ns())
        return Value(physical ^ int(s.active_low))

    def get_values(self, lines=None):
        return [self.get_value(x) for x in (lines or self.offsets)]

    def set_value(self, line, value: Value) -> None:
        self._check()
        if not isinstance(value, Value):
            raise TypeError("value must be a gpiod.line.Value")
        s = self.lines[line].s
        if s.direction != Direction.OUTPUT:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        physical = value.value ^ int(s.active_low)
        self.chip.outputs.setdefault(line, []).append((self.chip.clock.now_ns(), physical))

    def set_values(self, values: dict) -> None:
        for line, value in values.items():
            self.set_value(line, value)

    def release(self) -> None:
        self._check()
        self.released = True
        self.chip.requested -= set(self.lines)


def make_module(chips: list[FakeGpioChip]) -> types.ModuleType:
    """A module object that stands in for `gpiod` (v2), serving `chips` by path."""
    by_path = {c.path: c for c in chips}
    mod = types.ModuleType("fake_gpiod_module")
    mod.__version__ = "2.2.0"
    mod.line = types.SimpleNamespace(Value=Value, Direction=Direction, Bias=Bias, Drive=Drive,
                                     Edge=Edge, Clock=Clock)
    mod.LineSettings = LineSettings
    mod.EdgeEvent = EdgeEvent
    mod.RequestReleasedError = RequestReleasedError
    mod.requests = []

    class Chip:
        def __init__(self, path: str) -> None:
            if path not in by_path:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
            self._chip = by_path[path]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

        def close(self):
            self._chip = None

        def get_info(self):
            return types.SimpleNamespace(name=self._chip.path.rsplit("/", 1)[-1],
                                         label=self._chip.label, num_lines=self._chip.num_lines)

        def line_offset_from_id(self, id):
            if isinstance(id, int):
                if id >= self._chip.num_lines:
                    raise ValueError("line offset of out range")
                return id
            try:
                return self._chip.offset(id)
            except KeyError:
                raise OSError(errno.ENOENT, "No such file or directory") from None

        def request_lines(self, config, consumer=None, event_buffer_size=None,
                          output_values=None):
            chip = self._chip
            lines = {}
            for key, settings in config.items():
                keys = key if isinstance(key, (tuple, list)) else (key,)
                for k in keys:
                    off = self.line_offset_from_id(k)
                    if off in lines:
                        raise ValueError(f"line must be configured exactly once - offset {off} repeats")
                    if off in chip.requested:
                        raise OSError(errno.EBUSY, "Device or resource busy")
                    lines[off] = _Line(chip, off, settings or LineSettings())
            chip.requested |= set(lines)
            request = FakeLineRequest(chip, lines, event_buffer_size or 16 * len(lines))
            for off, line in lines.items():
                if line.s.direction == Direction.OUTPUT:
                    request.set_value(off, line.s.output_value)
            mod.requests.append(request)
            return request

    def request_lines(path: str, *args, **kwargs):
        with Chip(path) as chip:
            return chip.request_lines(*args, **kwargs)

    mod.Chip = Chip
    mod.request_lines = request_lines
    mod.is_gpiochip_device = lambda path: path in by_path
    return mod


def pi_chip(clock, path: str = "/dev/gpiochip0") -> FakeGpioChip:
    """A Raspberry Pi's header chip: lines named GPIO0..GPIO27 at offsets 0..27."""
    return FakeGpioChip(clock, path, {i: f"GPIO{i}" for i in range(28)}, label="pinctrl-bcm2711")
