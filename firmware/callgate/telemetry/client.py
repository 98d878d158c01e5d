"""The link to the broker: paho-mqtt 2.x (CallbackAPIVersion.VERSION2) over TLS.

TLS is always on and the broker's certificate is checked against `ca_file` (or
the system's CAs) with its host name, as for the CRM; nothing turns that off.
The device logs in with its own user name and the password from its 0600 file.

Availability: the last will is `offline`, retained, so the broker tells
everyone when the device dies or its network goes; `online` (retained) is
published on every connect and `offline` on a clean stop. paho's own thread
keeps the connection and reconnects (1 s doubling to 60 s); this module only
tells the telemetry thread when the link comes up and what arrives.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Callable

import paho.mqtt.client as mqtt

from .settings import MqttSettings
from .topics import OFFLINE, ONLINE

log = logging.getLogger("callgate.telemetry")

ACK_TIMEOUT_S = 10.0              # a QoS 1 publish not acknowledged by then: not delivered


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificate and host name checked; `ca_file` or the system's CAs."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def make_client(s: MqttSettings, client_id: str, will: tuple[str, str] | None = None
                ) -> mqtt.Client:
    """A paho client set up with TLS, the login and the last will (not connected)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311, clean_session=True)
    client.tls_set_context(tls_context(s.ca_file))
    if s.username is not None:
        client.username_pw_set(s.username, s.password)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=60)
    return client


class Link:
    """One device's connection: `start()`, `publish(...)`, `stop()`.

    `on_up()` is called (on paho's thread) each time the link is up and
    `online` is out; `on_message(topic, payload)` for what arrives on the
    topics in `subscribe`.
    """

    def __init__(self, s: MqttSettings, on_up: Callable[[], None] = lambda: None,
                 on_message: Callable[[str, bytes], None] | None = None,
                 subscribe: tuple[str, ...] = ()) -> None:
        self.s = s
        self.topics = s.topics
        self.on_up = on_up
        self.on_message = on_message
        self.subscribe = subscribe
        self.client = make_client(s, f"callgate-{s.device_id}",
                                  will=(self.topics.availability, OFFLINE))
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_connect_fail = self._failed
        self.client.on_message = self._message
        self._up = threading.Event()
        self._refused = threading.Event()    # an attempt failed (unreachable, TLS, login)
        self._stopping = False
        self.last_error: str | None = None
        self.connects = 0

    @property
    def up(self) -> bool:
        return self._up.is_set()

    def wait_up(self, timeout_s: float) -> bool:
        return self._up.wait(timeout_s)

    def wait_refused(self, timeout_s: float) -> bool:
        """Whether an attempt to connect has failed (`last_error` says how)."""
        return self._refused.wait(timeout_s)

    def start(self) -> "Link":
        """Connect in the background (a broker that is down now is tried again)."""
        self.client.connect_async(self.s.host, self.s.port, keepalive=self.s.keepalive_s)
        self.client.loop_start()
        return self

    def publish(self, topic: str, payload: str | bytes, qos: int = 0,
                retain: bool = False) -> mqtt.MQTTMessageInfo | None:
        """Hand a message to paho; None if the link is down (nothing is queued by paho)."""
        if not self.up:
            return None
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        return info

    def stop(self, timeout_s: float = 5.0) -> None:
        """A clean stop: `offline` retained (the will is not sent), then disconnect."""
        self._stopping = True
        try:
            if self.up:
                info = self.client.publish(self.topics.availability, OFFLINE, qos=1,
                                           retain=True)
                acked(info, timeout_s)
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self._up.clear()

    # -- paho's thread ------------------------------------------------------------------

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection ({reason_code})"
            log.error("telemetry: %s:%d %s", self.s.host, self.s.port, self.last_error)
            self._refused.set()
            return
        self.connects += 1
        self.last_error = None
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        for topic in self.subscribe:
            client.subscribe(topic, qos=1)
        self._up.set()
        log.info("telemetry: connected to %s:%d", self.s.host, self.s.port)
        try:
            self.on_up()
        except Exception as err:            # noqa: BLE001 - paho's thread must live on
            log.error("telemetry: link-up handling failed (%s)", type(err).__name__)

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._up.is_set()
        self._up.clear()
        if was and not self._stopping:
            log.warning("telemetry: disconnected from %s:%d (%s); reconnecting",
                        self.s.host, self.s.port, reason_code)

    def _failed(self, client, userdata) -> None:
        self.last_error = "cannot connect (unreachable, or TLS not trusted)"
        log.warning("telemetry: %s:%d %s; trying again", self.s.host, self.s.port,
                    self.last_error)
        self._refused.set()

    def _message(self, client, userdata, message) -> None:
        if self.on_message is None:
            return
        try:
            self.on_message(message.topic, message.payload)
        except Exception as err:            # noqa: BLE001 - one bad message, not the link
            log.error("telemetry: message on %s not handled (%s)", message.topic,
                      type(err).__name__)


def acked(info: mqtt.MQTTMessageInfo | None, timeout_s: float) -> bool:
    """Wait for a QoS 1 message's PUBACK; False if it did not come (link down, timeout)."""
    if info is None:
        return False
    try:
        info.wait_for_publish(timeout_s)
    except (RuntimeError, ValueError):
        return False
    return info.is_published()
