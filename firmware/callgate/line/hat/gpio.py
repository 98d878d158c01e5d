"""The HAT's digital side through libgpiod v2: ring detect in, hook relay out.

Lines are found by name on whichever gpiochip carries them ("GPIO17" on every
Raspberry Pi, including the Pi 5 whose header sits on a different chip than
older models), or by chip path and offset. Inputs are edge-detected by the
kernel, which stamps each edge on CLOCK_MONOTONIC and can debounce it; the
`hat` backend turns those stamps into line samples.

This module never imports gpiod itself: the caller passes the module in, so
the package imports on a machine without it and tests can pass a fake.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from datetime import timedelta

from ..base import LineError, RingStart, RingStop

INPUTS = ("ring", "loop_current", "polarity")
OUTPUTS = ("hook", "cid_enable", "led_ring", "led_call")
SIGNALS = INPUTS + OUTPUTS
BIASES = ("as_is", "disabled", "pull_up", "pull_down")
CONSUMER = "callgate"


@dataclass(frozen=True)
class PinSpec:
    """One signal of the board on one GPIO line, as hw/<board>.toml gives it."""

    signal: str
    name: str | None = None          # line name, looked up on every chip ("GPIO17")
    chip: str | None = None          # or a chip path ("/dev/gpiochip0") ...
    offset: int | None = None        # ... and the offset on it
    active_low: bool = False         # the signal is asserted when the pin is low
    bias: str = "as_is"
    debounce_ms: float = 0.0         # kernel debounce (inputs)

    @property
    def is_input(self) -> bool:
        return self.signal in INPUTS

    def describe(self) -> str:
        return self.name if self.name else f"{self.chip}:{self.offset}"


@dataclass(frozen=True)
class Edge:
    """A debounced edge of an input signal; `active` is the logical level after it."""

    signal: str
    active: bool
    timestamp_ns: int


def chip_paths() -> list[str]:
    """The GPIO character devices of this machine, in number order."""
    def number(path: str) -> int:
        tail = path.rsplit("gpiochip", 1)[-1]
        return int(tail) if tail.isdigit() else 1 << 30
    return sorted(glob.glob("/dev/gpiochip*"), key=number)


class GpioLines:
    """The board's GPIO signals, requested from the kernel with one request per chip."""

    def __init__(self, gpiod, pins: dict[str, PinSpec], chips: list[str] | None = None) -> None:
        self.gpiod = gpiod
        self.pins = pins
        self.chips = chips
        self._requests: dict[str, object] = {}           # chip path -> LineRequest
        self._where: dict[str, tuple[str, int]] = {}     # signal -> (chip path, offset)
        self._by_offset: dict[tuple[str, int], str] = {}

    # ------------------------------------------------------------ set-up
    def _locate(self, pin: PinSpec, paths: list[str]) -> tuple[str, int]:
        if pin.chip is not None:
            try:
                with self.gpiod.Chip(pin.chip) as chip:
                    return pin.chip, chip.line_offset_from_id(pin.offset if pin.name is None
                                                              else pin.name)
            except (OSError, ValueError) as err:
                raise LineError(f"gpio {pin.signal}: no line {pin.describe()} "
                                f"({getattr(err, 'strerror', None) or err})") from None
        for path in paths:
            try:
                with self.gpiod.Chip(path) as chip:
                    return path, chip.line_offset_from_id(pin.name)
            except (OSError, ValueError):
                continue
        raise LineError(f"gpio {pin.signal}: no GPIO line named {pin.name!r} on "
                        f"{', '.join(paths) or 'this machine (no /dev/gpiochip*)'}")

    def _settings(self, pin: PinSpec):
        line = self.gpiod.line
        if pin.is_input:
            return self.gpiod.LineSettings(
                direction=line.Direction.INPUT, edge_detection=line.Edge.BOTH,
                bias=getattr(line.Bias, pin.bias.upper()), active_low=pin.active_low,
                debounce_period=timedelta(milliseconds=pin.debounce_ms))
        return self.gpiod.LineSettings(
            direction=line.Direction.OUTPUT, active_low=pin.active_low,
            bias=getattr(line.Bias, pin.bias.upper()), output_value=line.Value.INACTIVE)

    def open(self) -> None:
        """Find and request every line: outputs start inactive (on hook, LEDs off)."""
        paths = self.chips if self.chips is not None else chip_paths()
        per_chip: dict[str, dict[int, object]] = {}
        for signal, pin in self.pins.items():
            path, offset = self._locate(pin, paths)
            if (path, offset) in self._by_offset:
                raise LineError(f"gpio {signal}: line {pin.describe()} is already used for "
                                f"{self._by_offset[(path, offset)]}")
            self._where[signal] = (path, offset)
            self._by_offset[(path, offset)] = signal
            per_chip.setdefault(path, {})[offset] = self._settings(pin)
        try:
            for path, config in per_chip.items():
                self._requests[path] = self.gpiod.request_lines(path, consumer=CONSUMER,
                                                                config=config)
        except OSError as err:
            self.close()
            raise LineError(f"gpio: cannot request lines on {path} "
                            f"({err.strerror or err}; is another program using them?)") from None

    def close(self) -> None:
        """Release every request; the kernel then leaves the lines as they were."""
        for request in self._requests.values():
            try:
                request.release()
            except Exception:   # already released: nothing left to do
                pass
        self._requests.clear()

    # ------------------------------------------------------------ use
    def has(self, signal: str) -> bool:
        return signal in self.pins

    def set(self, signal: str, active: bool) -> None:
        """Drive an output signal (logical level: active = relay energised, LED lit)."""
        if signal not in self._where:
            return
        path, offset = self._where[signal]
        value = self.gpiod.line.Value.ACTIVE if active else self.gpiod.line.Value.INACTIVE
        self._requests[path].set_value(offset, value)

    def get(self, signal: str) -> bool:
        path, offset = self._where[signal]
        return self._requests[path].get_value(offset) == self.gpiod.line.Value.ACTIVE

    def edges(self) -> list[Edge]:
        """Every edge the kernel has buffered, oldest first, without blocking."""
        out: list[Edge] = []
        rising = self.gpiod.EdgeEvent.Type.RISING_EDGE
        for path, request in self._requests.items():
            while request.wait_edge_events(0):
                for event in request.read_edge_events():
                    signal = self._by_offset.get((path, event.line_offset))
                    if signal is None:
                        continue
                    # the kernel stamps a debounced edge when the debounce period expires;
                    # the input really changed that much earlier
                    debounce_ns = int(self.pins[signal].debounce_ms * 1e6)
                    out.append(Edge(signal, event.event_type == rising,
                                    event.timestamp_ns - debounce_ns))
        out.sort(key=lambda e: e.timestamp_ns)
        return out


