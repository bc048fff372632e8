"""Where a training run's host time goes, on the machine it runs on: the imports of a script's start
(`python -X importtime`) and, per optimizer step, what the training epoch calls (cProfile over a
`train.kws` run on a stored-feature store: the Trainer's own epoch, the experimental lean one
(`--lean_loop`), and on a GPU the lean epoch with its optimizer update from a CUDA graph).

    python -m bench.step_profile                       # tiny sizes on a CPU, a real-size store on a GPU
    python -m bench.step_profile --steps 600 --json out.json
    python -m bench.step_profile --task asr            # train.asr (CTC head) instead of train.kws

Issue #17: on a GPU a stored-feature step is ~0.4 ms of kernels inside ~3 ms of a Trainer step
(docs/benchmarks.md); which calls make up the rest on that machine decides what to cut next (a
whole-step CUDA graph, or fewer loader hand-offs). cProfile inflates Python calls, so its ms per
step are an upper bound for each call's share, not a timing; the run's own `train` phase without
the profiler is what `bench.train_e2e` times.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import pstats
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.train_e2e import TASKS, make_encoder, make_tree

# The lean loop's epoch, else the Trainer's own (not LeanLoop's `_run_epoch`, which only picks one).
EPOCHS = (("lean_loop.py", "_lean_epoch"), ("trainer.py", "_run_epoch"))
TOP = 14
# What some callees are, where their profiler names do not say it.
NAMES = {
    "lr_scheduler.py:wrapper": "optimizer.step (as the scheduler wraps it)",
    "clip_grad.py:_no_grad_wrapper": "clip_grad_norm_",
    "trainer.py:_maybe_log_save_evaluate": "_maybe_log_save_evaluate (with its logging and evaluations)",
}


def import_times(module: str = "train.kws") -> dict:
    """Seconds `python -m module --help` takes, and the import time of each top-level
    package under it (its modules' own times summed: torch, transformers, datasets, the project's)."""
    started = time.perf_counter()
    # A run's start as `python -m` makes it (imports without garbage collection: train/__init__.py);
    # `--help` stops main once its arguments are parsed.
    command = [sys.executable, "-X", "importtime", "-m", module, "--help"]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    wall = time.perf_counter() - started
    packages: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            root = match.group(2).split(".")[0]
            packages[root] = packages.get(root, 0.0) + int(match.group(1)) / 1e6
    slowest = sorted(packages.items(), key=lambda item: -item[1])[:TOP]
    return {"process_s": round(wall, 2), "packages_s": [[name, round(s, 3)] for name, s in slowest]}


def _find(stats: pstats.Stats, file: str, name: str):
    keys = stats.stats  # type: ignore[attr-defined]
    return next((key for key in keys if Path(key[0]).name == file and key[2] == name), None)


def epoch_callees(stats: pstats.Stats, steps: int) -> dict:
    """The epoch function's own cumulative time and each of its callees' (ms per optimizer step)."""
    epoch = next((key for file, name in EPOCHS if (key := _find(stats, file, name))), None)
    if epoch is None:
        return {}
    table = stats.stats  # type: ignore[attr-defined]
    calls = []
    for key, (_cc, _nc, _tt, _ct, callers) in table.items():
        if epoch in callers:
            cumulative = callers[epoch][3]
            name = f"{Path(key[0]).name}:{key[2]}"
            calls.append((cumulative, NAMES.get(name, name)))
    calls.sort(reverse=True)
    return {
        "epoch_function": f"{Path(epoch[0]).name}:{epoch[2]}",
        "epoch_ms_per_step": round(table[epoch][3] * 1e3 / steps, 3),
        "callees_ms_per_step": [[name, round(s * 1e3 / steps, 3)] for s, name in calls[:TOP]],
    }


# Per task: the tree at tiny size and on a GPU (a store of a few thousand clips / a few hundred
# utterances: enough steps, built in seconds).
SIZES = {"kws": ((240, 24, 24), (3_000, 300, 300)), "asr": ((24, 6, 6), (400, 40, 40))}


def profile_run(script, argv: list[str], steps: int) -> dict:
    """One in-process `script.main(argv)` under cProfile (its imports already done)."""
    profiler = cProfile.Profile()
    profiler.enable()
    folder = script.main(argv)
    profiler.disable()
    metrics = json.loads((Path(folder) / "metrics.json").read_text())
    extra = metrics.get("extra", {})
    stats = pstats.Stats(profiler)
    return {
        "loop": extra.get("training_loop"),
        "train_phase_s_profiled": extra.get("phases_s", {}).get("train"),
        **epoch_callees(stats, steps),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=list(SIZES), default="kws", help="train.kws (default) or train.asr")
    parser.add_argument("--tiny", action="store_true", help="tiny encoder and tree (default on a CPU)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 600; tiny 60)")
    parser.add_argument("--work", type=Path, default=Path("outputs/bench-profile"), help="scratch folder (emptied)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    tiny = args.tiny or not torch.cuda.is_available()
    steps = args.steps or (60 if tiny else 600)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    task = TASKS[args.task]
    results: dict = {"device": device, "task": args.task, "tiny": tiny, "steps": steps}
    results["imports"] = import_times(task.module)
    print(f"# step_profile on {device}; `{task.module}`'s start: {results['imports']['process_s']} s, by package:")
    for name, seconds in results["imports"]["packages_s"]:
        print(f"  {seconds:7.3f} s  {name}")

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    make_encoder(args.work / "encoder", tiny)
    make_tree(args.work / "data", task, SIZES[args.task][0 if tiny else 1])
    common = [
        task.config, "--model_name_or_path", str(args.work / "encoder"), "--data_dir", str(args.work / "data"),
        "--feature_cache_dir", str(args.work / "cache"), "--examples", "false",
        "--max_steps", str(steps), "--eval_steps", "100000", "--save_strategy", "no", "--disable_tqdm", "true",
    ]  # fmt: skip
    if args.task == "kws":
        common += ["--silence_clips", "4"]
    script = importlib.import_module(task.module)

    def run_args(name: str, extra: list[str]) -> list[str]:
        folder = "".join(c if c.isalnum() else "-" for c in name)
        return [
            *common,
            "--output_dir",
            str(args.work / f"ck-{folder}"),
            "--run_dir",
            str(args.work / f"run-{folder}"),
            *extra,
        ]

    # A first run builds the store (and runs every shape once); the profiled ones reuse it.
    script.main(run_args("warm-up", []))
    results["runs"] = {}
    runs = [("lean", ["--lean_loop"]), ("trainer", [])]
    if torch.cuda.is_available():  # the optimizer update from a CUDA graph (train/graphed_update.py)
        runs.append(("lean, graphed update", ["--lean_loop", "--graphed_update"]))
    for name, extra in runs:
        result = results["runs"][name] = profile_run(script, run_args(name, extra), steps)
        print(
            f"\n## {name} ({result['loop']}): train phase {result['train_phase_s_profiled']} s under the profiler, "
            f"{result.get('epoch_function')} {result.get('epoch_ms_per_step')} ms a step; its callees (ms a step):"
        )
        for callee, ms in result.get("callees_ms_per_step", []):
            print(f"  {ms:8.3f}  {callee}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
