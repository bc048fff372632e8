"""Rewrites of an exported fp32 graph before it is quantized (slots/onnx_serving.py): each layer's
attention as one ONNX Runtime op, so its core runs in one kernel instead of a chain of transposes,
matmuls, a scale and a softmax. Both are pattern matching on the eager export; where a pattern is
not found (another architecture, another exporter) the graph serves as it was."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def fuse_text_attention(path: Path, config: Any, target: Path) -> Path:
    """A text model's graph with each layer's attention as one `Attention` op (and the GELUs and
    residual layer norms fused), which quantizes to `QAttention`: with the eager export the QA
    pair ran in 535 ms against 550 unfused and 657 with SDPA's graph (docs/BENCHMARKS.md)."""
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


def fuse_speech_attention(path: Path, config: Any, target: Path) -> Path:
    """A speech encoder's graph with each layer's attention core as one `MultiHeadAttention` op
    over its query, key and value projections (which stay MatMuls, quantized to int8 later).

    onnxruntime's BERT optimizer finds no attention in wav2vec 2.0 / HuBERT (the scale comes after
    the query-key product), and over a 30 s clip the core (1,500 frames, 12 heads: score matrices
    of 108 MB per layer) took a fifth of the int8 forward as separate ops (docs/BENCHMARKS.md).
    The pattern, per layer: Reshape+Transpose of q, k and v; MatMul(q, kᵀ); Mul by a constant
    scale; Softmax; MatMul with v; Transpose; Reshape. No mask: padded speech rows run one at a
    time (slots/onnx_serving.py)."""
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.transformers.onnx_model import OnnxModel

    heads = getattr(config, "num_attention_heads", 0)
    if heads <= 0:
        return path
    try:
        model = onnx.load(str(path))
        graph = model.graph
        producer = {out: node for node in graph.node for out in node.output}
        consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        # Constant tensors by name, read into numpy only for the scales (the weights are initializers too).
        constants = {init.name: init for init in graph.initializer}
        constants.update({n.output[0]: n.attribute[0].t for n in graph.node if n.op_type == "Constant"})

        def only_consumer(name: str, op: str):
            found = consumers.get(name, [])
            return found[0] if len(found) == 1 and found[0].op_type == op else None

        def heads_input(name: str) -> str | None:
            """The [batch, frames, hidden] tensor behind a Reshape+Transpose into heads."""
            transpose = producer.get(name)
            if transpose is None or transpose.op_type != "Transpose":
                return None
            reshape = producer.get(transpose.input[0])
            return reshape.input[0] if reshape is not None and reshape.op_type == "Reshape" else None

        fused, dead = [], set()
        for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
            scale_node = producer.get(softmax.input[0])
            if scale_node is None or scale_node.op_type != "Mul" or scale_node.input[1] not in constants:
                continue
            scores = producer.get(scale_node.input[0])
            mix = only_consumer(softmax.output[0], "MatMul")
            merge = only_consumer(mix.output[0], "Transpose") if mix is not None else None
            flat = only_consumer(merge.output[0], "Reshape") if merge is not None else None
            if scores is None or scores.op_type != "MatMul" or flat is None:
                continue
            q, k, v = heads_input(scores.input[0]), heads_input(scores.input[1]), heads_input(mix.input[1])
            if None in (q, k, v):
                continue
            scale = float(numpy_helper.to_array(constants[scale_node.input[1]]).reshape(-1)[0])
            fused.append(
                helper.make_node(
                    "MultiHeadAttention",
                    [q, k, v],
                    [flat.output[0]],
                    name=f"MultiHeadAttention_{len(fused)}",
                    domain="com.microsoft",
                    num_heads=heads,
                    scale=scale,
                )
            )
            dead.update(id(n) for n in (scores, scale_node, softmax, mix, merge, flat))
        if not fused:
            return path
        kept = [n for n in graph.node if id(n) not in dead]
        del graph.node[:]
        graph.node.extend(kept + fused)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        rewritten = OnnxModel(model)
        rewritten.topological_sort()
        rewritten.prune_graph()  # the reshapes and transposes into heads are now unused
        rewritten.save_model_to_file(str(target))
    except Exception as err:  # noqa: BLE001 - the unfused graph computes the same
        logger.info("speech attention fusion failed (%s); serving the unfused graph", err)
        return path
    return target
