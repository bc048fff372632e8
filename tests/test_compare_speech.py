"""Compare any two speech candidates in the app: the same recording through both, and their stored
evaluations paired, through the API as a client calls it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

from core.examples import ExampleSet, write_examples
from core.paired import bootstrap
from scripts.tiny_models import build_asr, build_kws
from serving import gpu
from slots.registry import Registry
from speech import error_analysis as ea
from speech.audio import load_audio
from ui import asr_compare

CLIP = Path(__file__).resolve().parents[1] / "assets" / "asr" / "pangram_en-us.wav"
IDS = ["1-1-0", "1-1-1", "1-1-2", "1-1-3"]
REFERENCES = ["THE CAT SAT", "A DOG RAN FAR", "RED FISH", "BLUE SKY"]
HYPOTHESES = {
    "asr": ["the cat sat", "a dog ran", "bed dish", "blue sky"],
    "asr-seed2": ["THE BAT SAT", "A DOG RAN FAR", "RED FISH", "BLUE SKY"],
}


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
    return root


@pytest.fixture(scope="module")
def client(speech_root):
    import app
    from tests.helpers import free_port

    demo = app.build_app(app.open_registry(speech_root, preload=False))
    port = free_port()
    app.serve(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    demo.close()


def test_one_recording_through_two_models_as_each_alone_transcribes_it(client, speech_root):
    here = Registry(speech_root)
    samples = load_audio(str(CLIP))
    alone = {name: gpu.transcribe(here[name].settled(), samples)[0] for name in ("asr", "asr-seed2")}
    result = client.predict(handle_file(str(CLIP)), "asr", "asr-seed2", "", api_name="/compare_transcribe")
    assert (result["a"]["text"], result["b"]["text"]) == (alone["asr"], alone["asr-seed2"])
    assert result["a"]["source"] == "checkpoint asr" and result["b"]["source"] == "checkpoint asr-seed2"
    assert result["audio_s"] == pytest.approx(len(samples) / 16000, abs=0.01)
    assert result["a"]["rtf"] == pytest.approx(result["a"]["seconds"] / result["audio_s"], abs=0.002)
    # the word-by-word view holds each transcript whole, in order
    assert " ".join(a for kind, a, _ in result["diff"] if kind != "insert") == " ".join(alone["asr"].split())
    assert " ".join(b for kind, _, b in result["diff"] if kind != "delete") == " ".join(alone["asr-seed2"].split())


def test_the_same_weights_agree_word_for_word_and_score_against_a_reference(client):
    result = client.predict(
        handle_file(str(CLIP)), "asr", "asr-twin", "the quick brown fox", api_name="/compare_transcribe"
    )
    assert result["a"]["text"] == result["b"]["text"]
    assert all(kind == "equal" for kind, _, _ in result["diff"])
    assert result["a"]["words"] == 4 and result["a"]["wer"] == result["b"]["wer"]
    assert result["a"]["wer"] == pytest.approx(result["a"]["word_errors"] / 4, abs=1e-4)


def test_stored_evaluations_pair_as_a_hand_computation_says(client):
    result = client.predict("asr", "asr-seed2", api_name="/compare_asr_evaluations")
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
def test_a_comparison_that_cannot_be_made_says_why_in_a_sentence(client, a, b, says):
    with pytest.raises(Exception) as refused:
        client.predict(a, b, api_name="/compare_asr_evaluations")
    assert says in str(refused.value)


def test_the_diff_marks_what_only_one_model_wrote():
    shown = asr_compare.diff_html([["equal", "the", "the"], ["substitute", "cat", "bat"], ["insert", "", "<b>"]])
    assert "the" in shown and "cat → bat" in shown and "+&lt;b&gt;" in shown and "<b>" not in shown.split("</div>")[0]
