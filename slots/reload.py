"""Reload (the Models tab's button, `/reload`) for a slot, safe for any visitor of a public Space to
press:
- a slot without a model tries its sources again;
- a slot whose model came from a local folder that changed since (a checkpoint trained again, or
  one that now comes before the hub default), or from a hub branch that has moved to a newer
  commit (an unpinned `$ASR_MODEL=owner/name`: one API call asks), loads the new model beside the
  one serving and swaps it in when it is ready, keeping the old one (and saying why) if the new
  fails;
- anything else is left as it is: a load under way is not started twice, and a model pinned to a
  commit (as the defaults are) never changes.

`Reloading` is a part of `slots.slot.Slot` (its base class): it reads and sets the slot's state
under the slot's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Self

from core import settings
from slots import hub
from slots.errors import SlotUnavailable, plain_reasons
from slots.sources import LoadedModel
from slots.table import SlotSpec

logger = logging.getLogger("slots.slot")


class HubCheck:
    """What a slot's Reload is doing while it asks the hub for a branch's newest commit (in the
    place of the new model's slot: `Reloading.swapping` and `wait_for_swap` read its state)."""

    state = "resolving"  # a request never waits for the hub

    def describe_state(self) -> str:
        return "asking the hub for a newer commit"


class Reloading:
    """Reload, for `Slot`: a newer model loads in a slot of its own (`_swap`) beside the one
    serving and takes its place when ready."""

    # The slot's own state (`Slot.__init__`), read and set under `_cond`.
    spec: SlotSpec
    checkpoints: Path
    launched: float
    _cond: threading.Condition
    _generation: int
    _state: str
    _loaded: LoadedModel | None
    _failure: SlotUnavailable | None
    _attempts: list[dict[str, str]]
    _retry_origins: tuple | None
    _ready_after_s: float | None
    _swap: Self | HubCheck | None  # a slot like this one
    _swap_warning: str | None

    def _fresh(self) -> Self:
        """A new slot like this one, to load a newer model in while this one serves."""
        fresh = type(self)(self.spec, self.checkpoints, self.launched)
        fresh.start()
        return fresh

    def refresh(self) -> str:
        """Reload this slot as this module's docstring says; returns what it did, in a few words."""
        if settings.ZERO_GPU:
            return "on ZeroGPU the models are placed when the Space starts: restart the Space to load new ones"
        with self._cond:
            if self._swap is not None or self._state not in ("loaded", "unavailable", "retrying", "not loaded"):
                return "a load is under way"
            loaded = self._loaded
            if loaded is None and self._state == "retrying" and self.origins() == self._retry_origins:
                # The hub failed and nothing else changed: its back-off stands (a visitor's Reload
                # would otherwise restart it, asking the hub every few seconds).
                return f"{self.describe_state()}: nothing changed since the hub last failed"
            if loaded is None:  # nothing to keep serving: try every source again, now
                self.reset()
                self.start()
                return "loading"
            if self.origins()[: len(loaded.origin)] != loaded.origin:
                self._swap = self._fresh()
                self._in_thread(self._swap_in, self._swap, self._generation, None)
                return "loading the new model; the current one serves meanwhile"
            remote = hub.parse_source(loaded.source) if loaded.commit else None
            if remote is None or hub.is_pinned(remote) or hub.offline():
                return "unchanged"
            self._swap = HubCheck()
            self._in_thread(self._check_hub, remote, loaded, self._generation)
            return f"asking the hub whether {remote.repo_id} has a newer commit"

    def _check_hub(self, remote: hub.HubSource, loaded: LoadedModel, generation: int) -> None:
        """Reload of a model read from a hub branch (an unpinned id): load the branch's newest
        commit beside the current model if it moved; otherwise nothing (one API call)."""
        warning = None
        try:
            latest = hub.with_deadline(lambda: hub.latest_commit(remote), hub.Progress(), "newest commit")
        except Exception as err:  # noqa: BLE001 - the current model serves on; the card says why
            latest = None
            reason = hub.plain_reason(err) or "the hub did not answer as expected"
            warning = f"the hub could not say whether there is a newer model ({reason}); the one loaded before serves"
            logger.warning("slot %s: asking the hub for %s's newest commit failed: %s", self.spec.name, remote, err)
        with self._cond:
            if generation != self._generation:
                return
            if latest is None or latest == loaded.commit:
                self._swap, self._swap_warning = None, warning
                self._cond.notify_all()
                return
            fresh = self._swap = self._fresh()
        logger.warning("slot %s: %s moved from %s to %s; loading it", self.spec.name, remote, loaded.commit, latest)
        self._swap_in(fresh, generation, loaded.source)

    def _swap_in(self, fresh: Self, generation: int, source: str | None) -> None:
        """Load `fresh` to its end (a hub that fails is not retried: the current model serves on)
        and put its model in place of the current one, or say why not. With `source`, only a
        model from that source replaces it (a newer hub commit that fails to load must not hand
        the slot to the next source in the order)."""
        with fresh._cond:
            while fresh._state not in ("loaded", "unavailable", "retrying"):
                fresh._cond.wait(1.0)
        new = fresh.peek()
        attempts = fresh._failure.attempts if fresh._failure is not None else list(fresh._attempts)
        if new is not None and source is not None and new.source != source:
            attempts, new = new.skipped, None
        if fresh.state == "retrying":
            fresh.reset()  # ends its retry loop
        with self._cond:
            if generation != self._generation:  # reset meanwhile: whatever it loads replaces both
                return
            self._swap = None
            if new is None:
                reasons = plain_reasons(attempts)
                self._swap_warning = (
                    f"a newer model could not be loaded ({reasons}); the one loaded before still serves"
                )
                logger.warning("slot %s: reload failed, keeping the current model: %s", self.spec.name, reasons)
            else:
                self._loaded, self._swap_warning = new, None
                self._ready_after_s = fresh.ready_after_s
                logger.warning("slot %s: now serving %s (reloaded)", self.spec.name, new.source)
            self._cond.notify_all()

    def wait_for_swap(self, deadline: float) -> None:
        """Wait (until `deadline`, monotonic) until a Reload's new model is in place, unless it
        comes from the hub (no request waits through a download)."""
        with self._cond:
            while (
                (fresh := self._swap) is not None
                and fresh.state not in ("resolving", "downloading")
                and time.monotonic() < deadline
            ):
                self._cond.wait(timeout=max(0.0, min(0.2, deadline - time.monotonic())))

    @property
    def swapping(self) -> str | None:
        """The state of a Reload's new model while it loads beside the current one, else None."""
        fresh = self._swap
        return fresh.describe_state() if fresh is not None else None
