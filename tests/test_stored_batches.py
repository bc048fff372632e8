"""Batches of stored features: how a store is built (a few padded shapes, every clip once) and how
training reads it (from the memory map, or gathered from a copy on the training device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train import build_batches, stored_batches
from train import feature_store as features


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])  # bf16 kept as raw bits, and fp32
def test_collator_copies_stored_rows_straight_into_the_padded_batch(tmp_path, dtype):
    from torch.nn.utils.rnn import pad_sequence

    from train.stored_batches import CachedDataset, collate_features

    counts = np.array([5, 2, 4])
    np.save(tmp_path / "frames.npy", np.random.default_rng(0).integers(1, 2**14, (counts.sum(), 3)).astype(dtype))
    np.save(tmp_path / "index.npy", np.stack([np.cumsum(counts) - counts, counts], 1))
    store = features.FeatureStore(tmp_path, {"key": {"precision": "bf16" if dtype == np.uint16 else "fp32"}}, True)
    batch = collate_features([CachedDataset(store, [7, 8, 9], counts * 320)[i] for i in range(3)])
    assert batch["hidden"].dtype == (torch.bfloat16 if dtype == np.uint16 else torch.float32)
    assert torch.equal(batch["hidden"], pad_sequence([store[i] for i in range(3)], batch_first=True))
    assert batch["frame_counts"].tolist() == [5, 2, 4] and batch["labels"].tolist() == [7, 8, 9]
    # The host-side counts pass the device placement whole (a list would be walked item by item).
    from accelerate.utils import send_to_device

    assert send_to_device(batch, torch.device("cpu"))["frame_counts"] is batch["frame_counts"]
    # A whole batch read at once (what the DataLoader asks for) is the same batch, in the order
    # asked; clips of equal length (KWS) are gathered in one read.
    dataset = CachedDataset(store, [7, 8, 9], counts * 320)
    for order in ([2, 0, 1], [0, 2], [1]):
        whole = collate_features(dataset.__getitems__(order))
        single = collate_features([dataset[i] for i in order])
        assert whole.keys() == single.keys() and whole["frame_counts"].tolist() == single["frame_counts"].tolist()
        assert all(torch.equal(whole[k], single[k]) for k in ("hidden", "frame_lengths", "labels"))
    assert dataset.__getitems__([0, 2]).hidden is None and dataset.__getitems__([1]).hidden is not None
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate_features)
    assert torch.equal(next(iter(loader))["hidden"], single_batch(store, [0, 1]))
    # The same store copied to the training device: any batch is one gather there, padding
    # positions read the zero row after the frames.
    copy = store.on_device(torch.device("cpu"), chunk_bytes=7)  # chunks of a few rows
    assert copy.shape[0] == counts.sum() + 1 and not copy[-1].any()
    on_device = CachedDataset(store, [7, 8, 9], counts * 320, on_device=copy)
    for order in ([2, 0, 1], [0, 2], [1]):
        gathered, memmapped = (
            collate_features(on_device.__getitems__(order)),
            collate_features(dataset.__getitems__(order)),
        )
        assert gathered["frame_counts"].tolist() == memmapped["frame_counts"].tolist()
        assert all(torch.equal(gathered[k], memmapped[k]) for k in ("hidden", "frame_lengths", "labels"))


def test_stores_go_to_the_device_only_when_they_fit_and_nothing_needs_them_on_the_host(tmp_path, monkeypatch):
    np.save(tmp_path / "frames.npy", np.zeros((99, 4), np.uint16))  # 99 frames of 8 bytes + the zero row
    np.save(tmp_path / "index.npy", np.array([[0, 99]]))
    stores = {"train": features.FeatureStore(tmp_path, {}, True)}
    cpu = torch.device("cpu")
    copies, where = stored_batches.device_copies(stores, cpu, 0.5, 0)
    assert copies == {} and where == "host (memory-mapped)"  # no GPU: nothing to gain
    monkeypatch.setattr(stored_batches, "free_device_memory", lambda device: 1600)
    copies, where = stored_batches.device_copies(stores, cpu, 0.5, 0)
    assert copies["train"].shape == (100, 4) and where.startswith("cpu device (0.00 GB copied")
    assert stored_batches.device_copies(stores, cpu, 0.49, 0)[0] == {}  # 800 bytes > 49 % of 1600
    assert stored_batches.device_copies(stores, cpu, 0.0, 0)[0] == {}  # --store_device_share 0
    copies, where = stored_batches.device_copies(stores, cpu, 0.5, 2)
    assert copies == {} and "2 loader workers" in where


def single_batch(store, order):
    from torch.nn.utils.rnn import pad_sequence

    return pad_sequence([store[i] for i in order], batch_first=True)


def test_build_batches_come_in_a_few_shapes_and_every_clip_is_stored_once(tmp_path):
    rate = features.RATE
    assert build_batches.bucket_samples(rate) == rate and build_batches.bucket_samples(rate - 1) == rate
    assert build_batches.bucket_samples(rate + 1) == 20_000 and build_batches.bucket_samples(20_000) == 20_000
    for length in (1, 777, 12_345, 16_001, 99_999, 320_000):
        padded = build_batches.bucket_samples(length)
        assert length <= padded < 1.25 * length + 2, length
    rng = np.random.default_rng(0)
    lengths = (np.clip(rng.normal(12.7, 3.3, 500), 1.5, 20.0) * rate).astype(int).tolist()
    batches = build_batches.length_batches(lengths, 320 * rate)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    shapes = set()
    for batch in batches:
        ids, audio, sample_lengths = build_batches.pad_batch(
            [(i, np.ones(lengths[i], np.float32)) for i in batch], 320 * rate
        )
        assert ids == batch and audio.shape[1] == build_batches.bucket_samples(max(lengths[i] for i in batch))
        assert sample_lengths[: len(batch)].tolist() == [lengths[i] for i in batch]
        assert (sample_lengths[len(batch) :] == audio.shape[1]).all()  # filler rows: full-length silence
        assert audio.shape[0] * audio.shape[1] <= 320 * rate and audio[len(batch) :].abs().sum() == 0
        shapes.add(tuple(audio.shape))
    # 500 utterances in ~26 length-sorted batches of as many shapes before; one shape per bucket now.
    assert len(shapes) == len({build_batches.bucket_samples(n) for n in lengths}) <= 12
    # On the CPU (no per-shape cost): the same batches, padded to their longest clip, no filler rows.
    for batch in batches:
        ids, audio, sample_lengths = build_batches.pad_batch(
            [(i, np.ones(lengths[i], np.float32)) for i in batch], 320 * rate, few_shapes=False
        )
        assert ids == batch and audio.shape == (len(batch), max(lengths[i] for i in batch))
        assert sample_lengths.tolist() == [lengths[i] for i in batch]


def test_package_searches_are_made_once_per_process_not_per_step(monkeypatch):
    """accelerate asks whether `lomo_optim` is installed in each backward, clipping call and
    optimizer step (a search of the installed packages each time); after the project's setup it
    asks once per module, whatever the number of steps."""
    import accelerate.accelerator
    import accelerate.optimizer
    from accelerate import Accelerator

    from train.common import cache_per_step_package_checks

    asked = []

    def search() -> bool:
        asked.append(1)
        return False

    for module in (accelerate.accelerator, accelerate.optimizer):
        monkeypatch.setattr(module, "is_lomo_available", search)
    cache_per_step_package_checks()
    model = torch.nn.Linear(4, 2)
    accelerator = Accelerator(cpu=True)
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=0.1))
    before = model.weight.detach().clone()
    for _ in range(5):
        accelerator.backward(model(torch.ones(3, 4)).square().mean())
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    assert not torch.equal(model.weight, before)  # the steps ran
    assert len(asked) == 2  # one answer per module, not four per step
