"""The embedded customer directory: the back end when no CRM is configured.

A SQLite file on the device (WAL, 0600) with customers, their phone numbers
(E.164, several each), other identifiers keyed as digits (account, tracking
number, ...) and their secrets. A secret is never stored: only a salted scrypt
hash with its own random salt and its cost parameters beside it, so the cost
can be raised later (a hash made with lower parameters is re-made with the
current ones the next time the customer verifies). Checking compares digests
with hmac.compare_digest, and an unknown customer or a missing secret costs the
same scrypt run as a real one, so the verdict is all a caller learns.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import IO, Callable, Iterable, Iterator

from ..privacy import mask
from ..store.records import StoreError, open_db
from .base import Customer, Lookup, Verdict

DEFAULT_PATH = Path("/var/lib/callgate/directory.sqlite")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
BUILTIN_KINDS = ("customer_id", "phone")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MAX_DIGITS = 32
HASH_THREADS = 4      # scrypt runs at once on import (16 MiB each at the default cost)


class DirectoryError(Exception):
    """Bad directory input (a CSV row, an id, a secret); str() is one line without secrets."""


def _v1(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE customers (
        id TEXT PRIMARY KEY,
        name TEXT,
        created REAL NOT NULL)""")
    db.execute("""CREATE TABLE phones (
        customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
        e164 TEXT NOT NULL,
        PRIMARY KEY (customer_id, e164))""")
    db.execute("CREATE INDEX phones_e164 ON phones(e164)")
    db.execute("""CREATE TABLE identifiers (
        customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (customer_id, kind, value))""")
    db.execute("CREATE INDEX identifiers_value ON identifiers(kind, value)")
    db.execute("""CREATE TABLE secrets (
        customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        algorithm TEXT NOT NULL,           -- 'scrypt'
        n INTEGER NOT NULL, r INTEGER NOT NULL, p INTEGER NOT NULL,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (customer_id, kind))""")


MIGRATIONS = [_v1]


def normalise_phone(number: str, default_country: str = "US") -> str | None:
    """E.164 via the crm layer's normaliser (phonenumbers); a small fallback without it."""
    try:
        from .phone import normalise_phone as real
    except ImportError:
        try:
            from .base import normalise_phone as real   # type: ignore[attr-defined]
        except ImportError:
            real = None
    if real is not None:
        return real(number, default_country)
    return _fallback_phone(number, default_country)


def _fallback_phone(number: str, default_country: str = "US") -> str | None:
    """North American numbers and numbers already in international form only."""
    text = str(number).strip()
    if not re.fullmatch(r"[+0-9 ().\-]+", text or "x"):
        return None
    digits = re.sub(r"\D", "", text)
    if text.startswith("+") or text.startswith("00"):
        digits = digits[2:] if text.startswith("00") else digits
        return f"+{digits}" if 8 <= len(digits) <= 15 and digits[0] != "0" else None
    if default_country.upper() in ("US", "CA"):
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        if len(digits) == 10 and digits[0] not in "01" and digits[3] not in "01":
            return f"+1{digits}"
    return None


def scrypt_digest(secret: str, salt: bytes, n: int, r: int, p: int,
                  dklen: int = HASH_BYTES) -> bytes:
    """The one scrypt run of callgate's customer secrets (the directory's and hashed.py's)."""
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)


def _digits(value: str, what: str, where: str) -> str:
    text = "".join(str(value).split()).replace("-", "")
    if not text.isdigit() or not text.isascii() or len(text) > _MAX_DIGITS:
        raise DirectoryError(f"{where}: {what} must be 1 to {_MAX_DIGITS} digits")
    return text


def _kind(kind: str, where: str) -> str:
    k = str(kind).strip().lower()
    if not _KIND.match(k):
        raise DirectoryError(f"{where}: identifier kind {kind!r} must be lower-case letters, "
                             "digits and _")
    return k


