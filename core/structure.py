"""The model structure table of the course report this project recreates (HW4: one column per
model; layers, widths, heads, vocabulary, parameters), read from a loaded model's config (never
hard-coded)."""

from __future__ import annotations

from typing import Any

# The architecture name of `speech.heads.HubertSuperbForCTC`, here so that the table (and the app,
# which imports it at start) need not import transformers' HuBERT model code to name a head.
SUPERB_CTC = "HubertSuperbForCTC"
# Row label -> config attributes that hold it, by model family (BERT-like, DistilBERT, Hubert).
ROWS: dict[str, tuple[str, ...]] = {
    "activation": ("hidden_act", "activation"),
    "hidden size": ("hidden_size", "dim"),
    "feed-forward size": ("intermediate_size", "hidden_dim"),
    "attention heads": ("num_attention_heads", "n_heads"),
    "layers": ("num_hidden_layers", "n_layers"),
}


def structure(config: Any, parameters: int | None = None, size_bytes: int | None = None) -> dict[str, Any]:
    """Rows of the structure table for one model.

    Args:
        config: the model's config.
        parameters: its parameter count, when known.
        size_bytes: its size on disk, when known.

    Returns:
        Row name -> value. The vocabulary row is the token vocabulary for CTC and QA models; a
        classifier shows its number of labels instead.
    """
    row: dict[str, Any] = {"model type": getattr(config, "model_type", "?")}
    for label, names in ROWS.items():
        row[label] = next((getattr(config, n) for n in names if getattr(config, n, None) is not None), None)
    architectures = getattr(config, "architectures", None) or []
    if any("SequenceClassification" in a for a in architectures):
        row["vocabulary"] = f"{config.num_labels} labels"
    else:
        row["vocabulary"] = getattr(config, "vocab_size", None)
    row["head"] = describe_head(config)
    row["parameters"] = parameters
    row["size on disk"] = human_bytes(size_bytes) if size_bytes is not None else None
    return row


def human_bytes(n: int) -> str:
    """A byte count in B, KB, MB or GB (powers of 1024)."""
    if n < 1024:
        return f"{n} B"
    size = n / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def describe_head(config: Any) -> str:
    """One line for the structure table."""
    architectures = getattr(config, "architectures", None) or []
    if SUPERB_CTC in architectures:
        spec = config.superb_head
        return f"layer mix + {spec['lstm_layers']}-layer BiLSTM ({spec['lstm_size']}) + linear CTC"
    if any("SequenceClassification" in a for a in architectures):
        mix = "layer mix + " if getattr(config, "use_weighted_layer_sum", False) else ""
        return f"{mix}projection ({config.classifier_proj_size}) + mean pool + linear"
    if any("ForCTC" in a for a in architectures):
        return "linear CTC"
    return "span start/end (linear)" if any("QuestionAnswering" in a for a in architectures) else "?"
