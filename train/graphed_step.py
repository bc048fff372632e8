"""A pooling head's training step (forward with its loss, then backward) replayed from CUDA graphs.

On stored features the keyword-spotting head's step is about a millisecond of kernel launches
and Python around microseconds of arithmetic (docs/benchmarks.md). A captured graph launches all
of the forward's kernels with one call and all of the backward's with another.

A graph has fixed shapes, so each (batch, frames) shape gets its own pair, captured the first
time it is seen. Frames are padded up to a multiple of FRAME_MULTIPLE (the pooling weights are 0
there, so the logits do not change) so that batches of short clips share a few shapes; past
MAX_GRAPHS shapes a step runs eagerly. The gradients leave the graph as fresh tensors, so
accumulation, clipping and the optimizer see an ordinary backward. `frozen_head` uses this in a
single process on one GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)
FRAME_MULTIPLE = 8
MAX_GRAPHS = 16
WARMUP = 3  # eager steps on a side stream before capture: cuBLAS handles and workspaces exist by then


@dataclass
class _Captured:
    """One shape's graphs and the static tensors they read and write."""

    hidden: torch.Tensor
    weights: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    forward: torch.cuda.CUDAGraph
    backward: torch.cuda.CUDAGraph
    logits: torch.Tensor
    loss: torch.Tensor
    grads: tuple[torch.Tensor, ...]


class _Replay(torch.autograd.Function):
    """Autograd's view of a captured step: parameters in, (logits, loss) out."""

    @staticmethod
    def forward(ctx, captured: _Captured, *params: torch.Tensor):
        ctx.captured = captured
        ctx.set_materialize_grads(False)
        captured.forward.replay()
        logits = captured.logits.detach()
        ctx.mark_non_differentiable(logits)
        return logits, captured.loss.detach()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, _logits_grad, loss_grad):
        captured = ctx.captured
        captured.backward.replay()  # only the loss is differentiable, so loss_grad is a tensor
        # Scaled by the incoming gradient (loss scaling, averaging) and copied out of the graph's
        # memory, which the next replay overwrites: one multi-tensor kernel.
        return (None, *torch._foreach_mul(captured.grads, loss_grad))


class GraphedPoolingStep:
    """`step(hidden, weights, lengths, labels)` -> (logits, loss) for a pooling head (one with
    `pooled_logits(hidden, weights)`) and a loss `loss(logits, lengths, labels)` that need no
    host synchronisation. `hidden` and `labels` on the GPU, `weights` [B, T] on the CPU."""

    def __init__(self, head: nn.Module, loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]):
        self.head, self.loss = head, loss
        self.graphs: dict[tuple, _Captured] = {}
        self.params: tuple[torch.Tensor, ...] = ()
        self.eager_steps = 0  # steps past MAX_GRAPHS shapes (or after a failed capture)
        self.failed = False

    def _run(self, hidden: torch.Tensor, weights: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor):
        logits = self.head.pooled_logits(hidden.float(), weights)
        return logits, self.loss(logits, lengths, labels)

    def _capture(
        self, hidden: torch.Tensor, weights: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor
    ) -> _Captured:
        static = [t.clone() for t in (hidden, weights, lengths, labels)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP):  # autograd.grad: nothing is accumulated into .grad
                torch.autograd.grad(self._run(*static)[1], self.params)
        torch.cuda.current_stream().wait_stream(side)
        forward = torch.cuda.CUDAGraph()
        backward = torch.cuda.CUDAGraph()
        with torch.cuda.graph(forward):
            logits, loss = self._run(*static)
        with torch.cuda.graph(backward, pool=forward.pool()):
            grads = torch.autograd.grad(loss, self.params)
        return _Captured(*static, forward, backward, logits, loss, grads)

    def __call__(
        self, hidden: torch.Tensor, weights: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        params = tuple(p for p in self.head.parameters() if p.requires_grad)
        if [p.data_ptr() for p in params] != [p.data_ptr() for p in self.params]:
            self.graphs.clear()  # moved or replaced since capture: the graphs point at old memory
            self.params = params
        batch, frames = hidden.shape[:2]
        padded = -(-frames // FRAME_MULTIPLE) * FRAME_MULTIPLE
        weights = F.pad(weights, (0, padded - frames))
        key = (batch, padded, tuple(hidden.shape[2:]), hidden.dtype, tuple(labels.shape), labels.dtype)
        captured = self.graphs.get(key)
        if captured is None and len(self.graphs) < MAX_GRAPHS and not self.failed:
            # Frames past `frames` stay zeros (or earlier batches' finite values): weight 0 either way.
            full = hidden.new_zeros(batch, padded, *hidden.shape[2:])
            full[:, :frames] = hidden
            try:
                captured = self.graphs[key] = self._capture(full, weights.to(hidden.device), lengths, labels)
            except RuntimeError as err:  # a long run should not die for a speed-up
                logger.warning("CUDA graph capture failed; the head's steps run eagerly from here: %s", err)
                self.failed = True
        if captured is None:
            self.eager_steps += 1
            return self._run(hidden, weights[:, :frames].to(hidden.device, non_blocking=True), lengths, labels)
        captured.hidden[:, :frames].copy_(hidden)
        captured.weights.copy_(weights, non_blocking=True)
        captured.lengths.copy_(lengths)
        captured.labels.copy_(labels)
        return _Replay.apply(captured, *self.params)
