"""Wall time of the training scripts end to end, as a user runs them: `python -m train.kws` and
`python -m train.asr` with the course report's config, the report's way (fp32, the frozen encoder
run on every batch of every epoch: `--no_feature_cache --precision fp32`) against this project's
default (the encoder run once into a feature store, the head trained on it), the default twice:
building the store, then reusing it, and once more reusing it in the experimental lean epoch
instead of the Trainer's own (`--lean_loop`); on a GPU a fifth time, reusing it with the lean
epoch's optimizer update from a CUDA graph (`--lean_loop --graphed_update`). One process per run, all in one
call, on synthetic trees shaped like the real sets (bench/synthetic.py; `--train kws=51094` for
the real Speech Commands training split's size) and a random-init encoder (speed does not depend
on the weights). Before a task's timed runs an untimed `--help` process imports what they import,
so the first of them does not alone pay for compiling bytecode or a cold file cache.

    python -m bench.train_e2e                  # on a GPU: DistilHuBERT-size encoder; on CPU: tiny
    python -m bench.train_e2e --tiny --tasks kws --json out.json

Prints each run's phases from its metrics.json (start-up: the interpreter and imports; setup:
arguments and seed; data listing; model + store build; training; evaluation; publishing and the
process's exit are the rest of its wall time), the store build's
audio-seconds per second and what bound it, the end-to-end ratios HW4 recipe / default, and the
training phase's ratio Trainer's loop / lean loop.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

PHASES = ("start-up", "setup", "data", "features", "train", "evaluate")


@dataclass(frozen=True)
class Task:
    """A training script, its config, and the synthetic tree it reads."""

    module: str
    config: str
    speech_commands: bool
    real: tuple[int, int, int]  # train / validation / test clips at real size
    tiny: tuple[int, int, int]


TASKS = {
    # Speech Commands: 51,094 training clips in the real set; 20,000 keep a GPU run in minutes.
    "kws": Task("train.kws", "train/configs/kws_hw4.json", True, (20_000, 2_000, 2_000), (240, 24, 24)),
    # LibriSpeech-shaped utterances (~12.7 s): 1,000 is 3.5 hours of audio.
    "asr": Task("train.asr", "train/configs/asr_hw4.json", False, (1_000, 100, 100), (24, 6, 6)),
}
RUNS = {
    "hw4 recipe": ["--no_feature_cache", "--precision", "fp32"],
    "default (store built)": [],
    "default (store reused)": [],
    # The same as the last, trained in train/lean_loop.py's epoch instead of the Trainer's own.
    "default (store reused, lean epoch)": ["--lean_loop"],
}
GRAPHED = "default (store reused, graphed update)"
EAGER_HEAD = "default (store reused, eager head step)"
# The A/B ratios of the optional machinery, training phase against training phase (> 1: it pays).
AB = {
    "lean_loop_train_phase": "Trainer's loop / lean loop",
    "graphed_update_train_phase": "lean loop / with the graphed update",
    "head_graphs_train_phase": "eager head step / from CUDA graphs",
}


def ratios_of(rows: dict[str, dict]) -> dict[str, float]:
    """The run's ratios by name: HW4's way against the default end to end (`built`, `reused`) and
    in the training phase (the default's store build counted in `train_phase_built`), and each
    A/B of `AB` whose two runs are there."""

    def ratio(a: float, b: float) -> float:
        return round(a / max(b, 1e-9), 2)

    hw4, built, reused = rows["hw4 recipe"], rows["default (store built)"], rows["default (store reused)"]
    found = {
        "built": ratio(hw4["process_s"], built["process_s"]),
        "reused": ratio(hw4["process_s"], reused["process_s"]),
        "train_phase_built": ratio(hw4["train"], built["features"] + built["train"]),
        "train_phase_reused": ratio(hw4["train"], reused["train"]),
    }
    lean = rows.get("default (store reused, lean epoch)")
    if lean:
        found["lean_loop_train_phase"] = ratio(reused["train"], lean["train"])
    if lean and GRAPHED in rows:
        found["graphed_update_train_phase"] = ratio(lean["train"], rows[GRAPHED]["train"])
    if EAGER_HEAD in rows:
        found["head_graphs_train_phase"] = ratio(rows[EAGER_HEAD]["train"], reused["train"])
    return found


def make_encoder(folder: Path, tiny: bool) -> None:
    """A random-init HuBERT encoder (DistilHuBERT's size, or tiny) with its feature extractor."""
    from transformers import HubertModel, Wav2Vec2FeatureExtractor

    from bench.train_speed import hubert_config

    torch.manual_seed(0)
    HubertModel(hubert_config(tiny=tiny)).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False).save_pretrained(folder)


def make_tree(folder: Path, task: Task, counts: tuple[int, int, int]) -> None:
    from bench.synthetic import librispeech_like, speech_commands_like

    splits = dict(zip(("train", "validation", "test"), counts, strict=True))
    (speech_commands_like if task.speech_commands else librispeech_like)(folder, splits)


def run_script(task: Task, extra: list[str], work: Path, name: str, common: list[str]) -> dict:
    """One run of the script in its own process; its metrics.json and the process's wall time."""
    out = work / "".join(c if c.isalnum() else "_" for c in name)
    command = [
        sys.executable,
        "-m",
        task.module,
        task.config,
        *common,
        "--output_dir",
        str(out / "checkpoint"),
        "--run_dir",
        str(out / "run"),
        *extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "checkpoint" / "metrics.json").read_text())
    return {"process_s": round(wall, 2), "metrics": metrics}


