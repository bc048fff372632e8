"""A frozen encoder runs once: its outputs go to an on-disk store that every epoch reads back.

The store is a folder under --feature_cache_dir named by a digest of everything that decides its
contents (the encoder's weights and config, the layers kept, the exact clips in order, the audio
preprocessing, the precision, this file's format version). Any change gives a new digest, hence a
new build; a folder whose manifest does not match its key is rebuilt; a half-built one never takes
the final name (staging folder + rename, as checkpoints are published).

    <digest>/frames.npy   [total frames, (layers,) hidden], memory-mapped; bf16 kept as raw bits
    <digest>/index.npy    [clips, 2]: first frame, frame count
    <digest>/manifest.json  the key, shapes, dtype, size, build time and throughput
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from core.checkpoint import publish
from speech.audio import TARGET_RATE, stored
from speech.heads import encode
from train.build_batches import length_batches, pad_batch

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
RATE = TARGET_RATE
# Config entries that change only the head or training, not what the encoder computes.
_HEAD_ONLY = (
    "vocab_size",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "id2label",
    "label2id",
    "architectures",
    "ctc_loss_reduction",
    "ctc_zero_infinity",
    "use_weighted_layer_sum",
    "classifier_proj_size",
    "final_dropout",
    "superb_head",
    "transformers_version",
    "dtype",
    "torch_dtype",
    "_name_or_path",
    "problem_type",
    "layerdrop",
    "tokenizer_class",
    "num_labels",
)
# precision -> (torch dtype of the stored values, numpy dtype on disk: numpy has no bfloat16, so
# bf16 is kept as its raw 16 bits).
_PRECISION = {
    "fp32": (torch.float32, np.float32),
    "fp16": (torch.float16, np.float16),
    "bf16": (torch.bfloat16, np.uint16),
}


# ---- what decides a store's contents ----------------------------------------------------------------


def audio_identity(audio: Any) -> str:
    """A file by path, size and modification time; embedded bytes by their hash."""
    audio = stored(audio)
    if isinstance(audio, dict) and audio.get("bytes") is not None:
        return "sha1:" + hashlib.sha1(audio["bytes"]).hexdigest()
    path = audio["path"] if isinstance(audio, dict) else audio
    stat = os.stat(path)
    return f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"


def encoder_fingerprint(encoder: nn.Module) -> str:
    """Digest of the encoder's config (what shapes its computation) and every weight."""
    digest = hashlib.sha256()
    config = {
        k: v
        for k, v in encoder.config.to_dict().items()
        if k not in _HEAD_ONLY and "dropout" not in k and not k.startswith("mask_")
    }
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class StoreKey:
    """Everything that decides a store's contents; its digest names the store's folder and its
    manifest records it, so a folder built for another key is never reused."""

    encoder: str  # encoder_fingerprint(encoder)
    layers: str  # "last" or "all"
    precision: str  # fp32, fp16 or bf16: what the encoder computed in and the store keeps
    dataset: dict[str, Any]  # which data: source, split, subset, clip count and content digest
    preprocessing: dict[str, Any]  # feature extractor settings, decoder, cropping
    format: int = FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as the manifest stores it."""
        return json.loads(json.dumps(asdict(self), default=str))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:24]


def store_key(
    encoder_digest: str,
    layers: str,
    precision: str,
    dataset: dict[str, Any],
    identities: Sequence[str],
    preprocessing: dict[str, Any],
) -> StoreKey:
    """The key of a store of `identities` (one string per clip, in order: `audio_identity`);
    `encoder_digest` is `encoder_fingerprint(encoder)`, hashed once per run for all its splits."""
    content = hashlib.sha256("\n".join(identities).encode()).hexdigest()
    return StoreKey(
        encoder_digest, layers, precision, {**dataset, "clips": len(identities), "content": content}, preprocessing
    )


class Layout(NamedTuple):
    """Where each clip's frames go in a store being built."""

    frames: np.ndarray  # [clips] frame count each clip's length promises
    tail: tuple[int, ...]  # shape of one frame: (hidden,) or (layers + 1, hidden)
    nbytes: int


# ---- the store ------------------------------------------------------------------------------------


