"""Speech recognition end to end: train.asr learns real (synthetic) speech, the checkpoint it
publishes is served by the app, through gradio_client and in a real browser with a microphone."""

from __future__ import annotations

import json

import jiwer
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file

from core.checkpoint import read_metrics
from core.examples import read_examples
from scripts.make_smoke_data import SENTENCES, make_asr_smoke
from speech.ctc import normalize_transcript
from tests.card_check import assert_card_matches_metrics
from tests.helpers import held_recorder, no_sound_note, record_until_heard, recordings
from tests.learned import ASR_SENTENCES
from train import asr as train_asr
from ui import asr as asr_tab

UTTERANCES = [SENTENCES[i] for i in ASR_SENTENCES]


def test_training_overfits_four_utterances_to_exact_transcripts(learned_asr):
    _, checkpoints = learned_asr
    metrics = read_metrics(checkpoints / "asr")
    assert metrics["final"]["test"]["cer"] == 0.0 and metrics["final"]["test"]["wer"] == 0.0
    assert metrics["dataset_sizes"] == {"train": 4, "validation": 4, "test": 4}
    evals = [row for row in metrics["history"] if "eval_wer" in row]
    assert [row["step"] for row in evals] == [250, 500, 750, 1000]
    assert evals[0]["eval_loss"] > evals[-1]["eval_loss"]
    examples = read_examples(checkpoints / "asr")  # each test utterance, as transcribed in the final evaluation
    assert sorted(r["reference"] for r in examples.rows) == sorted(UTTERANCES)
    assert all(r["hypothesis"] == r["reference"] and r["wer"] == 0 for r in examples.rows)
    assert examples.audio["stored"] == 0  # only utterances with errors are worth hearing
    vocab = json.loads((checkpoints / "asr" / "vocab.json").read_text())
    assert vocab["[PAD]"] == 0 and vocab["|"] == 2 and set("thequickbrownfox") <= set(vocab)


def test_app_transcribes_the_learned_utterances(learned_asr, launch):
    root, checkpoints = learned_asr
    client = Client(launch(checkpoints), verbose=False)
    for i, text in enumerate(UTTERANCES):
        clip = root / "librispeech" / "test-clean" / "19" / "198" / f"19-198-{i:04d}.flac"
        assert client.predict(handle_file(str(clip)), api_name="/transcribe") == text


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_writes_the_transcripts_fp32_writes(learned_asr, monkeypatch, precision):
    """The GPU path's precision (run here on the CPU, the same code): the learned utterances'
    transcripts and word times exactly as in fp32."""
    from serving import gpu
    from slots.registry import Registry

    root, checkpoints = learned_asr
    monkeypatch.setenv("SERVE_DEVICE", "cpu")
    monkeypatch.setenv("SERVE_PRECISION", "fp32")
    reference = Registry(checkpoints)["asr"].get()
    monkeypatch.setenv("SERVE_PRECISION", precision)
    half = Registry(checkpoints)["asr"].get()
    assert half.precision == f"{precision} (torch, cpu)"
    for i, text in enumerate(UTTERANCES):
        clip = root / "librispeech" / "test-clean" / "19" / "198" / f"19-198-{i:04d}.flac"
        samples, _ = sf.read(clip, dtype="float32")
        said, words = gpu.transcribe(reference, samples)
        assert said == text and gpu.transcribe(half, samples) == (text, words)


