"""The batches a feature store is built from: clips sorted by length, in a few shapes.

A build runs the frozen encoder over ~`batch_samples` of padded audio at a time. Its batches
come in buckets of padded length, each bucket with a fixed clip count, so the encoder meets a
dozen input shapes rather than one per batch (see BUCKET_RATIO)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch

from speech.audio import TARGET_RATE

RATE = TARGET_RATE
MAX_CLIPS = 256  # clips per build batch at most, however short


# Padded lengths of a build's batches grow by this factor from one shape to the next. A GPU's
# convolution library plans every new input shape once per process. Length-sorted batches are
# each a shape of their own: an ASR build on an H100 spent 7.9 s in the encoder for ~2.5 s of
# its steady-state work, ~90 ms a batch (docs/benchmarks.md; the cause inferred, not profiled).
# With buckets it meets a dozen shapes, at the cost of padding (at most 25 %, ~11 % on average;
# the front end is padding-proof, so the stored values do not change).
BUCKET_RATIO = 1.25


def bucket_samples(length: int) -> int:
    """The padded length of a batch whose longest clip has `length` samples: the smallest
    RATE * BUCKET_RATIO**k (k whole) at or above it (1 s clips stay 1 s)."""
    k = math.floor(math.log(max(length, 1) / RATE, BUCKET_RATIO)) - 1
    while _edge(k) < length:
        k += 1
    return _edge(k)


def _edge(k: int) -> int:
    return math.ceil(RATE * BUCKET_RATIO**k)


def bucket_rows(padded: int, batch_samples: int) -> int:
    """Clips per batch at a padded length: as many as `batch_samples` holds, at most MAX_CLIPS."""
    return max(1, min(MAX_CLIPS, batch_samples // padded))


def length_batches(lengths: Sequence[int], batch_samples: int) -> list[list[int]]:
    """Clips sorted by length, grouped by their bucket (`bucket_samples`) and cut into batches of
    `bucket_rows` clips: every batch of a bucket has one shape once `pad_batch` fills its last."""
    order = sorted(range(len(lengths)), key=lambda j: -lengths[j])
    batches: list[list[int]] = []
    for padded, group in itertools.groupby(order, key=lambda j: bucket_samples(lengths[j])):
        clips = list(group)
        rows = bucket_rows(padded, batch_samples)
        batches += [clips[i : i + rows] for i in range(0, len(clips), rows)]
    return batches


def pad_batch(
    items: list[tuple[int, np.ndarray]], batch_samples: int, few_shapes: bool = True
) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The clips' ids, and their audio padded to their bucket's shape: [bucket_rows, bucket_samples];
    rows past the clips are silence of the full length (computed, never stored).

    few_shapes=False (an encoder on the CPU, which has no per-shape cost to save): padded to the
    longest clip, no filler rows. Filling each bucket's last batch made a tiny ASR store's build on
    the CPU box 5.5x slower (24 utterances, 3.25 s -> 17.8 s: ~4 buckets of ~20 rows each).
    """
    padded, rows = max(len(x) for _, x in items), len(items)
    if few_shapes:
        padded = bucket_samples(padded)
        rows = max(rows, bucket_rows(padded, batch_samples))
    audio = torch.zeros(rows, padded)
    lengths = torch.full((rows,), padded)
    for row, (_, x) in enumerate(items):
        audio[row, : len(x)] = torch.from_numpy(x)
        lengths[row] = len(x)
    return [i for i, _ in items], audio, lengths
