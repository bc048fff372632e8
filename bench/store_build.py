"""Where a feature store's build spends its time on the device: the frozen encoder on the batches a
build makes (length-grouped, `--cache_batch_seconds` of padded audio each) in each precision and
way, with and without the padding-proof front end, and the copy of its outputs to the host. No
decoding and no disk: the audio is random and already in memory.

    python -m bench.store_build            # on a GPU: DistilHuBERT size; on a CPU: tiny
    python -m bench.store_build --tiny --json out.json

Prints audio-seconds per second for each variant (the build today: bf16 autocast, padding-proof,
copy to pageable host memory) and what the copy costs per batch.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from transformers import HubertModel

from bench.train_speed import hubert_config, librispeech_seconds
from speech.audio import TARGET_RATE
from speech.heads import encode
from train.build_batches import length_batches, pad_batch

RATE = TARGET_RATE


def batches_of(task: str, batch_seconds: float, k: int, tiny: bool) -> list[torch.Tensor]:
    """k sample-length vectors, one per encoder batch, as a build of `task` makes them: ASR's
    taken at evenly spaced places of the length-sorted order, KWS's all 1 s clips."""
    rng = np.random.default_rng(0)
    if task == "kws":
        per = int(batch_seconds) if not tiny else 8
        return [torch.full((min(per, 256),), RATE, dtype=torch.long)] * k
    lengths = (librispeech_seconds(rng, 400 if not tiny else 40) * RATE).astype(np.int64)
    if tiny:
        lengths = lengths // 8
    grouped = length_batches(lengths.tolist(), int(batch_seconds * RATE) if not tiny else 4 * RATE)
    picks = np.linspace(0, len(grouped) - 1, k).round().astype(int)
    return [torch.tensor(lengths[grouped[i]]) for i in picks]


def variants(encoder: HubertModel, device: torch.device) -> dict[str, tuple[HubertModel, torch.dtype, bool]]:
    """name -> (encoder, input dtype, autocast to bf16)."""
    found = {"fp32": (encoder, torch.float32, False), "bf16 autocast (the build)": (encoder, torch.float32, True)}
    if device.type == "cuda":
        found["bf16 weights"] = (copy.deepcopy(encoder).to(torch.bfloat16), torch.bfloat16, False)
    return found


Batches = list[tuple[torch.Tensor, torch.Tensor]]  # (audio [B, S], samples per clip [B]) on the device


def time_variant(encoder: HubertModel, dtype: torch.dtype, autocast: bool, audio: Batches, padded: bool) -> float:
    """Seconds for one pass over `audio` (after a warm-up pass)."""
    device = audio[0][0].device

    def one_pass() -> None:
        for values, lengths in audio:
            with torch.autocast(device.type, torch.bfloat16) if autocast else contextlib.nullcontext():
                encode(encoder, values.to(dtype), lengths if padded else None, "last")

    with torch.no_grad():
        one_pass()
        sync(device)
        tick = time.perf_counter()
        one_pass()
        sync(device)
    return time.perf_counter() - tick


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def copy_back(encoder: HubertModel, audio: Batches) -> dict[str, float]:
    """Milliseconds per batch to bring the bf16 outputs to the host: pageable (the build) or pinned."""
    with torch.no_grad(), torch.autocast(audio[0][0].device.type, torch.bfloat16):
        outputs = [encode(encoder, values, lengths, "last")[0].to(torch.bfloat16) for values, lengths in audio]
    sync(audio[0][0].device)
    tick = time.perf_counter()
    for hidden in outputs:
        hidden.cpu()
    pageable = time.perf_counter() - tick
    pinned = [torch.empty(h.shape, dtype=h.dtype, pin_memory=h.is_cuda) for h in outputs]
    tick = time.perf_counter()
    for hidden, host in zip(outputs, pinned, strict=True):
        host.copy_(hidden, non_blocking=True)
    sync(audio[0][0].device)
    return {
        "pageable_ms": round(1000 * pageable / len(outputs), 2),
        "pinned_ms": round(1000 * (time.perf_counter() - tick) / len(outputs), 2),
        "mb_per_batch": round(sum(h.numel() * 2 for h in outputs) / len(outputs) / 1e6, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny encoder and batches (default on a CPU)")
    parser.add_argument("--batches", type=int, default=4, help="encoder batches per task and variant")
    parser.add_argument("--cache_batch_seconds", type=float, default=320.0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny = args.tiny or device.type == "cpu"
    torch.manual_seed(0)
    encoder = HubertModel(hubert_config(tiny=tiny)).eval().to(device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"# store_build on {name}, {'tiny' if tiny else 'DistilHuBERT-size'} encoder", flush=True)
    results: dict = {"device": name, "tiny": tiny, "tasks": {}}
    for task in ("asr", "kws"):
        lengths = batches_of(task, args.cache_batch_seconds, args.batches, tiny)
        audio = []
        batch_samples = int(args.cache_batch_seconds * RATE) if not tiny else 4 * RATE
        for n in lengths:  # shaped as the build pads them: its bucket's rows and length
            _, values, padded = pad_batch([(i, np.ones(int(x), np.float32)) for i, x in enumerate(n)], batch_samples)
            values = torch.randn(values.shape) * values
            audio.append((values.to(device), padded.to(device)))
        seconds = float(sum(n.sum() for n in lengths)) / RATE  # real audio, not the padding
        rows = {}
        for variant, (model, dtype, autocast) in variants(encoder, device).items():
            for padded in (True, False):
                label = f"{variant}, {'padding-proof' if padded else 'plain front end'}"
                took = time_variant(model, dtype, autocast, audio, padded)
                rows[label] = round(seconds / took, 1)
                print(f"  {task}: {label}: {rows[label]:,.0f} audio-s/s", flush=True)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            took = time_variant(encoder, torch.float32, True, audio, True)  # tuned on the warm-up pass
            torch.backends.cudnn.benchmark = False
            rows["bf16 autocast, padding-proof, cudnn.benchmark"] = round(seconds / took, 1)
            print(f"  {task}: with cudnn.benchmark: {rows['bf16 autocast, padding-proof, cudnn.benchmark']:,.0f}")
        copies = copy_back(encoder, audio)
        print(f"  {task}: copy to the host per batch: {copies}", flush=True)
        results["tasks"][task] = {
            "audio_seconds": round(seconds, 1),
            "batches": [len(n) for n in lengths],
            "audio_s_per_s": rows,
            "copy": copies,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
