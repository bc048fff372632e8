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

from core import keywords, spotting
from core.checkpoint import read_metrics
from core.examples import read_examples
from core.slots import Registry
from scripts.make_smoke_data import UNKNOWN_WORDS, make_kws_smoke, speech_commands_tree, tiny_hubert
from tasks import kws as kws_tab
from tests.card_check import assert_card_matches_metrics
from tests.helpers import HeldRecorder, no_sound_note, record_until_heard, recordings
from tests.tiny_models import hubert_config
from train import kws as train_kws
from train.frozen_head import FrozenEncoderHead

TRAIN_VOICES = ["en-us+m1", "en-us+m3", "en-us+m7", "en-us+f1", "en-us+f3"]
UNHEARD_VOICES = ["en-gb+m2", "en-gb+f2", "en-us+m5"]
LEARN = [
    "--freeze", "none", "--silence_clips", "60", "--max_steps", "800", "--warmup_steps", "40",
    "--per_device_train_batch_size", "16", "--learning_rate", "1e-3", "--max_grad_norm", "1.0",
    "--eval_steps", "200", "--logging_steps", "100",
]  # fmt: skip


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


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A tiny Hubert trained from scratch on espeak-ng keywords (~1 min on 2 CPU cores)."""
    root = tmp_path_factory.mktemp("kws")
    words = list(keywords.KEYWORDS) + UNKNOWN_WORDS
    variants = {
        "train": [(v, s, p) for v in TRAIN_VOICES for s in (130, 175) for p in (30, 70)],
        "validation": [(v, 150, 50) for v in TRAIN_VOICES],
    }
    unheard = [(v, s, 50) for v in UNHEARD_VOICES for s in (140, 165)]
    speech_commands_tree(root / "tree", words, variants, noise_files=3, test_dir=root / "test", test_variants=unheard)
    tiny_hubert(root / "encoder")
    checkpoints = root / "checkpoints"
    train_kws.main(
        [
            "train/configs/kws_smoke.json",
            "--model_name_or_path",
            str(root / "encoder"),
            "--data_dir",
            str(root / "tree"),
            "--test_dir",
            str(root / "test"),
            "--output_dir",
            str(checkpoints / "kws"),
            "--run_dir",
            str(root / "run"),
            *LEARN,
        ]
    )
    return root, checkpoints


def test_learns_keywords_and_generalises_to_unheard_voices(learned):
    _, checkpoints = learned
    metrics = read_metrics(checkpoints / "kws")
    assert metrics["final"]["validation"]["accuracy"] >= 0.85  # held-out utterances, training voices
    assert metrics["final"]["test"]["recall_macro"] >= 0.65  # voices never heard (chance: 1/12)
    assert np.array(metrics["final"]["test"]["confusion_matrix"]).shape == (12, 12)
    counts = metrics["extra"]["class_counts"]
    assert counts["_unknown_"] == 120 and counts["yes"] == 20 and counts["_silence_"] == 60
    assert metrics["extra"]["class_weights"]["yes"] == pytest.approx(380 / (12 * 20))


def _clip(root, word: str, voice: str = "en-us+m3") -> str:
    """A training clip: these tests check the app's plumbing, the learning test generalisation."""
    return str(next((root / "tree" / word).glob(f"{voice.replace('+', '-')}-130-70_*.wav")))


def test_app_spots_keywords_through_the_api(learned, launch):
    root, checkpoints = learned
    client = Client(launch(checkpoints), verbose=False)
    for word in ("yes", "stop", "left"):
        result = client.predict(handle_file(_clip(root, word)), api_name="/spot")
        assert result["label"] == word
        assert result["confidences"][0]["label"] == word and result["confidences"][0]["confidence"] > 0.5
        assert len(result["confidences"]) == 5


def test_the_tabs_example_clips_say_their_words(learned):
    _, checkpoints = learned
    loaded = Registry(checkpoints)["kws"].get()
    words = [Path(p).name.split("_")[0] for p in kws_tab.EXAMPLES]
    assert words == ["left", "off", "stop", "yes"]
    for word, clip in zip(words, kws_tab.EXAMPLES, strict=True):  # made as the training clips are
        scores = kws_tab.clip_scores(loaded, kws_tab.audio_or_error(clip))[0]
        assert max(scores, key=scores.get) == word


def test_evaluation_view_renders_from_metrics_json(learned):
    _, checkpoints = learned
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


def test_each_confusion_cell_lists_its_clips_as_the_app_hears_them(learned, launch):
    root, checkpoints = learned
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


