"""Where and in what precision a slot serves (`slots/placement.py`): int8 on a CPU, fp16 on a GPU
by default, each endpoint's result equal to fp32's within the tolerance stated here. No GPU here:
the half-precision path runs on the CPU (`SERVE_DEVICE=cpu`), the same code a GPU runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serving import gpu
from slots import placement
from slots.registry import Registry

CONTEXT = "The tower was built in eighteen eighty nine in Paris by the engineer Gustave Eiffel."
# Largest difference of a keyword probability from fp32's, per precision.
PROBABILITY_TOLERANCE = {"fp16": 0.01, "bf16": 0.03}


def test_auto_is_int8_on_a_cpu_and_fp16_on_a_gpu_and_mistakes_are_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert placement.device_setting() == "cpu" and placement.precision_setting("cpu") == "int8"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert placement.device_setting() == "cuda" and placement.precision_setting("cuda") == "fp16"
    monkeypatch.setenv("SERVE_DEVICE", "cpu")
    assert placement.device_setting() == "cpu"
    monkeypatch.setenv("SERVE_PRECISION", "int8")
    with pytest.raises(ValueError, match="int8 is for a CPU; on a GPU use fp16, bf16 or fp32"):
        placement.precision_setting("cuda")
    monkeypatch.setenv("SERVE_PRECISION", "int4")
    with pytest.raises(ValueError, match="must be auto, int8, fp32, fp16 or bf16, not 'int4'"):
        placement.precision_setting("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SERVE_DEVICE", "cuda")
    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        placement.device_setting()


def served(checkpoints, monkeypatch, precision: str) -> Registry:
    """Every slot loaded in `precision` on the CPU (the settings are read as each model loads)."""
    monkeypatch.setenv("SERVE_DEVICE", "cpu")
    monkeypatch.setenv("SERVE_PRECISION", precision)
    registry = Registry(checkpoints)
    for slot in registry.slots.values():
        slot.get()
    return registry


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_answers_as_fp32_does(tiny_checkpoints, monkeypatch, precision):
    reference = served(tiny_checkpoints, monkeypatch, "fp32")
    half = served(tiny_checkpoints, monkeypatch, precision)
    for name in ("asr", "kws", "qa-distilbert", "qa-xlmr"):
        loaded = half[name].get()
        assert loaded.precision == f"{precision} (torch, cpu)" and loaded.model.dtype == getattr(
            torch, precision.replace("fp", "float").replace("bf", "bfloat")
        )
        assert reference[name].get().precision == "fp32 (torch, cpu)"
    rng = np.random.default_rng(0)
    clip = rng.normal(0, 0.1, 16_000 * 3).astype(np.float32)
    scans = [gpu.keyword_scan(r["kws"].get(), clip) for r in (reference, half)]
    assert np.abs(scans[0].probs - scans[1].probs).max() < PROBABILITY_TOLERANCE[precision]
    for name in ("qa-distilbert", "qa-xlmr"):
        answers = [gpu.answer(r[name].get(), CONTEXT, "When was the tower built?", 0.0) for r in (reference, half)]
        assert answers[1].best_span == answers[0].best_span
        assert abs(answers[1].probability - answers[0].probability) < 0.02
