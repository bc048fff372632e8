"""Serving speed of every endpoint, next to the raw forward pass of the same model in what the app
serves and in torch fp32, in one run (real architectures, random weights: speed does not depend on
the values). On a CPU the app serves int8 (ONNX Runtime); on a CUDA GPU fp16 (PyTorch), and the
table also gives the raw int8 forward on this machine's CPU and how far fp16 is from fp32.

    python -m bench.serve_speed                       # 7 calls per endpoint; a GPU where there is one
    python -m bench.serve_speed --repeat 11 --json out.json
    python -m bench.serve_speed --device cpu --precision fp16   # the GPU path's steps, on a CPU
    python -m bench.serve_speed --tiny --repeat 1               # the same steps on tiny models, a 10 s long clip

The models: DistilHuBERT-size CTC and keyword classifier (HuBERT-base widths, 2 layers),
DistilBERT-base and XLM-R-base QA, saved with the project's `save_checkpoint`. Both QA models get
the same small WordPiece tokenizer made here (the embedding tables keep the real vocabulary sizes;
speed depends on the token count, not on which tokens), so one context fills exactly one 384-token
window for each model.

Prints per endpoint: its p50 over plain HTTP (upload excluded), the raw int8 forward of the same
input (what the app serves), the server's own overhead (the difference), and the raw torch fp32
forward, all three called in turn so that the ratios come from the same minutes; for QA also the
two models one after the other and side by side. Also the app's time
from launch to its first answer (a separate `python app.py` process).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from bench.synthetic import QA_QUESTION as QUESTION
from bench.synthetic import QA_WORDS as WORDS
from bench.synthetic import build_checkpoints
from bench.timing import p50
from qa import extractive
from serving.scratch import scratch_folder
from slots import onnx_serving
from speech.audio import TARGET_RATE

QA_NAMES = ("qa-distilbert", "qa-xlmr")


def context_for(tokenizers: list, tokens: int = extractive.WINDOW) -> str:
    """The longest context whose question + context fits one `tokens` window for every tokenizer."""
    words: list[str] = []
    while True:
        candidate = " ".join([*words, WORDS[len(words) % len(WORDS)]])
        if max(len(t(QUESTION, candidate)["input_ids"]) for t in tokenizers) > tokens:
            return " ".join(words)
        words.append(WORDS[len(words) % len(WORDS)])


@functools.cache
def http():
    """One HTTP client for the whole run, its connections kept alive, as any API client does. A
    new `httpx.Client` costs ~56 ms here (its TLS context), so `httpx.post` per call (two per call
    API request) had put ~110 ms of the client's own set-up into every endpoint's time."""
    import httpx

    return httpx.Client(timeout=600)


def paired(served, raw, fp32, repeat: int) -> tuple[float, float, float, float | None]:
    """p50 of `served`, p50 of `raw` (int8), the median of (served − raw) and p50 of `fp32` (None:
    no model), over calls made in turn: the machine's drift moves all three alike."""
    if fp32 is None:
        return (*paired(served, raw, lambda: None, repeat)[:3], None)
    with torch.inference_mode():
        served(), raw(), fp32()  # warm up
        rows = []
        for _ in range(repeat):
            ticks = [time.perf_counter()]
            for call in (served, raw, fp32):
                call()
                ticks.append(time.perf_counter())
            rows.append([b - a for a, b in zip(ticks, ticks[1:], strict=False)])
    return (
        statistics.median(r[0] for r in rows),
        statistics.median(r[1] for r in rows),
        statistics.median(r[0] - r[1] for r in rows),
        statistics.median(r[2] for r in rows),
    )


def call_http(url: str, endpoint: str, data: list) -> float:
    """Seconds for one call over plain HTTP (Gradio's two-step call API)."""
    start = time.perf_counter()
    event = http().post(f"{url}gradio_api/call/{endpoint}", json={"data": data}).json()["event_id"]
    body = http().get(f"{url}gradio_api/call/{endpoint}/{event}").text
    if "event: complete" not in body:
        raise RuntimeError(f"{endpoint}: {body[:300]}")
    return time.perf_counter() - start


