"""Two speech models side by side: where their transcripts differ word by word, how each scores
against a reference, and, over their stored evaluations (core/examples.py), whether the
difference between them is real (core/paired.py).

Scores compare normalised text (`core.metrics.normalise_english`, the Open ASR Leaderboard's way),
so casing, punctuation and spelled-out numbers do not count as errors; the word-by-word view
compares words ignoring case and punctuation only, and shows them as each model wrote them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import jiwer
import numpy as np

from core.errors import InputError
from core.metrics import normalise_english
from core.paired import Difference, McNemar, bootstrap, match, mcnemar
from speech import keywords

_NOT_A_WORD = re.compile(r"[^\w']+")


# --- one clip -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One transcript against a reference, both normalised."""

    wer: float
    cer: float
    word_errors: int
    words: int
    char_errors: int
    chars: int


def edits(reference: str, hypothesis: str) -> Scored:
    """Word and character edits of `hypothesis` against `reference`, both already normalised; an
    empty reference counts every hypothesis word (character) as an insertion."""
    if not reference.split():
        inserted_words, inserted_chars = len(hypothesis.split()), len(hypothesis)
        return Scored(float(inserted_words > 0), float(inserted_chars > 0), inserted_words, 0, inserted_chars, 0)
    w, c = jiwer.process_words(reference, hypothesis), jiwer.process_characters(reference, hypothesis)
    word_errors = w.substitutions + w.deletions + w.insertions
    char_errors = c.substitutions + c.deletions + c.insertions
    words, chars = len(reference.split()), len(reference)
    return Scored(word_errors / words, char_errors / chars, word_errors, words, char_errors, chars)


def score(reference: str, hypothesis: str) -> Scored:
    """A transcript against a reference a visitor typed, both normalised."""
    ref = normalise_english(reference)
    if not ref.split():
        raise InputError("The reference text has no words to score against (after normalising it).")
    return edits(ref, normalise_english(hypothesis))


def _key(word: str) -> str:
    return _NOT_A_WORD.sub("", word.lower()) or word


