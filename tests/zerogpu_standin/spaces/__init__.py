"""A stand-in for the `spaces` package as it behaves on a ZeroGPU Space, for `tests/test_zerogpu.py`
(the real one's ZeroGPU mode needs a CUDA build of torch: spaces/zero/torch/static.py reads
`torch.version.cuda`, patching.py binds `torch._C._cuda_init`).

What it keeps of the real contract (spaces/zero/decorator.py, wrappers.py, client.py, 0.51.3):
- `GPU(fn, duration=...)`, `GPU(duration=...)(fn)`; a callable duration gets the call's arguments;
- arguments and result cross a process boundary there: both are pickled here, so anything that
  would not reach a forked worker fails the same way;
- an exception from the function other than a `gr.Error` arrives as "ZeroGPU worker error" with
  its class name only;
- ZeroGPU refusing a call is a `gr.Error` with a title ("ZeroGPU quota exceeded", ...), raised
  before the function runs (set `REFUSE`).

What it records: every call's function name and requested duration (`CALLS`), and whether the
current thread is inside a call (`inside()`), so a test can make any model run outside one fail.
"""

from __future__ import annotations

import pickle
import threading

import gradio as gr

CALLS: list[tuple[str, int]] = []
REFUSE: tuple[str, str] | None = None  # (title, message) of the refusal every call gets
_local = threading.local()


def inside() -> bool:
    return getattr(_local, "depth", 0) > 0


def GPU(task=None, *, duration=None, size=None):  # noqa: N802 - the real package's name
    if task is None:
        return lambda fn: GPU(fn, duration=duration, size=size)

    def handler(*args, **kwargs):
        seconds = duration(*args, **kwargs) if callable(duration) else (duration or 60)
        CALLS.append((task.__name__, seconds))
        if REFUSE is not None:
            raise gr.Error(REFUSE[1], title=REFUSE[0])
        args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
        _local.depth = getattr(_local, "depth", 0) + 1
        try:
            result = task(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            raise gr.Error(type(err).__name__, title="ZeroGPU worker error") from None
        finally:
            _local.depth -= 1
        return pickle.loads(pickle.dumps(result))

    handler.__name__ = task.__name__
    return handler
