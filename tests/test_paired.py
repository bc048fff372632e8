"""The paired tests of `core/paired.py` against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from core import paired


def test_the_bootstrap_interval_is_the_exact_bootstrap_distributions_quantiles():
    """Two utterances of 10 words: A makes 1 error in the first, B none. The four equally likely
    resamples give B − A of -0.1 ({1,1}), -0.05 twice ({1,2}, {2,1}) and 0 ({2,2}): the 2.5th and
    97.5th percentiles are -0.1 and 0."""
    d = paired.bootstrap(np.array([1, 0]), np.array([0, 0]), np.array([10, 10]), resamples=20_000)
    assert (d.a, d.b, d.examples) == (0.05, 0.0, 2) and d.difference == pytest.approx(-0.05)
    assert (d.low, d.high) == (pytest.approx(-0.1), pytest.approx(0.0)) and not d.real


def test_a_difference_on_every_example_is_real_and_said_in_points():
    a = np.full(200, 3)  # 3 errors in each 20-word utterance: WER 15 %
    b = np.where(np.arange(200) % 2 == 0, 2, 3)  # one error fewer in every other one: 12.5 %
    d = paired.bootstrap(a, b, np.full(200, 20))
    assert d.a == pytest.approx(0.15) and d.b == pytest.approx(0.125) and d.real
    assert -0.035 < d.low < -0.025 < d.high < -0.015  # resampling only moves how many got better
    said = paired.in_words(d, "WER")
    assert said.startswith("B's WER is lower by 2.5 points (better); a paired bootstrap over the 200 utterances")
    assert "could be noise" not in said


def test_scores_without_totals_are_means_and_the_same_scores_are_the_same():
    em = np.array([1, 1, 0, 1])
    d = paired.bootstrap(em, em)
    assert (d.a, d.b, d.low, d.high) == (0.75, 0.75, 0.0, 0.0)
    assert paired.in_words(d, "EM", "questions", lower_is_better=False).startswith("A and B have the same EM")


def test_mcnemar_is_the_exact_binomial_on_the_discordant_pairs():
    """10 clips only A gets right, 2 only B: p = 2 · P(X ≤ 2 | n = 12, ½) = 2 · 79 / 4096."""
    a = np.array([True] * 10 + [False] * 2 + [True] * 30 + [False] * 5)
    b = np.array([False] * 10 + [True] * 2 + [True] * 30 + [False] * 5)
    m = paired.mcnemar(a, b)
    assert (m.only_a, m.only_b, m.examples) == (10, 2, 47) and m.p_value == pytest.approx(158 / 4096)
    assert paired.mcnemar_in_words(m) == (
        "A alone is right on 10 clips, B alone on 2 (of 47); McNemar's exact test: p = 0.0386 "
        "(a real difference at the 5 % level)."
    )
    assert paired.mcnemar(a, a).p_value == 1.0


def test_unpaired_inputs_are_refused_in_a_sentence():
    with pytest.raises(ValueError, match="the same examples for both models"):
        paired.bootstrap(np.array([1, 2]), np.array([1]))
    with pytest.raises(ValueError, match="the same examples for both models"):
        paired.mcnemar(np.array([], bool), np.array([], bool))
