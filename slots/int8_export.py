"""The int8 export in a process of its own, which reads the model from its folder, writes the
export to the cache and exits:

    python -m slots.int8_export KIND FOLDER TARGET

Why a process: exporting and quantizing a model allocates several times its size, and the serving
process kept most of it afterwards (four real-size models exported in the app: 9.8 GB of RSS that
stayed, against 1.7 GB when the app started with the exports cached). Here that memory is returned
when the process exits, and its CPU time runs at the model-work priority (`core.inference`).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core import settings

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1800.0
# Models this large export here; smaller ones in the serving process, where the export's memory is
# small and a process start (its imports, ~4 s on 2 cores) would cost more than the export itself.
# DistilHuBERT, the smallest model the app serves for real, has 23.5 M parameters.
OWN_PROCESS_FROM = 5_000_000


def export(kind: str, model: Any, folder: Path, target: Path) -> dict[str, Any] | None:
    """`model` (read from `folder`) exported to int8 at `target`: in a process of its own from
    `OWN_PROCESS_FROM` parameters on (what it cost), in this one below (None)."""
    from slots import onnx_serving

    if onnx_serving.source_parameters(model) < OWN_PROCESS_FROM:
        onnx_serving.build(kind, model, target)
        return None
    return run(kind, folder, target)


def run(kind: str, folder: Path, target: Path, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """Export the model in `folder` to `target` in a child process; what it cost (seconds, the
    child's peak RSS). Raises RuntimeError with the child's last words if it fails."""
    env = settings.child_env(ROOT)
    command = [sys.executable, "-m", "slots.int8_export", kind, str(folder), str(target)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0 or not Path(target).is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the export process failed ({done.returncode}): {last}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {**report, "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str]) -> None:
    from core.inference import STEP

    if STEP:
        os.nice(STEP)  # below the app, as its model threads run
    kind, folder, target = argv
    from slots import onnx_serving
    from slots.loading import load_model

    onnx_serving.build(kind, load_model(kind, Path(folder)).eval(), Path(target))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mb": round(peak_kb / 1024)}))


if __name__ == "__main__":
    main(sys.argv[1:])
