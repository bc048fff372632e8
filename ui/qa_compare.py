"""The question answering tab's Compare view: any two QA candidates answer the same question side
by side (the Ask tab keeps the two default slots), and over their stored validation results a
paired bootstrap of EM and F1, with where each number was measured."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd
from gradio import FileData

from qa import error_analysis as ea
from qa import extractive
from qa.squad_data import gold_answers
from slots.registry import Registry
from slots.slot import Slot
from ui import compare
from ui.common import fading, require, uploaded_path, user_errors
from ui.qa_answers import agreement, answer_each, side_shown
from ui.qa_panels import evaluate_examples, read_batch

TASK = "qa"
FAIR = (
    "Two models' own numbers are comparable only when measured on the same questions: score both on one "
    "file below (or under Batch evaluation, the default pair), or on their stored results."
)


def answer_pair(
    registry: Registry, context: str, question: str, a: str | None, b: str | None,
    options: extractive.AnswerOptions | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Two candidates' answers to the same question (`answer_each`), under "a" and "b", and
    whether they agree (the same answer once normalised as SQuAD scores it, or both abstain)."""
    slot_a, slot_b = compare.pair(registry, TASK, a, b)
    for slot in (slot_a, slot_b):
        require(slot)  # a sentence for a model that is not there, before either answers
    with user_errors():
        answers = dict(answer_each(registry, context, question, None, options, (slot_a.spec.name, slot_b.spec.name)))
    first, second = answers[slot_a.spec.name], answers[slot_b.spec.name]
    return {"a": first, "b": second, "agreement": agreement(answers).replace("**", "")}


def measured_on(slot: Slot) -> str:
    """Where a candidate's own numbers come from, in words: its metrics.json's validation set, or
    for a hub default the set its model card used (`SlotSpec.card_measured_on`)."""
    loaded = slot.peek()
    metrics = (loaded.metrics or {}) if loaded else {}
    scores = metrics.get("final", {}).get("validation", {})
    if scores.get("total"):
        return f"its training run scored it on {int(scores['total']):,} validation questions"
    if slot.spec.card_measured_on:
        return f"its model card's EM/F1 were measured on {slot.spec.card_measured_on}"
    return "no evaluation of its own is known here"


def stored_comparison(registry: Registry, a: str | None, b: str | None) -> dict[str, Any]:
    """Both candidates over their stored validation results: EM and F1 (a, b, the 95 % interval
    of B − A from a paired bootstrap, in words) and the questions only one of them gets right."""
    found_a, found_b = compare.stored_pair(registry, TASK, a, b)
    with user_errors():
        em, f1 = ea.paired_scores(found_a.rows, found_b.rows)
    out: dict[str, Any] = {
        "split": found_a.split, "questions": em.examples,
        "exact": compare.difference(em, "EM", "questions", lower_is_better=False),
        "f1": compare.difference(f1, "F1", "questions", lower_is_better=False),
    }  # fmt: skip
    joined = ea.join({"a": found_a.rows, "b": found_b.rows})
    out["one_right"] = [one_right(j["a"], j["b"]) for j in joined if ea.keep(j, "one right")]
    return out


def file_comparison(registry: Registry, path: str, a: str | None, b: str | None) -> dict[str, Any]:
    """Both candidates on the first questions of an uploaded SQuAD v2 file (Batch evaluation's
    limits): each one's SQuAD v2 scores, and EM and F1 with a paired bootstrap over the questions."""
    slot_a, slot_b = compare.pair(registry, TASK, a, b)
    names = {slot_a.spec.name: slot_a.spec.name, slot_b.spec.name: slot_b.spec.name}
    with user_errors():
        batch = read_batch(path)
        result = evaluate_examples(registry, batch, names=names)
    golds = gold_answers(batch.examples)
    em, f1 = ea.paired_on_answers(golds, result.answers[slot_a.spec.name], result.answers[slot_b.spec.name])
    scores = {"a": result.scores[slot_a.spec.name], "b": result.scores[slot_b.spec.name]}
    return {
        "questions": em.examples, "note": batch.note, "scores": scores,
        "exact": compare.difference(em, "EM", "questions", lower_is_better=False),
        "f1": compare.difference(f1, "F1", "questions", lower_is_better=False),
    }  # fmt: skip


