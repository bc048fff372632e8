"""Question answering tab: DistilBERT and XLM-RoBERTa answer the user's question side by side, a
comparison panel from both checkpoints' metrics, and batch evaluation of an uploaded SQuAD v2 file."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch

from core import qa
from core.slots import LoadedModel, Registry, SlotUnavailable
from core.squad_metric import normalize_answer
from tasks.common import status_card, status_watch
from tasks.qa_panels import BATCH_LIMIT, NAMES, batch_evaluate, comparison

MAX_CONTEXT_CHARS = 20_000
WINDOW, STRIDE = 384, 128
EXAMPLES_FILE = Path(__file__).resolve().parents[1] / "assets" / "qa" / "examples.json"


def window_length(loaded: LoadedModel) -> int:
    """Tokens per window: 384, or less where the model has fewer positions (RoBERTa-style
    position ids start after the padding index, which costs two)."""
    config = loaded.model.config
    positions = getattr(config, "max_position_embeddings", WINDOW)
    if config.model_type in ("roberta", "xlm-roberta"):
        positions -= 2
    return min(WINDOW, positions)


def check_input(context: str, question: str) -> tuple[str, str]:
    context, question = (context or "").strip(), (question or "").strip()
    if not context:
        raise gr.Error("The context is empty: paste the paragraph the answer should come from.")
    if not question:
        raise gr.Error("The question is empty.")
    if len(context) > MAX_CONTEXT_CHARS:
        raise gr.Error(f"The context has {len(context):,} characters; the limit is {MAX_CONTEXT_CHARS:,}.")
    return context, question


@torch.inference_mode()
def answer(loaded: LoadedModel, context: str, question: str, threshold: float = 0.0,
           batch_size: int = 16) -> qa.Prediction:
    """The model's answer over every window of the context (empty when it abstains)."""
    tokenizer, length = loaded.processor, window_length(loaded)
    question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    if question_tokens > length // 2:
        raise gr.Error(f"The question is {question_tokens} tokens long for {type(loaded.model).__name__}; "
                       f"at most {length // 2} leave room for the context.")
    example = qa.Example("q", question, context)
    features = qa.prepare(tokenizer, [example], length, min(STRIDE, length // 4))
    starts, ends = [], []
    device = next(loaded.model.parameters()).device
    ids = features.encodings["input_ids"]
    for b in range(0, len(ids), batch_size):
        batch = tokenizer.pad({k: v[b:b + batch_size] for k, v in features.encodings.items()}, return_tensors="pt")
        out = loaded.model(**{k: v.to(device) for k, v in batch.items()})
        starts += list(out.start_logits.float().cpu().numpy())
        ends += list(out.end_logits.float().cpu().numpy())
    return qa.postprocess([example], features, _stack(starts), _stack(ends), null_threshold=threshold)[0]


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    """Windows of different lengths (each batch is padded to its own longest) as one array."""
    width = max(len(r) for r in rows)
    return np.stack([np.pad(r, (0, width - len(r)), constant_values=-1e4) for r in rows])


def answer_both(registry: Registry, context: str, question: str,
                thresholds: dict[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """Both models' answers as JSON-ready dicts; a missing model gives {"error": ...}."""
    context, question = check_input(context, question)
    results = {}
    for name in NAMES:
        try:
            loaded = registry[name].get()
        except SlotUnavailable as err:
            results[name] = {"error": str(err)}
            continue
        threshold = (thresholds or {}).get(name, default_threshold(loaded))
        start = time.perf_counter()
        prediction = answer(loaded, context, question, threshold)
        results[name] = {**asdict(prediction), "alternatives": prediction.alternatives[:3], "threshold": threshold,
                         "seconds": round(time.perf_counter() - start, 4), "source": loaded.source}
    return results


def default_threshold(loaded: LoadedModel | None) -> float:
    """The null-score threshold that maximised F1 on validation (metrics.json), else 0."""
    extra = ((loaded.metrics or {}).get("extra") or {}) if loaded else {}
    return float(extra.get("null_score_diff_threshold", 0.0))


def agreement(results: dict[str, dict[str, Any]]) -> str:
    texts = [r.get("text") for r in results.values() if "error" not in r]
    if len(texts) < 2:
        return "Only one model is available: nothing to compare."
    a, b = (t or "" for t in texts)
    if normalize_answer(a) == normalize_answer(b):
        return "✅ **The models agree**" + (" (both abstain)." if not a else f": “{a}”.")
    return "⚠️ **The models disagree.**"


def side(result: dict[str, Any], context: str) -> tuple[str, list, list[list[Any]]]:
    """One model's column: summary line, highlighted context, top-3 alternatives."""
    if "error" in result:
        return f"**No model.** {result['error']}", [(context, None)], []
    shown = result["text"] or "no answer"
    summary = (f"### {shown}\nprobability {result['probability']:.2f} · margin (null − best span) "
               f"{result['score_diff']:+.2f} vs threshold {result['threshold']:+.2f} · {result['seconds'] * 1000:.0f} ms")
    if not result["text"] and result["best_span"]:
        summary += f"\n\nBest span, below the threshold: “{result['best_span']}”"
    spans = [(context, None)]
    if result["start"] is not None:
        s, e = result["start"], result["end"]
        label = "answer" if result["text"] else "best span (abstained)"
        spans = [(context[:s], None), (context[s:e], label), (context[e:], None)]
    rows = [[a["text"], round(a["probability"], 3), round(a["score"], 2)] for a in result["alternatives"]]
    return summary, spans, rows


def build(registry: Registry) -> gr.Blocks:
    examples = json.loads(EXAMPLES_FILE.read_text()) if EXAMPLES_FILE.is_file() else []

    def on_answer(context, question, thr_d, thr_x):
        results = answer_both(registry, context, question, {"qa-distilbert": thr_d, "qa-xlmr": thr_x})
        d, x = side(results["qa-distilbert"], context), side(results["qa-xlmr"], context)
        return agreement(results), *d, *x

    def on_load():
        cards = [status_card(registry[name]) for name in NAMES]
        thresholds = [default_threshold(registry[name].peek()) for name in NAMES]
        return *cards, *thresholds, *comparison(registry)

    with gr.Blocks() as demo:
        with gr.Tab("Ask"):
            qa_context = gr.Textbox(label="Context", lines=8, max_length=MAX_CONTEXT_CHARS)
            qa_question = gr.Textbox(label="Question", lines=1)
            qa_button = gr.Button("Answer with both models", variant="primary")
            if examples:
                gr.Examples([[e["context"], e["question"]] for e in examples], inputs=[qa_context, qa_question])
            qa_agreement = gr.Markdown()
            columns = {}
            with gr.Row():
                for name, title in NAMES.items():
                    with gr.Column():
                        gr.Markdown(f"## {title}")
                        card = gr.Markdown()
                        threshold = gr.Slider(-10, 10, value=0.0, step=0.05,
                                              label="Null threshold (abstain when null − best span exceeds it)")
                        summary = gr.Markdown()
                        highlight = gr.HighlightedText(label="Answer in context", combine_adjacent=True)
                        alternatives = gr.Dataframe(headers=["alternative", "probability", "score"],
                                                    label="Top 3 spans", interactive=False)
                        columns[name] = (card, threshold, summary, highlight, alternatives)
        with gr.Tab("Comparison"):
            qa_scores = gr.Dataframe(label="Validation EM / F1", interactive=False)
            qa_bars = gr.Plot()
            qa_losses = gr.Plot()
            qa_lengths = gr.Plot()
            qa_structure = gr.Dataframe(label="Structure", interactive=False)
        with gr.Tab("Batch evaluation"):
            gr.Markdown(f"Upload a SQuAD v2 JSON file (or JSON lines); the first {BATCH_LIMIT} questions "
                        "are answered by both models, then scored with the SQuAD v2 metric.")
            qa_file = gr.File(label="SQuAD v2 file", file_types=[".json", ".jsonl"])
            qa_run = gr.Button("Evaluate both models")
            qa_batch_scores = gr.Dataframe(label="EM / F1 on the file", interactive=False)
            qa_disagreements = gr.File(label="Questions where the models disagree (CSV)")

        d, x = columns["qa-distilbert"], columns["qa-xlmr"]
        qa_button.click(on_answer, inputs=[qa_context, qa_question, d[1], x[1]],
                        outputs=[qa_agreement, *d[2:], *x[2:]], api_name=False)

        def api_answer(context: str, question: str) -> dict:
            """Both models' answers (text "" = no answer) with probability, margin and time."""
            return answer_both(registry, context, question)

        gr.api(api_answer, api_name="answer")
        qa_run.click(lambda f, progress=gr.Progress(): batch_evaluate(registry, f, progress),
                     inputs=qa_file, outputs=[qa_batch_scores, qa_disagreements], api_name="batch_evaluate")
        for name, (card, threshold, *_) in columns.items():
            status_watch(registry[name], card, then=lambda n=name: default_threshold(registry[n].peek()),
                         outputs=[threshold])
        demo.load(on_load, outputs=[d[0], x[0], d[1], x[1], qa_scores, qa_bars, qa_losses, qa_lengths,
                                    qa_structure], api_name=False)
    return demo
