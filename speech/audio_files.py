"""Decoding audio files into 16 kHz mono float32 with bounded work and memory, whatever a visitor
sends.

Two decoders. libsndfile reads WAV, FLAC and OGG files that store their length, one second at a
time, each block downmixed and resampled as it arrives (`StreamResampler`), so memory grows with
the 16 kHz mono result only. FFmpeg (PyAV) decodes the rest: MP3 (libsndfile stops at the frame
count of its Xing header, so two joined files would be cut at the first one's end), streams that
store no length (a FLAC written while recording) and what libsndfile cannot open (m4a, webm).
FFmpeg's own resampler turns every frame into 16 kHz mono before NumPy sees it: PyAV 18.1's
`to_ndarray` kills the process (a segfault) on planar frames of 8 or more channels.

Limits checked before decoding, from the header: at most `MAX_CHANNELS` channels, and
seconds x rate x channels within the sample budget; while decoding (a header may lie): the same
budget and the length limit, so nothing past either is decoded.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import soundfile as sf

from speech.audio_arrays import TARGET_RATE, AudioInputError, StreamResampler, check_rate, to_mono, too_long

SUPPORTED_FILES = "wav, flac, ogg, mp3 or m4a"
# 7.1 surround. Ogg allows 255 channels; every one of them is decoded before the downmix.
MAX_CHANNELS = 8
# Samples (all channels) a file may make the decoder produce per second of the length limit:
# 192 kHz stereo, or 48 kHz in 8 channels, for the whole limit. It bounds the CPU one upload costs.
SAMPLES_PER_LIMIT_S = 384_000
# libsndfile reports this many frames (SF_COUNT_MAX) for a stream whose length is not stored.
UNKNOWN_FRAMES = 2**62


def header(path: str | io.BytesIO) -> Any:
    """The file's header as libsndfile reads it; None where libsndfile cannot open the file (it
    may still be audio that FFmpeg decodes)."""
    try:
        return sf.info(path)
    except (sf.LibsndfileError, RuntimeError):
        return None
    finally:
        if isinstance(path, io.BytesIO):
            path.seek(0)


def stated_frames(info: Any) -> int | None:
    """The length a libsndfile header states, in frames (None: not stored)."""
    return info.frames if info is not None and 0 < info.frames < UNKNOWN_FRAMES else None


def decode(path: str | io.BytesIO, name: str, limit: float, segment: tuple[float, float] | None = None) -> np.ndarray:
    """16 kHz mono float32 samples of the file at `path` (`name` in messages), or
    `AudioInputError` for one that is unreadable, too long or too large to decode.

    Args:
        path: a file path or encoded bytes.
        name: what messages call the file.
        limit: the longest audio accepted, in seconds.
        segment: `(start, length)` in seconds: only that part of a libsndfile file is read.

    Returns:
        [S] float32 samples at `TARGET_RATE`, S <= limit * TARGET_RATE (unless `segment`).
    """
    info = header(path)
    frames = stated_frames(info)
    if frames is not None:
        seconds = frames / info.samplerate
        if segment is None and seconds > limit:  # refused from the header, before decoding
            raise AudioInputError(too_long(seconds, limit))
        check_channels(info.channels, name)
        read_s = seconds if segment is None else min(seconds, segment[1])
        check_budget(read_s, limit, name, info.channels, info.samplerate)
    if frames is None or (info.format == "MP3" and segment is None):
        stated_s = None if frames is None else frames / info.samplerate
        return _with_ffmpeg(path, name, limit, stated_s)
    return _with_libsndfile(path, name, info, segment)


def check_channels(channels: int, name: str) -> None:
    if channels > MAX_CHANNELS:
        raise AudioInputError(
            f"'{name}' has {channels} audio channels; at most {MAX_CHANNELS} are accepted: send mono or stereo audio."
        )


def check_budget(seconds: float, limit: float, name: str, channels: int, rate: int) -> None:
    """Refuse a file whose first `seconds` (at most `limit`: decoding stops there) would make the
    decoder produce more samples, over all channels, than the budget."""
    if min(seconds, limit) * rate * channels > limit * SAMPLES_PER_LIMIT_S:
        raise AudioInputError(
            f"'{name}' holds more audio data than this app decodes ({channels} channels at {rate / 1000:g} kHz "
            f"for {seconds:.0f} s): send mono or stereo audio, at most 48 kHz."
        )


def check_chunk_length(seconds: float, max_s: float) -> None:
    """Refuse a Live chunk longer than `max_s` seconds (the microphone sends a fraction of that)."""
    if seconds > max_s:
        raise AudioInputError(
            f"A live chunk of {seconds:.1f} s was refused: the microphone sends {max_s:g} s at most."
        )


def _unreadable(name: str) -> AudioInputError:
    return AudioInputError(f"'{name}' is not an audio file this app can read. Use {SUPPORTED_FILES}.")


def _undecodable(name: str, err: Exception | None = None) -> AudioInputError:
    """libsndfile's own words where it failed (`err`), else FFmpeg's plain refusal."""
    if err is not None:
        return AudioInputError(f"Could not decode '{name}': {err}.")
    return AudioInputError(f"Could not decode '{name}' as audio. Use {SUPPORTED_FILES}.")


def _with_libsndfile(path: str | io.BytesIO, name: str, info: Any, segment: tuple[float, float] | None) -> np.ndarray:
    """One second at a time, each block downmixed and resampled before the next is read."""
    rate = check_rate(info.samplerate)
    start = 0 if segment is None else int(segment[0] * rate)
    stop = info.frames if segment is None else min(info.frames, start + int(segment[1] * rate))
    resampler = StreamResampler()
    parts: list[np.ndarray] = []
    tail = np.zeros(0, np.float32)
    try:
        with sf.SoundFile(path) as file:
            if start:
                file.seek(start)
            for block in file.blocks(blocksize=rate, frames=max(0, stop - start), dtype="float32", always_2d=True):
                final, tail = resampler.push(rate, block)
                parts.append(final)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _undecodable(name, err) from err
    parts.append(tail)
    return np.concatenate(parts)


def _with_ffmpeg(path: str | io.BytesIO, name: str, limit: float, stated_s: float | None) -> np.ndarray:
    """Every packet to its end, whatever a header says (a damaged packet is skipped, as FFmpeg's
    own command does), through FFmpeg's resampler to 16 kHz mono; refused as soon as the audio
    passes `limit` seconds or the sample budget."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, ValueError, OSError) as err:
        raise _unreadable(name) from err
    try:
        with container:
            return _decode_stream(container, name, limit, stated_s)
    except AudioInputError:
        raise
    except (AttributeError, ValueError, TypeError, RuntimeError, OSError) as err:
        # PyAV on a damaged file: a stream without codec parameters, a frame it cannot describe.
        raise _undecodable(name) from err


