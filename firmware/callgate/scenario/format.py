"""The scenario file: calls, the service policy, the back end, and what to expect.

One TOML file (the README has the whole format):

    description = "Jane is found by number and keys her PIN"
    [sim]                    # the simulated exchange: country, seed, echo_db, noise_dbm0,
                             #   max_seconds, line (the line's name, picks the service),
                             #   clock (the wall time the first call starts at, with its
                             #   offset: 2026-12-07T10:00:00+00:00; default: now)
    [supervisor]             # what a supervisor set on the web app: closed_today = true,
                             #   announcement = "recording.wav" (converted as an upload is)
    [engine]                 # exactly as [engine] in the run config
    [backend]                # the back end (crm.py)
    [[service]]              # exactly as in the run config (flow/policy.py)
    [store]                  # path = where the call records go (default: a temporary file)
    [[calls]]                # one call, keys exactly as [[line.sim.calls]] (line/sim/calls.py)
    [calls.expect]           # what must be true of that call (check.py)
    [expect]                 # the same, for a scenario of one call (or a replay)

The calls run one after another on one line, through one flow, one back end
and one store, so what one call leaves behind (a verification failure) counts
in the next. A call without `agents` reaches every extension the service line
can send a call to, each answering after 2 rings.

A replay's file has no [[calls]] (the recording is the call) and no [sim].
Every key is read through config.Table: a wrong or unknown one is a
ConfigError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, Table, read_toml
from ..toneplans import available_toneplans, load_toneplan
from ..engine import EngineConfig
from ..flow import Policy, load_services, service_for_line
from ..line.sim import level_or_off
from ..localzone import device_zone
from ..line.sim.calls import Agent, SimCall, calls_from_config
from .crm import BackendSpec, parse_backend
from .check import parse_expect

SIM_KEYS = ("description", "sim", "engine", "backend", "service", "store", "supervisor",
            "calls", "expect")
REPLAY_KEYS = ("description", "engine", "backend", "service", "store", "expect")


@dataclass
class SimSettings:
    country: str = "us"
    seed: int = 0
    echo_db: float | None = -10.0
    noise_dbm0: float | None = -65.0
    max_seconds: float | None = None
    line: str = "line"
    clock: float | None = None       # unix seconds at the line's sample 0; None: the wall clock


@dataclass
class Scenario:
    path: Path
    description: str = ""
    sim: SimSettings = field(default_factory=SimSettings)
    engine: EngineConfig = field(default_factory=EngineConfig)
    backend: BackendSpec = field(default_factory=BackendSpec)
    services: list[Policy] = field(default_factory=list)
    store: Path | None = None
    calls: list[SimCall] = field(default_factory=list)
    expects: list[dict[str, Any]] = field(default_factory=list)   # one per call
    supervisor: dict[str, Any] = field(default_factory=dict)      # the web app's switches

    @property
    def policy(self) -> Policy:
        return service_for_line(self.services, self.sim.line)


def load_scenario(path: str | Path, replay: bool = False) -> Scenario:
    """Read and check a scenario (or, with `replay`, a replay's settings and expectations).

    ConfigError names the bad key; its message does not repeat the file name.
    """
    path = Path(path)
    data = read_toml(path)
    known = REPLAY_KEYS if replay else SIM_KEYS
    for key in data:
        if key not in known:
            why = ("a replay's call is the recording" if replay and key in ("calls", "sim")
                   else f"known: {', '.join(known)}")
            raise ConfigError(f"{key}: unknown key ({why})")
    top = Table(data)
    base = path.resolve().parent
    sc = Scenario(path)
    sc.description = top.get("description", str, "")
    sc.backend = parse_backend(top.sub("backend"), base)
    services_data = dict(data)
    if sc.backend.kind == "https":
        services_data["service"] = _measured(data.get("service"))
    sc.services = load_services(Table(services_data), sc.backend.default_country,
                                device_zone())
    sc.engine = EngineConfig.from_table(top.sub("engine"))
    store = top.sub("store")
    path_text = store.get("path", str, None)
    if path_text is not None:
        sc.store = base / path_text
    bad = store.unknown()
    if bad:
        raise ConfigError(f"{bad[0]}: unknown key")
    if not replay:
        sc.sim = _sim(top.sub("sim"))
        sv = top.sub("supervisor")
        closed = sv.get("closed_today", bool, False)
        recording = sv.get("announcement", str, None)
        sv.reject_unknown(("closed_today", "announcement"))
        if closed and sc.policy.hours is None:
            raise ConfigError(f"{sv.key('closed_today')}: the service line has no "
                              "[service.hours]")
        if recording is not None and not (base / recording).is_file():
            raise ConfigError(f"{sv.key('announcement')}: no file {base / recording}")
        sc.supervisor = {"closed_today": closed,
                         "announcement": None if recording is None else base / recording}
        sc.calls, sc.expects = _calls(data, sc)
    elif "expect" in data:
        sc.expects = [parse_expect(top.sub("expect"), sim=False)]
    return sc


def _measured(services: Any) -> Any:
    """Over HTTPS the caller waits what the request really took, unless a service says."""
    def one(svc: Any) -> Any:
        if isinstance(svc, dict) and "simulated_latency_ms" not in svc:
            return {**svc, "simulated_latency_ms": "measured"}
        return svc

    if services is None:
        return [{"name": "default", "simulated_latency_ms": "measured"}]
    if isinstance(services, list):
        return [one(s) for s in services]
    if isinstance(services, dict):
        return {name: one(s) for name, s in services.items()}
    return services


def _sim(t: Table) -> SimSettings:
    s = SimSettings()
    s.country = t.choice("country", available_toneplans(), "us")
    s.seed = t.get("seed", int, 0)
    s.echo_db = level_or_off(t, "echo_db", -10.0, -80, 0)
    s.noise_dbm0 = level_or_off(t, "noise_dbm0", -65.0, -100, -20)
    s.max_seconds = t.number("max_seconds", None, 1, 1e7)
    s.line = t.get("line", str, "line")
    s.clock = _clock(t)
    if not s.line or not all(c.isalnum() or c in "-_" for c in s.line):
        raise ConfigError(f"{t.key('line')}: {s.line!r} must be letters, digits, - and _")
    bad = t.unknown()
    if bad:
        raise ConfigError(f"{bad[0]}: unknown key")
    return s


def _clock(t: Table) -> float | None:
    """[sim] clock: a date-time with its offset (TOML or ISO text), as unix seconds."""
    import datetime as dt

    raw = t.get("clock", (dt.datetime, str), None)
    if raw is None:
        return None
    try:
        value = raw if isinstance(raw, dt.datetime) else dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{t.key('clock')}: {raw!r} is not a date-time") from None
    if value.tzinfo is None:
        raise ConfigError(f"{t.key('clock')}: {raw!r} has no offset "
                          "(e.g. 2026-12-07T10:00:00+00:00)")
    return value.timestamp()


def _calls(data: dict, sc: Scenario) -> tuple[list[SimCall], list[dict]]:
    items = data.get("calls")
    if not isinstance(items, list) or not items:
        raise ConfigError("calls: missing (at least one [[calls]] table)")
    stripped, expects = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"calls[{i}]: expected a table, got {item!r}")
        item = dict(item)
        expect = item.pop("expect", None)
        if expect is not None and not isinstance(expect, dict):
            raise ConfigError(f"calls[{i}].expect: expected a table")
        expects.append(parse_expect(Table(expect or {}, f"calls[{i}].expect")))
        stripped.append(item)
    if "expect" in data:
        if len(items) > 1:
            raise ConfigError("expect: with several calls, give each its own [calls.expect]")
        if expects[0]:
            raise ConfigError("expect: give [expect] or [calls.expect], not both")
        expects[0] = parse_expect(Table(data["expect"], "expect"))
    tones = load_toneplan(sc.sim.country).names
    calls = calls_from_config(Table({"calls": stripped}), tones)
    policy = sc.policy
    extensions = policy.destinations()
    for item, call in zip(stripped, calls):
        if "agents" not in item:
            call.agents = {ext: Agent() for ext in sorted(extensions)}
    return calls, expects
