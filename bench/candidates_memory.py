"""How many real-size models the app holds in memory, and whether MAX_LOADED_MODELS bounds it.

    python -m bench.candidates_memory [--limit 4]

Eight candidates at the sizes this project trains (random weights): the four default slots
(`bench.synthetic.build_checkpoints`) and a second copy of each as another training run
(`checkpoints/asr-b/` & co.). Two starts of `python app.py`, both with the int8 exports cached
(a first start fills the cache; its exports are not part of the figures):
  1. no bound (MAX_LOADED_MODELS=0): the default slots load with the first /status, then a
     visitor compares each pair in turn (/compare_transcribe, /compare_spot, /answer_pair),
     which loads the second copy; the serving process's RSS once each is in place (int8), and so
     what each model adds;
  2. the bound (`--limit`): the same visitor cycles through every pair twice; the serving
     process's peak RSS (sampled twice a second, export processes included) and how many models
     were unloaded.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf
from gradio_client import Client, handle_file

from bench.cold_start import CONTEXT, QUESTION, call
from bench.synthetic import build_checkpoints
from scripts.local_app import ROOT, free_port
from serving.scratch import scratch_folder

PAIRS = [("asr", "asr-b"), ("kws", "kws-b"), ("qa-distilbert", "qa-distilbert-b"), ("qa-xlmr", "qa-xlmr-b")]


class Sampler(threading.Thread):
    """The RSS of a process and its children, twice a second, until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def now(self) -> int:
        total = 0
        for p in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.peak = max(self.peak, self.now())


def settled(client: httpx.Client, url: str, timeout_s: float = 1800) -> dict:
    """/status once every model loaded serves int8 (no export under way) and none is loading."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = call(client, url, "status", [])
        if status and all(
            "upgrading" not in info and info.get("state") in ("loaded", "not loaded", "unavailable")
            for name, info in status.items()
            if name != "app"
        ):
            return status
        time.sleep(1)
    raise TimeoutError("the models did not settle")


def use(visitor: Client, clip: Path, a: str, b: str) -> None:
    """One comparison of the pair (a, b), as a visitor's page sends it (the clip uploaded)."""
    if a.startswith("asr"):
        args, endpoint = (handle_file(str(clip)), a, b, ""), "/compare_transcribe"
    elif a.startswith("kws"):
        args, endpoint = (handle_file(str(clip)), a, b), "/compare_spot"
    else:
        args, endpoint = (CONTEXT, QUESTION, a, b), "/answer_pair"
    for _ in range(600):  # a model still loading answers "not ready yet": ask again
        try:
            visitor.predict(*args, api_name=endpoint)
            return
        except Exception:  # noqa: BLE001 - not ready yet
            time.sleep(1)
    raise TimeoutError(f"{endpoint} {a} {b} never answered")


def loaded_names(status: dict) -> list[str]:
    return sorted(name for name, info in status.items() if name != "app" and info.get("state") == "loaded")


def start(root: Path, cache: Path, limit: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "ONNX_CACHE": str(cache), "MAX_LOADED_MODELS": str(limit), "PRELOAD_MODELS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--checkpoints", str(root), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            httpx.get(url, timeout=2)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    raise TimeoutError("the app did not start")


def run(root: Path, cache: Path, clip: Path, limit: int, rounds: int) -> dict:
    proc, url = start(root, cache, limit)
    sampler = Sampler(proc.pid)
    sampler.start()
    after: list[dict] = []
    try:
        visitor = Client(url, verbose=False)
        with httpx.Client(timeout=600) as client:
            status = settled(client, url)  # the default slots load with the first /status
            after.append({"loaded": loaded_names(status), "rss_mb": round(sampler.now() / 2**20)})
            for _ in range(rounds):
                for a, b in PAIRS:
                    use(visitor, clip, a, b)
                    status = settled(client, url)
                    after.append(
                        {"pair": [a, b], "loaded": loaded_names(status), "rss_mb": round(sampler.now() / 2**20)}
                    )
            unloads = status["app"]["unloads"]
    finally:
        sampler.done.set()
        proc.terminate()
        proc.wait(30)
    return {"limit": limit, "peak_rss_mb": round(sampler.peak / 2**20), "unloads": unloads, "steps": after}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=4, help="MAX_LOADED_MODELS for the bounded start")
    parser.add_argument("--cache", type=Path, default=None, help="an ONNX_CACHE to reuse (default: a fresh one)")
    args = parser.parse_args(argv)
    work = scratch_folder("bench-candidates-")
    root, cache = work / "checkpoints", args.cache or work / "onnx"
    build_checkpoints(root)
    for name in [a for a, _ in PAIRS]:
        shutil.copytree(root / name, root / f"{name}-b")
    clip = work / "clip.wav"
    sf.write(clip, (np.random.default_rng(0).standard_normal(16000 * 3) * 0.1).astype(np.float32), 16000)
    run(root, cache, clip, 0, 1)  # fills the export cache
    report = {"unbounded": run(root, cache, clip, 0, 1), "bounded": run(root, cache, clip, args.limit, 2)}
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