def test_stereo_48k_int32_and_float64_input_just_work(learned_asr, tmp_path, launch):
    root, checkpoints = learned_asr
    samples, rate = sf.read(root / "librispeech" / "test-clean" / "19" / "198" / "19-198-0000.flac")
    from speech.audio import resample

    up = resample(samples.astype(np.float32), rate, 48_000)
    stereo = tmp_path / "stereo48k.wav"
    sf.write(stereo, np.stack([up, up], axis=1), 48_000, subtype="PCM_32")
    client = Client(launch(checkpoints), verbose=False)
    assert client.predict(handle_file(str(stereo)), api_name="/transcribe") == UTTERANCES[0]
    from slots.registry import Registry

    loaded = Registry(checkpoints)["asr"].get()
    text, timing, words = asr_tab.transcribe_input(loaded, (48_000, np.stack([up, up], axis=1).astype(np.float64)))
    assert text == UTTERANCES[0] and "s of audio transcribed in" in timing
    # Word timestamps: the same words, in order, inside the clip.
    timed = client.predict(handle_file(str(stereo)), api_name="/transcribe_words")
    assert timed["text"] == text and [w["text"] for w in timed["words"]] == text.split()
    ends = [(w["start_s"], w["end_s"]) for w in timed["words"]]
    assert all(0 <= a < b <= len(samples) / rate + 0.02 for a, b in ends) and ends == sorted(ends)
    assert asr_tab.words_table(words)["word"].tolist() == text.split()


def test_bad_upload_gets_a_clear_error_and_the_app_keeps_serving(learned_asr, tmp_path, launch):
    root, checkpoints = learned_asr
    client = Client(launch(checkpoints), verbose=False)
    junk = tmp_path / "notes.wav"
    junk.write_text("not audio")
    with pytest.raises(Exception, match="'notes.wav' is not an audio file this app can read"):
        client.predict(handle_file(str(junk)), api_name="/transcribe")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16_000, np.int16), 16_000)
    with pytest.raises(Exception, match="The audio is silent"):
        client.predict(handle_file(str(silent)), api_name="/transcribe")
    clip = root / "librispeech" / "test-clean" / "19" / "198" / "19-198-0001.flac"
    assert client.predict(handle_file(str(clip)), api_name="/transcribe") == UTTERANCES[1]


def test_results_panel_reads_metrics_json(learned_asr):
    _, checkpoints = learned_asr
    summary, loss_fig, wer_fig = asr_tab.results(read_metrics(checkpoints / "asr"))
    assert "| test WER | 0.0% |" in summary and "| train utterances | 4 |" in summary  # whole numbers as such
    assert "| batch size per device | 4 |" in summary and "per_device_train_batch_size" not in summary
    assert {t.name for t in loss_fig.data} == {"training loss", "validation loss"}
    assert list(wer_fig.data[0].x) == [250, 500, 750, 1000]
    assert asr_tab.results(None)[0] == "No model is loaded, so there is no evaluation to show."


@pytest.mark.beside
def test_smoke_config_writes_a_checkpoint_the_app_serves(smoke_workdir, launch):
    tmp_path = smoke_workdir
    make_asr_smoke()
    train_asr.main(["train/configs/asr_smoke.json", "--max_duration_s", "2.1"])
    checkpoints = tmp_path / "outputs" / "smoke" / "checkpoints"
    metrics = read_metrics(checkpoints / "asr")
    assert metrics["final"]["test"]["wer"] >= 0.0 and "cer" in metrics["final"]["validation"]
    assert metrics["hyperparameters"]["max_steps"] == 6
    # "keep calm and carry on" (2.2 s) is longer than 2.1 s: dropped and counted.
    assert metrics["extra"]["dropped_long"]["train"] == 1 and metrics["dataset_sizes"]["train"] == 3
    assert_card_matches_metrics(
        checkpoints / "asr",
        None,  # a local encoder is no hub base_model
        "automatic-speech-recognition",
        "train/configs/asr_smoke.json --max_duration_s 2.1",
    )
    clip = tmp_path / "outputs" / "smoke" / "librispeech" / "test-clean" / "19" / "198" / "19-198-0000.flac"
    served = Client(launch(checkpoints), verbose=False).predict(handle_file(str(clip)), api_name="/transcribe")
    from slots.registry import Registry

    loaded = Registry(checkpoints)["asr"].get()
    assert served == asr_tab.transcribe_input(loaded, str(clip))[0]
    # Error analysis: every test utterance with jiwer's alignment, the worst ones' audio.
    examples = read_examples(checkpoints / "asr")
    transcripts = dict(
        line.split(" ", 1) for line in (clip.parent / "19-198.trans.txt").read_text().splitlines() if line.strip()
    )
    assert len(examples.rows) == metrics["dataset_sizes"]["test"] and examples.split == "test"
    for row in examples.rows:
        assert row["reference"] == normalize_transcript(transcripts[row["id"]])
        words = jiwer.process_words(row["reference"], row["hypothesis"])
        assert row["alignment"] == [
            [c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx] for c in words.alignments[0]
        ]
        assert row["wer"] == pytest.approx(words.wer, abs=1e-4)
    errors = Client(launch(checkpoints), verbose=False).predict(api_name="/asr_errors")
    b = errors["breakdown"]
    corpus = (b["substitutions"] + b["deletions"] + b["insertions"]) / b["words"]
    assert corpus == pytest.approx(metrics["final"]["test"]["wer"], abs=1e-6)  # the same errors as metrics.json
    worst = [w["id"] for w in errors["worst"]]
    assert sorted(worst) == sorted(r["id"] for r in examples.rows if r["wer"] > 0)
    assert [w["wer"] for w in errors["worst"]] == sorted((w["wer"] for w in errors["worst"]), reverse=True)
    stored = sf.read(examples.audio_path(next(r for r in examples.rows if r["id"] == worst[0])))[0]
    assert len(stored) == len(sf.read(clip.parent / f"{worst[0]}.flac")[0])
    # The report's WholeDataset list: only the first N of each split.
    train_asr.main(["train/configs/asr_smoke.json", "--subset", "2", "1", "1", "--max_steps", "2"])
    assert read_metrics(checkpoints / "asr")["dataset_sizes"] == {"train": 2, "validation": 1, "test": 1}