def upload(url: str, path: Path) -> dict:
    with path.open("rb") as f:
        uploaded = http().post(f"{url}gradio_api/upload", files={"files": f}).json()[0]
    return {"path": uploaded, "meta": {"_type": "gradio.FileData"}}


def half_against_fp32(
    fp32: dict, half: dict, fp32_audio: dict, half_audio: dict, qa_inputs, device: str, long_s: int
) -> dict:
    """How far the half-precision models are from fp32 on the benchmark's inputs: the largest
    difference of QA logits and keyword probabilities, and the share of CTC frames whose argmax
    agrees (random weights: near-ties make this a floor for a trained model's agreement)."""
    found = {}
    with torch.inference_mode():
        for name in QA_NAMES:
            inputs = qa_inputs(name, device)
            a, b = fp32[name](**inputs), half[name](**inputs)
            found[f"{name} logits, max |difference|"] = round(
                max(float((a.start_logits - b.start_logits.float()).abs().max()),
                    float((a.end_logits - b.end_logits.float()).abs().max())), 4,
            )  # fmt: skip
            span = [(int(o.start_logits.argmax()), int(o.end_logits.argmax())) for o in (a, b)]
            found[f"{name} same answer span"] = span[0] == span[1]
        a = torch.softmax(fp32["kws"](fp32_audio[1]).logits, -1)
        b = torch.softmax(half["kws"](half_audio[1]).logits.float(), -1)
        found["kws probabilities, max |difference|"] = round(float((a - b).abs().max()), 5)
        found["kws same label"] = int(a.argmax()) == int(b.argmax())
        a = fp32["asr"](fp32_audio[long_s]).logits.argmax(-1)
        b = half["asr"](half_audio[long_s]).logits.argmax(-1)
        found[f"asr frames with the same argmax ({long_s} s)"] = round(float((a == b).float().mean()), 4)
    return found


