"""train.kws's remedy for class imbalance (`_unknown_` outnumbers each keyword ~10 to 1): a
class-weighted cross-entropy, shared with the frozen-encoder head and the benchmarks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class WeightedCrossEntropy(torch.nn.Module):
    """Cross-entropy with per-class weights (the course report's remedy for `_unknown_` dominating). A
    module, so the weights move to the GPU with a frozen-encoder head that computes its own loss."""

    def __init__(self, class_weights: np.ndarray | None):
        super().__init__()
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer(
            "weight",
            weight,
            persistent=False,
        )

    def forward(self, logits: torch.Tensor, lengths: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.device)  # no-op once moved
        return F.cross_entropy(logits.float(), labels, weight=weight)
