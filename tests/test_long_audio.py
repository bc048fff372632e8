"""Chunked and streaming CTC inference: same frames as one pass, nothing doubled or dropped at
joins, bounded work per live update."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech import long_audio
from speech.audio import resample
from speech.ctc import build_char_vocab, decode_predictions, make_processor, word_times
from tests.helpers import LONG_AUDIO_TEXT as TEXT
from tests.tone_ctc import ToneCTC, speak_as_tones


@pytest.fixture(scope="module")
def tone():
    processor = make_processor(build_char_vocab([TEXT]))
    return ToneCTC(len(processor.tokenizer)), processor


def test_audio_within_one_window_gives_exactly_the_unchunked_frames(tiny_hubert_ctc):
    model, processor = tiny_hubert_ctc
    samples = np.random.default_rng(0).normal(0, 0.1, 16_000 * 3).astype(np.float32)
    windows = long_audio.Windows.for_model(model, window_s=3.0, stride_s=0.5)
    chunked = long_audio.chunked_ids(model, processor.feature_extractor, samples, windows)
    with torch.inference_mode():
        inputs = processor.feature_extractor(samples, sampling_rate=16_000, return_tensors="pt")
        whole = model(inputs.input_values).logits.argmax(-1)[0].numpy()
    np.testing.assert_array_equal(chunked, whole)


def test_known_transcript_survives_many_chunk_joins(tone):
    model, processor = tone
    samples = speak_as_tones(TEXT, processor.tokenizer)
    assert len(samples) > 6 * 16_000  # > 4 joins with 2 s windows and 0.5 s strides
    whole = long_audio.transcribe(model, processor, samples, window_s=60)
    chunked = long_audio.transcribe(model, processor, samples, window_s=2.0, stride_s=0.5)
    assert whole == TEXT
    assert chunked == TEXT
    # The kept pieces tile the recording: exactly one id per frame of the whole audio.
    windows = long_audio.Windows.for_model(model, 2.0, 0.5)
    ids = long_audio.chunked_ids(model, processor.feature_extractor, samples, windows)
    assert len(ids) == int(model._get_feat_extract_output_lengths(len(samples)))


def test_ten_minutes_run_in_bounded_windows(tiny_hubert_ctc):
    model, processor = tiny_hubert_ctc
    samples = np.random.default_rng(1).normal(0, 0.1, 16_000 * 600).astype(np.float32)
    shapes = []
    hook = model.register_forward_hook(lambda m, args, kwargs_out: shapes.append(tuple(args[0].shape)))
    try:
        text = long_audio.transcribe(model, processor, samples)
    finally:
        hook.remove()
    assert isinstance(text, str)
    assert max(s[1] for s in shapes) == 480_000  # never more than one 30 s window per row
    assert max(s[0] for s in shapes) <= 4  # and at most 4 rows per forward pass
    assert sum(s[0] for s in shapes) == 23  # 600 s in 26 s steps (30 s windows, 2 s context each side)


@pytest.mark.parametrize("rate", [16_000, 48_000, 44_100])
def test_live_stream_ends_with_the_offline_transcript_at_bounded_cost(tone, rate):
    model, processor = tone
    samples = speak_as_tones(TEXT, processor.tokenizer)
    audio = resample(samples, 16_000, rate) if rate != 16_000 else samples
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)  # what the browser sends
    chunk = rate // 2
    state = long_audio.StreamState()
    partials = []
    for start in range(0, len(pcm), chunk):
        state = long_audio.stream_step(
            model, processor, state, rate, pcm[start : start + chunk], window_s=2.0, stride_s=0.5
        )
        partials.append(state.text)
        assert state.last_cost <= 2 * 16_000  # never more than one window's audio per update
        assert len(state.audio) <= 2 * 16_000 + 8_000  # and only that much audio is kept
    state = long_audio.stream_finish(model, processor, state, window_s=2.0, stride_s=0.5)
    assert state.text == TEXT
    assert partials[len(partials) // 2] and TEXT.startswith(partials[len(partials) // 2].rsplit(" ", 1)[0])
    offline = long_audio.transcribe(model, processor, samples, window_s=2.0, stride_s=0.5)
    assert offline == state.text


@pytest.mark.parametrize("cleanup", [False, True])
def test_a_long_live_stream_decodes_each_word_once(tone, cleanup):
    # Decoding every committed id on every update grows with the recording (an hour: ~0.3 s per
    # 0.5 s update); words before the last committed delimiter are decoded once. A tokenizer that
    # cleans up spaces looks across words, so it keeps decoding everything (and the same text).
    import copy

    model, processor = tone
    processor = copy.deepcopy(processor)
    processor.tokenizer.clean_up_tokenization_spaces = cleanup
    spoken = " ".join([TEXT] * 8)  # 83 s
    pcm = (speak_as_tones(spoken, processor.tokenizer) * 32767).astype(np.int16)
    state = long_audio.StreamState()
    pending = []
    for start in range(0, len(pcm), 8_000):
        state = long_audio.stream_step(model, processor, state, 16_000, pcm[start : start + 8_000], 2.0, 0.5)
        pending.append(sum(len(ids) for ids in state.committed))
        assert spoken.startswith(state.text.rsplit(" ", 1)[0])
    state = long_audio.stream_finish(model, processor, state, window_s=2.0, stride_s=0.5)
    assert state.text == spoken
    if cleanup:
        assert pending[-1] > 4_000  # every committed frame id of the 83 s, decoded on each update
    else:
        assert max(pending) <= 60  # at most the frames since the last word's end


def test_a_gap_in_a_live_stream_is_marked_and_no_window_spans_it(tone):
    # A busy server drops a live stream's chunks; joined across the gap, the audio on either side
    # would be read as one (a word cut by the gap becoming another word).
    model, processor = tone
    before, after = "hello little letters", "the quick brown fox"
    pieces = [(speak_as_tones(t, processor.tokenizer) * 32767).astype(np.int16) for t in (before, after)]
    state = long_audio.StreamState()
    for i, pcm in enumerate(pieces):
        if i:
            state = long_audio.stream_gap(model, processor, state, 2.5, window_s=2.0, stride_s=0.5)
            assert state.text == f"{before} …"  # the words before the gap are final at once
        for start in range(0, len(pcm), 8_000):
            state = long_audio.stream_step(model, processor, state, 16_000, pcm[start : start + 8_000], 2.0, 0.5)
    state = long_audio.stream_finish(model, processor, state, window_s=2.0, stride_s=0.5)
    assert state.text == f"{before} … {after}"
    assert state.seconds == pytest.approx(sum(len(p) for p in pieces) / 16_000)  # heard, gap not counted
    assert state.missed_s == 2.5
    # A gap before any word is not marked.
    empty = long_audio.stream_gap(model, processor, long_audio.StreamState(), 1.5)
    assert empty.text == "" and empty.missed_s == 1.5


def test_decoding_merges_repeats_but_not_across_blanks(tone):
    _, processor = tone
    tok = processor.tokenizer
    ell, e, pad = tok.convert_tokens_to_ids(["l", "e", "[PAD]"])
    assert decode_predictions(np.array([[ell, ell, e, -100]]), tok) == ["le"]
    assert decode_predictions(np.array([[ell, pad, ell, e]]), tok) == ["lle"]


def test_an_upper_case_hub_vocabulary_decodes_to_lower_case_without_special_tokens(tmp_path):
    import json

    from transformers import Wav2Vec2CTCTokenizer

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "E": 5, "H": 6, "L": 7, "O": 8}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    tok = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"))  # facebook/wav2vec2-base-960h's layout
    ids = np.array([[1, 6, 6, 0, 5, 7, 7, 0, 7, 8, 4, 4, 3, 6, 8, 2, -100]])
    assert decode_predictions(ids, tok) == ["hello ho"]
    # The tokenizer's own skip_special_tokens drops the blank before merging: "HELO HO".
    assert tok.decode(ids[0, :-1].tolist(), skip_special_tokens=True) == "HELO HO"


def test_a_short_last_window_batched_with_longer_ones_reads_as_it_would_alone():
    """Long audio runs windows in batches; the last one is shorter and padded. With a group-norm
    front end (DistilHuBERT's) the padding must not change what the model hears."""
    from transformers import HubertForCTC, Wav2Vec2FeatureExtractor

    from scripts.tiny_models import hubert_config
    from speech.long_audio import window_ids

    torch.manual_seed(0)
    model = HubertForCTC(hubert_config(vocab_size=30, feat_extract_norm="group")).eval()
    extractor = Wav2Vec2FeatureExtractor(do_normalize=False)
    rng = np.random.default_rng(0)
    long = rng.standard_normal(16_000).astype(np.float32)
    short = rng.standard_normal(7_000).astype(np.float32)
    batched = window_ids(model, extractor, [long, short])
    alone = window_ids(model, extractor, [short])
    np.testing.assert_array_equal(batched[1], alone[0])
    with torch.no_grad():  # and the logits agree, not only their argmax
        inputs = extractor(
            [long, short], sampling_rate=16_000, padding=True, return_attention_mask=True, return_tensors="pt"
        )
        from speech.padding import padding_proof

        with padding_proof(model.base_model, inputs.attention_mask.sum(-1)):
            padded = model(inputs.input_values, attention_mask=inputs.attention_mask).logits[1]
        single = model(torch.from_numpy(short)[None]).logits[0]
    assert torch.allclose(padded[: len(single)], single, atol=1e-4)


def test_word_times_come_from_the_frames_where_each_word_is_spoken(tone):
    model, processor = tone
    text = "the quick brown fox jumps over the lazy dog"
    samples = speak_as_tones(text, processor.tokenizer)  # every letter and space: 0.1 s tone + 0.04 s gap
    for window_s in (60, 2.0):  # one pass, and windows joined four times
        transcript, words = long_audio.transcribe_words(model, processor, samples, window_s=window_s, stride_s=0.5)
        assert transcript == text and " ".join(w.text for w in words) == text
        position = 0
        for word in words:  # a word's first letter starts at 0.14 s per character before it
            start = position * 0.14
            end = start + (len(word.text) - 1) * 0.14 + 0.1
            assert abs(word.start_s - start) <= 0.03 and abs(word.end_s - end) <= 0.03, (word, start, end)
            position += len(word.text) + 1


def test_word_times_follow_the_transcripts_rules(tone):
    _, processor = tone
    tok = processor.tokenizer
    blank, space = tok.pad_token_id, tok.word_delimiter_token_id
    h, e, el, o = (tok.convert_tokens_to_ids(c) for c in "helo")
    # "hello": the blank keeps the two l's apart; a held letter stretches its word; specials vanish.
    ids = np.array([blank, h, h, e, el, blank, el, o, o, o, space, space, tok.unk_token_id, blank, o, space])
    words = word_times(ids, tok, 0.02)
    assert [w.text for w in words] == decode_predictions(ids[None, :], tok)[0].split() == ["hello", "o"]
    assert (words[0].start_s, words[0].end_s) == (0.02, 0.2) and (words[1].start_s, words[1].end_s) == (0.28, 0.3)


def test_audio_arriving_after_stop_joins_the_final_transcript(tone):
    from types import SimpleNamespace

    from ui import asr as asr_tab

    model, processor = tone
    loaded = SimpleNamespace(model=model, live_model=model, processor=processor)
    pcm = (speak_as_tones(TEXT, processor.tokenizer) * 32767).astype(np.int16)
    cut = len(pcm) - 8_000  # the browser's last half second reaches the server after the stop event
    state = None
    for start in range(0, cut, 8_000):
        state, _, note = asr_tab.live_update(loaded, state, (16_000, pcm[start : min(start + 8_000, cut)]))
        # While recording, every served chunk says it is heard (replacing what `live.watch` said).
        assert note.startswith(asr_tab.LISTENING)
    state, before, note = asr_tab.live_finish(loaded, state)
    assert note.startswith("Final transcript of") and before != TEXT and TEXT.startswith(before[:-3])
    state, after, note = asr_tab.live_update(loaded, state, (16_000, pcm[cut:]))
    assert after == TEXT == long_audio.transcribe(model, processor, pcm / 32767, window_s=2.5, stride_s=0.5)
    assert note == f"Final transcript of {len(pcm) / 16_000:.1f} s of audio."
    # On a busy server the stop can be handled before any chunk: they all arrive afterwards.
    state, text, note = asr_tab.live_finish(loaded, None)
    assert (text, note) == ("", "Final transcript of 0.0 s of audio.")
    for start in range(0, len(pcm), 8_000):
        state, text, note = asr_tab.live_update(loaded, state, (16_000, pcm[start : start + 8_000]))
    assert text == TEXT and note == f"Final transcript of {len(pcm) / 16_000:.1f} s of audio."
