"""The keyword model judged as it is deployed, in its Evaluation view: misses against false alarms
per hour over the threshold (the streaming evaluation of train/kws_streams.py, read from
metrics.json), the chosen operating point, the live listener's threshold on the same curve, and
the false activations to listen to. Also the threshold the Live tab starts from, in plain words."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from core.examples import Examples
from slots.sources import LoadedModel
from speech import keywords
from ui.error_views import ClipList, examples_of
from ui.kws_scores import DEFAULT_THRESHOLD
from ui.plots import compact

ALL = "all keywords"
SNR_COLOURS = ("#2ca02c", "#ff7f0e", "#d62728", "#9467bd", "#8c564b")


def streaming_of(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The checkpoint's streaming evaluation, or None (older checkpoints, hub models)."""
    found = ((metrics or {}).get("extra") or {}).get("streaming")
    return found if isinstance(found, dict) and found.get("thresholds") and found.get("keyword_free") else None


def live_threshold(metrics: dict[str, Any] | None) -> float:
    """The threshold the Live tab starts from: the evaluation's operating point where there is one."""
    point = (streaming_of(metrics) or {}).get("operating_point")
    return float(point["threshold"]) if point else DEFAULT_THRESHOLD


def keyword_thresholds(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    """The evaluation's threshold per keyword, where it chose them (they miss fewer keywords than
    one threshold for all at the same false-alarm target), or None."""
    each = (streaming_of(metrics) or {}).get("per_keyword_point")
    return dict(each["thresholds"]) if each and isinstance(each.get("thresholds"), dict) else None


def listening_threshold(metrics: dict[str, Any] | None, slider: float, each: bool) -> float | dict[str, float]:
    """What the Live listener fires at: the keywords' own thresholds when the visitor keeps them on
    (the slider then covers any keyword they leave out), else the slider's one."""
    chosen = keyword_thresholds(metrics) if each else None
    return {**chosen, "*": float(slider)} if chosen else float(slider)


def rate_bound(count: int, seconds: float) -> float:
    """The 95 % upper bound on false alarms per hour given `count` in `seconds` of audio (exact
    Poisson): 0 in 20 minutes still allows about 9 an hour."""
    from scipy.stats import chi2

    return float(chi2.ppf(0.95, 2 * (count + 1)) / 2 * 3600 / seconds) if seconds else float("inf")


def in_words(per_hour: float) -> str:
    """A false-alarm rate as a visitor reads it."""
    if per_hour <= 0:
        return "no false alarm"
    if per_hour < 1:
        return f"about one false alarm every {1 / per_hour:.0f} hours"
    return f"about {per_hour:.0f} false alarm{'s' * (round(per_hour) != 1)} an hour"


def curve(streaming: dict[str, Any], keyword: str = ALL) -> tuple[list[float], list[float], dict[str, list]]:
    """Thresholds, false alarms per hour and misses by SNR, for every keyword or one."""
    free = streaming["keyword_free"]
    if keyword == ALL:
        per_hour = free["per_hour"]
    else:
        counts = free.get("per_keyword", {}).get(keyword, [0] * len(streaming["thresholds"]))
        per_hour = [n * 3600 / free["seconds"] for n in counts]
    misses = {}
    for stream in streaming["keyword_streams"]:
        rates = stream["miss_rate"] if keyword == ALL else stream.get("misses_per_keyword", {}).get(keyword)
        if rates:
            misses[f"{stream['snr_db']:g} dB SNR"] = rates
    return streaming["thresholds"], per_hour, misses


def figure(streaming: dict[str, Any], threshold: float, keyword: str = ALL) -> go.Figure:
    """Missed keywords against false alarms per hour, one line per SNR, each point a threshold;
    marked on every line: the live listener's `threshold` (◆), the operating point (★) and the
    keywords' own thresholds (✕; for every keyword, the point they make together)."""
    thresholds, per_hour, misses = curve(streaming, keyword)
    point, each = streaming.get("operating_point"), streaming.get("per_keyword_point")
    marks = [(int(np.argmin(np.abs(np.array(thresholds) - threshold))), "diamond", "live threshold")]
    if point and point["threshold"] in thresholds:
        marks.append((thresholds.index(point["threshold"]), "star", "operating point"))
    if each and keyword != ALL and each["thresholds"].get(keyword) in thresholds:
        marks.append((thresholds.index(each["thresholds"][keyword]), "x", "its own threshold"))
    fig = go.Figure()
    for (name, rates), colour in zip(misses.items(), SNR_COLOURS, strict=False):
        fig.add_trace(
            go.Scatter(
                x=per_hour, y=rates, mode="lines+markers", name=name, line={"color": colour}, marker={"size": 5},
                customdata=thresholds, hovertemplate="threshold %{customdata:.2f}: %{x:.1f} an hour, %{y:.1%} missed",
            )
        )  # fmt: skip
        for i, symbol, what in marks:
            _mark(fig, per_hour[i], rates[i], symbol, colour, f"{what} {thresholds[i]:.2f}")
    if each and keyword == ALL:
        for stream, colour in zip(streaming["keyword_streams"], SNR_COLOURS, strict=False):
            if (missed := each["miss_rate"].get(str(stream["snr_db"]))) is not None:
                _mark(fig, each["per_hour"], missed, "x", colour, "each keyword's own threshold")
    plain = streaming.get("without_gate") or {}
    if keyword == ALL and plain.get("per_hour"):  # what the gate changes: the same streams ungated
        for (snr, rates), colour in zip(plain.get("miss_rate", {}).items(), SNR_COLOURS, strict=False):
            fig.add_trace(
                go.Scatter(
                    x=plain["per_hour"], y=rates, mode="lines", name=f"{snr} dB, no voice gate",
                    line={"color": colour, "dash": "dot", "width": 1}, customdata=thresholds,
                    hovertemplate="no gate, threshold %{customdata:.2f}: %{x:.1f} an hour, %{y:.1%} missed",
                )
            )  # fmt: skip
    return compact(fig, height=360, xaxis_title="false alarms per hour (no keyword said)",
                   yaxis_title="keywords missed", yaxis_tickformat=".0%")  # fmt: skip


def _mark(fig: go.Figure, x: float, y: float, symbol: str, colour: str, what: str) -> None:
    fig.add_trace(
        go.Scatter(
            x=[x], y=[y], mode="markers", showlegend=False,
            marker={"symbol": symbol, "size": 13, "color": colour, "line": {"width": 1, "color": "black"}},
            hovertemplate=f"{what}: %{{x:.1f}} an hour, %{{y:.1%}} missed<extra></extra>",
        )
    )  # fmt: skip


def summary(streaming: dict[str, Any] | None, threshold: float) -> str:
    """What the streaming evaluation says, at the operating point and at the live `threshold`."""
    if streaming is None:
        return (
            "This model was not judged as deployed (false alarms per hour on long audio): models trained by "
            "`train.kws` since the streaming evaluation was added are. Try **Your room** on your own audio."
        )
    free = streaming["keyword_free"]
    minutes = free["seconds"] / 60
    thresholds = streaming["thresholds"]
    i = int(np.argmin(np.abs(np.array(thresholds) - threshold)))
    count = free["false_accepts"][i]
    misses = ", ".join(f"{s['miss_rate'][i]:.0%} at {s['snr_db']:g} dB" for s in streaming["keyword_streams"])
    lines = [
        f"The live listener ran over **{minutes:.1f} minutes** with no keyword said (background noise and "
        f"{free['other_words']} other words) and over the test keywords laid in that noise.",
        f"At the live threshold **{thresholds[i]:.2f}**: {count} false alarm{'s' * (count != 1)} "
        f"({in_words(free['per_hour'][i])}; from {minutes:.0f} minutes, the true rate could be up to "
        f"{rate_bound(count, free['seconds']):.1f} an hour), keywords missed: {misses or 'not measured'}.",
    ]
    plain = streaming.get("without_gate") or {}
    if plain.get("per_hour"):
        lines.append(
            f"These are with the voice gate on, as the Live tab listens by default; without it, "
            f"{in_words(plain['per_hour'][i])} at {thresholds[i]:.2f} (dotted lines)."
        )
    each = streaming.get("per_keyword_point")
    if each:
        listed = ", ".join(f"{k} {t:.2f}" for k, t in each["thresholds"].items())
        missed = ", ".join(f"{m:.0%} at {float(snr):g} dB" for snr, m in each["miss_rate"].items() if m is not None)
        lines.append(
            f"With each keyword's own threshold (✕: {listed}): {in_words(each['per_hour'])}, keywords missed: "
            f"{missed}. The Live tab uses them unless you turn them off."
        )
    point = streaming.get("operating_point")
    if point:
        lines.append(
            f"Operating point **{point['threshold']:.2f}** (★): the lowest threshold with at most "
            f"{point['target_per_hour']:g} false alarms an hour on this audio; the Live tab starts there."
        )
    else:
        lines.append("No threshold kept false alarms within the target on this audio: the Live tab keeps its default.")
    if streaming.get("noise_heard_in_training"):
        lines.append("The noise recordings are Speech Commands' own; the model heard parts of them while training.")
    return "\n\n".join(lines)


def alarm_entries(examples: Examples | None, threshold: float) -> list[tuple[str, Any]]:
    """The stored false activations, those still firing at `threshold` first: a line and its clip."""
    if examples is None or not examples.alarms:
        return []
    rows = sorted(examples.alarms, key=lambda a: (a["up_to"] < threshold, -a["up_to"]))
    return [(_line(a, threshold), examples.audio_path(a)) for a in rows]


def _line(alarm: dict[str, Any], threshold: float) -> str:
    fires = "fires" if alarm["up_to"] >= threshold else "silent"
    return (
        f"<b>{html.escape(str(alarm['label']))}</b> at {alarm['time_s']:.2f} s, probability "
        f"{alarm['probability']:.0%}; fires up to threshold {alarm['up_to']:.2f} ({fires} at {threshold:.2f})"
    )


def threshold_note(metrics: dict[str, Any] | None) -> str:
    """The Live tab's line under its threshold: where it starts and what that means, in plain words."""
    streaming = streaming_of(metrics)
    point = (streaming or {}).get("operating_point")
    if not point:
        return f"The threshold starts at {DEFAULT_THRESHOLD:.2f}; this model was not judged on long audio."
    minutes = streaming["keyword_free"]["seconds"] / 60
    text = (
        f"The threshold starts at **{point['threshold']:.2f}**, the model's operating point: "
        f"{in_words(point['per_hour'])} in {minutes:.0f} minutes of background noise and other words. "
        "Your room may differ: try **Your room**."
    )
    each = streaming.get("per_keyword_point")
    if each:
        listed = ", ".join(f"{k} {t:.2f}" for k, t in each["thresholds"].items())
        text += (
            f" With each keyword's own threshold ({listed}) it misses fewer words for "
            f"{in_words(each['per_hour'])} on the same audio."
        )
    return text


class Section:
    """The Evaluation view's "As deployed" part; `for_model` also moves the Live tab's threshold
    to the operating point unless the visitor has moved it."""

    def __init__(self) -> None:
        gr.Markdown("### As deployed: keywords missed against false alarms")
        self.note = gr.Markdown()
        self.keyword = gr.Dropdown([ALL, *keywords.KEYWORDS], value=ALL, label="Keyword", visible=False)
        self.plot = gr.Plot(label="Missed keywords against false alarms per hour, by threshold", visible=False)
        self.heading = gr.Markdown(visible=False)
        self.clips = ClipList()
        self.applied = gr.State(DEFAULT_THRESHOLD)  # the start the Live slider was last given

    @property
    def outputs(self) -> list[Any]:
        return [self.note, self.keyword, self.plot, self.heading, *self.clips.outputs]

    def view(self, loaded: LoadedModel | None, keyword: str, threshold: float) -> list[Any]:
        metrics = loaded.metrics if loaded else None
        streaming = streaming_of(metrics)
        shown = streaming is not None
        plot = figure(streaming, threshold, keyword or ALL) if shown else None
        examples, _ = examples_of(loaded, "kws") if loaded else (None, "")
        entries = alarm_entries(examples, threshold)
        firing = sum(a["up_to"] >= threshold for a in (examples.alarms if examples else []))
        heading = (
            f"**False alarms to listen to** ({len(entries)} kept with the model; {firing} fire at "
            f"{threshold:.2f}): 1 s of the keyword-free audio each, where the listener fired."
        )
        note = summary(streaming, threshold) if loaded else "No model is loaded, so there is nothing to show here."
        return [
            note,
            gr.update(visible=shown),
            gr.update(value=plot, visible=shown),
            gr.update(value=heading, visible=bool(entries)),
            *self.clips.show(entries),
        ]

    def for_model(self, loaded: LoadedModel | None, keyword: str, threshold: float, applied: float) -> list[Any]:
        """`view`, the Live slider's start (only if the visitor left it where it was put), its note,
        and the keywords' own thresholds switch (shown, and on, where the evaluation chose them)."""
        metrics = loaded.metrics if loaded else None
        start = live_threshold(metrics)
        moved = abs(float(threshold) - float(applied)) > 1e-9
        chosen = float(threshold) if moved else start
        slider = gr.skip() if moved else gr.update(value=start)
        each = keyword_thresholds(metrics) is not None
        own = gr.update(visible=each, value=each)
        return [*self.view(loaded, keyword, chosen), slider, start, threshold_note(metrics), own]
