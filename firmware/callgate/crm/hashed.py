"""A secret kept in a CRM field as a salted scrypt hash rather than in plaintext.

The same scrypt run as the embedded directory (directory.py: N=2^14, r=8, p=1,
16-byte salt, 32-byte digest), written as one text a CRM field can hold:

    scrypt$16384$8$1$<salt, base64>$<digest, base64>

`callgate directory hash-secret` makes one; the REST connector checks a keyed
secret against it ([crm] verify_hashed) with hmac.compare_digest. A stored value
that is not such a text is refused as an error, never compared as plaintext: a
field configured as hashed that holds a bare PIN is a mistake to report. The
cost read from the field is bounded, so a bad value cannot exhaust memory.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os

from .base import ascii_digits
from .directory import HASH_BYTES, SALT_BYTES, SCRYPT_N, SCRYPT_P, SCRYPT_R, scrypt_digest

PREFIX = "scrypt"
MAX_MEMORY = 64 << 20                  # 128 * N * r bytes; the default uses 16 MiB
MAX_P = 4


class NotAHash(ValueError):
    """The stored value is not a callgate scrypt hash; str() names no part of it."""


def make(secret: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The text to keep in the CRM field for `secret`, with a fresh random salt."""
    salt = os.urandom(SALT_BYTES)
    digest = scrypt_digest(secret, salt, n, r, p, HASH_BYTES)
    return "$".join((PREFIX, str(n), str(r), str(p), _b64(salt), _b64(digest)))


def check(secret: str, stored: str) -> bool:
    """Whether `secret` is the one hashed into `stored`; NotAHash if `stored` is not one."""
    n, r, p, salt, expected = _parse(stored)
    computed = scrypt_digest(secret, salt, n, r, p, len(expected))
    return hmac.compare_digest(computed, expected)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.strip().split("$") if isinstance(stored, str) else []
    if len(parts) != 6 or parts[0] != PREFIX \
            or not all(ascii_digits(x) for x in parts[1:4]):
        raise NotAHash("not a callgate scrypt hash (make one with "
                       "`callgate directory hash-secret`)")
    n, r, p = (int(x) for x in parts[1:4])
    if n < 2 or n & (n - 1) or r < 1 or not 1 <= p <= MAX_P or 128 * n * r > MAX_MEMORY:
        raise NotAHash("scrypt cost out of bounds")
    try:
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        raise NotAHash("scrypt hash is not valid base64") from None
    if len(salt) < 8 or not 16 <= len(expected) <= 64:
        raise NotAHash("scrypt salt or digest has the wrong length")
    return n, r, p, salt, expected


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
