"""Audio a hostile visitor sends: every channel count in every container the app accepts, damaged
files, and files made to exhaust memory. Each is decoded in a child process, so a native crash
fails the test by name instead of ending the test session."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from scripts.system_packages import require
from tests.helpers import ROOT

# What `speech.audio.load_audio` makes of each file, one JSON line per file, printed as it goes.
DECODE = """
import json, resource, sys, time
import numpy as np
from speech.audio import AudioInputError, load_audio
import av, scipy.signal  # (imported before the memory baseline: every server has them loaded)
for path in sys.argv[1:]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        samples = load_audio(path)
        out = {"ok": True, "seconds": len(samples) / 16000}
    except AudioInputError as err:
        samples = None
        out = {"ok": False, "refused": str(err)}
    out.update(path=path, s=time.perf_counter() - start)
    out.update(grew_mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
    if samples is not None and len(samples) < 160000:
        out.update(peak_hz=float(np.abs(np.fft.rfft(samples)).argmax() * 16000 / len(samples)))
    print(json.dumps(out), flush=True)
"""

# (extension, ffmpeg's output options, channel counts the format holds)
CONTAINERS = [
    ("flac", ["-c:a", "flac"], range(1, 9)),
    ("vorbis.ogg", ["-c:a", "libvorbis"], range(1, 17)),
    ("opus.ogg", ["-c:a", "libopus", "-mapping_family", "255"], range(1, 17)),
    ("webm", ["-c:a", "libopus", "-mapping_family", "255"], range(1, 17)),
    ("m4a", ["-c:a", "aac"], [*range(1, 9), 16]),
    ("mp3", ["-c:a", "libmp3lame"], [1, 2]),
    ("mka", ["-c:a", "pcm_s16le"], range(1, 17)),
]


def decode_in_child(paths: list[Path]) -> list[dict]:
    run = subprocess.run(
        [sys.executable, "-c", DECODE, *map(str, paths)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    results = [json.loads(line) for line in run.stdout.splitlines()]
    crashed = paths[len(results)] if len(results) < len(paths) else None
    assert run.returncode == 0, f"the decoder died (exit {run.returncode}) on {crashed}: {run.stderr[-2000:]}"
    return results


def tone(channels: int, rate: int = 16_000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.tile((0.3 * np.sin(2 * np.pi * 440 * t))[:, None], (1, channels)).astype(np.float32)


def ffmpeg(source: Path, out: Path, options: list[str]) -> Path:
    program = require("ffmpeg")["ffmpeg"]
    subprocess.run([program, "-loglevel", "error", "-y", "-i", str(source), *options, str(out)], check=True)
    return out


def without_stored_length(flac: Path, out: Path) -> Path:
    data = bytearray(flac.read_bytes())
    data[21] &= 0xF0  # STREAMINFO's total-samples field: 0, "unknown", as a recorder leaves it
    data[22:26] = bytes(4)
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="module")
def every_container(tmp_path_factory) -> dict[Path, int]:
    """A 1 s 440 Hz tone in every container and channel count (ffmpeg's encoders): path -> channels."""
    folder = tmp_path_factory.mktemp("channels")
    files = {}
    for channels in range(1, 17):
        wav = folder / f"{channels}ch.wav"
        sf.write(wav, tone(channels), 16_000, subtype="PCM_16")
        files[wav] = channels
        for extension, options, counts in CONTAINERS:
            if channels in counts:
                files[ffmpeg(wav, folder / f"{channels}ch.{extension}", options)] = channels
        if channels <= 8:
            files[without_stored_length(folder / f"{channels}ch.flac", folder / f"{channels}ch-streamed.flac")] = (
                channels
            )
    return files


def test_every_channel_count_in_every_container_is_decoded_or_refused_never_crashes(every_container):
    results = decode_in_child(list(every_container))
    assert len(results) == len(every_container) > 100
    for result in results:
        channels = every_container[Path(result["path"])]
        if channels <= 8:
            assert result["ok"], result
            assert abs(result["seconds"] - 1.0) < 0.1 and abs(result["peak_hz"] - 440) < 3, result
        else:
            name = Path(result["path"]).name
            assert result["refused"] == (
                f"'{name}' has {channels} audio channels; at most 8 are accepted: send mono or stereo audio."
            )


def test_damaged_files_are_decoded_or_refused_never_a_crash_or_a_generic_error(every_container, tmp_path):
    rng = random.Random(7)
    sources = [p for p in every_container if every_container[p] in (1, 2, 6, 8, 16)]
    damaged = []
    for i in range(150):
        source = rng.choice(sources)
        data = bytearray(source.read_bytes())
        how = i % 3
        if how == 0:  # bytes overwritten
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif how == 1:  # cut short
            data = data[: rng.randrange(1, len(data))]
        else:  # a piece taken out of the middle
            a, b = sorted(rng.sample(range(len(data)), 2))
            data = data[:a] + data[b:]
        path = tmp_path / f"damaged{i}-{source.name}"
        path.write_bytes(bytes(data))
        damaged.append(path)
    results = decode_in_child(damaged)  # an exception other than AudioInputError ends the child: a failure
    assert len(results) == 150
    assert {r["ok"] for r in results} == {True, False}  # some survive damage, some are refused


def test_pyav_failing_on_a_damaged_file_in_python_is_a_refusal_not_a_generic_error(monkeypatch, tmp_path):
    # Fuzzing found m4a files that PyAV opens with an audio stream lacking codec parameters: its
    # `rate` raises AttributeError (2 of 1,000 damaged files, docs/measurements.md).
    import av

    from speech import audio_files
    from speech.audio import AudioInputError

    class Stream:
        def __getattr__(self, name):
            raise AttributeError(f"'AudioStream' object has no attribute '{name}'")

    class Container:
        streams = type("Streams", (), {"audio": [Stream()]})()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(av, "open", lambda path: Container())
    with pytest.raises(AudioInputError) as err:
        audio_files.decode(str(tmp_path / "fuzzed.m4a"), "fuzzed.m4a", 600)
    assert str(err.value) == "Could not decode 'fuzzed.m4a' as audio. Use wav, flac, ogg, mp3 or m4a."


@pytest.mark.slow
def test_a_file_too_large_to_decode_is_refused_from_its_header_and_the_worst_accepted_one_stays_in_memory_bounds(
    tmp_path,
):
    # 8 channels at 192 kHz for 590 s of DC: 0.9 MB of FLAC, 3.6 GB as float32 (it took RSS from
    # 0.7 to 4.6 GB). And the largest file the budget accepts, 600 s of 192 kHz stereo, also
    # without a stored length (decoded by FFmpeg).
    from bench.hostile import constant_flac

    huge = constant_flac(tmp_path / "dc8ch192k.flac", 192_000, 8, 590)
    worst = constant_flac(tmp_path / "worst.flac", 192_000, 2, 600, ticks=True)
    streamed = without_stored_length(worst, tmp_path / "worst-streamed.flac")
    refused, *accepted = decode_in_child([huge, worst, streamed])
    assert refused["refused"] == (
        "'dc8ch192k.flac' holds more audio data than this app decodes (8 channels at 192 kHz for 590 s): "
        "send mono or stereo audio, at most 48 kHz."
    )
    assert refused["s"] < 0.1 and refused["grew_mb"] < 10
    for result in accepted:
        assert result["ok"] and result["seconds"] == pytest.approx(600, abs=0.1)
        assert result["grew_mb"] < 200, result  # the bound docs/measurements.md states


def test_an_mp3_with_a_damaged_middle_decodes_past_the_damage_as_ffmpeg_does(tmp_path):
    import io

    from speech.audio import load_audio

    t = np.arange(16_000 * 60) / 16_000
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000, format="MP3")
    data = bytearray(buffer.getvalue())
    middle = len(data) // 2
    data[middle : middle + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path = tmp_path / "damaged.mp3"
    path.write_bytes(bytes(data))
    pcm = subprocess.run(
        [require("ffmpeg")["ffmpeg"], "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "16000", "-"],
        capture_output=True,
        check=True,
    ).stdout
    ffmpeg_s = len(pcm) / 32_000
    assert ffmpeg_s > 55  # (the app stopped at the first bad frame: 30 s)
    assert len(load_audio(str(path))) / 16_000 == pytest.approx(ffmpeg_s, abs=0.05)


def planar_to_ndarray(path: str) -> np.ndarray:
    """How the app decoded before: PyAV's planar frames to NumPy (segfaults on 8 channels); the
    first channel."""
    import av

    with av.open(path) as container:
        planar = av.AudioResampler(format="fltp")
        return np.concatenate([out.to_ndarray()[0] for f in container.decode(audio=0) for out in planar.resample(f)])


def test_a_decoder_that_crashes_natively_ends_a_worker_and_refuses_the_file_the_server_lives_on(every_container):
    from serving import audio_worker
    from speech.audio import AudioInputError

    eight = next(p for p in every_container if p.name == "8ch.m4a")
    two = next(p for p in every_container if p.name == "2ch.m4a")
    old_way = "tests.test_audio_hostile:planar_to_ndarray"
    assert len(audio_worker.run(old_way, str(two))) > 15_000  # 2 channels: fine
    with pytest.raises(AudioInputError) as err:
        audio_worker.run(old_way, str(eight))  # a segfault, in a worker
    assert str(err.value) == "'8ch.m4a' could not be decoded: the file is damaged. Use wav, flac, ogg, mp3 or m4a."
    samples = audio_worker.load_isolated(str(eight))  # the app's decoder, in a new worker
    assert len(samples) / 16_000 == pytest.approx(1.0, abs=0.1)
    with pytest.raises(AudioInputError, match="has 16 audio channels"):  # a refusal crosses the process as itself
        audio_worker.load_isolated({"path": str(next(p for p in every_container if p.name == "16ch.wav"))})


def test_the_app_serves_the_37_kb_upload_that_used_to_kill_it_and_refuses_sixteen_channels(tiny_app, every_container):
    from gradio_client import Client, handle_file

    client = Client(tiny_app, verbose=False)
    eight = next(p for p in every_container if p.name == "8ch.m4a")
    spotted = client.predict(handle_file(str(eight)), api_name="/spot")
    assert spotted["label"] in {c["label"] for c in spotted["confidences"]} and len(spotted["confidences"]) == 5
    assert isinstance(client.predict(handle_file(str(eight)), api_name="/transcribe"), str)
    sixteen = next(p for p in every_container if p.name == "16ch.webm")
    with pytest.raises(Exception, match="'16ch.webm' has 16 audio channels; at most 8 are accepted"):
        client.predict(handle_file(str(sixteen)), api_name="/spot")
    assert set(client.predict(api_name="/status")) >= {"asr", "kws", "app"}  # still serving


def test_a_relative_path_is_decoded_from_the_servers_folder_not_the_workers(every_container, monkeypatch):
    from serving import audio_worker

    two = next(p for p in every_container if p.name == "2ch.m4a")
    monkeypatch.chdir(two.parent)
    assert len(audio_worker.load_isolated("2ch.m4a")) / 16_000 == pytest.approx(1.0, abs=0.1)
