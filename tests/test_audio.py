"""The shared audio input: conversion to 16 kHz mono float32, and every refusal."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import soundfile as sf

from speech.audio import AudioInputError, load_audio


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float64)


def peak_hz(samples: np.ndarray, rate: int = 16_000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_48k_stereo_int16_tone_becomes_440hz_mono_float32_at_16k():
    mono = tone(440, 48_000)
    stereo = (np.stack([mono, mono], axis=1) * 32767).astype(np.int16)
    out = load_audio((48_000, stereo))
    assert out.dtype == np.float32 and out.ndim == 1
    assert len(out) == 16_000
    assert abs(peak_hz(out) - 440) < 2
    # Amplitude survives: int16 scaled to [-1, 1], both channels averaged, no gain from resampling.
    assert rms(out[100:-100]) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


@pytest.mark.parametrize(
    "dtype,scale", [(np.int16, 32767), (np.int32, 2**31 - 1), (np.float32, 1.0), (np.float64, 1.0)]
)
@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000])
def test_every_sample_type_and_rate_gives_the_same_tone(dtype, scale, rate):
    samples = (tone(1000, rate, 0.5) * scale).astype(dtype)
    out = load_audio((rate, samples))
    assert out.dtype == np.float32
    assert len(out) == 8_000
    assert abs(peak_hz(out) - 1000) < 3
    assert rms(out[200:-200]) == pytest.approx(0.5 / np.sqrt(2), rel=0.03)


def test_resampler_is_anti_aliased():
    # 12 kHz is above the 8 kHz Nyquist of 16 kHz audio; plain decimation folds it to 4 kHz.
    out = load_audio((48_000, tone(12_000, 48_000).astype(np.float32)))
    assert rms(out[200:-200]) < 0.01 * rms(tone(12_000, 48_000))


def test_channels_first_arrays_are_recognised():
    mono = tone(440, 16_000).astype(np.float32)
    out = load_audio((16_000, np.stack([mono, mono])))  # (2, n) as torchaudio gives it
    np.testing.assert_allclose(out, mono, atol=1e-6)


@pytest.mark.parametrize(
    "suffix,subtype", [(".wav", "PCM_16"), (".flac", "PCM_24"), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")]
)
def test_files_are_decoded_resampled_and_downmixed(tmp_path, suffix, subtype):
    path = tmp_path / f"clip{suffix}"
    mono = tone(440, 44_100, 1.0)
    sf.write(path, np.stack([mono, mono], axis=1), 44_100, subtype=subtype)
    out = load_audio(str(path))
    assert out.dtype == np.float32
    assert abs(len(out) - 16_000) < 1_200  # lossy codecs may pad a frame
    assert abs(peak_hz(out) - 440) < 3
    assert load_audio({"path": str(path)}).shape == out.shape  # Gradio's file dict


@pytest.mark.parametrize(
    "source,message",
    [
        (None, "No audio was received"),
        ("", "No audio was received"),
        ((16_000, np.zeros(0, np.int16)), "empty"),
        ((16_000, np.zeros(16_000, np.int16)), "silent"),
        ((16_000, np.full(16_000, np.nan)), "NaN or infinite"),
        ((16_000, np.full(16_000, np.inf, np.float32)), "NaN or infinite"),
        ((16_000, (tone(440, 16_000, 0.05) * 3e4).astype(np.int16)), "at least 100 ms"),
        ((4_000, tone(440, 4_000).astype(np.float32)), "4000 Hz is not supported"),
        ((384_000, tone(440, 384_000).astype(np.float32)), "384000 Hz is not supported"),
        ((16_000.5, tone(440, 16_000).astype(np.float32)), "whole number of Hz"),
        ((16_000, (tone(440, 16_000) * 100).astype(np.uint8)), "uint8 are not supported"),
        ((16_000, np.zeros((2, 2, 16_000), np.float32)), "1-D or (samples, channels)"),
        ([1, 2, 3], "file path or a (sample_rate, samples) pair"),
    ],
)
def test_bad_input_is_refused_with_a_sentence(source, message):
    with pytest.raises(AudioInputError) as err:
        load_audio(source)
    assert message in str(err.value)


def test_too_long_arrays_and_files_are_refused(tmp_path):
    samples = tone(440, 16_000, 3.0).astype(np.float32)
    with pytest.raises(AudioInputError, match="3.0 s long; the limit is 2 s"):
        load_audio((16_000, samples), max_duration_s=2)
    path = tmp_path / "long.wav"
    sf.write(path, samples, 16_000)
    with pytest.raises(AudioInputError, match="the limit is 2 s"):
        load_audio(path, max_duration_s=2)


def test_unreadable_and_missing_files_are_refused(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all")
    with pytest.raises(AudioInputError, match="'notes.wav' is not an audio file this app can read"):
        load_audio(str(text))
    noise = tmp_path / "random.flac"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioInputError, match="'random.flac' is not an audio file this app can read"):
        load_audio(str(noise))
    named = tmp_path / "notes.mp3"  # text with an audio name: not libsndfile's "possibly a pipe?"
    named.write_text("hello, this is not audio\n" * 40)
    with pytest.raises(AudioInputError) as err:
        load_audio(str(named))
    assert str(err.value) == "'notes.mp3' is not an audio file this app can read. Use wav, flac, ogg, mp3 or m4a."
    with pytest.raises(AudioInputError, match="'gone.wav' was not found"):
        load_audio(str(tmp_path / "gone.wav"))


def mp3_bytes(seconds: float, hz: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(hz, 16_000, seconds).astype(np.float32), 16_000, format="MP3")
    return buffer.getvalue()


def test_an_mp3_whose_header_understates_its_length_is_decoded_to_its_end(tmp_path):
    # Two files joined: the first one's Xing header says 3 s, the data holds 13 s. libsndfile's
    # decoder stops at 3 s; the app decodes it all, or refuses it once past the limit.
    path = tmp_path / "joined.mp3"
    path.write_bytes(mp3_bytes(3.0, 440) + mp3_bytes(10.0, 220))
    assert sf.info(str(path)).duration == pytest.approx(3.0, abs=0.1)
    out = load_audio(str(path))
    assert len(out) / 16_000 == pytest.approx(13.0, abs=0.3)
    assert abs(peak_hz(out[-16_000 * 5 :]) - 220) < 3  # the second file's tone is there
    with pytest.raises(AudioInputError) as err:
        load_audio(str(path), max_duration_s=5)
    assert str(err.value) == ("The audio is longer than the limit of 5 s; its header said 3.0 s: send a shorter clip.")


def test_a_long_joined_mp3_is_refused_at_the_limit_without_decoding_it_all(tmp_path):
    path = tmp_path / "two_hours.mp3"
    path.write_bytes(mp3_bytes(10.0, 440) * 720)  # 7,200 s of audio, a header that says 10 s
    took = {}
    for limit in (60, 60, 600):  # past the header's 10 s; 60 twice: the first call also starts the decoder
        start = time.perf_counter()
        with pytest.raises(AudioInputError, match=f"longer than the limit of {limit} s"):
            load_audio(str(path), max_duration_s=limit)
        took[limit] = time.perf_counter() - start
    assert took[60] < took[600] / 4  # each stopped at its limit: ten times the audio, ten times the work


def test_a_flac_that_stores_no_length_is_decoded_with_the_limit(tmp_path):
    buffer = io.BytesIO()
    sf.write(buffer, tone(440, 16_000, 3.0).astype(np.float32), 16_000, format="FLAC")
    data = bytearray(buffer.getvalue())
    # STREAMINFO's 36-bit total-samples field (bytes 21-25 of the file) set to 0: "unknown", as
    # an encoder that streams leaves it.
    data[21] &= 0xF0
    data[22:26] = bytes(4)
    path = tmp_path / "streamed.flac"
    path.write_bytes(bytes(data))
    assert sf.info(str(path)).frames > 2**62  # libsndfile: no length
    out = load_audio(str(path))
    assert len(out) == 48_000 and abs(peak_hz(out) - 440) < 3
    with pytest.raises(AudioInputError) as err:
        load_audio(str(path), max_duration_s=2)
    assert str(err.value) == "The audio is longer than the limit of 2 s: send a shorter clip."


def test_an_m4a_that_libsndfile_cannot_open_is_decoded_by_ffmpeg(tmp_path):
    import av

    path = tmp_path / "phone.m4a"  # AAC in MP4, as phones record
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44_100, layout="mono")
        samples = (0.3 * tone(440, 44_100, 2.0)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
            frame.rate = 44_100
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))
    out = load_audio(str(path))
    assert abs(len(out) / 16_000 - 2.0) < 0.1 and abs(peak_hz(out) - 440) < 3


def test_nan_inside_a_float_file_is_refused(tmp_path):
    samples = tone(440, 16_000).astype(np.float32)
    samples[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, samples, 16_000, subtype="FLOAT")
    with pytest.raises(AudioInputError, match="NaN or infinite"):
        load_audio(path)


def test_encoded_bytes_from_a_datasets_audio_column(tmp_path):
    path = tmp_path / "clip.flac"
    sf.write(path, tone(440, 22_050), 22_050)
    out = load_audio({"bytes": path.read_bytes(), "path": "clip.flac"})
    assert len(out) == 16_000 and abs(peak_hz(out) - 440) < 3
    with pytest.raises(AudioInputError, match="'junk.flac' is not an audio file this app can read"):
        load_audio({"bytes": b"not audio", "path": "junk.flac"})


@pytest.mark.parametrize("rate", [44_100, 48_000, 8_000])
def test_stream_resampler_matches_resampling_the_whole_recording(rate):
    from speech.audio import StreamResampler, resample

    audio = (tone(440, rate, 2.0) + 0.3 * tone(3000, rate, 2.0)).astype(np.float32)
    resampler = StreamResampler()
    final = []
    for start in range(0, len(audio), rate // 7):  # chunk borders that fall anywhere
        new, tail = resampler.push(rate, audio[start : start + rate // 7])
        final.append(new)
    streamed = np.concatenate([*final, tail])
    whole = resample(audio, rate, 16_000)
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
