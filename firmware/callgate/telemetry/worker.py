"""The telemetry thread: the state, the events in order, and remote configuration.

It owns its own connection to the call-record file and the broker link
(client.py). Each pass, once the link is up: after a (re)connect the
discovery configs (if asked) and the state; then every pending event of the
MQTT outbox, oldest first, published QoS 1 in batches and marked delivered
only once the broker has acknowledged it, so after an outage they arrive in
the order they happened (a message whose acknowledgement was lost is sent
again: at least once, each with its outbox id as `seq` to tell repeats); then
the state when it changed or `state_interval_s` has passed. It sleeps until a
call ends or a line changes (the recorder's tap wakes it), a message arrives,
the link comes up, or the interval passes.

Nothing here is on the audio path: the engine never calls into it, the
recorder only sets an Event.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable

from ..store.outbox import Outbox
from ..store.records import CallStore
from . import discovery
from .client import ACK_TIMEOUT_S, Link, acked
from .events import MAX_AGE_S, TABLE
from .settings import MqttSettings
from .state import StateBuilder, changed

log = logging.getLogger("callgate.telemetry")

BATCH = 50                      # events published before waiting for their acknowledgements
PURGE_EVERY_S = 3600.0          # delivered rows (payload already cleared) are deleted hourly
STOP_DRAIN_S = 5.0


class TelemetryWorker:
    """`start()` / `wake()` / `stop()`; `remote` (remote.RemoteConfig) or None."""

    def __init__(self, settings: MqttSettings, store_path: str | Path, state: StateBuilder,
                 lines: list[str], remote=None, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.s = settings
        self.store_path = Path(store_path)
        self.state = state
        self.lines = lines
        self.remote = remote
        self.clock = clock
        subscribe = (settings.topics.config,) if remote is not None else ()
        self.link = Link(settings, on_up=self._link_up, on_message=self._arrived,
                         subscribe=subscribe)
        self.store: CallStore | None = None
        self.outbox: Outbox | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._fresh = threading.Event()         # the link came up: discovery and state again
        self._inbox: queue.Queue = queue.Queue(maxsize=16)
        self._stop_at: float | None = None
        self._last_state: dict | None = None
        self._state_at = 0.0
        self._purged_at = 0.0
        self.delivered = 0
        self.states = 0
        self._thread = threading.Thread(target=self._run, name="callgate-telemetry",
                                        daemon=True)

    def start(self) -> "TelemetryWorker":
        self.store = CallStore(self.store_path)
        self.outbox = Outbox(self.store, TABLE)
        self.link.start()
        self._thread.start()
        return self

    def wake(self, *_: object) -> None:
        self._wake.set()

    def stop(self, drain_s: float = STOP_DRAIN_S) -> None:
        """Deliver what is pending for up to `drain_s`, send the last state, go offline."""
        self._stop_at = self.clock() + drain_s
        self._stop.set()
        self._wake.set()
        self._thread.join(drain_s + ACK_TIMEOUT_S)
        self.link.stop()
        if not self._thread.is_alive() and self.store is not None:
            self.store.close()

    # -- paho's thread: hand over, never work ---------------------------------------------

    def _link_up(self) -> None:
        self._fresh.set()
        self._wake.set()

    def _arrived(self, topic: str, payload: bytes) -> None:
        try:
            self._inbox.put_nowait((topic, bytes(payload)))
        except queue.Full:
            log.warning("telemetry: too many config messages at once; one ignored")
        self._wake.set()

    # -- the telemetry thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                self._pass()
            except Exception as err:          # noqa: BLE001 - telemetry must live on
                log.error("telemetry: pass failed (%s); trying again", type(err).__name__)
            if self._stop.is_set():
                try:
                    self._pass(final=True)
                except Exception as err:      # noqa: BLE001
                    log.error("telemetry: last pass failed (%s)", type(err).__name__)
                return
            left = self.s.state_interval_s
            if self.link.up:             # down: the link coming up wakes the thread
                left -= self.clock() - self._state_at
            self._wake.wait(max(0.05, left))
            self._wake.clear()

    def _pass(self, final: bool = False) -> None:
        self._handle_config()
        self._housekeeping()
        if not self.link.up:
            return
        force = False
        if self._fresh.is_set():
            self._fresh.clear()
            force = True
            if self.s.discovery:
                self._discovery()
        self._deliver(final)
        self._publish_state(force or final)

    def _housekeeping(self) -> None:
        """Hourly, link up or not, and before any delivery: delivered rows deleted, and
        events past their age dropped (never sent late after a long outage)."""
        if self._purged_at and self.clock() - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = self.clock()
        self.outbox.purge()
        expired = self.outbox.expire(time.time())
        if expired:
            log.warning("telemetry: %d events older than %d days were never delivered "
                        "(broker unreachable); dropped", expired, MAX_AGE_S // 86400)

    def _handle_config(self) -> None:
        while True:
            try:
                topic, payload = self._inbox.get_nowait()
            except queue.Empty:
                return
            if self.remote is not None and topic == self.s.topics.config:
                self.remote.handle(payload)
                self._wake.set()             # the outcome goes out on state

    def _discovery(self) -> None:
        for topic, payload in discovery.configs(self.s, self.lines):
            self.link.publish(topic, json.dumps(payload, separators=(",", ":")), qos=1,
                              retain=True)

    def _deliver(self, final: bool) -> None:
        """Pending events, oldest first, each marked delivered once acknowledged."""
        stop_at = self._stop_at if final else None
        while self.link.up:
            items = self.outbox.pending(BATCH)
            if not items:
                return
            sent = []
            for item in items:
                body = {**item.payload, "device": self.s.device_id, "seq": item.id}
                info = self.link.publish(self.s.topics.event,
                                         json.dumps(body, separators=(",", ":")), qos=1)
                if info is None:
                    break
                sent.append((item, info))
            done = []
            for item, info in sent:
                if not acked(info, ACK_TIMEOUT_S):
                    break                    # the link went: the rest are sent again later
                done.append(item.id)
            if done:
                self._mark_delivered(done)
            if len(done) < len(items):
                return
            if stop_at is not None and self.clock() >= stop_at:
                return

    def _mark_delivered(self, ids: list[int]) -> None:
        from ..store.records import transaction

        at = time.time()
        with self.store.lock, transaction(self.store.db):
            for row_id in ids:
                self.outbox.delivered(row_id, 0, at)
        self.delivered += len(ids)

    def _publish_state(self, force: bool) -> None:
        doc = self.state.build(self.store)
        due = self.clock() - self._state_at >= self.s.state_interval_s
        if not (force or due or changed(self._last_state, doc)):
            return
        info = self.link.publish(self.s.topics.state, json.dumps(doc, separators=(",", ":")),
                                 qos=1, retain=True)
        if info is not None:
            self._last_state = doc
            self._state_at = self.clock()
            self.states += 1


def worker_for(app) -> TelemetryWorker:
    """The telemetry thread of an assembled appliance (app.App): its state from the
    device-state snapshot and the call records, remote configuration when a key is
    provisioned."""
    from ..localzone import device_zone
    from .state import snapshot_of

    s = app.telemetry_settings
    remote = None
    if s.config_key is not None:
        from ..app import Settings
        from .remote import RemoteConfig, load_public_key

        remote = RemoteConfig(load_public_key(s.config_key, "telemetry.mqtt.config_key"),
                              s.device_id, s.remote_config, app.config, Settings.from_table,
                              on_applied=app.request_restart)

    def remote_state() -> dict | None:
        if remote is None:
            return None
        outcome = remote.outcome
        return {"running": app.remote_serial, "restarting": app.restart_requested,
                **({} if outcome is None else vars(outcome))}

    recorder = app.recorder

    def records() -> dict:
        return {"records": {"dropped": recorder.stats.dropped, "lost": recorder.stats.lost}}

    state = StateBuilder(s.device_id, device_zone()[0], snapshot_of(recorder.path.parent),
                         remote_state, records)
    return TelemetryWorker(s, app.recorder.path, state, [app.engine.name], remote)
