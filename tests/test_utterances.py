"""Live with voice-activity detection: three spoken sentences with pauses, fed as the browser feeds
them, each final after its end without Stop, silence never reaching the model, the readouts equal
to the times the fed audio gives, and the opt-out as before."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from scripts.make_smoke_data import speak
from speech import long_audio, utterances, vad
from speech.ctc import build_char_vocab, make_processor
from tests.test_vad import voiced
from tests.tone_ctc import ToneCTC, speak_as_tones
from ui import asr as asr_tab
from ui import asr_live

RATE = 16_000
CHUNK = 8_000  # 0.5 s, as the Live tab streams
PAUSE_S = 2.5  # long enough that whole chunks lie inside each pause, after the silence that ends a sentence
SENTENCES = [("the quick brown fox jumps", "hi"), ("over the lazy dog", "there"), ("and runs away now", "you")]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """Three espeak-ng sentences with pauses, each carrying a word as tones the stand-in CTC model
    reads (`tests/tone_ctc.py`): the detector hears speech, the model writes a known word."""
    processor = make_processor(build_char_vocab(["hi there you"]))
    folder = tmp_path_factory.mktemp("utterances")
    pieces = [np.zeros(CHUNK, np.float32)]
    for i, (text, word) in enumerate(SENTENCES):
        voice = sf.read(speak(text, folder / f"{i}.wav"), dtype="float32")[0]
        voice = voice / np.abs(voice).max() * 0.25
        tones = speak_as_tones(word, processor.tokenizer)
        # the word starts just after the voice does (espeak pads its file; a tone alone is no speech)
        onset = int((voiced(voice)[0] + 0.15) * RATE)
        both = np.zeros(max(len(voice), onset + len(tones)), np.float32)
        both[: len(voice)] += voice
        both[onset : onset + len(tones)] += tones
        pieces += [both, np.zeros(int(PAUSE_S * RATE), np.float32)]
    pieces.append(np.zeros(RATE, np.float32))
    return processor, np.concatenate(pieces)


class Model:
    """The stand-in, counting the audio it is run on."""

    def __init__(self, vocab_size: int) -> None:
        self.tone = ToneCTC(vocab_size)

    @property
    def seen_s(self) -> float:
        return sum(shape[-1] for shape in self.tone.calls) / RATE


def feed(processor, audio, live=None):
    """The audio in 0.5 s chunks, the clock at each chunk's arrival (no time for the work)."""
    model = ToneCTC(len(processor.tokenizer))
    live = live or utterances.LiveTranscript()
    now = [0.0]
    texts = []
    for start in range(0, len(audio), CHUNK):
        now[0] = (start + CHUNK) / RATE
        live = utterances.step(model, processor, live, RATE, audio[start : start + CHUNK], clock=lambda: now[0])
        texts.append((now[0], live.text, live.ended, len(model.calls)))
    return model, live, texts


def test_each_sentence_turns_final_when_it_ends_and_silence_is_never_run(spoken):
    processor, audio = spoken
    model, live, texts = feed(processor, audio)
    assert live.done == "hi there you" and live.ended == 3 and not live.finished  # no Stop
    spans = vad.speech_spans(audio)
    assert len(spans) == 3
    for n, (_, end) in enumerate(spans, 1):  # each final by the chunk after its end plus the pause that ends it
        final_at = next(t for t, _, ended, _ in texts if ended >= n)
        assert final_at <= end + vad.END_SILENCE_S + CHUNK / RATE + vad.FRAME / RATE
    # a chunk wholly inside a pause (after the silence that ends a sentence) runs no model at all
    calls = {t: n for t, _, _, n in texts}
    nexts = [s for s, _ in spans[1:]] + [len(audio) / RATE]
    pauses = [(e + vad.END_SILENCE_S + vad.FRAME / RATE, s2) for (_, e), s2 in zip(spans, nexts, strict=True)]
    for start, end in pauses:
        inside = [t for t in calls if t - 0.5 >= start and t <= end - 0.5]
        assert inside and all(calls[t] == calls[t - 0.5] for t in inside), (start, end)
    assert live.readouts.speech_s < len(audio) / RATE - 2 * PAUSE_S + 2 * (vad.PRE_ROLL_S + vad.END_SILENCE_S)


