"""Training on more than one process: `torchrun --nproc_per_node 2 -m train.kws` on the CPU (gloo)
is one DDP job that trains exactly as one process accumulating the same two batches per step,
gathers its evaluation in dataset order, and publishes one checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.checkpoint import read_metrics
from core.examples import read_examples
from scripts.make_smoke_data import make_kws_smoke
from slots.loading import load_model
from tests.helpers import ROOT
from train import kws as train_kws

pytestmark = pytest.mark.slow  # starts a two-process training job


def losses(folder: str) -> list[float]:
    return [row["loss"] for row in read_metrics(Path(folder))["history"] if "loss" in row]


def test_two_processes_train_as_one_accumulating_their_two_batches_and_publish_once(smoke_workdir):
    make_kws_smoke()
    # 36 training clips: three global batches of 12 an epoch, so no process pads the epoch's tail.
    common = ["train/configs/kws_smoke.json", "--per_device_train_batch_size", "6"]
    job = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    job += ["-m", "train.kws", *common, "--output_dir", "out/two", "--run_dir", "runs/two"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(job, cwd=smoke_workdir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in done.stderr  # a real DDP job
    assert "2 process(es), gloo backend; global batch 12 (per device 6" in done.stderr

    train_kws.main([*common, "--gradient_accumulation_steps", "2", "--output_dir", "out/one", "--run_dir", "runs/one"])
    two, one = read_metrics(Path("out/two")), read_metrics(Path("out/one"))
    assert (two["hyperparameters"]["processes"], two["hyperparameters"]["global_batch_size"]) == (2, 12)
    assert len(losses("out/two")) == 6 and max(losses("out/one")) - min(losses("out/one")) > 0.01
    np.testing.assert_allclose(losses("out/two"), losses("out/one"), atol=1e-5, rtol=0)
    for split in ("validation", "test"):
        for key in ("accuracy", "f1_macro", "recall_macro", "confusion_matrix"):
            assert two["final"][split][key] == one["final"][split][key], (split, key)
        # The class-weighted loss is a weighted mean per batch; each process evaluates its half.
        assert two["final"][split]["loss"] == pytest.approx(one["final"][split]["loss"], abs=0.02)
    # Every test clip once, in the dataset's order, with the same prediction as one process.
    rows_two, rows_one = read_examples(Path("out/two")).rows, read_examples(Path("out/one")).rows
    assert [r["id"] for r in rows_two] == [r["id"] for r in rows_one] and len(rows_two) == two["dataset_sizes"]["test"]
    assert [r["predicted"] for r in rows_two] == [r["predicted"] for r in rows_one]
    # One checkpoint, no staging folder left by the other process, and the app's loader reads it.
    assert sorted(p.name for p in Path("out").iterdir()) == ["one", "two"]
    assert load_model("audio-classification", Path("out/two")).config.num_labels == 12
