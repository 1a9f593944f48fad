"""Giving the C heap's free memory back to the system after a large apply (glibc's malloc_trim).

CPython keeps freed small objects in its own arenas (returned once empty), but the C library's heap,
where larger objects and the protobuf and SQLite buffers live, keeps what an apply of thousands of
documents freed until malloc_trim is called (some 3 MB after a 5,000-route apply; under a
millisecond). Elsewhere than glibc (musl, macOS) there is no such call and nothing is done."""
from __future__ import annotations

import ctypes
import sys

LARGE_APPLY = 500  # records an apply or delete changed from which its status pass trims the heap

_trim = None  # the C library's malloc_trim, False where it has none


def trim() -> bool:
    """malloc_trim(0) where the C library has it; whether it ran."""
    global _trim
    if _trim is None:
        _trim = False
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None).malloc_trim
                fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
                _trim = fn
            except (OSError, AttributeError):
                _trim = False
    if not _trim:
        return False
    _trim(0)
    return True
