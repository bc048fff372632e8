"""What the QA models accept: a model's window, the limits on a context and a question, the
question-answering pipeline's controls (`AnswerOptions`), and the checks that refuse the rest in
a sentence. Shared by `qa.extractive` (which answers) and the app (which checks a batch first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import InputError, json_kind

WINDOW = 384  # tokens per window, as the models were fine-tuned
STRIDE = 128  # tokens shared by neighbouring windows
MAX_CONTEXT_CHARS = 20_000  # ~3,500 words: a few dozen windows, a few seconds on a CPU
MAX_QUESTION_CHARS = 1_000  # a question is one sentence; this leaves room for long ones


class QAInputError(InputError):
    """A context or question the models cannot take; the message says why."""


class QuestionTooLong(QAInputError):
    """The question leaves too little of a window for the context."""


@dataclass(frozen=True)
class AnswerOptions:
    """The controls of transformers' question-answering pipeline (removed in transformers 5.3),
    with its meanings.

    top_k: how many of the best answers to return (fewer where the context has fewer spans).
    max_answer_len: the longest answer, in tokens.
    doc_stride: tokens shared by neighbouring windows of a context longer than one window.
    max_question_len: the longest question, in tokens (None: half a window). The pipeline cut a
        longer question silently; here it is refused in a sentence.
    handle_impossible_answer: whether "no answer" may be the answer (these models were trained on
        SQuAD v2, where a third of the questions have none); off, the best span is always given.
    align_to_words: a span starts and ends on whole words (a weak model can otherwise answer
        "ustave Eiffel"): widened through letters and digits, within the word the tokenizer made;
        for languages written without spaces a SentencePiece tokenizer's words may be whole
        phrases, as with the pipeline (BERT's split such text into single characters).
    """

    top_k: int = 3
    max_answer_len: int = 30
    doc_stride: int | None = None  # None: STRIDE, at most a quarter of the model's window
    max_question_len: int | None = None
    handle_impossible_answer: bool = True
    align_to_words: bool = True

    def checked(self) -> AnswerOptions:
        """These options, or a `QAInputError` naming the one out of range."""
        for name, value, low, high in (
            ("top_k", self.top_k, 1, 20),
            ("max_answer_len", self.max_answer_len, 1, WINDOW),
            ("doc_stride", STRIDE if self.doc_stride is None else self.doc_stride, 0, WINDOW // 2),
            ("max_question_len", self.max_question_len or 1, 1, WINDOW // 2),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise QAInputError(f"{name} must be a whole number from {low} to {high}, not {value!r}.")
        return self


def check_input(context: Any, question: Any) -> tuple[str, str]:
    """The context and question stripped of surrounding space.

    Raises:
        QAInputError: either is not text, is empty, holds characters that are not valid text (an
            unpaired surrogate), or exceeds its limit (`MAX_CONTEXT_CHARS`, `MAX_QUESTION_CHARS`).
    """
    context = _text(context, "context")
    question = _text(question, "question")
    if not context:
        raise QAInputError("The context is empty: paste the paragraph the answer should come from.")
    if not question:
        raise QAInputError("The question is empty.")
    if len(context) > MAX_CONTEXT_CHARS:
        raise QAInputError(f"The context has {len(context):,} characters; the limit is {MAX_CONTEXT_CHARS:,}.")
    if len(question) > MAX_QUESTION_CHARS:
        raise QAInputError(f"The question has {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}.")
    return context, question


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise QAInputError(f"The {name} must be text, not {json_kind(value)}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise QAInputError(
            f"The {name} holds a character that is not valid text (an unpaired surrogate at position "
            f"{err.start + 1:,}); paste it again as plain text."
        ) from err
    return value.strip()


def window_length(config: Any) -> int:
    """Tokens per window for a model config: `WINDOW`, or less where the model has fewer
    positions (RoBERTa-style position ids start after the padding index, which costs two)."""
    positions = getattr(config, "max_position_embeddings", WINDOW)
    if config.model_type in ("roberta", "xlm-roberta"):
        positions -= 2
    return min(WINDOW, positions)


def check_question_length(
    config: Any, tokenizer: Any, question: str, named: str = "The question", limit: int | None = None
) -> int:
    """The question's length in tokens; `QuestionTooLong` for one that takes more than half a
    window of the model with `config`, or more than `limit` tokens (`named` begins the message:
    "Question 'q7'" for one of a batch)."""
    length = window_length(config)
    most = length // 2 if limit is None else min(limit, length // 2)
    question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    if question_tokens > most:
        room = "leave room for the context" if most == length // 2 else "are allowed (max_question_len)"
        raise QuestionTooLong(
            f"{named} is {question_tokens} tokens long for {config.model_type}; at most {most} {room}."
        )
    return question_tokens
