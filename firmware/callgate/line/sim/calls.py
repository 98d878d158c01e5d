"""What the simulated exchange is asked to do: calls, callers' scripts, agents.

These are plain descriptions, checked when built (ValueError naming the
field); the exchange (exchange.py and its parts) carries them out on the
sample clock and fills in one `SimOutcome` per call. `calls_from_config` reads them from the
[line.sim] table, with ConfigError naming the bad key.

Scenario timing rules (all counted in samples of the line):

- A caller's script runs in order, one step at a time, once we answer. Each
  step waits for the previous one to finish, then starts `after_ms` after its
  reference point `when`: "answer" (when we went off hook), "previous" (when
  the previous step finished) or "prompt_end" (our transmitted audio went
  quiet for 300 ms after sound; the reference is the end of that sound, and
  the step cannot start before the quiet has been noticed). A reference
  already in the past means "now".
- A caller on hold (we flashed) goes on with the script unheard; a caller who
  hangs up while on hold is noticed when we come back to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...config import ConfigError, Table
from ...dsp.callerid import ABSENT_REASONS, build_mdmf, build_sdmf, dtmf_callerid_digits

WHEN = ("answer", "prompt_end", "previous")
CALLERID_KINDS = ("bell202", "v23", "dtmf")
HANGUP_SIGNALS = ("cpc", "polarity", "silence")
"""Hang-ups that are not a tone; any tone of the country's plan (busy, reorder, dial...) also is."""
DTMF_KEYS = set("0123456789*#ABCD")


def _ms(value, what: str, low: int = 0, high: int = 3_600_000) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{what}: {value!r} is not a duration of {low}..{high} ms")


def _when(value: str) -> None:
    if value not in WHEN:
        raise ValueError(f"when: {value!r} is not one of {', '.join(WHEN)}")


@dataclass
class CallerIdSpec:
    """The caller ID the exchange sends before answer.

    `absent` ("O" unavailable, "P" private) withholds the number and the
    name. `format` "sdmf" sends the single-message format (number only, 10
    digits at most). `corrupt` damages the message (one bit of an FSK body;
    for DTMF the end digit is dropped), so a
    receiver must not trust it.
    """

    number: str | None = "2015550123"
    name: str | None = "JANE SMITH"
    absent: str | None = None
    kind: str = "bell202"
    datetime: str = "11231000"
    format: str = "mdmf"
    corrupt: bool = False

    def __post_init__(self) -> None:
        if self.kind not in CALLERID_KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {', '.join(CALLERID_KINDS)}")
        if self.format not in ("mdmf", "sdmf"):
            raise ValueError(f"format: {self.format!r} is not mdmf or sdmf")
        if self.absent is not None and self.absent not in ABSENT_REASONS:
            raise ValueError(f"absent: {self.absent!r} is not O (unavailable) or P (private)")
        if self.absent is None and self.number is None:
            raise ValueError("number: give a number, or absent = O or P to withhold it")
        self.message()            # the signal core checks number, name and date/time

    def message(self) -> bytes:
        """The FSK message (type, length, body, checksum) for bell202/v23."""
        number = None if self.absent else self.number
        name = None if self.absent else self.name
        try:
            if self.format == "sdmf":
                msg = build_sdmf(self.datetime, number, self.absent)
            else:
                msg = build_mdmf(number, name, self.datetime, self.absent, self.absent)
        except ValueError as err:
            raise ValueError(f"caller ID: {err}") from None
        if self.corrupt:
            damaged = bytearray(msg)
            damaged[-2] ^= 0x04
            msg = bytes(damaged)
        return msg

    def digits(self) -> str:
        """The DTMF caller ID digits ("A...C") for kind dtmf."""
        number = None if self.absent else self.number
        try:
            digits = dtmf_callerid_digits(number, self.absent)
        except ValueError as err:
            raise ValueError(f"caller ID: {err}") from None
        return digits[:-1] if self.corrupt else digits


