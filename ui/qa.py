"""Question answering tab: DistilBERT and XLM-RoBERTa answer the user's question side by side, a
comparison panel from both checkpoints' metrics, and batch evaluation of an uploaded SQuAD v2 file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
from gradio import FileData

from core.structure import human_bytes
from qa import extractive
from slots.registry import Registry
from ui import qa_compare
from ui.common import (
    fading,
    scroll_into_view,
    shown_key,
    status_card,
    status_watch,
    uploaded_path,
    user_errors,
)
from ui.qa_answers import agreement, answer_both, answer_each, default_threshold, side_shown
from ui.qa_explorer import qa_explorer
from ui.qa_panels import (
    BATCH_CONTEXT_CHARS,
    BATCH_LIMIT,
    BATCH_MAX_BYTES,
    NAMES,
    batch_evaluate,
    comparison,
    evaluate_examples,
    read_batch,
)

INSTRUCTION = (
    "Paste a passage of text and ask a question about it: two models each answer with words from the "
    "passage, or say that it holds no answer. DistilBERT reads English; XLM-RoBERTa other languages too."
)
SAMPLE_FILE = Path(__file__).resolve().parents[1] / "assets" / "qa" / "sample_squad_v2.json"
EXAMPLES_FILE = Path(__file__).resolve().parents[1] / "assets" / "qa" / "examples.json"


class ModelColumn(NamedTuple):
    """One model's column of the Ask tab."""

    card: gr.Markdown
    threshold: gr.Slider
    summary: gr.Markdown
    highlight: gr.HTML
    alternatives: gr.Dataframe

    def results(self) -> list[Any]:
        """The components `side` fills."""
        return [self.summary, self.highlight, self.alternatives]


