"""Giving memory back to the system after a password check.

scrypt at the device's cost takes 16 MiB per check. glibc serves a block that
big with mmap at first, but after the first one is freed it raises its mmap
threshold and keeps later blocks in the heap of the thread's arena, one arena
per server thread: 24 checks at once left the process 500 MiB larger for good,
and even two at a time grew it by 300 MiB over 240 checks (48 threads, this
machine). So the web app fixes the threshold at 1 MiB (`keep_big_blocks_apart`:
every block that big is mapped on its own and unmapped when freed; measured: the
same 240 checks peak at 34 MiB above the start and end where they began), and
malloc_trim(0) after each check returns what the arenas still hold. Where the C
library has neither call (musl, macOS) both are no-ops and the bound on
concurrent checks (checks.py) is what holds the memory.
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
M_MMAP_THRESHOLD = -3           # glibc's mallopt parameter (malloc.h)
MMAP_FROM = 1 << 20


def keep_big_blocks_apart() -> bool:
    """Serve every block of MMAP_FROM or more with its own mapping, returned when freed
    (a fixed threshold also stops glibc from raising it); True if the C library did."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_FROM))


def available() -> bool:
    """Can this process give freed heap memory back (glibc's malloc_trim)?"""
    return _trim is not None


def give_back() -> bool:
    """Return freed heap pages to the system; True if any were returned."""
    if _trim is None:
        return False
    return bool(_trim(0))