class FeatureStore:
    """Read side: one clip's stored hidden states as a tensor (bf16 or fp32)."""

    def __init__(self, path: Path, manifest: dict[str, Any], reused: bool):
        self.path, self.manifest, self.reused = path, manifest, reused
        self.frames = np.load(path / "frames.npy", mmap_mode="r")
        self.index = np.load(path / "index.npy")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        return as_tensor(np.array(self.rows(i)))

    def rows(self, i: int) -> np.ndarray:
        """Clip i's frames as a view of the memory map (read when copied; bf16 as raw uint16)."""
        start, count = self.index[i]
        return self.frames[start : start + count]

    def on_device(self, device: torch.device, chunk_bytes: int = 256 << 20) -> torch.Tensor:
        """Every stored frame copied to `device`, then one row of zeros that padded positions of a
        batch gather (`pad_row`). Read in chunks: the memory map is never loaded whole on the host."""
        rows = len(self.frames)
        out = torch.zeros((rows + 1, *self.frames.shape[1:]), dtype=as_tensor(self.frames[:0]).dtype, device=device)
        step = max(1, chunk_bytes // max(1, self.frames[:1].nbytes))
        for start in range(0, rows, step):
            end = min(start + step, rows)
            out[start:end].copy_(as_tensor(np.ascontiguousarray(self.frames[start:end])))
        return out

    @property
    def pad_row(self) -> int:
        """The all-zero row that `on_device` appends."""
        return len(self.frames)

    @staticmethod
    def open(path: Path, key: StoreKey) -> FeatureStore | None:
        """The store at `path` if it is complete and was built for exactly `key`, else None."""
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            if manifest["key"] != key.as_dict():
                logger.warning("feature cache: %s was built for another key; rebuilding", path)
                return None
            if (path / "frames.npy").stat().st_size < manifest["bytes"]:
                logger.warning("feature cache: %s is truncated; rebuilding", path)
                return None
            return FeatureStore(path, manifest, reused=True)
        except (OSError, ValueError, KeyError):
            return None


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor over stored frames (no copy); bf16 comes back from its raw bits."""
    tensor = torch.from_numpy(array)
    return tensor.view(torch.bfloat16) if array.dtype == np.uint16 else tensor


def open_or_build(
    root: str | Path,
    key: StoreKey,
    source: torch.utils.data.Dataset,
    encoder: nn.Module,
    *,
    device: torch.device,
    batch_seconds: float = 320.0,
    num_workers: int | None = None,
    name: str = "",
) -> FeatureStore:
    """Reuse the store for `key`, or run `encoder` over `source` (items with "input_values"; a
    `lengths` list in samples) once and store its outputs, decoded by `num_workers` processes
    (None: `decode_workers`)."""
    path = Path(root) / key.digest()
    store = FeatureStore.open(path, key)
    if store is not None:
        logger.info(
            "feature cache: reusing %s for %s (%d clips, built %s)", path, name, len(store), store.manifest["built"]
        )
        return store
    frames = _frame_counts(encoder, source.lengths)
    tail = _tail_shape(encoder, key.layers)
    itemsize = np.dtype(_PRECISION[key.precision][1]).itemsize
    layout = Layout(frames, tail, int(frames.sum()) * int(np.prod(tail)) * itemsize)
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    logger.info(
        "feature cache: building %s for %s: %d clips, %.2f h of audio, %d frames x %s %s = %.2f GB "
        "(%.1f GB free there)",
        path,
        name,
        len(frames),
        sum(source.lengths) / RATE / 3600,
        frames.sum(),
        tail,
        key.precision,
        layout.nbytes / 1e9,
        free / 1e9,
    )
    if layout.nbytes > free:
        raise OSError(
            f"the feature cache needs {layout.nbytes / 1e9:.1f} GB but {path.parent} has "
            f"{free / 1e9:.1f} GB free: point --feature_cache_dir elsewhere or train with "
            "--no_feature_cache"
        )
    batches = length_batches(source.lengths, int(batch_seconds * RATE))
    loader = torch.utils.data.DataLoader(
        _Indexed(source),
        num_workers=decode_workers(len(batches)) if num_workers is None else num_workers,
        collate_fn=functools.partial(
            pad_batch, batch_samples=int(batch_seconds * RATE), few_shapes=torch.device(device).type == "cuda"
        ),
        batch_sampler=batches,
    )
    # Named by its contents: a store another machine's build published meanwhile is the same one.
    with publish(path, check=_check_complete, replace=False) as staging:
        _build(staging, key, encoder, device, layout, loader)
    store = FeatureStore(path, json.loads((path / "manifest.json").read_text()), reused=False)
    logger.info(
        "feature cache: built %s in %.1f s (%.0f audio-s/s; %.1f s waiting for %d decoding workers, %.1f s in "
        "the encoder: bound by %s)",
        path,
        store.manifest["build_seconds"],
        store.manifest["audio_seconds_per_second"],
        store.manifest["decode_wait_seconds"],
        store.manifest["workers"],
        store.manifest["encoder_seconds"],
        store.manifest["bound_by"],
    )
    return store


def decode_workers(batches: int) -> int:
    """Decoding processes for a build of `batches` encoder batches: one per core the process may
    use (a build is bound by decoding), none where there are too few batches to repay starting
    them (a smoke run's store is one or two batches)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, batches // 2) if batches > 2 else 0


def _frame_counts(encoder: nn.Module, lengths: Sequence[int]) -> np.ndarray:
    # +1: a clip resampled to 16 kHz may come out a sample longer than its header promised.
    counts = encoder._get_feat_extract_output_lengths(torch.tensor(lengths, dtype=torch.long) + 1)
    return counts.numpy().astype(np.int64)


def _tail_shape(encoder: nn.Module, layers: str) -> tuple[int, ...]:
    hidden = encoder.config.hidden_size
    return (encoder.config.num_hidden_layers + 1, hidden) if layers == "all" else (hidden,)


def _check_complete(folder: Path) -> None:
    if not (folder / "manifest.json").is_file():
        raise RuntimeError(f"feature store {folder} was not completed")


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        return i, np.asarray(self.source[i]["input_values"], np.float32)


@torch.no_grad()
def _build(
    folder: Path,
    key: StoreKey,
    encoder: nn.Module,
    device: torch.device,
    layout: Layout,
    loader: torch.utils.data.DataLoader,
) -> None:
    """Run `encoder` on `device` over the batches of `loader`, write each clip's frames where
    `layout` puts them, then the index and the manifest."""
    started = time.time()
    compute, dtype = _PRECISION[key.precision]
    frames = layout.frames
    offsets = np.concatenate([[0], np.cumsum(frames)[:-1]])
    store = np.lib.format.open_memmap(
        folder / "frames.npy", mode="w+", dtype=dtype, shape=(int(frames.sum()), *layout.tail)
    )
    index = np.zeros((len(frames), 2), np.int64)
    index[:, 0] = offsets
    was_training = encoder.training
    home = next(encoder.parameters()).device
    encoder.eval().to(device)
    audio_samples = 0
    # Where the build's time goes: waiting for decoded audio (the loader's workers) or in the
    # encoder (the copy back to the host waits for the device, so the clock is honest there).
    waiting = encoding = 0.0
    batches = iter(loader)
    while True:
        tick = time.perf_counter()
        batch = next(batches, None)
        waiting += time.perf_counter() - tick
        if batch is None:
            break
        ids, audio, lengths = batch
        tick = time.perf_counter()
        with torch.autocast(device.type, dtype=compute, enabled=compute != torch.float32):
            hidden, counts = encode(encoder, audio.to(device), lengths.to(device), key.layers)
        hidden = hidden.to(compute).cpu()
        encoding += time.perf_counter() - tick
        hidden = (hidden.view(torch.uint16) if compute == torch.bfloat16 else hidden).numpy()
        for row, (i, n) in enumerate(zip(ids, counts[: len(ids)].tolist(), strict=True)):
            if n > frames[i]:
                raise RuntimeError(f"clip {i} gave {n} frames, more than the {frames[i]} its length promised")
            store[offsets[i] : offsets[i] + n] = hidden[row, :n]
            index[i, 1] = n
        audio_samples += int(lengths[: len(ids)].sum())
    store.flush()
    del store
    encoder.train(was_training).to(home)
    np.save(folder / "index.npy", index)
    seconds = time.time() - started
    manifest = {
        "key": key.as_dict(),
        "clips": len(frames),
        "frames": int(frames.sum()),
        "tail": list(layout.tail),
        "bytes": layout.nbytes,
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 3),
        "audio_seconds": round(audio_samples / RATE, 3),
        "audio_seconds_per_second": round(audio_samples / RATE / max(seconds, 1e-9), 1),
        "decode_wait_seconds": round(waiting, 3),
        "encoder_seconds": round(encoding, 3),
        "workers": loader.num_workers,
        "bound_by": "decoding" if waiting > encoding else "encoder",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
