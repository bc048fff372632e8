"""Where a slot's model runs and in what precision: `SERVE_DEVICE` and `SERVE_PRECISION`, read as
each model loads.

- A CPU serves int8 through ONNX Runtime by default (`slots/onnx_serving.py` says why); `fp32`
  serves the PyTorch model as loaded.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import settings

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
    live = None
    if settings.ZERO_GPU and kind in SPEECH_KINDS:  # Live's CPU copy, before the weights leave the CPU
        live, _ = int8_or_fp32(kind, copy.deepcopy(model), folder)
    if precision == "int8":
        served, words = int8_or_fp32(kind, model, folder)
        return Placement(served, words, device, served)
    model.to(device=device, dtype=getattr(torch, DTYPES[precision])).eval()
    return Placement(model, f"{precision} (torch, {device})", device, live if live is not None else model)


def int8_or_fp32(kind: str, model: Any, folder: Path) -> tuple[Any, str]:
    """The model as an int8 ONNX Runtime session where its class has an export, else (or if the
    export fails) the PyTorch model in fp32; and its precision in words."""
    from slots import onnx_serving  # torch and onnx: imported when the first model loads

    if not onnx_serving.supported(kind, model):
        return model, f"fp32 (torch, cpu; {type(model).__name__} has no int8 path)"
    weights = sorted(Path(folder).glob("*.safetensors"))[0]
    try:
        return onnx_serving.int8_model(kind, model, weights), onnx_serving.INT8
    except Exception as err:  # noqa: BLE001 - serve the torch model rather than nothing
        logger.warning("int8 export of %s failed, serving fp32: %s", folder, err)
        return model, f"fp32 (torch, cpu; int8 export failed: {err})"
