"""Heads on stored features train in train/lean_loop.py's epoch: the same run as the Trainer's own
epoch, step for step (losses, evaluations, weights, checkpoints, resume), without its per-step
machinery; where a run needs that machinery, the Trainer's epoch runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer

from core.checkpoint import read_metrics
from scripts.make_smoke_data import make_asr_smoke, make_kws_smoke
from train import asr as train_asr
from train import kws as train_kws
from train.lean_loop import LeanLoop

# fp32, a log every step and two evaluations: trajectories that part if anything differs.
STEPS = ["--max_steps", "12", "--logging_steps", "1", "--eval_steps", "6", "--precision", "fp32"]
KWS = ["train/configs/kws_smoke.json", "--class_weights", "balanced", "--augment", "true"]
# Two clips a batch, two batches a step: padding, gradient accumulation and time masking in play.
ASR = ["train/configs/asr_smoke.json", "--gradient_accumulation_steps", "2", "--mask_time_prob", "0.3"]


def history(checkpoint) -> tuple[list[float], list[dict]]:
    rows = read_metrics(checkpoint)["history"]
    return [r["loss"] for r in rows if "loss" in r], [r for r in rows if "eval_loss" in r]


def final_scores(metrics: dict) -> dict[str, float]:
    """The final evaluation's numbers (loss, accuracy or WER, ...) per split."""
    return {
        f"{split}.{k}": v for split, row in metrics["final"].items() for k, v in row.items() if isinstance(v, float)
    }


@pytest.fixture
def steps_taken(monkeypatch) -> list[int]:
    """How often the Trainer's own `training_step` ran (the lean epoch never calls it)."""
    calls = []
    real = Trainer.training_step
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    return calls


@pytest.mark.parametrize("task", ["kws", "asr"])
def test_the_lean_epoch_trains_exactly_as_the_trainers_own(smoke_workdir, steps_taken, task):
    script, args = (train_kws, KWS) if task == "kws" else (train_asr, ASR)
    (make_kws_smoke if task == "kws" else make_asr_smoke)()
    script.main([*args, *STEPS, "--output_dir", "out/lean"])
    assert steps_taken == []  # not one step through the Trainer's training_step
    script.main([*args, *STEPS, "--output_dir", "out/trainer", "--no_lean_loop"])
    assert len(steps_taken) == 12 * (2 if task == "asr" else 1)

    lean, trainer = read_metrics("out/lean"), read_metrics("out/trainer")
    assert lean["extra"]["training_loop"] == "lean"
    assert trainer["extra"]["training_loop"] == "trainer: not asked for (--no_lean_loop, or the encoder runs live)"
    (lean_losses, lean_evals), (losses, evals) = history("out/lean"), history("out/trainer")
    assert len(lean_losses) == 12 and max(losses) - min(losses) > 0.01  # it learns: the comparison means something
    np.testing.assert_allclose(lean_losses, losses, atol=1e-6, rtol=0)
    assert [e["step"] for e in lean_evals] == [e["step"] for e in evals] == [6, 12]
    for a, b in zip(lean_evals, evals, strict=True):
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], abs=1e-6) for k in a)
    assert "validation.loss" in final_scores(lean)
    assert final_scores(lean) == pytest.approx(final_scores(trainer), abs=1e-6)
    a, b = load_file("out/lean/model.safetensors"), load_file("out/trainer/model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


class Killed(Exception):
    pass


def test_a_run_resumed_in_the_lean_epoch_ends_where_an_unbroken_one_does(smoke_workdir, steps_taken, monkeypatch):
    make_kws_smoke()
    common = [*KWS, *STEPS, "--save_strategy", "steps", "--save_steps", "3"]
    train_kws.main([*common, "--output_dir", "out/unbroken", "--run_dir", "runs/unbroken"])
    # The same run killed right after it saved checkpoint-3 (mid-epoch: the resumed epoch skips its
    # first batches and restores the RNG), then resumed from that checkpoint.
    real_save = LeanLoop._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        if self.state.global_step == 3:
            raise Killed

    monkeypatch.setattr(LeanLoop, "_save_checkpoint", save_then_die)
    resumed = [*common, "--output_dir", "out/resumed", "--run_dir", "runs/resumed"]
    with pytest.raises(Killed):
        train_kws.main(resumed)
    monkeypatch.setattr(LeanLoop, "_save_checkpoint", real_save)
    train_kws.main([*resumed, "--resume", "true"])
    assert steps_taken == []
    unbroken, resumed = read_metrics("out/unbroken"), read_metrics("out/resumed")
    assert [r["step"] for r in resumed["history"] if "loss" in r] == list(range(1, 13))
    np.testing.assert_allclose(history("out/resumed")[0], history("out/unbroken")[0], atol=1e-6, rtol=0)
    assert final_scores(resumed) == pytest.approx(final_scores(unbroken), abs=1e-6)
    a, b = load_file("out/resumed/model.safetensors"), load_file("out/unbroken/model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_run_the_lean_epoch_does_not_cover_takes_the_trainers_own(smoke_workdir, steps_taken):
    make_kws_smoke()
    # Per-step cache clearing is the Trainer's to do: the run says why it took the Trainer's epoch.
    train_kws.main([*KWS, *STEPS, "--output_dir", "out/cleared", "--torch_empty_cache_steps", "4"])
    assert len(steps_taken) == 12
    assert read_metrics("out/cleared")["extra"]["training_loop"] == "trainer: per-step cache clearing"
    # The report's way (the live encoder on every batch) is the Trainer's too.
    train_kws.main([*KWS, *STEPS, "--max_steps", "2", "--output_dir", "out/live", "--no_feature_cache"])
    assert (
        read_metrics("out/live")["extra"]["training_loop"]
        == "trainer: not asked for (--no_lean_loop, or the encoder runs live)"
    )
