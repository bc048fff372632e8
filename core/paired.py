"""Is the difference between two models real? Paired tests on the same evaluation examples, and the
answer in words.

- Error rates (WER, CER) and averaged scores (EM, F1): a paired bootstrap. Each resample draws the
  examples with replacement and scores *both* models on the same draw, so what the two share (a
  hard utterance) cancels out; the interval is the 2.5th to 97.5th percentile of B − A.
- Accuracy of a classifier (keyword spotting): McNemar's exact test on the examples where exactly
  one of the two is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InputError

RESAMPLES = 10_000


@dataclass(frozen=True)
class Difference:
    """B − A over the same examples, with its 95 % interval from a paired bootstrap."""

    a: float
    b: float
    low: float
    high: float
    examples: int

    @property
    def difference(self) -> float:
        return self.b - self.a

    @property
    def real(self) -> bool:
        """Whether the interval leaves out no difference at all."""
        return self.low > 0 or self.high < 0


def bootstrap(
    a_errors: np.ndarray,
    b_errors: np.ndarray,
    totals: np.ndarray | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Difference:
    """A paired bootstrap of a corpus-level rate: sum(errors) / sum(totals) for each model.

    Args:
        a_errors, b_errors: per example, model A's and model B's errors (word edits for WER,
            character edits for CER), or their scores (EM 0/1, F1 in [0, 1]) with `totals` None.
        totals: per example, what the errors are counted against (reference words, characters);
            None: 1 each (the rate is the mean).
        resamples: bootstrap draws.
        seed: the draws' seed (the same answer every time for the same data).

    Returns:
        The two rates and the interval of B − A.
    """
    a, b = np.asarray(a_errors, float), np.asarray(b_errors, float)
    n = len(a)
    if n == 0 or len(b) != n:
        raise ValueError(f"a paired test needs the same examples for both models ({len(a)} and {len(b)} given)")
    t = np.ones(n) if totals is None else np.asarray(totals, float)
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    counted = t[draws].sum(1)
    differences = (b[draws].sum(1) - a[draws].sum(1)) / np.maximum(counted, 1e-12)
    low, high = np.percentile(differences, [2.5, 97.5])
    return Difference(float(a.sum() / t.sum()), float(b.sum() / t.sum()), float(low), float(high), n)


@dataclass(frozen=True)
class McNemar:
    """Two classifiers on the same examples: where only A is right, where only B is, and the exact
    two-sided p-value that they are equally accurate."""

    only_a: int
    only_b: int
    examples: int
    p_value: float


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> McNemar:
    """McNemar's exact test from each example's correctness under A and under B."""
    from scipy.stats import binomtest

    a, b = np.asarray(a_right, bool), np.asarray(b_right, bool)
    if len(a) == 0 or len(a) != len(b):
        raise ValueError(f"a paired test needs the same examples for both models ({len(a)} and {len(b)} given)")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    return McNemar(only_a, only_b, len(a), float(p))


def in_words(d: Difference, metric: str, unit: str = "utterances", lower_is_better: bool = True) -> str:
    """ "B's WER is lower by 1.8 points; a paired bootstrap over the 2,620 utterances puts the
    difference between 1.1 and 2.5 points, 95 %." (points: percentage points)."""
    size = abs(d.difference) * 100
    if size < 0.05:
        head = f"A and B have the same {metric}"
    else:
        lower = d.difference < 0
        head = f"B's {metric} is {'lower' if lower else 'higher'} by {size:.1f} points"
        better = lower == lower_is_better
        head += f" ({'better' if better else 'worse'})"
    low, high = sorted((abs(d.low) * 100, abs(d.high) * 100)) if d.real else (d.low * 100, d.high * 100)
    tail = (
        f"a paired bootstrap over the {d.examples:,} {unit} puts the difference between {low:.1f} and "
        f"{high:.1f} points, 95 %"
    )
    if not d.real:
        tail += ": it could be noise"
    return f"{head}; {tail}."


def mcnemar_in_words(m: McNemar, unit: str = "clips") -> str:
    """ "A alone is right on 10 clips, B alone on 2; McNemar's exact test: p = 0.039 (a real
    difference at the 5 % level)."""
    verdict = "a real difference at the 5 % level" if m.p_value < 0.05 else "it could be noise"
    return (
        f"A alone is right on {m.only_a:,} {unit[:-1] if m.only_a == 1 else unit}, B alone on {m.only_b:,} "
        f"(of {m.examples:,}); "
        f"McNemar's exact test: p = {m.p_value:.3g} ({verdict})."
    )


def match(a_rows: list[dict], b_rows: list[dict], unit: str) -> list[tuple[dict, dict]]:
    """Two models' per-example results paired by example id, in A's order. `InputError` (a
    sentence) where they were not evaluated on the same examples: a paired test needs them."""
    a_by_id = {row["id"]: row for row in a_rows}
    b_by_id = {row["id"]: row for row in b_rows}
    if not a_by_id or a_by_id.keys() != b_by_id.keys():
        common = len(a_by_id.keys() & b_by_id.keys())
        raise InputError(
            f"The two models were evaluated on different {unit} (A on {len(a_by_id):,}, B on {len(b_by_id):,}, "
            f"{common:,} in common), so they cannot be paired: evaluate both on the same test set."
        )
    return [(row, b_by_id[row["id"]]) for row in a_by_id.values()]