def launch_s(root: Path, timeout_s: float = 120) -> float:
    """Seconds from `python app.py` to its first HTTP 200."""
    import urllib.request

    from scripts.local_app import free_port

    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--checkpoints", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - start < timeout_s:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                    return time.perf_counter() - start
            except OSError:
                time.sleep(0.1)
        return float("nan")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny models: every step, in seconds")
    parser.add_argument("--json", help="Also write the rows to this file.")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--precision",
        choices=["auto", "int8", "fp16", "bf16"],
        default="auto",
        help="auto: int8 on a CPU, fp16 on a GPU",
    )
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    precision = ("int8" if device == "cpu" else "fp16") if args.precision == "auto" else args.precision
    os.environ.update(SERVE_DEVICE=device, SERVE_PRECISION=precision)  # the app's, in this process and launched

    import app
    from slots.loading import from_pretrained
    from slots.table import SLOTS

    # The long clip: 30 s, one window of the app's. The tiny test model makes 800 frames a second (a
    # real one 50), so its attention over 30 s spans 24,000 frames: 10 s keeps the rehearsal in seconds.
    long_s = 10 if args.tiny else 30
    root = scratch_folder("serve-speed-")  # ~2.5 GB of models and exports: removed at exit
    os.environ.setdefault("ONNX_CACHE", str(root / "onnx-cache"))
    onnx_serving.CACHE = Path(os.environ["ONNX_CACHE"])
    if args.tiny:
        from scripts.tiny_models import build_all

        build_all(root)
    else:
        build_checkpoints(root)
    torch_models = {name: from_pretrained(SLOTS[name].kind, root / name) for name in SLOTS}
    int8 = {
        name: onnx_serving.int8_model(SLOTS[name].kind, m, next((root / name).glob("*.safetensors")))
        for name, (m, _) in torch_models.items()
    }
    single = {
        name: onnx_serving.int8_model(
            SLOTS[name].kind, torch_models[name][0], next((root / name).glob("*.safetensors")), threads=1
        )
        for name in QA_NAMES
    }
    rng = np.random.default_rng(0)
    clips = {}
    for seconds in (1, 5, long_s):
        clips[seconds] = root / f"clip{seconds}.wav"
        sf.write(clips[seconds], (rng.standard_normal(seconds * TARGET_RATE) * 0.1).astype(np.float32), TARGET_RATE)
    audio = {seconds: torch.from_numpy(sf.read(path, dtype="float32")[0])[None] for seconds, path in clips.items()}
    tokenizers = [torch_models[name][1] for name in QA_NAMES]
    # One window each: the app's, or a tiny model's whole position table.
    positions = min(torch_models[n][0].config.max_position_embeddings - 2 for n in QA_NAMES)
    context = context_for(tokenizers, min(extractive.WINDOW, positions))
    windows = {name: len(torch_models[name][1](QUESTION, context)["input_ids"]) for name in QA_NAMES}

    # 1. Raw forwards (int8 on the CPU; torch fp32 and what the app serves on `device`) of exactly
    # what each endpoint runs.
    def qa_inputs(name: str, on: str = "cpu") -> dict:
        return {k: v.to(on) for k, v in torch_models[name][1](QUESTION, context, return_tensors="pt").items()}

    def synced(fn):  # a GPU call is timed to its end
        return (lambda: (fn(), torch.cuda.synchronize())) if device == "cuda" else fn

    raw: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for name in QA_NAMES:
            inputs = qa_inputs(name)
            raw[name] = {
                "fp32 cpu": p50(lambda m=torch_models[name][0], i=inputs: m(**i), args.repeat),
                "int8 cpu": p50(lambda m=int8[name], i=inputs: m(**i), args.repeat),
            }
        for key, name, seconds in (("kws 1 s", "kws", 1), ("asr 5 s", "asr", 5), (f"asr {long_s} s", "asr", long_s)):
            raw[key] = {
                "fp32 cpu": p50(lambda m=torch_models[name][0], a=audio[seconds]: m(a), args.repeat),
                "int8 cpu": p50(lambda m=int8[name], a=audio[seconds]: m(a), args.repeat),
            }
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    fp32 = {name: model.to(device) for name, (model, _) in torch_models.items()}
    served_models = int8 if dtype is None else {n: copy.deepcopy(m).to(device, dtype) for n, m in fp32.items()}
    fp32_audio = {seconds: a.to(device) for seconds, a in audio.items()}
    served_audio = fp32_audio if dtype is None else {seconds: a.to(device, dtype) for seconds, a in audio.items()}
    agreement = (
        {}
        if dtype is None
        else half_against_fp32(fp32, served_models, fp32_audio, served_audio, qa_inputs, device, long_s)
    )
    pair_inputs = {n: qa_inputs(n) for n in QA_NAMES}
    device_inputs = {n: qa_inputs(n, device) for n in QA_NAMES}

    def side_by_side(models: dict) -> None:
        threads = [threading.Thread(target=lambda n=n: models[n](**pair_inputs[n])) for n in QA_NAMES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    pair = {
        "sequential, all threads": p50(lambda: [int8[n](**pair_inputs[n]) for n in QA_NAMES], args.repeat),
        "side by side, 1 thread each": p50(lambda: side_by_side(single), args.repeat),
    }

    # 2. The app, in this process, int8 (the CPU default), every model loaded.
    registry = app.open_registry(root, preload=True)
    demo = app.build_app(registry)
    for slot in registry.slots.values():
        slot.settled(wait_s=600)
    # Started as `python app.py` starts (its audio decoding workers too: a first upload on each
    # would otherwise time a process start).
    app.serve(demo, "127.0.0.1", None, started=app.warm_start(registry, False), prevent_thread_lock=True, quiet=True)
    url = demo.local_url
    files = {seconds: upload(url, path) for seconds, path in clips.items()}

    def qa_pair(models: dict) -> None:
        inputs = pair_inputs if models is int8 else device_inputs
        for name in QA_NAMES:
            models[name](**inputs[name])

    # Each endpoint call alternates with the raw forward of what the app serves and the torch fp32
    # forward of the same input, so the machine's drift (±15 % from minute to minute here) moves
    # all three alike; overhead = median of the differences, and the ratio to fp32 comes from the
    # same turns.
    served = {
        "/status": paired(lambda: call_http(url, "status", []), lambda: None, None, args.repeat),
        "/answer": paired(
            lambda: call_http(url, "answer", [context, QUESTION]),
            synced(lambda: qa_pair(served_models)),
            synced(lambda: qa_pair(fp32)),
            args.repeat,
        ),
        "/spot 1 s": paired(
            lambda: call_http(url, "spot", [files[1]]),
            synced(lambda: served_models["kws"](served_audio[1])),
            synced(lambda: fp32["kws"](fp32_audio[1])),
            args.repeat,
        ),
    }
    for seconds in (5, long_s):
        served[f"/transcribe {seconds} s"] = paired(
            lambda s=seconds: call_http(url, "transcribe", [files[s]]),
            synced(lambda s=seconds: served_models["asr"](served_audio[s])),
            synced(lambda s=seconds: fp32["asr"](fp32_audio[s])),
            args.repeat,
        )
    demo.close()
    started = launch_s(root)

    # 3. The table.
    rows = []
    print(f"QA context: {windows} tokens (question + context) per model; {torch.get_num_threads()} torch threads")
    print(f"served: {precision} on {device}" + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else ""))
    cpu_int8 = {
        "/answer": sum(raw[n]["int8 cpu"] for n in QA_NAMES),
        "/spot 1 s": raw["kws 1 s"]["int8 cpu"],
        "/transcribe 5 s": raw["asr 5 s"]["int8 cpu"],
        f"/transcribe {long_s} s": raw[f"asr {long_s} s"]["int8 cpu"],
    }
    served_raw = f"{precision} raw"
    print(
        f"{'endpoint':<18} {'HTTP p50':>9} {served_raw:>9} {'overhead':>9} {'fp32 raw':>9} {'p50 / fp32':>10}"
        f" {'cpu int8 raw':>12}"
    )
    for endpoint, (p, served_s, overhead, fp32_s) in served.items():
        rows.append(
            {
                "endpoint": endpoint,
                "device": device,
                "precision": precision,
                "http_p50_s": p,
                "served_raw_s": served_s,
                "overhead_s": overhead,
                "fp32_raw_s": fp32_s,
                "ratio_to_fp32": p / fp32_s if fp32_s else None,
                "cpu_int8_raw_s": cpu_int8.get(endpoint),
            }
        )
        ratio = f"{p / fp32_s:10.2f}" if fp32_s else f"{'-':>10}"
        on_cpu = f"{cpu_int8[endpoint] * 1e3:10.0f}ms" if endpoint in cpu_int8 else f"{'-':>12}"
        print(
            f"{endpoint:<18} {p * 1e3:7.0f}ms {served_s * 1e3:7.0f}ms {overhead * 1e3:7.0f}ms "
            f"{(fp32_s or 0) * 1e3:7.0f}ms {ratio} {on_cpu}"
        )
    for label, seconds in pair.items():
        print(f"QA pair int8 on the CPU, {label}: {seconds * 1e3:.0f} ms")
    for what, value in agreement.items():
        print(f"{precision} against fp32, {what}: {value}")
    print(f"app answering after launch: {started:.1f} s")
    extra = {
        "qa_pair_int8_s": pair,
        "launch_s": started,
        "qa_window_tokens": windows,
        "raw": raw,
        "half_against_fp32": agreement,
    }
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, **extra}, indent=2))
    return rows


if __name__ == "__main__":
    main()