def one_right(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """A question only one of the two gets right: id, question, gold answers, each one's answer."""
    gold = [g["text"] for g in a["answers"]]
    right = "A" if a["exact"] else "B"
    return {"id": a["id"], "question": a["question"], "gold": gold, "a": a["prediction"]["text"],
            "b": b["prediction"]["text"], "right": right}  # fmt: skip


def section(registry: Registry) -> Any:
    """The Compare view's components and events; returns the function that refills its pickers."""
    gr.Markdown(
        "Any two question answering models on the same passage and question, and over their stored "
        "validation results with a paired test of whether the difference is real."
    )
    pick_a, pick_b = compare.pickers(registry, TASK)
    sources = gr.Markdown()
    context = gr.Textbox(label="Context", lines=6, max_length=extractive.MAX_CONTEXT_CHARS)
    question = gr.Textbox(label="Question (Enter to ask)", lines=1)
    button = gr.Button("Answer with A and B", variant="primary")
    verdict = gr.Markdown()
    columns = []
    with gr.Row():
        for which in ("A", "B"):
            with gr.Column(min_width=160):
                gr.Markdown(f"#### Model {which}")
                spans = gr.Dataframe(
                    headers=["alternative", "probability", "span score"],
                    label="Best spans",
                    interactive=False,
                    visible=False,  # until there are spans to list
                )
                columns.append((gr.Markdown(), gr.HTML(), spans))
    gr.Markdown("### Over the stored evaluations")
    stored_button = gr.Button("Compare the two evaluations")
    stored_note = gr.Markdown()
    only_one = gr.Dataframe(label="Questions only one of them gets right", interactive=False, visible=False, wrap=True)

    gr.Markdown("### On the same file")
    qa_file = gr.File(label="SQuAD v2 file (as Batch evaluation takes it)", file_types=[".json", ".jsonl"])
    file_button = gr.Button("Score both on this file")
    file_note = gr.Markdown()

    def on_file(file: Any, a: str, b: str) -> str:
        result = file_comparison(registry, uploaded_path(file), a, b)
        return (
            f"On the same {result['questions']:,} questions of the file. {result['note']}\n"
            + compare.difference_lines(result, (("exact", "EM"), ("f1", "F1")))
        )

    file_button.click(fading(on_file, 1, line=0), inputs=[qa_file, pick_a, pick_b], outputs=file_note, api_name=False)

    def on_answer(text: str, asked: str, a: str, b: str) -> list[Any]:
        result = answer_pair(registry, text, asked, a, b)
        shown = [result["agreement"]]
        for which in ("a", "b"):
            shown += side_shown(result[which], text)
        return shown

    def where_from(a: str | None, b: str | None) -> str:
        names = {slot.spec.name: slot for slot in registry.candidates(TASK)}
        chosen = [(w, names[n]) for w, n in (("A", a), ("B", b)) if n in names]
        lines = [f"- **{w}** {compare.label(slot)}: {measured_on(slot)}." for w, slot in chosen]
        if not lines:
            return ""
        return "\n".join(lines) + "\n\n" + FAIR

    def on_stored(a: str, b: str) -> list[Any]:
        result = stored_comparison(registry, a, b)
        text = f"On the same {result['split']} set ({result['questions']:,} questions):\n" + compare.difference_lines(
            result, (("exact", "EM"), ("f1", "F1"))
        )
        rows = pd.DataFrame(
            [[q["id"], q["question"], " | ".join(q["gold"]) or "(no answer)", q["a"] or "(abstains)",
              q["b"] or "(abstains)", q["right"]] for q in result["one_right"]],
            columns=["id", "question", "gold", "A", "B", "right"],
        )  # fmt: skip
        return [text, gr.update(value=rows, visible=bool(len(rows)))]

    outputs = [verdict, *(c for column in columns for c in column)]
    for ask in (button.click, question.submit):
        ask(fading(on_answer, len(outputs), line=0), inputs=[context, question, pick_a, pick_b], outputs=outputs,
            api_name=False)  # fmt: skip
    for picker in (pick_a, pick_b):
        picker.change(where_from, inputs=[pick_a, pick_b], outputs=sources, api_name=False, show_progress="hidden")
    stored_button.click(fading(on_stored, 2, line=0), inputs=[pick_a, pick_b], outputs=[stored_note, only_one],
                        api_name=False)  # fmt: skip

    def api_answer_pair(
        context: str = "",
        question: str = "",
        model_a: str = "qa-distilbert",
        model_b: str = "qa-xlmr",
        top_k: int = 3,
        max_answer_len: int = 30,
        doc_stride: int | None = None,
        max_question_len: int | None = None,
        handle_impossible_answer: bool = True,
        align_to_words: bool = True,
    ) -> dict:
        """Two QA candidates (names as /status lists them under app.candidates.qa) answer the same
        question: "a" and "b" as /answer_with_options gives each, with the same controls, and
        "agreement" in words."""
        with user_errors():
            options = extractive.AnswerOptions(
                top_k, max_answer_len, doc_stride, max_question_len, handle_impossible_answer, align_to_words
            )
        return answer_pair(registry, context, question, model_a, model_b, options)

    def api_compare_qa_evaluations(model_a: str = "qa-distilbert", model_b: str = "qa-xlmr") -> dict:
        """Two QA candidates over their stored validation results, paired by question id: "exact"
        and "f1" (a, b, and the 95 % interval of B − A from a paired bootstrap), "one_right" (the
        questions only one gets right); refused for different validation sets."""
        return stored_comparison(registry, model_a, model_b)

    def api_compare_qa_on_file(
        file: FileData | None = None, model_a: str = "qa-distilbert", model_b: str = "qa-xlmr"
    ) -> dict:
        """Two QA candidates on the first questions of an uploaded SQuAD v2 file (as
        /batch_evaluate limits it): "scores" per model (SQuAD v2's), and "exact" and "f1" with
        the 95 % interval of B − A from a paired bootstrap over the questions."""
        path = uploaded_path(file)
        return file_comparison(registry, path, model_a, model_b)

    gr.api(api_answer_pair, api_name="answer_pair")
    gr.api(api_compare_qa_on_file, api_name="compare_qa_on_file")
    gr.api(api_compare_qa_evaluations, api_name="compare_qa_evaluations")

    def refill(a: str | None = None, b: str | None = None) -> tuple[Any, Any, str]:
        first, second = compare.refill(registry, TASK, a, b)
        return first, second, where_from(first["value"], second["value"])

    return refill, [pick_a, pick_b, sources]
