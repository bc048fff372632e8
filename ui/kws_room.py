"""The keyword spotting tab's "Your room" view: a visitor's own background audio (a TV, a kitchen, a
meeting) through the live detector, counted as false alarms per hour over the threshold
(`speech.false_alarms`), with the false activations to listen to and download as negatives for
training, and a threshold to take to the Live tab."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from gradio import FileData

from core import settings
from serving import gpu
from slots.slot import Slot
from slots.sources import LoadedModel
from speech import false_alarms as fa
from speech import spotting
from speech.audio import TARGET_RATE
from ui.common import audio_or_error, fading, output_file, require, uploaded_path
from ui.error_views import ClipList
from ui.kws_scores import DEFAULT_THRESHOLD, labels_of
from ui.plots import compact

# Windows scanned per step (64 s of audio; the progress bar moves by these): whole batches, so
# the scores equal one scan's of the whole (`spotting.BATCH`).
PART_WINDOWS = 4 * spotting.BATCH


def scan_in_parts(loaded: LoadedModel, samples: np.ndarray, progress: Any = None) -> spotting.Scan:
    """`spotting.sliding_probs` over long audio a minute at a time, with the same windows as one
    scan of the whole (each part ends where its last window does; the next starts a hop later)."""
    hop, window = spotting.HOP, spotting.WINDOW
    if len(samples) <= window + hop * PART_WINDOWS:
        return gpu.keyword_scan(loaded, samples)
    times, probs, quiet = [], [], []
    starts = range(0, len(samples) - window + 1, hop * PART_WINDOWS)
    for n, start in enumerate(starts):
        if progress is not None:
            progress((n, len(starts)), desc="Listening through your audio", unit="parts")
        last = start + hop * PART_WINDOWS >= len(samples) - window + 1
        piece = samples[start:] if last else samples[start : start + hop * (PART_WINDOWS - 1) + window]
        part = gpu.keyword_scan(loaded, piece)
        times.append(part.times + start / TARGET_RATE)
        probs.append(part.probs)
        quiet.append(part.quiet)
    return spotting.Scan(np.concatenate(times), np.concatenate(probs), np.concatenate(quiet))


def room_report(
    loaded: LoadedModel, samples: np.ndarray, threshold: float, progress: Any = None, voice_gate: bool = True
) -> tuple[dict[str, Any], list[spotting.Detection]]:
    """False alarms in a visitor's background audio at `threshold` (nothing in it is a keyword),
    the curve over every threshold, and the threshold that would have kept it quiet. JSON-ready,
    with the false activations. With `voice_gate`, as the Live tab listens by default: windows
    without speech are silent."""
    labels = labels_of(loaded)
    scan = scan_in_parts(loaded, samples, progress)
    if voice_gate:
        scan = fa.gated(scan, spotting.speech_frames(samples))
    found = fa.false_accepts(scan, labels, threshold)
    curve = fa.curve(scan, labels)
    seconds = len(samples) / TARGET_RATE
    quiet_from = next((t for t, n in zip(curve.thresholds, curve.false_accepts, strict=True) if n == 0), None)
    report = {
        "seconds": round(seconds, 2),
        "threshold": threshold,
        "voice_gate": voice_gate,
        "false_accepts": [
            {"time_s": d.time_s, "label": d.label, "probability": round(d.probability, 4)} for d in found
        ],
        "per_hour": round(len(found) * 3600 / seconds, 2) if seconds else 0.0,
        "curve": curve.as_dict(),
        "quiet_from": quiet_from,  # the lowest threshold with no false alarm in this audio
    }
    return report, found


def summary(report: dict[str, Any]) -> str:
    minutes = report["seconds"] / 60
    n = len(report["false_accepts"])
    text = (
        f"**{n} false alarm{'s' * (n != 1)}** in {minutes:.1f} minutes of your audio at threshold "
        f"{report['threshold']:.2f}: about **{report['per_hour']:.1f} an hour**."
    )
    if report["seconds"] < 600:
        text += f" (An hourly figure from {minutes:.1f} minutes of audio is a rough one.)"
    if report["quiet_from"] is None:
        text += (
            " Even the highest threshold tried fires here: this audio holds something the model takes for a keyword."
        )
    else:
        text += f" From threshold {report['quiet_from']:.2f} on, none fired on it."
    return text


def curve_figure(report: dict[str, Any]) -> go.Figure:
    curve = report["curve"]
    fig = go.Figure(
        go.Scatter(x=curve["thresholds"], y=curve["per_hour"], mode="lines+markers", name="false alarms an hour")
    )
    fig.add_vline(x=report["threshold"], line_dash="dash", annotation_text="threshold used", annotation_position="top")
    return compact(fig, xaxis_title="threshold", yaxis_title="false alarms per hour")


def section(slot: Slot, live_threshold: gr.Slider) -> None:
    """The view's components and events; "Use for Live" sets `live_threshold`."""
    gr.Markdown(
        "Record or upload a few minutes of your own background (a TV, a kitchen, a meeting) with **none of "
        "the keywords** said: every keyword the live listener would log in it is a false alarm. You get how "
        "often it would fire an hour, the threshold that keeps it quiet, and the false alarms to listen to "
        "and download as 1 s clips (negatives for a training set)."
    )
    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Your background audio")
    threshold = gr.Slider(0.3, 0.99, value=DEFAULT_THRESHOLD, step=0.01, label="Threshold")
    gate = gr.Checkbox(value=True, label="Listen for speech, as the Live tab does by default")
    button = gr.Button("Count false alarms", variant="primary")
    note = gr.Markdown()
    plot = gr.Plot(label="False alarms per hour in your audio, by threshold", visible=False)
    with gr.Row():
        clips_zip = gr.File(label="The false alarms as 1 s clips (zip)", visible=False)
        use = gr.Button("Use the quiet threshold in Live", visible=False)
    suggested = gr.State(None)
    clips = ClipList()

    def on_count(path: Any, chosen: float, gated: bool, progress: gr.Progress = gr.Progress()) -> list[Any]:  # noqa: B008
        samples = audio_or_error(path, max_duration_s=settings.AUDIO_MAX_SECONDS)
        report, found = room_report(require(slot), samples, float(chosen), progress, bool(gated))
        entries = [(_clip_line(d), _clip_file(samples, d)) for d in found]
        archive = None
        if found:
            archive = output_file("false_alarms.zip")
            archive.write_bytes(fa.clips_zip(samples, found))
        shown_zip = gr.update(value=str(archive) if archive else None, visible=archive is not None)
        quiet = report["quiet_from"]
        shown_curve = gr.update(value=curve_figure(report), visible=True)
        return [
            summary(report),
            shown_curve,
            shown_zip,
            gr.update(visible=quiet is not None),
            quiet,
            *clips.show(entries),
        ]

    outputs = [note, plot, clips_zip, use, suggested, *clips.outputs]
    button.click(
        fading(on_count, len(outputs), line=0), inputs=[audio, threshold, gate], outputs=outputs, api_name=False
    )
    use.click(lambda t: gr.update(value=t) if t is not None else gr.skip(), inputs=suggested, outputs=live_threshold,
              api_name=False)  # fmt: skip

    def api_kws_false_alarms(
        audio: FileData | None = None, threshold: float = DEFAULT_THRESHOLD, voice_gate: bool = True
    ) -> dict:
        """False alarms of the live keyword listener in an uploaded recording with no keyword in it:
        "false_accepts" (time_s, label, probability) at `threshold`, "per_hour", "curve" (false
        accepts at every threshold from 0.30 to 0.98) and "quiet_from" (the lowest threshold with
        none); with `voice_gate` (default), only windows holding speech are scored, as Live does."""
        samples = audio_or_error(uploaded_path(audio), max_duration_s=settings.AUDIO_MAX_SECONDS)
        return room_report(require(slot), samples, float(threshold), voice_gate=bool(voice_gate))[0]

    gr.api(api_kws_false_alarms, api_name="kws_false_alarms")


def _clip_line(d: spotting.Detection) -> str:
    return f"<b>{html.escape(d.label)}</b> at {d.time_s:.2f} s, probability {d.probability:.0%}"


def _clip_file(samples: np.ndarray, d: spotting.Detection) -> Any:
    import soundfile as sf

    path = output_file(f"{d.label}_{d.time_s:.2f}s.wav")
    sf.write(path, fa.window_at(samples, d.time_s), TARGET_RATE, subtype="PCM_16")
    return path
