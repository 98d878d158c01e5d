"""The back end of a scenario: the embedded directory, or our reference API over HTTPS.

    [backend]
    kind = "directory"                 # or "https"
    customers = "customers.csv"        # CSV (directory import format), relative to the file
    scrypt_n = 16384                   # hashing cost of this throwaway directory
    default_country = "US"
    [[backend.customer]]               # customers written inline (as well as or instead)
    id = "99001122"
    name = "Ada Lovelace"
    phones = ["+1 617 555 0100"]
    pin = "2468"
    identifiers = { account = "70001" }
    secrets = { last_digits = "1234" }

    # kind = "https" only: a real HTTPS server on loopback serving docs/openapi.yaml
    # from the same customers, reached through the connector's "reference" preset
    behaviour = "ok"                   # ok | slow | down | status | garbage | untrusted
    delay_ms = 800                     # slow
    status = 500                       # status (e.g. 500, 503, 429)
    retry_after = "1"                  # status: the Retry-After header
    times = 1                          # misbehave for the first N requests only (0: always)
    affects = ["lookup_phone", "lookup_identifier", "verify"]
    [backend.crm]                      # more [crm] keys for the connector (budget, retries...)
    budget = 1.5

Every file this makes (directory, token, CA bundle) lives in the run's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, Table
from ..crm.directory import SCRYPT_N, Directory, DirectoryError
from .refserver import BEHAVIOURS, OPERATIONS, Misbehaviour, ReferenceServer, TrustmeMissing

KINDS = ("directory", "https")


@dataclass
class BackendSpec:
    kind: str = "directory"
    csv: Path | None = None
    customers: list[dict] = field(default_factory=list)
    scrypt_n: int = SCRYPT_N
    default_country: str = "US"
    misbehaviour: Misbehaviour = field(default_factory=Misbehaviour)
    crm: dict[str, Any] = field(default_factory=dict)


def _digits(table: Table, name: str, default=None) -> str | None:
    value = table.get(name, (str, int), default)
    if value is None:
        return None
    text = str(value)
    if isinstance(value, bool) or not text.isdigit():
        raise ConfigError(f"{table.key(name)}: {value!r} is not a string of digits")
    return text


def _digit_map(table: Table, name: str) -> dict[str, str]:
    sub = table.sub(name)
    return {kind: _digits(sub, kind) for kind in sub.data}


def _customer(table: Table) -> dict:
    phones = table.get("phones", list, [])
    if not all(isinstance(p, str) for p in phones):
        raise ConfigError(f"{table.key('phones')}: expected a list of phone numbers (strings)")
    out = {"id": _digits(table, "id"), "name": table.get("name", str, None), "phones": phones,
           "identifiers": _digit_map(table, "identifiers"), "secrets": _digit_map(table, "secrets")}
    pin = _digits(table, "pin", None)
    if pin is not None:
        out["secrets"]["pin"] = pin
    bad = table.unknown()
    if bad:
        raise ConfigError(f"{bad[0]}: unknown key")
    return out


def parse_backend(table: Table, base: Path) -> BackendSpec:
    """[backend] of a scenario; ConfigError names any bad key. `base`: the file's folder."""
    spec = BackendSpec(kind=table.choice("kind", KINDS, "directory"))
    csv = table.get("customers", str, None)
    if csv is not None:
        spec.csv = (base / csv) if not Path(csv).is_absolute() else Path(csv)
        if not spec.csv.is_file():
            raise ConfigError(f"{table.key('customers')}: {spec.csv} is not a readable file")
    items = table.get("customer", list, [])
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{table.key('customer')}[{i}]: expected a table")
        spec.customers.append(_customer(Table(item, f"{table.key('customer')}[{i}]")))
    n = table.get("scrypt_n", int, SCRYPT_N)
    if n < 2 or n & (n - 1) or n > 2 ** 20:
        raise ConfigError(f"{table.key('scrypt_n')}: {n} is not a power of 2 up to 2^20")
    spec.scrypt_n = n
    country = table.get("default_country", str, "US")
    if len(country) != 2 or not country.isalpha():
        raise ConfigError(f"{table.key('default_country')}: {country!r} is not a two-letter "
                          "country code")
    spec.default_country = country.upper()
    https_keys = ("behaviour", "delay_ms", "status", "retry_after", "times", "affects", "crm")
    if spec.kind == "directory":
        given = [k for k in https_keys if k in table.data]
        if given:
            raise ConfigError(f"{table.key(given[0])}: only for kind = \"https\"")
    else:
        spec.misbehaviour = _misbehaviour(table)
        spec.crm = table.get("crm", dict, {})
        for key in ("kind", "base_url", "ca_bundle", "auth"):
            if key in spec.crm:
                raise ConfigError(f"{table.key('crm')}.{key}: set by simulate (the reference "
                                  "server's own)")
    bad = table.unknown()
    if bad:
        raise ConfigError(f"{bad[0]}: unknown key")
    return spec


