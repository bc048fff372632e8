"""Timing a call the same way in every benchmark."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def p50(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of `repeat` calls of `fn`, after one untimed call (imports, caches)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
