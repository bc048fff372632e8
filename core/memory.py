"""The serving process's memory: glibc's allocator bounded, and the long-lived heap kept out of
the garbage collector's full collections (both used by `python app.py`)."""

from __future__ import annotations

import ctypes
import gc
import threading
import time
from collections.abc import Callable


def bound_allocator(arenas: int = 2, trim_every_s: float = 30.0) -> None:
    """Keep the process's memory from creeping up under many concurrent requests.

    glibc gives threads that contend for malloc arenas of their own (up to eight per core) and
    hands little of their freed memory back. Two arenas, and a `malloc_trim` every
    `trim_every_s` seconds, reduce the growth under 50 concurrent clients without stopping it
    (`python -m bench.load`; numbers in docs/measurements.md). A no-op where libc is not glibc."""
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


def resume_collection() -> None:
    """End the pause a process's entry point made for its imports (app.py, train/__init__.py):
    what they made lives as long as the process, so it is frozen out of later collections, and
    collection is back on. Nothing happens where collection was never paused."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def freeze_heap(loaded: Callable[[], frozenset[str]], poll_s: float = 2.0) -> threading.Event:
    """End the import pause (`resume_collection`), then freeze the heap again whenever `loaded`
    names a model not seen before.

    A full collection walks every tracked object, and the server's are millions (Gradio, torch,
    transformers, the models' modules), all living as long as the process. While it runs, no
    request moves: under 50 visitors one round had 7 full collections, the longest 0.72-1.14 s
    (`/status` p95 4.4 s that round; docs/measurements.md). Frozen objects are never freed,
    so this is done only when what is alive is meant to stay: after launch and after a load.

    Returns:
        An event that stops the watching when set.
    """
    resume_collection()
    stop = threading.Event()

    def watch() -> None:
        seen = loaded()
        while not stop.wait(poll_s):
            now = loaded()
            if now - seen:
                gc.freeze()
            seen = now

    threading.Thread(target=watch, name="gc freeze", daemon=True).start()
    return stop
