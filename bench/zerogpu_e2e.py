"""ZeroGPU end to end on a CUDA machine: the real `spaces` package in its ZeroGPU mode (CUDA
emulated outside decorated calls, a forked worker per GPU call) against a stand-in device API on
loopback (`scripts/zerogpu_device_api.py`), the app on the four slots at the project's real sizes
(random weights), driven as visitors do (`scripts/zerogpu_run.py`):

    python -m bench.zerogpu_e2e                 # needs a CUDA build of torch and a GPU

Prints, per visit, the GPU calls it made (seconds asked, seconds used: what ZeroGPU would charge)
and whether it answered; and the GPU seconds a Live recording used (none, by design).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf
import torch

from bench.synthetic import build_checkpoints
from scripts.local_app import ROOT
from scripts.zerogpu_device_api import DeviceApi
from serving.scratch import scratch_folder


def main() -> dict:
    if torch.version.cuda is None or not torch.cuda.is_available():
        sys.exit("needs a CUDA build of torch and a GPU (the spaces package's ZeroGPU mode patches CUDA)")
    root = scratch_folder("zerogpu-e2e-")
    build_checkpoints(root / "checkpoints")
    long_clip = root / "five_minutes.wav"
    sf.write(long_clip, np.random.default_rng(0).normal(0, 0.05, 16_000 * 300).astype(np.float32), 16_000)
    with DeviceApi(quota_s=300, gpu=os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]) as api:
        env = {
            **os.environ,
            "SPACES_ZERO_GPU": "true",
            "SPACES_ZERO_DEVICE_API_URL": api.url,
            "ZEROGPU_OFFLOAD_DIR": str(root / "offload"),
            "ONNX_CACHE": str(root / "onnx"),
        }
        squad = ROOT / "assets" / "qa" / "sample_squad_v2.json"
        command = [sys.executable, "-m", "scripts.zerogpu_run", str(root / "checkpoints"), str(squad), str(long_clip)]
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        lines = [line for line in run.stdout.splitlines() if line.startswith("REPORT ")]
        if run.returncode != 0 or not lines:
            print(run.stdout[-4000:], run.stderr[-4000:])
            sys.exit(f"the app on ZeroGPU failed ({run.returncode})")
        report = json.loads(lines[-1].removeprefix("REPORT "))
        calls = list(api.calls)
        workers = sorted(set(api.allowed))
        print(f"device API: {api.startups} startup report(s), {len(calls)} GPU calls, worker processes {workers}")
    print(f"precisions: {report['precisions']}; Live copies on the CPU: {report['live_is_a_copy']}")
    for name, visit in {**report["visits"], "live (5 s, both tabs)": report["live"]}.items():
        start, end = visit["window"]
        inside = [c for c in calls if start <= c.started <= end]
        used = sum(c.used_s or 0 for c in inside)
        asked = [c.asked_s for c in inside]
        failed = sum(c.failed for c in inside)
        print(f"{name:<24} GPU calls {len(inside)}, asked {asked} s, used {used:.2f} s, failed {failed}")
    return report


if __name__ == "__main__":
    main()
