"""Model work runs below the priority of the threads that answer requests (core/inference.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from core import inference
from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_thread(fn) -> dict:
    seen: dict = {}

    def body() -> None:
        seen["before"] = _nice()
        seen["result"] = fn()
        seen["after"] = _nice()
        child = threading.Thread(target=lambda: seen.setdefault("child", _nice()))
        child.start()
        child.join()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return seen


def test_a_thread_running_model_work_yields_and_its_children_inherit_it():
    @inference.model_work
    def forward(x: int) -> int:
        import torch

        assert torch.is_inference_mode_enabled()
        return x + 1

    target = inference._TARGET
    worked = _in_thread(lambda: forward(1))
    assert worked["result"] == 2
    assert worked["after"] == target and worked["child"] == target
    assert target > worked["before"] or target == 19
    idle = _in_thread(lambda: None)  # a request thread that runs no model keeps its priority
    assert idle["after"] == idle["before"] < target or idle["before"] == 19


def _threads_nice() -> str:
    return textwrap.dedent(
        """
        import json, os, sys, threading
        from pathlib import Path
        import numpy as np
        from core import spotting
        from core.slots import Registry

        before = set(os.listdir("/proc/self/task"))  # the imports' own (numpy's BLAS pool)
        registry = Registry(Path(sys.argv[1]))
        loaded = registry["kws"].get(wait_s=120)  # loads (exports, quantizes) in the slot's thread
        caller = {}

        def request():  # a visitor's request: the model runs in a worker thread
            spotting.window_probs(loaded.model, loaded.processor, [np.zeros(16000, np.float32)])
            caller["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        worker = threading.Thread(target=request)
        worker.start()
        worker.join()
        main = threading.get_native_id()
        new = set(os.listdir("/proc/self/task")) - before
        nice = {int(t): os.getpriority(os.PRIO_PROCESS, int(t)) for t in new | {str(main)}}
        main_nice, others = nice.pop(main), [*nice.values(), caller["nice"]]
        reported = registry.summary()["model_nice"]  # what /status says under "app"
        print(json.dumps({"precision": loaded.precision, "main": main_nice, "others": others, "reported": reported}))
        """
    )


@pytest.mark.parametrize("step", ["10", "0"])
def test_the_app_answers_at_its_priority_while_models_load_and_run_below_it(tiny_checkpoints, step):
    """In a fresh process: every thread started since the imports (the slot's loader, ONNX
    Runtime's and torch's workers, tqdm's monitor) and the thread that ran the model are at
    +MODEL_NICE; the main thread (where the app's server threads start) is untouched."""
    env = {**os.environ, "MODEL_NICE": step}
    out = subprocess.run(
        [sys.executable, "-c", _threads_nice(), str(tiny_checkpoints)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    ).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["precision"].startswith("int8")  # an ONNX Runtime session, with a thread pool of its own
    assert len(seen["others"]) >= 2  # at least ONNX Runtime's worker and the thread that ran the model
    assert set(seen["others"]) == {min(19, seen["main"] + int(step))}
    assert seen["reported"] == int(step)
