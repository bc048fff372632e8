"""CTC inference on audio of any length: overlapping windows offline, and the same windows built
up incrementally for live microphone streams.

Each window of `window_s` seconds is run with `stride_s` seconds of context on both sides; only
its centre frames are kept (the first window keeps its start, the last its end). Frames are kept
by their *global* index, so the kept pieces tile the recording exactly: no frame is taken twice
or skipped, and greedy CTC decoding runs once over the joined frames, so a letter or word that
straddles a join is neither doubled nor dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.inference import model_work, to_model
from speech.audio import TARGET_RATE, StreamResampler
from speech.ctc import Word, decode_predictions, word_times

# Offline: one pass for clips up to WINDOW_S (attention over 1,500 frames is cheap next to the
# network's linear layers; docs/benchmarks.md), overlapping windows only beyond.
WINDOW_S = 30.0
STRIDE_S = 2.0
# Live: each update recomputes the uncommitted audio, so windows stay short enough that an update
# costs less than the 0.5 s of audio it brings, with a wav2vec 2.0 base model on 2 CPU cores.
LIVE_WINDOW_S = 2.5
LIVE_STRIDE_S = 0.5


def samples_per_frame(model) -> int:
    """Audio samples per output frame of the model's conv front end (320 for HuBERT)."""
    return int(np.prod(model.config.conv_stride))


@dataclass(frozen=True)
class Windows:
    """Window geometry in samples, all multiples of the model's frame hop."""

    hop: int
    window: int
    stride: int

    @classmethod
    def for_model(cls, model, window_s: float = WINDOW_S, stride_s: float = STRIDE_S) -> Windows:
        hop = samples_per_frame(model)
        window = max(hop, round(window_s * TARGET_RATE / hop) * hop)
        stride = round(stride_s * TARGET_RATE / hop) * hop
        if window - 2 * stride <= 0:
            raise ValueError(f"window {window_s} s must be longer than twice the stride {stride_s} s")
        return cls(hop, window, stride)

    @property
    def step(self) -> int:
        return self.window - 2 * self.stride


@model_work
def window_ids(model, extractor, pieces: list[np.ndarray]) -> list[np.ndarray]:
    """Greedy frame ids for each audio piece, cut at its true frame count (one batch).

    Args:
        model: a *ForCTC model (or its `slots.onnx_serving.OnnxSpeech`).
        extractor: its feature extractor.
        pieces: 16 kHz mono float32 arrays of any lengths.

    Returns:
        One [T_i] array of frame ids per piece.
    """
    from speech.padding import padding_proof  # torch: not before the app answers

    inputs = extractor(
        pieces, sampling_rate=TARGET_RATE, padding=True, return_attention_mask=True, return_tensors="pt"
    )
    mask = to_model(model, inputs.attention_mask)
    # The last window is shorter: padding must not shift its features (see speech.heads).
    with padding_proof(getattr(model, "base_model", model), mask.sum(-1)):
        logits = model(to_model(model, inputs.input_values), attention_mask=mask).logits
    lengths = model._get_feat_extract_output_lengths(inputs.attention_mask.sum(-1))
    ids = logits.argmax(-1).cpu().numpy()
    return [row[: int(n)] for row, n in zip(ids, lengths, strict=True)]


def chunked_ids(model, extractor, samples: np.ndarray, windows: Windows, batch_size: int = 4) -> np.ndarray:
    """Frame ids of the whole recording from overlapping windows (see the module docstring).

    Args:
        model: a *ForCTC model (or its `slots.onnx_serving.OnnxSpeech`).
        extractor: its feature extractor.
        samples: [S] 16 kHz mono float32.
        windows: window geometry in samples (`Windows.of`).
        batch_size: windows per forward pass.

    Returns:
        [T] frame ids, as one pass over the whole recording would give them.
    """
    total = len(samples)
    if total <= windows.window:
        return window_ids(model, extractor, [samples])[0]
    pieces = []
    start = 0  # (start sample, first kept global frame, end frame or None)
    while True:
        last = start + windows.window >= total
        first_frame = 0 if start == 0 else (start + windows.stride) // windows.hop
        end_frame = None if last else (start + windows.window - windows.stride) // windows.hop
        pieces.append((start, first_frame, end_frame))
        if last:
            break
        start += windows.step
    kept = []
    for b in range(0, len(pieces), batch_size):
        batch = pieces[b : b + batch_size]
        ids = window_ids(model, extractor, [samples[s : s + windows.window] for s, _, _ in batch])
        for (start, first, end), row in zip(batch, ids, strict=True):
            offset = start // windows.hop  # global index of the window's first frame
            kept.append(row[first - offset : None if end is None else end - offset])
    return np.concatenate(kept)


