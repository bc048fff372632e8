"""Live keyword listening: each spoken keyword logged once at its time since Record, across audio
that never arrived, never on digital silence; and in a browser with a fake microphone."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from slots.registry import Registry
from speech import spotting
from tests.helpers import held_recorder, no_sound_note, record_until_heard
from tests.kws_learned import training_clip, two_words, voiced_centre_s
from ui import kws as kws_tab


def test_live_listening_logs_each_spoken_keyword_once_at_its_time(learned_kws):
    root, checkpoints = learned_kws
    loaded = Registry(checkpoints)["kws"].get()
    yes, _ = sf.read(training_clip(root, "yes"), dtype="float32")
    stop, _ = sf.read(training_clip(root, "stop"), dtype="float32")
    stream = two_words(root)
    from speech.audio import resample

    pcm = (resample(stream, 16_000, 48_000) * 32767).astype(np.int16)  # as the browser sends it
    listener = spotting.Listener()
    for start in range(0, len(pcm), 12_000):  # 250 ms chunks
        listener, log, _, _, level = kws_tab.listen(loaded, listener, (48_000, pcm[start : start + 12_000]), 0.8)
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
        listener, log, _, _, _ = kws_tab.listen(loaded, listener, (48_000, pcm[start : start + 12_000]), 0.999)
    label, p = listener.closest
    assert listener.detections == [] and label in ("yes", "stop") and 0.5 < p < 0.999
    assert log == (
        f"(listening: nothing above the 1.00 threshold yet; the closest was “{label}” at {p:.2f}. "
        "Speak closer, or lower the threshold.)"
    )


def test_live_listening_across_unheard_audio_keeps_times_since_record(learned_kws):
    # A busy server drops chunks: the second of audio from 2.25 s never arrives. The listener
    # skips it, so "stop" is logged at its time since Record, not a second early.
    root, checkpoints = learned_kws
    loaded = Registry(checkpoints)["kws"].get()
    stop, _ = sf.read(training_clip(root, "stop"), dtype="float32")
    pcm = (two_words(root) * 32767).astype(np.int16)
    listener = None
    for start in range(0, len(pcm), 4_000):  # 250 ms chunks
        if 36_000 <= start < 52_000:
            continue  # never arrived
        missing = 1.0 if start == 52_000 else 0.0
        listener, _, _, _, _ = kws_tab.listen(loaded, listener, (16_000, pcm[start : start + 4_000]), 0.8, missing)
    found = {d.label: d.time_s for d in listener.detections}
    assert set(found) == {"yes", "stop"} and listener.missed_s == 1.0
    assert abs(found["stop"] - (3.5 + voiced_centre_s(stop))) <= 0.5, found
    # Below `live.GAP_S` (network jitter) nothing is skipped.
    listener = spotting.Listener()
    kws_tab.listen(loaded, listener, (16_000, pcm[:4_000]), 0.8, 0.2)
    assert listener.missed_s == 0.0 and listener.buffer_start == 0


def test_the_voice_gate_scores_only_speech_and_decides_as_the_gated_evaluation(learned_kws):
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from scripts.make_smoke_data import noise
    from speech import false_alarms as fa
    from speech import vad

    root, checkpoints = learned_kws
    model = AutoModelForAudioClassification.from_pretrained(checkpoints / "kws").eval()
    extractor = AutoFeatureExtractor.from_pretrained(checkpoints / "kws")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    # 6 s of a quiet room, then "yes" at 7.0 s and "stop" at 9.5 s
    stream = np.concatenate([0.1 * noise(6.0, seed=5), two_words(root)]).astype(np.float32)
    listener = spotting.Listener(gate=vad.Scorer())
    for start in range(0, len(stream), 4_000):  # 250 ms chunks
        listener.push(model, extractor, 16_000, stream[start : start + 4_000], 0.8)
    offline = spotting.detect(
        fa.gated(spotting.sliding_probs(model, extractor, stream), spotting.speech_frames(stream)), labels, 0.8
    )
    assert [d.label for d in listener.detections] == ["yes", "stop"]
    assert [(d.label, d.time_s) for d in listener.detections] == [(d.label, d.time_s) for d in offline]
    scored = (len(stream) - 16_000) // 4_000 + 1
    assert listener.gated_windows >= 20 and listener.gated_windows < scored  # the room alone is never scored


def test_digital_silence_never_fires(learned_kws):
    _, checkpoints = learned_kws
    loaded = Registry(checkpoints)["kws"].get()
    listener = None
    for _ in range(12):
        listener, log, _, _, level = kws_tab.listen(loaded, listener, (16_000, np.zeros(4_000, np.int16)), 0.3)
    assert listener.detections == [] and log == "(listening: say one of the keywords)"
    assert level == "Input level `░░░░░░░░░░░░` silence · too quiet to score"


@pytest.mark.browser
def test_browser_live_listening_logs_the_spoken_keyword_and_shows_the_input_level(learned_kws, launch, tmp_path):
    from scripts.screenshot import open_page
    from speech.audio import resample

    root, checkpoints = learned_kws
    yes, _ = sf.read(training_clip(root, "yes"), dtype="float32")
    mic = tmp_path / "mic.wav"  # Chromium loops it: "yes", then 2 s of a quiet room
    room = 0.1 * np.random.default_rng(3).normal(0, 0.05, 2 * 44_100).astype(np.float32)
    sf.write(mic, np.concatenate([resample(yes, 16_000, 44_100), room]), 44_100, subtype="PCM_16")
    with open_page(launch(checkpoints), fake_microphone=str(mic)) as page:
        page.get_by_role("tab", name="Keyword spotting").click()
        page.get_by_text("About this model").first.wait_for()
        recorder = held_recorder(page)  # a slow connection: Record before the recorder's scripts arrive
        page.get_by_role("tab", name="Live").click()
        page.get_by_text("Say one of:").wait_for()
        # one threshold for every keyword, as this test was written for (the evaluation's own are
        # tested with the Evaluation view, tests/test_kws.py)
        page.get_by_label("Each keyword's own threshold, from the evaluation").uncheck()
        page.get_by_label("number input for Threshold").fill("0.8")
        page.get_by_label("number input for Threshold").press("Enter")
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