def warm_up(task: Task) -> float:
    """One untimed `python -m <script> --help` before a task's timed runs: it imports what a run
    imports, so that the first timed run (the report's way) does not alone pay for compiling
    bytecode nobody compiled yet or reading the packages into the file cache. Its seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", task.module, "--help"], capture_output=True, check=True)
    return time.perf_counter() - start


def summary(name: str, result: dict) -> dict:
    """A run's row: its phases, the rest of the process, the store's build facts and the loss."""
    metrics = result["metrics"]
    phases = metrics.get("extra", {}).get("phases_s", {})
    row = {"run": name, "process_s": result["process_s"], **{p: phases.get(p, 0.0) for p in PHASES}}
    row["publish + exit"] = round(result["process_s"] - sum(phases.values()), 2)
    stores = metrics.get("extra", {}).get("feature_cache") or {}
    train_store = stores.get("train") or {}
    if train_store:
        row["store"] = "reused" if train_store.get("reused") else "built"
        built = [s for s in stores.values() if not s.get("reused")]
        if built:
            row["build_s"] = round(sum(s["build_seconds"] for s in built), 2)
            row["audio_s_per_s"] = train_store.get("audio_seconds_per_second")
            row["decode_wait_s"] = round(sum(s.get("decode_wait_seconds") or 0 for s in built), 2)
            row["encoder_s"] = round(sum(s.get("encoder_seconds") or 0 for s in built), 2)
            row["bound_by"] = train_store.get("bound_by")
            row["decode_workers"] = train_store.get("workers")
        row["read_from"] = (train_store.get("read_from") or "").split(" (")[0]
    row["loop"] = (metrics.get("extra", {}).get("training_loop") or "").split(":")[0]
    losses = [h["loss"] for h in metrics.get("history", []) if "loss" in h]
    row["last_loss"] = round(losses[-1], 4) if losses else None
    steps = max((h["step"] for h in metrics.get("history", []) if "step" in h), default=0)
    row["steps"] = steps
    row["train_ms_per_step"] = round(1000 * row["train"] / steps, 2) if steps else None
    return row


def print_table(rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    widths = {k: max(len(k), *(len(str(row.get(k, ""))) for row in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(str(row.get(k, "")).ljust(widths[k]) for k in keys))


def sizes(task: Task, tiny: bool, train: int | None) -> tuple[int, int, int]:
    """Train / validation / test clips: the task's tiny or real-size tree, or `train` clips with the
    real-size tree's proportions for the other two."""
    if train is None:
        return task.tiny if tiny else task.real
    scale = train / task.real[0]
    return train, max(1, round(task.real[1] * scale)), max(1, round(task.real[2] * scale))


