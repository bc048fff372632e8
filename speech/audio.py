"""Audio input shared by speech recognition, keyword spotting and the training scripts.

Everything that reaches a speech model goes through `load_audio`: Gradio's `(rate, samples)`
tuples, file paths from an upload, an example or `train/`, and Live chunks (`load_chunk`). Files
are decoded with bounded memory and work (`speech/audio_files.py`); arrays are checked, downmixed
and resampled by `speech/audio_arrays.py`, whose names are re-exported here.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from speech.audio_arrays import (
    DEFAULT_MAX_DURATION_S,
    MAX_RATE,
    MIN_DURATION_S,
    MIN_RATE,
    SILENCE_PEAK,
    TARGET_RATE,
    AudioInputError,
    StreamResampler,
    as_float,
    check_content,
    check_rate,
    duration_s,
    prepare_resampling,
    resample,
    to_mono,
    to_mono_float,
)
from speech.audio_files import (
    MAX_CHANNELS,
    SUPPORTED_FILES,
    check_chunk_length,
    decode,
    decode_chunk,
    header,
    stated_frames,
)

__all__ = [
    "DEFAULT_MAX_DURATION_S",
    "MAX_CHANNELS",
    "MAX_RATE",
    "MIN_DURATION_S",
    "MIN_RATE",
    "SILENCE_PEAK",
    "SUPPORTED_FILES",
    "TARGET_RATE",
    "AudioInput",
    "AudioInputError",
    "StreamResampler",
    "duration_s",
    "file_duration_s",
    "file_path",
    "load_audio",
    "load_chunk",
    "prepare_resampling",
    "resample",
    "to_mono_float",
]

AudioInput = str | os.PathLike | tuple | dict | None


def stored(source: Any) -> Any:
    """A row of a memory-mapped dataset read when used (an object with `encoded()`, as
    `train.hub_data.DatasetAudio`) as the `datasets` audio dict it holds; anything else as it is."""
    encoded = getattr(source, "encoded", None)
    return encoded() if callable(encoded) else source


def load_audio(
    source: AudioInput, *, max_duration_s: float | None = None, segment_s: tuple[float, float] | None = None
) -> np.ndarray:
    """Return `source` as float32 mono samples at 16 kHz, or raise `AudioInputError`.

    Args:
        source: Gradio's `(sample_rate, ndarray)` (int16/int32/float32/float64, shape `(n,)` or
            `(n, channels)`), a path to an audio file, Gradio's file dict with a `"path"` key, or
            a `datasets` audio dict with encoded `"bytes"` (what `Audio(decode=False)` yields), or
            a dataset row that reads it when used (`stored`).
        max_duration_s: the longest audio accepted (default `AUDIO_MAX_SECONDS`, 600 s); a file
            is refused from its header, before decoding.
        segment_s: `(start, length)` in seconds: read only that part of a file (1 s out of a
            minute of noise).

    Returns:
        [S] float32 samples at `TARGET_RATE`.

    Raises:
        AudioInputError: no audio, an unreadable or unsupported file, a bad rate or shape, too
            many channels or too much data to decode, audio too short, too long, silent or
            holding NaN/inf.
    """
    limit = DEFAULT_MAX_DURATION_S if max_duration_s is None else max_duration_s
    if source is None or (isinstance(source, str) and not source.strip()):
        raise AudioInputError("No audio was received: record with the microphone or upload a file.")
    encoded = _encoded(source)
    if encoded is not None:
        rate = TARGET_RATE  # (decoded at 16 kHz with bounded memory)
        samples = decode(*encoded, limit, segment_s)
    elif isinstance(source, tuple) and len(source) == 2:
        rate = check_rate(source[0])
        samples = to_mono(as_float(np.asarray(source[1])))
    else:
        raise AudioInputError(
            f"Audio must be a file path or a (sample_rate, samples) pair, not {type(source).__name__}."
        )
    check_content(samples, rate, limit)
    return resample(samples, rate, TARGET_RATE)


def load_chunk(source: AudioInput, max_s: float) -> tuple[int, np.ndarray]:
    """A Live chunk: Gradio's file dict (the browser's WAV) or an in-process `(rate, samples)`
    pair, as `(rate, [S] float32 mono)` at its own rate; `AudioInputError` for one longer than
    `max_s` seconds (refused from a file's header) or malformed. Silence is fine here."""
    encoded = _encoded(source)
    if encoded is not None:
        return decode_chunk(*encoded, max_s)
    if not isinstance(source, tuple) or len(source) != 2:
        raise AudioInputError(f"A live chunk must be audio, not {type(source).__name__}.")
    rate, samples = to_mono_float(*source)
    check_chunk_length(len(samples) / rate, max_s)
    return rate, samples


def file_duration_s(source: AudioInput) -> float:
    """Length of an encoded source (path, Gradio or `datasets` dict) from its header alone."""
    encoded = _encoded(source)
    if encoded is None:
        raise AudioInputError(f"Not an audio file: {type(source).__name__}.")
    info = header(encoded[0])
    frames = stated_frames(info)
    if frames is None:
        raise AudioInputError(f"The length of '{encoded[1]}' is not stored in its header.")
    return frames / info.samplerate


def file_path(source: AudioInput) -> str | os.PathLike | None:
    """The path an encoded source names (a path, or Gradio's or `datasets`' dict without bytes);
    None for arrays, bytes or nothing."""
    source = stored(source)
    if isinstance(source, dict) and not source.get("bytes"):
        source = source.get("path")
    return source if isinstance(source, (str, os.PathLike)) and str(source).strip() else None


def _encoded(source: AudioInput) -> tuple[str | io.BytesIO, str] | None:
    """(something soundfile reads, a name for messages) for encoded audio; None for arrays.
    Raises for a path that does not exist."""
    source = stored(source)
    if isinstance(source, dict) and source.get("bytes"):
        return io.BytesIO(source["bytes"]), source.get("path") or "audio bytes"
    source = file_path(source) or source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AudioInputError(f"Audio file '{path.name}' was not found.")
        return str(path), path.name
    return None