def word_diff(a: str, b: str) -> list[tuple[str, str, str]]:
    """A's and B's transcripts word by word: (kind, A's word, B's word), kind "equal",
    "substitute", "delete" (only A has a word there) or "insert" (only B has)."""
    a_words, b_words = a.split(), b.split()
    if not a_words:
        return [("insert", "", w) for w in b_words]
    if not b_words:
        return [("delete", w, "") for w in a_words]
    out: list[tuple[str, str, str]] = []
    aligned = jiwer.process_words(" ".join(map(_key, a_words)), " ".join(map(_key, b_words)))
    for chunk in aligned.alignments[0]:
        a_part = a_words[chunk.ref_start_idx : chunk.ref_end_idx]
        b_part = b_words[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if chunk.type in ("equal", "substitute"):
            out += [(chunk.type, x, y) for x, y in zip(a_part, b_part, strict=True)]
        elif chunk.type == "delete":
            out += [("delete", x, "") for x in a_part]
        else:
            out += [("insert", "", y) for y in b_part]
    return out


# --- speech recognition over a stored evaluation ------------------------------------------------


@dataclass
class AsrPairing:
    """Two ASR models on the same test utterances, scored on normalised text."""

    wer: Difference
    cer: Difference
    # The utterances where the two differ most (B's word errors minus A's, largest first): id,
    # reference, a, b (as each model wrote it), a_errors, b_errors, words.
    differing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def utterances(self) -> int:
        return self.wer.examples


def compare_asr(a_rows: list[dict], b_rows: list[dict], top: int = 20) -> AsrPairing:
    """Pair two stored ASR evaluations by utterance id (`core.paired.match`), score both on
    normalised text, and bootstrap the differences in WER and CER."""
    pairs = match(a_rows, b_rows, "utterances")
    counts = np.zeros((len(pairs), 6))
    rows = []
    for i, (ra, rb) in enumerate(pairs):
        reference = normalise_english(ra["reference"])
        if reference != normalise_english(rb["reference"]):
            raise InputError(
                f"Utterance {ra['id']} has a different reference text in the two evaluations: "
                "they come from different test sets and cannot be paired."
            )
        sa, sb = (
            edits(reference, normalise_english(ra["hypothesis"])),
            edits(reference, normalise_english(rb["hypothesis"])),
        )
        counts[i] = (sa.word_errors, sb.word_errors, sa.words, sa.char_errors, sb.char_errors, sa.chars)
        if normalise_english(ra["hypothesis"]) != normalise_english(rb["hypothesis"]):
            rows.append(
                {"id": ra["id"], "reference": ra["reference"], "a": ra["hypothesis"], "b": rb["hypothesis"],
                 "a_errors": sa.word_errors, "b_errors": sb.word_errors, "words": sa.words}
            )  # fmt: skip
    rows.sort(key=lambda r: (-abs(r["b_errors"] - r["a_errors"]), str(r["id"])))
    wer = bootstrap(counts[:, 0], counts[:, 1], counts[:, 2])
    cer = bootstrap(counts[:, 3], counts[:, 4], counts[:, 5])
    return AsrPairing(wer, cer, rows[:top])


# --- keyword spotting over a stored evaluation --------------------------------------------------


@dataclass
class KwsPairing:
    """Two keyword models on the same test clips."""

    labels: list[str]
    a_matrix: np.ndarray  # confusion counts, rows = true class, columns = predicted
    b_matrix: np.ndarray
    test: McNemar
    # The clips the two label differently: id, true, a, a_p, b, b_p, right ("A", "B" or "neither").
    disagreements: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clips(self) -> int:
        return self.test.examples

    def accuracy(self, which: str) -> float:
        matrix = self.a_matrix if which == "a" else self.b_matrix
        return float(np.trace(matrix) / max(matrix.sum(), 1))


def compare_kws(a_rows: list[dict], b_rows: list[dict]) -> KwsPairing:
    """Pair two stored KWS evaluations by clip id: both confusion matrices over the same clips,
    the clips they disagree on, and McNemar's test of their accuracy."""
    pairs = match(a_rows, b_rows, "clips")
    for ra, rb in pairs:
        if ra["true"] != rb["true"]:
            raise InputError(
                f"Clip {ra['id']} has a different true label in the two evaluations ({ra['true']} and "
                f"{rb['true']}): they come from different test sets and cannot be paired."
            )
    seen = {label for ra, rb in pairs for label in (ra["true"], ra["predicted"], rb["predicted"])}
    labels = [label for label in keywords.LABELS if label in seen]
    labels += sorted(seen - set(labels))
    index = {label: i for i, label in enumerate(labels)}
    a_matrix, b_matrix = np.zeros((len(labels),) * 2, int), np.zeros((len(labels),) * 2, int)
    disagreements = []
    for ra, rb in pairs:
        a_matrix[index[ra["true"]], index[ra["predicted"]]] += 1
        b_matrix[index[rb["true"]], index[rb["predicted"]]] += 1
        if ra["predicted"] != rb["predicted"]:
            right = "A" if ra["predicted"] == ra["true"] else "B" if rb["predicted"] == rb["true"] else "neither"
            disagreements.append(
                {"id": ra["id"], "true": ra["true"], "a": ra["predicted"], "a_p": ra["top3"][0][1],
                 "b": rb["predicted"], "b_p": rb["top3"][0][1], "right": right}
            )  # fmt: skip
    test = mcnemar(
        np.array([ra["predicted"] == ra["true"] for ra, _ in pairs]),
        np.array([rb["predicted"] == rb["true"] for _, rb in pairs]),
    )
    disagreements.sort(key=lambda d: ({"B": 0, "A": 1, "neither": 2}[d["right"]], d["true"], str(d["id"])))
    return KwsPairing(labels, a_matrix, b_matrix, test, disagreements)