def voiced_centre_s(samples: np.ndarray) -> float:
    """Middle of the part of a clip louder than -30 dB below its peak (espeak pads with silence)."""
    loud = np.flatnonzero(np.abs(samples) > np.abs(samples).max() * 10 ** (-30 / 20))
    return (loud[0] + loud[-1]) / 2 / 16_000


def two_words(root) -> np.ndarray:
    """6 s of a quiet room (not digital silence) with "yes" spoken at 1.0 s and "stop" at 3.5 s."""
    from scripts.make_smoke_data import noise

    yes, _ = sf.read(_clip(root, "yes"), dtype="float32")
    stop, _ = sf.read(_clip(root, "stop"), dtype="float32")
    stream = 0.1 * noise(6.0, seed=7)
    stream[16_000 : 16_000 + len(yes)] += yes
    stream[int(3.5 * 16_000) : int(3.5 * 16_000) + len(stop)] += stop
    return stream


def test_live_listening_logs_each_spoken_keyword_once_at_its_time(learned):
    root, checkpoints = learned
    loaded = Registry(checkpoints)["kws"].get()
    yes, _ = sf.read(_clip(root, "yes"), dtype="float32")
    stop, _ = sf.read(_clip(root, "stop"), dtype="float32")
    stream = two_words(root)
    from core.audio import resample

    pcm = (resample(stream, 16_000, 48_000) * 32767).astype(np.int16)  # as the browser sends it
    listener = spotting.Listener()
    for start in range(0, len(pcm), 12_000):  # 250 ms chunks
        listener, log, _, level = kws_tab.listen(loaded, listener, (48_000, pcm[start : start + 12_000]), 0.8)
    found = [(d.label, d.time_s) for d in listener.detections]
    assert [label for label, _ in found] == ["yes", "stop"], found
    centres = {"yes": 1.0 + voiced_centre_s(yes), "stop": 3.5 + voiced_centre_s(stop)}
    for label, t in found:  # the window that fired is centred on the word, within half a window
        assert abs(t - centres[label]) <= 0.5, (label, t, centres[label])
    assert len(listener.buffer) < 16_000 + 12_000  # only the newest audio is kept
    assert level.startswith("Input level `") and level.endswith(" dBFS")  # the quiet room, audible
    assert "too quiet" not in level and "░" in level
    # A weak word never reaches a high threshold: the log says how close the best one came.
    listener = None
    for start in range(0, len(pcm), 12_000):
        listener, log, _, _ = kws_tab.listen(loaded, listener, (48_000, pcm[start : start + 12_000]), 0.999)
    label, p = listener.closest
    assert listener.detections == [] and label in ("yes", "stop") and 0.5 < p < 0.999
    assert log == (
        f"(listening: nothing above the 1.00 threshold yet; the closest was “{label}” at {p:.2f}. "
        "Speak closer, or lower the threshold.)"
    )


def test_live_listening_across_unheard_audio_keeps_times_since_record(learned):
    # A busy server drops chunks: the second of audio from 2.25 s never arrives. The listener
    # skips it, so "stop" is logged at its time since Record, not a second early.
    root, checkpoints = learned
    loaded = Registry(checkpoints)["kws"].get()
    stop, _ = sf.read(_clip(root, "stop"), dtype="float32")
    pcm = (two_words(root) * 32767).astype(np.int16)
    listener = None
    for start in range(0, len(pcm), 4_000):  # 250 ms chunks
        if 36_000 <= start < 52_000:
            continue  # never arrived
        missing = 1.0 if start == 52_000 else 0.0
        listener, _, _, _ = kws_tab.listen(loaded, listener, (16_000, pcm[start : start + 4_000]), 0.8, missing)
    found = {d.label: d.time_s for d in listener.detections}
    assert set(found) == {"yes", "stop"} and listener.missed_s == 1.0
    assert abs(found["stop"] - (3.5 + voiced_centre_s(stop))) <= 0.5, found
    # Below `live.GAP_S` (network jitter) nothing is skipped.
    listener = spotting.Listener()
    kws_tab.listen(loaded, listener, (16_000, pcm[:4_000]), 0.8, 0.2)
    assert listener.missed_s == 0.0 and listener.buffer_start == 0


