"""Extractive QA with unanswerable questions: windowed features and post-processing, shared by
`train/qa.py` and the app (transformers 5 has no question-answering pipeline).

Features: question first, only the context truncated, overflowing windows `doc_stride` tokens
apart, offsets kept so any span maps back to characters. An answer outside a window (or no answer)
points at the CLS token. Post-processing takes the n-best spans over all windows of an example,
scores each as start + end logit, and compares the best with the null score (the CLS start + end
logits, the lowest over windows): the answer is empty when null minus best exceeds a threshold.
`answer` runs a model over every window of one context: what the app serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.inference import model_work, to_model
from qa.inputs import (  # noqa: F401 - the callers of `answer` name these as extractive.*
    MAX_CONTEXT_CHARS,
    MAX_QUESTION_CHARS,
    STRIDE,
    WINDOW,
    AnswerOptions,
    QAInputError,
    QuestionTooLong,
    check_input,
    check_question_length,
    window_length,
)

if TYPE_CHECKING:
    import torch


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
    # Character span of the word each context token belongs to, as the tokenizer splits words (for
    # `align_to_words`); None outside the context.
    words: list[list[tuple[int, int] | None]] = field(default_factory=list)


def prepare(
    tokenizer, examples: Sequence[Example], max_length: int = 384, doc_stride: int = 128, with_positions: bool = False
) -> Features:
    """Tokenize question/context pairs into overlapping windows (padding is left to the collator).

    Args:
        tokenizer: a fast tokenizer (offsets are needed).
        examples: the questions with their contexts.
        max_length: tokens per window, question and special tokens included.
        doc_stride: tokens shared by neighbouring windows of one context.
        with_positions: also the start/end token of each window's gold answer (training).

    Returns:
        The windows: model inputs, which example each comes from, each token's character span.
    """
    pad_right = tokenizer.padding_side == "right"
    truncation = "only_second" if pad_right else "only_first"
    enc = tokenizer(
        [e.question.lstrip() if pad_right else e.context for e in examples],
        [e.context if pad_right else e.question.lstrip() for e in examples],
        truncation=truncation,
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    context_id = 1 if pad_right else 0
    example_index = list(enc.pop("overflow_to_sample_mapping"))
    offsets = []
    word_ids = []
    starts = []
    ends = []
    # Each word's characters, over all windows of its example: a window may end inside a word, and
    # then holds only part of it.
    word_chars: dict[tuple[int, int], tuple[int, int]] = {}
    for i, mapping in enumerate(enc.pop("offset_mapping")):
        sequence_ids = enc.sequence_ids(i)
        offsets.append([tuple(o) if sequence_ids[k] == context_id else None for k, o in enumerate(mapping)])
        word_ids.append([w if sequence_ids[k] == context_id else None for k, w in enumerate(enc.word_ids(i))])
        for o, w in zip(offsets[-1], word_ids[-1], strict=True):
            if o is not None and w is not None:
                key = (example_index[i], w)
                low, high = word_chars.get(key, o)
                word_chars[key] = (min(low, o[0]), max(high, o[1]))
        if with_positions:
            start, end = answer_positions(
                examples[example_index[i]], offsets[-1], enc["input_ids"][i], tokenizer.cls_token_id
            )
            starts.append(start)
            ends.append(end)
    words = [
        [None if w is None else word_chars[(example_index[i], w)] for w in window] for i, window in enumerate(word_ids)
    ]
    encodings = {k: v for k, v in enc.items() if k in tokenizer.model_input_names}
    if with_positions:
        encodings.update(start_positions=starts, end_positions=ends)
    return Features(encodings, example_index, offsets, words)


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


def postprocess(
    examples: Sequence[Example],
    features: Features,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_threshold: float = 0.0,
    align_to_words: bool = False,
    impossible: bool = True,
) -> list[Prediction]:
    """One prediction per example from the logits of all its windows.

    Args:
        examples: the examples `features` were made from.
        features: their windows (`prepare`).
        start_logits: [windows, tokens] start logits (padded windows: pad with a large negative).
        end_logits: [windows, tokens] end logits.
        n_best: start and end candidates per window.
        max_answer_length: the longest answer, in tokens.
        null_threshold: abstain when null score minus best span score exceeds it.
        align_to_words: widen each span to the whole words its first and last tokens are in.
        impossible: whether the prediction may be "no answer" (else the best span, always).

    Returns:
        One prediction per example, in order.
    """
    by_example: dict[int, list[int]] = {}
    for feature, example in enumerate(features.example_index):
        by_example.setdefault(example, []).append(feature)
    predictions = []
    for i, example in enumerate(examples):
        null_score = float("inf")
        spans = []
        for f in by_example.get(i, []):
            starts = start_logits[f]
            ends = end_logits[f]
            offsets = features.offsets[f]
            words = features.words[f] if align_to_words and features.words else None
            null_score = min(null_score, float(starts[0] + ends[0]))
            candidates = np.argsort(starts)[::-1][:n_best]
            ends_best = np.argsort(ends)[::-1][:n_best]
            for s in candidates:
                for e in ends_best:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    start, end = offsets[s][0], offsets[e][1]
                    if words is not None:
                        start, end = _on_words(example.context, start, end, words[s][0], words[e][1])
                    spans.append((float(starts[s] + ends[e]), start, end))
        threshold = null_threshold if impossible else float("inf")
        predictions.append(_choose(example.context, spans, null_score, n_best, threshold))
    return predictions


def _on_words(context: str, start: int, end: int, word_start: int, word_end: int) -> tuple[int, int]:
    """`start`/`end` moved out to the edges of the words they fall in: through letters and digits
    only, and no further than the tokenizer's word (a SentencePiece "word" keeps its punctuation,
    "Eiffel.", which the answer should not)."""
    while start > word_start and context[start - 1].isalnum() and context[start].isalnum():
        start -= 1
    while end < word_end and context[end - 1].isalnum() and context[end].isalnum():
        end += 1
    return start, end


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
    alternatives = [
        {"text": context[s:e], "start": s, "end": e, "score": float(sc), "probability": float(p)}
        for ((s, e), sc), p in zip(ranked, probs[:-1], strict=True)
    ]
    if not ranked:
        return Prediction("", "", float(probs[-1]), float("inf"), None, None, [])
    top = alternatives[0]
    diff = null_score - top["score"]
    if diff > threshold:
        return Prediction("", top["text"], float(probs[-1]), diff, top["start"], top["end"], alternatives)
    return Prediction(top["text"], top["text"], top["probability"], diff, top["start"], top["end"], alternatives)


def default_threshold(metrics: dict[str, Any] | None) -> float:
    """The null-score threshold that maximised F1 on validation (`metrics.json`'s
    `extra.null_score_diff_threshold`, written by train/qa.py), else 0."""
    extra = (metrics or {}).get("extra") or {}
    return float(extra.get("null_score_diff_threshold", 0.0))


@model_work
def answer(
    model: torch.nn.Module,
    tokenizer: Any,
    context: str,
    question: str,
    threshold: float = 0.0,
    batch_size: int = 16,
    options: AnswerOptions | None = None,
) -> Prediction:
    """The model's answer to `question` over every window of `context`.

    Args:
        model: a `*ForQuestionAnswering` model (start and end logits per token).
        tokenizer: its fast tokenizer (offsets are needed to map spans back to characters).
        context: the text to answer from.
        question: the question.
        threshold: abstain when null score minus best span score exceeds it.
        batch_size: windows per forward pass.
        options: the pipeline's controls (`AnswerOptions`; default: its defaults).

    Returns:
        The prediction; its `text` is "" when the model abstains.

    Raises:
        QuestionTooLong: the question takes more than half a window (or `max_question_len`).
        QAInputError: an option out of range, or a stride that leaves no room for the context.
    """
    options = (options or AnswerOptions()).checked()
    length = window_length(model.config)
    question_tokens = check_question_length(model.config, tokenizer, question, limit=options.max_question_len)
    stride = min(STRIDE, length // 4) if options.doc_stride is None else options.doc_stride
    if question_tokens + stride + 4 > length:  # the question, the overlap and the special tokens
        raise QAInputError(
            f"doc_stride {stride} and a {question_tokens}-token question leave no room for the context in "
            f"{model.config.model_type}'s {length}-token window."
        )
    example = Example("q", question, context)
    features = prepare(tokenizer, [example], length, stride)
    ids = features.encodings["input_ids"]
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for b in range(0, len(ids), batch_size):
        rows = {k: v[b : b + batch_size] for k, v in features.encodings.items()}
        batch = tokenizer.pad(rows, return_tensors="pt")
        out = model(**{k: to_model(model, v) for k, v in batch.items()})
        starts += list(out.start_logits.float().cpu().numpy())
        ends += list(out.end_logits.float().cpu().numpy())
    return postprocess(
        [example],
        features,
        _stack(starts),
        _stack(ends),
        n_best=max(20, options.top_k),
        max_answer_length=options.max_answer_len,
        null_threshold=threshold,
        align_to_words=options.align_to_words,
        impossible=options.handle_impossible_answer,
    )[0]


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    """Windows of different lengths (each batch is padded to its own longest) as one array."""
    width = max(len(r) for r in rows)
    return np.stack([np.pad(r, (0, width - len(r)), constant_values=-1e4) for r in rows])
