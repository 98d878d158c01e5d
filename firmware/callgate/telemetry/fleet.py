"""`callgate fleet`: every device the broker knows of, for the installer.

It logs in to the broker as the installer, subscribes to the devices' retained
availability and state (and, with --watch, their events, to tell when each was
last heard) and prints one row per device: id, version, online, lines up,
alarms, today's calls, last seen. It stores nothing: the broker's retained
messages are the fleet's memory.

    callgate fleet --config fleet.toml [--json] [--watch]
    callgate fleet keygen PRIVATE.pem PUBLIC.pem
    callgate fleet push-config --config fleet.toml --key PRIVATE.pem \\
        --device office-12 --serial 7 office-12.toml

fleet.toml holds a [telemetry.mqtt] table like a device's (host, port, ca_file,
username, password_file, prefix), with the installer's login.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field

from ..config import ConfigError, Table, load
from ..store.outbox import iso_utc
from .client import acked, make_client
from .settings import MqttSettings, load_mqtt
from .topics import AVAILABILITY, CONFIG, EVENT, ONLINE, STATE, device_of, is_level

COLLECT_S = 5.0               # the longest a look at the broker waits for retained messages


@dataclass
class Device:
    id: str
    online: bool | None = None
    state: dict = field(default_factory=dict)
    heard: str | None = None            # when an event of it last arrived (ISO, UTC)

    def row(self) -> dict:
        s = self.state
        lines = s.get("lines") or {}
        up = sum(1 for v in lines.values() if isinstance(v, dict)
                 and v.get("up", v.get("state") not in ("down", None)))
        calls = s.get("calls_today") or {}
        return {"id": self.id, "version": s.get("version"), "online": self.online,
                "lines_up": up, "lines": len(lines),
                "alarms": [a.get("alarm") for a in s.get("alarms") or []
                           if isinstance(a, dict)],
                "calls_today": calls,
                "last_seen": max(filter(None, (s.get("at"), self.heard)), default=None),
                "remote_config": s.get("remote_config")}


class Fleet:
    """What the broker has told of each device so far (thread-safe)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.devices: dict[str, Device] = {}
        self.lock = threading.Lock()

    def hear(self, topic: str, payload: bytes, at: float | None = None) -> None:
        found = device_of(topic, self.prefix)
        if found is None:
            return
        device_id, what = found
        if what not in (AVAILABILITY, STATE, EVENT):
            return
        with self.lock:
            dev = self.devices.setdefault(device_id, Device(device_id))
            if what == AVAILABILITY:
                dev.online = payload.decode("utf-8", "replace") == ONLINE
            elif what == STATE:
                try:
                    doc = json.loads(payload.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    return
                if isinstance(doc, dict):
                    dev.state = doc
            if what == EVENT:                # a retained state may be old; an event is now
                dev.heard = iso_utc(time.time() if at is None else at)

    def rows(self) -> list[dict]:
        with self.lock:
            return [self.devices[k].row() for k in sorted(self.devices)]


def watch_broker(s: MqttSettings, fleet: Fleet, events: bool = False,
                 collect_s: float = COLLECT_S):
    """Connect as the installer and feed `fleet`; returns the client (running) once the
    retained messages have arrived (a marker sent after subscribing came back) or
    `collect_s` passed. ConfigError if the broker cannot be reached or refuses."""
    marker = f"{s.prefix}/.fleet/{secrets.token_hex(6)}"
    client = make_client(s, f"callgate-fleet-{secrets.token_hex(4)}")
    ready, subscribed = threading.Event(), threading.Event()
    refused: list[str] = []
    topics = [f"{s.prefix}/+/{AVAILABILITY}", f"{s.prefix}/+/{STATE}", marker]
    if events:
        topics.append(f"{s.prefix}/+/{EVENT}")

    def connected(c, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
            ready.set()
            return
        c.subscribe([(t, 1) for t in topics])

    def suback(c, userdata, mid, reason_codes, properties) -> None:
        subscribed.set()
        c.publish(marker, b"", qos=1)

    def message(c, userdata, msg) -> None:
        if msg.topic == marker:
            ready.set()
        else:
            fleet.hear(msg.topic, msg.payload)

    client.on_connect = connected
    client.on_subscribe = suback
    client.on_message = message
    try:
        client.connect(s.host, s.port, keepalive=30)
    except OSError as err:
        raise ConfigError(f"cannot reach the broker {s.host}:{s.port} "
                          f"({type(err).__name__}: {err.strerror or err})") from None
    client.loop_start()
    ready.wait(collect_s)
    if refused:
        client.loop_stop()
        raise ConfigError(f"the broker {s.host}:{s.port} refused the login ({refused[0]})")
    return client


def table_text(rows: list[dict]) -> str:
    head = ("DEVICE", "VERSION", "ONLINE", "LINES UP", "CALLS TODAY (v/i/n)", "ALARMS",
            "LAST SEEN")
    out = [head]
    for r in rows:
        c = r["calls_today"] or {}
        calls = (f"{c.get('total', 0)} ({c.get('verified', 0)}/{c.get('identified', 0)}/"
                 f"{c.get('not_identified', 0)})") if c else "-"
        online = {True: "yes", False: "NO", None: "?"}[r["online"]]
        out.append((r["id"], r["version"] or "-", online, f"{r['lines_up']}/{r['lines']}",
                    calls, ", ".join(r["alarms"]) or "-", r["last_seen"] or "-"))
    widths = [max(len(str(row[i])) for row in out) for i in range(len(head))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
                     for row in out)


# ---------------------------------------------------------------------- the command


def add_parser(sub) -> None:
    p = sub.add_parser("fleet", help="every device on the broker: online, lines, alarms",
                       description="Read the MQTT broker the devices push to and show one "
                                   "row per device. Stores nothing.")
    _connection(p)
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    p.add_argument("--watch", action="store_true", help="refresh every --every seconds")
    p.add_argument("--every", type=float, default=5.0, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_fleet)
    acts = p.add_subparsers(metavar="ACTION", required=False)
    kg = acts.add_parser("keygen", help="make the Ed25519 key pair for remote configuration")
    kg.add_argument("private", metavar="PRIVATE.pem", help="written 0600: keep it safe")
    kg.add_argument("public", metavar="PUBLIC.pem", help="for each device's config_key")
    kg.set_defaults(func=cmd_keygen)
    pc = acts.add_parser("push-config", help="sign a config for one device and publish it "
                                             "(retained)")
    _connection(pc)
    pc.add_argument("--key", required=True, metavar="PRIVATE.pem")
    pc.add_argument("--device", required=True, metavar="ID")
    pc.add_argument("--serial", required=True, type=int, metavar="N",
                    help="higher than the one the device runs")
    pc.add_argument("file", metavar="CONFIG.toml")
    pc.set_defaults(func=cmd_push_config)


def _connection(p) -> None:
    p.add_argument("--config", metavar="FILE", required=False,
                   help="TOML with [telemetry.mqtt]: host, port, ca_file, username, "
                        "password_file, prefix (the installer's login)")


def _settings(args, me: str) -> MqttSettings | None:
    if not args.config:
        print(f"{me}: --config FILE is needed (its [telemetry.mqtt] names the broker)",
              file=sys.stderr)
        return None
    try:
        s = load_mqtt(load(args.config).sub("telemetry").sub("mqtt"))
    except ConfigError as err:
        print(f"{me}: {err}", file=sys.stderr)
        return None
    if s is None:
        print(f"{me}: {args.config} has no [telemetry.mqtt]", file=sys.stderr)
    return s


def cmd_fleet(args) -> int:
    s = _settings(args, "callgate fleet")
    if s is None:
        return 2
    fleet = Fleet(s.prefix)
    try:
        client = watch_broker(s, fleet, events=args.watch)
    except ConfigError as err:
        print(f"callgate fleet: {err}", file=sys.stderr)
        return 1
    try:
        while True:
            rows = fleet.rows()
            if args.json:
                print(json.dumps(rows), flush=True)
            else:
                if args.watch:
                    print("\033[H\033[2J", end="")
                print(table_text(rows), flush=True)
            if not args.watch:
                return 0
            time.sleep(max(0.5, args.every))
    except KeyboardInterrupt:
        return 0
    finally:
        client.disconnect()
        client.loop_stop()


def cmd_keygen(args) -> int:
    from .remote import RemoteConfigError, make_keys

    try:
        make_keys(args.private, args.public)
    except (RemoteConfigError, OSError) as err:
        print(f"callgate fleet keygen: {err}", file=sys.stderr)
        return 1
    print(f"private key {args.private} (0600, keep it off the devices); public key "
          f"{args.public} (config_key on each device)")
    return 0


def cmd_push_config(args) -> int:
    """Sign the file for one device and publish it retained on its config topic. Here it
    is only read as TOML: its credential files and prompts are on the device, which runs
    check-config's rules on it before anything is applied."""
    from .remote import RemoteConfigError, load_private_key, sign

    me = "callgate fleet push-config"
    if not is_level(args.device):
        print(f"{me}: --device {args.device!r} is not a device id (one topic level: "
              "letters, digits, '.', '_' or '-')", file=sys.stderr)
        return 2
    s = _settings(args, me)
    if s is None:
        return 2
    try:
        text = open(args.file, encoding="utf-8").read()
        private = load_private_key(args.key)
        table = Table(load(args.file).data)
        if "telemetry" in table.data:
            raise RemoteConfigError("telemetry: not settable remotely (the device keeps its "
                                    "own); remove the table")
    except (OSError, UnicodeDecodeError) as err:
        print(f"{me}: {args.file}: cannot read ({type(err).__name__})", file=sys.stderr)
        return 1
    except (RemoteConfigError, ConfigError) as err:
        print(f"{me}: {err}", file=sys.stderr)
        return 2
    payload = sign(private, args.device, args.serial, text)
    client = make_client(s, f"callgate-fleet-{secrets.token_hex(4)}")
    try:
        client.connect(s.host, s.port, keepalive=30)
    except OSError as err:
        print(f"{me}: cannot reach the broker {s.host}:{s.port} ({type(err).__name__})",
              file=sys.stderr)
        return 1
    client.loop_start()
    try:
        info = client.publish(f"{s.prefix}/{args.device}/{CONFIG}", payload, qos=1,
                              retain=True)
        if not acked(info, 10.0):
            print(f"{me}: the broker did not take the message", file=sys.stderr)
            return 1
    finally:
        client.disconnect()
        client.loop_stop()
    print(f"config {args.serial} for {args.device} published; the device reports the "
          "result in its state (callgate fleet)")
    return 0
