"""The int8 export in processes of their own, one per step (export, the kind's fusion, quantization),
each of which exits when done (`run`; the steps: `main`).

Why processes: exporting and quantizing a model allocates several times its size, and a process
keeps most of it afterwards (four real-size models exported in the app: 9.8 GB of RSS that stayed,
against 1.7 GB when the app started with the exports cached); and in one process the steps' memory
adds up (XLM-R: 4.7 GB after the export, 9.0 after the fusion, 11.0 after quantization). Each step's
memory is returned when its process exits, and its CPU time runs at the model-work priority
(`core.inference`).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core import settings
from slots import onnx_graph

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
    """Export the model in `folder` to `target`, each step (export, the kind's fusion if it has one,
    quantization) in a process of its own; what it cost (seconds, the largest step's peak RSS).
    Raises RuntimeError with a step's last words if it fails."""
    start = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        graph, fused, staged = (str(Path(tmp) / name) for name in ("model.onnx", "fused.onnx", "model.int8.onnx"))
        reports = [_step(["export", kind, str(folder), graph], timeout_s)]
        if kind in onnx_graph.FUSIONS:
            reports.append(_step(["fuse", kind, str(folder), graph, fused], timeout_s))
            graph = reports[-1]["graph"]
        reports.append(_step(["quantize", graph, staged], timeout_s))
        os.replace(staged, target)  # a reader never sees half a file
    return {"peak_rss_mb": max(r["peak_rss_mb"] for r in reports), "seconds": round(time.perf_counter() - start, 1)}


def _step(args: list[str], timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "slots.int8_export", *args]
    done = subprocess.run(command, cwd=ROOT, env=settings.child_env(ROOT), capture_output=True, text=True,
                          timeout=timeout_s)  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the export process failed at {args[0]} ({done.returncode}): {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    """One step: `export KIND FOLDER GRAPH`, `fuse KIND FOLDER GRAPH FUSED` (prints the graph to
    quantize) or `quantize GRAPH TARGET`. Only the export imports torch."""
    from core.inference import STEP

    if STEP:
        os.nice(STEP)  # below the app, as its model threads run
    step, *args = argv
    report: dict[str, Any] = {}
    if step == "export":
        from slots import onnx_serving
        from slots.loading import load_model

        kind, folder, graph = args
        onnx_serving.export_graph(kind, load_model(kind, Path(folder)), Path(graph))
    elif step == "fuse":
        kind, folder, graph, fused = args
        # The config's numbers as attributes: transformers' config classes would import torch.
        config = SimpleNamespace(**json.loads((Path(folder) / "config.json").read_text()))
        report["graph"] = str(onnx_graph.fuse(kind, Path(graph), config, Path(fused)))
    else:
        graph, target = args
        onnx_graph.quantize(Path(graph), Path(target))
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