@dataclass
class Press:
    """The caller keys `digits` (DTMF at `level_dbm0`, `on_ms` tone, `off_ms` gap)."""

    digits: str
    after_ms: int = 500
    when: str = "prompt_end"
    on_ms: int = 90
    off_ms: int = 110
    level_dbm0: float = -9.0

    def __post_init__(self) -> None:
        if not isinstance(self.digits, str) or not self.digits or not set(
                self.digits.upper()) <= DTMF_KEYS:
            raise ValueError(f"digits: {self.digits!r} is not a string of DTMF keys 0-9 * # A-D")
        _ms(self.after_ms, "after_ms")
        _when(self.when)
        _ms(self.on_ms, "on_ms", 20, 5000)
        _ms(self.off_ms, "off_ms", 20, 5000)
        if isinstance(self.level_dbm0, bool) or not isinstance(
                self.level_dbm0, (int, float)) or not -50 <= self.level_dbm0 <= -3:
            raise ValueError(f"level_dbm0: {self.level_dbm0!r} is not a level of -50..-3 dBm0")


@dataclass
class Clear:
    """The caller clears down (hangs up); `how` is what the line shows us.

    A step of the caller's script (the engine's own HangUp action is ours).

    "cpc": loop current drops for `drop_ms`, then the exchange sends
    `tone_after` (a tone of the plan, or None for silence); "polarity": a
    polarity reversal, then silence; "silence": nothing at all; a tone name
    of the country's plan ("busy", "reorder", "dial", ...): that tone, until
    we hang up.
    """

    how: str = "cpc"
    after_ms: int = 0
    when: str = "previous"
    drop_ms: int = 600
    tone_after: str | None = "dial"

    def __post_init__(self) -> None:
        if not isinstance(self.how, str) or not self.how:
            raise ValueError(f"how: {self.how!r} is not a hang-up signal")
        _ms(self.after_ms, "after_ms")
        _when(self.when)
        _ms(self.drop_ms, "drop_ms", 20, 60000)
        if self.tone_after is not None and not isinstance(self.tone_after, str):
            raise ValueError(f"tone_after: {self.tone_after!r} is not a tone name")


@dataclass
class CallWaiting:
    """A second call arrives during this one: alert tone, then off-hook FSK caller ID.

    North America (GR-30 type 2): SAS 440 Hz 300 ms, CAS 2130+2750 Hz 80 ms,
    Bell 202 without channel seizure. UK/ETSI: the dual-tone alert
    2130+2750 Hz 80 ms, V.23 without seizure. The exchange does not wait for
    the terminal's acknowledgement digit: it sends as if it had been given.
    """

    after_ms: int = 2000
    when: str = "answer"
    number: str = "2125550199"

    def __post_init__(self) -> None:
        _ms(self.after_ms, "after_ms")
        _when(self.when)
        if not isinstance(self.number, str) or not self.number.isdigit() or len(self.number) > 20:
            raise ValueError(f"number: {self.number!r} is not 1-20 digits")


@dataclass
class Agent:
    """An extension reachable by flash and dial. None: rings until we give up."""

    answer_after_rings: int | None = 2
    busy: bool = False

    def __post_init__(self) -> None:
        n = self.answer_after_rings
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 50):
            raise ValueError(f"answer_after_rings: {n!r} is not 0..50 (or None: never)")
        if not isinstance(self.busy, bool):
            raise ValueError(f"busy: {self.busy!r} is not true or false")


STEPS = (Press, Clear, CallWaiting)


