"""Web users, their sessions and failed sign-ins, in their own SQLite file.

A user has a name, a role (admin, supervisor or agent), the extensions whose
calls they see (agents), a password kept only as a salted scrypt hash with its
cost beside it (the hash is re-made at sign-in when the cost is raised), a
disabled flag and a session version. Changing the password or disabling the
user bumps the version and deletes their sessions, so every session made
before dies at its next request.

Sessions are rows keyed by the SHA-256 of a random token (the browser holds the
token, the file only its digest), with the time they were issued and last seen;
`auth.py` decides when they have expired. Failed sign-ins are rows per
name-and-address key, so the rate limit survives a restart.

There is no default user and no default password: `callgate web init --admin
NAME` makes the first admin.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..store.records import StoreError, open_db
from .checks import Busy, PasswordChecks
from .memory import give_back
from .passwords import MAX_PASSWORD, MIN_PASSWORD, refusal

ROLES = ("admin", "supervisor", "agent")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
_EXTENSION = re.compile(r"^[0-9*#]{1,16}$")


class UserError(Exception):
    """A bad name, role, extension or password, or no such user; str() is one line."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    extensions: tuple[str, ...]
    disabled: bool
    version: int

    def can(self, *roles: str) -> bool:
        """Admin passes every role check; no roles means any signed-in user."""
        return self.role == "admin" or not roles or self.role in roles


