"""Our SQuAD v2 metric against hand-computed values, with the official script's semantics."""

from __future__ import annotations

import pytest

from qa.squad_metric import exact, f1, normalize_answer, squad_v2


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  an   apple, a pear and the plum. ", "apple pear and plum"),
        ("Theatre", "theatre"),  # "the" only as a whole word
        ("A", ""),
        ("U.S.A.", "usa"),
    ],
)
def test_normalisation(text, expected):
    assert normalize_answer(text) == expected


def test_exact_and_f1_by_hand():
    assert exact("the Eiffel Tower", "Eiffel tower.") == 1
    assert exact("Eiffel Tower", "tower") == 0
    # gold: [eiffel, tower]; prediction: [tower, in, paris]; 1 common token
    # precision 1/3, recall 1/2, F1 = 2*(1/3)*(1/2)/(1/3+1/2) = 0.4
    assert f1("the Eiffel Tower", "tower in Paris") == pytest.approx(0.4)
    # repeated tokens count by multiplicity: gold [a_, b] vs pred [b, b]: common 1 -> P 1/2, R 1/2
    assert f1("new york", "york york") == pytest.approx(0.5)
    assert f1("", "") == 1.0 and f1("", "something") == 0.0 and f1("answer", "") == 0.0


def test_squad_v2_all_hasans_noans_by_hand():
    golds = {
        "q1": ["1889", "in 1889"],  # several golds: best one counts
        "q2": ["Gustave Eiffel"],
        "q3": [],  # unanswerable
        "q4": [],  # unanswerable
    }
    predictions = {"q1": "in 1889", "q2": "Eiffel", "q3": "", "q4": "Paris"}
    out = squad_v2(golds, predictions)
    # exact: q1 1, q2 0, q3 1, q4 0 -> 50%; F1: q1 1, q2 2*(1)*(1/2)/(1.5)=2/3, q3 1, q4 0
    assert out["exact"] == pytest.approx(50.0)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    assert out["HasAns_exact"] == pytest.approx(50.0) and out["HasAns_total"] == 2
    assert out["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert out["NoAns_exact"] == pytest.approx(50.0) and out["NoAns_total"] == 2
    assert out["total"] == 4


def test_null_threshold_and_best_threshold_by_hand():
    golds = {"q1": ["1889"], "q2": [], "q3": []}
    predictions = {"q1": "1889", "q2": "Paris", "q3": "x"}
    null_diffs = {"q1": -2.0, "q2": 1.0, "q3": 3.0}
    # threshold 0: q2, q3 abstain (diff > 0) -> all three right
    assert squad_v2(golds, predictions, null_diffs, threshold=0.0)["exact"] == pytest.approx(100.0)
    # threshold 2: q2 answers "Paris" (wrong), q3 abstains -> 2/3
    assert squad_v2(golds, predictions, null_diffs, threshold=2.0)["exact"] == pytest.approx(200 / 3)
    out = squad_v2(golds, predictions, null_diffs)
    # official sweep: start at 2 (no-answers right), answering q1 (+1) at thresh -2 -> 3 -> best
    assert out["best_exact"] == pytest.approx(100.0) and out["best_exact_thresh"] == -2.0
    assert out["best_f1"] == pytest.approx(100.0) and out["best_f1_thresh"] == -2.0


@pytest.mark.parametrize("text", ["The", "!!", "  AN", "a the."])
def test_best_threshold_counts_a_non_empty_prediction_that_normalises_to_nothing_as_an_answer(text):
    # The official find_best_thresh tests the raw prediction: answering the unanswerable q2 with
    # any non-empty string costs 1, though its normalised text "" would score as an abstention.
    golds = {"q1": ["1889"], "q2": []}
    predictions = {"q1": "1889", "q2": text}
    null_diffs = {"q2": -3.0, "q1": -1.0}
    out = squad_v2(golds, predictions, null_diffs)
    # start 1 (q2 abstains); answer q2 at -3: 1 - 1 = 0; answer q1 at -1: 0 + 1 = 1, not > 1
    assert (out["best_exact"], out["best_exact_thresh"]) == (50.0, 0.0)
    assert (out["best_f1"], out["best_f1_thresh"]) == (50.0, 0.0)
    # an empty prediction is an abstention however far the sweep goes: q2 adds 0, q1 adds 1
    out = squad_v2(golds, {"q1": "1889", "q2": ""}, null_diffs)
    assert (out["best_exact"], out["best_exact_thresh"]) == (100.0, -1.0)


def test_best_threshold_sweeps_equal_margins_in_the_order_the_margins_were_given():
    # Two questions with the same margin: the official script sorts the null-score file's ids
    # stably, so the margins' order decides, not the gold file's.
    golds = {"a": [], "b": ["x"]}
    predictions = {"a": "Paris", "b": "x"}
    out = squad_v2(golds, predictions, {"b": 0.5, "a": 0.5})
    # start 1; b first: +1 -> 2 (best, thresh 0.5); then a: -1 -> 1
    assert (out["best_exact"], out["best_exact_thresh"]) == (100.0, 0.5)
    out = squad_v2(golds, predictions, {"a": 0.5, "b": 0.5})
    # a first: -1 -> 0; then b: +1 -> 1, not above the start
    assert (out["best_exact"], out["best_exact_thresh"]) == (50.0, 0.0)


def test_a_missing_prediction_is_an_error():
    with pytest.raises(ValueError, match="have no prediction"):
        squad_v2({"q1": ["a"]}, {})


def test_the_evaluate_modules_give_the_projects_own_scores():
    import evaluate

    from core.metrics import wer_cer
    from tests.helpers import ROOT

    golds = {"q1": ["Paris", "the city of Paris"], "q2": [], "q3": ["1889"]}
    texts = {"q1": "Paris", "q2": "Berlin", "q3": "in 1889"}
    margins = {"q1": -2.0, "q2": 0.5, "q3": -1.0}
    squad = evaluate.load(str(ROOT / "metrics" / "squad_v2"))
    scores = squad.compute(
        predictions=[{"id": q, "prediction_text": texts[q], "null_score_diff": margins[q]} for q in golds],
        references=[{"id": q, "answers": {"text": a, "answer_start": [0] * len(a)}} for q, a in golds.items()],
    )
    assert scores == pytest.approx(squad_v2(golds, texts, margins))
    # q2 is answered "Berlin" but its margin exceeds the threshold (0): it abstains, correctly.
    assert scores["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2) and scores["NoAns_exact"] == 100.0
    references = ["the cat sat down", "a dog"]
    predictions = ["the cat sat", "a dog barked"]
    wer = evaluate.load(str(ROOT / "metrics" / "wer_cer")).compute(predictions=predictions, references=references)
    assert wer == pytest.approx(wer_cer(references, predictions)) and wer["wer"] == pytest.approx(2 / 6)
