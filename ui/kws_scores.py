"""A keyword model's scores for a clip and the confusion matrix of its evaluation: what the
keyword spotting tab and its Compare view both show."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from serving import gpu
from slots.sources import LoadedModel
from speech import spotting

DEFAULT_THRESHOLD = 0.8
MATRIX_PX = 560


def labels_of(loaded: LoadedModel) -> list[str]:
    config = loaded.model.config
    return [config.id2label[i] for i in range(config.num_labels)]


def clip_scores(
    loaded: LoadedModel, samples: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> tuple[dict[str, float], spotting.Scan, list[spotting.Detection]]:
    """Class probabilities for a clip, the scan of its 1 s windows and the keywords a live listener
    would log in it at `threshold`. A clip longer than a window is summarised by the window of its
    most probable logged keyword, so the label agrees with the timeline; with none logged, by its
    most keyword-like window (one window's spike, which a listener would not log, does not win
    over a keyword heard in two)."""
    scan = gpu.keyword_scan(loaded, samples)
    labels = labels_of(loaded)
    found = spotting.detect(scan, labels, threshold) if len(scan.times) > 1 else []
    if found:
        strongest = max(found, key=lambda d: d.probability)
        summary = scan.probs[int(np.argmin(np.abs(np.asarray(scan.times) - strongest.time_s)))]
    else:
        summary = spotting.best_window(scan.probs, labels, scan.quiet)
    return {label: float(p) for label, p in zip(labels, summary, strict=True)}, scan, found


def top_classes(scores: dict[str, float], k: int) -> dict[str, Any]:
    """The `k` best classes in gr.Label's format (what the /spot endpoint returns)."""
    best = sorted(scores.items(), key=lambda kv: -kv[1])[:k]
    return {"label": best[0][0], "confidences": [{"label": label, "confidence": p} for label, p in best]}


def confusion_figure(report: dict[str, Any], normalise: bool) -> go.Figure:
    labels = report["labels"]
    counts = np.array(report["confusion_matrix"], dtype=float)
    totals = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    matrix = counts / totals if normalise else counts
    # Normalised cells print a percentage (empty cells stay blank); the hover always has both.
    n = len(labels)
    text = [
        [(f"{matrix[i, j]:.0%}" if counts[i, j] else "") if normalise else f"{int(counts[i, j])}" for j in range(n)]
        for i in range(n)
    ]
    rows = counts.sum(axis=1)
    hover = [
        [f"{int(counts[i, j])} of {int(rows[i])} clips ({counts[i, j] / totals[i, 0]:.0%})" for j in range(n)]
        if rows[i]
        else ["no test clips of this class"] * n
        for i in range(n)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=labels,
            y=labels,
            text=text,
            customdata=hover,
            texttemplate="%{text}",
            colorscale="Blues",
            hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata}<extra></extra>",
        )
    )
    return matrix_layout(fig, "Confusion matrix (test)" + (", row-normalised" if normalise else ", counts"))


def matrix_layout(fig: go.Figure, title: str) -> go.Figure:
    """A true-by-predicted matrix's layout (the confusion matrix, the Compare view's B − A)."""
    fig.update_layout(
        title=title,
        xaxis_title="predicted",
        yaxis_title="true",
        yaxis_autorange="reversed",
        # A fixed size: twelve labels a side need ~30 px a cell to stay legible; on a phone the
        # plot scrolls sideways (page.css, .scroll-x) rather than shrinking.
        width=MATRIX_PX,
        height=MATRIX_PX,
        autosize=False,
        margin={"l": 90, "r": 20, "t": 50, "b": 90},
    )
    return fig
