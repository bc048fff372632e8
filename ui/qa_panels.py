"""The QA tab's comparison panel (from both checkpoints' metrics.json) and batch evaluation of an
uploaded SQuAD v2 file."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from core.errors import InputError
from core.structure import human_bytes, structure
from qa import extractive
from qa.extractive import Example
from qa.squad_data import gold_answers, load_file
from qa.squad_metric import normalize_answer, squad_v2
from serving import gpu
from slots.registry import Registry
from ui.common import output_file, require, user_errors
from ui.plots import compact, history_figure, human

# Work per upload, so one batch holds its queue for a bounded time (each batch waits for the one
# before it): questions, characters of context over those questions (each question runs over its
# whole context), and the file's size, checked before it is read.
BATCH_LIMIT = 200  # two models on 2 CPU cores answer ~200 SQuAD questions in a minute or two
BATCH_CONTEXT_CHARS = 300_000  # ~200 SQuAD paragraphs; 15 questions on a 20,000-character context
BATCH_MAX_BYTES = 16 * 1024 * 1024  # SQuAD v2's dev file (4.4 MB) fits
NAMES = {"qa-distilbert": "DistilBERT", "qa-xlmr": "XLM-RoBERTa"}
SCORE_KEYS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")


def scores_table(
    scores: dict[str, dict[str, Any]],
    fp32: dict[str, dict[str, Any]] | None = None,
    precisions: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Rows = models; columns = EM/F1 for all, HasAns and NoAns (percent), with counts. With
    `fp32` (the same models in fp32 on the same questions), a row for each and one for the
    difference (served minus fp32): the accuracy cost of the served precision."""
    rows = []
    for name, s in scores.items():
        row = {"model": NAMES.get(name, name)}
        if fp32:
            row["precision"] = (precisions or {}).get(name, "as served")
        row.update(_percent(s))
        row.update({human(k): int(s[k]) for k in ("total", "HasAns_total", "NoAns_total") if k in s})
        rows.append(row)
        if fp32 and name in fp32:
            reference = _percent(fp32[name])
            difference = {k: round(v - reference[k], 2) for k, v in _percent(s).items() if k in reference}
            rows.append({"model": row["model"], "precision": "fp32 (torch)", **reference})
            rows.append({"model": row["model"], "precision": "difference (served − fp32)", **difference})
    return pd.DataFrame(rows)


def _percent(scores: dict[str, Any]) -> dict[str, float]:
    """The EM/F1 scores among `scores`, rounded to two decimals, under their table names."""
    return {human(k): round(float(scores[k]), 2) for k in SCORE_KEYS if k in scores}


def comparison(registry: Registry) -> tuple[Any, Any, Any, Any, Any]:
    """EM/F1 table, grouped bars, overlaid loss curves, token lengths and the structure table."""
    metrics = {}
    structures = {}
    for name in NAMES:
        loaded = registry[name].peek()
        if loaded is None:
            continue
        structures[NAMES[name]] = structure(loaded.model.config, loaded.parameters, loaded.size_bytes)
        if loaded.metrics:
            metrics[name] = loaded.metrics
    validation = {n: m.get("final", {}).get("validation", {}) for n, m in metrics.items()}
    names = [human(k) for k in SCORE_KEYS]
    bars = go.Figure([go.Bar(name=NAMES[n], x=names, y=[s.get(k) for k in SCORE_KEYS]) for n, s in validation.items()])
    compact(bars, barmode="group", yaxis_title="%")
    losses = go.Figure()
    for n, m in metrics.items():
        fig = history_figure(m.get("history", []), ["loss", "eval_loss"])
        for trace in fig.data if fig else []:
            trace.name = f"{NAMES[n]} {trace.name}"
            losses.add_trace(trace)
    compact(losses, xaxis_title="step")
    lengths = go.Figure()
    for n, m in metrics.items():
        hist = m.get("extra", {}).get("token_lengths")
        if hist:
            edges = hist["bin_edges"]
            lengths.add_trace(
                go.Bar(name=NAMES[n], x=[(a + b) / 2 for a, b in pairwise(edges)], y=hist["counts"], opacity=0.6)
            )
    compact(lengths, barmode="overlay", xaxis_title="tokens (question + context)")
    table = pd.DataFrame(structures).reset_index(names="") if structures else pd.DataFrame()
    return scores_table(validation), bars, losses, lengths, table


@dataclass
class BatchResult:
    """Both models' scores on an uploaded file and the questions where their answers differ."""

    scores: dict[str, dict[str, Any]]  # slot name -> SQuAD v2 scores, as served
    disagreements: list[dict[str, str]]  # id, question, gold answers, then one answer per model
    precisions: dict[str, str]  # slot name -> the precision it serves
    fp32: dict[str, dict[str, Any]] = field(default_factory=dict)  # the same models in fp32, when asked
    note: str = ""  # what was left out of the file, and why
    answers: dict[str, dict[str, str]] = field(default_factory=dict)  # slot name -> question id -> answer


@dataclass
class Batch:
    """The questions of an uploaded file that will be answered, and what was left out."""

    examples: list[Example]
    note: str = ""


