"""The SQuAD v2 metric, offline, with the official evaluation script's semantics.

Answers are normalised (lower case, punctuation and the articles a/an/the removed, whitespace
collapsed); exact match and token F1 take the best gold answer; an unanswerable question's only
gold answer is the empty string, and an empty prediction scores 1 on it and 0 elsewhere. Scores
are reported for all questions, HasAns and NoAns, in percent, plus the best exact/F1 over
null-score thresholds.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces: the official normalisation."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(gold: str, prediction: str) -> int:
    """1 if the normalised answers are equal, else 0."""
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1(gold: str, prediction: str) -> float:
    """Token F1 between the normalised answers (both empty: 1; one empty: 0)."""
    gold_tokens = normalize_answer(gold).split()
    pred_tokens = normalize_answer(prediction).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)  # both empty: 1; only one: 0
    common = collections.Counter(gold_tokens) & collections.Counter(pred_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def golds_of(answers: Sequence[str]) -> list[str]:
    """The gold answers to score against: the non-empty ones, or [""] for an unanswerable question."""
    golds = [a for a in answers if normalize_answer(a)]
    return golds or [""]


def raw_scores(gold_answers: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> tuple[dict, dict]:
    """Per question id: best exact and best F1 over its gold answers."""
    missing = set(gold_answers) - set(predictions)
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction, e.g. {sorted(missing)[:3]}")
    exact_scores = {}
    f1_scores = {}
    for qid, answers in gold_answers.items():
        golds = golds_of(answers)
        exact_scores[qid] = max(exact(g, predictions[qid]) for g in golds)
        f1_scores[qid] = max(f1(g, predictions[qid]) for g in golds)
    return exact_scores, f1_scores


def apply_threshold(
    scores: dict, null_diffs: Mapping[str, float], has_answer: Mapping[str, bool], threshold: float
) -> dict:
    """Scores if every question whose null-score margin exceeds `threshold` is answered empty."""
    return {qid: (float(not has_answer[qid]) if null_diffs[qid] > threshold else s) for qid, s in scores.items()}


def best_threshold(
    scores: dict, null_diffs: Mapping[str, float], has_answer: Mapping[str, bool], predictions: Mapping[str, str]
) -> tuple[float, float]:
    """(best score in percent, its threshold), sweeping the threshold over the observed margins
    exactly as the official script's `find_best_thresh` does: starting from answering nothing, the
    questions in `null_diffs`' order stably sorted by margin, each one answered in turn. Answering
    an unanswerable question costs 1 whenever the prediction is a non-empty string, even one that
    normalises to nothing ("The", "!!"): the official script tests the raw text, not its score."""
    current = best = sum(not has_answer[q] for q in scores)
    threshold = 0.0
    for qid in sorted(null_diffs, key=lambda q: null_diffs[q]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best = current
            threshold = null_diffs[qid]
    return 100.0 * best / max(len(scores), 1), threshold


def squad_v2(
    gold_answers: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    null_diffs: Mapping[str, float] | None = None,
    threshold: float = 0.0,
) -> dict[str, float]:
    """The official SQuAD v2 evaluation.

    Args:
        gold_answers: question id -> its gold answer texts ([] for an unanswerable question).
        predictions: question id -> the predicted text ("" = no answer).
        null_diffs: question id -> null score minus best span score; enables `threshold` and
            the best_exact / best_f1 search.
        threshold: with `null_diffs`, a question whose margin exceeds it is answered "".

    Returns:
        exact, f1 (percent), total, and HasAns_/NoAns_ exact, f1 and total; with `null_diffs`
        also best_exact, best_exact_thresh, best_f1, best_f1_thresh.

    Raises:
        ValueError: a question has no prediction.
    """
    has_answer = {qid: bool(answers) for qid, answers in gold_answers.items()}  # as the official script
    raw_exact, raw_f1 = raw_scores(gold_answers, predictions)
    exact_scores = raw_exact
    f1_scores = raw_f1
    if null_diffs is not None:
        exact_scores = apply_threshold(raw_exact, null_diffs, has_answer, threshold)
        f1_scores = apply_threshold(raw_f1, null_diffs, has_answer, threshold)
    out = _summary(exact_scores, f1_scores, list(gold_answers))
    for name, ids in (
        ("HasAns", [q for q in gold_answers if has_answer[q]]),
        ("NoAns", [q for q in gold_answers if not has_answer[q]]),
    ):
        if ids:
            out.update({f"{name}_{k}": v for k, v in _summary(exact_scores, f1_scores, ids).items()})
    if null_diffs is not None:
        out["best_exact"], out["best_exact_thresh"] = best_threshold(raw_exact, null_diffs, has_answer, predictions)
        out["best_f1"], out["best_f1_thresh"] = best_threshold(raw_f1, null_diffs, has_answer, predictions)
    return out


def _summary(exact_scores: dict, f1_scores: dict, ids: list[str]) -> dict[str, float]:
    n = len(ids)
    return {
        "exact": 100.0 * sum(exact_scores[q] for q in ids) / max(n, 1),
        "f1": 100.0 * sum(f1_scores[q] for q in ids) / max(n, 1),
        "total": n,
    }


def robust_threshold(null_diffs: Mapping[str, float], best: float) -> float:
    """The official search returns the margin of the last question it answers, so a new question
    with a slightly larger margin would already abstain. For serving, use the midpoint between
    that margin and the next larger one: the same decisions on the evaluation set, less brittle."""
    larger = sorted(d for d in null_diffs.values() if d > best)
    return (best + larger[0]) / 2 if larger else best
