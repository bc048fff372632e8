"""How the QA models answer a visitor's question and how an answer shows: each model's answer in
turn, the line saying whether two agree, and one model's column (its answer marked in the text).
Shared by the Ask tab (the two default slots) and the Compare view (any two candidates)."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

import gradio as gr

from qa import extractive
from qa.squad_metric import normalize_answer
from serving import gpu
from slots.errors import SlotUnavailable
from slots.registry import Registry
from slots.sources import LoadedModel
from ui.common import literal
from ui.qa_panels import NAMES


def answer_each(
    registry: Registry,
    context: str,
    question: str,
    thresholds: dict[str, float] | None = None,
    options: extractive.AnswerOptions | None = None,
    names: Sequence[str] = tuple(NAMES),
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(slot name, JSON-ready answer) for each QA model of `names` (default: the two default
    slots) as soon as it has answered, in that order; a missing model gives {"error": ...}. The
    models run one after the other, each with all cores (docs/benchmarks.md, "Serving speed": side
    by side was never faster on 2 cores). `options`: the pipeline's controls; `alternatives` holds
    its `top_k` best answers."""
    context, question = extractive.check_input(context, question)
    options = (options or extractive.AnswerOptions()).checked()
    for name in names:
        try:
            loaded = registry[name].get()
        except SlotUnavailable as err:
            yield name, {"error": str(err)}
            continue
        threshold = (thresholds or {}).get(name, extractive.default_threshold(loaded.metrics))
        start = time.perf_counter()
        prediction = gpu.answer(loaded, context, question, threshold, options)
        yield (
            name,
            {
                **asdict(prediction),
                "alternatives": prediction.alternatives[: options.top_k],
                "threshold": threshold,
                "seconds": round(time.perf_counter() - start, 4),
                "source": loaded.label,
                "precision": loaded.precision,
            },
        )


def answer_both(
    registry: Registry,
    context: str,
    question: str,
    thresholds: dict[str, float] | None = None,
    options: extractive.AnswerOptions | None = None,
    names: Sequence[str] = tuple(NAMES),
) -> dict[str, dict[str, Any]]:
    """Both models' answers, keyed by slot name (see `answer_each`)."""
    return dict(answer_each(registry, context, question, thresholds, options, names))


def default_threshold(loaded: LoadedModel | None) -> float:
    """A slot's threshold from its metrics.json, to the slider's 0.01; 0 without a model."""
    metrics = loaded.metrics if loaded else None
    return round(extractive.default_threshold(metrics), 2)


def agreement(results: dict[str, dict[str, Any]]) -> str:
    texts = [r.get("text") for r in results.values() if "error" not in r]
    if not texts:
        return "No question-answering model is available on this server right now."
    if len(texts) < 2:
        return "Only one model is available: nothing to compare."
    a, b = (t or "" for t in texts)
    if normalize_answer(a) == normalize_answer(b):
        return "✅ **The models agree**" + (" (both abstain)." if not a else f": “{literal(a)}”.")
    return "⚠️ **The models disagree.**"


def side(result: dict[str, Any] | None, context: str) -> tuple[str, str, list[list[Any]]]:
    """One model's column: summary line, the context with the answer marked (HTML), its best
    spans (`top_k` of them; None: still answering)."""
    if result is None:
        return "*Answering…*", in_context(context), []
    if "error" in result:  # the column's card says why
        return "*Not available on this server.*", in_context(context), []
    # Plain words first; the numbers behind the decision in a smaller details line.
    if result["text"]:
        summary = f"### {literal(result['text'])}\nAnswers with {result['probability']:.0%} confidence."
    else:
        summary = "### No answer\nAbstains: it finds no answer to this question in the text."
        if result["best_span"]:
            summary += f" Its best guess was “{literal(result['best_span'])}”."
    summary += (
        f"\n\n<small>no-answer margin (no-answer score − best span score) {result['score_diff']:+.2f}; it "
        f"abstains above {result['threshold']:+.2f} · {result['seconds'] * 1000:.0f} ms</small>"
    )
    rows = [[a["text"], round(a["probability"], 3), round(a["score"], 2)] for a in result["alternatives"]]
    return summary, in_context(context, result["start"], result["end"], answered=bool(result["text"])), rows


def side_shown(result: dict[str, Any] | None, context: str) -> list[Any]:
    """`side` as the page's three components take it: the best spans' table shown only when it
    lists some (an empty one is a box of column headers)."""
    summary, marked, spans = side(result, context)
    return [summary, marked, gr.Dataframe(value=spans, visible=bool(spans))]


def in_context(context: str, start: int | None = None, end: int | None = None, answered: bool = True) -> str:
    """The context as one flowing paragraph (HTML, escaped) with the answer marked; a span the
    model abstained on is only underlined, dashed. Long contexts scroll inside the box."""
    box = "<div style='max-height:22em;overflow-y:auto'><p style='line-height:1.7;margin:0'>{}</p></div>"
    if start is None or end is None:
        return box.format(html.escape(context))
    style, title = (
        ("background:#fde68a;padding:0 2px", "answer")
        if answered
        else ("background:none;text-decoration:underline dashed", "best span (abstained)")
    )
    mark = f"<mark style='{style}' title='{title}'>{html.escape(context[start:end])}</mark>"
    return box.format(html.escape(context[:start]) + mark + html.escape(context[end:]))
