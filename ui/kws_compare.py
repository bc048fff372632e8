"""The keyword spotting tab's Compare view: any two keyword candidates on the same clip (both top
5), and over their stored evaluations (both confusion matrices on the same clips and where B gains
or loses against A, McNemar's test, the clips they disagree on, with audio)."""

from __future__ import annotations

import html
import time
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from gradio import FileData

from core.paired import mcnemar_in_words
from slots.registry import Registry
from speech import comparison
from ui import compare
from ui.common import audio_or_error, fading, uploaded_path, user_errors
from ui.error_views import ClipList
from ui.kws_scores import clip_scores, confusion_figure, matrix_layout, top_classes

TASK = "kws"


def spot_both(registry: Registry, a: str | None, b: str | None, samples: np.ndarray) -> dict[str, Any]:
    """Both candidates' top 5 for the same clip (as /spot gives them), with the seconds each took."""
    loaded_a, loaded_b = compare.models(registry, TASK, a, b)
    result: dict[str, Any] = {}
    for which, loaded in (("a", loaded_a), ("b", loaded_b)):
        start = time.perf_counter()
        scores = clip_scores(loaded, samples)[0]
        result[which] = {**top_classes(scores, 5), "seconds": round(time.perf_counter() - start, 4),
                         "source": loaded.label}  # fmt: skip
    return result


def stored_comparison(registry: Registry, a: str | None, b: str | None) -> tuple[dict[str, Any], Any]:
    """Both candidates over their stored evaluations (`comparison.compare_kws`), JSON-ready, and the
    finder of their stored clips (`compare.clip_finder`)."""
    found_a, found_b = compare.stored_pair(registry, TASK, a, b)
    with user_errors():
        paired = comparison.compare_kws(found_a.rows, found_b.rows)
    test = paired.test
    result = {
        "split": found_a.split,
        "clips": paired.clips,
        "labels": paired.labels,
        "a_matrix": paired.a_matrix.tolist(),
        "b_matrix": paired.b_matrix.tolist(),
        "accuracy": {"a": paired.accuracy("a"), "b": paired.accuracy("b")},
        "mcnemar": {
            "only_a": test.only_a,
            "only_b": test.only_b,
            "p_value": test.p_value,
            "in_words": mcnemar_in_words(test),
        },  # fmt: skip
        "disagreements": paired.disagreements,
    }
    return result, compare.clip_finder(found_a, found_b)


def difference_figure(labels: list[str], a: np.ndarray, b: np.ndarray) -> go.Figure:
    """B's confusion counts minus A's, coloured by what the change means: green where B does
    better (more clips on the diagonal, fewer off it), red where it does worse."""
    change = np.asarray(b) - np.asarray(a)
    n = len(labels)
    better = np.where(np.eye(n, dtype=bool), change, -change)
    text = [[f"{change[i, j]:+d}" if change[i, j] else "" for j in range(n)] for i in range(n)]
    hover = [
        [
            f"{'right' if i == j else 'wrong'}: A {int(a[i, j])} clips, B {int(b[i, j])} ({change[i, j]:+d})"
            for j in range(n)
        ]
        for i in range(n)
    ]
    bound = max(1, int(np.abs(better).max()))
    fig = go.Figure(
        go.Heatmap(
            z=better, x=labels, y=labels, text=text, customdata=hover, texttemplate="%{text}",
            colorscale=[[0, "#dc2626"], [0.5, "#ffffff"], [1, "#16a34a"]], zmin=-bound, zmax=bound, showscale=False,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata}<extra></extra>",
        )
    )  # fmt: skip
    return matrix_layout(fig, "B − A (green: B better)")


def matrix_figure(labels: list[str], counts: list[list[int]], title: str) -> go.Figure:
    fig = confusion_figure({"labels": labels, "confusion_matrix": counts}, normalise=False)
    fig.update_layout(title=title)
    return fig


def clip_entry(row: dict[str, Any], audio: Any) -> str:
    right = {"A": "A is right", "B": "B is right", "neither": "neither is right"}[row["right"]]
    return (
        f"<b>{html.escape(str(row['id']))}</b> — said <b>{html.escape(row['true'])}</b>: A heard "
        f"{html.escape(row['a'])} ({row['a_p']:.0%}), B heard {html.escape(row['b'])} ({row['b_p']:.0%}); {right}"
        + ("" if audio else " <i>(audio not stored)</i>")
    )


