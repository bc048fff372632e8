"""Training-time augmentation of a frozen encoder's outputs: a random time shift and a
SpecAugment-style time mask, drawn per batch (the serving heads in speech/heads.py know nothing of it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Augment:
    """One batch's random time shift and SpecAugment-style time mask, drawn on the CPU from the
    clips' frame counts. A small head on a GPU is bound by kernel launches, not arithmetic, so
    the draw adds none: a per-frame head gets one gather and one multiply; a pooling head folds
    both into its pooling weights. Masked frames become zeros (the encoder's learned mask vector
    is out of reach once its outputs are stored)."""

    counts: list[int]
    source: torch.Tensor  # [B, T]: frame t reads frame source[b, t] (a rotation within the clip)
    keep: torch.Tensor  # [B, T] float: 0 where masked

    @staticmethod
    def draw(counts: list[int], frames: int, shift: int, prob: float, span: int) -> Augment:
        # The random numbers come from torch's generator (the Trainer seeds it); the arithmetic is
        # numpy's, which costs a fraction of torch's per-call overhead on arrays this small.
        batch = len(counts)
        n = np.asarray(counts)[:, None]
        t = np.arange(frames)[None, :]
        source = np.broadcast_to(t, (batch, frames))
        if shift > 0:
            offset = torch.randint(-shift, shift + 1, (batch, 1)).numpy()
            source = np.where(t < n, (t - offset) % n, t)
        keep = np.ones((batch, frames), np.float32)
        if prob > 0:
            count = np.floor(prob * n[:, 0] / span + torch.rand(batch).numpy()) * (n[:, 0] > span)
            most = int(prob * frames / span) + 1
            starts = np.floor(torch.rand(batch, most).numpy() * np.maximum(n - span + 1, 1))
            hit = np.zeros((batch, frames), bool)
            for j in range(most):  # a mask or two per clip: a loop over them beats a 3-d array
                start = starts[:, j : j + 1]
                hit |= (t >= start) & (t < start + span) & (j < count[:, None])
            keep = (~hit).astype(np.float32)
        return Augment(
            list(counts), torch.from_numpy(np.ascontiguousarray(source, dtype=np.int64)), torch.from_numpy(keep)
        )

    def apply(self, hidden: torch.Tensor) -> torch.Tensor:
        """Shift, then mask, a [B, T, ...] batch."""
        tail = (1,) * (hidden.dim() - 2)
        source = self.source.to(hidden.device, non_blocking=True).view(*self.source.shape, *tail)
        keep = self.keep.to(hidden.device, non_blocking=True).view(*self.keep.shape, *tail)
        return hidden.gather(1, source.expand_as(hidden)) * keep.to(hidden.dtype)

    def pooling_weights(self) -> torch.Tensor:
        """[B, T] weights w with sum_t w[t] h[t] = mean over the clip of apply(h): frame t of the
        augmented clip is frame source[t] of the stored one, so its 1/n goes there (source is a
        rotation within the clip, so no two frames land on the same place)."""
        keep = self.keep.numpy()
        source = self.source.numpy()
        n = np.asarray(self.counts, np.float32)[:, None]
        weights = np.zeros_like(keep)
        weights[np.arange(len(n))[:, None], source] = keep * (np.arange(keep.shape[1])[None, :] < n) / n
        return torch.from_numpy(weights)
