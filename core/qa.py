"""Extractive QA with unanswerable questions: windowed features and post-processing, shared by
`train/qa.py` and the app (transformers 5 has no question-answering pipeline).

Features: question first, only the context truncated, overflowing windows `doc_stride` tokens
apart, offsets kept so any span maps back to characters. An answer outside a window (or no answer)
points at the CLS token. Post-processing takes the n-best spans over all windows of an example,
scores each as start + end logit, and compares the best with the null score (the CLS start + end
logits, the lowest over windows): the answer is empty when null minus best exceeds a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np


@dataclass
class Example:
    id: str
    question: str
    context: str
    answers: list[dict[str, Any]] = field(default_factory=list)  # {"text": str, "answer_start": int}


@dataclass
class Features:
    """Tokenized windows; `example_index[i]` says which example window i comes from."""

    encodings: dict[str, list]  # model inputs (input_ids, attention_mask), plus positions when training
    example_index: list[int]
    offsets: list[list[tuple[int, int] | None]]  # character span per token, None outside the context


def prepare(tokenizer, examples: Sequence[Example], max_length: int = 384, doc_stride: int = 128,
            with_positions: bool = False) -> Features:
    """Tokenize question/context pairs into overlapping windows (padding is left to the collator)."""
    pad_right = tokenizer.padding_side == "right"
    enc = tokenizer([e.question.lstrip() if pad_right else e.context for e in examples],
                    [e.context if pad_right else e.question.lstrip() for e in examples],
                    truncation="only_second" if pad_right else "only_first", max_length=max_length,
                    stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    context_id = 1 if pad_right else 0
    example_index = list(enc.pop("overflow_to_sample_mapping"))
    offsets, starts, ends = [], [], []
    for i, mapping in enumerate(enc.pop("offset_mapping")):
        sequence_ids = enc.sequence_ids(i)
        offsets.append([tuple(o) if sequence_ids[k] == context_id else None for k, o in enumerate(mapping)])
        if with_positions:
            start, end = answer_positions(examples[example_index[i]], offsets[-1], enc["input_ids"][i],
                                          tokenizer.cls_token_id)
            starts.append(start)
            ends.append(end)
    encodings = {k: v for k, v in enc.items() if k in tokenizer.model_input_names}
    if with_positions:
        encodings.update(start_positions=starts, end_positions=ends)
    return Features(encodings, example_index, offsets)


def answer_positions(example: Example, offsets: list, input_ids: list[int], cls_id: int) -> tuple[int, int]:
    """Token start/end of the first gold answer in this window, or the CLS index for both."""
    cls = input_ids.index(cls_id) if cls_id in input_ids else 0
    if not example.answers:
        return cls, cls
    answer = example.answers[0]
    start_char = answer["answer_start"]
    end_char = start_char + len(answer["text"])
    context_tokens = [k for k, o in enumerate(offsets) if o is not None]
    if not context_tokens or offsets[context_tokens[0]][0] > start_char or offsets[context_tokens[-1]][1] < end_char:
        return cls, cls  # the answer is not (wholly) inside this window
    start = next(k for k in context_tokens if offsets[k][1] > start_char)
    end = next(k for k in reversed(context_tokens) if offsets[k][0] < end_char)
    return start, end


@dataclass
class Prediction:
    text: str  # "" when the model abstains
    best_span: str  # the best non-null span, even when abstaining
    probability: float  # of `text` among the n-best spans and the null answer
    score_diff: float  # null score minus best span score; > threshold means no answer
    start: int | None  # character offsets of best_span in the context
    end: int | None
    alternatives: list[dict[str, Any]]  # n-best spans with text, start, end, score, probability


def postprocess(examples: Sequence[Example], features: Features, start_logits: np.ndarray,
                end_logits: np.ndarray, n_best: int = 20, max_answer_length: int = 30,
                null_threshold: float = 0.0) -> list[Prediction]:
    """One prediction per example from the logits of all its windows."""
    by_example: dict[int, list[int]] = {}
    for feature, example in enumerate(features.example_index):
        by_example.setdefault(example, []).append(feature)
    predictions = []
    for i, example in enumerate(examples):
        null_score, spans = float("inf"), []
        for f in by_example.get(i, []):
            starts, ends, offsets = start_logits[f], end_logits[f], features.offsets[f]
            null_score = min(null_score, float(starts[0] + ends[0]))
            candidates = np.argsort(starts)[::-1][:n_best]
            ends_best = np.argsort(ends)[::-1][:n_best]
            for s in candidates:
                for e in ends_best:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    spans.append((float(starts[s] + ends[e]), offsets[s][0], offsets[e][1]))
        predictions.append(_choose(example.context, spans, null_score, n_best, null_threshold))
    return predictions


def _choose(context: str, spans: list, null_score: float, n_best: int, threshold: float) -> Prediction:
    # The same character span can come from several windows: keep its best score.
    best: dict[tuple[int, int], float] = {}
    for score, start, end in spans:
        best[(start, end)] = max(score, best.get((start, end), -np.inf))
    ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)[:n_best]
    if null_score == float("inf"):
        null_score = 0.0
    scores = np.array([s for _, s in ranked] + [null_score])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    alternatives = [{"text": context[s:e], "start": s, "end": e, "score": float(sc), "probability": float(p)}
                    for ((s, e), sc), p in zip(ranked, probs)]
    if not ranked:
        return Prediction("", "", float(probs[-1]), float("inf"), None, None, [])
    top = alternatives[0]
    diff = null_score - top["score"]
    if diff > threshold:
        return Prediction("", top["text"], float(probs[-1]), diff, top["start"], top["end"], alternatives)
    return Prediction(top["text"], top["text"], top["probability"], diff, top["start"], top["end"], alternatives)