def section(registry: Registry) -> Any:
    """The Compare view's components and events; returns the function that refills its pickers."""
    gr.Markdown(
        "Two keyword spotting models on the same clip, and over their stored test evaluations: both "
        "confusion matrices on the same clips, where B gains or loses against A, and whether the difference "
        "in accuracy is real."
    )
    pick_a, pick_b = compare.pickers(registry, TASK)
    audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Keyword", elem_id="kws-compare-audio")
    button = gr.Button("Spot with both", variant="primary")
    note = gr.Markdown()
    with gr.Row():
        label_a = gr.Label(num_top_classes=5, label="Model A: top 5", visible=False)  # until a clip is spotted
        label_b = gr.Label(num_top_classes=5, label="Model B: top 5", visible=False)
    gr.Markdown("### Over the stored evaluations")
    stored_button = gr.Button("Compare the two evaluations")
    stored_note = gr.Markdown()
    with gr.Row():  # A and B side by side where the page is wide enough; each scrolls on a phone
        plots = [gr.Plot(visible=False, elem_classes=["scroll-x"]) for _ in range(2)]
    plots.append(gr.Plot(visible=False, elem_classes=["scroll-x"]))
    clips = ClipList()
    shown_rows = gr.State([])

    def on_spot(path: Any, a: str, b: str) -> list[Any]:
        with user_errors():
            samples = audio_or_error(path)
            result = spot_both(registry, a, b, samples)
        line = " · ".join(
            f"{w.upper()} (`{result[w]['source']}`): {result[w]['seconds'] * 1000:.0f} ms" for w in ("a", "b")
        )
        bars = [{c["label"]: c["confidence"] for c in result[w]["confidences"]} for w in ("a", "b")]
        return [line, *(gr.Label(scores, visible=True) for scores in bars)]

    def on_stored(a: str, b: str) -> list[Any]:
        result, clip_of = stored_comparison(registry, a, b)
        acc = result["accuracy"]
        text = (
            f"On the same {result['split']} set ({result['clips']:,} clips): accuracy A {acc['a']:.1%}, "
            f"B {acc['b']:.1%}. {result['mcnemar']['in_words']}\n\n"
            f"The {len(result['disagreements'])} clips the two label differently, where B is right first:"
        )
        labels = result["labels"]
        figures = [
            matrix_figure(labels, result["a_matrix"], f"A: {a}"),
            matrix_figure(labels, result["b_matrix"], f"B: {b}"),
            difference_figure(labels, np.array(result["a_matrix"]), np.array(result["b_matrix"])),
        ]
        entries = []
        for row in result["disagreements"]:
            path = clip_of(row["id"])
            entries.append((clip_entry(row, path), path))
        return [text, *(gr.update(value=f, visible=True) for f in figures), entries, *clips.show(entries)]

    button.click(
        fading(on_spot, 3, line=0), inputs=[audio, pick_a, pick_b], outputs=[note, label_a, label_b], api_name=False
    )
    stored_button.click(
        fading(on_stored, 5 + len(clips.outputs), line=0),
        inputs=[pick_a, pick_b],
        outputs=[stored_note, *plots, shown_rows, *clips.outputs],
        api_name=False,
    )
    clips.page.input(clips.show, inputs=[shown_rows, clips.page], outputs=clips.outputs, api_name=False)

    def api_compare_spot(audio: FileData | None = None, model_a: str = "", model_b: str = "") -> dict:
        """An uploaded clip through two keyword spotting candidates (names as /status lists them
        under app.candidates.kws): "a" and "b", each the top 5 as /spot gives them, with seconds
        and source."""
        path = uploaded_path(audio)
        with user_errors():
            return spot_both(registry, model_a, model_b, audio_or_error(path))

    def api_compare_kws_evaluations(model_a: str = "", model_b: str = "") -> dict:
        """Two keyword spotting candidates over their stored test evaluations, paired by clip:
        labels, a_matrix, b_matrix (rows = true, columns = predicted), accuracy, McNemar's exact
        test (only_a, only_b, p_value) and the clips they disagree on; refused for different test sets."""
        return stored_comparison(registry, model_a, model_b)[0]

    gr.api(api_compare_spot, api_name="compare_spot")
    gr.api(api_compare_kws_evaluations, api_name="compare_kws_evaluations")
    return lambda a=None, b=None: compare.refill(registry, TASK, a, b), [pick_a, pick_b]
