"""How the app runs model work: `model_work` wraps the model-running functions of modules the app
imports before it serves (torch's `inference_mode`, imported on the first call: torch's own
decorator would import torch with them, ~1.5 s before the first answer), and every thread that
loads or runs a model does so at a lower CPU priority than the threads that answer requests.

Why the priority: on two cores, the server's one event loop (every request's HTTP, the queue,
`/status`) competed on equal terms with the model threads. Under 50 visitors `/status` through
gradio_client took 1.2-2.2 s at p95; with model work at nice +10 it took 0.51-0.87 s, and the
short endpoints' medians fell by ~60 %, while `/transcribe`, the heaviest, waited ~15 % longer
(`python -m bench.load`, docs/measurements.md). Nothing else on the box is slowed: the priority is
relative to this process's other threads and to other processes at the same nice value."""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from core import settings

P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger(__name__)


# Nice steps model work runs below the server (`MODEL_NICE`, default 10; 0: off; /status reports
# it). Linux only: there a priority set for a thread id is that thread's alone; elsewhere it would
# be the whole process's.
STEP = settings.MODEL_NICE if sys.platform.startswith("linux") else 0
# The priority of the thread that imported this (the main thread, in the app), plus the step: a
# thread started by a model thread already has it, so nothing is lowered twice.
_TARGET = min(19, os.getpriority(os.PRIO_PROCESS, 0) + STEP) if STEP else None


def lower_priority() -> None:
    """Put the calling thread at the model-work priority, once (a thread cannot raise it back).

    Threads it starts afterwards inherit it: ONNX Runtime's and torch's worker threads, created by
    the thread that builds the session or first runs an op."""
    if _TARGET is None:
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < _TARGET:
            os.setpriority(os.PRIO_PROCESS, tid, _TARGET)
    except OSError as err:  # a sandbox that forbids it: the work runs, at the usual priority
        logger.debug("cannot lower thread priority: %s", err)


def model_work(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` run under `torch.inference_mode()` at the model-work priority (`lower_priority`),
    torch imported when it is first called."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        import torch

        lower_priority()
        with torch.inference_mode():
            return fn(*args, **kwargs)

    return run


def to_model(model, tensor):
    """`tensor` moved to `model`'s device, and a floating-point one cast to its dtype (a model served
    in fp16 on a GPU takes fp16 audio; token ids stay integers)."""
    weight = next(model.parameters())
    if tensor.is_floating_point():
        return tensor.to(weight.device, weight.dtype)
    return tensor.to(weight.device)