def transcribe(model, processor, samples: np.ndarray, window_s: float = WINDOW_S, stride_s: float = STRIDE_S) -> str:
    """Greedy CTC transcript of 16 kHz mono samples of any length.

    Args:
        model: a *ForCTC model (or its `slots.onnx_serving.OnnxSpeech`).
        processor: its processor (feature extractor + CTC tokenizer).
        samples: [S] 16 kHz mono float32.
        window_s: window length in seconds; longer audio runs in overlapping windows.
        stride_s: seconds of context on each side of a window that are not kept.

    Returns:
        The transcript, lower case.
    """
    ids = chunked_ids(model, processor.feature_extractor, samples, Windows.for_model(model, window_s, stride_s))
    return decode_predictions(ids[None, :], processor.tokenizer)[0]


def transcribe_words(
    model, processor, samples: np.ndarray, window_s: float = WINDOW_S, stride_s: float = STRIDE_S
) -> tuple[str, list[Word]]:
    """`transcribe`, and each word of the transcript with its start and end in seconds (from the
    same frames: the model runs once)."""
    ids = chunked_ids(model, processor.feature_extractor, samples, Windows.for_model(model, window_s, stride_s))
    text = decode_predictions(ids[None, :], processor.tokenizer)[0]
    return text, word_times(ids, processor.tokenizer, samples_per_frame(model) / TARGET_RATE)


@dataclass
class StreamState:
    """What a live transcription keeps between microphone chunks: only the audio from the next
    window's start on (older audio is never run again), and the committed frame ids."""

    resampler: StreamResampler = field(default_factory=StreamResampler)
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # final 16 kHz audio...
    audio_start: int = 0  # ...from this stream sample on
    committed: list[np.ndarray] = field(default_factory=list)  # frame ids that no longer change...
    committed_text: str = ""  # ...and the text of those before them (`_fold_committed`)
    next_frame: int = 0  # global index of the first uncommitted frame
    next_start: int = 0  # stream sample where the next window begins
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # not yet final audio
    provisional: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ids after committed
    stale: bool = False  # the provisional ids miss the newest audio (see `stream_finish`)
    text: str = ""
    last_cost: int = 0  # samples run through the model in the last update
    finished: bool = False  # `stream_finish` ran: the text is final unless more audio arrives
    earlier_s: float = 0.0  # audio received before the latest gap (`stream_gap`)...
    missed_s: float = 0.0  # ...and the audio the gaps lost

    @property
    def seconds(self) -> float:
        """Length of the final audio received so far."""
        return self.earlier_s + (self.audio_start + len(self.audio)) / TARGET_RATE


