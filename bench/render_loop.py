"""Disk that rendering pages of stored clips ("Listen to the mistakes") takes over a while: each
render hands Gradio the clips of one page, which it copies into its cache. Renders run through
Gradio's own event processing (`Blocks.process_api`: the handler, then the copy into the cache),
alternating two pages of a keyword checkpoint's clips, for `--seconds` and at least `--renders`
times; the folders the app and Gradio write are measured after the first round and at the end.

    python -m bench.render_loop --seconds 600          # the figure in docs/measurements.md
    python -m bench.render_loop --seconds 0 --renders 4 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20 if folder.exists() else 0.0


def checkpoint_with_clips(folder: Path, clips: int) -> Path:
    """A tiny keyword checkpoint whose evaluation stored `clips` misheard 1 s clips (noise)."""
    from core.examples import ExampleSet, write_examples
    from scripts.tiny_models import build_kws

    kws = build_kws(folder / "kws")
    rows = [
        {"id": f"c{i}", "true": "yes", "predicted": "no", "top3": [["no", 0.9], ["yes", 0.1]]} for i in range(clips)
    ]
    rng = np.random.default_rng(0)
    listen = [(i, lambda: (rng.standard_normal(16_000) * 0.1).astype(np.float32)) for i in range(clips)]
    write_examples(kws, ExampleSet("kws", "test", rows, listen))
    return folder


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--renders", type=int, default=4, help="at least this many, however long they take")
    parser.add_argument("--clips", type=int, default=16, help="stored clips: two pages of 8")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-render-"))
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(scratch / "gradio")  # read when the app's components are made
    try:
        return run(args, scratch)
    finally:
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before
        shutil.rmtree(scratch, ignore_errors=True)


def run(args: argparse.Namespace, scratch: Path) -> dict:
    from gradio.state_holder import SessionState

    import app
    from ui import common, error_views

    registry = app.open_registry(checkpoint_with_clips(scratch / "checkpoints", args.clips), preload=False)
    demo = app.build_app(registry)
    registry["kws"].get()
    on_cell = next(fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") == "on_cell")
    state = SessionState(demo)
    folders = {"gradio_cache": scratch / "gradio", "app_clips": error_views.CLIPS, "app_outputs": common.OUTPUTS}

    def render(page: int) -> None:
        asyncio.run(demo.process_api(block_fn=on_cell, inputs=["yes", "no", page], state=state))

    render(0)
    render(1)
    first = {name: round(folder_mb(f), 3) for name, f in folders.items()}
    renders = 2
    start = time.monotonic()
    while renders < args.renders or time.monotonic() - start < args.seconds:
        render(renders % 2)
        renders += 1
    end = {name: round(folder_mb(f), 3) for name, f in folders.items()}
    result = {"seconds": args.seconds, "renders": renders, "after_first_round_mb": first, "at_end_mb": end}
    print(f"{renders} renders in {args.seconds:g} s")
    for name in folders:
        print(f"{name:<13} after the first two renders {first[name]:8.3f} MB   at the end {end[name]:8.3f} MB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
