"""The speech recognition tab's Compare view: any two ASR candidates on the same recording (both
transcripts word by word, each one's time, with a reference WER and CER), and over their stored
evaluations (both test metrics and curves, a paired bootstrap, the utterances where they differ
most, with audio)."""

from __future__ import annotations

import html
import time
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from gradio import FileData

from serving import gpu
from slots.registry import Registry
from slots.sources import LoadedModel
from speech import comparison
from speech.audio import duration_s
from ui import compare
from ui.common import audio_or_error, fading, uploaded_path, user_errors
from ui.error_views import MARK, ClipList, marked_words
from ui.plots import compact

TASK = "asr"
NORMALISED = (
    "Scores compare normalised text (Whisper's English normaliser, as the Open ASR Leaderboard scores: "
    "lower case, no punctuation, numbers as digits), so casing and punctuation are not errors."
)


def transcribe_both(a: LoadedModel, b: LoadedModel, samples: np.ndarray, reference: str = "") -> dict[str, Any]:
    """Both models' transcripts of the same samples, one after the other (each with every core):
    text, seconds, real-time factor (processing time / audio time), and with a `reference`, WER
    and CER on normalised text; "diff": the two word by word (`comparison.word_diff`)."""
    audio_s = duration_s(samples)
    result: dict[str, Any] = {"audio_s": round(audio_s, 2)}
    for which, loaded in (("a", a), ("b", b)):
        start = time.perf_counter()
        text, _ = gpu.transcribe(loaded, samples)
        seconds = time.perf_counter() - start
        entry: dict[str, Any] = {
            "source": loaded.label, "text": text, "seconds": round(seconds, 3),
            "rtf": round(seconds / max(audio_s, 1e-9), 4), "precision": loaded.precision,
        }  # fmt: skip
        if reference.strip():
            scored = comparison.score(reference, text)
            entry.update(wer=round(scored.wer, 4), cer=round(scored.cer, 4), word_errors=scored.word_errors,
                         words=scored.words)  # fmt: skip
        result[which] = entry
    result["diff"] = [list(step) for step in comparison.word_diff(result["a"]["text"], result["b"]["text"])]
    return result


LEGEND = (
    f"<span style='{MARK['substitute']}'>A → B</span>, <span style='{MARK['delete']}'>only A</span>, "
    f"<span style='{MARK['insert']}'>+only B</span>"
)


def diff_html(diff: list[list[str]], legend: bool = True) -> str:
    """A's transcript with B's differences marked: a word B wrote otherwise shows both (A → B), one
    only A has is struck through, one only B has is green."""
    body = marked_words(diff, ("A:", "B:"), ("only A", "only B")) or "<i>neither model heard any words</i>"
    if not legend:
        return f"<div style='line-height:1.9'>{body}</div>"
    same = all(kind == "equal" for kind, _, _ in diff)
    under = "The two transcripts agree." if same and diff else f"A's words; where B differs: {LEGEND}"
    return f"<div style='line-height:1.9'>{body}</div><small>{under}</small>"


def result_markdown(result: dict[str, Any]) -> str:
    rows = ["| | model | time | real-time factor | WER | CER |", "|---|---|---|---|---|---|"]
    for which in ("a", "b"):
        r = result[which]
        wer = f"{r['wer']:.1%} ({r['word_errors']} of {r['words']} words)" if "wer" in r else "—"
        cer = f"{r['cer']:.1%}" if "cer" in r else "—"
        rows.append(f"| {which.upper()} | `{r['source']}` | {r['seconds']:.2f} s | {r['rtf']:.3f} | {wer} | {cer} |")
    note = f"{result['audio_s']:.1f} s of audio; a real-time factor below 1 is faster than real time."
    return "\n".join(rows) + f"\n\n{note}" + (f" {NORMALISED}" if "wer" in result["a"] else "")


def stored_comparison(registry: Registry, a: str | None, b: str | None) -> tuple[dict[str, Any], Any]:
    """Both candidates over their stored evaluations (`comparison.compare_asr`), JSON-ready: "wer"
    and "cer" (a, b, low, high of B − A, utterances, in_words) and "differing" utterances; and the
    finder of their stored clips (`compare.clip_finder`)."""
    found_a, found_b = compare.stored_pair(registry, TASK, a, b)
    with user_errors():
        paired = comparison.compare_asr(found_a.rows, found_b.rows)
    out: dict[str, Any] = {"split": found_a.split, "utterances": paired.utterances}
    out["wer"] = compare.difference(paired.wer, "WER", "utterances")
    out["cer"] = compare.difference(paired.cer, "CER", "utterances")
    out["differing"] = paired.differing
    out["normalised"] = NORMALISED
    return out, compare.clip_finder(found_a, found_b)


def own_test_wer(registry: Registry, name: str) -> float | None:
    """The test WER a candidate's training run recorded (its metrics.json), if it has one."""
    loaded = registry[name].peek()
    value = ((loaded.metrics or {}).get("final", {}).get("test", {}) if loaded else {}).get("wer")
    return value if isinstance(value, (int, float)) else None