def build(registry: Registry, page: gr.Blocks) -> None:
    """The Question answering tab's components, placed in the caller's layout; `page`, the app's Blocks,
    runs their load events."""
    examples = json.loads(EXAMPLES_FILE.read_text()) if EXAMPLES_FILE.is_file() else []

    gr.Markdown(INSTRUCTION, elem_classes=["instruction"])
    with gr.Tabs(overflow_behavior="wrap"):  # on a phone every sub-tab stays in view
        with gr.Tab("Ask"):
            qa_context = gr.Textbox(label="Context", lines=8, max_length=extractive.MAX_CONTEXT_CHARS)
            qa_question = gr.Textbox(label="Question (Enter to ask)", lines=1)
            qa_button = gr.Button("Answer with both models", variant="primary")
            examples_box = None
            if examples:  # collapsed, so the answers start right under the button
                with gr.Accordion("Examples: pick one to fill in both boxes", open=False) as examples_box:
                    picker = gr.Examples(
                        [[e["context"], e["question"]] for e in examples], inputs=[qa_context, qa_question]
                    )
            # Both answers together first (on a phone too), then each model's details.
            with gr.Column(elem_id="qa-answers"):
                qa_agreement = gr.Markdown()
                with gr.Row():
                    summaries = {}
                    for name, title in NAMES.items():
                        with gr.Column(min_width=160):
                            gr.Markdown(f"#### {title}")
                            summaries[name] = gr.Markdown()
            columns: dict[str, ModelColumn] = {}
            with gr.Row():
                for name, title in NAMES.items():
                    with gr.Column():
                        gr.Markdown(f"#### {title}: details")
                        columns[name] = ModelColumn(
                            summary=summaries[name],
                            highlight=gr.HTML(label="Answer in context"),
                            alternatives=gr.Dataframe(
                                headers=["alternative", "probability", "span score"],
                                label="Best spans",
                                interactive=False,
                                visible=False,  # until there are spans to list
                            ),
                            threshold=gr.Slider(
                                -10,
                                10,
                                value=0.0,
                                step=0.01,
                                label="Abstain threshold (higher: answers more often)",
                            ),
                            card=gr.Markdown(elem_classes=["about-model"]),
                        )
            with gr.Accordion("Answer options (as transformers' question-answering pipeline had them)", open=False):
                with gr.Row():
                    qa_top_k = gr.Slider(1, 20, value=3, step=1, label="Spans listed per model (top_k)")
                    qa_max_answer = gr.Slider(
                        1, 100, value=30, step=1, label="Longest answer, in tokens (max_answer_len)"
                    )
                    qa_stride = gr.Number(
                        None, minimum=0, maximum=extractive.WINDOW // 2, precision=0,
                        label=f"Tokens shared by neighbouring windows of a long text (doc_stride; empty: "
                        f"{extractive.STRIDE}, at most a quarter of the model's window)",
                    )  # fmt: skip
                # One under the other: side by side, a phone cuts their labels.
                qa_align = gr.Checkbox(value=True, label="Answers start and end on whole words (align_to_words)")
                qa_impossible = gr.Checkbox(
                    value=True, label="“No answer” may be the answer (handle_impossible_answer)"
                )
        with gr.Tab("Compare any two") as compare_tab:
            refill, compare_outputs = qa_compare.section(registry)
        with gr.Tab("Comparison"):
            gr.Markdown(
                "On the validation set: **EM** (exact match) is the share of questions answered with exactly "
                "a right answer; **F1** gives credit for the words an answer shares with a right one. An "
                "abstention is right where the question has no answer in the text."
            )
            qa_scores = gr.Dataframe(label="Validation EM / F1", interactive=False)
            qa_bars = gr.Plot(label="Validation EM / F1 (%)")
            qa_losses = gr.Plot(label="Training and validation loss")
            qa_lengths = gr.Plot(label="Training examples by token length")
            qa_structure = gr.Dataframe(label="Structure", interactive=False)
            explore, explore_inputs, explore_outputs = qa_explorer(registry)
        with gr.Tab("Batch evaluation"):
            gr.Markdown(
                f"Upload a SQuAD v2 JSON file (or JSON lines, up to {human_bytes(BATCH_MAX_BYTES)}); the first "
                f"{BATCH_LIMIT} questions (at most {BATCH_CONTEXT_CHARS:,} characters of context in all) are "
                "answered by both models, then scored with the SQuAD v2 metric."
            )
            qa_file = gr.File(label="SQuAD v2 file", file_types=[".json", ".jsonl"])
            if SAMPLE_FILE.is_file():
                gr.Examples([[str(SAMPLE_FILE)]], inputs=qa_file, label="A sample file (12 questions, 4 unanswerable)")
            qa_with_fp32 = gr.Checkbox(
                label="Also score each model in fp32 (shows what the serving precision costs; twice the time)"
            )
            qa_run = gr.Button("Evaluate both models", variant="primary", interactive=False)  # until a file is chosen
            qa_batch_note = gr.Markdown()
            qa_batch_scores = gr.Dataframe(label="EM / F1 on the file", interactive=False)
            qa_disagreements = gr.File(label="Questions where the models disagree (CSV)")

    def on_answer(
        context: str,
        question: str,
        top_k: float,
        max_answer: float,
        stride: float | None,
        align: bool,
        impossible: bool,
        *thresholds: float,
    ) -> Iterator[list[Any]]:
        """Each model's column as soon as it has answered; the agreement line once both have."""
        results: dict[str, dict[str, Any]] = {}
        with user_errors():
            options = extractive.AnswerOptions(
                int(top_k),
                int(max_answer),
                None if stride is None else int(stride),
                None,
                bool(impossible),
                bool(align),
            )
            for name, result in answer_each(
                registry, context, question, dict(zip(NAMES, thresholds, strict=True)), options
            ):
                results[name] = result
                shown = [agreement(results) if len(results) == len(NAMES) else ""]
                for other in NAMES:
                    shown += side_shown(results.get(other), context)
                yield shown

    def on_load() -> list[Any]:
        # What the page is about to show, taken first (see `Watch`): a status tick finding
        # the same models sends nothing.
        keys = [shown_key(registry[name]) for name in NAMES]
        cards = [status_card(registry[name]) for name in NAMES]
        thresholds = [default_threshold(registry[name].peek()) for name in NAMES]
        return [*keys, *cards, *thresholds, *comparison(registry), gr.update(interactive=any_model())]

    def any_model() -> bool:
        return any(registry[name].state != "unavailable" for name in NAMES)

    answer_outputs = [qa_agreement, *(out for c in columns.values() for out in c.results())]
    for ask in (qa_button.click, qa_question.submit):
        ask(
            fading(on_answer, len(answer_outputs), line=0),
            inputs=[
                qa_context,
                qa_question,
                qa_top_k,
                qa_max_answer,
                qa_stride,
                qa_align,
                qa_impossible,
                *(c.threshold for c in columns.values()),
            ],
            outputs=answer_outputs,
            api_name=False,
        ).then(None, js=scroll_into_view("qa-answers"))
    if examples_box is not None:  # a pick closes the list, so it does not push the answers down
        picker.dataset.click(lambda: gr.Accordion(open=False), outputs=examples_box, api_name=False, queue=False)
    qa_file.change(
        lambda f: gr.Button(interactive=f is not None),
        inputs=qa_file,
        outputs=qa_run,
        api_name=False,
        show_progress="hidden",
    )
    qa_run.click(
        # Gradio injects a live progress bar where a parameter defaults to gr.Progress().
        fading(
            lambda f, fp32, progress=gr.Progress(): batch_evaluate(registry, f, progress, fp32),  # noqa: B008
            3,
            line=2,
        ),
        inputs=[qa_file, qa_with_fp32],
        outputs=[qa_batch_scores, qa_disagreements, qa_batch_note],
        api_name=False,
    )
    watches = [
        status_watch(
            registry[name],
            column.card,
            then=lambda how, shown, n=name: [default_threshold(registry[n].peek()), *explore(how, shown)],
            inputs=explore_inputs,
            outputs=[column.threshold, *explore_outputs],
            controls=[qa_button],
            available=any_model,
        )
        for name, column in columns.items()
    ]
    page.load(
        on_load,
        outputs=[
            *(w.shown for w in watches),
            *(c.card for c in columns.values()),
            *(c.threshold for c in columns.values()),
            qa_scores,
            qa_bars,
            qa_losses,
            qa_lengths,
            qa_structure,
            qa_button,
        ],
        api_name=False,
    ).then(explore, inputs=explore_inputs, outputs=explore_outputs, api_name=False)
    page.load(refill, outputs=compare_outputs, api_name=False, show_progress="hidden")
    compare_tab.select(
        refill, inputs=compare_outputs[:2], outputs=compare_outputs, api_name=False, show_progress="hidden"
    )

    def api_answer(context: str = "", question: str = "") -> dict:
        """Both models' answers, keyed by slot ("qa-distilbert", "qa-xlmr"): text ("" = no
        answer), probability, score_diff (null minus best span), threshold, seconds, source,
        the top-3 alternatives; {"error": ...} for a model that is not available."""
        with user_errors():
            return answer_both(registry, context, question)

    def api_answer_with_options(
        context: str = "",
        question: str = "",
        top_k: int = 3,
        max_answer_len: int = 30,
        doc_stride: int | None = None,
        max_question_len: int | None = None,
        handle_impossible_answer: bool = True,
        align_to_words: bool = True,
    ) -> dict:
        """`/answer` with the controls of transformers' question-answering pipeline, with its
        meanings (`qa.extractive.AnswerOptions`): the `top_k` best answers under
        "alternatives", max_answer_len (tokens), doc_stride (tokens shared by neighbouring
        windows; default 128, at most a quarter of the window), max_question_len (tokens; a
        longer question is refused), whether "no answer" may be the answer, and whether a span
        starts and ends on whole words."""
        with user_errors():
            options = extractive.AnswerOptions(
                top_k, max_answer_len, doc_stride, max_question_len, handle_impossible_answer, align_to_words
            )
            return answer_both(registry, context, question, options=options)

    def api_batch_evaluate(file: FileData | None = None, with_fp32: bool = False) -> dict:
        """Both models on the first questions of an uploaded SQuAD v2 file (up to 200, and
        300,000 characters of context): "scores" per slot (exact, f1, HasAns_/NoAns_, as the
        official script), "disagreements" (id, question, gold answers, each model's answer),
        "precisions" (what each slot serves), "note" (what was left out of the file) and, with
        `with_fp32`, "fp32": the same models' scores in fp32."""
        with user_errors():
            result = evaluate_examples(registry, read_batch(uploaded_path(file)), with_fp32=with_fp32)
        return asdict(result)

    gr.api(api_answer, api_name="answer")
    gr.api(api_answer_with_options, api_name="answer_with_options")
    gr.api(api_batch_evaluate, api_name="batch_evaluate")
