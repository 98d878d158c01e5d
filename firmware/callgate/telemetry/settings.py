"""[telemetry.mqtt]: which broker the device pushes to, as whom, and what it sends.

    [telemetry.mqtt]
    host = "broker.example.net"
    port = 8883                      # TLS always; there is no plain-text port
    ca_file = "/etc/callgate/broker-ca.pem"    # optional: the system's CAs otherwise
    username = "office-12"
    password_file = "/etc/callgate/mqtt.secret"  # 0600, first line
    prefix = "callgate"              # topics: <prefix>/<device_id>/...
    device_id = "office-12"          # default: the host name
    discovery = false                # Home Assistant MQTT discovery configs
    discovery_prefix = "homeassistant"
    state_interval_s = 60            # the state is also sent on every change
    config_key = "/etc/callgate/remote-config.pub"  # Ed25519 public key: remote config on
    remote_config = "/var/lib/callgate/remote-config.json"

The password is read here, at start, so a loose or missing file is refused by
`check-config` and `run` before anything connects.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, Table
from ..crm.auth import read_secret_file
from .topics import Topics, is_level

DEFAULT_PORT = 8883
DEFAULT_REMOTE = "/var/lib/callgate/remote-config.json"
KNOWN = ("host", "port", "ca_file", "username", "password_file", "prefix", "device_id",
         "discovery", "discovery_prefix", "state_interval_s", "keepalive_s", "config_key",
         "remote_config")


@dataclass
class MqttSettings:
    host: str
    port: int = DEFAULT_PORT
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    prefix: str = "callgate"
    device_id: str = "callgate"
    discovery: bool = False
    discovery_prefix: str = "homeassistant"
    state_interval_s: float = 60.0
    keepalive_s: int = 60
    config_key: str | None = None            # the public key's file; None: remote config off
    remote_config: str = DEFAULT_REMOTE

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix, self.device_id)


def _topic_path(text: str, key: str) -> str:
    if not text or not all(is_level(part) for part in text.split("/")):
        raise ConfigError(f"{key}: {text!r} is not a topic prefix (levels of letters, digits, "
                          "'.', '_' or '-', separated by '/')")
    return text


def default_device_id() -> str:
    """The host name's first label, as a topic level."""
    name = socket.gethostname().split(".")[0]
    cleaned = "".join(ch if is_level(ch) else "-" for ch in name)[:64]
    return cleaned or "callgate"


def load_telemetry(table: Table) -> MqttSettings | None:
    """Read [telemetry] (only [telemetry.mqtt] for now); None when there is none."""
    if not table.data:
        return None
    mqtt = load_mqtt(table.sub("mqtt"))
    table.reject_unknown(("mqtt",))
    return mqtt


def load_mqtt(t: Table) -> MqttSettings | None:
    """[telemetry.mqtt], checked; None when the table is absent. ConfigError names the key."""
    if not t.data:
        return None
    host = t.get("host", str)
    if not host or any(ch in host for ch in " /\r\n\t"):
        raise ConfigError(f"{t.key('host')}: {host!r} is not a host name or address")
    port = t.integer("port", DEFAULT_PORT, 1, 65535)
    ca = t.get("ca_file", str, None)
    if ca is not None and not Path(ca).is_file():
        raise ConfigError(f"{t.key('ca_file')}: {ca} is not a readable file")
    username = t.get("username", str, None)
    password_file = t.get("password_file", str, None)
    if (username is None) != (password_file is None):
        raise ConfigError(f"{t.key('username' if username is None else 'password_file')}: "
                          "missing (a login needs both username and password_file)")
    password = (read_secret_file(password_file, t.key("password_file"))
                if password_file is not None else None)
    prefix = _topic_path(t.get("prefix", str, "callgate"), t.key("prefix"))
    device = t.get("device_id", str, None)
    if device is None:
        device = default_device_id()
    elif not is_level(device):
        raise ConfigError(f"{t.key('device_id')}: {device!r} is not one topic level "
                          "(letters, digits, '.', '_' or '-', at most 64)")
    discovery = t.get("discovery", bool, False)
    ha_prefix = _topic_path(t.get("discovery_prefix", str, "homeassistant"),
                            t.key("discovery_prefix"))
    interval = t.number("state_interval_s", 60.0, 5.0, 3600.0)
    keepalive = t.integer("keepalive_s", 60, 5, 3600)
    key = t.get("config_key", str, None)
    if key is not None:
        from .remote import load_public_key
        load_public_key(key, t.key("config_key"))
    remote = t.get("remote_config", str, DEFAULT_REMOTE)
    t.reject_unknown(KNOWN)
    return MqttSettings(host, port, ca, username, password, prefix, device, discovery,
                        ha_prefix, interval, keepalive, key, remote)
