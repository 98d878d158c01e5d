"""Remote configuration, safely: a signed config per device, checked before it is used.

The installer publishes, retained, on `<prefix>/<device_id>/config`:

    {"device_id": "office-12", "serial": 7, "config": "<the TOML text>",
     "signature": "<base64 Ed25519 signature>"}

The signature covers SIGNED_PREFIX, the device id, the serial and the TOML
text (see `signed_bytes`), so a message for one device cannot be replayed on
another and an older one cannot replace a newer (its serial must be higher
than the one applied; the same message again, as the broker resends it on
every connect, changes nothing). The public half of the key is provisioned on
the device (`config_key`); without it the device does not even subscribe.

What the device does with a message, in order: size, JSON, device id,
signature, serial, TOML, then the same checks as `callgate check-config`
(app.Settings) on the config it would run. Its own [telemetry] table is kept
from the local file and may not come remotely (a remote config cannot cut the
device off from its broker or change the key it trusts). Only a config that
passes every check is written (atomically, 0600, the signed message itself)
to `remote_config`; `callgate run` then ends once no call is in progress and
exits with RESTART_STATUS, systemd starts it again (Restart=on-failure), and at
start it verifies the stored message again and runs it in place of the local
file (one that passed the checks but cannot start, as a modem port that is not
there, is set aside for that run: the local file runs, so the device stays on its
broker, and the state raises remote_config_not_running). The outcome (applied, unchanged or refused, and why) is kept beside it
and reported in the state document.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

from ..config import ConfigError, Table
from ..store.outbox import iso_utc

log = logging.getLogger("callgate.telemetry")

SIGNED_PREFIX = b"callgate remote config v1\n"
MAX_MESSAGE = 256 * 1024
RESTART_STATUS = 75               # `callgate run` exits so to be started on the new config


class RemoteConfigError(Exception):
    """A remote config refused; str() is one line that says why."""


def signed_bytes(device_id: str, serial: int, config: str) -> bytes:
    return b"".join((SIGNED_PREFIX, device_id.encode("utf-8"), b"\n",
                     str(int(serial)).encode("ascii"), b"\n", config.encode("utf-8")))


def load_public_key(path: str, key: str) -> Ed25519PublicKey:
    """The Ed25519 public key in `path` (PEM), refused when others may change it."""
    p = Path(path)
    try:
        st = p.stat()
        data = p.read_bytes()
    except OSError as err:
        raise ConfigError(f"{key}: cannot read {p} ({err.strerror or type(err).__name__})") \
            from None
    if st.st_mode & 0o022:
        raise ConfigError(f"{key}: {p} may be changed by group or others (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}); chmod 644 it")
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigError(f"{key}: {p} is not a PEM public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError(f"{key}: {p} is not an Ed25519 public key")
    return public


def load_private_key(path: str) -> Ed25519PrivateKey:
    """The installer's signing key (PEM, unencrypted), refused if group or others may
    read it; RemoteConfigError otherwise."""
    p = Path(path)
    try:
        st = p.stat()
        data = p.read_bytes()
    except OSError as err:
        raise RemoteConfigError(f"{p}: cannot read ({err.strerror or type(err).__name__})") \
            from None
    if st.st_mode & 0o077:
        raise RemoteConfigError(f"{p}: open to group or others (mode "
                                f"{stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise RemoteConfigError(f"{p}: not an unencrypted PEM private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise RemoteConfigError(f"{p}: not an Ed25519 private key")
    return private


def make_keys(private_path: str, public_path: str) -> None:
    """A new key pair: the private half 0600 (for the installer), the public half 0644
    (for the devices' config_key)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pub = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_atomic(Path(private_path), pem, 0o600, exclusive=True)
    _write_atomic(Path(public_path), pub, 0o644, exclusive=True)


def sign(private: Ed25519PrivateKey, device_id: str, serial: int, config: str) -> bytes:
    """The retained message that carries `config` to `device_id`."""
    signature = private.sign(signed_bytes(device_id, serial, config))
    return json.dumps({"device_id": device_id, "serial": int(serial), "config": config,
                       "signature": base64.b64encode(signature).decode("ascii")},
                      separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Signed:
    device_id: str
    serial: int
    config: str
    signature: str
    data: dict                     # the TOML, parsed


def verify(payload: bytes, public: Ed25519PublicKey, device_id: str) -> Signed:
    """The message, checked up to its TOML (not yet the config's rules)."""
    import tomllib

    if len(payload) > MAX_MESSAGE:
        raise RemoteConfigError(f"larger than {MAX_MESSAGE} bytes")
    try:
        msg = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RemoteConfigError("not a JSON object") from None
    if not isinstance(msg, dict):
        raise RemoteConfigError("not a JSON object")
    for name, kind in (("device_id", str), ("serial", int), ("config", str),
                       ("signature", str)):
        if not isinstance(msg.get(name), kind) or isinstance(msg.get(name), bool):
            raise RemoteConfigError(f"{name}: missing or not a {kind.__name__}")
    if msg["device_id"] != device_id:
        raise RemoteConfigError("meant for another device")
    try:
        signature = base64.b64decode(msg["signature"], validate=True)
        public.verify(signature, signed_bytes(device_id, msg["serial"], msg["config"]))
    except (binascii.Error, ValueError, InvalidSignature):
        raise RemoteConfigError("bad signature") from None
    try:
        data = tomllib.loads(msg["config"])
    except tomllib.TOMLDecodeError as err:
        raise RemoteConfigError(f"not valid TOML ({err})") from None
    if "telemetry" in data:
        raise RemoteConfigError("telemetry: not settable remotely (the device keeps its own)")
    return Signed(device_id, msg["serial"], msg["config"], msg["signature"], data)


def merged(data: dict, local: Table) -> Table:
    """The config to run: the remote tables with the device's own [telemetry]."""
    out = dict(data)
    if "telemetry" in local.data:
        out["telemetry"] = local.data["telemetry"]
    return Table(out)


@dataclass
class Outcome:
    """What became of the last remote config message, for the state document."""

    result: str                    # applied | unchanged | refused
    serial: int | None
    why: str | None
    at: str | None


class RemoteConfig:
    """The device's side: `handle(payload)` for each message on its config topic.

    `check(table)` runs check-config's rules on the config it would run (app's
    Settings.from_table); `on_applied()` is told once a new config is on disk.
    """

    def __init__(self, public: Ed25519PublicKey, device_id: str, path: str | Path,
                 local: Table, check: Callable[[Table], object],
                 on_applied: Callable[[], None] = lambda: None) -> None:
        self.public = public
        self.device_id = device_id
        self.path = Path(path)
        self.local = local
        self.check = check
        self.on_applied = on_applied
        self.outcome = self._last_outcome()

    @property
    def result_path(self) -> Path:
        return self.path.with_name(self.path.name + ".result")

    def applied_serial(self) -> int | None:
        stored = self.stored()
        return None if stored is None else stored.serial

    def stored(self) -> Signed | None:
        """The config on disk, verified again (None: none, or it no longer verifies)."""
        try:
            payload = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            log.error("telemetry: remote config %s unreadable (%s)", self.path,
                      err.strerror or type(err).__name__)
            return None
        try:
            return verify(payload, self.public, self.device_id)
        except RemoteConfigError as err:
            log.error("telemetry: remote config %s refused at start (%s)", self.path, err)
            return None

    def handle(self, payload: bytes) -> Outcome:
        if not payload:
            return self.outcome            # the retained message was cleared: nothing new
        serial = None
        try:
            signed = verify(payload, self.public, self.device_id)
            serial = signed.serial
            current = self.stored()
            if current is not None and signed.serial <= current.serial:
                if signed.serial == current.serial and signed.signature == current.signature:
                    return self._keep(Outcome("unchanged", serial, None, _now()))
                raise RemoteConfigError(f"serial {signed.serial} is not newer than the "
                                        f"applied {current.serial}")
            try:
                self.check(merged(signed.data, self.local))
            except ConfigError as err:
                raise RemoteConfigError(f"check-config: {err}") from None
            _write_atomic(self.path, payload, 0o600)
        except RemoteConfigError as err:
            log.error("telemetry: remote config refused (%s)", err)
            return self._keep(Outcome("refused", serial, str(err), _now()))
        except OSError as err:
            why = f"cannot write {self.path} ({err.strerror or type(err).__name__})"
            log.error("telemetry: remote config not applied: %s", why)
            return self._keep(Outcome("refused", serial, why, _now()))
        log.warning("telemetry: remote config %d applied; restarting once no call is "
                    "in progress", signed.serial)
        self._keep(Outcome("applied", signed.serial, None, _now()))
        self.on_applied()
        return self.outcome

    def _keep(self, outcome: Outcome) -> Outcome:
        if outcome.result == "unchanged" and self.outcome is not None \
                and self.outcome.serial == outcome.serial:
            return self.outcome            # already told: keep what it was (applied)
        self.outcome = outcome
        try:
            _write_atomic(self.result_path, json.dumps(asdict(outcome)).encode(), 0o600)
        except OSError:
            pass                           # reported on state all the same
        return outcome

    def _last_outcome(self) -> Outcome | None:
        try:
            got = json.loads(self.result_path.read_text(encoding="utf-8"))
            outcome = Outcome(**{k: got.get(k) for k in ("result", "serial", "why", "at")})
        except (OSError, ValueError, TypeError):
            return None
        if outcome.result != "refused" and not self.path.exists():
            return None                    # its config was removed: back on the local file
        return outcome


def effective_table(local: Table, public: Ed25519PublicKey, device_id: str,
                    path: str | Path, check: Callable[[Table], object]
                    ) -> tuple[Table, int | None]:
    """The config `run` uses at start: the applied remote config if one is stored and
    still verifies and passes the checks, else the local file; (table, remote serial)."""
    rc = RemoteConfig(public, device_id, path, local, check)
    stored = rc.stored()
    if stored is None:
        return local, None
    table = merged(stored.data, local)
    try:
        check(table)
    except ConfigError as err:
        log.error("telemetry: remote config %d no longer passes check-config (%s); running "
                  "the local file", stored.serial, err)
        return local, None
    return merged(stored.data, local), stored.serial


def _now() -> str | None:
    return iso_utc(time.time())


def _write_atomic(path: Path, data: bytes, mode: int, exclusive: bool = False) -> None:
    """Write beside, fsync, rename over: a reader sees the old file or the new, whole."""
    if exclusive and path.exists():
        raise RemoteConfigError(f"{path}: already exists (not overwritten)")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
