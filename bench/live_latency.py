"""How live the Live transcript is: one visitor speaking sentences with pauses into the speech
recognition tab's Live handler, fed at real time as a browser feeds it (a chunk every 0.5 s; the
server takes the newest), with and without the voice gate, on a real-size model with random
weights served as the app serves it (int8 ONNX Runtime on a CPU).

    python -m bench.live_latency [--seconds 60] [--model wav2vec2-base|distilhubert|tiny] [--json out.json]

Prints, per path: each update's latency (from the chunk's arrival to its text), p50 and p95; the
model time over the audio; and with the gate, its readouts over every sentence (`speech.utterances`:
from the start of speech to the first word shown, from the end of speech to the final text), p50
and p95. Without the gate the text turns final only at Stop. Speed does not depend on the
weights' values; what a random model writes does, so "first word" here means the first update
that shows any text for the sentence.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from bench import live_capacity
from bench.synthetic import ctc_checkpoint, speech_with_pauses
from serving.scratch import scratch_folder


def feed(loaded, audio: np.ndarray, seconds: float, vad: bool) -> dict:
    """One visitor at real time (`live_capacity.visitor`): a 0.5 s chunk of `audio` (looped, from
    its start) every 0.5 s; the handler takes the newest. Returns the update latencies and the
    final state."""
    from ui import live

    places = live.Places(places=1, turn_s=0)
    latencies: list[float] = []
    handler = live_capacity.serving("asr", loaded, places, vad)
    live_capacity.visitor(handler, places, "v", 0.5, seconds, [], audio, offset=0, latencies=latencies)
    hearing = places.hearing("v")
    return {"latencies": latencies[1:], "state": places.recording("v").state, "heard_s": hearing.heard_s,
            "missed_s": hearing.dropped_s + hearing.gaps_s}  # fmt: skip


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    return {"p50": round(float(np.median(values)), 3), "p95": round(float(np.percentile(values, 95)), 3),
            "n": len(values)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", choices=["wav2vec2-base", "distilhubert", "tiny"], default="wav2vec2-base")
    parser.add_argument("--json", help="Also write the report to this file.")
    args = parser.parse_args(argv)
    root = scratch_folder("live-latency-")
    os.environ.setdefault("ONNX_CACHE", str(root / "onnx-cache"))
    from slots.registry import Registry

    ctc_checkpoint(root, args.model)
    loaded = Registry(root)["asr"].settled(wait_s=900)
    audio = speech_with_pauses(root)
    report: dict = {"model": args.model, "device": loaded.device, "precision": loaded.precision,
                    "cores": os.cpu_count(), "seconds": args.seconds}  # fmt: skip
    for vad in (False, True):
        run = feed(loaded, audio, args.seconds, vad)
        row = {
            "update_latency_s": percentiles(run["latencies"]),
            "heard_share": round(run["heard_s"] / max(run["heard_s"] + run["missed_s"], 1e-9), 3),
        }
        if vad:
            readouts = run["state"].readouts
            row.update(
                first_word_s=percentiles(readouts.first_word_s),
                final_s=percentiles(readouts.final_s),
                model_time_over_audio=readouts.summary()["rtf"],
                speech_share=round(readouts.speech_s / max(readouts.heard_s, 1e-9), 3),
            )
        report["with_vad" if vad else "without_vad"] = row
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