def test_long_clip_gets_a_timeline_with_the_words_a_listener_would_log(learned):
    root, checkpoints = learned
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
    _, line, _ = kws_tab.spot_input(loaded, (16_000, stream))
    assert f"**yes** at {live[0][1]:.2f} s" in line and f"**stop** at {live[1][1]:.2f} s" in line
    # A clip of one window has no timeline.
    assert kws_tab.spot(loaded, stream[16_000:32_000])[1:] == (None, [])


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


def test_digital_silence_never_fires(learned):
    _, checkpoints = learned
    loaded = Registry(checkpoints)["kws"].get()
    listener = None
    for _ in range(12):
        listener, log, _, level = kws_tab.listen(loaded, listener, (16_000, np.zeros(4_000, np.int16)), 0.3)
    assert listener.detections == [] and log == "(listening: say one of the keywords)"
    assert level == "Input level `░░░░░░░░░░░░` silence · too quiet to score"


@pytest.mark.browser
def test_browser_records_a_keyword_and_probabilities_appear(learned, launch, tmp_path, monkeypatch):
    from core.audio import resample
    from scripts.screenshot import open_page

    root, checkpoints = learned
    yes, _ = sf.read(_clip(root, "yes"), dtype="float32")
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
        page.get_by_text("serving").first.wait_for()
        record = page.get_by_role("button", name="Record").first
        record.click()
        page.wait_for_timeout(1500)
        with page.expect_response(lambda r: "/upload" in r.url and r.ok):
            page.get_by_role("button", name="Stop").first.click()
        page.get_by_role("button", name="Spot").click()
        page.get_by_text("s of audio classified in").wait_for()
        shown = page.locator("[data-testid='label-output-value']").first.inner_text().strip()
    recorded = recordings(tmp_path / "uploads")
    assert len(recorded) == 1
    expected, _, _ = kws_tab.spot_input(Registry(checkpoints)["kws"].get(), str(recorded[0]))
    assert shown == max(expected, key=expected.get)  # the page shows the model's top keyword


@pytest.mark.browser
def test_browser_picks_a_confused_pair_and_plays_its_clips(learned, launch):
    from playwright.sync_api import expect

    from scripts.screenshot import open_page

    _, checkpoints = learned
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
        expect(player).to_have_text(re.compile(r"^\s*0:01\s+0:01"), timeout=5_000)  # the clock ran: it played


@pytest.mark.browser
def test_browser_live_listening_logs_the_spoken_keyword_and_shows_the_input_level(learned, launch, tmp_path):
    from core.audio import resample
    from scripts.screenshot import open_page

    root, checkpoints = learned
    yes, _ = sf.read(_clip(root, "yes"), dtype="float32")
    mic = tmp_path / "mic.wav"  # Chromium loops it: "yes", then 2 s of a quiet room
    room = 0.1 * np.random.default_rng(3).normal(0, 0.05, 2 * 44_100).astype(np.float32)
    sf.write(mic, np.concatenate([resample(yes, 16_000, 44_100), room]), 44_100, subtype="PCM_16")
    with open_page(launch(checkpoints), fake_microphone=str(mic)) as page:
        page.get_by_role("tab", name="Keyword spotting").click()
        page.get_by_text("serving").first.wait_for()
        recorder = HeldRecorder(page)  # a slow connection: Record before the recorder's scripts arrive
        page.get_by_role("tab", name="Live").click()
        page.get_by_text("Say one of:").wait_for()
        page.get_by_role("button", name="Record").first.click()
        no_sound_note(page).wait_for()  # the page says nothing arrives, and what to do
        recorder.assert_held()
        assert not page.get_by_text("Input level").count()
        recorder.release()
        page.get_by_role("button", name="Stop").first.click()
        record_until_heard(page, lambda: page.get_by_text("Input level").count() > 0)
        log = page.locator("label:has-text('Detections') textarea")
        page.wait_for_function(
            "(el) => /\\byes\\b/.test(el.value) && !el.value.startsWith('(')", arg=log.element_handle(), timeout=30_000
        )
        # The level bar follows the microphone: it fills while the word plays.
        page.get_by_text(re.compile(r"Input level █+░* -\d+ dBFS")).first.wait_for(timeout=15_000)
        level = page.get_by_text("Input level").first.inner_text()
        page.get_by_role("button", name="Stop").first.click()
        lines = log.input_value().splitlines()
    # One line per spoken "yes" (the loop repeats it), each with its time and probability.
    assert lines and all(re.fullmatch(r"\s*\d+\.\d\d s  yes\s+0\.\d\d", line) for line in lines), lines
    assert re.fullmatch(r"Input level [█░]{12} (-\d+ dBFS|silence).*", level), level
