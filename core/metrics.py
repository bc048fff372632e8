"""Evaluation metrics computed in this repo (`evaluate` cannot load metrics offline)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jiwer


def wer_cer(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Corpus word and character error rates. An empty reference counts its prediction's words
    as insertions (jiwer refuses empty references).

    Args:
        references: the true transcripts.
        predictions: the model's, in the same order.

    Returns:
        {"wer": float, "cer": float}, fractions (1.0 = as many errors as reference words).
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    pairs = [(r, p) for r, p in zip(references, predictions, strict=True) if r.strip()]
    words = sum(len(r.split()) for r, _ in pairs)
    chars = sum(len(r) for r, _ in pairs)
    inserted_words = sum(len(p.split()) for r, p in zip(references, predictions, strict=True) if not r.strip())
    inserted_chars = sum(len(p) for r, p in zip(references, predictions, strict=True) if not r.strip())
    if not pairs:
        return {"wer": float(inserted_words > 0), "cer": float(inserted_chars > 0)}
    refs = [r for r, _ in pairs]
    hyps = [p for _, p in pairs]
    word_errors = jiwer.process_words(refs, hyps)
    char_errors = jiwer.process_characters(refs, hyps)
    wer = (word_errors.substitutions + word_errors.deletions + word_errors.insertions + inserted_words) / words
    cer = (char_errors.substitutions + char_errors.deletions + char_errors.insertions + inserted_chars) / chars
    return {"wer": wer, "cer": cer}


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str], full: bool = True
) -> dict:
    """Accuracy, precision/recall/F1 (micro and macro over the classes that occur in truth or
    prediction, as scikit-learn does by default).

    Args:
        y_true: true class ids.
        y_pred: predicted class ids.
        labels: class names, indexed by id.
        full: also per-class scores, supports and the confusion matrix.

    Returns:
        Scores as floats; with `full`, "per_class" {name: {precision, recall, f1, support}},
        "labels" and "confusion_matrix" (rows = true class, columns = predicted).
    """
    import numpy as np
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    ids = list(range(len(labels)))
    report: dict = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        report.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    if full:
        p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
        report["per_class"] = {
            label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        }
        report["confusion_matrix"] = np.asarray(confusion_matrix(y_true, y_pred, labels=ids)).tolist()
        report["labels"] = list(labels)
    return report


@functools.cache
def _english_normaliser() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalise_english(text: str) -> str:
    """`text` as English ASR scoring compares it: Whisper's English text normaliser (the package
    `whisper-normalizer`), from which the Open ASR Leaderboard's English normaliser is derived:
    lower case, no punctuation, numbers as digits ("twenty five" -> "25"), British spellings
    American, contractions spelled out, filler words ("uh", "hmm") dropped."""
    return _english_normaliser()(text)
