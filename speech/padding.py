"""Padding that changes nothing: a speech encoder's conv front end normalised over each clip's own
samples, so a padded batch gives every clip what it gets alone (the app's batched windows, the
training stores). Torch only: the app's audio paths import this without transformers' models."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """True for each clip's real frames.

    Args:
        lengths: [B] frame counts.
        frames: T, the padded length.

    Returns:
        [B, T] bool, True where t < lengths[b].
    """
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


# ---- the encoder, padding-proof ------------------------------------------------------------------


class _MaskedGroupNorm(nn.Module):
    """The conv front end's per-channel GroupNorm, with statistics over each clip's own frames only.
    A plain GroupNorm also averages the padding, so a clip's features would depend on what it was
    batched with; with this, a padded batch gives each clip what it gets alone."""

    def __init__(self, norm: nn.GroupNorm, lengths: torch.Tensor):
        super().__init__()
        self.norm, self.lengths = norm, lengths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In fp32 whatever the model's dtype: a 30 s window's sum over 96,000 frames overflows fp16.
        dtype, x = x.dtype, x.float()
        mask = frame_mask(self.lengths.to(x.device), x.shape[-1]).unsqueeze(1).to(x.dtype)
        count = mask.sum(-1, keepdim=True)
        mean = (x * mask).sum(-1, keepdim=True) / count
        var = (((x - mean) * mask) ** 2).sum(-1, keepdim=True) / count
        y = (x - mean) * torch.rsqrt(var + self.norm.eps)
        return (y * self.norm.weight.float()[None, :, None] + self.norm.bias.float()[None, :, None]).to(dtype)


@contextlib.contextmanager
def padding_proof(encoder: nn.Module, sample_lengths: torch.Tensor) -> Iterator[None]:
    """Within this context, `encoder` (or a model around it) normalises its conv front end over
    each clip's first `sample_lengths` samples only. Pass the attention mask to the model too.

    Args:
        encoder: a HuBERT / wav2vec 2.0 encoder with a "group" (per-channel GroupNorm) front end;
            a "layer" front end normalises each frame and needs nothing.
        sample_lengths: [B] samples of real audio per clip of the padded batch.
    """
    layers = getattr(getattr(encoder, "feature_extractor", None), "conv_layers", None)
    first = layers[0] if layers else None
    norm = getattr(first, "layer_norm", None)
    if not isinstance(norm, nn.GroupNorm):  # "layer" front ends normalise each frame: nothing to do
        yield
        return
    if norm.num_groups != norm.num_channels:
        raise ValueError("only per-channel GroupNorm (HuBERT/wav2vec 2.0 'group' front end) is supported")
    conv = first.conv
    lengths = torch.div(sample_lengths - conv.kernel_size[0], conv.stride[0], rounding_mode="floor") + 1
    first.layer_norm = _MaskedGroupNorm(norm, lengths)
    try:
        yield
    finally:
        first.layer_norm = norm
