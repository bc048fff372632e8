"""Model slots: which model each tab serves, where it comes from, and loading it once, in the
background.

A slot is resolved in this order, the first that loads wins:
  1. the slot's environment variable (a local folder, a hub id, or `hub-id@revision`),
  2. `<checkpoints>/<slot>/` written by `train/`,
  3. the public fine-tuned hub checkpoint named in `SLOTS`, pinned to a commit,
and is otherwise *unavailable*: the app keeps serving and the tab says what was tried.

Each slot loads in a thread of its own. A request waits for a load only while it reads local
files; while a hub download runs it gets the slot's state ("downloading 42 %") at once. A hub
that times out or fails on its side leaves the slot *retrying*: it tries again after a backoff,
so a transient error at boot heals itself.

*Reload* (the Models tab's button, `/reload`) is safe for any visitor of a public Space to press:
what it loads again, and how the current model serves meanwhile, is in `core/slot_reload.py`.

Two views of a slot: `status()` is what a visitor may see (its state, where the model comes from
as a label such as "checkpoint asr" or a hub id, a one-line reason; never a server path), and
`status(detail=True)` adds what the operator needs (folders, every attempt's full error), as the
server log does. What a failed slot says is in `core/slot_errors.py`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from core import hub, settings
from core.inference import STEP, lower_priority
from core.slot_errors import SlotNotReady, SlotUnavailable, plain_attempts, plain_reasons
from core.slot_reload import HubCheck, Reloading
from core.slot_sources import LoadedModel, Phase, failed_attempt, folder_fingerprint, load_source
from core.slot_table import SLOTS, SlotSpec

# Seconds a request may wait for a slot that is reading its model from local disk.
LOAD_WAIT_S = settings.number("LOAD_WAIT_S", 120.0)
# First wait after a transient hub failure; it doubles up to RETRY_MAX_S.
RETRY_S = settings.number("HUB_RETRY_S", 30.0)
RETRY_MAX_S = 600.0
LOCAL_PHASES = ("starting", "loading")  # a request may wait through these, never through a download

logger = logging.getLogger(__name__)


class Slot(Reloading):
    """One slot: resolves and loads its model once, in a background thread."""

    def __init__(self, spec: SlotSpec, checkpoints: Path, launched: float | None = None):
        self.spec, self.checkpoints = spec, Path(checkpoints)
        self.launched = time.monotonic() if launched is None else launched
        self._cond = threading.Condition()
        self._generation = 0  # bumped by reset(): a stale loader's result is dropped
        self._wake = threading.Event()  # cuts a retry wait short (reset)
        self._swap: Slot | HubCheck | None = None  # Reload: a newer model loading beside the one serving
        self._swap_warning: str | None = None  # why the last such load failed
        self._clear()

    def _clear(self) -> None:
        self._state = "not loaded"
        self._loaded: LoadedModel | None = None
        self._failure: SlotUnavailable | None = None
        self._attempts: list[dict[str, str]] = []
        self._progress: hub.Progress | None = None
        self._retry_at: float | None = None
        self._retries = 0
        self._retry_origins: tuple | None = None  # the sources as they were when the hub last failed
        self._ready_after_s: float | None = None

    def candidates(self) -> list[tuple[str, str]]:
        """(label, source) pairs in resolution order."""
        found = []
        if os.environ.get(self.spec.env_var, "").strip():
            found.append((f"${self.spec.env_var}", os.environ[self.spec.env_var].strip()))
        found.append(("checkpoint", str(self.checkpoints / self.spec.name)))
        found.append(("hub default", self.spec.hub_default))
        return found

    def origins(self) -> tuple:
        """Each candidate with its folder's fingerprint, in resolution order."""
        return tuple((label, source, folder_fingerprint(source)) for label, source in self.candidates())

    # ---- what requests call ---------------------------------------------------------------------

    def start(self) -> None:
        """Begin loading in the background, unless a load runs, is done or waits to retry."""
        with self._cond:
            if self._state == "not loaded":
                self._set("starting")
                threading.Thread(
                    target=self._run, args=(self._generation,), name=f"slot {self.spec.name}", daemon=True
                ).start()

    def get(self, wait_s: float | None = None) -> LoadedModel:
        """The loaded model. Starts a load if none ran; waits while it reads local files, never
        through a download. Raises `SlotUnavailable` (`SlotNotReady` while fetching/retrying)."""
        self.start()
        deadline = time.monotonic() + (LOAD_WAIT_S if wait_s is None else wait_s)
        with self._cond:
            while self._state in LOCAL_PHASES and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            if self._loaded is not None:
                return self._loaded
            if self._failure is not None:
                raise self._failure
            raise SlotNotReady(self.spec.name, list(self._attempts), self.describe_state())

    def try_get(self, wait_s: float | None = None) -> LoadedModel | None:
        """`get`, with None where it would raise (no model, or one still on its way)."""
        try:
            return self.get(wait_s)
        except SlotUnavailable:
            return None

    def reset(self) -> None:
        """Forget the model, failure or running load, so the next `get`/`start` resolves again."""
        with self._cond:
            self._generation += 1
            self._wake.set()
            self._wake = threading.Event()
            self._clear()
            self._swap, self._swap_warning = None, None  # a Reload's load under way: dropped when it ends
            self._cond.notify_all()

    def peek(self) -> LoadedModel | None:
        return self._loaded

    @property
    def state(self) -> str:
        return self._state

    @property
    def ready_after_s(self) -> float | None:
        """Seconds from launch until the model was ready; None until it is."""
        return self._ready_after_s

    def describe_state(self) -> str:
        """The state in a few words: 'downloading 42 %', 'retrying in 25 s', ..."""
        state = self._state
        if state == "downloading" and self._progress and self._progress.fraction is not None:
            return f"downloading {round(self._progress.fraction * 100)} %"
        if state == "retrying" and self._retry_at is not None:
            return f"retrying in {max(0, self._retry_at - time.monotonic()):.0f} s"
        return state

    def status(self, detail: bool = False) -> dict[str, Any]:
        """State without triggering a load: 'not loaded', 'starting', 'resolving', 'downloading',
        'loading', 'loaded', 'retrying' or 'unavailable'; where the model comes from, and why a
        source failed, in plain words. `detail` adds server paths and every attempt's full error
        (for the operator; never shown to a visitor)."""
        spec = self.spec
        info: dict[str, Any] = {
            "slot": spec.name,
            "title": spec.title,
            "env_var": spec.env_var,
            "train_command": spec.train_command,
            "hub_default": spec.hub_default,
            "state": self._state,
            "detail": self.describe_state(),
            "source": None,
        }
        if self._progress is not None and self._state == "downloading":
            info["progress"] = self._progress.fraction
            info["downloaded_bytes"] = self._progress.done
            info["download_bytes"] = self._progress.total
        attempts = self._failure.attempts if self._failure is not None else self._attempts
        if self._loaded is not None:
            m = self._loaded
            attempts = m.skipped
            info.update(
                source=m.label,
                parameters=m.parameters,
                size_bytes=m.size_bytes,
                device=m.device,
                precision=m.precision,
                load_time_s=round(m.load_time_s, 3),
                ready_after_s=self.ready_after_s,
                warnings=[*m.warnings, *([self._swap_warning] if self._swap_warning else [])],
                skipped=plain_attempts(m.skipped),
            )
            if detail:
                info.update(path=str(m.path), configured=m.source)
        if attempts and self._loaded is None:
            info["reason"] = plain_reasons(attempts)
            info["tried"] = plain_attempts(attempts)
        if detail and attempts:
            info["attempts"] = [{"source": a["source"], "error": a["error"]} for a in attempts]
        if (swapping := self.swapping) is not None:
            info["reloading"] = swapping
        if self._state == "retrying":
            info["retry_in_s"] = round(max(0.0, (self._retry_at or 0) - time.monotonic()), 1)
        return info

    # ---- the loader thread --------------------------------------------------------------------

    def _set(self, state: str, generation: int | None = None) -> bool:
        """Move to `state` (caller may hold the lock); False if a reset made this loader stale."""
        with self._cond:
            if generation is not None and generation != self._generation:
                return False
            self._state = state
            self._cond.notify_all()
            return True

    def _phase(self, generation: int) -> Phase:
        """How a loader of `generation` reports its phase (nothing, once a reset made it stale)."""

        def phase(state: str, progress: hub.Progress | None = None) -> None:
            if progress is not None:
                with self._cond:
                    self._progress = progress
            self._set(state, generation)

        return phase

    def _run(self, generation: int) -> None:
        # A load (reading, exporting, quantizing) yields the CPU to the threads answering requests,
        # and the model's worker threads, started from here, keep that priority.
        lower_priority()
        while True:
            attempts: list[dict[str, str]] = []
            transient = False
            origins = self.origins()  # before reading: files changed during the load count as changed
            for index, (label, source, _) in enumerate(origins):
                start = time.perf_counter()
                try:
                    loaded = load_source(self.spec, label, source, self._phase(generation), attempts)
                except Exception as err:  # noqa: BLE001 - every failure is reported, none is fatal
                    attempts.append(failed_attempt(self.spec, label, source, err))
                    transient = transient or hub.is_transient(err)
                    with self._cond:
                        if generation != self._generation:
                            return
                        self._attempts = list(attempts)
                    continue
                loaded.load_time_s = time.perf_counter() - start
                loaded.origin = origins[: index + 1]
                with self._cond:
                    if generation != self._generation:
                        return
                    self._loaded = loaded
                    self._ready_after_s = round(time.monotonic() - self.launched, 2)
                    self._set("loaded")
                return
            with self._cond:
                if generation != self._generation:
                    return
                if not transient:
                    self._failure = SlotUnavailable(self.spec.name, attempts)
                    self._set("unavailable")
                    return
                delay = min(RETRY_MAX_S, RETRY_S * 2**self._retries)
                self._retries += 1
                self._retry_origins = origins
                self._retry_at = time.monotonic() + delay
                self._set("retrying")
                wake = self._wake
            wake.wait(delay)
            if not self._set("starting", generation):
                return


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
        """App-wide: whether slots preload, seconds from launch until all were ready, and how many
        nice steps model work runs below the server (`core.inference`; 0: same priority)."""
        ready = [slot.ready_after_s for slot in self.slots.values()]
        return {
            "preload": self.preloading,
            "model_nice": STEP,
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
