"""Any two QA candidates answer the same question, and their stored validation results paired."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core.examples import ExampleSet, write_examples
from core.paired import bootstrap
from qa import extractive
from scripts.tiny_models import build_qa_distilbert
from serving import gpu
from slots.registry import Registry
from tests.helpers import served, serving_for_good
from ui.qa_compare import measured_on

CONTEXT = "the tower was built in eighteen eighty nine in paris"
QUESTION = "when was the tower built"
# per question: (answers, A's answer, A's exact, A's f1, B's answer, B's exact, B's f1)
STORED = [
    (["1889"], "1889", 1, 1.0, "in 1889", 0, 0.6667),
    ([], "", 1, 1.0, "paris", 0, 0.0),
    (["paris"], "paris", 1, 1.0, "paris", 1, 1.0),
    (["the tower"], "tower", 0, 0.6667, "the tower", 1, 1.0),
]


def store(folder: Path, which: int, questions: int = len(STORED)) -> None:
    rows = []
    for i, (answers, *scores) in enumerate(STORED[:questions]):
        text, exact, f1 = scores[which * 3 : which * 3 + 3]
        prediction = {"text": text, "start": None, "end": None}
        rows.append({"id": f"q{i}", "question": f"question {i}", "context": "c0", "prediction": prediction,
                     "answers": [{"text": a, "start": 0} for a in answers], "exact": exact, "f1": f1})  # fmt: skip
    write_examples(folder, ExampleSet("qa", "validation", rows, contexts=[CONTEXT]))


@pytest.fixture(scope="module")
def qa_root(tmp_path_factory, tiny_checkpoints) -> Path:
    root = tmp_path_factory.mktemp("qa-candidates")
    for name in ("qa-distilbert", "qa-xlmr", "asr"):
        shutil.copytree(tiny_checkpoints / name, root / name)
    build_qa_distilbert(root / "qa-seed2", seed=2)
    build_qa_distilbert(root / "qa-fewer", seed=3)
    store(root / "qa-distilbert", 0)
    store(root / "qa-seed2", 1)
    store(root / "qa-fewer", 1, questions=3)
    return root


@pytest.fixture(scope="module")
def qa_app(qa_root):
    with served(qa_root) as client:
        yield client


def test_any_two_candidates_answer_as_each_alone_does(qa_app, qa_root):
    here = Registry(qa_root)
    options = extractive.AnswerOptions(top_k=2)
    alone = {
        name: gpu.answer(here[name].settled(), CONTEXT, QUESTION, extractive.default_threshold(None), options)
        for name in ("qa-seed2", "qa-xlmr")
    }
    qa_app.predict(CONTEXT, QUESTION, "qa-seed2", "qa-xlmr", 2, api_name="/answer_pair")  # loads both
    serving_for_good(qa_app, ["qa-seed2", "qa-xlmr"])
    result = qa_app.predict(CONTEXT, QUESTION, "qa-seed2", "qa-xlmr", 2, api_name="/answer_pair")
    for which, name in (("a", "qa-seed2"), ("b", "qa-xlmr")):
        assert result[which]["text"] == alone[name].text and result[which]["start"] == alone[name].start
        assert [a["text"] for a in result[which]["alternatives"]] == [a["text"] for a in alone[name].alternatives[:2]]
    agree = alone["qa-seed2"].text.lower() == alone["qa-xlmr"].text.lower()
    assert result["agreement"].startswith("✅ The models agree" if agree else "⚠️ The models disagree")


def test_stored_results_pair_as_a_hand_computation_says(qa_app):
    result = qa_app.predict("qa-distilbert", "qa-seed2", api_name="/compare_qa_evaluations")
    a_exact, b_exact = np.array([1, 1, 1, 0]), np.array([0, 0, 1, 1])
    a_f1, b_f1 = np.array([1.0, 1.0, 1.0, 0.6667]), np.array([0.6667, 0.0, 1.0, 1.0])
    assert result["exact"]["a"] == 0.75 and result["exact"]["b"] == 0.5
    assert result["f1"]["a"] == pytest.approx(a_f1.mean()) and result["f1"]["b"] == pytest.approx(b_f1.mean())
    em = bootstrap(a_exact, b_exact)
    assert (result["exact"]["low"], result["exact"]["high"]) == pytest.approx((em.low, em.high))
    assert result["exact"]["in_words"].startswith("B's EM is lower by 25.0 points (worse)")
    assert [(q["id"], q["right"]) for q in result["one_right"]] == [("q0", "A"), ("q1", "A"), ("q3", "B")]


@pytest.mark.parametrize(
    ("a", "b", "says"),
    [
        ("qa-distilbert", "qa-fewer", "evaluated on different questions (A on 4, B on 3, 3 in common)"),
        ("qa-xlmr", "qa-seed2", "Model A (qa-xlmr): This model has no per-example results"),
        ("qa-distilbert", "asr", "“asr” is a speech recognition model: it cannot be compared on question answering."),
        ("qa-xlmr", "nobody", "There is no question answering model called “nobody”."),
    ],
)
def test_a_comparison_that_cannot_be_made_says_why(qa_app, a, b, says):
    with pytest.raises(Exception) as refused:
        qa_app.predict(a, b, api_name="/compare_qa_evaluations")
    assert says in str(refused.value)


def test_each_number_says_where_it_was_measured(qa_root):
    registry = Registry(qa_root / "none")  # the hub defaults, not loaded (no hub here)
    assert measured_on(registry["qa-distilbert"]) == (
        "its model card's EM/F1 were measured on a 6,078-question subset of SQuAD v2's dev set"
    )
    assert (
        measured_on(registry["qa-xlmr"])
        == "its model card's EM/F1 were measured on all 11,873 questions of SQuAD v2's dev set"
    )
    here = Registry(qa_root)
    here["qa-distilbert"].get()
    assert measured_on(here["qa-distilbert"]) == "its training run scored it on 2 validation questions"


def test_two_candidates_scored_on_the_same_file_with_a_paired_test(qa_app, qa_root, tmp_path):
    from gradio_client import handle_file

    from qa.squad_data import gold_answers, load_file
    from qa.squad_metric import raw_scores

    sample = Path(__file__).resolve().parents[1] / "assets" / "qa" / "sample_squad_v2.json"
    serving_for_good(qa_app, ["qa-seed2", "qa-xlmr"])
    result = qa_app.predict(handle_file(str(sample)), "qa-seed2", "qa-xlmr", api_name="/compare_qa_on_file")
    here = Registry(qa_root)
    examples = load_file(sample)
    golds = gold_answers(examples)
    per_model = []
    for name in ("qa-seed2", "qa-xlmr"):
        loaded = here[name].settled()
        threshold = extractive.default_threshold(loaded.metrics)
        answers = {e.id: gpu.answer(loaded, e.context, e.question, threshold).text for e in examples}
        per_model.append(raw_scores(golds, answers))
    ids = list(golds)
    expected = bootstrap([per_model[0][0][i] for i in ids], [per_model[1][0][i] for i in ids])
    assert result["questions"] == 12
    assert result["exact"]["a"] == pytest.approx(expected.a) and result["exact"]["b"] == pytest.approx(expected.b)
    assert (result["exact"]["low"], result["exact"]["high"]) == pytest.approx((expected.low, expected.high))
    assert result["scores"]["a"]["exact"] == pytest.approx(100 * expected.a)
