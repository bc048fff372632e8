"""The serving process's heap: frozen out of full collections at launch and after each load."""

from __future__ import annotations

import gc
import time

from core import memory
from scripts.tiny_models import build_kws
from slots.registry import Registry


def _wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def _frozen(obj) -> bool:
    """Whether `obj` is in the permanent generation (`gc.freeze`): in none of the collected three.
    Asked of the object itself, not of `gc.get_freeze_count()`, which also falls whenever any frozen
    object is freed (other tests' server threads free many while this runs)."""
    return all(o is not obj for generation in range(3) for o in gc.get_objects(generation))


def test_the_heap_is_frozen_at_launch_and_again_when_a_new_model_is_loaded():
    loaded = {"names": frozenset()}
    before_launch = [0]  # made before the app answers
    gc.disable()  # as app.py does before its imports
    stop = memory.freeze_heap(lambda: loaded["names"], poll_s=0.02)
    try:
        assert gc.isenabled()
        assert gc.get_freeze_count() > 10_000  # this process's modules, tests and all
        assert _frozen(before_launch)
        kept = [[i] for i in range(5_000)]  # a model's objects, made after launch
        time.sleep(0.2)
        assert not _frozen(kept[-1])  # nothing new loaded: nothing frozen
        loaded["names"] = frozenset({"kws"})
        assert _wait_for(lambda: _frozen(kept[-1]))
        later = [0]
        loaded["names"] = frozenset()  # a reload drops it: nothing to freeze
        time.sleep(0.2)
        assert not _frozen(later)
    finally:
        stop.set()
        gc.unfreeze()
        gc.enable()


def test_the_registry_names_the_slots_holding_a_model(tmp_path):
    build_kws(tmp_path / "kws")
    registry = Registry(tmp_path)
    assert registry.loaded() == frozenset()
    registry["kws"].get()
    assert registry.loaded() == frozenset({"kws"})
    registry["kws"].reset()
    assert registry.loaded() == frozenset()