def _v1(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE users (
        username TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        extensions TEXT NOT NULL DEFAULT '',     -- comma-separated
        n INTEGER NOT NULL, r INTEGER NOT NULL, p INTEGER NOT NULL,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 1,
        created REAL NOT NULL,
        updated REAL NOT NULL)""")
    db.execute("""CREATE TABLE sessions (
        digest BLOB PRIMARY KEY,
        username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        issued REAL NOT NULL,
        seen REAL NOT NULL)""")
    db.execute("CREATE INDEX sessions_user ON sessions(username)")
    db.execute("""CREATE TABLE signin_failures (
        key TEXT NOT NULL,
        at REAL NOT NULL)""")
    db.execute("CREATE INDEX signin_failures_key ON signin_failures(key, at)")


MIGRATIONS = [_v1]


def check_username(name: str) -> str:
    text = str(name).strip().lower()
    if not _NAME.match(text):
        raise UserError(f"user name {name!r} must be 1-32 letters, digits, '.', '_' or '-'")
    return text


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_extensions(extensions) -> tuple[str, ...]:
    """Extensions as dialled (digits, * and #); a string may list them with , or spaces."""
    if isinstance(extensions, str):
        extensions = extensions.replace(",", " ").split()
    out = []
    for ext in extensions:
        ext = str(ext).strip()
        if not _EXTENSION.match(ext):
            raise UserError(f"extension {ext!r} must be 1-16 of 0-9, * and #")
        if ext not in out:
            out.append(ext)
    return tuple(out)


def check_password(password: str, username: str | None = None) -> str:
    """The password if passwords.py accepts it for `username`; UserError saying why not."""
    why = refusal(password, username)
    if why:
        raise UserError(why)
    return password


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32,
                          maxmem=maxmem)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


class Users:
    """The users file; safe to share between the server's threads."""

    def __init__(self, path: str | Path, scrypt_n: int = SCRYPT_N, clock=time.time,
                 checks: PasswordChecks | None = None) -> None:
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
            raise ValueError("scrypt_n must be a power of 2")
        self.path = Path(path)
        self.checks = checks or PasswordChecks()
        self.cost = (scrypt_n, SCRYPT_R, SCRYPT_P)
        self.clock = clock
        self.db = open_db(self.path, MIGRATIONS, "the web users", synchronous="NORMAL")
        self.lock = threading.RLock()
        # what an unknown name costs, so a wrong name and a wrong password take as long
        self._decoy_salt = secrets.token_bytes(16)

    # -- users ----------------------------------------------------------------------

    def add(self, username: str, role: str, password: str, extensions=()) -> User:
        name, role = check_username(username), check_role(role)
        exts = check_extensions(extensions)
        salt, digest = self._hash(check_password(password, name))
        now = self.clock()
        try:
            self._write("INSERT INTO users (username, role, extensions, n, r, p, salt, hash, "
                        "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (name, role, ",".join(exts), *self.cost, salt, digest, now, now))
        except sqlite3.IntegrityError:
            raise UserError(f"user {name} already exists") from None
        return self.get(name)

    def get(self, username: str) -> User | None:
        with self.lock:
            row = self.db.execute("SELECT username, role, extensions, disabled, version "
                                  "FROM users WHERE username = ?",
                                  (str(username).strip().lower(),)).fetchone()
        return _user(row) if row else None

    def all(self) -> list[User]:
        with self.lock:
            rows = self.db.execute("SELECT username, role, extensions, disabled, version "
                                   "FROM users ORDER BY username").fetchall()
        return [_user(r) for r in rows]

    def remove(self, username: str) -> None:
        user = self._existing(username)
        self._keep_an_admin(user, "remove")
        self._write("DELETE FROM users WHERE username = ?", (user.username,))

    def set_password(self, username: str, password: str) -> None:
        """New password; every session the user had ends."""
        user = self._existing(username)
        salt, digest = self._hash(check_password(password, user.username))
        self._write("UPDATE users SET n = ?, r = ?, p = ?, salt = ?, hash = ?, "
                    "version = version + 1, updated = ? WHERE username = ?",
                    (*self.cost, salt, digest, self.clock(), user.username),
                    "DELETE FROM sessions WHERE username = ?", (user.username,))

    def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable (sessions end at once) or enable a user; the last admin stays enabled."""
        user = self._existing(username)
        if disabled:
            self._keep_an_admin(user, "disable")
            self._write("UPDATE users SET disabled = 1, version = version + 1, updated = ? "
                        "WHERE username = ?", (self.clock(), user.username),
                        "DELETE FROM sessions WHERE username = ?", (user.username,))
        else:
            self._write("UPDATE users SET disabled = 0, updated = ? WHERE username = ?",
                        (self.clock(), user.username))

    def set_extensions(self, username: str, extensions) -> tuple[str, ...]:
        user = self._existing(username)
        exts = check_extensions(extensions)
        self._write("UPDATE users SET extensions = ?, updated = ? WHERE username = ?",
                    (",".join(exts), self.clock(), user.username))
        return exts

    def enabled_admins(self) -> int:
        with self.lock:
            return self.db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND "
                                   "disabled = 0").fetchone()[0]

    def authenticate(self, username: str, password: str, priority: bool = False) -> User | None:
        """The user if the password is theirs and they are enabled; else None.

        Costs one scrypt run whatever the answer, and compares in constant time. The run
        waits for a slot of `checks`: Busy if none comes (nothing was checked).
        """
        name = str(username).strip().lower()
        with self.lock:
            row = self.db.execute("SELECT n, r, p, salt, hash FROM users WHERE username = ?",
                                  (name,)).fetchone()
        if row is None:
            (n, r, p), salt, digest = self.cost, self._decoy_salt, None
        else:
            n, r, p, salt, digest = row
        try:
            with self.checks.held(priority):
                try:
                    candidate = _scrypt(str(password)[:MAX_PASSWORD], salt, n, r, p)
                finally:
                    give_back()
        except (ValueError, MemoryError):
            return None
        if digest is None or not hmac.compare_digest(candidate, digest):
            return None
        user = self.get(name)
        if user is None or user.disabled:
            return None
        if (n, r, p) != self.cost:             # the cost was raised since: re-hash now
            new_salt, new = self._hash(str(password))
            self._write("UPDATE users SET n = ?, r = ?, p = ?, salt = ?, hash = ? "
                        "WHERE username = ?", (*self.cost, new_salt, new, name))
        return user

    # -- sessions --------------------------------------------------------------------

    def new_session(self, user: User, now: float) -> str:
        token = secrets.token_urlsafe(32)
        self._write("INSERT INTO sessions (digest, username, version, issued, seen) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (token_digest(token), user.username, user.version, now, now))
        return token

    def session(self, token: str) -> tuple[User, int, float, float] | None:
        """(user, the version the session was made with, issued, seen), or None."""
        with self.lock:
            row = self.db.execute(
                "SELECT u.username, u.role, u.extensions, u.disabled, u.version, s.version, "
                "s.issued, s.seen FROM sessions s JOIN users u ON u.username = s.username "
                "WHERE s.digest = ?", (token_digest(token),)).fetchone()
        if row is None:
            return None
        return _user(row[:5]), row[5], row[6], row[7]

    def touch_session(self, token: str, now: float) -> None:
        self._write("UPDATE sessions SET seen = ? WHERE digest = ?", (now, token_digest(token)))

    def end_session(self, token: str) -> None:
        self._write("DELETE FROM sessions WHERE digest = ?", (token_digest(token),))

    def end_sessions_before(self, cutoff_issued: float, cutoff_seen: float) -> None:
        """Housekeeping: drop sessions that can no longer be valid."""
        self._write("DELETE FROM sessions WHERE issued < ? OR seen < ?",
                    (cutoff_issued, cutoff_seen))

    # -- failed sign-ins ----------------------------------------------------------------

    def failures(self, key: str, since: float) -> list[float]:
        """Times of the key's failed sign-ins after `since`, oldest first."""
        with self.lock:
            rows = self.db.execute("SELECT at FROM signin_failures WHERE key = ? AND at > ? "
                                   "ORDER BY at", (key, since)).fetchall()
        return [r[0] for r in rows]

    def add_failure(self, key: str, at: float, keep_s: float, *more: str) -> None:
        """One failed sign-in, counted under `key` and each of `more`, in one transaction;
        rows older than `keep_s` go."""
        inserts = []
        for k in (key, *more):
            inserts += ["INSERT INTO signin_failures (key, at) VALUES (?, ?)", (k, at)]
        self._write(*inserts, "DELETE FROM signin_failures WHERE at < ?", (at - keep_s,))

    def clear_failures(self, key: str, *more: str) -> None:
        deletes = []
        for k in (key, *more):
            deletes += ["DELETE FROM signin_failures WHERE key = ?", (k,)]
        self._write(*deletes)

    def failure_keys(self, prefix: str, since: float) -> int:
        """How many distinct keys starting with `prefix` have failures after `since`."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.lock:
            return self.db.execute("SELECT COUNT(DISTINCT key) FROM signin_failures WHERE "
                                   "key LIKE ? ESCAPE '\\' AND at > ?",
                                   (pattern, since)).fetchone()[0]

    # -- helpers ----------------------------------------------------------------------

    def _hash(self, password: str) -> tuple[bytes, bytes]:
        salt = secrets.token_bytes(16)
        try:
            return salt, _scrypt(password, salt, *self.cost)
        finally:
            give_back()

    def _existing(self, username: str) -> User:
        user = self.get(username)
        if user is None:
            raise UserError(f"no user {str(username).strip().lower()!r}")
        return user

    def _keep_an_admin(self, user: User, what: str) -> None:
        if user.role == "admin" and not user.disabled and self.enabled_admins() <= 1:
            raise UserError(f"cannot {what} {user.username}: the last enabled admin")

    def _write(self, *statements) -> None:
        """One transaction of (sql, params) pairs."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in zip(statements[::2], statements[1::2]):
                    self.db.execute(sql, params)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def __enter__(self) -> "Users":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _user(row) -> User:
    name, role, exts, disabled, version = row
    return User(name, role, tuple(e for e in exts.split(",") if e), bool(disabled), version)


__all__ = ["ROLES", "MIN_PASSWORD", "Busy", "StoreError", "User", "UserError", "Users",
           "check_extensions", "check_password", "check_role", "check_username"]
