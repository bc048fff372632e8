"""Plotly figures drawn from a checkpoint's `metrics.json`, shared by the tabs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go


def history_figure(
    history: list[dict[str, Any]], keys: Sequence[str], title: str, y_title: str = ""
) -> go.Figure | None:
    """One line per metric key over training steps; None when the history has none of them."""
    fig = go.Figure()
    for key in keys:
        points = [(row["step"], row[key]) for row in history if key in row and "step" in row]
        if points:
            steps, values = zip(*points, strict=True)
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=key))
    if not fig.data:
        return None
    fig.update_layout(
        title=title,
        xaxis_title="step",
        yaxis_title=y_title,
        height=320,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h"},
    )
    return fig


# Readable names for the metrics.json keys the tabs show (anything else: underscores to spaces).
LABELS = {
    "wer": "WER",
    "cer": "CER",
    "precision_micro": "precision (micro)",
    "precision_macro": "precision (macro)",
    "recall_micro": "recall (micro)",
    "recall_macro": "recall (macro)",
    "f1_macro": "F1 (macro)",
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
