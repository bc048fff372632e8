"""Running the app on this machine for tests and benchmarks: the repository's folder, a free
port, and waiting until every model slot has settled."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from slots.table import SLOTS

ROOT = Path(__file__).resolve().parents[1]
SETTLED = ("loaded", "unavailable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settled_status(client, timeout_s: float = 60) -> dict:
    """`/status` once every slot has finished loading or given up (the endpoint never waits)."""
    start = time.monotonic()
    while True:
        status = client.predict(api_name="/status")
        if all(status[name]["state"] in SETTLED for name in SLOTS) or time.monotonic() - start > timeout_s:
            return status
        time.sleep(0.3)
