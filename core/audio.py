"""Audio input shared by speech recognition, keyword spotting and the training scripts.

Everything that reaches a speech model goes through `load_audio`: Gradio's `(rate, samples)`
tuples from the microphone or an upload, and file paths from `train/`. Decoding uses
`soundfile` (libsndfile) rather than the torchcodec/FFmpeg stack, which needs system libraries
and CUDA-only wheels on recent versions.

Where libsndfile's idea of a file's length cannot be trusted, PyAV (FFmpeg's decoders, bundled in
its wheel) decodes it frame by frame and stops at the length limit: MP3 (libsndfile's decoder stops
at the frame count its Xing header states, so two concatenated files would be cut silently at the
first one's end), streams that store no length (a FLAC written while recording), and files
libsndfile cannot open at all (m4a, webm).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from core import settings
from core.errors import InputError

TARGET_RATE = 16_000
MIN_RATE = 8_000
MAX_RATE = 192_000
MIN_DURATION_S = 0.1
# Ten minutes by default: long enough for a lecture excerpt, short enough that one upload
# cannot tie the server up. `AUDIO_MAX_SECONDS` changes it for the whole app.
DEFAULT_MAX_DURATION_S = settings.number("AUDIO_MAX_SECONDS", 600.0, least=0.1)
# Peak below -80 dBFS: nothing a microphone picked up, only digital silence or dither.
SILENCE_PEAK = 1e-4
SUPPORTED_FILES = "wav, flac, ogg, mp3 or m4a"
# libsndfile reports this many frames (SF_COUNT_MAX) for a stream whose length is not stored.
UNKNOWN_FRAMES = 2**62

AudioInput = str | os.PathLike | tuple | dict | None


class AudioInputError(InputError):
    """Audio a user gave that cannot be used; the message is a sentence meant for them."""


_INT_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}
_FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float64))


def load_audio(
    source: AudioInput, *, max_duration_s: float | None = None, segment_s: tuple[float, float] | None = None
) -> np.ndarray:
    """Return `source` as float32 mono samples at 16 kHz, or raise `AudioInputError`.

    Args:
        source: Gradio's `(sample_rate, ndarray)` (int16/int32/float32/float64, shape `(n,)` or
            `(n, channels)`), a path to an audio file, Gradio's file dict with a `"path"` key, or
            a `datasets` audio dict with encoded `"bytes"` (what `Audio(decode=False)` yields).
        max_duration_s: the longest audio accepted (default `AUDIO_MAX_SECONDS`, 600 s); a file
            is refused from its header, before decoding.
        segment_s: `(start, length)` in seconds: read only that part of a file (1 s out of a
            minute of noise).

    Returns:
        [S] float32 samples at `TARGET_RATE`.

    Raises:
        AudioInputError: no audio, an unreadable or unsupported file, a bad rate or shape, audio
            too short, too long, silent or holding NaN/inf.
    """
    limit = DEFAULT_MAX_DURATION_S if max_duration_s is None else max_duration_s
    if source is None or (isinstance(source, str) and not source.strip()):
        raise AudioInputError("No audio was received: record with the microphone or upload a file.")
    encoded = _encoded(source)
    if encoded is not None:
        rate, samples = _read_file(*encoded, limit, segment_s)
    elif isinstance(source, tuple) and len(source) == 2:
        rate = _check_rate(source[0])
        samples = _as_float(np.asarray(source[1]))
    else:
        raise AudioInputError(
            f"Audio must be a file path or a (sample_rate, samples) pair, not {type(source).__name__}."
        )
    samples = _to_mono(samples)
    _check_content(samples, rate, limit)
    return resample(samples, rate, TARGET_RATE)


def file_duration_s(source: AudioInput) -> float:
    """Length of an encoded source (path, Gradio or `datasets` dict) from its header alone."""
    encoded = _encoded(source)
    if encoded is None:
        raise AudioInputError(f"Not an audio file: {type(source).__name__}.")
    info = _info(encoded[0])
    if info is None or not 0 < info.frames < UNKNOWN_FRAMES:
        raise AudioInputError(f"The length of '{encoded[1]}' is not stored in its header.")
    return info.frames / info.samplerate


def _encoded(source: AudioInput) -> tuple[str | io.BytesIO, str] | None:
    """(something soundfile reads, a name for messages) for encoded audio; None for arrays.
    Raises for a path that does not exist."""
    if isinstance(source, dict) and source.get("bytes"):
        return io.BytesIO(source["bytes"]), source.get("path") or "audio bytes"
    if isinstance(source, dict) and source.get("path"):
        source = source["path"]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AudioInputError(f"Audio file '{path.name}' was not found.")
        return str(path), path.name
    return None


def to_mono_float(rate: object, samples: np.ndarray) -> tuple[int, np.ndarray]:
    """Format checks and conversion only (no content checks): a streaming chunk may be silent."""
    return _check_rate(rate), _to_mono(_as_float(np.asarray(samples)))


def resample(samples: np.ndarray, rate: int, target: int = TARGET_RATE) -> np.ndarray:
    """Polyphase resampling with scipy's Kaiser-windowed low-pass, so nothing above the new
    Nyquist frequency folds back into the band (plain decimation would alias).

    Args:
        samples: [S] float32 at `rate`.
        rate: the samples' rate in Hz.
        target: the rate wanted.

    Returns:
        [S * target / rate] float32 (the same array when the rates match).
    """
    if rate == target:
        return np.ascontiguousarray(samples, dtype=np.float32)
    # Imported here: scipy.signal takes ~1.5 s to import, paid by every app and training start,
    # while most audio (16 kHz already) never needs it.
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(target))
    out = resample_poly(samples.astype(np.float32, copy=False), target // g, rate // g)
    return np.ascontiguousarray(out, dtype=np.float32)


def prepare_resampling() -> None:
    """Import what `resample` needs now: a speech model's background load calls it, so that the
    first visitor's first chunk at 44.1/48 kHz does not wait ~1 s for scipy.signal (on a live
    stream, audio the server never hears: it keeps only the newest chunk while one is served)."""
    from scipy.signal import resample_poly  # noqa: F401


@dataclass
class StreamResampler:
    """Resamples a live stream chunk by chunk without clicks at chunk borders.

    The polyphase filter needs samples on both sides, so the newest few ms stay *provisional*
    until the next chunk arrives, and each pass starts a margin early and discards it. The final
    samples equal those of resampling the whole recording at once."""

    rate: int | None = None
    raw_tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    started: bool = False

    def push(self, rate: object, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add a chunk (any supported dtype/shape); returns (new final samples, provisional tail)
        at 16 kHz. Raises `AudioInputError` for malformed chunks; silence is fine here."""
        rate, chunk = to_mono_float(rate, chunk)
        if self.rate not in (None, rate):
            raise AudioInputError(f"The stream changed sample rate from {self.rate} to {rate} Hz.")
        self.rate = rate
        if rate == TARGET_RATE:
            return chunk, np.zeros(0, np.float32)
        g = math.gcd(rate, TARGET_RATE)
        up = TARGET_RATE // g
        down = rate // g
        margin = math.ceil(max(256, rate // 50) / down) * down  # well over the filter's half length
        raw = np.concatenate([self.raw_tail, chunk])
        head = margin if self.started else 0  # context before the first new sample
        out = resample(raw, rate, TARGET_RATE)
        final_raw = max(head, (len(raw) - margin) // down * down)
        final = out[head * up // down : final_raw * up // down]
        self.started = self.started or len(final) > 0
        self.raw_tail = raw[final_raw - margin :] if final_raw >= margin else raw
        return final, out[final_raw * up // down :]


def duration_s(samples: np.ndarray, rate: int = TARGET_RATE) -> float:
    """Seconds of audio in `samples` at `rate`."""
    return len(samples) / float(rate)


def _info(path: str | io.BytesIO):
    """The file's header as libsndfile reads it; None where libsndfile cannot open the file (it
    may still be audio that FFmpeg decodes)."""
    try:
        return sf.info(path)
    except (sf.LibsndfileError, RuntimeError):
        return None
    finally:
        if isinstance(path, io.BytesIO):
            path.seek(0)


def _read_file(
    path: str | io.BytesIO, name: str, limit: float, segment: tuple[float, float] | None = None
) -> tuple[int, np.ndarray]:
    info = _info(path)
    known = info is not None and 0 < info.frames < UNKNOWN_FRAMES
    # Refuse an over-long file from its header, before decoding it into memory.
    if known and segment is None and info.frames / info.samplerate > limit:
        raise AudioInputError(_too_long(info.frames / info.samplerate, limit))
    if info is None or not known or (info.format == "MP3" and segment is None):
        return _decode_capped(path, name, limit, info.frames / info.samplerate if known else None)
    rate = _check_rate(info.samplerate)
    start = 0
    stop = None
    if segment is not None:
        start = int(segment[0] * info.samplerate)
        stop = start + int(segment[1] * info.samplerate)
    try:
        samples, _ = sf.read(path, dtype="float32", always_2d=True, start=start, stop=stop)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioInputError(f"Could not decode '{name}': {err}.") from err
    return rate, samples


def _decode_capped(path: str | io.BytesIO, name: str, limit: float, stated_s: float | None) -> tuple[int, np.ndarray]:
    """Decode with FFmpeg (PyAV) frame by frame to the end of the data, whatever a header says,
    and refuse as soon as the audio passes `limit` seconds: nothing past the limit is decoded."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, ValueError) as err:
        raise AudioInputError(f"'{name}' is not an audio file this app can read. Use {SUPPORTED_FILES}.") from err
    with container:
        stream = container.streams.audio[0] if container.streams.audio else None
        if stream is None or not stream.rate:  # FFmpeg guesses a format for any bytes; no rate: none fits
            raise AudioInputError(f"'{name}' is not an audio file this app can read. Use {SUPPORTED_FILES}.")
        rate = _check_rate(stream.rate)
        planar = av.AudioResampler(format="fltp")  # float32, one row per channel, rate unchanged
        parts: list[np.ndarray] = []
        decoded = 0
        try:
            for frame in container.decode(stream):
                for out in planar.resample(frame):
                    parts.append(out.to_ndarray())
                    decoded += parts[-1].shape[1]
                if decoded > limit * rate:
                    stated = f"; its header said {stated_s:.1f} s" if stated_s is not None else ""
                    raise AudioInputError(
                        f"The audio is longer than the limit of {limit:.0f} s{stated}: send a shorter clip."
                    )
        except av.FFmpegError as err:
            if not parts:
                raise AudioInputError(f"Could not decode '{name}' as audio. Use {SUPPORTED_FILES}.") from err
            # A damaged tail: keep what decoded, as players do.
    if not parts:
        return rate, np.zeros((0, 1), np.float32)
    return rate, np.concatenate(parts, axis=1).T


def _check_rate(rate: object) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float)) or rate != int(rate):
        raise AudioInputError(f"The sample rate must be a whole number of Hz, not {rate!r}.")
    if not MIN_RATE <= int(rate) <= MAX_RATE:
        raise AudioInputError(f"Sample rate {int(rate)} Hz is not supported: use {MIN_RATE} to {MAX_RATE} Hz.")
    return int(rate)


def _as_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype in _INT_SCALE:
        return samples.astype(np.float32) / np.float32(_INT_SCALE[samples.dtype])
    if samples.dtype in _FLOAT_TYPES:
        if not np.all(np.isfinite(samples)):
            raise AudioInputError("The audio contains NaN or infinite samples; it looks corrupted.")
        return samples.astype(np.float32, copy=False)
    raise AudioInputError(f"Samples of type {samples.dtype} are not supported: use int16, int32, float32 or float64.")


def _to_mono(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioInputError(f"Audio must be 1-D or (samples, channels), got shape {samples.shape}.")
    # Gradio and soundfile give (samples, channels); libraries like torchaudio give
    # (channels, samples). A short first axis with a long second one can only be the latter.
    if samples.shape[0] <= 8 < samples.shape[1]:
        samples = samples.T
    return samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]


def _check_content(samples: np.ndarray, rate: int, limit: float) -> None:
    if samples.size == 0:
        raise AudioInputError("The audio is empty (0 samples).")
    seconds = duration_s(samples, rate)
    if seconds < MIN_DURATION_S:
        raise AudioInputError(
            f"The audio is {seconds * 1000:.0f} ms long; at least {MIN_DURATION_S * 1000:.0f} ms is needed."
        )
    if seconds > limit:
        raise AudioInputError(_too_long(seconds, limit))
    if not np.all(np.isfinite(samples)):
        raise AudioInputError("The audio contains NaN or infinite samples; it looks corrupted.")
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise AudioInputError("The audio is silent: check that the microphone is on and not muted.")


def _too_long(seconds: float, limit: float) -> str:
    return f"The audio is {seconds:.1f} s long; the limit is {limit:.0f} s: send a shorter clip."
