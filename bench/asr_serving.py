"""Speech recognition served on this machine's CPU, measured through the app and next to the raw
forward pass of the same model, in one run (real architecture, random weights: speed does not
depend on the values).

    python -m bench.asr_serving                          # facebook/wav2vec2-base-960h's shape
    python -m bench.asr_serving --seconds 5 30 60 --repeat 3 --json out.json
    python -m bench.asr_serving --shape distilhubert     # what train.asr fine-tunes (2 layers)
    python -m bench.asr_serving --shape tiny --seconds 2 --repeat 1   # the steps in seconds, no figure

Prints, per clip length: the endpoint's time over plain HTTP (`/transcribe`, after the upload)
and its real-time factor, the serving model's single forward pass and torch fp32's forward pass
over the same samples; then the live tab's cost per 0.5 s microphone chunk (mean, max) over a
60 s stream, which must stay under 0.5 s to keep up.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from bench.serve_speed import call_http, upload
from bench.synthetic import ctc_checkpoint
from serving.scratch import scratch_folder
from speech.audio import TARGET_RATE

RATE = TARGET_RATE
# The architectures measured (`bench.synthetic.ctc_checkpoint`): facebook/wav2vec2-base-960h's
# (95 M parameters), DistilHuBERT's (HuBERT-base widths, 2 transformer layers: what `train.asr`
# fine-tunes), and the tests' tiny HuBERT (every step in seconds, no figure to keep).
SHAPES = {"base-960h": "wav2vec2-base", "distilhubert": "distilhubert", "tiny": "tiny"}


def transcribe_http(url: str, path: Path) -> float:
    """Seconds for one `/transcribe` call over plain HTTP, the upload excluded."""
    return call_http(url, "transcribe", [upload(url, path)])


@torch.inference_mode()
def forward_s(model, samples: np.ndarray) -> float:
    start = time.perf_counter()
    model(torch.from_numpy(samples)[None])
    return time.perf_counter() - start


def live_costs(loaded, seconds: float = 60.0, chunk_s: float = 0.5) -> list[float]:
    """Seconds each live update took, feeding `seconds` of 48 kHz microphone audio in chunks."""
    from ui.asr import live_update

    rng = np.random.default_rng(0)
    state = None
    costs = []
    for _ in range(int(seconds / chunk_s)):
        chunk = (rng.standard_normal(int(48_000 * chunk_s)) * 3000).astype(np.int16)
        start = time.perf_counter()
        state, _, _ = live_update(loaded, state, (48_000, chunk))
        costs.append(time.perf_counter() - start)
    return costs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 30.0, 60.0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--shape", choices=list(SHAPES), default="base-960h")
    args = parser.parse_args(argv)
    work = scratch_folder("asr-serving-")  # a 360 MB model and its export: removed at exit
    os.environ.setdefault("ONNX_CACHE", str(work / "onnx-cache"))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the other slots: no hub here, fail at once
    from transformers import AutoModelForCTC

    import app

    ctc_checkpoint(work, SHAPES[args.shape])
    folder = work / "asr"
    reference = AutoModelForCTC.from_pretrained(folder).eval()  # torch fp32, for the raw column
    start = time.perf_counter()
    registry = app.open_registry(work, preload=True)
    demo = app.build_app(registry)
    loaded = registry["asr"].settled(wait_s=600)
    load_s = time.perf_counter() - start
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Started as `python app.py` starts, its audio decoding workers too (`bench.serve_speed`).
    app.serve(demo, "127.0.0.1", port, started=app.warm_start(registry, False), prevent_thread_lock=True, quiet=True)
    url = demo.local_url
    result = {
        "shape": args.shape,
        "precision": loaded.precision,
        "load_s": round(load_s, 1),
        "threads": torch.get_num_threads(),
        "clips": [],
    }
    print(
        f"{args.shape}: serving {loaded.precision}; loaded (with any export) in {load_s:.1f} s; "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"{'clip':>6} {'endpoint':>9} {'RTF':>6} {'serving fwd':>12} {'torch fp32 fwd':>15} {'endpoint/serving':>17}"
    )
    rng = np.random.default_rng(0)
    for seconds in args.seconds:
        samples = (rng.standard_normal(int(seconds * RATE)) * 0.1).astype(np.float32)
        clip = work / f"clip-{seconds:g}.wav"
        sf.write(clip, samples, RATE, subtype="PCM_16")
        transcribe_http(url, clip)  # warm-up
        # Round by round, so that the machine's drift over the minutes lands in all three columns.
        rounds = [
            (transcribe_http(url, clip), forward_s(loaded.model, samples), forward_s(reference, samples))
            for _ in range(args.repeat)
        ]
        endpoint, serving, fp32 = (statistics.median(column) for column in zip(*rounds, strict=True))
        row = {
            "seconds": seconds,
            "endpoint_s": round(endpoint, 3),
            "rtf": round(endpoint / seconds, 3),
            "serving_forward_s": round(serving, 3),
            "torch_fp32_forward_s": round(fp32, 3),
        }
        result["clips"].append(row)
        print(
            f"{seconds:>5g}s {endpoint:>8.2f}s {endpoint / seconds:>6.3f} {serving:>11.2f}s {fp32:>14.2f}s "
            f"{endpoint / serving:>16.2f}x"
        )
    first, *costs = live_costs(loaded)  # the first update also warms the model's first shapes
    result["live"] = {
        "chunk_s": 0.5,
        "first_s": round(first, 3),
        "mean_s": round(statistics.mean(costs), 3),
        "max_s": round(max(costs), 3),
        "p95_s": round(float(np.percentile(costs, 95)), 3),
    }
    print(
        f"live, 0.5 s chunks over 60 s: first update {first:.3f} s; then mean {result['live']['mean_s']:.3f} s, "
        f"p95 {result['live']['p95_s']:.3f} s, max {result['live']['max_s']:.3f} s per update (keeps up while < 0.5 s)"
    )
    demo.close()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
