"""Keyword spotting tab: top-5 keywords for a clip, a timeline for long clips, live listening with
a detection log, and the evaluation view of the checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from gradio import FileData
from plotly.subplots import make_subplots

from slots.registry import Registry
from slots.sources import LoadedModel
from speech import keywords, spotting, vad
from speech.audio import TARGET_RATE, duration_s
from ui import kws_compare, kws_deployed, kws_room, live
from ui.common import (
    audio_or_error,
    card_and_controls,
    fading,
    hide_empty,
    no_evaluation,
    require,
    scroll_into_view,
    status_watch,
    uploaded_path,
    user_errors,
)
from ui.error_views import kws_panel
from ui.kws_scores import DEFAULT_THRESHOLD, clip_scores, confusion_figure, labels_of, top_classes
from ui.plots import compact, history_figure, human, key_value_markdown, rounded

SLOT = "kws"
EXAMPLES = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "assets" / "kws").glob("*.wav"))
INSTRUCTION = (
    "Say one short English word, or upload a clip: the model listens for **"
    + "**, **".join(keywords.KEYWORDS)
    + "**. Anything else is “another word”."
)


def spot(
    loaded: LoadedModel, samples: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> tuple[dict[str, float], go.Figure | None, list[spotting.Detection]]:
    """`clip_scores`, and for a clip longer than 1 s a timeline of the waveform, every keyword's
    probability and the keywords logged."""
    scores, scan, found = clip_scores(loaded, samples, threshold)
    if len(scan.times) < 2:
        return scores, None, []
    return scores, timeline_figure(samples, scan, labels_of(loaded), found), found


SAID = {keywords.SILENCE: "silence", keywords.UNKNOWN: "another word"}


def verdict(
    scores: dict[str, float], threshold: spotting.Threshold, found: list[spotting.Detection] | None = None
) -> str:
    """The headline over the scores: the keyword heard, or "No keyword" with the closest class
    when none reaches `threshold` (the scores' best class is a guess, not a detection). For a clip
    longer than a window, `found` (the keywords logged) decides, as the timeline does."""
    best, p = max(scores.items(), key=lambda kv: kv[1])
    needed = spotting.threshold_of(threshold, best)
    if found:
        return f"## {max(found, key=lambda d: d.probability).label}"
    if found is None and best in keywords.KEYWORDS and p >= needed:
        return f"## {best}"
    return f"## No keyword\n<small>closest: {SAID.get(best, best)} at {p:.0%}; a keyword needs {needed:.0%}</small>"


def spot_input(loaded: LoadedModel, audio: Any) -> tuple[str, dict[str, float], str, go.Figure | None]:
    """The verdict, the scores, a line with the audio's duration and the time taken (and, for a
    clip longer than a window, the keywords spotted) and the timeline."""
    samples = audio_or_error(audio)
    start = time.perf_counter()
    scores, figure, found = spot(loaded, samples)
    elapsed = time.perf_counter() - start
    line = f"{duration_s(samples):.1f} s of audio classified in {elapsed * 1000:.0f} ms on {loaded.device}"
    if figure is not None:
        heard = ", ".join(f"**{d.label}** at {d.time_s:.2f} s ({d.probability:.0%})" for d in found)
        line += f"\n\nSpotted (threshold {DEFAULT_THRESHOLD:.0%}): " + (heard or "no keyword")
    return verdict(scores, DEFAULT_THRESHOLD, found if figure is not None else None), scores, line, figure


# One colour per keyword, far apart (Tableau 10, its grey swapped for navy); the two catch-all
# classes are grey and dashed: they matter less than the words.
COLOURS = dict(
    zip(
        keywords.KEYWORDS,
        ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#1b2a6b"),
        strict=True,
    )
)


def timeline_figure(
    samples: np.ndarray, scan: spotting.Scan, labels: list[str], found: list[spotting.Detection]
) -> go.Figure:
    """The waveform with each detection marked on it, above every keyword's probability per window."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.35, 0.65], vertical_spacing=0.05)
    t, low, high = envelope(samples)
    waveform = {"x": t, "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False}
    fig.add_trace(go.Scatter(y=high, **waveform), row=1, col=1)
    fig.add_trace(go.Scatter(y=low, fill="tonexty", fillcolor="rgba(90,90,90,0.55)", **waveform), row=1, col=1)
    peak = float(np.abs(samples).max()) if len(samples) else 1.0
    if found:
        fig.add_trace(
            go.Scatter(
                x=[d.time_s for d in found],
                y=[peak * 1.15] * len(found),
                mode="markers+text",
                text=[d.label for d in found],
                textposition="top center",
                marker={"symbol": "triangle-down", "size": 11, "color": [COLOURS.get(d.label) for d in found]},
                name="spotted",
                showlegend=False,
                hovertemplate="%{text} at %{x:.2f} s<extra></extra>",
            ),
            row=1,
            col=1,
        )
    # Classes that never matter would only clutter the plot; a weak model still shows its top 3.
    peaks = scan.probs.max(axis=0)
    shown = set(np.argsort(-peaks)[:3]) | set(np.flatnonzero(peaks >= 0.1))
    for i, label in enumerate(labels):
        if i not in shown:
            continue
        line = {"color": COLOURS[label]} if label in COLOURS else {"color": "#9a9a9a", "dash": "dot"}
        fig.add_trace(go.Scatter(x=scan.times, y=scan.probs[:, i], mode="lines", name=label, line=line), row=2, col=1)
    compact(fig, height=400, xaxis2_title="time (s)")
    fig.update_yaxes(visible=False, range=[-peak * 1.1, peak * 1.6], row=1, col=1)
    fig.update_yaxes(title_text="probability", range=[0, 1], row=2, col=1)
    return fig


def envelope(samples: np.ndarray, bins: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The waveform drawn as its min/max per bin: [bins] times (s), lows and highs."""
    n = max(1, len(samples) // bins)
    usable = samples[: len(samples) // n * n].reshape(-1, n)
    t = (np.arange(len(usable)) + 0.5) * n / TARGET_RATE
    return t, usable.min(axis=1), usable.max(axis=1)


def listen(
    loaded: LoadedModel,
    listener: spotting.Listener | None,
    chunk: tuple[int, np.ndarray] | None,
    threshold: spotting.Threshold,
    missing_s: float = 0.0,
    voice_gate: bool = False,
) -> tuple[spotting.Listener, str, str, dict[str, float], str]:
    """One streaming chunk in: the detection log (newest first, or a hint while it is empty), the
    latest window's verdict (`verdict`) and scores, and the chunk's input level. `missing_s` of
    audio never arrived before the chunk (`live.Places.heard`): from `live.GAP_S` on, the listener skips over it
    (`spotting.Listener.skip`), so logged times stay times since Record. With `voice_gate` a new
    listener scores only the windows the voice-activity detector hears speech in."""
    listener = listener or spotting.Listener(gate=vad.Scorer() if voice_gate else None)
    level = ""
    if chunk is not None and chunk[1] is not None and np.size(chunk[1]):
        if missing_s >= live.GAP_S:
            listener.skip(missing_s)
        with user_errors():
            listener.push(loaded.live_model, loaded.processor, chunk[0], chunk[1], threshold)
        level = live.level_meter(*chunk)
    log = "\n".join(f"{d.time_s:7.2f} s  {d.label:<6} {d.probability:.2f}" for d in reversed(listener.detections))
    latest = {} if listener.latest is None else dict(zip(labels_of(loaded), map(float, listener.latest), strict=True))
    headline = verdict(latest, threshold) if latest else ""
    return listener, log or waiting_hint(listener, threshold), headline, latest, level


def waiting_hint(listener: spotting.Listener, threshold: spotting.Threshold) -> str:
    """What the empty log says: listening, and how close the best word came to the threshold."""
    if listener.closest is None:
        return "(listening: say one of the keywords)"
    label, p = listener.closest
    return (
        f"(listening: nothing above the {spotting.threshold_of(threshold, label):.2f} threshold yet; the closest "
        f"was “{label}” at {p:.2f}. Speak closer, or lower the threshold.)"
    )


def evaluation(
    metrics: dict[str, Any] | None, normalise: bool = False, absent: str = ""
) -> tuple[str, Any, Any, Any, Any]:
    """Summary, confusion matrix, per-class table, class frequencies and loss curves; `absent`
    says why there is none (`no_evaluation`)."""
    if not metrics:
        return absent or no_evaluation(None), None, None, None, None
    final = metrics.get("final", {})
    split = "test" if "test" in final else "validation"
    report = final.get(split, {})
    rows = {
        f"{split} {human(k)}": report[k]
        for k in ("loss", "accuracy", "precision_micro", "precision_macro", "recall_micro", "recall_macro", "f1_macro")
        if k in report
    }
    rows.update({f"{s} clips": n for s, n in metrics.get("dataset_sizes", {}).items()})
    per_class = pd.DataFrame(
        [
            {"class": label, **{human(k): rounded(v) for k, v in scores.items()}}
            for label, scores in report.get("per_class", {}).items()
        ]
    )
    counts = metrics.get("extra", {}).get("class_counts", {})
    freq = go.Figure(go.Bar(x=list(counts), y=list(counts.values()))) if counts else None
    if freq is not None:
        compact(freq)
    matrix = confusion_figure(report, normalise) if "confusion_matrix" in report else None
    loss = history_figure(metrics.get("history", []), ["loss", "eval_loss"])
    return key_value_markdown(rows), matrix, per_class, freq, loss


def build(registry: Registry, page: gr.Blocks) -> None:
    """The Keyword spotting tab's components, placed in the caller's layout; `page`, the app's Blocks,
    runs their load events."""
    slot = registry[SLOT]

    def on_spot(audio):
        headline, scores, line, figure = spot_input(require(slot), audio)
        # The bars and the timeline appear with a result (a clip of one window has no timeline).
        return headline, gr.Label(scores, visible=True), line, gr.Plot(figure, visible=figure is not None)

    places = live.places_of(slot)

    def on_listen(chunk, listener, threshold, gate, each, missing_s):
        loaded = require(slot)
        used = kws_deployed.listening_threshold(loaded.metrics, threshold, each)
        return listen(loaded, listener, chunk, used, missing_s, gate)

    def on_evaluation(normalise):
        loaded = slot.peek()
        metrics = loaded.metrics if loaded else None
        shown = hide_empty(evaluation(metrics, normalise == "row-normalised", no_evaluation(loaded)))
        return [*shown, gr.update(visible=shown[1]["visible"])]  # the matrix's switch, with the matrix

    gr.Markdown(INSTRUCTION, elem_classes=["instruction"])
    kws_status = gr.Markdown(elem_classes=["about-model"])
    with gr.Tabs(overflow_behavior="wrap"):  # on a phone every sub-tab stays in view
        with gr.Tab("Record or upload"):
            kws_audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Keyword")
            kws_button = gr.Button("Spot", variant="primary")
            if EXAMPLES:
                gr.Examples(EXAMPLES, inputs=kws_audio, label="Examples (synthetic voices)")
            # The headline is ours (`verdict`): gr.Label's would name the best class even below
            # the threshold.
            with gr.Column(elem_id="kws-result"):
                kws_verdict = gr.Markdown(elem_id="kws-verdict", elem_classes=["verdict"])
                kws_label = gr.Label(num_top_classes=5, label="Top 5", show_heading=False, visible=False)
            kws_timing = gr.Markdown()
            kws_timeline = gr.Plot(
                label="Timeline: waveform, keywords spotted, probability per 1 s window", visible=False
            )
        with gr.Tab("Live"):
            gr.Markdown(
                "A 1 s window slides every 250 ms; a keyword above the threshold is logged once "
                "per utterance, once two successive windows agree (`_silence_` and `_unknown_` are never logged)."
                + live.where_it_runs()
            )
            gr.Markdown("Say one of: " + ", ".join(f"**{k}**" for k in keywords.KEYWORDS) + ".")
            kws_threshold = gr.Slider(0.3, 0.99, value=DEFAULT_THRESHOLD, step=0.01, label="Threshold")
            kws_threshold_note = gr.Markdown()
            kws_each = gr.Checkbox(
                value=False, visible=False, label="Each keyword's own threshold, from the evaluation"
            )
            kws_gate = gr.Checkbox(
                value=True, label="Listen for speech: score only what a voice-activity detector hears as speech"
            )
            kws_live_audio = gr.Audio(
                sources=["microphone"], type="numpy", streaming=True, label="Microphone", elem_id="kws-live-audio"
            )
            kws_level = gr.Markdown()
            with gr.Row():
                kws_log = gr.Textbox(label="Detections (time since start, keyword, probability)", lines=8)
                with gr.Column():
                    kws_live_verdict = gr.Markdown(elem_classes=["verdict"])
                    kws_live_label = gr.Label(num_top_classes=3, label="Current window", show_heading=False)
        with gr.Tab("Your room"):
            kws_room.section(slot, kws_threshold)
        with gr.Tab("Compare") as compare_tab:
            refill, pickers = kws_compare.section(registry)
        with gr.Tab("Evaluation"):
            kws_summary = gr.Markdown()
            kws_normalise = gr.Radio(["counts", "row-normalised"], value="counts", label="Confusion matrix")
            kws_matrix = gr.Plot(label="Confusion matrix", elem_classes=["scroll-x"])
            kws_per_class = gr.Dataframe(label="Per-class precision / recall / F1 (test)", interactive=False)
            with gr.Row():
                kws_freq = gr.Plot(label="Training clips per class")
                kws_loss = gr.Plot(label="Training and validation loss")
            deployed = kws_deployed.Section()
            errors_refresh, errors_inputs, errors_outputs = kws_panel(slot, list(keywords.LABELS))

    kws_button.click(
        fading(on_spot, 4, line=2),
        inputs=kws_audio,
        outputs=[kws_verdict, kws_label, kws_timing, kws_timeline],
        api_name=False,
    ).then(None, js=scroll_into_view("kws-result"))
    live_outputs = [kws_log, kws_live_verdict, kws_live_label, kws_level]
    kws_live_audio.start_recording(
        lambda: ("", "", {}, ""), outputs=live_outputs, api_name=False, show_progress="hidden"
    )
    # On a phone the detections sit under the microphone: bring both into view while speaking.
    kws_live_audio.start_recording(None, js=scroll_into_view("kws-live-audio", block="start"))
    # (No progress shown: a timer over "Current window" every 250 ms would hide what it shows.)
    live.stream(
        kws_live_audio, places, on_listen, inputs=[kws_threshold, kws_gate, kws_each],
        outputs=live_outputs, every_s=0.25,
    )  # fmt: skip
    live.watch(kws_live_audio, places, kws_level)
    eval_outputs = [kws_summary, kws_matrix, kws_per_class, kws_freq, kws_loss, kws_normalise]
    kws_normalise.change(on_evaluation, inputs=kws_normalise, outputs=eval_outputs, api_name=False)

    def on_deployed(keyword, threshold):
        return deployed.view(slot.peek(), keyword, threshold)

    for control in (deployed.keyword, kws_threshold):
        control.change(on_deployed, inputs=[deployed.keyword, kws_threshold], outputs=deployed.outputs,
                       api_name=False, show_progress="hidden")  # fmt: skip

    def on_evaluation_and_errors(normalise, true, predicted, keyword, threshold, applied):
        return [
            *on_evaluation(normalise),
            *errors_refresh(true, predicted),
            *deployed.for_model(slot.peek(), keyword, threshold, applied),
        ]

    on_model = [*deployed.outputs, kws_threshold, deployed.applied, kws_threshold_note, kws_each]
    # With the keywords' own thresholds on, the slider only covers a keyword they leave out.
    kws_each.change(lambda on: gr.update(interactive=not on), inputs=kws_each, outputs=kws_threshold,
                    api_name=False, show_progress="hidden")  # fmt: skip
    everything = [*eval_outputs, *errors_outputs, *on_model]
    everything_in = [kws_normalise, *errors_inputs, deployed.keyword, kws_threshold, deployed.applied]
    controls = [kws_button, kws_audio, kws_live_audio]
    watch = status_watch(
        slot,
        kws_status,
        then=on_evaluation_and_errors,
        inputs=everything_in,
        outputs=everything,
        controls=controls,
    )
    page.load(lambda: card_and_controls(slot, len(controls)), outputs=[kws_status, *controls], api_name=False).then(
        watch.render, inputs=everything_in, outputs=[*everything, watch.shown], api_name=False
    )
    page.load(refill, outputs=pickers, api_name=False, show_progress="hidden")
    compare_tab.select(refill, inputs=pickers, outputs=pickers, api_name=False, show_progress="hidden")

    def api_spot(audio: FileData | None = None) -> dict:
        """The top 5 keywords of an uploaded clip (when longer than 1 s, of the window of the
        keyword a live listener would log with the highest probability, else of its most
        keyword-like window), as gr.Label gives them: {"label": best, "confidences": [{"label", "confidence"}]}."""
        path = uploaded_path(audio)
        loaded = require(slot)
        scores = clip_scores(loaded, audio_or_error(path))[0]  # no timeline: the API returns none
        return top_classes(scores, 5)

    gr.api(api_spot, api_name="spot")
