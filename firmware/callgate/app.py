"""The composition root: one config in, one running appliance out.

`run`, `simulate`, `replay` and `check-config` all assemble the appliance
here, so what a test simulates is what a device runs:

    Settings.load(path)   read and check every table (opens nothing)
    App(...)              line, engine, flow, back end, recorder, write-back
    App.from_settings     the same, built from a run config

The threads, and why: the audio thread runs the engine's frame loop and
nothing else; the recorder's thread writes every call record, trail step,
line state and outbox row (store/recorder.py); the work threads run the
back-end requests and the attempt-counter reads; the write-back's thread
delivers the outbox. The audio thread only hands over, through bounded
queues.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .call import CallInfo, Handler
from .config import ConfigError, Table, load
from .engine import Engine, EngineConfig, ScriptedHandler
from .engine.prompts import default_prompt_root
from .flow import IdvFlow, Policy, load_services, service_for_line
from .line import Line, LineError, make_line
from .lines import DEFAULT_LINE, check_devices, choose_line, configured_lines, lines_dir_of
from .localzone import device_zone
from .printable import PrintableFormatter
from .store.records import StoreError, store_path
from .store.health import BackendProbe
from .store.recorder import Recorder

log = logging.getLogger("callgate")

TABLES = ("engine", "line", "crm", "service", "store", "web", "writeback", "telemetry",
          "system")
LINE_NAME = DEFAULT_LINE        # the name of a device's only line
LOG_QUEUE = 1000                 # log lines waiting for stderr at most


@dataclass
class Settings:
    """A run config, read and checked; nothing opened yet."""

    table: Table
    engine: EngineConfig
    line: Line                       # built, not opened (nor wrapped for recording)
    services: list[Policy]
    store_path: Path
    writeback: object | None         # crm.writeback.WritebackSettings
    name: str = LINE_NAME            # the line this process answers (lines.py)
    line_table: Table | None = None  # its [line] table
    lines: dict[str, Line] | None = None   # every configured line, built, not opened
    telemetry: object | None = None  # telemetry.settings.MqttSettings
    remote_serial: int | None = None # the signed remote config this runs (None: the file)

    @classmethod
    def load(cls, path: str | Path | None, line: str | None = None,
             pick: bool = True) -> "Settings":
        """Read and check the file (None: the embedded defaults) and the line files of
        lines/ beside it; ConfigError names the first bad key, unknown key or missing
        prompt. `line` names the line to run; `pick` False checks every line and picks
        none (check-config, doctor)."""
        return cls.from_table(load(path) if path else Table({}), line=line,
                              lines_dir=lines_dir_of(path), pick=pick)

    @classmethod
    def from_table(cls, table: Table, line: str | None = None, lines_dir: Path | None = None,
                   pick: bool = True) -> "Settings":
        from .appliance.system import SystemSettings
        from .crm.writeback import load_writeback
        from .telemetry.settings import load_telemetry
        from .web.settings import WebSettings

        for key in table.data:
            if key not in TABLES:
                raise ConfigError(f"{key}: unknown key (known: {', '.join(TABLES)})")
        engine = EngineConfig.from_table(table.sub("engine"))
        specs = configured_lines(table, lines_dir)
        built = {spec.name: _check_line(spec.table) for spec in specs}
        check_devices(built)
        chosen = choose_line(specs, line) if pick else specs[0]
        country = _check_crm(table.sub("crm"))
        WebSettings.from_table(table)
        SystemSettings.from_table(table)
        writeback = load_writeback(table.sub("writeback"))
        services = (load_services(table, country, device_zone()) if _has_flow(table)
                    else [])
        if writeback is not None and not services:
            raise ConfigError("writeback: the write-back needs the ID&V flow "
                              "([[service]] or [crm])")
        telemetry = load_telemetry(table.sub("telemetry"))
        if telemetry is not None and not services:
            raise ConfigError("telemetry.mqtt: telemetry needs the ID&V flow's call records "
                              "([[service]] or [crm])")
        names = ScriptedHandler.prompts_needed
        if not services:
            ScriptedHandler.from_config(table.sub("engine").sub("script"))
        else:
            names = ()
        _check_prompts(engine, services, names)
        return cls(table, engine, built[chosen.name], services, store_path(table), writeback,
                   telemetry=telemetry, name=chosen.name, line_table=chosen.table, lines=built)

    def with_remote_config(self) -> "Settings":
        """The settings `run` uses: those of the signed remote config applied earlier
        (telemetry/remote.py) if one is stored and still verifies and passes the checks;
        these otherwise."""
        t = self.telemetry
        if t is None or t.config_key is None:
            return self
        from .telemetry.remote import effective_table, load_public_key

        public = load_public_key(t.config_key, "telemetry.mqtt.config_key")
        table, serial = effective_table(self.table, public, t.device_id, t.remote_config,
                                        Settings.from_table)
        if serial is None:
            return self
        settings = Settings.from_table(table, line=self.name)
        settings.remote_serial = serial
        return settings

    @property
    def policy(self) -> Policy | None:
        """The service line of the line this device answers (None: the scripted handler)."""
        return service_for_line(self.services, self.name) if self.services else None


def _has_flow(table: Table) -> bool:
    return "service" in table.data or "crm" in table.data


def _check_line(line: Table) -> Line:
    """The line backend, built but not opened, and [line.record] read without making its
    folder: their keys and values are checked."""
    from .line.recording import RecordingLine

    try:
        built = make_line(line)
        RecordingLine.settings(line.sub("record"))
        return built
    except (LineError, ValueError, OSError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"{line.path}: {text}") from None


def _check_crm(crm: Table) -> str:
    """Check [crm] without opening a directory file or a connection; its default country."""
    from .crm import KINDS, make_crm

    kind = crm.choice("kind", KINDS, "directory")
    country = crm.get("default_country", str, "US")
    if len(country) != 2 or not country.isalpha():
        raise ConfigError(f"{crm.key('default_country')}: {country!r} is not a two-letter "
                          "country code")
    if kind == "directory":
        crm.get("directory", str, "")
    else:
        make_crm(crm).close()
    unknown = crm.unknown()
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key")
    return country.upper()


def _check_prompts(engine: EngineConfig, services: list[Policy],
                   scripted: tuple[str, ...] = ()) -> None:
    """Every prompt the service lines (or the scripted handler) may play is there."""
    root = Path(engine.prompts) if engine.prompts else default_prompt_root()
    folder = root / engine.language
    key = "engine.prompts" if engine.prompts else "engine.language"
    if not folder.is_dir():
        raise ConfigError(f"{key}: no prompt folder {folder}")
    for name in scripted:
        if not (folder / f"{name}.wav").is_file():
            raise ConfigError(f"{key}: no prompt {folder / (name + '.wav')} "
                              "(the scripted handler plays it)")
    for policy in services:
        for name in policy.prompt_names():
            if not (folder / f"{name}.wav").is_file():
                raise ConfigError(f"{policy.prompt_key(name)}: no prompt "
                                  f"{folder / (name + '.wav')}")


class App:
    """One line's appliance, assembled: `start()`, `run()`, `close()` (or `with`).

    `policy` None runs the scripted handler (`script`: its [engine.script]);
    otherwise the ID&V flow over `crm`, its records written by the recorder
    into `store` (`synchronous` as SQLite spells it). `wrap` lets a watcher
    (the simulator's transcript) stand between the engine and the handler.
    A `crm` given here stays its giver's to close; the one `from_settings`
    builds is the App's.
    """

    def __init__(self, line: Line, engine: EngineConfig, *, policy: Policy | None = None,
                 crm=None, script: Table | None = None, store: str | Path | None = None,
                 synchronous: str = "FULL", writeback=None,
                 on_call: Callable[[CallInfo], None] | None = None,
                 watchdog: Callable[[], None] | None = None,
                 wrap: Callable[[Handler, Recorder | None], Handler] | None = None,
                 player=None, name: str = LINE_NAME, services: list[Policy] | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 telemetry=None, config: Table | None = None,
                 remote_serial: int | None = None) -> None:
        self.line = line
        self.telemetry_settings = telemetry  # telemetry.settings.MqttSettings or None
        self.telemetry = None                # its thread, once started
        self.config = config or Table({})    # the config run (remote config keeps its
        self.remote_serial = remote_serial   # [telemetry])
        self.restart_requested = False
        self.crm = crm
        self._own_crm = None                 # the back end this App built, closed with it
        self.writeback = writeback
        self.worker = None
        self.recorder = None
        if policy is not None:
            if store is None:
                raise ConfigError("store.path: the ID&V flow needs a call-record file")
            tap = None
            if telemetry is not None:
                from .telemetry.events import EventTap
                tap = EventTap()
            self.recorder = Recorder(store, synchronous=synchronous,
                                     on_writeback=self._wake_writeback,
                                     backend=BackendProbe.of(crm), tap=tap,
                                     on_tap=self._wake_telemetry)
            # several service lines: each call's own, by its line and distinctive ring
            choose = None
            if services and len(services) > 1:
                def choose(call: CallInfo, _services=tuple(services)) -> Policy:
                    return service_for_line(list(_services), call.line, call.ring_pattern)
            handler: Handler = IdvFlow(
                policy, crm, counter=self.recorder.counter, switches=self.recorder.switches,
                rate=line.rate,
                writeback_max_age_s=writeback.max_age_s if writeback else None,
                choose=choose, services=tuple(services or ()))
        else:
            if telemetry is not None:
                raise ConfigError("telemetry.mqtt: telemetry needs the ID&V flow's call "
                                  "records")
            handler = ScriptedHandler.from_config(script or Table({}, "engine.script"))
        self.flow = handler
        if wrap is not None:
            handler = wrap(handler, self.recorder)
        self.engine = Engine(line, handler, engine, name=name, on_call=on_call,
                             watchdog=watchdog, recorder=self.recorder, player=player,
                             wall_clock=wall_clock)

    @classmethod
    def from_settings(cls, settings: Settings, **kw) -> "App":
        """The appliance of a run config: its line (wrapped in the call recorder when
        [line.record] asks), back end, store and write-back."""
        from .crm import make_crm
        from .line.recording import RecordingLine

        line_table = settings.line_table or settings.table.sub("line")
        line = RecordingLine.from_config(settings.line, line_table.sub("record"))
        kw.setdefault("name", settings.name)
        policy = settings.policy
        crm = None
        if policy is not None:
            table = settings.table.sub("crm")
            crm = make_crm(table, table.get("directory", str, None))
        try:
            app = cls(line, settings.engine, policy=policy, crm=crm,
                      script=settings.table.sub("engine").sub("script"),
                      store=settings.store_path, writeback=settings.writeback,
                      services=settings.services,
                      telemetry=settings.telemetry, config=settings.table,
                      remote_serial=settings.remote_serial, **kw)
        except BaseException:
            if crm is not None:
                crm.close()              # a prompt missing: nothing is left open
            raise
        app._own_crm = crm
        return app

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "App":
        """Open the call records and the write-back; ConfigError if the store cannot be
        used."""
        try:
            if self.recorder is not None:
                # fail safe: a read-only or full store still answers calls (no records)
                self.recorder.start(fail_safe=True)
            if self.writeback is not None:
                from .crm.writeback import DeliveryWorker

                try:
                    self.worker = DeliveryWorker(self.recorder.path, self.writeback).start()
                except (StoreError, OSError) as err:
                    if self.recorder.trouble is None:
                        raise
                    log.error("write-back: not started (%s); calls go on", err)
            if self.telemetry_settings is not None:
                try:
                    self.telemetry = self._telemetry().start()
                except (StoreError, OSError) as err:
                    if self.recorder.trouble is None:
                        raise
                    log.error("telemetry: not started (%s); calls go on", err)
        except ConfigError:
            self.close()
            raise
        except (StoreError, OSError) as err:
            self.close()
            raise ConfigError(f"store.path: {err}") from None
        return self

    def run(self, max_calls: int | None = None) -> int:
        """Open the line and run calls until it ends (or `max_calls`); the number of calls.
        Starts the recorder first if `start` was not called."""
        if self.recorder is not None and not self.recorder.running:
            self.start()
        with self.line:
            return self.engine.run(max_calls=max_calls)

    def close(self) -> None:
        """Write what the recorder holds, give the write-back its last seconds, let go of
        the back end. Safe to call twice."""
        recorder, self.recorder = self.recorder, None
        worker, self.worker = self.worker, None
        crm, self._own_crm = self._own_crm, None
        telemetry, self.telemetry = self.telemetry, None
        try:
            if recorder is not None:
                recorder.close()
        finally:
            try:
                if worker is not None:
                    worker.stop()
            finally:
                try:
                    if telemetry is not None:
                        telemetry.stop()     # after the recorder: the last events go too
                finally:
                    if crm is not None:
                        crm.close()

    def __enter__(self) -> "App":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _telemetry(self):
        """The telemetry thread (telemetry/worker.py) of this appliance."""
        from .telemetry.worker import worker_for

        return worker_for(self)

    def _wake_telemetry(self) -> None:
        if self.telemetry is not None:
            self.telemetry.wake()

    def request_restart(self) -> None:
        """A new config is on disk (remote configuration): end `run` once no call is in
        progress; `callgate run` then exits with its restart status."""
        self.restart_requested = True
        self.engine.stop_when_idle()

    def _wake_writeback(self) -> None:
        """The recorder committed an outbox row: send it now, not at the next poll."""
        if self.worker is not None:
            self.worker.wake()


@contextmanager
def lines_off_the_audio_thread(stream):
    """`emit(text)` hands a line to a thread that prints it to `stream` (the per-call
    summaries of `run`, a realtime transcript): a journal or a pipe that stalls then
    costs lines (dropped, counted at the end), never a frame."""
    lines: queue.Queue = queue.Queue(LOG_QUEUE)
    dropped = [0]

    def emit(text: str) -> None:
        try:
            lines.put_nowait(text)
        except queue.Full:
            dropped[0] += 1

    def write() -> None:
        while (text := lines.get()) is not None:
            try:
                print(text, file=stream, flush=True)
            except (OSError, ValueError):
                pass                         # a closed pipe: nobody is reading
    thread = threading.Thread(target=write, name="callgate-print", daemon=True)
    thread.start()
    try:
        yield emit
    finally:
        lines.put(None)
        thread.join(30)
        if dropped[0]:
            print(f"callgate: {dropped[0]} lines not printed (output too slow)",
                  file=sys.stderr)


@contextmanager
def logs_off_the_audio_thread(stream, fmt: str):
    """Log lines go to a bounded queue; a thread writes them to `stream`. A journal or
    a terminal that stalls then costs log lines (dropped), never a frame."""
    lines: queue.Queue = queue.Queue(LOG_QUEUE)
    out = logging.StreamHandler(stream)
    out.setFormatter(PrintableFormatter(fmt))
    listener = _PatientListener(lines, out)
    handler = _DroppingQueueHandler(lines)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    listener.start()
    try:
        yield
    finally:
        listener.stop()
        root.removeHandler(handler)


class _PatientListener(logging.handlers.QueueListener):
    def enqueue_sentinel(self) -> None:
        try:
            self.queue.put(self._sentinel, timeout=10)   # room comes once lines are written
        except queue.Full:
            pass


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            pass                         # the stream is stuck: a lost line, not a lost frame


__all__ = ["App", "Settings", "lines_off_the_audio_thread",
           "logs_off_the_audio_thread"]
