"""Training on more than one process: `torchrun --nproc_per_node 2 -m train.<task>` on the CPU
(gloo) is one DDP job that trains exactly as one process accumulating the same two batches per
step, gathers its evaluation in dataset order, and publishes one checkpoint the app loads.

Exactly, because the runs draw nothing at random per step: each process draws its own dropout and
SpecAugment masks (as in any DDP job), so with those on, two processes are the same training in
distribution, not number for number. The tests turn them off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

from core.checkpoint import read_metrics
from core.examples import read_examples
from scripts.make_smoke_data import make_asr_smoke, make_kws_smoke, make_qa_smoke
from slots.loading import from_pretrained
from tests.helpers import ROOT
from train import asr as train_asr
from train import kws as train_kws
from train import qa as train_qa

pytestmark = [pytest.mark.slow, pytest.mark.beside]  # each case starts a two-process training job


class Case(NamedTuple):
    make: Callable[[], Path]
    model: str  # the smoke tree's tiny model, whose dropout the test turns off
    main: Callable[[list[str]], Path]
    kind: str  # the app's name for the checkpoint's kind
    config: str
    # A per-device batch whose global batch (two of them) divides the training set: no process
    # pads the epoch's tail with repeated examples.
    per_device: int
    extra: tuple[str, ...] = ()


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# accelerate's multi-process launcher is torchrun's; `--multi_gpu` picks it on a CPU machine too.
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
CASES = {
    "kws": Case(make_kws_smoke, "tiny-hubert", train_kws.main, "audio-classification", "kws_smoke", 6),  # 36 clips
    "asr": Case(make_asr_smoke, "tiny-hubert", train_asr.main, "ctc", "asr_smoke", 2, ("--mask_time_prob", "0")),  # 4
    "qa": Case(make_qa_smoke, "tiny-distilbert", train_qa.main, "question-answering", "qa_distilbert_smoke", 5),  # 10
}


def without_dropout(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    config.update({key: 0.0 for key, value in config.items() if "dropout" in key and isinstance(value, float)})
    (model / "config.json").write_text(json.dumps(config))


def losses(folder: str) -> list[float]:
    return [row["loss"] for row in read_metrics(Path(folder))["history"] if "loss" in row]


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every value of a nested metrics dict, by its path."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in leaves(item, f"{prefix}/{key}").items()}
    return {prefix: value}


def launch_env(workdir: Path) -> dict[str, str]:
    """A launch's environment: the repository importable, one thread per process, and its
    temporary files (torchrun's `torchelastic_*` log folders, which it leaves) in the test's folder."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TMPDIR": str(workdir)}