class Directory:
    """The embedded directory; a Crm (lookup_phone, lookup_identifier, verify)."""

    name = "directory"

    def __init__(self, path: str | Path = DEFAULT_PATH, default_country: str = "US",
                 scrypt_n: int = SCRYPT_N, scrypt_r: int = SCRYPT_R,
                 scrypt_p: int = SCRYPT_P, create: bool = True) -> None:
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
            raise ValueError("scrypt_n must be a power of 2")
        self.path = Path(path)
        if not create and not self.path.exists():
            # the back end of `run`: an empty directory made here would leave every
            # caller "not identified" without a word
            raise DirectoryError(f"{self.path}: no such directory file (make it with "
                                 "`callgate directory import`, or fix [crm] directory)")
        self.default_country = default_country
        self.cost = (scrypt_n, scrypt_r, scrypt_p)
        try:
            self.db = open_db(self.path, MIGRATIONS, "the customer directory")
        except StoreError as err:
            raise DirectoryError(str(err)) from None
        self.lock = threading.RLock()

    # -- the Crm ----------------------------------------------------------------

    def lookup_phone(self, e164: str) -> Lookup:
        t0 = time.perf_counter()
        number = normalise_phone(e164, self.default_country)
        if number is None:
            return Lookup("miss", latency_ms=_ms(t0))
        return self._lookup("SELECT c.id, c.name FROM phones p JOIN customers c "
                            "ON c.id = p.customer_id WHERE p.e164 = ? ORDER BY c.id",
                            (number,), t0)

    def lookup_identifier(self, kind: str, digits: str) -> Lookup:
        t0 = time.perf_counter()
        kind = str(kind).strip().lower()
        if kind == "phone":
            return self.lookup_phone(digits)
        value = "".join(str(digits).split())
        if not value.isdigit():
            return Lookup("miss", latency_ms=_ms(t0))
        if kind == "customer_id":
            return self._lookup("SELECT id, name FROM customers WHERE id = ?", (value,), t0)
        return self._lookup("SELECT c.id, c.name FROM identifiers i JOIN customers c "
                            "ON c.id = i.customer_id WHERE i.kind = ? AND i.value = ? "
                            "ORDER BY c.id", (kind, value), t0)

    def _lookup(self, sql: str, params: tuple, t0: float) -> Lookup:
        try:
            with self.lock:
                rows = self.db.execute(sql, params).fetchall()
            kinds = self._secret_kinds([cid for cid, _ in rows])
        except sqlite3.Error as err:
            return Lookup("error", latency_ms=_ms(t0), error=f"directory: {_one_line(err)}")
        found = tuple(dict.fromkeys(Customer(cid, name, kinds.get(cid, frozenset()))
                                    for cid, name in rows))
        status = "miss" if not found else "hit" if len(found) == 1 else "ambiguous"
        return Lookup(status, found, latency_ms=_ms(t0))

    def _secret_kinds(self, ids: list[str]) -> dict[str, frozenset[str]]:
        """The kinds of secret each customer has on file (the directory always knows)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(set(ids)))
        with self.lock:
            rows = self.db.execute(f"SELECT customer_id, kind FROM secrets WHERE customer_id "
                                   f"IN ({marks})", tuple(set(ids))).fetchall()
        out: dict[str, set[str]] = {}
        for cid, kind in rows:
            out.setdefault(cid, set()).add(kind)
        return {cid: frozenset(kinds) for cid, kinds in out.items()}

    def verify(self, customer: Customer, kind: str, secret: str) -> Verdict:
        """'verified' or 'rejected' (unknown customer and missing secret alike), or 'error'."""
        t0 = time.perf_counter()
        try:
            with self.lock:
                row = self.db.execute(
                    "SELECT algorithm, n, r, p, salt, hash FROM secrets "
                    "WHERE customer_id = ? AND kind = ?",
                    (customer.id, str(kind).strip().lower())).fetchone()
        except sqlite3.Error as err:
            return Verdict("error", latency_ms=_ms(t0), error=f"directory: {_one_line(err)}")
        if row is None or row[0] != "scrypt":
            # same work as a real check, so timing does not tell "no such customer"
            n, r, p = self.cost
            expected, salt = bytes(HASH_BYTES), bytes(SALT_BYTES)
        else:
            _, n, r, p, salt, expected = row
        computed = scrypt_digest(str(secret), salt, n, r, p, len(expected))
        ok = hmac.compare_digest(computed, expected) and row is not None
        if ok and any(have < want for have, want in zip((n, r, p), self.cost)):
            try:
                self._store_secret(customer.id, str(kind).strip().lower(), str(secret))
            except (sqlite3.Error, DirectoryError):
                pass   # the old hash still works; try again next time
        return Verdict("verified" if ok else "rejected", assurance="high", latency_ms=_ms(t0))

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def __enter__(self) -> "Directory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- administration ---------------------------------------------------------------

    def hash_secret(self, secret: str) -> tuple:
        """(algorithm, n, r, p, salt, hash) for a secret, with a fresh random salt."""
        salt = os.urandom(SALT_BYTES)
        n, r, p = self.cost
        return ("scrypt", n, r, p, salt, scrypt_digest(secret, salt, n, r, p))

    def add(self, customer_id: str, name: str | None = None, phones: Iterable[str] = (),
            identifiers: Iterable[tuple[str, str]] = ()) -> None:
        cid = _digits(customer_id, "the customer id", "new customer")
        e164s = []
        for ph in phones:
            number = normalise_phone(ph, self.default_country)
            if number is None:
                raise DirectoryError("new customer: a phone number is not valid "
                                     f"(for default country {self.default_country})")
            e164s.append(number)
        ids = [(_kind(k, "new customer"), _digits(v, f"the {k} identifier", "new customer"))
               for k, v in identifiers]
        for kind, _ in ids:
            if kind in BUILTIN_KINDS:
                raise DirectoryError(f"new customer: {kind} is built in, not an extra identifier")
        with self._transaction():
            if self.db.execute("SELECT 1 FROM customers WHERE id = ?", (cid,)).fetchone():
                raise DirectoryError(f"customer {mask(cid)} already exists")
            self._insert(cid, name, e164s, ids, {})

    def remove(self, customer_id: str) -> bool:
        with self._transaction():
            cur = self.db.execute("DELETE FROM customers WHERE id = ?", (str(customer_id),))
        return cur.rowcount > 0

    def set_secret(self, customer_id: str, kind: str, secret: str) -> None:
        kind = _kind(kind, "secret")
        secret = _digits(secret, f"the {kind}", "secret")
        with self.lock:
            exists = self.db.execute("SELECT 1 FROM customers WHERE id = ?",
                                     (str(customer_id),)).fetchone()
        if not exists:
            raise DirectoryError(f"no customer {mask(str(customer_id))}")
        self._store_secret(str(customer_id), kind, secret)

    def _store_secret(self, cid: str, kind: str, secret: str) -> None:
        hashed = self.hash_secret(secret)
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (cid, kind, *hashed, time.time()))

    def customers(self) -> Iterator[dict]:
        """Every customer: id, name, phones, identifiers {kind: [values]}, secret kinds."""
        with self.lock:
            rows = self.db.execute("SELECT id, name FROM customers ORDER BY id").fetchall()
            phones = self.db.execute("SELECT customer_id, e164 FROM phones "
                                     "ORDER BY customer_id, e164").fetchall()
            ids = self.db.execute("SELECT customer_id, kind, value FROM identifiers "
                                  "ORDER BY customer_id, kind, value").fetchall()
            kinds = self.db.execute("SELECT customer_id, kind FROM secrets "
                                    "ORDER BY customer_id, kind").fetchall()
        by_id = {cid: {"id": cid, "name": name, "phones": [], "identifiers": {}, "secrets": []}
                 for cid, name in rows}
        for cid, e164 in phones:
            by_id[cid]["phones"].append(e164)
        for cid, kind, value in ids:
            by_id[cid]["identifiers"].setdefault(kind, []).append(value)
        for cid, kind in kinds:
            by_id[cid]["secrets"].append(kind)
        yield from by_id.values()

    # -- CSV ------------------------------------------------------------------------

    def import_csv(self, source: str | Path | IO[str], replace: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> int:
        """Import customers from CSV in one transaction: all rows or none.

        Columns: id (required), name, phones (';'-separated), pin and secret:KIND
        (hashed, never stored as given), identifiers ('kind:value;...'), and any
        other column is an identifier kind whose cells hold values. A bad row raises
        DirectoryError naming the row (file line) and column, never the value.

        The whole file is checked first (every row, and every id against the
        directory) and only then hashed: scrypt is the slow part (an hour for
        10,000 rows on a Pi), so a mistake on the last row is told at once.
        Hashes are made on several threads (hashlib.scrypt releases the GIL);
        `progress(done, total)` is told as they finish.
        """
        label = "CSV"
        if isinstance(source, (str, Path)):
            label = str(source)
            try:
                with open(source, newline="", encoding="utf-8-sig") as f:
                    text = f.read()
            except OSError as err:
                raise DirectoryError(f"{label}: cannot read ({err.strerror or err})") from None
            except UnicodeDecodeError:
                raise DirectoryError(f"{label}: not UTF-8 text") from None
            source = io.StringIO(text, newline="")
        rows = self._parse(source, label)
        existing = self._existing([row[1] for row in rows])
        if not replace:
            for line, cid, *_ in rows:
                if cid in existing:
                    raise DirectoryError(f"{label}: row {line}, column id: customer "
                                         f"{mask(cid)} already exists (use --replace)")
        # hash before taking the write lock
        hashed = self._hash_rows([row[4] for row in rows], progress)
        with self._transaction():
            for (line, cid, name, e164s, _, ids), secrets in zip(rows, hashed):
                old = self.db.execute("SELECT 1 FROM customers WHERE id = ?", (cid,)).fetchone()
                if old and not replace:
                    raise DirectoryError(f"{label}: row {line}, column id: customer "
                                         f"{mask(cid)} already exists (use --replace)")
                if old:
                    # replace: a row without a secret keeps the customer's old one
                    self.db.execute("DELETE FROM phones WHERE customer_id = ?", (cid,))
                    self.db.execute("DELETE FROM identifiers WHERE customer_id = ?", (cid,))
                    self.db.execute("UPDATE customers SET name = ? WHERE id = ?", (name, cid))
                    self._insert(cid, name, e164s, ids, secrets, customer=False)
                else:
                    self._insert(cid, name, e164s, ids, secrets)
        return len(rows)

    def _existing(self, ids: list[str]) -> set[str]:
        """Which of `ids` the directory holds already (checked before any hashing)."""
        found: set[str] = set()
        with self.lock:
            for at in range(0, len(ids), 500):
                chunk = ids[at:at + 500]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in self.db.execute(
                    f"SELECT id FROM customers WHERE id IN ({marks})", chunk))
        return found

    def _hash_rows(self, secrets: list[dict], progress) -> list[dict]:
        """Every row's secrets hashed, on up to HASH_THREADS threads, in row order."""
        jobs = [(i, kind, s) for i, row in enumerate(secrets) for kind, s in row.items()]
        out: list[dict] = [{} for _ in secrets]
        if progress is not None:
            progress(0, len(jobs))
        if not jobs:
            return out
        threads = max(1, min(HASH_THREADS, os.cpu_count() or 1, len(jobs)))
        with ThreadPoolExecutor(threads, thread_name_prefix="callgate-hash") as pool:
            futures = {pool.submit(self.hash_secret, s): (i, kind) for i, kind, s in jobs}
            for done, future in enumerate(as_completed(futures), 1):
                i, kind = futures[future]
                out[i][kind] = future.result()
                if progress is not None:
                    progress(done, len(jobs))
        return out

    def _parse(self, source: IO[str], label: str) -> list[tuple]:
        try:
            # strict: a quote opened and never closed is an error, not the rest of
            # the file swallowed into one cell
            reader = csv.reader(source, strict=True)
            header = next(reader, None)
            if header is None:
                raise DirectoryError(f"{label}: empty file (expected a header row)")
            cols = [h.strip().lower() for h in header]
            aliases = {"customer_id": "id", "phone": "phones"}
            cols = [aliases.get(c, c) for c in cols]
            if "id" not in cols:
                raise DirectoryError(f"{label}: row 1: no id column")
            dup = {c for c in cols if cols.count(c) > 1 and c}
            if dup:
                raise DirectoryError(f"{label}: row 1: column {sorted(dup)[0]} appears twice")
            for c in cols:
                if c in ("id", "name", "phones", "pin", "identifiers", ""):
                    continue
                kind = c[len("secret:"):] if c.startswith("secret:") else c
                _kind(kind, f"{label}: row 1, column {c}")
            out, seen = [], set()
            for row in _rows(reader, label):
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) > len(cols):
                    raise DirectoryError(f"{label}: row {line}: {len(row)} cells but "
                                         f"{len(cols)} columns")
                cells = dict(zip(cols, (c.strip() for c in row)))
                out.append(self._parse_row(cells, line, label))
                if out[-1][1] in seen:
                    raise DirectoryError(f"{label}: row {line}, column id: the same customer "
                                         "id appears on an earlier row")
                seen.add(out[-1][1])
            return out
        except csv.Error as err:
            raise DirectoryError(f"{label}: not valid CSV ({err})") from None

    def _parse_row(self, cells: dict, line: int, label: str) -> tuple:
        def where(col: str) -> str:
            return f"{label}: row {line}, column {col}"

        if not cells.get("id"):
            raise DirectoryError(f"{where('id')}: missing")
        cid = _digits(cells["id"], "the customer id", where("id"))
        name = cells.get("name") or None
        e164s = []
        for ph in filter(None, (p.strip() for p in cells.get("phones", "").split(";"))):
            number = normalise_phone(ph, self.default_country)
            if number is None:
                raise DirectoryError(f"{where('phones')}: not a valid phone number "
                                     f"(default country {self.default_country})")
            e164s.append(number)
        secrets, ids = {}, []
        for col, cell in cells.items():
            if not cell or col in ("id", "name", "phones", ""):
                continue
            if col == "pin" or col.startswith("secret:"):
                kind = "pin" if col == "pin" else col[len("secret:"):]
                secrets[kind] = _digits(cell, f"the {kind}", where(col))
            elif col == "identifiers":
                for item in filter(None, (x.strip() for x in cell.split(";"))):
                    kind, sep, value = item.partition(":")
                    if not sep:
                        raise DirectoryError(f"{where(col)}: expected kind:value entries")
                    kind = _kind(kind, where(col))
                    if kind in BUILTIN_KINDS:
                        raise DirectoryError(f"{where(col)}: {kind} has its own column")
                    ids.append((kind, _digits(value, f"the {kind} identifier", where(col))))
            else:
                for value in filter(None, (x.strip() for x in cell.split(";"))):
                    ids.append((col, _digits(value, f"the {col} identifier", where(col))))
        return (line, cid, name, list(dict.fromkeys(e164s)), secrets, list(dict.fromkeys(ids)))

    def _insert(self, cid: str, name: str | None, e164s: list, ids: list, secrets: dict,
                customer: bool = True) -> None:
        if customer:
            self.db.execute("INSERT INTO customers VALUES (?, ?, ?)", (cid, name, time.time()))
        self.db.executemany("INSERT OR IGNORE INTO phones VALUES (?, ?)",
                            [(cid, e) for e in e164s])
        self.db.executemany("INSERT OR IGNORE INTO identifiers VALUES (?, ?, ?)",
                            [(cid, k, v) for k, v in ids])
        now = time.time()
        self.db.executemany("INSERT OR REPLACE INTO secrets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(cid, kind, *h, now) for kind, h in secrets.items()])

    def export_csv(self, out: IO[str]) -> int:
        """Customers as CSV that import_csv reads back; secrets and hashes never leave."""
        rows = list(self.customers())
        kinds = sorted({k for r in rows for k in r["identifiers"]})
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "name", "phones", *kinds])
        for r in rows:
            writer.writerow([r["id"], r["name"] or "", ";".join(r["phones"]),
                             *(";".join(r["identifiers"].get(k, [])) for k in kinds)])
        return len(rows)

    def _transaction(self):
        return _Transaction(self)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT under the directory's lock; ROLLBACK on any error."""

    def __init__(self, directory: Directory) -> None:
        self.d = directory

    def __enter__(self) -> None:
        self.d.lock.acquire()
        try:
            self.d.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.d.lock.release()
            raise

    def __exit__(self, kind, err, tb) -> None:
        try:
            self.d.db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.d.lock.release()


def _rows(reader, label: str) -> Iterator[list[str]]:
    """The CSV's rows; a malformed one (an unbalanced quote) names the line it starts on."""
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            why = ("a quote opened on this row is never closed" if "end of data" in str(err)
                   else f"not valid CSV ({err})")
            raise DirectoryError(f"{label}: row {start}: {why}") from None
        yield row
        start = reader.line_num + 1


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


def _one_line(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return text or type(err).__name__