def bench_task(
    name: str, task: Task, work: Path, tiny: bool, encoder: Path, epochs: float | None, train: int | None = None
) -> dict:
    counts = sizes(task, tiny, train)
    tree = work / f"data-{name}"
    started = time.perf_counter()
    make_tree(tree, task, counts)
    print(
        f"\n## {name}: {task.module} {task.config}, {counts[0]:,} / {counts[1]:,} / {counts[2]:,} clips "
        f"(synthetic tree written in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    cache = work / f"cache-{name}"
    common = [
        "--model_name_or_path", str(encoder), "--data_dir", str(tree), "--feature_cache_dir", str(cache),
        "--examples", "false",
    ]  # fmt: skip
    if name == "kws":  # the report's 2,000 silence windows, scaled with the tree
        common += ["--silence_clips", str(max(1, round(2_000 * counts[0] / 51_094)))]
    if epochs is not None:
        common += ["--num_train_epochs", str(epochs)]
    if tiny:
        common += ["--eval_steps", "20", "--save_steps", "20", "--logging_steps", "1", "--warmup_steps", "5"]
    warm = round(warm_up(task), 2)
    print(f"  warm-up (`python -m {task.module} --help`, untimed): {warm:.1f} s", flush=True)
    rows = []
    runs = dict(RUNS)
    if torch.cuda.is_available():  # and on a GPU the A/B of what is there only
        runs[GRAPHED] = ["--lean_loop", "--graphed_update"]  # the lean epoch's update from a CUDA graph
        if name == "kws":  # the head's step from CUDA graphs (the default) against the eager step
            runs[EAGER_HEAD] = ["--no_cuda_graphs"]
    for run, extra in runs.items():
        result = run_script(task, extra, work / name, run, common)
        rows.append(summary(run, result))
        print(f"  {run}: {result['process_s']:.1f} s", flush=True)
    print_table(rows)
    ratios = ratios_of({row["run"]: row for row in rows})
    more = "".join(f"; {what}: {ratios[key]}x" for key, what in AB.items() if key in ratios)
    print(
        f"end to end, HW4 recipe / default: {ratios['built']}x including the store build, {ratios['reused']}x reusing "
        f"it; training phase, HW4 recipe / default: {ratios['train_phase_built']}x including the build, "
        f"{ratios['train_phase_reused']}x reusing it{more}",
        flush=True,
    )
    return {"counts": list(counts), "warm_up_s": warm, "rows": rows, "ratios": ratios}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--tiny", action="store_true", help="tiny encoder and trees (default on a CPU)")
    parser.add_argument("--epochs", type=float, help="override the config's num_train_epochs")
    parser.add_argument(
        "--train",
        nargs="+",
        default=[],
        metavar="TASK=CLIPS",
        help="training clips per task (validation and test in proportion), e.g. kws=51094: the real Speech "
        "Commands training split",
    )
    parser.add_argument("--work", type=Path, default=Path("outputs/bench-e2e"), help="scratch folder (emptied)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    tiny = args.tiny or not torch.cuda.is_available()
    train = {task: int(clips) for task, clips in (item.split("=", 1) for item in args.train)}
    if unknown := set(train) - set(TASKS):
        parser.error(f"--train: unknown tasks {sorted(unknown)}")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    encoder = args.work / "encoder"
    make_encoder(encoder, tiny)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"# train_e2e on {device}, {'tiny' if tiny else 'DistilHuBERT-size'} random-init encoder", flush=True)
    results = {"device": device, "tiny": tiny, "tasks": {}}
    for name in args.tasks:
        results["tasks"][name] = bench_task(name, TASKS[name], args.work, tiny, encoder, args.epochs, train.get(name))
        if args.json:  # after each task: a run cut short keeps what it measured
            args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
