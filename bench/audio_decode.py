"""What decoding an upload costs in the serving process, against decoding it in a child process
(whose crash would be a refused input instead of a dead server): the app's workers kept running
(`serving.audio_worker`, one round trip per file) and a fresh process per file. Printed as ratios to
the in-process time, for files a visitor typically sends, with the workers' memory.

    python -m bench.audio_decode                 # 10 s and 60 s clips, 5 repeats
    python -m bench.audio_decode --seconds 2 --repeats 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

from bench.timing import p50
from serving import audio_worker
from speech.audio import load_audio

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


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    fresh = [sys.executable, "-c", "import sys; from speech.audio import load_audio; load_audio(sys.argv[1])"]
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as folder:
        warmup = str(make(Path(folder), *KINDS[0][:4], 1.0))
        for _ in audio_worker._workers:  # every worker started and its decoders imported
            audio_worker.load_isolated(warmup)
        for seconds in args.seconds:
            for name, rate, channels, options in KINDS:
                path = str(make(Path(folder), name, rate, channels, options, seconds))
                inline = p50(lambda p=path: load_audio(p), args.repeats)
                pooled = p50(lambda p=path: audio_worker.load_isolated(p), args.repeats)
                spawned = p50(lambda p=path: subprocess.run([*fresh, p], cwd=ROOT, check=True), args.repeats)
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
    workers = [psutil.Process(w.process.pid).memory_full_info() for w in audio_worker._workers if w.process]
    for row in rows:
        row["worker_uss_mb"] = [round(m.uss / 2**20) for m in workers]
    print("workers' memory (USS, after decoding):", ", ".join(f"{m.uss / 2**20:.0f} MB" for m in workers))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
