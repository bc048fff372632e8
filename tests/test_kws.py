"""Keyword spotting end to end: class weights, learning real (synthetic) keywords from scratch,
generalising to unheard voices, the app's /spot endpoint, evaluation view and live detection."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from gradio_client import Client, handle_file
from transformers import HubertForSequenceClassification

from core.checkpoint import read_metrics
from core.examples import read_examples
from scripts.make_smoke_data import make_kws_smoke
from scripts.tiny_models import hubert_config
from slots.registry import Registry
from speech import keywords, spotting
from tests.card_check import assert_card_matches_metrics
from tests.helpers import recordings
from tests.kws_learned import training_clip, two_words
from train import kws as train_kws
from train.frozen_head import FrozenEncoderHead
from ui import kws as kws_tab


def test_balanced_weights_are_n_over_classes_times_count():
    labels = [0] * 6 + [1] * 3 + [11] * 1  # yes x6, no x3, _unknown_ x1
    weights = keywords.class_weights(labels)
    assert weights[0] == pytest.approx(10 / (3 * 6))
    assert weights[1] == pytest.approx(10 / (3 * 3))
    assert weights[11] == pytest.approx(10 / (3 * 1))
    assert weights[2] == 0.0  # absent from training


def test_the_trainer_optimises_the_weighted_loss():
    weights = keywords.class_weights([0, 0, 0, 1])
    model = torch.nn.Module()
    logits = torch.tensor([[2.0, 0.5] + [0.0] * 10, [0.1, 1.5] + [0.0] * 10, [0.3, 0.2] + [0.0] * 10])
    labels = torch.tensor([0, 1, 1])
    model.forward = lambda input_values: type("Out", (), {"logits": logits})()
    trainer = train_kws.WeightedTrainer.__new__(train_kws.WeightedTrainer)
    trainer.loss = train_kws.WeightedCrossEntropy(weights)
    loss = trainer.compute_loss(model, {"input_values": torch.zeros(3, 10), "labels": labels})
    expected = F.cross_entropy(logits, labels, weight=torch.tensor(weights, dtype=torch.float32))
    assert loss.item() == pytest.approx(expected.item())
    assert loss.item() != pytest.approx(F.cross_entropy(logits, labels).item())

    # A frozen-encoder head computes the same weighted loss itself (so a CUDA graph can hold it).
    config = hubert_config(num_labels=12, classifier_proj_size=4)
    head = FrozenEncoderHead(HubertForSequenceClassification(config), live_encoder=False, loss=trainer.loss)
    hidden = torch.randn(3, 5, config.hidden_size)
    lengths = torch.tensor([5, 3, 4])
    loss = trainer.compute_loss(head, {"hidden": hidden, "frame_lengths": lengths, "labels": labels})
    logits = head(hidden=hidden, frame_lengths=lengths).logits
    expected = F.cross_entropy(logits, labels, weight=torch.tensor(weights, dtype=torch.float32))
    assert loss.item() == pytest.approx(expected.item())


def test_the_headline_names_a_keyword_only_at_the_threshold():
    scores = dict.fromkeys(keywords.LABELS, 0.01)
    assert kws_tab.verdict({**scores, "left": 0.85}, 0.8) == "## left"
    # Below the threshold the best class is a guess: the headline says so, with how close it came.
    assert kws_tab.verdict({**scores, "left": 0.10}, 0.8) == (
        "## No keyword\n<small>closest: left at 10%; a keyword needs 80%</small>"
    )
    assert "## No keyword\n<small>closest: silence at 95%" in kws_tab.verdict({**scores, "_silence_": 0.95}, 0.8)
    assert "closest: another word" in kws_tab.verdict({**scores, "_unknown_": 0.9}, 0.8)
    # A longer clip: the keywords a listener logged decide, not one window's best class.
    logged = [spotting.Detection(1.0, "yes", 0.83), spotting.Detection(3.5, "stop", 0.97)]
    assert kws_tab.verdict({**scores, "go": 0.99}, 0.8, logged) == "## stop"
    assert kws_tab.verdict({**scores, "go": 0.99}, 0.8, []).startswith("## No keyword")


def test_learns_keywords_and_generalises_to_unheard_voices(learned_kws):
    _, checkpoints = learned_kws
    metrics = read_metrics(checkpoints / "kws")
    assert metrics["final"]["validation"]["accuracy"] >= 0.85  # held-out utterances, training voices
    assert metrics["final"]["test"]["recall_macro"] >= 0.65  # voices never heard (chance: 1/12)
    assert np.array(metrics["final"]["test"]["confusion_matrix"]).shape == (12, 12)
    counts = metrics["extra"]["class_counts"]
    assert counts["_unknown_"] == 120 and counts["yes"] == 20 and counts["_silence_"] == 60
    assert metrics["extra"]["class_weights"]["yes"] == pytest.approx(380 / (12 * 20))


def test_app_spots_keywords_through_the_api(learned_kws, launch):
    root, checkpoints = learned_kws
    client = Client(launch(checkpoints), verbose=False)
    for word in ("yes", "stop", "left"):
        result = client.predict(handle_file(training_clip(root, word)), api_name="/spot")
        assert result["label"] == word
        assert result["confidences"][0]["label"] == word and result["confidences"][0]["confidence"] > 0.5
        assert len(result["confidences"]) == 5


def test_the_tabs_example_clips_say_their_words(learned_kws):
    _, checkpoints = learned_kws
    loaded = Registry(checkpoints)["kws"].get()
    words = [Path(p).name.split("_")[0] for p in kws_tab.EXAMPLES]
    assert words == ["left", "off", "stop", "yes"]
    for word, clip in zip(words, kws_tab.EXAMPLES, strict=True):  # made as the training clips are
        scores = kws_tab.clip_scores(loaded, kws_tab.audio_or_error(clip))[0]
        assert max(scores, key=scores.get) == word


def test_evaluation_view_renders_from_metrics_json(learned_kws):
    _, checkpoints = learned_kws
    metrics = read_metrics(checkpoints / "kws")
    summary, matrix, per_class, freq, loss = kws_tab.evaluation(metrics, normalise=True)
    assert "test accuracy" in summary and "| train clips | 380 |" in summary
    assert "| test precision (micro) |" in summary and "precision_micro" not in summary
    z = np.array(matrix.data[0].z)
    assert z.shape == (12, 12)
    np.testing.assert_allclose(z.sum(axis=1)[z.sum(axis=1) > 0], 1.0)
    cells = np.array(metrics["final"]["test"]["confusion_matrix"])
    i = int(np.argmax(cells.sum(axis=1)))  # a row with clips: its diagonal cell reads "n of N clips (p%)"
    assert (
        matrix.data[0].customdata[i][i]
        == f"{cells[i, i]} of {cells[i].sum()} clips ({cells[i, i] / cells[i].sum():.0%})"
    )
    assert matrix.data[0].text[i][i] == (f"{cells[i, i] / cells[i].sum():.0%}" if cells[i, i] else "")
    counts = kws_tab.evaluation(metrics, normalise=False)[1].data[0].z
    assert np.array(counts).sum() == metrics["dataset_sizes"]["test"]
    assert list(per_class["class"]) == list(keywords.LABELS)
    assert dict(zip(freq.data[0].x, freq.data[0].y, strict=True))["_unknown_"] == 120
    assert {t.name for t in loss.data} == {"training loss", "validation loss"}


def test_each_confusion_cell_lists_its_clips_as_the_app_hears_them(learned_kws, launch):
    root, checkpoints = learned_kws
    examples = read_examples(checkpoints / "kws")
    metrics = read_metrics(checkpoints / "kws")
    assert examples.split == "test" and len(examples.rows) == metrics["dataset_sizes"]["test"]
    matrix = np.array(metrics["final"]["test"]["confusion_matrix"])
    client = Client(launch(checkpoints), verbose=False)
    confused = client.predict("", "", api_name="/kws_errors")["confused"]
    assert confused  # voices never heard: some mistakes
    for pair in confused:  # the pairs are the matrix's largest off-diagonal cells
        assert pair["count"] == matrix[keywords.LABEL2ID[pair["true"]], keywords.LABEL2ID[pair["predicted"]]]
    off_diagonal = matrix - np.diag(np.diag(matrix))
    assert confused[0]["count"] == off_diagonal.max()

    top = confused[0]
    clips = client.predict(top["true"], top["predicted"], api_name="/kws_errors")["clips"]
    assert len(clips) == top["count"]
    for clip in clips:
        assert (clip["true"], clip["predicted"], clip["audio"]) == (top["true"], top["predicted"], True)
        source = root / "test" / clip["id"]  # the id is the clip's place in the official test tree
        assert source.parent.name == top["true"]
        assert client.predict(handle_file(str(source)), api_name="/spot")["label"] == top["predicted"]
        stored, _ = sf.read(examples.audio_path(next(r for r in examples.rows if r["id"] == clip["id"])))
        np.testing.assert_allclose(stored, train_kws.fit_clip(sf.read(source, dtype="float32")[0]), atol=2**-14)
    # Every mistake's audio is stored, and three correct clips of each class that has them.
    wrong = int(off_diagonal.sum())
    correct = sum(min(3, int(matrix[i, i])) for i in range(len(keywords.LABELS)))
    assert examples.audio == {**examples.audio, "stored": wrong + correct, "left_out": 0}


def test_long_clip_gets_a_timeline_with_the_words_a_listener_would_log(learned_kws):
    root, checkpoints = learned_kws
    loaded = Registry(checkpoints)["kws"].get()
    stream = two_words(root)
    listener = spotting.Listener()
    for start in range(0, len(stream), 4_000):
        listener.push(loaded.model, loaded.processor, 16_000, stream[start : start + 4_000], 0.8)
    live = [(d.label, d.time_s) for d in listener.detections]
    scores, figure, found = kws_tab.spot(loaded, stream, threshold=0.8)
    assert [(d.label, d.time_s) for d in found] == live and [label for label, _ in live] == ["yes", "stop"]
    assert max(scores, key=scores.get) in ("yes", "stop")
    # The waveform (two envelope lines) spans the clip; the spotted words sit on it at their times.
    high, low, spotted, *lines = figure.data
    assert high.x[-1] == pytest.approx(6.0, abs=0.02) and min(low.y) < 0 < max(high.y)
    assert list(spotted.text) == ["yes", "stop"] and list(spotted.x) == [t for _, t in live]
    assert {"yes", "stop"} <= {t.name for t in lines} and all(len(t.x) >= 20 for t in lines)
    headline, _, line, _ = kws_tab.spot_input(loaded, (16_000, stream))
    strongest = max(found, key=lambda d: d.probability).label
    assert headline == f"## {strongest}"  # the headline is a keyword logged, as the timeline says
    assert f"**yes** at {live[0][1]:.2f} s" in line and f"**stop** at {live[1][1]:.2f} s" in line
    # A clip of one window has no timeline.
    assert kws_tab.spot(loaded, stream[16_000:32_000])[1:] == (None, [])


@pytest.mark.beside
def test_smoke_config_writes_a_checkpoint_the_app_serves(smoke_workdir, launch):
    tmp_path = smoke_workdir
    make_kws_smoke()
    train_kws.main(["train/configs/kws_smoke.json"])
    checkpoints = tmp_path / "outputs" / "smoke" / "checkpoints"
    metrics = read_metrics(checkpoints / "kws")
    assert_card_matches_metrics(checkpoints / "kws", None, "audio-classification", "kws_smoke.json")
    assert np.array(metrics["final"]["test"]["confusion_matrix"]).shape == (12, 12)
    assert metrics["dataset_sizes"]["test"] == 14  # 12 spoken words + 2 silence clips
    clip = tmp_path / "outputs" / "smoke" / "speech_commands_test" / "yes"
    result = Client(launch(checkpoints), verbose=False).predict(
        handle_file(str(next(clip.glob("*.wav")))), api_name="/spot"
    )
    assert result["label"] in keywords.LABELS
    assert sum(c["confidence"] for c in result["confidences"]) <= 1.0 + 1e-6
    # The report's other remedies: no silence at all, or a balanced sampler.
    train_kws.main(
        ["train/configs/kws_smoke.json", "--drop_silence", "true", "--balanced_sampler", "true", "--max_steps", "2"]
    )
    metrics = read_metrics(checkpoints / "kws")
    assert metrics["extra"]["class_counts"]["_silence_"] == 0
    assert metrics["dataset_sizes"]["test"] == 12
    # The audio stored for error analysis stays under its cap, and says what it left out.
    train_kws.main(["train/configs/kws_smoke.json", "--max_steps", "2", "--examples_audio_mb", "0.05"])
    audio = read_examples(checkpoints / "kws").audio
    assert 0 < audio["bytes"] <= 0.05 * 2**20 and audio["cap_bytes"] == int(0.05 * 2**20)
    assert audio["stored"] > 0 and audio["left_out"] > 0 and audio["stored"] + audio["left_out"] == 14
    assert read_metrics(checkpoints / "kws")["extra"]["examples"]["audio"] == audio
    train_kws.main(["train/configs/kws_smoke.json", "--max_steps", "2", "--examples", "false"])
    assert read_examples(checkpoints / "kws") is None


@pytest.mark.browser
def test_browser_records_a_keyword_and_probabilities_appear(learned_kws, launch, tmp_path, monkeypatch):
    from scripts.screenshot import open_page
    from speech.audio import resample

    root, checkpoints = learned_kws
    yes, _ = sf.read(training_clip(root, "yes"), dtype="float32")
    mic = tmp_path / "mic.wav"
    sf.write(
        mic,
        np.concatenate([np.zeros(4_410, np.float32), resample(yes, 16_000, 44_100), np.zeros(44_100 * 3, np.float32)]),
        44_100,
        subtype="PCM_16",
    )
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    with open_page(launch(checkpoints), fake_microphone=str(mic)) as page:
        page.get_by_role("tab", name="Keyword spotting").click()
        page.get_by_text("About this model").first.wait_for()
        record = page.get_by_role("button", name="Record").first
        record.click()
        page.wait_for_timeout(1500)
        with page.expect_response(lambda r: "/upload" in r.url and r.ok):
            page.get_by_role("button", name="Stop").first.click()
        page.get_by_role("button", name="Spot").click()
        page.get_by_text("s of audio classified in").wait_for()
        shown = page.locator("#kws-verdict").inner_text().strip()
    recorded = recordings(tmp_path / "uploads")
    assert len(recorded) == 1
    headline, _, _, _ = kws_tab.spot_input(Registry(checkpoints)["kws"].get(), str(recorded[0]))
    assert shown.splitlines()[0] == headline.splitlines()[0].removeprefix("## ")  # the model's verdict


@pytest.mark.browser
def test_browser_picks_a_confused_pair_and_plays_its_clips(learned_kws, launch):
    from playwright.sync_api import expect

    from scripts.screenshot import open_page

    _, checkpoints = learned_kws
    rows = read_examples(checkpoints / "kws").rows
    with open_page(launch(checkpoints), height=1600) as page:
        page.get_by_role("tab", name="Keyword spotting").click()
        page.get_by_role("tab", name="Evaluation").click()
        pairs = page.get_by_label("Most confused pairs (select one)")
        second = pairs.get_by_role("row").nth(2)  # header, then the most confused pair, then the next
        true, predicted = (second.get_by_role("gridcell").nth(i).inner_text().strip() for i in (0, 1))
        second.get_by_role("gridcell").first.click()
        expected = [r["id"] for r in rows if r["true"] == true and r["predicted"] == predicted]
        expect(page.get_by_text(f"of {true} predicted as {predicted}")).to_be_visible()
        for clip in expected[:8]:
            expect(page.get_by_text(clip, exact=False)).to_be_visible()
        player = page.locator("[data-testid='waveform-Listen']").first
        expect(player).to_have_text(re.compile(r"^\s*0:00\s+0:01"))  # a 1 s clip, not yet played
        player.get_by_role("button", name="Play", exact=True).click()
        expect(player).to_have_text(re.compile(r"^\s*0:01\s+0:01"), timeout=15_000)  # the clock ran: it played
        # judged as deployed: the curve, the false alarms to play, and the Live tab starting at the
        # operating point with what it means
        streaming = read_metrics(checkpoints / "kws")["extra"]["streaming"]
        point = streaming["operating_point"]["threshold"]
        expect(page.get_by_text(f"Operating point {point:.2f}", exact=False)).to_be_visible()
        curve = page.locator(".block", has=page.get_by_text("Missed keywords against false alarms per hour"))
        expect(curve.locator(".js-plotly-plot").first).to_be_visible()
        alarms = read_examples(checkpoints / "kws").alarms
        top = max(alarms, key=lambda a: a["up_to"])
        expect(page.get_by_text(f"at {top['time_s']:.2f} s, probability", exact=False).first).to_be_visible()
        page.get_by_role("tab", name="Live").click()
        expect(page.get_by_label("number input for Threshold")).to_have_value(f"{point:g}")
        expect(page.get_by_text(f"The threshold starts at {point:.2f}", exact=False)).to_be_visible()
        own = page.get_by_label("Each keyword's own threshold, from the evaluation")
        expect(own).to_be_checked()  # the evaluation chose them: on, and the slider steps aside
        expect(page.get_by_label("number input for Threshold")).to_be_disabled()
        own.uncheck()
        expect(page.get_by_label("number input for Threshold")).to_be_enabled()
