"""One model slot: which model a tab serves, where it comes from, loading it once in the
background, and Reload.

A slot is resolved in this order, the first that loads wins:
  1. the slot's environment variable (a local folder, a hub id, or `hub-id@revision`),
  2. `<checkpoints>/<slot>/` written by `train/`,
  3. the public fine-tuned hub checkpoint named in `SLOTS`, pinned to a commit,
and is otherwise *unavailable*: the app keeps serving and the tab says what was tried.

Each slot loads in a thread of its own. A request waits for a load only while it reads local
files; while a hub download runs it gets the slot's state ("downloading 42 %") at once. A hub
that times out or fails on its side leaves the slot *retrying*: it tries again after a backoff,
so a transient error at boot heals itself.

*Reload* (the Models tab's button, `/reload`) is in `slots/reload.py`, a base class of `Slot`.

Two views of a slot: `status()` is what a visitor may see (its state, where the model comes from
as a label such as "checkpoint asr" or a hub id, a one-line reason; never a server path), and
`status(detail=True)` adds what the operator needs (folders, every attempt's full error), as the
server log does. What a failed slot says is in `slots/errors.py`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from pathlib import Path
from typing import Any

from core import settings
from core.inference import lower_priority
from slots import hub
from slots.errors import SlotNotReady, SlotUnavailable, plain_attempts, plain_reasons
from slots.reload import HubCheck, Reloading
from slots.sources import LoadedModel, Phase, failed_attempt, folder_fingerprint, load_source
from slots.table import SlotSpec

# Seconds a request may wait for a slot that is reading its model from local disk.
LOAD_WAIT_S = settings.LOAD_WAIT_S
# First wait after a transient hub failure; it doubles up to RETRY_MAX_S: a retry is one listing
# request, so a slot need not sit empty for long after the hub is back.
RETRY_S = settings.HUB_RETRY_S
RETRY_MAX_S = 180.0


def retry_delay(retries: int, first: float = RETRY_S, most: float = RETRY_MAX_S) -> float:
    """Seconds before the next try after `retries` transient failures in a row."""
    return min(most, first * 2**retries)


# Exports under way (`Slot._upgrade`): a process that exits while one runs PyTorch or ONNX Runtime
# in its thread is aborted by their thread pools ("terminate called without an active exception");
# at exit they get this long, all together, to finish.
_UPGRADING: set[threading.Thread] = set()
EXIT_WAIT_S = 60.0


@atexit.register
def _let_exports_finish() -> None:
    deadline = time.monotonic() + EXIT_WAIT_S
    for thread in list(_UPGRADING):
        thread.join(max(0.0, deadline - time.monotonic()))


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
        self.last_used = 0.0  # monotonic time of the last request for its model (`Registry` unloads the oldest)
        self.unloaded = False  # unloaded by `Registry` to stay within MAX_LOADED_MODELS; loads on its next use
        self.on_loaded: Any = None  # called with this slot when a model is in place (`Registry` bounds them)
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
        """(label, source) pairs in resolution order (a candidate of `slots.candidates`: its one)."""
        spec, found = self.spec, []
        if spec.env_var and (source := settings.model_source(spec.env_var)):
            found.append((f"${spec.env_var}", source))
        if spec.source:
            found.append((f"${settings.CANDIDATE_VARIABLES[spec.task]}", spec.source))
        else:
            found.append(("checkpoint", str(self.checkpoints / spec.name)))
        if spec.hub_id:
            found.append(("hub default", spec.hub_default))
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
                    target=self._in_background, args=(self._generation,), name=f"slot {self.spec.name}", daemon=True
                ).start()

    def load_here(self, tries: int = 3) -> None:
        """Load in the calling thread, giving up after `tries` transient hub failures in a row:
        on ZeroGPU the main thread places every model before the app launches (`serving.gpu`)."""
        with self._cond:
            if self._state != "not loaded":
                return
            self._set("starting")
        self._run(self._generation, tries)

    def get(self, wait_s: float | None = None, use: bool = True) -> LoadedModel:
        """The loaded model. Starts a load if none ran; waits while it reads local files, never
        through a download. Raises `SlotUnavailable` (`SlotNotReady` while fetching/retrying).
        `use`: a request's (it counts as the model's latest use), not a status read's."""
        if use:
            self.last_used, self.unloaded = time.monotonic(), False
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

    def try_get(self, wait_s: float | None = None, use: bool = True) -> LoadedModel | None:
        """`get`, with None where it would raise (no model, or one still on its way)."""
        try:
            return self.get(wait_s, use)
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
        if state == "not loaded" and self.unloaded:
            return "unloaded to make room for other models; loads again when next used"
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
            "task": spec.task,
            "default": spec.default,
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
            if m.upgrade is not None:
                info["upgrading"] = "int8 export under way; fp32 serves meanwhile"
            if detail:
                info.update(path=str(m.path), configured=m.source, int8_export=m.export)
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

    def _in_background(self, generation: int) -> None:
        # A load (reading, exporting, quantizing) yields the CPU to the threads answering requests,
        # and the model's worker threads, started from here, keep that priority.
        lower_priority()
        self._run(generation)

    def _run(self, generation: int, tries: int | None = None) -> None:
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
                if self.on_loaded is not None:  # room for it first: a request sees it once the others are out
                    self.on_loaded(self)
                with self._cond:
                    if generation != self._generation:
                        return
                    self._loaded = loaded
                    self._ready_after_s = round(time.monotonic() - self.launched, 2)
                    self._set("loaded")
                if loaded.upgrade is not None:
                    self._in_thread(self._upgrade, loaded)
                return
            with self._cond:
                if generation != self._generation:
                    return
                if not transient or (tries is not None and self._retries + 1 >= tries):
                    self._failure = SlotUnavailable(self.spec.name, attempts)
                    self._set("unavailable")
                    return
                delay = retry_delay(self._retries)
                self._retries += 1
                self._retry_origins = origins
                self._retry_at = time.monotonic() + delay
                self._set("retrying")
                wake = self._wake
            wake.wait(delay)
            if not self._set("starting", generation):
                return

    def _upgrade(self, loaded: LoadedModel) -> None:
        """The int8 export after the fp32 model serves (`slots.placement`), swapped in when done."""
        lower_priority()
        _UPGRADING.add(threading.current_thread())
        try:
            loaded.upgrade(loaded)
        finally:
            _UPGRADING.discard(threading.current_thread())
            with self._cond:
                loaded.upgrade = None
                self._cond.notify_all()

    def settled(self, wait_s: float | None = None) -> LoadedModel:
        """`get`, then wait (up to `wait_s`) for an int8 export under way to take over, so the
        model returned is the one that will serve from now on (benchmarks, tests)."""
        loaded = self.get(wait_s)
        deadline = time.monotonic() + (LOAD_WAIT_S if wait_s is None else wait_s)
        with self._cond:
            while loaded.upgrade is not None and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
        return loaded

    def _in_thread(self, target: Any, *args: Any) -> None:
        name = f"slot {self.spec.name} {target.__name__}"
        threading.Thread(target=target, args=args, name=name, daemon=True).start()