@dataclass
class SimCall:
    """One incoming call: its caller ID, the caller's script and the agents to reach."""

    callerid: CallerIdSpec | None = field(default_factory=CallerIdSpec)
    gap_ms: int = 1000
    abandon_after_rings: int | None = None
    script: list = field(default_factory=list)
    agents: dict[str, Agent] = field(default_factory=lambda: {"201": Agent()})
    recall_dial_tone: bool = True

    def __post_init__(self) -> None:
        if self.callerid is not None and not isinstance(self.callerid, CallerIdSpec):
            raise ValueError("callerid: expected a CallerIdSpec or None")
        _ms(self.gap_ms, "gap_ms")
        n = self.abandon_after_rings
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 50):
            raise ValueError(f"abandon_after_rings: {n!r} is not 1..50 (or None)")
        for i, step in enumerate(self.script):
            if not isinstance(step, STEPS):
                raise ValueError(f"script[{i}]: {step!r} is not a Press, Clear or CallWaiting")
        for ext, agent in self.agents.items():
            if not isinstance(ext, str) or not ext or not set(ext) <= DTMF_KEYS:
                raise ValueError(f"agents: extension {ext!r} is not a string of DTMF keys")
            if not isinstance(agent, Agent):
                raise ValueError(f"agents.{ext}: expected an Agent")


@dataclass
class SimOutcome:
    """What happened to one SimCall, filled in as the call runs."""

    answered_at: int | None = None
    rings: int = 0
    heard_digits: str = ""
    flashes: int = 0
    transferred_to: str | None = None
    caller_hung_up_at: int | None = None
    released_at: int | None = None
    prompt_audio_ms: int = 0
    # what the agent heard from us between answering a supervised transfer and our
    # hang-up (the whisper): ms of sound, and the audio itself (at most 60 s)
    agent_heard_ms: int = 0
    agent_audio: np.ndarray | None = field(default=None, repr=False)


def default_calls() -> list[SimCall]:
    """What `callgate run` simulates with no [line.sim] calls: one ordinary call."""
    return [SimCall(script=[Press("4271#"), Clear("cpc", after_ms=8000)])]


# ------------------------------------------------------------------ from config


def _checked(table: Table, build, keys: dict[str, str] | None = None):
    """Build a scenario object; its ValueError becomes a ConfigError at the table's key.

    `keys` maps a field name to the config key that carries it.
    """
    try:
        obj = build()
    except ValueError as err:
        head, sep, rest = str(err).partition(": ")
        if sep and head.replace("_", "").isalnum():
            raise ConfigError(f"{table.key((keys or {}).get(head, head))}: {rest}") from None
        raise ConfigError(f"{table.path}: {err}") from None
    table.reject_unknown()
    return obj


def _int(table: Table, name: str, default, low: int, high: int):
    value = table.get(name, int, default)
    if value is not None and not low <= value <= high:
        raise ConfigError(f"{table.key(name)}: {value} is outside {low}..{high}")
    return value


def _optional_int(table: Table, name: str, default, low: int, high: int):
    """An integer, or false for None."""
    value = table.get(name, (int, bool), default)
    if value is False or value is None:
        return None
    if value is True:
        raise ConfigError(f"{table.key(name)}: expected a number or false, got true")
    if not low <= value <= high:
        raise ConfigError(f"{table.key(name)}: {value} is outside {low}..{high}")
    return value


def _str_or_none(table: Table, name: str, default):
    value = table.get(name, (str, bool), default)
    if value is True:
        raise ConfigError(f"{table.key(name)}: expected a string or false, got true")
    return None if value is False or value is None else value


def _callerid(table: Table) -> CallerIdSpec:
    d = CallerIdSpec()
    return _checked(table, lambda: CallerIdSpec(
        number=_str_or_none(table, "number", d.number),
        name=_str_or_none(table, "name", d.name),
        absent=_str_or_none(table, "absent", None),
        kind=table.choice("kind", CALLERID_KINDS, d.kind),
        datetime=table.get("datetime", str, d.datetime),
        format=table.choice("format", ("mdmf", "sdmf"), d.format),
        corrupt=table.get("corrupt", bool, False)))


