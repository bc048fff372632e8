"""Heads on stored features train, with --lean_loop, in train/lean_loop.py's epoch: the same run
as the Trainer's own epoch, step for step (losses, evaluations, weights, checkpoints, resume), without its per-step
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
from train import graphed_update
from train import kws as train_kws
from train.lean_loop import LeanLoop

pytestmark = pytest.mark.beside  # its slow tests train or build stores and read no clock

# fp32, a log every step and two evaluations: trajectories that part if anything differs.
STEPS = ["--max_steps", "12", "--logging_steps", "1", "--eval_steps", "6", "--precision", "fp32"]
# The lean epoch is opt-in (experimental until a GPU run shows it pays): every run here asks for it.
KWS = ["train/configs/kws_smoke.json", "--class_weights", "balanced", "--augment", "true", "--lean_loop"]
# Two clips a batch, two batches a step: padding, gradient accumulation and time masking in play.
ASR = ["train/configs/asr_smoke.json", "--gradient_accumulation_steps", "2", "--mask_time_prob", "0.3", "--lean_loop"]


def history(checkpoint) -> tuple[list[float], list[dict]]:
    rows = read_metrics(checkpoint)["history"]
    return [r["loss"] for r in rows if "loss" in r], [r for r in rows if "eval_loss" in r]


def final_scores(metrics: dict) -> dict[str, float]:
    """The final evaluation's numbers (loss, accuracy or WER, ...) per split."""
    return {
        f"{split}.{k}": v for split, row in metrics["final"].items() for k, v in row.items() if isinstance(v, float)
    }


@pytest.fixture
def update_in_place(monkeypatch) -> list[int]:
    """train/graphed_update.py's update on the CPU (captured only on CUDA): gradients kept in the
    same tensors and zeroed in place, the learning rate and clipping as in the graph. Counts updates."""
    monkeypatch.setattr(graphed_update, "DEVICES", ("cuda", "cpu"))
    calls = []
    real = graphed_update.GraphedUpdate._update
    monkeypatch.setattr(graphed_update.GraphedUpdate, "_update", lambda self: calls.append(1) or real(self))
    return calls


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
    script.main([*args, *STEPS, "--output_dir", "out/trainer", "--lean_loop", "false"])
    assert len(steps_taken) == 12 * (2 if task == "asr" else 1)

    lean, trainer = read_metrics("out/lean"), read_metrics("out/trainer")
    assert lean["extra"]["training_loop"] == "lean"
    assert trainer["extra"]["training_loop"] == "trainer: not asked for (--lean_loop, on stored features only)"
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


@pytest.mark.parametrize("task", ["kws", "asr"])
def test_the_graphed_updates_arithmetic_trains_as_the_lean_epochs(smoke_workdir, update_in_place, task):
    script, args = (train_kws, KWS) if task == "kws" else (train_asr, ASR)
    (make_kws_smoke if task == "kws" else make_asr_smoke)()
    script.main([*args, *STEPS, "--output_dir", "out/lean"])
    assert update_in_place == []
    script.main([*args, *STEPS, "--output_dir", "out/graphed", "--graphed_update"])
    assert len(update_in_place) == 12  # one update a step, accumulated micro-batches included
    assert read_metrics("out/graphed")["extra"]["training_loop"] == "lean, optimizer update in place"
    (losses, evals), (reference, reference_evals) = history("out/graphed"), history("out/lean")
    assert max(reference) - min(reference) > 0.01
    np.testing.assert_allclose(losses, reference, atol=1e-6, rtol=0)
    for a, b in zip(evals, reference_evals, strict=True):
        assert all(a[k] == pytest.approx(b[k], abs=1e-6) for k in a)
    a, b = load_file("out/graphed/model.safetensors"), load_file("out/lean/model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_failed_capture_leaves_the_updates_eager_and_the_run_says_so(smoke_workdir, update_in_place, monkeypatch):
    make_kws_smoke()
    train_kws.main([*KWS, *STEPS, "--output_dir", "out/lean"])
    real_init = graphed_update.GraphedUpdate.__init__

    def as_if_on_cuda(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.capture = True  # so that it tries to capture after its warm-up updates

    def capture_fails(self):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphed_update.GraphedUpdate, "__init__", as_if_on_cuda)
    monkeypatch.setattr(graphed_update.GraphedUpdate, "_capture", capture_fails)
    train_kws.main([*KWS, *STEPS, "--output_dir", "out/failed", "--graphed_update"])
    assert read_metrics("out/failed")["extra"]["training_loop"] == (
        "lean, optimizer update eager (its CUDA graph capture failed)"
    )
    assert len(update_in_place) == 12  # every update ran, eagerly after the failed capture
    np.testing.assert_allclose(history("out/failed")[0], history("out/lean")[0], atol=1e-6, rtol=0)


def test_a_graphed_update_steps_as_the_eager_one_while_the_learning_rate_changes(update_in_place):
    torch.manual_seed(0)
    models = [torch.nn.Linear(8, 3)]
    models.append(torch.nn.Linear(8, 3).requires_grad_(True))
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-2, fused=True) for m in models]
    schedules = [torch.optim.lr_scheduler.LambdaLR(o, lambda step: 1 / (1 + step)) for o in optimizers]
    update = graphed_update.GraphedUpdate(optimizers[0], list(models[0].parameters()), max_grad_norm=0.5)
    for step in range(6):
        norms = []
        for i, model in enumerate(models):
            for micro in range(2):  # two micro-batches into the same gradients
                x = torch.randn(4, 8, generator=torch.Generator().manual_seed(10 * step + micro))
                model(x).pow(2).mean().backward()
            if i == 0:
                grads = [p.grad for p in model.parameters()]
                norms.append(update.step())
                assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))  # kept, zeroed
                assert all(not g.any() for g in grads)
            else:
                norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5))
                optimizers[1].step()
                model.zero_grad(set_to_none=True)
            schedules[i].step()
        assert norms[0] == pytest.approx(float(norms[1]), rel=1e-6) and norms[1] > 0.5  # clipped
        for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    assert len(update_in_place) == 6 and update.replays == 0  # no capture off CUDA
    assert optimizers[0].param_groups[0]["lr"] == optimizers[1].param_groups[0]["lr"] == pytest.approx(1 / 7 * 1e-2)


