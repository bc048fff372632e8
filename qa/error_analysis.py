"""Per-example results of a QA checkpoint (core/examples.py), and on which questions two QA
checkpoints differ.

Row fields:
    qa   id, question, context (an id in contexts.jsonl), answers [{text, start}], prediction
         {text, start, end} (the served answer at the checkpoint's threshold; "" = abstains),
         best_span, null_margin, threshold, exact, f1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import InputError
from core.paired import Difference, bootstrap, match
from qa.squad_metric import exact, f1, golds_of, normalize_answer, raw_scores


def qa_rows(examples: Sequence[Any], predictions: Sequence[Any], threshold: float) -> tuple[list[dict], list[str]]:
    """Rows for `qa.Example`s and their `qa.Prediction`s (made at null threshold 0) as the app
    serves them at `threshold`, and the distinct contexts the rows point into."""
    context_ids: dict[str, str] = {}
    rows = []
    for example, p in zip(examples, predictions, strict=True):
        context = context_ids.setdefault(example.context, f"c{len(context_ids)}")
        answered = bool(p.best_span) and p.score_diff <= threshold
        text = p.best_span if answered else ""
        golds = golds_of([a["text"] for a in example.answers])
        rows.append(
            {
                "id": example.id,
                "question": example.question,
                "context": context,
                "answers": [{"text": a["text"], "start": a["answer_start"]} for a in example.answers],
                "prediction": {
                    "text": text,
                    "start": p.start if answered else None,
                    "end": p.end if answered else None,
                },
                "best_span": p.best_span,
                "null_margin": round(float(p.score_diff), 4) if np.isfinite(p.score_diff) else None,
                "threshold": round(float(threshold), 4),
                "exact": max(exact(g, text) for g in golds),
                "f1": round(max(f1(g, text) for g in golds), 4),
            }
        )
    return rows, list(context_ids)


QA_FILTERS = {
    "all": "every question",
    "disagree": "the models disagree",
    "one right": "only one model is right",
    "unanswerable answered": "unanswerable, yet answered",
    "answerable abstained": "answerable, yet abstained",
}
TWO_MODEL_FILTERS = ("disagree", "one right")


def join(by_model: dict[str, Sequence[dict]]) -> list[dict[str, dict]]:
    """The questions every model in `by_model` answered, joined on question id, in the first
    model's order: one {model: row} per question."""
    index = {name: {r["id"]: r for r in rows} for name, rows in by_model.items()}
    if not index:
        return []
    first = next(iter(by_model.values()))
    return [{name: index[name][r["id"]] for name in index} for r in first if all(r["id"] in i for i in index.values())]


def keep(joined: dict[str, dict], how: str) -> bool:
    """Whether a joined question passes the filter `how` (a key of QA_FILTERS); the two-model
    filters need two models."""
    rows = list(joined.values())
    answerable = bool(rows[0]["answers"])
    said = [r["prediction"]["text"] for r in rows]
    if how == "disagree":
        return len(rows) > 1 and len({normalize_answer(s) for s in said}) > 1
    if how == "one right":
        return len(rows) > 1 and len({r["exact"] for r in rows}) > 1
    if how == "unanswerable answered":
        return not answerable and any(said)
    if how == "answerable abstained":
        return answerable and not all(said)
    return True


def paired_scores(a_rows: Sequence[dict], b_rows: Sequence[dict]) -> tuple[Difference, Difference]:
    """Two QA checkpoints' stored results paired by question id (`core.paired.match`): paired
    bootstraps of EM and of F1 (each question's best over its gold answers, as SQuAD v2 scores it).
    `InputError` where the two did not answer the same questions."""
    pairs = match(list(a_rows), list(b_rows), "questions")
    for ra, rb in pairs:
        if ra["question"] != rb["question"]:
            raise InputError(
                f"Question {ra['id']} reads differently in the two evaluations: they come from different "
                "validation sets and cannot be paired."
            )
    em = bootstrap([ra["exact"] for ra, _ in pairs], [rb["exact"] for _, rb in pairs])
    f1_scores = bootstrap([_f1(ra) for ra, _ in pairs], [_f1(rb) for _, rb in pairs])
    return em, f1_scores


def _f1(row: dict) -> float:
    return float(row["exact"] if row.get("f1") is None else row["f1"])


def paired_on_answers(
    golds: dict[str, list[str]], a: dict[str, str], b: dict[str, str]
) -> tuple[Difference, Difference]:
    """Two models' answers to the same questions (question id -> answer, "" = abstains) scored as
    SQuAD v2 scores each question, with paired bootstraps of EM and F1."""
    a_exact, a_f1 = raw_scores(golds, a)
    b_exact, b_f1 = raw_scores(golds, b)
    ids = list(golds)
    em = bootstrap([a_exact[i] for i in ids], [b_exact[i] for i in ids])
    return em, bootstrap([a_f1[i] for i in ids], [b_f1[i] for i in ids])
