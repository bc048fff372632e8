"""An optimizer update (gradient clipping, a fused Adam/AdamW step, zeroing the gradients) replayed
from one CUDA graph, for heads on stored features trained in the lean epoch (train/lean_loop.py).

On stored features a head's update is a few small kernels behind a stack of Python: the norm of
every gradient and the clipping scale, the optimizer's hooks and its grouping of tensors by device,
the fused kernel, then a `grad = None` per parameter (docs/benchmarks.md: on the CPU box ~1 ms of
a ~4 ms step under the profiler). Captured once, the same work is one replay.

What makes it replayable: the gradients stay in the same tensors (autograd adds into them; the
graph zeroes them), the learning rate reaches the kernel as a GPU tensor that is refilled from the
param group before each replay (the scheduler keeps writing plain floats, so checkpoints and the
optimizer look as the Trainer's do), and the graph is captured again whenever a parameter, a
gradient or an optimizer state tensor is no longer the one it was captured with (a resume loads new
state tensors). The first WARMUP updates run eagerly: the optimizer creates its state in the first.
A capture that fails leaves every later update eager, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)
WARMUP = 3
DEVICES = ("cuda",)  # where an update runs this way (captured only on CUDA; the tests add "cpu")


def unsupported(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> str | None:
    """Why this optimizer's updates cannot be replayed, or None when they can."""
    if not params or any(p.device.type not in DEVICES for p in params):
        return "the parameters are not on a CUDA GPU"
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
        return f"the optimizer is {type(optimizer).__name__}, not Adam or AdamW"
    if not all(group.get("fused") for group in optimizer.param_groups):
        return "the optimizer is not fused (--optim adamw_torch_fused)"
    if any(torch.is_tensor(group["lr"]) for group in optimizer.param_groups):
        return "the learning rate is a tensor already"
    return None


class GraphedUpdate:
    """`step()`: clip the gradients of `params` to `max_grad_norm` (0: no clipping), step
    `optimizer` (a fused torch Adam/AdamW over them) and zero the gradients; returns the norm
    before clipping (a tensor, rewritten by the next update) or None. `step_fn` steps the optimizer
    (default `optimizer.step`; the Trainer's is accelerate's wrapper around it, which the learning
    rate scheduler watches)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        params: list[torch.Tensor],
        max_grad_norm: float,
        step_fn: Callable[[], object] | None = None,
    ):
        self.optimizer, self.params, self.max_grad_norm = optimizer, params, max_grad_norm
        self.step_fn = step_fn or optimizer.step
        self.capture = params[0].is_cuda
        self.lrs = [torch.zeros((), dtype=torch.float32, device=params[0].device) for _ in optimizer.param_groups]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.norm: torch.Tensor | None = None
        self.pointers: tuple[int, ...] = ()
        self.warmup = WARMUP
        self.failed = False
        self.replays = 0
        self.ensure_grads()

    def describe(self) -> str:
        """How the updates run, for metrics.json."""
        if self.failed:
            return "eager (its CUDA graph capture failed)"
        return "from a CUDA graph" if self.capture else "in place"

    def ensure_grads(self) -> None:
        """Give every parameter a zero gradient where it has none (the Trainer sets them to None
        before training; call this before the first backward of an epoch): autograd then adds into
        these tensors, and every update zeroes them in place."""
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)

    def _grads(self) -> list[torch.Tensor]:
        return [p.grad for p in self.params]  # type: ignore[misc]

    def _pointers(self) -> tuple[int, ...]:
        state = [t for p in self.params for t in self.optimizer.state.get(p, {}).values() if torch.is_tensor(t)]
        return tuple(t.data_ptr() for t in (*self.params, *self._grads(), *state))

    def _update(self) -> torch.Tensor | None:
        norm = None
        if self.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.step_fn()
        torch._foreach_zero_(self._grads())
        return norm

    def _capture(self) -> None:
        groups = self.optimizer.param_groups
        saved = [(group["lr"], group["capturable"]) for group in groups]
        graph = torch.cuda.CUDAGraph()
        try:
            # While capturing, the kernel reads the learning rate from a GPU tensor.
            for group, lr in zip(groups, self.lrs, strict=True):
                group["lr"] = lr
                group["capturable"] = True
            # thread_local: the loader's pin-memory thread may call CUDA while this thread captures.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                norm = self._update()
        finally:
            for group, (lr, capturable) in zip(groups, saved, strict=True):
                group["lr"] = lr
                group["capturable"] = capturable
        self.graph = graph
        self.norm = norm
        self.pointers = self._pointers()

    def step(self) -> torch.Tensor | None:
        if self.warmup > 0 or self.failed or not self.capture:
            self.warmup -= 1
            return self._update()
        if self.graph is None or self._pointers() != self.pointers:
            try:
                self._capture()  # records the update without running it: the replay below runs it
            except RuntimeError as err:  # a long run should not die for a speed-up
                logger.warning("CUDA graph capture of the optimizer update failed; updates run eagerly: %s", err)
                self.failed = True
                self.graph = None
                return self._update()
        for group, lr in zip(self.optimizer.param_groups, self.lrs, strict=True):
            lr.fill_(group["lr"])
        self.graph.replay()  # type: ignore[union-attr]
        self.replays += 1
        return self.norm
