"""Private files of the web app: the session-signing key and the TLS key.

Both must be readable by their owner only (0600 or stricter), like every
credential of the appliance (DEVELOPERS.md); anything else is refused with one
line that names the setting and the file.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

KEY_BYTES = 32


class KeyFileError(Exception):
    """A private file that is missing, unreadable or too open; str() is one line."""


def check_private(path: str | Path, key: str) -> Path:
    """`path` exists, is a file and has no group/other permissions."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as err:
        raise KeyFileError(f"{key}: {p}: {err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{key}: {p} is not a file")
    if st.st_mode & 0o077:
        raise KeyFileError(f"{key}: {p} must be readable by its owner only "
                           f"(mode {stat.S_IMODE(st.st_mode):04o}; chmod 600 {p})")
    return p


def read_secret_key(path: str | Path, key: str = "web.secret_key_file") -> bytes:
    """The session-signing key made by `callgate web init`."""
    p = Path(path)
    if not p.exists():
        raise KeyFileError(f"{key}: {p} does not exist (run `callgate web init` first)")
    check_private(p, key)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise KeyFileError(f"{key}: {p}: {err.strerror or err}") from None
    if len(data) < KEY_BYTES:
        raise KeyFileError(f"{key}: {p} holds {len(data)} bytes; a key needs {KEY_BYTES}")
    return data


def make_secret_key(path: str | Path) -> bool:
    """Create the key file (0600, parent 0700) with 32 random bytes; False if it exists."""
    p = Path(path)
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(KEY_BYTES))
    return True