@pytest.fixture(scope="module")
def microphone_wav(learned_asr) -> str:
    """A training utterance as Chromium's fake microphone plays it: 44.1 kHz, with silence after
    it so the loop does not restart within a recording."""
    root, _ = learned_asr
    source = root / "librispeech" / "test-clean" / "19" / "198" / "19-198-0000.flac"
    samples, rate = sf.read(source, dtype="float32")
    from speech.audio import resample

    out = root / "microphone.wav"
    padded = np.concatenate(
        [np.zeros(4_410, np.float32), resample(samples, rate, 44_100), np.zeros(44_100 * 4, np.float32)]
    )
    sf.write(out, padded, 44_100, subtype="PCM_16")
    return str(out)


@pytest.mark.browser
def test_browser_microphone_records_and_a_transcript_appears(
    learned_asr, microphone_wav, launch, tmp_path, monkeypatch
):
    from scripts.screenshot import open_page
    from slots.registry import Registry

    _, checkpoints = learned_asr
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))  # where the recording lands
    with open_page(launch(checkpoints), fake_microphone=microphone_wav) as page:
        page.get_by_text("About this model").first.wait_for()
        page.get_by_role("button", name="Record").first.click()
        page.wait_for_timeout(3000)
        # Transcribe only once the recording has been uploaded to the server.
        with page.expect_response(lambda r: "/upload" in r.url and r.ok):
            page.get_by_role("button", name="Stop").first.click()
        page.get_by_role("button", name="Transcribe").click()
        timing = page.get_by_text("s of audio transcribed in")
        timing.wait_for()
        recorded = float(timing.inner_text().split(" s of audio")[0])
        transcript = page.locator("label:has-text('Transcript') textarea").first.input_value()
    assert 2.0 < recorded < 5.0
    # The page shows exactly what the model makes of the audio the browser recorded. (The capture
    # path, 44.1 kHz with the browser's own processing, is not the training audio, so the tiny
    # memorising model is not expected to get the words right.)
    recorded = recordings(tmp_path / "uploads")
    assert len(recorded) == 1
    loaded = Registry(checkpoints)["asr"].get()
    assert transcript == asr_tab.transcribe_input(loaded, str(recorded[0]))[0]