class RingBursts:
    """Ring detector pulses -> RingStart / RingStop, all in line samples.

    During a burst the optocoupler conducts on every cycle of the 20-25 Hz
    ringing voltage, so edges come every 20-50 ms; the burst is over once
    `gap` samples pass without one. A burst needs `min_edges` edges before it
    counts, so a lone spike (a hook switch, a lightning click) is not a ring.
    RingStop is stamped at the last pulse, and so is reported `gap` late.
    """

    def __init__(self, gap: int, min_edges: int = 3) -> None:
        self.gap = gap
        self.min_edges = min_edges
        self.ringing = False
        self._first = 0
        self._last = 0
        self._count = 0

    def edge(self, sample: int) -> list:
        out = []
        if self._count and sample - self._last > self.gap:
            out += self._end()
        if self._count == 0:
            self._first = sample
        self._count += 1
        self._last = sample
        if not self.ringing and self._count >= self.min_edges:
            self.ringing = True
            out.append(RingStart(self._first))
        return out

    def advance(self, now: int) -> list:
        """The clock reached `now` with no further edge: end a burst whose gap has passed."""
        if self._count and now - self._last > self.gap:
            return self._end()
        return []

    def cut(self, sample: int) -> list:
        """Stop listening (we went off hook): a burst in progress ends here."""
        out = [RingStop(max(sample, self._last))] if self.ringing else []
        self.ringing = False
        self._count = 0
        return out

    def _end(self) -> list:
        out = [RingStop(self._last)] if self.ringing else []
        self.ringing = False
        self._count = 0
        return out
