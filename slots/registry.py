"""All slots of one app instance: preloaded together, their status, Reload for every slot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from core import settings
from core.inference import STEP
from slots.slot import LOAD_WAIT_S, Slot
from slots.table import SLOTS


class Registry:
    """All slots of one app instance, bound to its checkpoints folder."""

    def __init__(self, checkpoints: Path):
        self.checkpoints = Path(checkpoints)
        self.launched = time.monotonic()
        self.preloading = False
        self.slots = {name: Slot(spec, self.checkpoints, self.launched) for name, spec in SLOTS.items()}

    def __getitem__(self, name: str) -> Slot:
        return self.slots[name]

    def loaded(self) -> frozenset[str]:
        """The slots holding a model now."""
        return frozenset(name for name, slot in self.slots.items() if slot.state == "loaded")

    def preload(self) -> None:
        """Start every slot's load in the background (warm start); returns at once."""
        self.preloading = True
        for slot in self.slots.values():
            slot.start()

    def load_here(self) -> None:
        """Load every slot in the calling thread, one after the other (ZeroGPU: `Slot.load_here`)."""
        for slot in self.slots.values():
            slot.load_here()

    def status(self, load: bool = True, wait: bool = True, detail: bool = False) -> dict[str, dict[str, Any]]:
        """Per-slot status (`Slot.status`); with `load`, starts every slot's load, and with `wait`
        also waits for local reads (never for a download)."""
        if load:
            for slot in self.slots.values():
                slot.start()
        if load and wait:
            for slot in self.slots.values():
                slot.try_get()
        return {name: slot.status(detail) for name, slot in self.slots.items()}

    def summary(self) -> dict[str, Any]:
        """App-wide: whether slots preload, seconds from launch until all were ready, how many nice
        steps model work runs below the server (`core.inference`; 0: same priority), and whether
        this is a ZeroGPU Space."""
        ready = [slot.ready_after_s for slot in self.slots.values()]
        return {
            "preload": self.preloading,
            "model_nice": STEP,
            # On ZeroGPU each request's model work borrows a GPU (serving/gpu.py); Live runs on the CPU.
            "zero_gpu": settings.ZERO_GPU,
            "all_ready_after_s": max(ready) if all(r is not None for r in ready) else None,
            "up_s": round(time.monotonic() - self.launched, 1),
        }

    def reload(self) -> dict[str, dict[str, Any]]:
        """Reload every slot (`Slot.refresh`), wait for what reads local files, and return the
        status, with what Reload did to each slot under "reload"."""
        done = {name: slot.refresh() for name, slot in self.slots.items()}
        deadline = time.monotonic() + LOAD_WAIT_S
        for slot in self.slots.values():
            slot.wait_for_swap(deadline)
        report = self.status()
        for name, what in done.items():
            report[name]["reload"] = what
        return report