@pytest.mark.browser
def test_browser_live_mode_streams_and_shows_the_partial_transcript(learned_asr, microphone_wav, launch, monkeypatch):
    from scripts.screenshot import open_page
    from speech import long_audio

    _, checkpoints = learned_asr
    updates = []
    real_step = long_audio.stream_step

    def recording_step(*args, **kwargs):
        state = real_step(*args, **kwargs)
        updates.append((state.seconds, state.text, state.last_cost))
        return state

    finals = []
    real_finish = long_audio.stream_finish

    def recording_finish(*args, **kwargs):
        state = real_finish(*args, **kwargs)
        finals.append(state.text)
        return state

    monkeypatch.setattr(long_audio, "stream_step", recording_step)
    monkeypatch.setattr(long_audio, "stream_finish", recording_finish)
    with open_page(launch(checkpoints), fake_microphone=microphone_wav) as page:
        page.get_by_text("About this model").first.wait_for()
        # A Record pressed before the recorder's scripts arrive records nothing: the page says so,
        # and Stop, Record again works once they are there.
        recorder = held_recorder(page)
        page.get_by_role("tab", name="Live").click()
        page.get_by_label("Listen for speech").uncheck()  # every chunk to the model: the path without the gate
        page.get_by_role("button", name="Record").first.click()
        page.get_by_text("Listening: the transcript updates").wait_for()
        no_sound_note(page).wait_for()
        recorder.assert_held()
        assert not updates
        recorder.release()
        page.get_by_role("button", name="Stop").first.click()
        record_until_heard(page, lambda: bool(updates))
        page.get_by_text("Listening: the transcript updates").wait_for()
        page.wait_for_timeout(4000)
        # Every text the line under the transcript shows from now on, however briefly.
        page.evaluate(
            """() => { window.notes = []; new MutationObserver(() => window.notes.push(document.body.innerText.match(
                /(Finalising|Final transcript)[^\\n]*/)?.[0])).observe(document.body, {subtree: true, childList: true,
                characterData: true}); }"""
        )
        page.get_by_role("button", name="Stop").first.click()
        page.get_by_text("Final transcript of").wait_for(timeout=90_000)  # a busy machine queues chunks
        for _ in range(20):  # chunks the browser sent last may still join the final text
            shown = page.locator("label:has-text('Partial transcript') textarea").input_value()
            if finals and shown == finals[-1]:
                break
            page.wait_for_timeout(500)
        notes = [n for n in page.evaluate("() => window.notes") if n]
    assert len(updates) >= 4  # about two chunks a second
    seconds = [u[0] for u in updates]
    assert seconds == sorted(seconds) and 2.5 < seconds[-1] < 6.0  # the stream grew with the recording
    # Stop: "Finalising" first, then the final line; the page ends on the server's final text.
    assert notes[0].startswith("Finalising") and notes[-1].startswith("Final transcript of")
    assert finals and shown == finals[-1]
    assert max(u[2] for u in updates) <= 16_000 * 12  # each update: one 10 s window + new audio at most


def test_resume_continues_from_the_last_trainer_checkpoint(smoke_workdir, monkeypatch):
    tmp_path = smoke_workdir
    make_asr_smoke()
    common = ["train/configs/asr_smoke.json", "--save_strategy", "steps", "--save_steps", "3"]
    train_asr.main([*common, "--max_steps", "3"])
    assert (tmp_path / "outputs" / "smoke" / "runs" / "asr" / "checkpoint-3").is_dir()
    calls = []
    real_loss = train_asr.CTCTrainer.compute_loss  # each training step's forward, in either training loop
    monkeypatch.setattr(
        train_asr.CTCTrainer,
        "compute_loss",
        lambda self, model, *a, **k: model.training and calls.append(1) or real_loss(self, model, *a, **k),
    )
    train_asr.main([*common, "--max_steps", "6", "--resume", "true"])
    assert len(calls) == 3  # steps 4-6 only: 1-3 came from checkpoint-3
    history = read_metrics(tmp_path / "outputs" / "smoke" / "checkpoints" / "asr")["history"]
    assert [row["step"] for row in history if "loss" in row] == [1, 2, 3, 4, 5, 6]
