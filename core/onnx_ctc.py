"""CPU serving of a CTC speech model through ONNX Runtime with int8 weights.

Why this path: on 2 CPU cores (docs/BENCHMARKS.md, "CPU serving"), wav2vec 2.0 base over a
30 s clip took 6.3 s in torch fp32, 5.1 s with torch's dynamic int8 quantization, and 4.0 s in
ONNX Runtime with its MatMul weights quantized to int8 (the conv front end and GELU/GroupNorm run
fused there as well). Only the last meets the real-time factor a Space needs (<= 0.15).

The model is exported once per weights file and cached on disk (`ONNX_CACHE`). The exporter is
torch's TorchScript-based one, because its graph ran fastest here; it is deprecated, so when a
torch release drops it the torch.export-based exporter takes over (slower graph, same results).
Any failure leaves the slot serving the torch model in fp32, and says so.

`OnnxCTC` stands in for the transformers model wherever `core.long_audio` runs one: it takes
`input_values` (+ `attention_mask`) and returns `.logits`. Rows run one at a time at their own
length, so padding never reaches the conv front end's GroupNorm (the same guarantee
`core.heads.padding_proof` gives the torch model).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from core.audio import TARGET_RATE

logger = logging.getLogger(__name__)

CACHE = Path(os.environ.get("ONNX_CACHE", Path.home() / ".cache" / "speech-qa-transformers" / "onnx"))
FORMAT = 1  # bump when the export or quantization recipe changes: old cache entries are ignored
EXPORTABLE = ("Wav2Vec2ForCTC", "HubertForCTC", "Data2VecAudioForCTC", "WavLMForCTC")


class OnnxCTC(torch.nn.Module):
    """An ONNX Runtime session behind the interface `core.long_audio` uses."""

    def __init__(self, path: Path, torch_model: Any):
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.config = torch_model.config
        self.path = Path(path)
        self.source_parameters = sum(p.numel() for p in torch_model.parameters())
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # device for callers

    def _get_feat_extract_output_lengths(self, lengths):
        """Frames the conv front end makes of `lengths` samples (as the transformers model says)."""
        lengths = torch.as_tensor(lengths)
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride, strict=True):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        x = input_values.detach().cpu().numpy().astype(np.float32)
        lengths = attention_mask.sum(-1).tolist() if attention_mask is not None else [x.shape[1]] * len(x)
        rows = [self.session.run(None, {"input_values": x[i : i + 1, : int(n)]})[0][0] for i, n in enumerate(lengths)]
        frames = max(len(r) for r in rows)
        logits = np.zeros((len(rows), frames, rows[0].shape[-1]), np.float32)
        for i, row in enumerate(rows):
            logits[i, : len(row)] = row
        return SimpleNamespace(logits=torch.from_numpy(logits))


def supported(model: Any) -> bool:
    """Whether `model` can be served through ONNX Runtime (a CTC model this module exports)."""
    return type(model).__name__ in EXPORTABLE


def precision_setting() -> str:
    """`SERVE_PRECISION`: "int8" (default; CPU only) or "fp32"."""
    value = os.environ.get("SERVE_PRECISION", "int8").strip().lower()
    if value not in ("int8", "fp32"):
        raise ValueError(f"SERVE_PRECISION must be int8 or fp32, not {value!r}")
    return value


def for_serving(kind: str, model: Any, folder: Path, device: str) -> tuple[Any, str]:
    """The model to serve and its precision in words, for the status.

    CTC models on CPU serve int8 through ONNX Runtime unless `SERVE_PRECISION=fp32`; the rest
    serve as loaded.

    Args:
        kind: the slot kind (asr, kws, qa).
        model: the loaded transformers model.
        folder: the folder its weights came from (the export cache is keyed by them).
        device: where it runs.

    Returns:
        (the model to call, e.g. "int8 (onnxruntime, cpu)").
    """
    if kind != "ctc" or device != "cpu" or precision_setting() != "int8":
        return model, f"fp32 (torch, {device})"
    if not supported(model):
        return model, f"fp32 (torch, cpu; {type(model).__name__} has no int8 path)"
    weights = sorted(Path(folder).glob("*.safetensors"))[0]
    try:
        return int8_model(model, weights), "int8 (onnxruntime, cpu)"
    except Exception as err:  # noqa: BLE001 - serve the torch model rather than nothing
        logger.warning("int8 export of %s failed, serving fp32: %s", folder, err)
        return model, f"fp32 (torch, cpu; int8 export failed: {err})"


def cache_key(weights: Path, model: Any) -> str:
    """Same weights file, same libraries, same recipe -> same exported model."""
    import onnxruntime
    import transformers

    stat = Path(weights).stat()
    parts = [
        str(Path(weights).resolve()),
        str(stat.st_size),
        str(stat.st_mtime_ns),
        type(model).__name__,
        torch.__version__,
        transformers.__version__,
        onnxruntime.__version__,
        str(FORMAT),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def int8_model(model: Any, weights: Path) -> OnnxCTC:
    """`model` as an int8 ONNX Runtime session, exported and quantized on first use, then
    read from the cache."""
    target = CACHE / cache_key(weights, model) / "model.int8.onnx"
    if not target.is_file():
        _build(model, target)
    return OnnxCTC(target, model)


def _build(model: Any, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _export(model.eval(), fp32)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # ORT suggests a pre-processing pass, at WARNING
        try:
            staged = Path(tmp) / "model.int8.onnx"
            quantize_dynamic(fp32, staged, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        finally:
            logging.getLogger().setLevel(quiet)
        os.replace(staged, target)  # a reader never sees half a file


def _export(model: Any, path: Path) -> None:
    example = torch.zeros(1, TARGET_RATE)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice and tracer warnings (see the docstring)
        try:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["input_values"],
                output_names=["logits"],
                dynamic_axes={"input_values": {1: "samples"}, "logits": {1: "frames"}},
                opset_version=17,
                dynamo=False,
            )
        except Exception as err:  # noqa: BLE001 - the legacy exporter is gone or failed: the other one
            logger.info("TorchScript ONNX export failed (%s); using torch.export", err)
            samples = torch.export.Dim("samples", min=400, max=TARGET_RATE * 3600)
            torch.onnx.export(
                model,
                (example,),
                input_names=["input_values"],
                output_names=["logits"],
                dynamic_shapes=({1: samples},),
                dynamo=True,
            ).save(str(path))
