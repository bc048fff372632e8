"""Plotly figures drawn from a checkpoint's `metrics.json`, shared by the tabs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go


def compact(fig: go.Figure, height: int = 320, **layout: Any) -> go.Figure:
    """The layout every small plot shares, readable at a phone's 320 px: the caption is the
    gr.Plot's label (no title inside the figure), and the legend is one or more rows above the
    plot area, where it pushes the plot down instead of covering an axis title or taking half
    the width beside it."""
    fig.update_layout(
        height=height,
        margin={"l": 45, "r": 15, "t": 10, "b": 45},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        **layout,
    )
    return fig


def history_figure(history: list[dict[str, Any]], keys: Sequence[str]) -> go.Figure | None:
    """One line per metric key over training steps; None when the history has none of them."""
    fig = go.Figure()
    for key in keys:
        points = [(row["step"], row[key]) for row in history if key in row and "step" in row]
        if points:
            steps, values = zip(*points, strict=True)
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=LABELS.get(key, key)))
    if not fig.data:
        return None
    return compact(fig, xaxis_title="step")


# Readable names for the metrics.json keys the tabs show (anything else: underscores to spaces).
LABELS = {
    "wer": "WER",
    "cer": "CER",
    "precision_micro": "precision (micro)",
    "precision_macro": "precision (macro)",
    "recall_micro": "recall (micro)",
    "recall_macro": "recall (macro)",
    "f1_macro": "F1 (macro)",
    "loss": "training loss",
    "eval_loss": "validation loss",
    "eval_wer": "WER",
    "eval_cer": "CER",
    # SQuAD v2's official names
    "exact": "EM",
    "f1": "F1",
    "HasAns_exact": "EM answerable",
    "HasAns_f1": "F1 answerable",
    "NoAns_exact": "EM unanswerable",
    "NoAns_f1": "F1 unanswerable",
    "total": "questions",
    "HasAns_total": "answerable",
    "NoAns_total": "unanswerable",
    "model_name_or_path": "base model",
    "freeze": "frozen",
    "warmup_steps": "warm-up steps",
    "per_device_train_batch_size": "batch size per device",
    "num_train_epochs": "epochs",
}


def human(key: str) -> str:
    """A metrics.json key as a table shows it: "f1_macro" -> "F1 (macro)"."""
    return LABELS.get(key, key.replace("_", " "))


def number(value: Any) -> Any:
    """A table cell: whole numbers as whole numbers (2.0 -> "2", 12000 -> "12,000"), other
    floats to four significant digits, anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return f"{int(value):,}"


def rounded(value: Any) -> Any:
    """A table value that still sorts as a number: whole floats as ints, others to 4 decimals."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 4)
    return value


def key_value_markdown(rows: dict[str, Any]) -> str:
    """A two-column markdown table, numbers formatted by `number`."""
    lines = ["| | value |", "|---|---|"]
    lines += [f"| {key} | {number(value)} |" for key, value in rows.items()]
    return "\n".join(lines)