def stream_step(
    model,
    processor,
    state: StreamState,
    rate: int,
    chunk: np.ndarray,
    window_s: float = LIVE_WINDOW_S,
    stride_s: float = LIVE_STRIDE_S,
) -> StreamState:
    """Feed one microphone chunk; updates `state.text` with the transcript so far.

    Windows are committed as soon as enough audio arrived for them, exactly where the offline
    `chunked_ids` puts them with the same `window_s`/`stride_s`, so the final text (after
    `stream_finish`) equals the offline transcript of the same audio cut into the same (short,
    live) windows. No update runs more than one window of audio: an update that commits a window
    shows that window's right context as the provisional end and reads the newest audio next time."""
    windows = Windows.for_model(model, window_s, stride_s)
    final, state.tail = state.resampler.push(rate, chunk)
    state.audio = np.concatenate([state.audio, final])
    state.last_cost = 0
    right_context = None
    while state.audio_start + len(state.audio) - state.next_start > windows.window:  # a full final window
        start = state.next_start
        local = state.next_start - state.audio_start
        row = window_ids(model, processor.feature_extractor, [state.audio[local : local + windows.window]])[0]
        end = (start + windows.window - windows.stride) // windows.hop
        state.committed.append(row[state.next_frame - start // windows.hop : end - start // windows.hop])
        right_context = row[end - start // windows.hop :]
        state.next_frame = end
        state.next_start = start + windows.step
        state.last_cost += windows.window
    state.audio = state.audio[state.next_start - state.audio_start :]
    state.audio_start = state.next_start
    if right_context is not None:
        state.provisional = right_context
        state.stale = True
    else:
        _read_uncommitted(model, processor, state, windows)
    return _decode(state, processor)


def stream_finish(
    model, processor, state: StreamState, window_s: float = LIVE_WINDOW_S, stride_s: float = LIVE_STRIDE_S
) -> StreamState:
    """The recording stopped: read the newest audio if the last update left it out.

    Args:
        model: a *ForCTC model (or its `slots.onnx_serving.OnnxSpeech`).
        processor: its processor.
        state: the stream so far.
        window_s: as passed to `stream_step`.
        stride_s: as passed to `stream_step`.

    Returns:
        `state` with the final transcript in `state.text`.
    """
    state.finished = True
    if state.stale:
        state.last_cost = 0
        _read_uncommitted(model, processor, state, Windows.for_model(model, window_s, stride_s))
    return _decode(state, processor)


def stream_gap(
    model,
    processor,
    state: StreamState,
    missed_s: float,
    window_s: float = LIVE_WINDOW_S,
    stride_s: float = LIVE_STRIDE_S,
) -> StreamState:
    """`missed_s` seconds of audio never arrived before the next chunk (a busy server drops a
    live stream's chunks): the words so far become final, the text marks the gap with "…", and
    the stream starts again after it, so that no window joins audio from both sides (a word cut
    by the gap would be read as another word).

    Returns:
        A new state whose text so far is `state`'s final text and the mark.
    """
    done = stream_finish(model, processor, state, window_s, stride_s)
    text = f"{done.text} …" if done.text else ""
    return StreamState(committed_text=text, text=text, earlier_s=done.seconds, missed_s=done.missed_s + missed_s)


def _read_uncommitted(model, processor, state: StreamState, windows: Windows) -> None:
    piece = np.concatenate([state.audio, state.tail])
    state.provisional = np.zeros(0, np.int64)
    state.stale = False
    if len(piece) >= windows.hop * 2:
        row = window_ids(model, processor.feature_extractor, [piece])[0]
        state.provisional = row[state.next_frame - state.next_start // windows.hop :]
        state.last_cost += len(piece)


def _decode(state: StreamState, processor) -> StreamState:
    _fold_committed(state, processor.tokenizer)
    ids = np.concatenate([*state.committed, state.provisional])
    tail = decode_predictions(ids[None, :], processor.tokenizer)[0]
    state.text = " ".join(t for t in (state.committed_text, tail) if t)
    return state


def _fold_committed(state: StreamState, tokenizer) -> None:
    """Turn committed ids up to their last word delimiter into text, once.

    Decoding every committed id on every update would cost a recording's length each time (an
    hour is 180,000 ids, ~0.3 s of Python per update). Cut after a delimiter, the two sides decode
    to the whole's words exactly: no word spans the cut, a repeat merged across it is a second
    space, and `decode_predictions` normalises spaces. That holds while decoding is token by
    token; a tokenizer that cleans up spaces (" 's" -> "'s") looks across the cut, so its ids
    are all decoded each time, as before."""
    delimiter = getattr(tokenizer, "word_delimiter_token_id", None)
    if delimiter is None or getattr(tokenizer, "clean_up_tokenization_spaces", False) or not state.committed:
        return
    ids = np.concatenate(state.committed)
    ends = np.flatnonzero(ids == delimiter)
    if not len(ends):
        return
    cut = int(ends[-1]) + 1
    words = decode_predictions(ids[None, :cut], tokenizer)[0]
    state.committed_text = " ".join(t for t in (state.committed_text, words) if t)
    state.committed = [ids[cut:]]
