"""Evaluation metrics computed in this repo (`evaluate` cannot load metrics offline)."""

from __future__ import annotations

from typing import Sequence

import jiwer


def wer_cer(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Corpus word and character error rates. An empty reference counts its prediction's words
    as insertions (jiwer refuses empty references)."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    pairs = [(r, p) for r, p in zip(references, predictions) if r.strip()]
    words = sum(len(r.split()) for r, _ in pairs)
    chars = sum(len(r) for r, _ in pairs)
    inserted_words = sum(len(p.split()) for r, p in zip(references, predictions) if not r.strip())
    inserted_chars = sum(len(p) for r, p in zip(references, predictions) if not r.strip())
    if not pairs:
        return {"wer": float(inserted_words > 0), "cer": float(inserted_chars > 0)}
    refs, hyps = [r for r, _ in pairs], [p for _, p in pairs]
    word_errors = jiwer.process_words(refs, hyps)
    char_errors = jiwer.process_characters(refs, hyps)
    wer = (word_errors.substitutions + word_errors.deletions + word_errors.insertions + inserted_words) / words
    cer = (char_errors.substitutions + char_errors.deletions + char_errors.insertions + inserted_chars) / chars
    return {"wer": wer, "cer": cer}