def read_batch(path: str | Path) -> Batch:
    """The questions of a SQuAD v2 file (JSON or JSON lines) to answer: the first ones, up to
    `BATCH_LIMIT` questions and `BATCH_CONTEXT_CHARS` characters of context; each checked with the
    limits of a single question (`qa.extractive.check_input`) before any model runs.

    Raises:
        InputError: the file is too large, is not SQuAD v2, holds no questions, repeats an id,
            or a question or context it would answer exceeds a limit.
    """
    size = Path(path).stat().st_size
    if size > BATCH_MAX_BYTES:
        raise InputError(
            f"The file is {human_bytes(size)}; the limit is {human_bytes(BATCH_MAX_BYTES)}. "
            f"Only the first {BATCH_LIMIT} questions are scored, so a file with those is enough."
        )
    found = load_file(path)
    examples = [e for e in found if e.context.strip() and e.question.strip()]
    empty = len(found) - len(examples)
    if not examples:
        raise InputError("The file holds no questions (each needs a question and a context).")
    taken: list[Example] = []
    characters = 0
    for n, example in enumerate(examples, 1):
        if len(taken) == BATCH_LIMIT or (taken and characters + len(example.context) > BATCH_CONTEXT_CHARS):
            break
        try:
            extractive.check_input(example.context, example.question)
        except InputError as err:
            raise InputError(f"Question {n} (id {example.id!r}): {err} No question was answered.") from err
        taken.append(example)
        characters += len(example.context)
    ids = [e.id for e in taken]
    if len(set(ids)) < len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"The question id {twice!r} appears more than once; each question needs its own id.")
    notes = []
    if len(taken) < len(examples):
        notes.append(
            f"Scored the first {len(taken):,} of {len(examples):,} questions (the limit per file is "
            f"{BATCH_LIMIT} questions and {BATCH_CONTEXT_CHARS:,} characters of context)."
        )
    if empty:
        notes.append(f"Skipped {empty:,} question(s) with an empty question or context.")
    return Batch(taken, " ".join(notes))


def evaluate_examples(
    registry: Registry,
    batch: Batch,
    progress: gr.Progress | None = None,
    with_fp32: bool = False,
    names: dict[str, str] | None = None,
) -> BatchResult:
    """Both models (`names`: slot name -> title; default the two default slots) on `examples`,
    each at its own default threshold, scored with SQuAD v2. With `with_fp32`, a model served in
    another precision (int8 on CPU) also answers in fp32 (loaded from its checkpoint for this
    evaluation), so the scores show what the precision costs."""
    titles = names or NAMES
    examples = batch.examples
    served = {name: require(registry[name]) for name in titles}
    for loaded in served.values():  # every question checked before any model runs
        for e in examples:
            extractive.check_question_length(loaded.model.config, loaded.processor, e.question, f"Question '{e.id}'")
    answers: dict[str, dict[str, str]] = {}
    reference: dict[str, dict[str, str]] = {}
    precisions = {}
    for name, loaded in served.items():
        threshold = extractive.default_threshold(loaded.metrics)
        precisions[name] = loaded.precision
        bar = progress if progress is not None and gpu.progress_allowed() else None
        shown = bar.tqdm(examples, desc=f"{titles[name]} ({loaded.precision})") if bar else None
        answers[name] = gpu.answer_all(loaded, examples, threshold, progress=shown)
        if with_fp32 and not loaded.precision.startswith("fp32"):
            shown = bar.tqdm(examples, desc=f"{titles[name]} (fp32)") if bar else None
            reference[name] = gpu.answer_all(loaded, examples, threshold, fp32=True, progress=shown)
    golds = gold_answers(examples)
    disagreements = []
    for e in examples:
        pair = [answers[name][e.id] for name in titles]
        if normalize_answer(pair[0]) != normalize_answer(pair[1]):
            gold = " | ".join(golds[e.id]) or "(unanswerable)"
            disagreements.append(
                {
                    "id": e.id,
                    "question": e.question,
                    "gold answers": gold,
                    **{titles[name]: answer for name, answer in zip(titles, pair, strict=True)},
                }
            )
    scores = {name: squad_v2(golds, preds) for name, preds in answers.items()}
    fp32 = {name: squad_v2(golds, preds) for name, preds in reference.items()}
    return BatchResult(scores, disagreements, precisions, fp32, batch.note, answers)


def batch_evaluate(
    registry: Registry, file: Any, progress: gr.Progress | None = None, with_fp32: bool = False
) -> tuple[pd.DataFrame, str, str]:
    """The tab's batch evaluation: the scores table (with `with_fp32`, also in fp32 and the
    difference), a CSV of the questions where the models' answers differ, and what was left out."""
    if file is None:
        raise gr.Error("Upload a SQuAD v2 JSON file first.")
    with user_errors():
        path = file if isinstance(file, (str, Path)) else file.name
        result = evaluate_examples(registry, read_batch(path), progress, with_fp32)
    out = output_file("disagreements.csv")
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "question", "gold answers", *NAMES.values()])
        writer.writeheader()
        writer.writerows(result.disagreements)
    return scores_table(result.scores, result.fp32, result.precisions), str(out), result.note