def _decode_stream(container: Any, name: str, limit: float, stated_s: float | None) -> np.ndarray:
    stream = container.streams.audio[0] if container.streams.audio else None
    if stream is None or not stream.rate:  # FFmpeg guesses a format for any bytes; no rate: none fits
        raise _unreadable(name)
    check_rate(stream.rate)
    check_channels(stream.channels or 0, name)
    if container.duration and stream.channels:  # a stated length may understate, never trusted to accept
        check_budget(container.duration / 1e6, limit, name, stream.channels, stream.rate)
    to_mono_16k = _Mono16k()
    parts: list[np.ndarray] = []
    decoded = 0  # 16 kHz output samples
    produced = 0  # samples decoded, all channels
    for frame in _frames(container, stream, name):
        channels = frame.layout.nb_channels
        check_channels(channels, name)
        check_rate(frame.sample_rate)
        produced += frame.samples * channels
        check_budget(produced / channels / frame.sample_rate, limit, name, channels, frame.sample_rate)
        for mono in to_mono_16k(frame):
            parts.append(mono)
            decoded += len(mono)
        if decoded > limit * TARGET_RATE:
            said = f"; its header said {stated_s:.1f} s" if stated_s is not None else ""
            raise AudioInputError(f"The audio is longer than the limit of {limit:.0f} s{said}: send a shorter clip.")
    parts.extend(to_mono_16k(None))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _frames(container: Any, stream: Any, name: str) -> Iterator[Any]:
    """The stream's decoded frames; a packet that does not decode is skipped, and a container that
    breaks off ends the audio there (what decoded is kept, as players do)."""
    import av

    decoded_any = False
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            for frame in frames:
                decoded_any = True
                yield frame
    except av.FFmpegError as err:
        if not decoded_any:
            raise _undecodable(name) from err


class _Mono16k:
    """FFmpeg's resampler to packed float32 mono at 16 kHz, made again when the input's format,
    layout or rate changes mid-stream (chained Ogg streams do)."""

    def __init__(self) -> None:
        self.resampler: Any = None

    def __call__(self, frame: Any) -> Iterator[np.ndarray]:
        """The 16 kHz mono samples `frame` completes ([n] float32 each); `None` flushes."""
        import av

        if frame is None and self.resampler is None:
            return
        if self.resampler is None:
            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)
        try:
            outs = self.resampler.resample(frame)
        except ValueError:  # "Frame does not match AudioResampler setup": flush, then a new one
            outs = [*self.resampler.resample(None)]
            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)
            outs += self.resampler.resample(frame)
        for out in outs:
            yield out.to_ndarray()[0]  # one plane: mono, packed


def decode_chunk(path: str | io.BytesIO, name: str, max_s: float) -> tuple[int, np.ndarray]:
    """One Live chunk as the browser sends it (a short WAV), refused from its header when longer
    than `max_s` seconds.

    Returns:
        (rate, [S] float32 mono at the chunk's own rate: the live stream resamples across chunk
        borders). Anything but a WAV-like file with a stored length (no browser sends one) goes
        through FFmpeg, capped at `max_s`, and comes back at 16 kHz.
    """
    info = header(path)
    frames = stated_frames(info)
    if frames is None or info.format == "MP3":
        return TARGET_RATE, _with_ffmpeg(path, name, max_s, None)
    check_chunk_length(frames / info.samplerate, max_s)
    check_channels(info.channels, name)
    rate = check_rate(info.samplerate)
    try:
        samples, _ = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _undecodable(name, err) from err
    return rate, to_mono(samples)
