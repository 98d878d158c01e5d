"""A real Mosquitto broker on a free loopback port, for the telemetry tests.

TLS only (a server certificate for localhost/127.0.0.1 from a `trustme` CA, which
the clients trust through `ca_file`), logins from a password file made with
`mosquitto_passwd`, no anonymous access, persistence on (so retained messages
survive `restart()`, as they do on an installer's broker). `Spy` is a test client
subscribed to everything: what the broker delivered, in order.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import trustme

from callgate.telemetry.client import tls_context

USERS = {"office-1": "dev-pass-1", "office-2": "dev-pass-2", "installer": "inst-pass"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = self.folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert.private_key_pem.write_to_path(str(self.folder / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(self.folder / "server.pem"))
        passwd = self.folder / "passwd"
        for i, (user, password) in enumerate(USERS.items()):
            subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []),
                            str(passwd), user, password], check=True, capture_output=True)
        os.chmod(passwd, 0o600)
        self.port = free_port()
        (self.folder / "data").mkdir(exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1",
                 f"cafile {self.ca_file}", f"certfile {self.folder / 'server.pem'}",
                 f"keyfile {self.folder / 'server.key'}", "allow_anonymous false",
                 f"password_file {passwd}", "persistence true",
                 f"persistence_location {self.folder / 'data'}/",
                 "log_dest stderr", "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            lines.append("user root")          # keep our 0600 files readable
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "broker.log", "ab"))
        end = time.monotonic() + 20                # a hang guard, not a timing
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: "
                                   + (self.folder / "broker.log").read_text()[-500:])
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()                  # saves its persistence file
            self.proc.wait(20)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def table(self, user: str = "office-1", **over) -> dict:
        """A [telemetry.mqtt] table for `user` (its password in a 0600 file)."""
        pw = self.folder / f"{user}.secret"
        pw.write_text(USERS[user] + "\n")
        os.chmod(pw, 0o600)
        data = {"host": "localhost", "port": self.port, "ca_file": str(self.ca_file),
                "username": user, "password_file": str(pw), "device_id": user,
                "state_interval_s": 3600}
        data.update(over)
        return data


class Spy:
    """A client subscribed to `topics` (everything by default); what arrived, in order.

    `lasting=True`: a persistent session (clean_session false) that reconnects by
    itself, so what the broker takes while the spy is away (a broker restart) is kept
    for it and delivered when it is back, whoever reconnects first."""

    def __init__(self, broker: Broker, topics=("#",), user: str = "installer",
                 lasting: bool = False) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.lock = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"spy-{os.getpid()}-{id(self)}",
                                  clean_session=not lasting)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.tls_set_context(tls_context(str(broker.ca_file)))
        self.client.username_pw_set(user, USERS[user])
        self._subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._message
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "spy not subscribed"

    def _message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append(msg)
            self.lock.notify_all()

    def wait(self, predicate, timeout: float = 15.0):
        """Wait until predicate(messages) is true (a hang guard); its last value."""
        end = time.monotonic() + timeout
        with self.lock:
            while True:
                got = predicate(self.messages)
                if got or time.monotonic() >= end:
                    return got
                self.lock.wait(max(0.01, end - time.monotonic()))

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self.lock:
            return [m for m in self.messages if m.topic == topic]

    def json_on(self, topic: str) -> list:
        return [json.loads(m.payload) for m in self.on(topic)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "Spy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
