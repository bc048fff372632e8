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


def test_model_work_runs_under_inference_mode_at_the_model_priority():
    @inference.model_work
    def forward(x: int) -> tuple[int, bool, int]:
        import torch

        return x + 1, torch.is_inference_mode_enabled(), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen = []
    thread = threading.Thread(target=lambda: seen.append(forward(1)))
    thread.start()
    thread.join()
    assert seen == [(2, True, inference._TARGET)]  # whatever this process's threads ran before


def _threads_nice() -> str:
    return textwrap.dedent(
        """
        import json, os, sys, threading
        from pathlib import Path
        import numpy as np
        from speech import spotting
        from slots.registry import Registry

        before = set(os.listdir("/proc/self/task"))  # the imports' own (numpy's BLAS pool)
        registry = Registry(Path(sys.argv[1]))
        loaded = registry["kws"].settled(wait_s=120)  # loads in the slot's thread, int8 once exported
        caller = {}

        def nice():
            return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        def request():  # a visitor's request: the model runs in a worker thread
            spotting.window_probs(loaded.model, loaded.processor, [np.zeros(16000, np.float32)])
            caller["nice"] = nice()
            child = threading.Thread(target=lambda: caller.setdefault("child", nice()))
            child.start()
            child.join()

        def status():  # a request that runs no model
            caller["idle"] = nice()

        worker = threading.Thread(target=request)
        worker.start()
        worker.join()
        main = threading.get_native_id()
        new = set(os.listdir("/proc/self/task")) - before
        nice_of = {}
        for t in new | {str(main)}:
            try:
                nice_of[int(t)] = os.getpriority(os.PRIO_PROCESS, int(t))
            except ProcessLookupError:  # a thread that ended after the listing (a loader done)
                pass
        idle = threading.Thread(target=status)  # after the listing: a joined thread lingers there a moment
        idle.start()
        idle.join()
        main_nice, others = nice_of.pop(main), [*nice_of.values(), caller["nice"], caller["child"]]
        reported = registry.summary()["model_nice"]  # what /status says under "app"
        print(json.dumps({"precision": loaded.precision, "main": main_nice, "others": others,
                          "idle": caller["idle"], "reported": reported}))
        """
    )


@pytest.mark.slow
@pytest.mark.parametrize("step", ["10", "0"])
def test_the_app_answers_at_its_priority_while_models_load_and_run_below_it(tiny_checkpoints, step):
    """In a fresh process (this one's threads may have run models already): every thread started
    since the imports (the slot's loader, ONNX Runtime's and torch's workers, tqdm's monitor), the
    thread that ran the model and a thread it started are at +MODEL_NICE; the main thread (where
    the app's server threads start) and a thread that ran no model are untouched."""
    env = {**os.environ, "MODEL_NICE": step}
    done = subprocess.run(
        [sys.executable, "-c", _threads_nice(), str(tiny_checkpoints)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["precision"].startswith("int8")  # an ONNX Runtime session, with a thread pool of its own
    assert len(seen["others"]) >= 2  # at least ONNX Runtime's worker and the thread that ran the model
    assert set(seen["others"]) == {min(19, seen["main"] + int(step))}
    assert seen["idle"] == seen["main"]  # a request thread that ran no model keeps the server's priority
    assert seen["reported"] == int(step)
