"""Run a scenario (on the sim line) or a recording (on the replay line) and check it.

Both go through the real parts, assembled by the composition root (app.App)
as `callgate run` assembles them: Engine, IdvFlow, the chosen back end, and
the recorder writing a CallStore in SQLite on its own thread. The store and the back end's files live in a temporary
folder, or in the folder `keep` names (so the records can be read afterwards:
the web pages and reports take the same file).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..app import App
from ..config import ConfigError, Table, read_toml
from ..line.base import LineError
from ..localzone import device_zone
from .crm import ScenarioCrm
from .check import Check, check_call
from .format import Scenario, load_scenario
from .transcript import Call, Observer

STORE_NAME = "calls.sqlite"
SECONDS_PER_CALL = 900          # a guard against a call that never ends


@dataclass
class Result:
    calls: list = field(default_factory=list)                    # transcript.Call
    checks: list[tuple[int, Check]] = field(default_factory=list)   # (call number, check)
    line: object = None          # the line it ran on (a replay's controls, the sim's outcomes)

    @property
    def failed(self) -> list[tuple[int, Check]]:
        return [(n, c) for n, c in self.checks if not c.ok]


def _folder(stack: ExitStack, keep: str | Path | None) -> Path:
    if keep is None:
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callgate-sim-")))
    folder = Path(keep)
    if (folder / STORE_NAME).exists():
        raise ConfigError(f"--keep: {folder} already holds {STORE_NAME} from an earlier run; "
                          "give an empty or new folder")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--keep: cannot make {folder} ({err.strerror or err})") from None
    return folder


def _run(line, sc: Scenario, emit: Callable[[dict], None], keep, after=None,
         telemetry=None) -> Result:
    """The engine and the flow on `line` until it ends; the checks of each call."""
    with ExitStack() as stack:
        folder = _folder(stack, keep)
        crm = stack.enter_context(ScenarioCrm(sc.backend, folder))
        store = folder / STORE_NAME if keep is not None or sc.store is None else sc.store
        obs = Observer(emit, line.rate, served=lambda: crm.served)
        clock = time.time
        if sc.sim.clock is not None and hasattr(line, "position"):
            start = sc.sim.clock
            clock = lambda: start + line.position / line.rate      # noqa: E731
        app = App(obs.tap(line), sc.engine, policy=sc.policy, crm=crm.crm, store=store,
                  synchronous="FULL", name=sc.sim.line, on_call=obs.call_ended,
                  wrap=obs.handler, player=obs.player(line.frame_samples), wall_clock=clock,
                  telemetry=telemetry)
        if sc.supervisor:
            _supervise(store, sc)
        with app:
            try:
                app.engine.run()
            finally:
                line.close()
        obs.finish_records(wait=True)
        if after is not None:
            after(obs.calls)
    result = Result(obs.calls, line=line)
    for i, expect in enumerate(sc.expects):
        seen = obs.calls[i] if i < len(obs.calls) else Call(i + 1)    # a call that never came
        for check in check_call(expect, seen):
            result.checks.append((i + 1, check))
    return result


def _supervise(store: Path, sc: Scenario) -> None:
    """[supervisor]: set the switches the web app would, in the scenario's store."""
    from ..store.records import CallStore
    from ..store.switches import install_announcement, set_announcement, set_closed

    policy = sc.policy
    with CallStore(store) as cs:
        if sc.supervisor.get("closed_today"):     # format.py refuses it without [service.hours]
            # as the web app does: the moment of the switch, the flow works out its date
            wall = sc.sim.clock if sc.sim.clock is not None else time.time()
            set_closed(cs.db, policy.name, True, "scenario", at=wall)
        recording = sc.supervisor.get("announcement")
        if recording is not None:
            install_announcement(store, policy.name, recording)
            set_announcement(cs.db, policy.name, True, "scenario")


def simulate(path: str | Path, emit: Callable[[dict], None], keep=None,
             realtime: bool = False, telemetry=None) -> Result:
    """Run the scenario at `path`; ConfigError (naming the key) if the file is wrong.
    `telemetry` (telemetry.settings.MqttSettings) runs the telemetry thread beside it, as
    `run` does (the privacy test searches what the broker received).

    `realtime`: the exchange runs on the wall clock and hands frames through a
    capture buffer as a sound card does (line/paced.py), so the call takes as
    long as it would on a line, and each call's pacing is in the transcript."""
    from ..line.sim import SimLine

    sc = load_scenario(path)
    s = sc.sim
    guard = s.max_seconds or SECONDS_PER_CALL * len(sc.calls)
    try:
        line = SimLine(sc.calls, s.country, s.echo_db, s.noise_dbm0, s.seed, max_seconds=guard,
                       paced=realtime)
    except ValueError as err:
        raise ConfigError(str(err)) from None

    def agents(calls) -> None:
        for seen, outcome in zip(calls, line.outcomes):
            seen.agent = outcome.transferred_to

    return _run(line, sc, emit, keep, after=agents, telemetry=telemetry)


def expect_path(wav: str | Path) -> Path:
    """The expectations beside a recording: call.wav -> call.expect.toml."""
    return Path(wav).with_suffix(".expect.toml")


def load_replay(config: str | Path | None, expect: str | Path | None) -> Scenario:
    """The replay's settings and expectations.

    Settings (service, back end, engine) come from `config` if given: a
    scenario-style file (with [backend]) or a run config ([crm], [[service]],
    [engine]; its [line] and [store] are not used). Otherwise from the
    expectations file, which is scenario-style. Expectations come from `expect`.
    """
    settings = expectations = None
    if expect is not None:
        expectations = load_scenario(expect, replay=True)
    if config is not None:
        data = read_toml(Path(config))
        settings = (load_scenario(config, replay=True) if "backend" in data
                    else _from_run_config(Path(config), data))
    sc = settings or expectations
    if sc is None:
        raise ConfigError("no settings: give --config FILE or an expectations file "
                          "(FIXTURE.expect.toml) with [backend] and [[service]]")
    if settings is not None and expectations is not None:
        sc.expects = expectations.expects
    return sc


def _from_run_config(path: Path, data: dict) -> Scenario:
    """The parts of a run config a replay uses: [engine], [crm], [[service]]."""
    from ..engine import EngineConfig
    from ..flow import load_services

    top = Table(data)
    crm = top.sub("crm")
    sc = Scenario(path)
    sc.engine = EngineConfig.from_table(top.sub("engine"))
    sc.services = load_services(top, crm.get("default_country", str, "US"), device_zone())
    sc.backend.kind = "crm"
    sc.backend.crm = dict(crm.data)
    return sc


def replay(wav: str | Path, emit: Callable[[dict], None], config=None, expect=None,
           keep=None) -> Result:
    """Run the recording through the engine and the flow; check the expectations."""
    from ..line.replay import ReplayLine

    if expect is None and expect_path(wav).is_file():
        expect = expect_path(wav)
    sc = load_replay(config, expect)
    try:
        line = ReplayLine(wav)
    except LineError as err:
        raise ConfigError(str(err)) from None
    return _run(line, sc, emit, keep)
