"""Per-example results of a speech checkpoint (core/examples.py) and the questions the app asks
of them: which clips fill a confusion-matrix cell, which utterances are worst and where their
words go wrong.

Row fields:
    kws  id, true, predicted, top3 [[label, probability] x3]
    asr  id, reference, hypothesis, wer, cer, errors {substitutions, deletions, insertions, words},
         alignment [[type, ref_start, ref_end, hyp_start, hyp_end], ...] (jiwer's chunks)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import jiwer
import numpy as np

# --- keyword spotting -------------------------------------------------------------------------


def kws_rows(ids: Sequence[str], labels: Sequence[str], y_true: Sequence[int], probs: np.ndarray) -> list[dict]:
    """One row per clip: its id, true and predicted label and the three most probable labels."""
    rows = []
    for clip, truth, p in zip(ids, y_true, probs, strict=True):
        top = np.argsort(p)[::-1][:3]
        rows.append(
            {
                "id": clip,
                "true": labels[int(truth)],
                "predicted": labels[int(top[0])],
                "top3": [[labels[int(k)], round(float(p[k]), 4)] for k in top],
            }
        )
    return rows


def kws_listen_order(rows: Sequence[dict], correct_per_class: int = 3) -> list[int]:
    """Which clips' audio to store, most useful first: every misclassified clip (the most
    confidently wrong first), then the first few correct ones of each class for comparison."""
    wrong = [i for i, r in enumerate(rows) if r["true"] != r["predicted"]]
    wrong.sort(key=lambda i: -rows[i]["top3"][0][1])
    kept: Counter[str] = Counter()
    correct = []
    for i, r in enumerate(rows):
        if r["true"] == r["predicted"] and kept[r["true"]] < correct_per_class:
            kept[r["true"]] += 1
            correct.append(i)
    return wrong + correct


def confused_pairs(rows: Sequence[dict], top: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent (true, predicted) pairs among the mistakes, most frequent first."""
    counts = Counter((r["true"], r["predicted"]) for r in rows if r["true"] != r["predicted"])
    return [(t, p, n) for (t, p), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def cell(rows: Sequence[dict], true: str, predicted: str) -> list[dict]:
    """The clips of one confusion-matrix cell, the most confident prediction first."""
    chosen = [r for r in rows if r["true"] == true and r["predicted"] == predicted]
    return sorted(chosen, key=lambda r: -r["top3"][0][1])


# --- speech recognition -----------------------------------------------------------------------


def asr_rows(ids: Sequence[str], references: Sequence[str], hypotheses: Sequence[str]) -> list[dict]:
    """One row per utterance with jiwer's word alignment and its WER and CER.

    An empty reference (jiwer refuses one) counts every hypothesis word as an insertion."""
    rows = []
    for uid, ref, hyp in zip(ids, references, hypotheses, strict=True):
        row: dict[str, Any] = {"id": uid, "reference": ref, "hypothesis": hyp}
        if ref.split():
            words = jiwer.process_words(ref, hyp)
            chars = jiwer.process_characters(ref, hyp)
            row["wer"], row["cer"] = round(words.wer, 4), round(chars.cer, 4)
            errors = (words.substitutions, words.deletions, words.insertions)
            row["alignment"] = [
                [c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx] for c in words.alignments[0]
            ]
        else:
            inserted = len(hyp.split())
            row["wer"] = row["cer"] = float(inserted > 0)
            errors = (0, 0, inserted)
            row["alignment"] = [["insert", 0, 0, 0, inserted]] if inserted else []
        row["errors"] = dict(zip(("substitutions", "deletions", "insertions"), errors, strict=True))
        row["errors"]["words"] = len(ref.split())
        rows.append(row)
    return rows


def worst(rows: Sequence[dict], n: int | None = None) -> list[dict]:
    """Utterances by WER, worst first (ties: more errors first); the error-free ones left out."""
    wrong = [r for r in rows if r["wer"] > 0]
    wrong.sort(key=lambda r: (-r["wer"], -_error_count(r), r["id"]))
    return wrong if n is None else wrong[:n]


def _error_count(row: dict) -> int:
    e = row["errors"]
    return e["substitutions"] + e["deletions"] + e["insertions"]


def error_breakdown(rows: Sequence[dict]) -> dict[str, int]:
    """Substitutions, deletions and insertions summed over the utterances, with the reference words."""
    keys = ("substitutions", "deletions", "insertions", "words")
    return {k: int(sum(r["errors"][k] for r in rows)) for k in keys}


def substitutions(rows: Sequence[dict], top: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent (reference word, hypothesis word) substitutions in jiwer's alignments."""
    counts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        ref, hyp = row["reference"].split(), row["hypothesis"].split()
        for kind, rs, re_, hs, _ in row["alignment"]:
            if kind == "substitute":
                counts.update(zip(ref[rs:re_], hyp[hs:], strict=False))
    return [(r, h, n) for (r, h), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def aligned_words(row: dict) -> list[tuple[str, str, str]]:
    """The utterance word by word as (kind, reference word, hypothesis word): kind is "equal",
    "substitute", "delete" (hypothesis "") or "insert" (reference "")."""
    ref, hyp = row["reference"].split(), row["hypothesis"].split()
    out = []
    for kind, rs, re_, hs, he in row["alignment"]:
        if kind in ("equal", "substitute"):
            out += [(kind, r, h) for r, h in zip(ref[rs:re_], hyp[hs:he], strict=True)]
        elif kind == "delete":
            out += [(kind, r, "") for r in ref[rs:re_]]
        else:
            out += [(kind, "", h) for h in hyp[hs:he]]
    return out
