"""Where a slot's model runs and in what precision: `SERVE_DEVICE` and `SERVE_PRECISION`, read as
each model loads.

- A CPU serves int8 through ONNX Runtime by default (`slots/onnx_serving.py` says why); `fp32`
  serves the PyTorch model as loaded. A model whose export is not cached yet serves in fp32 at
  once, and its int8 session takes over when the export (in a process of its own, one model at a
  time) is done: no request waits for an export (`Placement.upgrade`, run by `slots.slot`).
- A CUDA GPU serves the PyTorch model in fp16 by default (`bf16`, `fp32` on request): no export,
  the weights are cast once at load. fp16 keeps more mantissa than bf16, and these models' activations
  stay far inside its range (the conv front end's normalisation, the one long sum, is computed in
  fp32: `speech.padding`).
- A ZeroGPU Space (`SPACES_ZERO_GPU`) is a CUDA device as far as loading goes: the `spaces`
  package emulates CUDA outside the calls it lends a GPU to. Its Live tabs run on the CPU
  (`serving.gpu`), so each speech model also gets a CPU copy for them, built here before the
  model moves to the GPU.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import settings
from slots import loading

logger = logging.getLogger("slots.slot")

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
SPEECH_KINDS = ("ctc", "audio-classification")


@dataclass(frozen=True)
class Placement:
    """A model ready to serve: the one requests run (`model`), its precision in words, and the one
    Live runs (`live`: the same model, but on ZeroGPU a CPU copy)."""

    model: Any
    precision: str
    device: str
    live: Any
    # Exports the int8 session and puts it in place of the fp32 model in the `LoadedModel` it is
    # given (or of its Live copy); None when there is nothing to export.
    upgrade: Callable[[Any], None] | None = None


def device_setting() -> str:
    """`SERVE_DEVICE` resolved: "cuda" where asked or (`auto`) where a GPU is visible, else "cpu"."""
    import torch

    value = settings.serve_device()
    if value not in ("auto", "cpu", "cuda"):
        raise ValueError(f"SERVE_DEVICE must be auto, cpu or cuda, not {value!r}")
    if value == "cuda" and not torch.cuda.is_available():
        raise ValueError("SERVE_DEVICE=cuda, but no CUDA GPU is visible to PyTorch")
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


def precision_setting(device: str) -> str:
    """`SERVE_PRECISION` resolved for `device`: `auto` is int8 on a CPU and fp16 on a GPU."""
    value = settings.serve_precision()
    if value not in ("auto", "int8", *DTYPES):
        raise ValueError(f"SERVE_PRECISION must be auto, int8, fp32, fp16 or bf16, not {value!r}")
    if value == "int8" and device != "cpu":
        raise ValueError("SERVE_PRECISION=int8 is for a CPU; on a GPU use fp16, bf16 or fp32")
    if value == "auto":
        return "int8" if device == "cpu" else "fp16"
    return value


def place(kind: str, model: Any, folder: Path) -> Placement:
    """`model` (as loaded, on the CPU in fp32) placed to serve as the settings say.

    Args:
        kind: the slot kind ("ctc", "audio-classification", "question-answering").
        model: the loaded transformers model.
        folder: the folder its weights came from (keys the int8 export cache).

    Raises:
        ValueError: a setting that cannot be served (the slot says which).
    """
    import torch

    device = device_setting()
    precision = precision_setting(device)
    if precision == "int8":
        served, words, upgrade = _int8(kind, model, folder, live_only=False)
        return Placement(served, words, device, served, upgrade)
    live, upgrade = model, None
    if settings.ZERO_GPU and kind in SPEECH_KINDS:  # Live's CPU copy, before the weights leave the CPU
        live, _, upgrade = _int8(kind, copy.deepcopy(model), folder, live_only=True)
    model.to(device=device, dtype=getattr(torch, DTYPES[precision])).eval()
    if device == "cpu" and precision == "fp32":  # (a cast or a move to a GPU copies the weights already)
        loading.in_memory(model)
    return Placement(model, f"{precision} (torch, {device})", device, live, upgrade)


PENDING = "fp32 (torch, cpu; int8 on its way)"


def _int8(kind: str, model: Any, folder: Path, live_only: bool) -> tuple[Any, str, Callable[[Any], None] | None]:
    """The model to serve now, its precision in words, and the upgrade to int8 if one is to come:
    the cached int8 session at once; else the PyTorch model in fp32 until the export is done; the
    PyTorch model for good where its class has no export (or the export fails)."""
    from slots import onnx_serving  # torch and onnx: imported when the first model loads

    if not onnx_serving.supported(kind, model):
        return loading.in_memory(model), f"fp32 (torch, cpu; {type(model).__name__} has no int8 path)", None
    weights = sorted(Path(folder).glob("*.safetensors"))[0]
    if onnx_serving.cached_export(kind, model, weights).is_file():
        try:
            return onnx_serving.int8_model(kind, model, weights), onnx_serving.INT8, None
        except Exception as err:  # noqa: BLE001 - a damaged cache entry: serve fp32, say why
            logger.warning("the cached int8 export of %s failed to load, serving fp32: %s", folder, err)
            return loading.in_memory(model), f"fp32 (torch, cpu; int8 export failed: {err})", None

    def upgrade(loaded: Any) -> None:
        from slots import int8_export

        try:
            session = onnx_serving.int8_model(kind, model, weights, export=int8_export.export)
        except Exception as err:  # noqa: BLE001 - the fp32 model serves on; the status says why
            logger.warning("int8 export of %s failed, serving fp32: %s", folder, err)
            if not live_only:
                loaded.precision = f"fp32 (torch, cpu; int8 export failed: {err})"
            return
        logger.info("int8 export of %s: %s", folder, session.export)
        loaded.export = session.export
        if live_only:
            loaded.live_model = session
        else:
            loaded.model = loaded.live_model = session
            loaded.precision = onnx_serving.INT8

    # (Live's copy on ZeroGPU is a deep copy already: its weights are in memory.)
    return (model if live_only else loading.in_memory(model)), PENDING, upgrade
