"""Hostile uploads against the app in a process of its own (tiny models, loopback): each file sent
to `/spot` and `/transcribe` in turn while a monitor calls `/status` every 0.25 s over plain HTTP.
Prints, per request, what came back (served, or the refusal's sentence), its time and the serving
process's RSS before and after; then `/status` p50/p95/max and whether the app is still up.

    python -m bench.hostile              # the files below
    python -m bench.hostile --worst      # and the largest file accepted (100 MB, 600 s at 192 kHz)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.load import monitor, rss_mb, spread, wait_for_app
from scripts.local_app import ROOT, free_port
from serving.scratch import scratch_folder


def tone(seconds: float, rate: int = 16_000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.tile((0.3 * np.sin(2 * np.pi * 440 * t))[:, None], (1, channels)).astype(np.float32)


def ffmpeg(wav: Path, out: Path, *options: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *options, str(out)], check=True)
    return out


def constant_flac(path: Path, rate: int, channels: int, seconds: int, ticks: bool = False) -> Path:
    """`seconds` of a constant level (DC) as 16-bit FLAC, written a second at a time: hundreds of
    seconds of many channels in a small file. `ticks`: a sample in 97 raised, so it is not silent."""
    block = np.full((rate, channels), 0.25, np.float32)
    if ticks:
        block[::97] = 0.3
    with sf.SoundFile(path, "w", rate, channels, format="FLAC", subtype="PCM_16") as file:
        for _ in range(seconds):
            file.write(block)
    return path


def mp3_bytes(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds), 16_000, format="MP3")
    return buffer.getvalue()


def hostile_files(folder: Path, worst: bool) -> list[Path]:
    """The issue's files and their kin: many channels in containers PyAV decodes, more audio data
    than the budget, a long file whose header understates it, damage, and text named as audio."""
    files = []
    for channels in (8, 12, 16):
        wav = folder / f"{channels}ch.wav"
        sf.write(wav, tone(3.0, channels=channels), 16_000, subtype="PCM_16")
        files.append(ffmpeg(wav, folder / f"{channels}ch.webm", "-c:a", "libopus", "-mapping_family", "255"))
    files.append(ffmpeg(folder / "8ch.wav", folder / "8ch.m4a", "-c:a", "aac"))
    files.append(constant_flac(folder / "dc8ch192k.flac", 192_000, 8, 590))
    joined = folder / "two_hours_header_says_10s.mp3"
    joined.write_bytes(mp3_bytes(10.0) * 720)
    files.append(joined)
    damaged = bytearray(mp3_bytes(60.0))
    damaged[len(damaged) // 2 : len(damaged) // 2 + 3000] = os.urandom(3000)
    (folder / "damaged_middle.mp3").write_bytes(bytes(damaged))
    files.append(folder / "damaged_middle.mp3")
    (folder / "text.mp3").write_text("not audio\n" * 100)
    files.append(folder / "text.mp3")
    if worst:
        files.append(constant_flac(folder / "worst_600s_192k_stereo.flac", 192_000, 2, 600, ticks=True))
    return files


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worst", action="store_true", help="also the largest file the limits accept")
    parser.add_argument("--endpoints", nargs="+", default=["/spot", "/transcribe"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    work = scratch_folder("hostile-")
    from scripts.tiny_models import build_all

    build_all(work / "checkpoints")
    files = hostile_files(work, args.worst)
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(work)}
    app = subprocess.Popen(
        [sys.executable, "app.py", "--checkpoints", str(work / "checkpoints"), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=(work / "app.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    report: dict = {"requests": []}
    watcher = None
    try:
        if not wait_for_app(url, app, 120):
            raise SystemExit(f"the app did not start:\n{(work / 'app.log').read_text()[-3000:]}")
        from gradio_client import Client, handle_file

        from scripts.local_app import settled_status

        client = Client(url, verbose=False)
        settled_status(client, timeout_s=300)
        watcher = monitor(url, work / "status.json", work / "stop", "http")
        for path in files:
            for endpoint in args.endpoints:
                before = rss_mb(app.pid)
                start = time.perf_counter()
                try:
                    client.predict(handle_file(str(path)), api_name=endpoint)
                    outcome = "served"
                except Exception as err:  # noqa: BLE001 - a refusal is the point; its sentence is reported
                    outcome = str(err).splitlines()[-1][:140] if app.poll() is None else f"APP DIED: {err}"
                row = {
                    "file": path.name,
                    "endpoint": endpoint,
                    "outcome": outcome,
                    "seconds": round(time.perf_counter() - start, 2),
                    "rss_mb_before": round(before, 1),
                    "rss_mb_after": round(rss_mb(app.pid), 1) if app.poll() is None else None,
                }
                report["requests"].append(row)
                print(
                    f"{row['file']:<30} {endpoint:<12} {row['seconds']:6.2f} s  RSS {row['rss_mb_before']:.0f} -> "
                    f"{row['rss_mb_after']} MB  {outcome}",
                    flush=True,
                )
                if app.poll() is not None:
                    break
        report["app_alive"] = app.poll() is None
    finally:
        (work / "stop").touch()
        if watcher is not None:
            watcher.wait(60)
            status_times = json.loads((work / "status.json").read_text()) if (work / "status.json").exists() else []
            report["status"] = spread(status_times)
            print(f"/status during the run: {report['status']}; app alive: {report.get('app_alive')}")
        app.terminate()
        app.wait(30)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
