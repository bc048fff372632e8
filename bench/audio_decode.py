"""What decoding an upload costs in the serving process, against decoding it in a child process
(whose crash would be a refused input instead of a dead server): a worker kept running
(`forkserver`, one round trip per file) and a fresh process per file. Printed as ratios to the
in-process time, for files a visitor typically sends.

    python -m bench.audio_decode                 # 10 s and 60 s clips, 5 repeats
    python -m bench.audio_decode --seconds 2 --repeats 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from core.audio import load_audio

ROOT = Path(__file__).resolve().parents[1]
# (name, rate, channels, ffmpeg options): a phone's m4a, an mp3, a browser's recording as WAV.
KINDS = [
    ("m4a, 48 kHz stereo", 48_000, 2, ["-c:a", "aac"]),
    ("mp3, 44.1 kHz stereo", 44_100, 2, ["-c:a", "libmp3lame"]),
    ("wav, 48 kHz mono", 48_000, 1, None),
]


def make(folder: Path, name: str, rate: int, channels: int, options: list[str] | None, seconds: float) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    wav = folder / f"{name.split(',')[0]}-{seconds:g}s.wav"
    sf.write(wav, np.tile((0.3 * np.sin(2 * np.pi * 440 * t))[:, None], (1, channels)), rate, subtype="PCM_16")
    if options is None:
        return wav
    out = wav.with_suffix("." + name.split(",")[0])
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *options, str(out)], check=True)
    return out


def _decode(path: str) -> int:
    return len(load_audio(path))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["core.audio"])
    fresh = [sys.executable, "-c", "import sys; from core.audio import load_audio; load_audio(sys.argv[1])"]
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as folder, context.Pool(1) as worker:
        worker.apply(_decode, (make(Path(folder), *KINDS[2][:4], 1.0),))  # started and warm
        for seconds in args.seconds:
            for name, rate, channels, options in KINDS:
                path = str(make(Path(folder), name, rate, channels, options, seconds))
                _decode(path)  # imports and caches warm
                inline = timed(lambda p=path: _decode(p), args.repeats)
                pooled = timed(lambda p=path: worker.apply(_decode, (p,)), args.repeats)
                spawned = timed(lambda p=path: subprocess.run([*fresh, p], cwd=ROOT, check=True), args.repeats)
                rows.append(
                    {
                        "file": name,
                        "seconds": seconds,
                        "in_process_s": round(inline, 4),
                        "worker_ratio": round(pooled / inline, 2),
                        "fresh_process_ratio": round(spawned / inline, 2),
                        "worker_extra_ms": round((pooled - inline) * 1000, 1),
                        "fresh_process_extra_ms": round((spawned - inline) * 1000, 1),
                    }
                )
                r = rows[-1]
                print(
                    f"{name:<22} {seconds:>5g} s  in process {inline * 1000:7.1f} ms  worker x{r['worker_ratio']:<5} "
                    f"(+{r['worker_extra_ms']} ms)  fresh process x{r['fresh_process_ratio']:<6} "
                    f"(+{r['fresh_process_extra_ms']} ms)",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
