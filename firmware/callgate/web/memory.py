"""Giving memory back to the system after a password check.

scrypt at the device's cost takes 16 MiB per check. glibc serves a block that
big with mmap at first, but after the first one is freed it raises its mmap
threshold and keeps later blocks in the heap of the thread's arena, one arena
per server thread: 24 checks at once left the process 500 MiB larger for good.
malloc_trim(0) returns the free pages of every arena; where the C library has
no such call (musl, macOS) this is a no-op and the bound on concurrent checks
(checks.py) is what holds the memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def _load_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_trim = _load_trim()


def available() -> bool:
    """Can this process give freed heap memory back (glibc's malloc_trim)?"""
    return _trim is not None


def give_back() -> bool:
    """Return freed heap pages to the system; True if any were returned."""
    if _trim is None:
        return False
    return bool(_trim(0))