def two_processes(launcher: list[str], name: str, args: list[str], cwd: Path) -> str:
    """Runs train.<name> as two processes; their log."""
    job = [*launcher, "-m", f"train.{name}", *args, "--output_dir", "out/two", "--run_dir", "runs/two"]
    done = subprocess.run(job, cwd=cwd, env=launch_env(cwd), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in done.stderr  # a real DDP job
    assert "find_unused_parameters=True" not in done.stderr  # every parameter takes part
    return done.stderr


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_train_as_one_accumulating_their_two_batches_and_publish_once(name, smoke_workdir):
    case = CASES[name]
    without_dropout(case.make() / case.model)
    # Evaluation one example per batch, so no process pads a batch with repeated examples either.
    batches = ["--per_device_train_batch_size", str(case.per_device), "--per_device_eval_batch_size", "1"]
    common = [f"train/configs/{case.config}.json", *batches, *case.extra]
    log = two_processes(TORCHRUN, name, common, smoke_workdir)
    per_device = case.per_device
    assert f"2 process(es), gloo backend; global batch {2 * per_device} (per device {per_device}" in log

    # One thread, as each process of the two (OMP_NUM_THREADS=1): a kernel may block its sums by the
    # thread count, and on some CPUs (AMD EPYC here) that moved a weight's last bit.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        case.main([*common, "--gradient_accumulation_steps", "2", "--output_dir", "out/one", "--run_dir", "runs/one"])
    finally:
        torch.set_num_threads(threads)
    two, one = read_metrics(Path("out/two")), read_metrics(Path("out/one"))
    assert (two["hyperparameters"]["processes"], two["hyperparameters"]["global_batch_size"]) == (2, 2 * per_device)
    assert len(losses("out/two")) == 6 and max(losses("out/one")) - min(losses("out/one")) > 0.01
    np.testing.assert_allclose(losses("out/two"), losses("out/one"), atol=1e-5, rtol=0)
    final_two, final_one = leaves(two["final"]), leaves(one["final"])
    assert final_two.keys() == final_one.keys() and len(final_two) >= 3
    for key, value in final_one.items():
        if not np.issubdtype(np.asarray(value).dtype, np.number):
            assert final_two[key] == value, key
            continue
        np.testing.assert_allclose(final_two[key], value, atol=1e-5, rtol=0, err_msg=key)
    # Every evaluated example once, in the dataset's order, with the same prediction as one process.
    rows_two, rows_one = read_examples(Path("out/two")).rows, read_examples(Path("out/one")).rows
    assert rows_two == rows_one and len(rows_two) == len({r["id"] for r in rows_two}) > 0
    # One checkpoint, no staging folder left by the other process, and the app's loader reads the
    # weights one process trained: the same, but for Adam, which divides by the root of a gradient's
    # square: where that is near zero, its last bits (summed in another order across processes)
    # move a weight by up to a fraction of the learning rate (1e-3) per step.
    assert sorted(p.name for p in Path("out").iterdir()) == ["one", "two"]
    weights_two, weights_one = (from_pretrained(case.kind, Path(d))[0].state_dict() for d in ("out/two", "out/one"))
    assert weights_two.keys() == weights_one.keys()
    worst = max((weights_two[k].float() - v.float()).abs().max().item() for k, v in weights_one.items())
    assert worst <= 1e-3 and (worst == 0 or name == "qa")  # a head on frozen features: exactly


def test_accelerate_launch_runs_the_same_distributed_job(smoke_workdir):
    make_kws_smoke()
    log = two_processes(ACCELERATE, "kws", ["train/configs/kws_smoke.json"], smoke_workdir)
    assert "2 process(es), gloo backend; global batch 16 (per device 8" in log
    metrics = read_metrics(Path("out/two"))
    assert metrics["hyperparameters"]["processes"] == 2
    rows = read_examples(Path("out/two")).rows
    assert len(rows) == len({r["id"] for r in rows}) == metrics["dataset_sizes"]["test"]
    assert from_pretrained("audio-classification", Path("out/two"))[0].config.num_labels == 12


def test_two_machines_sharing_a_disk_build_each_store_and_publish_one_checkpoint(smoke_workdir):
    """`torchrun --nnodes 2` with one process per node, both nodes on this machine: each node's
    first process builds the feature stores into the one cache folder at the same time (a shared
    file system), and only the job's first process publishes."""
    make_kws_smoke()
    env = launch_env(smoke_workdir)
    nodes = [
        subprocess.Popen(
            [*TORCHRUN[:3], "--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1"]
            + ["--master_addr", "127.0.0.1", "--master_port", str(29400 + os.getpid() % 500)]
            + ["-m", "train.kws", "train/configs/kws_smoke.json", "--output_dir", "out/nodes"],
            cwd=smoke_workdir,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=600)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    # Usually both nodes build (the race that publish(replace=False) settles: test_checkpoint.py).
    assert any("feature cache: building" in log for log in logs)
    assert sum("published out/nodes" in log for log in logs) == 1
    stores = [p.name for p in Path("outputs/feature_cache").iterdir()]
    assert len(stores) == 3 and not any(name.startswith(".") for name in stores)  # train, validation, test
    assert read_metrics(Path("out/nodes"))["hyperparameters"]["processes"] == 2
