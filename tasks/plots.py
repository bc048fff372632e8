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


def key_value_markdown(rows: dict[str, Any]) -> str:
    """A two-column markdown table; floats with four decimals."""
    lines = ["| | value |", "|---|---|"]
    for key, value in rows.items():
        cell = f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
        lines.append(cell)
    return "\n".join(lines)
