"""All slots of one app instance: the default slots (preloaded together) and every task's other
candidates (`slots.candidates`, each loaded on first use), their status, Reload for every slot,
and a bound on how many models are loaded at once (the least recently used beyond it unloads)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from core import settings
from core.errors import InputError
from core.inference import STEP
from slots import candidates
from slots.slot import LOAD_WAIT_S, Slot
from slots.table import SLOTS, TASK_TITLES

logger = logging.getLogger(__name__)


class Registry:
    """All slots of one app instance, bound to its checkpoints folder."""

    def __init__(self, checkpoints: Path, max_loaded: int | None = None):
        self.checkpoints = Path(checkpoints)
        self.launched = time.monotonic()
        self.preloading = False
        # Models loaded at once (0: no bound); ZeroGPU places every model at start and keeps them.
        self.max_loaded = settings.MAX_LOADED_MODELS if max_loaded is None else max_loaded
        self.unloads = 0  # models unloaded to stay within `max_loaded`, since launch
        self._lock = threading.Lock()
        self._discovered = False
        # Replaced whole, never changed in place: readers iterate it without the lock.
        self.slots: dict[str, Slot] = {name: self._slot(spec) for name, spec in SLOTS.items()}
        self.discover()

    def __getitem__(self, name: str) -> Slot:
        return self.slots[name]

    def _slot(self, spec: Any) -> Slot:
        slot = Slot(spec, self.checkpoints, self.launched)
        slot.on_loaded = self._bound
        return slot

    # ---- candidates --------------------------------------------------------------------------------

    def discover(self) -> None:
        """Add a slot for each candidate found now; drop a candidate that is gone (its folder
        removed, its variable changed) unless it holds a model. On ZeroGPU only once, at start:
        every model is placed on the GPU before the first request (`load_here`)."""
        if settings.ZERO_GPU and self._discovered:
            return
        self._discovered = True
        found = {
            spec.name: spec for task in candidates.KIND_OF_TASK for spec in candidates.discover(task, self.checkpoints)
        }
        with self._lock:
            slots = {
                name: slot
                for name, slot in self.slots.items()
                if slot.spec.default or name in found or slot.peek() is not None
            }
            for name, spec in found.items():
                if name not in slots:
                    slots[name] = self._slot(spec)
                elif slots[name].spec != spec:  # a run trained again: its label, not its model, changes here
                    slots[name].spec = spec
            self.slots = slots

    def candidates(self, task: str) -> list[Slot]:
        """The task's slots, its defaults first, looked for again now."""
        self.discover()
        return [slot for slot in self.slots.values() if slot.spec.task == task]

    def candidate_names(self) -> dict[str, list[str]]:
        """Per task, the names of its candidates as last looked for (what `/status` lists under
        "candidates", after `status` looked)."""
        return {task: [s.spec.name for s in self.slots.values() if s.spec.task == task] for task in TASK_TITLES}

    def pair(self, task: str, a: str, b: str) -> tuple[Slot, Slot]:
        """Two different candidates of `task`, by name; `InputError` with a sentence for a name
        that is not one, a model of another task, or the same model twice."""
        offered = {slot.spec.name: slot for slot in self.candidates(task)}
        what = TASK_TITLES[task]
        chosen = []
        for name in (a, b):
            name = (name or "").strip()
            if not name:
                raise InputError(f"Choose two {what} models to compare.")
            if name not in offered:
                other = self.slots.get(name)
                if other is not None:
                    raise InputError(
                        f"“{name}” is a {TASK_TITLES[other.spec.task]} model: it cannot be compared on {what}."
                    )
                raise InputError(f"There is no {what} model called “{name[:80]}”. The choices: {', '.join(offered)}.")
            chosen.append(offered[name])
        if chosen[0] is chosen[1]:
            raise InputError(f"Choose two different models: “{chosen[0].spec.name}” was chosen twice.")
        return chosen[0], chosen[1]

    # ---- loading -----------------------------------------------------------------------------------

    def defaults(self) -> list[Slot]:
        return [slot for slot in self.slots.values() if slot.spec.default]

    def loaded(self) -> frozenset[str]:
        """The slots holding a model now."""
        return frozenset(name for name, slot in self.slots.items() if slot.state == "loaded")

    def preload(self) -> None:
        """Start every default slot's load in the background (warm start); returns at once. The
        other candidates load on first use."""
        self.preloading = True
        self._start_while_room(self.defaults())

    def load_here(self) -> None:
        """Load every slot, candidates too, in the calling thread, one after the other: on ZeroGPU
        the main thread places every model before the app launches (`Slot.load_here`)."""
        for slot in list(self.slots.values()):
            slot.load_here()

    def _start_while_room(self, slots: list[Slot]) -> list[Slot]:
        """Start the loads of `slots` that fit within `max_loaded` without unloading a model (a
        preload or a status poll must not push out what visitors use); returns those started or
        already holding a model."""
        busy = sum(slot.state not in ("not loaded", "unavailable") for slot in self.slots.values())
        started = []
        for slot in slots:
            if slot.state == "not loaded":
                if slot.unloaded or (self.max_loaded > 0 and not settings.ZERO_GPU and busy >= self.max_loaded):
                    continue
                busy += 1
                slot.start()
            started.append(slot)
        return started

    def _bound(self, just: Slot) -> None:
        """A model was put in place: unload the least recently used others beyond `max_loaded`.
        A request still running on an unloaded model finishes with it; the next one loads it again."""
        if settings.ZERO_GPU or self.max_loaded <= 0:
            return
        with self._lock:
            others = [slot for slot in self.slots.values() if slot is not just and slot.peek() is not None]
            excess = len(others) + 1 - self.max_loaded
            for slot in sorted(others, key=lambda s: s.last_used)[: max(0, excess)]:
                logger.warning("unloading %s, the least recently used model, to load %s (MAX_LOADED_MODELS=%d)",
                               slot.spec.name, just.spec.name, self.max_loaded)  # fmt: skip
                slot.reset()
                slot.unloaded = True
                self.unloads += 1

    def status(self, load: bool = True, wait: bool = True, detail: bool = False) -> dict[str, dict[str, Any]]:
        """Per-slot status (`Slot.status`), every candidate's too; with `load`, starts each default
        slot's load where it fits without unloading a model (one unloaded to make room comes
        back only for a request), and with `wait` also waits for local reads (never for a
        download)."""
        self.discover()
        slots = self.slots
        if load:
            starting = self._start_while_room(self.defaults())
            for slot in starting if wait else ():
                slot.try_get(use=False)
        return {name: slot.status(detail) for name, slot in slots.items()}

    def summary(self) -> dict[str, Any]:
        """App-wide: whether slots preload, seconds from launch until the default slots were ready,
        how many nice steps model work runs below the server (`core.inference`; 0: same priority),
        whether this is a ZeroGPU Space, each task's candidates, and the bound on loaded models."""
        ready = [slot.ready_after_s for slot in self.defaults()]
        return {
            "preload": self.preloading,
            "model_nice": STEP,
            # On ZeroGPU each request's model work borrows a GPU (serving/gpu.py); Live runs on the CPU.
            "zero_gpu": settings.ZERO_GPU,
            "all_ready_after_s": max(ready) if all(r is not None for r in ready) else None,
            "up_s": round(time.monotonic() - self.launched, 1),
            "candidates": self.candidate_names(),
            "max_loaded_models": None if settings.ZERO_GPU or self.max_loaded <= 0 else self.max_loaded,
            "loaded_models": len(self.loaded()),
            "unloads": self.unloads,
        }

    def reload(self) -> dict[str, dict[str, Any]]:
        """Reload every slot (`Slot.refresh`) that holds or was meant to hold a model, wait for
        what reads local files, and return the status, with what Reload did to each slot under
        "reload". A candidate never used stays unloaded."""
        self.discover()
        slots = self.slots
        done = {
            name: slot.refresh() if slot.spec.default or slot.state != "not loaded" else "loads when first used"
            for name, slot in slots.items()
        }
        deadline = time.monotonic() + LOAD_WAIT_S
        for slot in slots.values():
            slot.wait_for_swap(deadline)
        report = self.status()
        for name, what in done.items():
            if name in report:
                report[name]["reload"] = what
        return report