def test_the_readouts_are_the_times_the_fed_audio_gives(spoken):
    processor, audio = spoken
    _, live, texts = feed(processor, audio)
    spans = vad.speech_spans(audio)
    half = CHUNK / RATE

    def arrival(t: float) -> float:  # the end of the chunk holding second t
        return math.floor(t / half + 1e-9) * half + half

    # first word: from where the audio's speech starts to the chunk whose update first showed the word
    shown = [next(t for t, text, _, _ in texts if len(text.split()) > n) for n in range(3)]
    assert live.readouts.first_word_s == pytest.approx(
        [t - s for t, (s, _) in zip(shown, spans, strict=True)], abs=1e-6
    )
    # final: in the chunk where the pause that ends it is complete
    ends = [arrival(e + vad.END_SILENCE_S - 1e-9) - e for _, e in spans]
    assert live.readouts.final_s == pytest.approx(ends, abs=vad.FRAME / RATE + 1e-6)
    summary = live.readouts.summary()
    assert summary["utterances"] == 3 and summary["heard_s"] == pytest.approx(len(audio) // CHUNK * half, abs=half)
    assert summary["rewritten"] == 0.0  # a tone word only grows


def test_a_word_is_rewritten_when_it_changes_not_when_it_grows():
    readouts = utterances.Readouts()
    for text in ("th", "the", "the ca", "the cat sat", "the hat sat on"):
        readouts.saw(text)
    assert readouts.places == 4 and readouts.changed == {1}  # "cat" became "hat"
    assert readouts.summary()["rewritten"] == 0.25


def test_the_tab_listens_for_speech_and_the_box_off_behaves_as_before(spoken):
    processor, audio = spoken

    class Loaded:
        live_model = ToneCTC(len(processor.tokenizer))

    loaded = Loaded()
    loaded.processor = processor
    state, stop_sent = None, []
    for start in range(0, len(audio), CHUNK):
        state, text, stop, line = asr_tab.live_chunk(
            loaded, state, (RATE, audio[start : start + CHUNK]), 0.0, True, True
        )
        stop_sent.append(stop)
    assert isinstance(state, utterances.LiveTranscript) and text == "hi there you"
    assert any(stop_sent) and "first word" in line  # stop-when-quiet asked the page to stop; the readouts shown
    state, text, note = asr_tab.live_stop(loaded, state)
    assert text == "hi there you" and note.startswith("Final transcript of")
    off = None
    for start in range(0, len(audio), CHUNK):
        off, text, stop, _ = asr_tab.live_chunk(loaded, off, (RATE, audio[start : start + CHUNK]), 0.0, False)
        assert stop is False
    assert isinstance(off, long_audio.StreamState)  # every chunk to the model, as before


def test_status_sums_up_recent_recordings(spoken):
    processor, audio = spoken
    _, live, _ = feed(processor, audio)
    recent = asr_live.Recent()
    recent.add(live.readouts)
    summary = recent.summary()
    assert summary["recordings"] == 1 and summary["final_s"] == live.readouts.summary()["final_s"]
    assert 0 < summary["speech_share"] < 0.8


def test_missing_audio_ends_the_sentence_under_way(spoken):
    processor, audio = spoken
    model = ToneCTC(len(processor.tokenizer))
    live = utterances.LiveTranscript()
    first_end = int(vad.speech_spans(audio)[0][1] * RATE)
    live = utterances.step(model, processor, live, RATE, audio[: first_end - 4000])
    live = utterances.gap(model, processor, live, 2.0)
    assert live.done.endswith("…") and live.stream is None and not live.gate.speaking
