"""An operator's numbers from the environment (`AUDIO_MAX_SECONDS`, `LIVE_PLACES`, ...).

A value that is not a number, or is out of range, is logged and the default served: a typo in a
Space's settings must not keep the app from starting."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

logger = logging.getLogger(__name__)


def number(name: str, default: float, kind: Callable[[str], float] = float, least: float = 0) -> float:
    """`$name` read with `kind` (`int` or `float`); `default` where it is unset, empty, not a
    number, NaN or below `least`."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        found = kind(value)
    except ValueError:
        found = None
    if found is None or found != found or found < least:  # (found != found: NaN)
        logger.warning("%s=%r is not a number >= %g; using %g", name, value, least, default)
        return default
    return found
