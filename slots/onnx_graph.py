"""An exported ONNX graph's rewrites before serving: a slot kind's fusion (`fuse`) and the int8
quantization (`quantize`).

Kept apart from `slots.onnx_serving` because neither needs torch: `slots.int8_export` runs each in
a process of its own, and importing torch there (with transformers, 2-3 s on 2 cores) would cost
more than the step itself for the smaller models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def fuse_text_attention(path: Path, config: Any, target: Path) -> Path:
    """A text model's graph with each layer's attention as one `Attention` op (and the GELUs and
    residual layer norms fused), which quantizes to `QAttention`: with the eager export the QA
    pair ran in 535 ms against 550 unfused and 657 with SDPA's graph (docs/benchmarks.md). `config`
    is the model's config, or anything with its attributes."""
    from onnxruntime.transformers import optimizer

    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    try:
        fused = optimizer.optimize_model(
            str(path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0
        )
        if not fused.get_fused_operator_statistics().get("Attention"):
            return path
        fused.save_model_to_file(str(target))
    except Exception as err:  # noqa: BLE001 - the unfused graph computes the same
        logger.info("attention fusion failed (%s); serving the unfused graph", err)
        return path
    return target


# The slot kinds whose exported graph is rewritten before quantization; the others go as exported.
FUSIONS: dict[str, Callable[[Path, Any, Path], Path]] = {"question-answering": fuse_text_attention}


def fuse(kind: str, path: Path, config: Any, target: Path) -> Path:
    """The graph at `path` with the kind's fusion written to `target`, or `path` itself where the
    kind has none or it does not apply."""
    fusion = FUSIONS.get(kind)
    return path if fusion is None else fusion(path, config, target)


def quantize(graph: Path, target: Path) -> None:
    """`graph`'s MatMul and Attention weights quantized to int8, written to `target`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # ORT suggests a pre-processing pass, at WARNING
    try:
        quantize_dynamic(
            graph,
            target,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Attention"],
            # The fused graph's contrib ops defeat shape inference; their outputs are float.
            extra_options={"DefaultTensorType": 1},
        )
    finally:
        logging.getLogger().setLevel(quiet)