def _misbehaviour(table: Table) -> Misbehaviour:
    behaviour = table.choice("behaviour", BEHAVIOURS, "ok")
    delay = table.get("delay_ms", int, 0)
    if not 0 <= delay <= 60000:
        raise ConfigError(f"{table.key('delay_ms')}: {delay} is outside 0..60000")
    if behaviour == "slow" and delay == 0:
        raise ConfigError(f"{table.key('delay_ms')}: missing (how slow is \"slow\"?)")
    status = table.get("status", int, 500)
    if not 400 <= status <= 599:
        raise ConfigError(f"{table.key('status')}: {status} is not an HTTP error status "
                          "(400..599)")
    retry_after = table.get("retry_after", (str, int), None)
    times = table.get("times", int, 0)
    if not 0 <= times <= 1000:
        raise ConfigError(f"{table.key('times')}: {times} is outside 0..1000")
    affects = table.get("affects", list, list(OPERATIONS))
    for op in affects:
        if op not in OPERATIONS:
            raise ConfigError(f"{table.key('affects')}: {op!r} is not one of "
                              f"{', '.join(OPERATIONS)}")
    return Misbehaviour(behaviour, delay, status,
                        None if retry_after is None else str(retry_after), times, tuple(affects))


class ScenarioCrm:
    """The built back end (`.crm`, a callgate.crm.Crm) and what it runs on; close() ends it."""

    def __init__(self, spec: BackendSpec, folder: Path) -> None:
        self.spec = spec
        self.directory: Directory | None = None
        self.server: ReferenceServer | None = None
        self.crm = None
        try:
            if spec.kind == "crm":          # a run config's [crm], as `callgate run` makes it
                self.crm = _from_crm(Table(spec.crm, "crm"))
                return
            self.directory = _directory(spec, folder)
            if spec.kind == "directory":
                self.crm = self.directory
            else:
                self.crm = self._https(folder)
        except BaseException:
            self.close()
            raise

    def _https(self, folder: Path):
        from ..crm import make_crm

        token = os.urandom(16).hex()
        token_file = folder / "reference-token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
        try:
            self.server = ReferenceServer(self.directory, folder, token, self.spec.misbehaviour)
        except TrustmeMissing as err:
            raise ConfigError(f"backend.kind: {err}") from None
        crm = {**self.spec.crm, "kind": "reference", "base_url": self.server.url,
               "ca_bundle": str(self.server.ca_path),
               "auth": {"kind": "bearer", "token_file": str(token_file)},
               "default_country": self.spec.default_country}
        return make_crm(Table(crm, "backend.crm"))

    @property
    def served(self) -> list[tuple[str, int]]:
        return [] if self.server is None else list(self.server.served)

    def close(self) -> None:
        if self.crm is not None and self.crm is not self.directory:
            self.crm.close()
        if self.server is not None:
            self.server.close()
        if self.directory is not None:
            self.directory.close()

    def __enter__(self) -> "ScenarioCrm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _from_crm(crm: Table):
    from ..crm import make_crm

    return make_crm(crm, crm.get("directory", str, None))


def _directory(spec: BackendSpec, folder: Path) -> Directory:
    d = Directory(folder / "directory.sqlite", default_country=spec.default_country,
                  scrypt_n=spec.scrypt_n)
    try:
        if spec.csv is not None:
            d.import_csv(spec.csv)
        for i, c in enumerate(spec.customers):
            where = f"backend.customer[{i}]"
            try:
                d.add(c["id"], c["name"], c["phones"], list(c["identifiers"].items()))
                for kind, secret in c["secrets"].items():
                    d.set_secret(c["id"], kind, secret)
            except DirectoryError as err:
                raise ConfigError(f"{where}: {err}") from None
    except DirectoryError as err:
        d.close()
        raise ConfigError(f"backend.customers: {err}") from None
    except BaseException:
        d.close()
        raise
    return d
