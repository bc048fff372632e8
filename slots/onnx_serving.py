"""CPU serving through ONNX Runtime with int8 weights, for every slot kind.

Why this path: on 2 CPU cores (docs/benchmarks.md, "CPU serving"), wav2vec 2.0 base over a
30 s clip took 6.3 s in torch fp32, 5.1 s with torch's dynamic int8 quantization, and 4.0 s in
ONNX Runtime with its MatMul weights quantized to int8 (the conv front end and GELU/GroupNorm run
fused there as well); the QA and keyword models gain as much (docs/benchmarks.md, "Serving speed").
torch's own dynamic quantization (`torch.ao.quantization.quantize_dynamic`) is also deprecated in
favour of torchao, which has no CPU int8 path for these models.

A model is exported once per weights file and cached on disk (`ONNX_CACHE`). The exporter is
torch's TorchScript-based one, because its graph ran fastest here; it is deprecated, so when a
torch release drops it the torch.export-based exporter takes over (slower graph, same results).
Any failure leaves the slot serving the torch model in fp32, and says so (`slots.placement`).

The sessions stand in for the transformers models wherever `core` runs one: they take the same
inputs and return an object with the same output names. Speech rows that are padded run one at a
time at their own length, so padding never reaches the conv front end's GroupNorm (the guarantee
`speech.padding.padding_proof` gives the torch model); text rows run as one batch (their attention
mask already keeps padding out).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from core import settings
from slots import onnx_graph
from speech.audio import TARGET_RATE

logger = logging.getLogger(__name__)

CACHE = settings.ONNX_CACHE
FORMAT = 5  # bump when the export or quantization recipe changes: old cache entries are ignored
INT8 = "int8 (onnxruntime, cpu)"
# torch.onnx.export is not thread-safe: two slots exporting at once (their loads run in parallel
# threads) crash the process. One export at a time.
_EXPORTING = threading.RLock()


@dataclass(frozen=True)
class Export:
    """How one slot kind's models go to ONNX: which classes, their inputs and outputs (the rewrite
    their graph gets before quantization, if any, is in `slots.onnx_graph.FUSIONS`)."""

    classes: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]

    def example(self) -> tuple[torch.Tensor, ...]:
        """Inputs to trace with: 1 s of audio, or 16 tokens."""
        if self.inputs == ("input_values",):
            return (torch.zeros(1, TARGET_RATE),)
        ids = torch.full((1, 16), 5, dtype=torch.long)
        return ids, torch.ones_like(ids)


_AUDIO_AXES = {"input_values": {0: "batch", 1: "samples"}}
_TEXT_AXES = {
    name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "start_logits", "end_logits")
}
EXPORTS = {
    "ctc": Export(
        ("Wav2Vec2ForCTC", "HubertForCTC", "Data2VecAudioForCTC", "WavLMForCTC"),
        ("input_values",),
        ("logits",),
        {**_AUDIO_AXES, "logits": {0: "batch", 1: "frames"}},
    ),
    "audio-classification": Export(
        ("HubertForSequenceClassification", "Wav2Vec2ForSequenceClassification", "WavLMForSequenceClassification"),
        ("input_values",),
        ("logits",),
        {**_AUDIO_AXES, "logits": {0: "batch"}},
    ),
    "question-answering": Export(
        (
            "DistilBertForQuestionAnswering",
            "XLMRobertaForQuestionAnswering",
            "BertForQuestionAnswering",
            "RobertaForQuestionAnswering",
        ),
        ("input_ids", "attention_mask"),
        ("start_logits", "end_logits"),
        _TEXT_AXES,
    ),
}


class OnnxModel(torch.nn.Module):
    """An ONNX Runtime session with the attributes callers read from a transformers model
    (`config`, a parameter for the device); `source_parameters` counts the original's weights."""

    def __init__(self, path: Path, torch_model: Any, threads: int | None = None):
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # No spinning: after a run, ONNX Runtime's workers spin-wait for more work by default, and the
        # next session to run (XLM-R right after DistilBERT in /answer, any other visitor's request)
        # then shares the cores with them: a 1 s clip's keyword model took 100 ms right after another
        # session's run instead of 63 ms; without spinning 64-66 ms either way (docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.config = torch_model.config
        self.path = Path(path)
        self.source_parameters = source_parameters(torch_model)
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # device for callers
        self.export: dict[str, Any] | None = None  # what exporting it cost (`int8_model`); None: cached


class OnnxSpeech(OnnxModel):
    """CTC or classification over audio: `input_values` (+ `attention_mask`) in, `.logits` out."""

    def _get_feat_extract_output_lengths(self, lengths):
        """Frames the conv front end makes of `lengths` samples (as the transformers model says)."""
        lengths = torch.as_tensor(lengths)
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride, strict=True):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        x = input_values.detach().cpu().numpy().astype(np.float32)
        if attention_mask is None or bool(attention_mask.all()):
            return SimpleNamespace(logits=torch.from_numpy(self.session.run(None, {"input_values": x})[0]))
        lengths = attention_mask.sum(-1).tolist()
        rows = [self.session.run(None, {"input_values": x[i : i + 1, : int(n)]})[0][0] for i, n in enumerate(lengths)]
        if rows[0].ndim == 1:  # one vector per clip (classification)
            return SimpleNamespace(logits=torch.from_numpy(np.stack(rows)))
        frames = max(len(r) for r in rows)
        logits = np.zeros((len(rows), frames, rows[0].shape[-1]), np.float32)
        for i, row in enumerate(rows):
            logits[i, : len(row)] = row
        return SimpleNamespace(logits=torch.from_numpy(logits))