def test_an_optimizer_the_graph_cannot_replay_is_named(monkeypatch):
    params = [torch.nn.Parameter(torch.zeros(2))]
    fused = torch.optim.AdamW(params, fused=True)
    assert graphed_update.unsupported(fused, params) == "the parameters are not on a CUDA GPU"
    monkeypatch.setattr(graphed_update, "DEVICES", ("cuda", "cpu"))
    assert graphed_update.unsupported(fused, params) is None
    assert "not fused" in graphed_update.unsupported(torch.optim.AdamW(params, foreach=True), params)
    assert "SGD, not Adam" in graphed_update.unsupported(torch.optim.SGD(params, lr=0.1), params)


class Killed(Exception):
    pass


@pytest.mark.parametrize("update", ["eager", "graphed"])
def test_a_run_resumed_in_the_lean_epoch_ends_where_an_unbroken_one_does(
    smoke_workdir, steps_taken, monkeypatch, update
):
    make_kws_smoke()
    if update == "graphed":  # on the CPU the update's arithmetic in place: its checkpoints and resume
        monkeypatch.setattr(graphed_update, "DEVICES", ("cuda", "cpu"))
    common = [*KWS, *STEPS, "--save_strategy", "steps", "--save_steps", "3"]
    common += ["--graphed_update"] if update == "graphed" else []
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
        == "trainer: not asked for (--lean_loop, on stored features only)"
    )
    # A graphed update needs a GPU: on the CPU the update runs as it always does, and says so.
    train_kws.main([*KWS, *STEPS, "--max_steps", "2", "--output_dir", "out/cpu", "--graphed_update"])
    assert read_metrics("out/cpu")["extra"]["training_loop"] == (
        "lean, optimizer update eager (the parameters are not on a CUDA GPU)"
    )


def test_the_private_members_the_lean_epoch_uses_are_the_ones_it_was_written_for():
    """An upgrade of transformers or accelerate that renames one of them, or changes what it takes,
    fails here rather than in someone's training run."""
    import inspect

    from accelerate.state import GradientState

    from train import lean_loop

    owners = {"Trainer": Trainer, "GradientState": GradientState}
    for name, parameters in lean_loop.PRIVATE_MEMBERS.items():
        owner, member = name.split(".")
        found = list(inspect.signature(getattr(owners[owner], member)).parameters)
        assert found == parameters.split(", "), name
    source = inspect.getsource(Trainer)
    for attribute in lean_loop.PRIVATE_ATTRIBUTES:
        assert f"self.{attribute} " in source or f"self.{attribute}=" in source, attribute


def test_the_trainers_own_epoch_is_the_default(smoke_workdir, steps_taken):
    make_kws_smoke()
    train_kws.main(["train/configs/kws_smoke.json", "--max_steps", "2", "--output_dir", "out/default"])
    assert len(steps_taken) == 2
    assert read_metrics("out/default")["extra"]["training_loop"] == (
        "trainer: not asked for (--lean_loop, on stored features only)"
    )