def curves(registry: Registry, a: str, b: str) -> go.Figure | None:
    """Both models' validation WER over their training steps, one line each."""
    fig = go.Figure()
    for which, name in (("A", a), ("B", b)):
        loaded = registry[name].peek()
        history = (loaded.metrics or {}).get("history", []) if loaded else []
        points = [(r["step"], r["eval_wer"]) for r in history if "eval_wer" in r and "step" in r]
        if points:
            steps, values = zip(*points, strict=True)
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=f"{which}: {name}"))
    return compact(fig, xaxis_title="step", yaxis_title="validation WER") if fig.data else None


def section(registry: Registry) -> Any:
    """The Compare view's components and events; returns the function that refills its pickers."""
    gr.Markdown(
        "Two speech recognition models on the same recording: both transcripts word by word, each one's "
        "time, and with a reference text, each one's WER and CER. Below, the two over their stored test "
        "evaluations, with a paired test of whether the difference is real."
    )
    pick_a, pick_b = compare.pickers(registry, TASK)
    audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speech", elem_id="asr-compare-audio")
    reference = gr.Textbox(label="Reference text (optional: what was said, for WER and CER)", lines=2)
    button = gr.Button("Transcribe with both", variant="primary")
    table = gr.Markdown()
    diff = gr.HTML(elem_id="asr-compare-diff")
    gr.Markdown("### Over the stored evaluations")
    stored_button = gr.Button("Compare the two evaluations")
    stored_note = gr.Markdown()
    stored_curves = gr.Plot(label="Validation WER during training", visible=False)
    clips = ClipList()
    shown_rows = gr.State([])  # this visitor's utterances, for the page picker

    def on_compare(path: Any, text: str, a: str, b: str) -> tuple[str, str]:
        loaded_a, loaded_b = compare.models(registry, TASK, a, b)
        with user_errors():
            result = transcribe_both(loaded_a, loaded_b, audio_or_error(path), text or "")
        return result_markdown(result), diff_html(result["diff"])

    def on_stored(a: str, b: str) -> list[Any]:
        result, clip_of = stored_comparison(registry, a, b)
        lines = [
            f"On the same {result['split']} set ({result['utterances']:,} utterances). {NORMALISED}",
            compare.difference_lines(result, (("wer", "WER"), ("cer", "CER"))),
            f"\nThe {len(result['differing'])} utterances where the two differ most (B's word errors minus A's; "
            f"A's words, where B differs: {LEGEND}):",
        ]
        entries = []
        for row in result["differing"]:
            audio_file = clip_of(row["id"])
            line = (
                f"<b>{html.escape(str(row['id']))}</b> — A {row['a_errors']} errors, B {row['b_errors']} "
                f"(of {row['words']} words)<div style='line-height:1.8'>"
                f"{diff_html([list(s) for s in comparison.word_diff(row['a'], row['b'])], legend=False)}</div>"
                f"<small>said: {html.escape(row['reference'])}</small>"
            )
            entries.append((line, audio_file))
        own = [own_test_wer(registry, name) for name in (a, b)]
        if all(w is not None for w in own):
            lines.insert(1, f"Their own test WER, as each training run scored it: A {own[0]:.1%}, B {own[1]:.1%}.")
        figure = curves(registry, a, b)
        shown = gr.update(value=figure, visible=figure is not None)
        return ["\n".join(lines), shown, entries, *clips.show(entries)]

    button.click(
        fading(on_compare, 2, line=0), inputs=[audio, reference, pick_a, pick_b], outputs=[table, diff], api_name=False
    )
    stored_button.click(
        fading(on_stored, 3 + len(clips.outputs), line=0),
        inputs=[pick_a, pick_b],
        outputs=[stored_note, stored_curves, shown_rows, *clips.outputs],
        api_name=False,
    )
    clips.page.input(clips.show, inputs=[shown_rows, clips.page], outputs=clips.outputs, api_name=False)

    def api_compare_transcribe(
        audio: FileData | None = None, model_a: str = "", model_b: str = "", reference: str = ""
    ) -> dict:
        """An uploaded recording transcribed by two speech recognition candidates (names as /status
        lists them under app.candidates.asr): "a" and "b" (text, seconds, rtf, source, precision,
        and with a `reference`: wer, cer on normalised text), "diff" ([kind, A's word, B's word])."""
        path = uploaded_path(audio)
        loaded_a, loaded_b = compare.models(registry, TASK, model_a, model_b)
        with user_errors():
            return transcribe_both(loaded_a, loaded_b, audio_or_error(path), reference)

    def api_compare_asr_evaluations(model_a: str = "", model_b: str = "") -> dict:
        """Two speech recognition candidates over their stored test evaluations, paired by
        utterance: "wer" and "cer" (a, b, and the 95 % interval of B − A from a paired bootstrap),
        "differing" (the utterances where they differ most); refused for different test sets."""
        return stored_comparison(registry, model_a, model_b)[0]

    gr.api(api_compare_transcribe, api_name="compare_transcribe")
    gr.api(api_compare_asr_evaluations, api_name="compare_asr_evaluations")
    return lambda a=None, b=None: compare.refill(registry, TASK, a, b), [pick_a, pick_b]
