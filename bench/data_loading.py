"""Does data loading keep up? Utterances per second through the training scripts' loading path
(decode + resample + feature extractor + padding, in DataLoader worker processes), the
feature-cache build's audio seconds per second, and batches per second read back from a store
(KWS- and ASR-shaped, DistilHuBERT widths, bf16) with and without worker processes.

    python -m bench.data_loading                       # 96 synthetic LibriSpeech-like utterances
    python -m bench.data_loading --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import HubertModel
from transformers.trainer_pt_utils import LengthGroupedSampler

from bench.synthetic import librispeech_like
from bench.train_speed import hubert_config
from speech.audio import TARGET_RATE
from speech.ctc import build_char_vocab, make_processor
from train.asr import CTCCollator, SpeechDataset
from train.feature_store import FeatureStore, encoder_fingerprint, open_or_build, store_key
from train.librispeech import load_local
from train.stored_batches import CachedDataset, collate_features


def loading_rate(dataset: SpeechDataset, collator: CTCCollator, workers: int, batch: int = 16) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collator)
    start = time.perf_counter()
    count = sum(len(b["input_values"]) for b in loader)
    return count / (time.perf_counter() - start)


def build_rate(dataset: SpeechDataset, encoder: HubertModel, root: Path, workers: int) -> float:
    key = store_key(
        encoder_fingerprint(encoder), "last", "fp32", {"bench": str(root)}, [str(i) for i in range(len(dataset))], {}
    )
    store = open_or_build(root, key, dataset, encoder, device=torch.device("cpu"), num_workers=workers)
    return store.manifest["audio_seconds_per_second"]


STORE_SHAPES = {
    "kws": (64, lambda rng, n: np.full(n, 49)),  # batch, frames per clip (50 a second)
    "asr": (16, lambda rng, n: (np.clip(rng.normal(12.7, 3.3, n), 1.5, 20.0) * 50).astype(int)),
}


def store_reading_ms(root: Path, task: str, batches: int, workers: int, width: int = 768) -> float:
    """Milliseconds per length-grouped batch read from a bf16 store through the training collator
    (a store of random bits; the same store for every worker count)."""
    batch, frames = STORE_SHAPES[task]
    counts = frames(np.random.default_rng(0), batch * batches)
    folder = root / f"store-{task}"
    if not folder.exists():
        folder.mkdir(parents=True)
        np.save(
            folder / "frames.npy", np.random.default_rng(0).integers(0, 2**15, (int(counts.sum()), width), np.uint16)
        )
        np.save(folder / "index.npy", np.stack([np.cumsum(counts) - counts, counts], 1))
    dataset = CachedDataset(
        FeatureStore(folder, {"key": {"precision": "bf16"}}, True), [0] * len(counts), (counts * 320).tolist()
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        num_workers=workers,
        collate_fn=collate_features,
        sampler=LengthGroupedSampler(batch, lengths=dataset.lengths),
    )
    for _ in loader:  # once into the page cache, as after the build
        pass
    start = time.perf_counter()
    count = sum(1 for _ in loader)  # worker start-up included: the Trainer starts them every epoch
    return 1e3 * (time.perf_counter() - start) / count


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=96)
    parser.add_argument("--build_utterances", type=int, default=16, help="Clips for the DistilHuBERT-size build.")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts.")
    parser.add_argument("--store_batches", type=int, default=100, help="Batches per stored-feature reading test.")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (TARGET_RATE, 48_000):  # LibriSpeech is 16 kHz; 48 kHz sources must be resampled
            seconds = librispeech_like(Path(tmp) / f"ls{rate}", {"train": args.utterances}, rate=rate)
            utts = load_local(Path(tmp) / f"ls{rate}" / "train-clean-100")
            processor = make_processor(build_char_vocab(u.text for u in utts))
            dataset = SpeechDataset(utts, seconds, processor)
            for workers in args.workers:
                rate_ups = loading_rate(dataset, CTCCollator(processor), workers)
                rows.append(
                    {
                        "what": f"loading, {rate // 1000} kHz flac",
                        "workers": workers,
                        "utterances_per_s": round(rate_ups, 1),
                        "audio_s_per_s": round(rate_ups * sum(seconds) / len(seconds), 1),
                    }
                )
                print(rows[-1], flush=True)
        torch.manual_seed(0)
        tiny = HubertModel(hubert_config(tiny=True)).eval()
        real = HubertModel(hubert_config(tiny=False)).eval()  # DistilHuBERT's size, random weights
        for name, encoder, n in (("tiny", tiny, args.utterances), ("DistilHuBERT-size", real, args.build_utterances)):
            if n == 0:
                continue
            rows.append(
                {
                    "what": f"cache build, {name} encoder, fp32 CPU",
                    "workers": 2,
                    "utterances": n,
                    "audio_s_per_s": build_rate(_first(dataset, n), encoder, Path(tmp) / f"cache-{name}", 2),
                }
            )
            print(rows[-1], flush=True)
        for task in STORE_SHAPES if args.store_batches else ():
            for workers in args.workers:
                ms = store_reading_ms(Path(tmp), task, args.store_batches, workers)
                rows.append(
                    {
                        "what": f"stored features, {task}-shaped batches",
                        "workers": workers,
                        "ms_per_batch": round(ms, 2),
                        "batch": STORE_SHAPES[task][0],
                    }
                )
                print(rows[-1], flush=True)
    for row in rows:
        row["machine"] = f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads"
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


def _first(dataset: SpeechDataset, n: int) -> SpeechDataset:
    return SpeechDataset(dataset.utterances[:n], [x / TARGET_RATE for x in dataset.lengths[:n]], dataset.processor)


if __name__ == "__main__":
    main()
