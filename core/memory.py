"""The serving process's memory: glibc's allocator bounded (used by `python app.py`)."""

from __future__ import annotations

import ctypes
import threading
import time


def bound_allocator(arenas: int = 2, trim_every_s: float = 30.0) -> None:
    """Keep the process's memory from creeping up under many concurrent requests.

    glibc gives threads that contend for malloc arenas of their own (up to eight per core) and
    hands little of their freed memory back. Two arenas, and a `malloc_trim` every
    `trim_every_s` seconds, reduce the growth under 50 concurrent clients without stopping it
    (`python -m bench.load`; numbers in docs/MEASUREMENTS.md). A no-op where libc is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        return

    def trim() -> None:
        while True:
            time.sleep(trim_every_s)
            libc.malloc_trim(0)

    threading.Thread(target=trim, name="malloc_trim", daemon=True).start()
