"""The class-imbalance remedies of train.kws (`_unknown_` outnumbers each keyword ~10 to 1): a
class-weighted cross-entropy, and optionally a sampler that draws each class equally often."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from train.common import GroupedTrainer
from train.frozen_head import FrozenEncoderHead


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


class WeightedTrainer(GroupedTrainer):
    """The class-weighted loss, and optionally a sampler that draws classes equally often."""

    def __init__(self, *args, loss: WeightedCrossEntropy, sample_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss, self.sample_weights = loss, sample_weights

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        if isinstance(model, FrozenEncoderHead):  # computes the loss itself, inside its CUDA graph if any
            outputs = model(**inputs, labels=labels)
            loss = outputs.loss
        else:
            outputs = model(**inputs)
            loss = self.loss(outputs.logits, None, labels)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        if self.sample_weights is not None:
            return torch.utils.data.WeightedRandomSampler(self.sample_weights, len(self.sample_weights))
        return super()._get_train_sampler(train_dataset)
