"""Audio as arrays: the sample formats and rates the app accepts, mono downmixing, resampling to
the models' 16 kHz (whole or as a live stream) and the checks every clip passes before a model
hears it. No file is read here (`speech/audio_files.py` decodes files)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core import settings
from core.errors import InputError

TARGET_RATE = 16_000
MIN_RATE = 8_000
MAX_RATE = 192_000
MIN_DURATION_S = 0.1
# Ten minutes by default: long enough for a lecture excerpt, short enough that one upload
# cannot tie the server up. `AUDIO_MAX_SECONDS` changes it for the whole app.
DEFAULT_MAX_DURATION_S = settings.AUDIO_MAX_SECONDS
# Peak below -80 dBFS: nothing a microphone picked up, only digital silence or dither.
SILENCE_PEAK = 1e-4


class AudioInputError(InputError):
    """Audio a user gave that cannot be used; the message is a sentence meant for them."""


_INT_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}
_FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float64))


def to_mono_float(rate: object, samples: np.ndarray) -> tuple[int, np.ndarray]:
    """Format checks and conversion only (no content checks): a streaming chunk may be silent."""
    return check_rate(rate), to_mono(as_float(np.asarray(samples)))


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
    """Resamples a stream chunk by chunk without clicks at chunk borders.

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


def check_rate(rate: object) -> int:
    """`rate` as an int, or `AudioInputError` for one that is not a whole number in 8-192 kHz."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float)) or rate != int(rate):
        raise AudioInputError(f"The sample rate must be a whole number of Hz, not {rate!r}.")
    if not MIN_RATE <= int(rate) <= MAX_RATE:
        raise AudioInputError(f"Sample rate {int(rate)} Hz is not supported: use {MIN_RATE} to {MAX_RATE} Hz.")
    return int(rate)


def as_float(samples: np.ndarray) -> np.ndarray:
    """int16/int32 scaled to [-1, 1), floats checked for NaN/inf; float32 either way."""
    if samples.dtype in _INT_SCALE:
        return samples.astype(np.float32) / np.float32(_INT_SCALE[samples.dtype])
    if samples.dtype in _FLOAT_TYPES:
        if not np.all(np.isfinite(samples)):
            raise AudioInputError("The audio contains NaN or infinite samples; it looks corrupted.")
        return samples.astype(np.float32, copy=False)
    raise AudioInputError(f"Samples of type {samples.dtype} are not supported: use int16, int32, float32 or float64.")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """[S] from [S], [S, C] or [C, S] (C <= 8): the channels' mean."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioInputError(f"Audio must be 1-D or (samples, channels), got shape {samples.shape}.")
    # Gradio and soundfile give (samples, channels); libraries like torchaudio give
    # (channels, samples). A short first axis with a long second one can only be the latter.
    if samples.shape[0] <= 8 < samples.shape[1]:
        samples = samples.T
    return samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]


def check_content(samples: np.ndarray, rate: int, limit: float) -> None:
    """Refuse audio that is empty, shorter than `MIN_DURATION_S`, longer than `limit` seconds,
    not finite or silent."""
    if samples.size == 0:
        raise AudioInputError("The audio is empty (0 samples).")
    seconds = duration_s(samples, rate)
    if seconds < MIN_DURATION_S:
        raise AudioInputError(
            f"The audio is {seconds * 1000:.0f} ms long; at least {MIN_DURATION_S * 1000:.0f} ms is needed."
        )
    if seconds > limit:
        raise AudioInputError(too_long(seconds, limit))
    if not np.all(np.isfinite(samples)):
        raise AudioInputError("The audio contains NaN or infinite samples; it looks corrupted.")
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise AudioInputError("The audio is silent: check that the microphone is on and not muted.")


def too_long(seconds: float, limit: float) -> str:
    return f"The audio is {seconds:.1f} s long; the limit is {limit:.0f} s: send a shorter clip."
