"""Reading feature stores while training a head: batches from the memory map, or gathered from
a copy of the stores on the training device when they fit there (`device_copies`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from train.feature_store import FeatureStore, as_tensor


class CachedDataset(torch.utils.data.Dataset):
    """Stored hidden states + labels; `lengths` (in samples) as the audio dataset's, so length
    grouping draws the same batches either way. With `on_device` (the store's frames on the
    training device, `FeatureStore.on_device`) a batch is gathered there: nothing is read from
    the memory map or copied to the device per step."""

    def __init__(
        self,
        store: FeatureStore,
        labels: Sequence[Any],
        lengths: Sequence[int],
        on_device: torch.Tensor | None = None,
    ):
        if len(store) != len(labels):
            raise ValueError(f"store has {len(store)} clips, the split {len(labels)}")
        self.store, self.labels, self.lengths = store, list(labels), list(lengths)
        self.on_device = on_device

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"hidden": self.store.rows(i), "labels": self.labels[i]}  # read once, by the collator

    def __getitems__(self, indices: list[int]) -> StoredBatch:
        """A whole batch at once (the DataLoader asks so when a dataset can): the collator then
        builds it without a Python dict per clip. Equal-length clips (KWS: 1 s each) are read
        from the memory map in one gather; with the store on the device, any batch is."""
        indices = [int(i) for i in indices]
        start, counts = self.store.index[indices, 0], self.store.index[indices, 1]
        hidden = None
        if self.on_device is not None:
            hidden = gather_rows(self.on_device, start, counts, self.store.pad_row)
        elif len(set(counts.tolist())) == 1:
            hidden = self.store.frames[start[:, None] + np.arange(int(counts[0]))[None, :]]
        return StoredBatch(self.store, indices, counts, [self.labels[i] for i in indices], hidden)


def gather_rows(frames: torch.Tensor, start: np.ndarray, counts: np.ndarray, pad_row: int) -> torch.Tensor:
    """A padded batch [B, max(counts), ...] from a store's frames on a device: one gather, whose
    padded positions read the zero row `pad_row`. The row numbers travel without waiting for
    the device (a host sync per step would stall the queue of a ~1 ms step)."""
    positions = np.arange(int(counts.max()))[None, :]
    rows = np.where(positions < counts[:, None], start[:, None] + positions, pad_row)
    return frames[torch.from_numpy(rows).to(frames.device, non_blocking=True)]


class StoredBatch(NamedTuple):
    """What `CachedDataset.__getitems__` hands the collator."""

    store: FeatureStore
    indices: list[int]
    counts: np.ndarray  # frames per clip, from the store's index
    labels: list[Any]
    # [B, frames, ...]: gathered on the device, or from the memory map when every clip has as
    # many frames; None: the collator pads them.
    hidden: np.ndarray | torch.Tensor | None


def collate_features(items: list[dict[str, Any]] | StoredBatch) -> dict[str, torch.Tensor]:
    """The head's batch: padded frames, their counts and the labels (CTC: padded with -100)."""
    if isinstance(items, StoredBatch):
        counts, labels, hidden = items.counts, items.labels, items.hidden
        if hidden is None:
            hidden = _padded([items.store.rows(i) for i in items.indices], counts)
    else:
        counts, labels = [len(f["hidden"]) for f in items], [f["labels"] for f in items]
        hidden = _padded([f["hidden"] for f in items], counts)
    labels = (
        pad_sequence([torch.tensor(t) for t in labels], batch_first=True, padding_value=-100)
        if isinstance(labels[0], (list, tuple))
        else torch.tensor(labels)
    )
    # The counts also stay on the host: the Trainer moves tensors to the GPU, and the augmentation
    # draws on the CPU from these without reading anything back. An array, not a list: accelerate's
    # device placement and the Trainer's `_prepare_inputs` each walk a list item by item (~0.2 ms a
    # step for 64 clips here) and pass an array by.
    counts = np.asarray(counts, dtype=np.int64)
    lengths = torch.tensor(counts)
    if isinstance(hidden, torch.Tensor):  # gathered on the device: the rest follows, unwaited
        lengths = lengths.to(hidden.device, non_blocking=True)
        labels = labels.to(hidden.device, non_blocking=True)
    else:
        hidden = as_tensor(hidden)
    return {"hidden": hidden, "frame_lengths": lengths, "frame_counts": counts, "labels": labels}


def _padded(rows: list[np.ndarray], counts: Sequence[int]) -> np.ndarray:
    """Each clip's frames from the memory map straight into the padded batch: one copy."""
    hidden = np.zeros((len(rows), max(counts), *rows[0].shape[1:]), rows[0].dtype)
    for row, (frames, n) in enumerate(zip(rows, counts, strict=True)):
        hidden[row, :n] = frames
    return hidden


def free_device_memory(device: torch.device) -> int | None:
    """Bytes free on a GPU; None elsewhere (a host's stores stay memory-mapped)."""
    return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None


def device_copies(
    stores: dict[str, FeatureStore], device: torch.device, share: float, workers: int
) -> tuple[dict[str, torch.Tensor], str]:
    """Every store's frames on `device` when they fit together in `share` of its free memory
    (else none: a run reads all its splits the same way), and where training reads them from."""
    free = free_device_memory(device)
    need = sum(store.frames.nbytes + store.frames[:1].nbytes for store in stores.values())
    if free is None or share <= 0 or not stores:
        return {}, "host (memory-mapped)"
    if workers > 0:
        return {}, f"host (memory-mapped; {workers} loader workers cannot use the GPU's copy)"
    if need > share * free:
        return {}, (
            f"host (memory-mapped; {need / 1e9:.2f} GB is more than {share:.0%} of the "
            f"{free / 1e9:.1f} GB free on the {device.type} device)"
        )
    copies = {name: store.on_device(device) for name, store in stores.items()}
    return copies, f"{device.type} device ({need / 1e9:.2f} GB copied there; {free / 1e9:.1f} GB were free)"
