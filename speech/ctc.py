"""Character vocabulary, processor and greedy decoding for CTC speech recognition."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speech.audio import TARGET_RATE

PAD = "[PAD]"
UNK = "[UNK]"
WORD_DELIMITER = "|"  # PAD doubles as the CTC blank (id 0)


def normalize_transcript(text: str) -> str:
    """Lower case, letters and apostrophes only, single spaces: the form the vocabulary covers."""
    text = "".join(ch if ch.isalpha() or ch == "'" else " " for ch in text.lower())
    return re.sub(r"\s+", " ", text).strip()


def build_char_vocab(transcripts: Iterable[str]) -> dict[str, int]:
    """Vocabulary from training transcripts: blank/pad 0, unk 1, word delimiter 2, then characters."""
    chars = sorted({ch for text in transcripts for ch in normalize_transcript(text) if ch != " "})
    vocab = {PAD: 0, UNK: 1, WORD_DELIMITER: 2}
    vocab.update({ch: i + 3 for i, ch in enumerate(chars)})
    return vocab


def make_processor(vocab: dict[str, int], sampling_rate: int = TARGET_RATE):
    """A `Wav2Vec2Processor`: CTC tokenizer over `vocab` + a 16 kHz feature extractor."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        vocab_file.write_text(json.dumps(vocab))
        tokenizer = Wav2Vec2CTCTokenizer(
            str(vocab_file), unk_token=UNK, pad_token=PAD, word_delimiter_token=WORD_DELIMITER, do_lower_case=False
        )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=sampling_rate, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)


def mask_padding(ids, lengths):
    """Frame ids with the padding marked.

    Args:
        ids: [B, T] frame ids (numpy or torch).
        lengths: [B] true output lengths.

    Returns:
        `ids` with every frame at or past its row's length set to -100.
    """
    import torch

    frames = torch.arange(ids.shape[1], device=ids.device)[None, :]
    return ids.masked_fill(frames >= lengths[:, None], -100)


def decode_predictions(ids: np.ndarray, tokenizer) -> list[str]:
    """Greedy CTC transcripts from frame ids: merge repeats, drop the blank and every special
    token, lower case (hub vocabularies are often upper case: "THE CAT").

    Repeats are merged *before* blanks are dropped: the blank is what keeps the two l's of
    "hello" apart (the tokenizer's own `skip_special_tokens` drops it first and writes "helo").
    Padding must be cut at each utterance's output length first (`mask_padding`): decoding the
    padded frames would add characters.

    Args:
        ids: [B, T] frame ids (argmax of the logits), -100 for padding.
        tokenizer: the model's CTC tokenizer (word delimiter "|").

    Returns:
        B transcripts.
    """
    special = set(tokenizer.all_special_ids) - {tokenizer.word_delimiter_token_id}  # "|" is a space
    texts = []
    for row in _unpadded(ids):
        merged = [i for k, i in enumerate(row) if k == 0 or i != row[k - 1]]
        text = tokenizer.decode([i for i in merged if i not in special], group_tokens=False)
        texts.append(" ".join(text.lower().split()))
    return texts


@dataclass(frozen=True)
class Word:
    """A word of a transcript and when it is spoken, from its first letter's first frame to its
    last letter's last frame."""

    text: str
    start_s: float
    end_s: float


def word_times(ids: np.ndarray, tokenizer, seconds_per_frame: float) -> list[Word]:
    """The words of one utterance's greedy CTC transcript with their times.

    The same rules as `decode_predictions` (repeats merged before blanks are dropped, special
    tokens never shown, lower case), so the words joined by spaces are its transcript. A blank
    between two letters does not end a word; only the word delimiter does.

    Args:
        ids: [T] frame ids of one utterance, cut at its length.
        tokenizer: the model's CTC tokenizer.
        seconds_per_frame: the model's frame hop in seconds (0.02 for HuBERT at 16 kHz).

    Returns:
        The words in order.
    """
    delimiter = tokenizer.word_delimiter_token_id
    special = set(tokenizer.all_special_ids) - {delimiter}
    words: list[Word] = []
    letters: list[str] = []
    first = last = 0

    def close() -> None:
        text = "".join(letters).lower().strip()
        if text:
            words.append(Word(text, round(first * seconds_per_frame, 3), round(last * seconds_per_frame, 3)))
        letters.clear()

    previous = None
    for frame, i in enumerate(int(i) for i in ids):
        if i == previous:  # the same letter held over more frames
            if letters and i not in special and i != delimiter:
                last = frame + 1
            continue
        previous = i
        if i == delimiter:
            close()
        elif i not in special:
            if not letters:
                first = frame
            letters.append(tokenizer.convert_ids_to_tokens(i))
            last = frame + 1
    close()
    return words


def decode_labels(ids: np.ndarray, tokenizer) -> list[str]:
    """Reference transcripts from label ids; repeats are real letters here, so nothing merges.

    Args:
        ids: [B, N] label ids, -100 past each transcript.
        tokenizer: the CTC tokenizer the labels were made with.

    Returns:
        B transcripts.
    """
    return [tokenizer.decode(row, group_tokens=False).strip() for row in _unpadded(ids)]


def _unpadded(ids: np.ndarray) -> list[list[int]]:
    return [[int(i) for i in row if i != -100] for row in np.asarray(ids)]
