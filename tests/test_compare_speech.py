"""Compare any two speech candidates in the app: the same recording through both, and their stored
evaluations paired, through the API as a client calls it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file

from core.examples import ExampleSet, write_examples
from core.paired import bootstrap
from scripts.tiny_models import build_asr, build_kws
from serving import gpu
from slots.registry import Registry
from speech import error_analysis as ea
from speech.audio import load_audio
from tests.helpers import served, serving_for_good
from ui import asr_compare

CLIP = Path(__file__).resolve().parents[1] / "assets" / "asr" / "pangram_en-us.wav"
IDS = ["1-1-0", "1-1-1", "1-1-2", "1-1-3"]
REFERENCES = ["THE CAT SAT", "A DOG RAN FAR", "RED FISH", "BLUE SKY"]
HYPOTHESES = {
    "asr": ["the cat sat", "a dog ran", "bed dish", "blue sky"],
    "asr-seed2": ["THE BAT SAT", "A DOG RAN FAR", "RED FISH", "BLUE SKY"],
}


CLIPS = ["c1", "c2", "c3", "c4", "c5"]
TRUE = ["yes", "no", "up", "stop", "go"]
KWS_PREDICTED = {"kws": ["yes", "yes", "down", "stop", "go"], "kws-seed2": ["yes", "no", "up", "go", "go"]}


def store_asr(folder: Path, hypotheses: list[str], ids: list[str] = IDS) -> None:
    rows = ea.asr_rows(ids, REFERENCES[: len(ids)], hypotheses[: len(ids)])
    tone = np.sin(np.arange(8000) / 16000 * 2 * np.pi * 440).astype(np.float32) * 0.1
    write_examples(folder, ExampleSet("asr", "test", rows, listen=[(0, lambda: tone)]))


@pytest.fixture(scope="module")
def speech_root(tmp_path_factory, tiny_checkpoints) -> Path:
    root = tmp_path_factory.mktemp("candidates")
    shutil.copytree(tiny_checkpoints / "asr", root / "asr")
    shutil.copytree(tiny_checkpoints / "asr", root / "asr-twin")  # the same weights under another name
    build_asr(root / "asr-seed2", seed=2)
    build_asr(root / "asr-other-set", seed=3)
    store_asr(root / "asr", HYPOTHESES["asr"])
    store_asr(root / "asr-seed2", HYPOTHESES["asr-seed2"])
    store_asr(root / "asr-other-set", HYPOTHESES["asr"], IDS[:3])
    shutil.copytree(tiny_checkpoints / "kws", root / "kws")
    build_kws(root / "kws-seed2", seed=2)
    for name, predicted in KWS_PREDICTED.items():
        rows = [
            {"id": c, "true": t, "predicted": p, "top3": [[p, 0.9]]}
            for c, t, p in zip(CLIPS, TRUE, predicted, strict=True)
        ]
        write_examples(root / name, ExampleSet("kws", "test", rows))
    return root


@pytest.fixture(scope="module")
def speech_app(speech_root):
    with served(speech_root) as client:
        yield client


def test_one_recording_through_two_models_as_each_alone_transcribes_it(speech_app, speech_root):
    here = Registry(speech_root)
    samples = load_audio(str(CLIP))
    alone = {name: gpu.transcribe(here[name].settled(), samples)[0] for name in ("asr", "asr-seed2")}
    speech_app.predict(handle_file(str(CLIP)), "asr", "asr-seed2", "", api_name="/compare_transcribe")  # loads both
    serving_for_good(speech_app, ["asr", "asr-seed2"])  # (each serves fp32 until its int8 export is in)
    result = speech_app.predict(handle_file(str(CLIP)), "asr", "asr-seed2", "", api_name="/compare_transcribe")
    assert (result["a"]["text"], result["b"]["text"]) == (alone["asr"], alone["asr-seed2"])
    assert result["a"]["source"] == "checkpoint asr" and result["b"]["source"] == "checkpoint asr-seed2"
    assert result["audio_s"] == pytest.approx(len(samples) / 16000, abs=0.01)
    assert result["a"]["rtf"] == pytest.approx(result["a"]["seconds"] / result["audio_s"], abs=0.002)
    # the word-by-word view holds each transcript whole, in order
    assert " ".join(a for kind, a, _ in result["diff"] if kind != "insert") == " ".join(alone["asr"].split())
    assert " ".join(b for kind, _, b in result["diff"] if kind != "delete") == " ".join(alone["asr-seed2"].split())


def test_the_same_weights_agree_word_for_word_and_score_against_a_reference(speech_app):
    speech_app.predict(handle_file(str(CLIP)), "asr", "asr-twin", "", api_name="/compare_transcribe")
    serving_for_good(speech_app, ["asr", "asr-twin"])  # both in the same precision
    result = speech_app.predict(
        handle_file(str(CLIP)), "asr", "asr-twin", "the quick brown fox", api_name="/compare_transcribe"
    )
    assert result["a"]["text"] == result["b"]["text"]
    assert all(kind == "equal" for kind, _, _ in result["diff"])
    assert result["a"]["words"] == 4 and result["a"]["wer"] == result["b"]["wer"]
    assert result["a"]["wer"] == pytest.approx(result["a"]["word_errors"] / 4, abs=1e-4)


def test_stored_evaluations_pair_as_a_hand_computation_says(speech_app):
    result = speech_app.predict("asr", "asr-seed2", api_name="/compare_asr_evaluations")
    # word errors per utterance, hand-counted: A 0, 1, 2, 0 and B 1, 0, 0, 0 over 3, 4, 2, 2 words
    a_errors, b_errors, words = np.array([0, 1, 2, 0]), np.array([1, 0, 0, 0]), np.array([3, 4, 2, 2])
    expected = bootstrap(a_errors, b_errors, words)
    assert result["wer"]["a"] == pytest.approx(3 / 11) and result["wer"]["b"] == pytest.approx(1 / 11)
    assert (result["wer"]["low"], result["wer"]["high"]) == pytest.approx((expected.low, expected.high))
    assert result["utterances"] == 4
    assert result["wer"]["in_words"].startswith(
        "B's WER is lower by 18.2 points (better); a paired bootstrap over the 4 utterances"
    )
    assert [r["id"] for r in result["differing"]] == ["1-1-2", "1-1-0", "1-1-1"]


@pytest.mark.parametrize(
    ("a", "b", "says"),
    [
        (
            "asr",
            "asr-other-set",
            "The two models were evaluated on different utterances (A on 4, B on 3, 3 in common)",
        ),
        ("asr", "asr-twin", "Model B (asr-twin): This model has no per-example results"),
        ("asr", "kws", "“kws” is a keyword spotting model: it cannot be compared on speech recognition."),
        ("asr", "asr", "Choose two different models: “asr” was chosen twice."),
    ],
)
def test_a_comparison_that_cannot_be_made_says_why_in_a_sentence(speech_app, a, b, says):
    with pytest.raises(Exception) as refused:
        speech_app.predict(a, b, api_name="/compare_asr_evaluations")
    assert says in str(refused.value)


def test_the_diff_marks_what_only_one_model_wrote():
    shown = asr_compare.diff_html([["equal", "the", "the"], ["substitute", "cat", "bat"], ["insert", "", "<b>"]])
    assert "the" in shown and "cat → bat" in shown and "+&lt;b&gt;" in shown and "<b>" not in shown.split("</div>")[0]


def test_one_clip_through_two_keyword_models_as_each_alone_scores_it(speech_app, speech_root):
    from ui.kws_scores import clip_scores

    here = Registry(speech_root)
    samples = load_audio(str(CLIP))
    speech_app.predict(handle_file(str(CLIP)), "kws", "kws-seed2", api_name="/compare_spot")  # loads both
    serving_for_good(speech_app, ["kws", "kws-seed2"])
    result = speech_app.predict(handle_file(str(CLIP)), "kws", "kws-seed2", api_name="/compare_spot")
    for which, name in (("a", "kws"), ("b", "kws-seed2")):
        scores = clip_scores(here[name].settled(), samples)[0]
        best = sorted(scores.items(), key=lambda kv: -kv[1])[:5]
        assert [(c["label"], pytest.approx(c["confidence"], abs=1e-4)) for c in result[which]["confidences"]] == best
    assert result["b"]["source"] == "checkpoint kws-seed2"


def test_stored_keyword_evaluations_pair_as_a_hand_computation_says(speech_app):
    result = speech_app.predict("kws", "kws-seed2", api_name="/compare_kws_evaluations")
    assert result["labels"] == ["yes", "no", "up", "down", "stop", "go"]
    assert result["a_matrix"][1] == [1, 0, 0, 0, 0, 0] and result["b_matrix"][1] == [0, 1, 0, 0, 0, 0]
    assert result["accuracy"] == {"a": 0.6, "b": 0.8}
    # only A right on c4; only B on c2, c3: exact two-sided binomial p = 2 * P(X <= 1 | n=3, 1/2) = 1
    assert result["mcnemar"]["only_a"] == 1 and result["mcnemar"]["only_b"] == 2
    assert result["mcnemar"]["p_value"] == pytest.approx(1.0)
    assert result["mcnemar"]["in_words"] == (
        "A alone is right on 1 clip, B alone on 2 (of 5); McNemar's exact test: p = 1 (it could be noise)."
    )
    assert [(d["id"], d["right"]) for d in result["disagreements"]] == [("c2", "B"), ("c3", "B"), ("c4", "A")]


def test_the_difference_matrix_is_green_where_b_does_better():
    from ui.kws_compare import difference_figure

    a, b = np.array([[2, 1], [0, 3]]), np.array([[3, 0], [1, 2]])
    z = difference_figure(["yes", "no"], a, b).data[0].z
    assert np.asarray(z).tolist() == [
        [1, 1],
        [-1, -1],
    ]  # B: one more "yes" right and one fewer wrong; "no" the reverse


@pytest.mark.beside
def test_two_smoke_trained_keyword_runs_compare_as_their_stored_rows_say(smoke_workdir):
    from core.examples import read_examples
    from scripts.make_smoke_data import make_kws_smoke
    from train import kws as train_kws

    make_kws_smoke()
    train_kws.main(["train/configs/kws_smoke.json"])
    checkpoints = smoke_workdir / "outputs" / "smoke" / "checkpoints"
    train_kws.main(["train/configs/kws_smoke.json", "--seed", "2", "--max_steps", "2",
                    "--output_dir", str(checkpoints / "kws-seed2")])  # fmt: skip
    with served(checkpoints) as client:
        result = client.predict("kws", "kws-seed2", api_name="/compare_kws_evaluations")
    a, b = (read_examples(checkpoints / name).rows for name in ("kws", "kws-seed2"))
    right_b = {r["id"]: r["predicted"] == r["true"] for r in b}
    assert result["clips"] == 14
    assert result["mcnemar"]["only_a"] == sum(r["predicted"] == r["true"] and not right_b[r["id"]] for r in a)
    assert result["mcnemar"]["only_b"] == sum(right_b[r["id"]] and r["predicted"] != r["true"] for r in a)
    labels = result["labels"]
    for matrix, rows in ((result["a_matrix"], a), (result["b_matrix"], b)):
        for r in rows:  # every clip in its cell
            assert matrix[labels.index(r["true"])][labels.index(r["predicted"])] >= 1
        assert sum(map(sum, matrix)) == 14
    assert result["accuracy"]["a"] == pytest.approx(sum(r["predicted"] == r["true"] for r in a) / 14)