class OnnxQA(OnnxModel):
    """Extractive QA: `input_ids` and `attention_mask` in, `.start_logits` and `.end_logits` out."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **unused: Any) -> Any:
        feeds = {
            "input_ids": input_ids.cpu().numpy().astype(np.int64),
            "attention_mask": attention_mask.cpu().numpy().astype(np.int64),
        }
        starts, ends = self.session.run(None, feeds)
        return SimpleNamespace(start_logits=torch.from_numpy(starts), end_logits=torch.from_numpy(ends))


def supported(kind: str, model: Any) -> bool:
    """Whether `model` of a slot kind can be served through ONNX Runtime."""
    return kind in EXPORTS and type(model).__name__ in EXPORTS[kind].classes


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


def cached_export(kind: str, model: Any, weights: Path) -> Path:
    """Where `model`'s int8 export is kept (it may not be there yet)."""
    return CACHE / cache_key(weights, model) / "model.int8.onnx"


def int8_model(
    kind: str, model: Any, weights: Path, threads: int | None = None, export: Callable[..., Any] | None = None
) -> OnnxModel:
    """`model` as an int8 ONNX Runtime session, exported and quantized on first use (one export at
    a time), then read from the cache.

    Args:
        kind: the slot kind (a key of `EXPORTS`).
        model: the transformers model.
        weights: its safetensors file (keys the cache).
        threads: intra-op threads (default: torch's).
        export: `export(kind, model, folder, target)` writes the int8 model to `target` and returns
            what it cost (or None): the app's is `slots.int8_export.export`; default: `build`.

    Returns:
        An `OnnxQA` for question answering, else an `OnnxSpeech`; its `export` holds what the
        export cost (None when it came from the cache).
    """
    target = cached_export(kind, model, weights)
    report = None
    with _EXPORTING:
        if not target.is_file():
            report = (export or _in_process)(kind, model, Path(weights).parent, target)
    wrapper = OnnxQA if kind == "question-answering" else OnnxSpeech
    served = wrapper(target, model, threads)
    served.export = report
    return served


def _in_process(kind: str, model: Any, folder: Path, target: Path) -> None:
    build(kind, model, target)


def source_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def build(kind: str, model: Any, target: Path) -> None:
    """Export `model` (of slot kind `kind`) to ONNX and quantize it to int8 at `target`, in this
    process (`slots.int8_export` runs it in one of its own). A copy is traced: the model may be
    serving requests in fp32 meanwhile, and tracing a module that another thread runs fails
    ("state_dict changed after running the tracer")."""
    model = copy.deepcopy(model).eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _export(EXPORTS[kind], model, fp32)
        fp32 = onnx_graph.fuse(kind, fp32, model.config, Path(tmp) / "fused.onnx")
        staged = Path(tmp) / "model.int8.onnx"
        onnx_graph.quantize(fp32, staged)
        os.replace(staged, target)  # a reader never sees half a file


def export_graph(kind: str, model: Any, path: Path) -> None:
    """`model` (of slot kind `kind`) exported to an fp32 ONNX graph at `path` (the first step)."""
    _export(EXPORTS[kind], model.eval(), path)


@contextmanager
def _eager_attention(model: Any):
    """Export the attention as plain matmuls: SDPA's exported graph adds mask handling (`Where`,
    `IsNaN`) that took 15-18 % of an int8 QA forward here and that no fusion recognises."""
    before = getattr(model.config, "_attn_implementation", None)
    switched = False
    if before not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
            switched = True
        except (ValueError, ImportError, NotImplementedError) as err:  # a class without it: export its own
            logger.info("eager attention unavailable for %s (%s); exporting its own", type(model).__name__, err)
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(before)


def _export(spec: Export, model: Any, path: Path) -> None:
    example = spec.example()
    with _EXPORTING, _eager_attention(model), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice and tracer warnings (see the docstring)
        try:
            torch.onnx.export(
                model,
                example,
                str(path),
                input_names=list(spec.inputs),
                output_names=list(spec.outputs),
                dynamic_axes=spec.dynamic_axes,
                opset_version=17,
                dynamo=False,
            )
        except Exception as err:  # noqa: BLE001 - the legacy exporter is gone or failed: the other one
            logger.info("TorchScript ONNX export failed (%s); using torch.export", err)
            shapes = [
                {
                    axis: torch.export.Dim(name, min=2, max=TARGET_RATE * 3600)
                    for axis, name in spec.dynamic_axes[n].items()
                }
                for n in spec.inputs
            ]
            torch.onnx.export(
                model,
                example,
                input_names=list(spec.inputs),
                output_names=list(spec.outputs),
                dynamic_shapes=tuple(shapes),
                dynamo=True,
            ).save(str(path))