def _step(table: Table):
    kinds = [k for k in ("press", "hangup", "callwaiting") if k in table.data]
    if len(kinds) != 1:
        raise ConfigError(f"{table.path}: give exactly one of press, hangup or callwaiting")
    kind = kinds[0]
    if kind == "press":
        d = Press("0")
        return _checked(table, lambda: Press(
            table.get("press", str), _int(table, "after_ms", d.after_ms, 0, 3_600_000),
            table.choice("when", WHEN, d.when), _int(table, "on_ms", d.on_ms, 20, 5000),
            _int(table, "off_ms", d.off_ms, 20, 5000),
            table.number("level_dbm0", d.level_dbm0, -50, -3)), {"digits": "press"})
    if kind == "hangup":
        d = Clear()
        return _checked(table, lambda: Clear(
            table.get("hangup", str), _int(table, "after_ms", d.after_ms, 0, 3_600_000),
            table.choice("when", WHEN, d.when), _int(table, "drop_ms", d.drop_ms, 20, 60000),
            _str_or_none(table, "tone_after", d.tone_after)), {"how": "hangup"})
    d = CallWaiting()
    return _checked(table, lambda: CallWaiting(
        _int(table, "after_ms", d.after_ms, 0, 3_600_000), table.choice("when", WHEN, d.when),
        table.get("callwaiting", str)), {"number": "callwaiting"})


def _agents(table: Table) -> dict[str, Agent]:
    agents = {}
    for ext in table.data:
        sub = table.sub(ext)
        d = Agent()
        agents[ext] = _checked(sub, lambda: Agent(
            _optional_int(sub, "answer_after_rings", d.answer_after_rings, 0, 50),
            sub.get("busy", bool, False)))
    return agents


def _call(table: Table, tones: tuple[str, ...] = ()) -> SimCall:
    d = SimCall()
    callerid: CallerIdSpec | None = CallerIdSpec()
    if table.data.get("callerid", True) is False:
        table.get("callerid", bool)
        callerid = None
    elif "callerid" in table.data:
        callerid = _callerid(table.sub("callerid"))
    script = []
    for i, item in enumerate(table.get("script", list, [])):
        if not isinstance(item, dict):
            raise ConfigError(f"{table.key('script')}[{i}]: expected a table, got {item!r}")
        step_table = Table(item, f"{table.key('script')}[{i}]")
        script.append(_step(step_table))
        if tones:
            _check_tones(step_table, script[-1], tones)
    agents = _agents(table.sub("agents")) if "agents" in table.data else d.agents
    return _checked(table, lambda: SimCall(
        callerid, _int(table, "gap_ms", d.gap_ms, 0, 3_600_000),
        _optional_int(table, "abandon_after_rings", None, 1, 50), script, agents,
        table.get("recall_dial_tone", bool, True)))


def _check_tones(table: Table, step, tones: tuple[str, ...]) -> None:
    """Hang-up signals the country's plan cannot give, named by their config key."""
    if isinstance(step, Clear):
        if step.how not in HANGUP_SIGNALS and step.how not in tones:
            raise ConfigError(f"{table.key('hangup')}: {step.how!r} is not one of "
                              f"{', '.join(HANGUP_SIGNALS + tones)}")
        if step.tone_after is not None and step.tone_after not in tones:
            raise ConfigError(f"{table.key('tone_after')}: {step.tone_after!r} is not one of "
                              f"{', '.join(tones)}")


def calls_from_config(table: Table, tones: tuple[str, ...] = ()) -> list[SimCall]:
    """The [[line.sim.calls]] list (default: `default_calls()`), times `repeat`.

    `tones` are the tone names of the country's plan, for checking hang-ups.
    """
    items = table.get("calls", list, None)
    if items is None:
        calls = default_calls()
    else:
        calls = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ConfigError(f"{table.key('calls')}[{i}]: expected a table, got {item!r}")
            calls.append(_call(Table(item, f"{table.key('calls')}[{i}]"), tones))
    repeat = _int(table, "repeat", 1, 1, 1_000_000)
    return calls * repeat
