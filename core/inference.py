"""`inference_mode` for the model-running functions of modules the app imports before it serves:
torch's own decorator would import torch with them (~1.5 s before the first answer); this one
imports it on the first call, when a model has loaded anyway."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def inference_mode(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` run under `torch.inference_mode()`, torch imported when it is first called."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        import torch

        with torch.inference_mode():
            return fn(*args, **kwargs)

    return run
