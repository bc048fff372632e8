"""Silero VAD's real model behind the live gate: it finds an espeak-ng sentence in silence and in
low noise, stays quiet on noise alone, and the gate keeps an utterance's first sound."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from scripts.make_smoke_data import speak
from speech import vad

RATE = vad.RATE


@pytest.fixture(scope="module")
def sentence(tmp_path_factory) -> np.ndarray:
    path = speak("the quick brown fox jumps over the lazy dog", tmp_path_factory.mktemp("vad") / "s.wav")
    return sf.read(path, dtype="float32")[0]


def voiced(samples: np.ndarray) -> tuple[float, float]:
    """Where the sentence's sound is (espeak pads its file with silence): the first and last 10 ms
    louder than -40 dB below the peak, in seconds."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((frames**2).mean(1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-40 / 20))
    return loud[0] * 160 / RATE, (loud[-1] + 1) * 160 / RATE


def padded(samples: np.ndarray, before_s: float, after_s: float, noise_dbfs: float | None = None) -> np.ndarray:
    out = np.concatenate([np.zeros(int(before_s * RATE)), samples, np.zeros(int(after_s * RATE))]).astype(np.float32)
    if noise_dbfs is not None:
        out += np.random.default_rng(0).normal(0, 10 ** (noise_dbfs / 20), len(out)).astype(np.float32)
    return out


@pytest.mark.parametrize("noise_dbfs", [None, -50.0])
def test_the_detector_finds_a_sentence_within_150_ms(sentence, noise_dbfs):
    start, end = voiced(sentence)
    spans = vad.speech_spans(padded(sentence, 1.5, 1.5, noise_dbfs))
    assert len(spans) == 1, spans
    found_start, found_end = spans[0]
    assert abs(found_start - (1.5 + start)) <= 0.15 and abs(found_end - (1.5 + end)) <= 0.15, (spans, start, end)


def test_noise_alone_is_never_speech():
    noise = np.random.default_rng(1).normal(0, 10 ** (-35 / 20), RATE * 5).astype(np.float32)
    assert vad.speech_spans(noise) == []
    assert vad.speech_spans(np.zeros(RATE * 3, np.float32)) == []


def test_the_gate_passes_the_first_sound_and_ends_each_utterance(sentence):
    audio = padded(np.concatenate([sentence, np.zeros(RATE, np.float32), sentence]), 1.0, 1.0)
    gate = vad.VoiceGate()
    pieces = []
    for i in range(0, len(audio), 8000):  # fed as the browser sends it, 0.5 s at a time
        pieces += gate.push(audio[i : i + 8000])
    onsets = [p for p in pieces if p.onset is not None]
    ends = [p for p in pieces if p.end is not None]
    assert len(onsets) == 2 and len(ends) == 2
    start, _ = voiced(sentence)
    first = onsets[0]
    # what is passed on starts the pre-roll before the first speech frame, before the first sound
    assert first.start == first.onset - int(vad.PRE_ROLL_S * RATE)
    assert first.start / RATE <= 1.0 + start
    passed = np.concatenate([p.audio for p in pieces if p.audio is not None])
    positions = np.concatenate([np.arange(p.start, p.start + len(p.audio)) for p in pieces if p.audio is not None])
    np.testing.assert_array_equal(passed, audio[positions])  # the audio passed on is the stream's, in place
    # silence between the utterances (less their pre-roll and end) is never passed on
    assert gate.speech_s < 2 * len(sentence) / RATE + 2 * (vad.PRE_ROLL_S + vad.END_SILENCE_S) + 0.2
    assert gate.scored_s == pytest.approx(len(audio) // vad.FRAME * vad.FRAME / RATE)
