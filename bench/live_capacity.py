"""How many live recordings this machine's CPU hears in full at once: the Live tabs' handlers
(`ui.asr.live_update`, `ui.kws.listen`, each served by `ui.live.serving`) on real-size
models with random weights (DistilHuBERT's shape, served as the app serves them: int8 ONNX on a
CPU), fed by simulated visitors as Gradio 6.31 feeds them (docs/measurements.md, *Live
microphones*): each visitor's browser posts a chunk every `chunk_s` seconds of wall time, and the
server keeps only the newest one while that visitor's handler runs, so a handler slower than the
audio loses audio.

    python -m bench.live_capacity                       # 1-4 visitors, 20 s each, both tabs
    python -m bench.live_capacity --visitors 1 2 3 4 6 --seconds 30 --json out.json
    python -m bench.live_capacity --tabs --together 1+1 2+2 3+3   # both Live tabs at once
    python -m bench.live_capacity --tabs asr --speech --vad both --visitors 3 4 5 6 8   # speech with pauses,
                                                 # each count without and with voice-activity detection

Prints, per tab and number of visitors at once: the share of audio heard (what `Places` counts as
heard against what it counts as never arrived), and the handler's time per update (p50, p95).
Gradio's own work per chunk (the HTTP post, JSON, the page's update) is not in it: a real server
hears a little less. Speed does not depend on the weights' values, but the voice gate's work does
on the audio: with `--speech` each visitor speaks espeak-ng sentences with pauses between them
(`speech_with_pauses`; noise otherwise), which `--vad` feeds through the gate (`ui.asr.live_chunk`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from bench import synthetic
from serving.scratch import scratch_folder

TABS = {"asr": 0.5, "kws": 0.25}  # chunk seconds, as the tabs stream them


def visitor(
    handler,
    places,
    session: str,
    chunk_s: float,
    seconds: float,
    times: list[float],
    audio: np.ndarray | None = None,
    offset: int | None = None,
    latencies: list[float] | None = None,
) -> None:
    """One recording: a browser thread posting 48 kHz chunks on time (of `audio`, looped, from
    `offset` or each visitor from another point of it; noise without), the server's handler
    taking the newest (older ones are replaced, as Gradio's `/stream/{event_id}` does). `times`
    gets each update's handler time; `latencies`, each from its chunk's arrival to its answer."""
    newest: list = [None]
    lock = threading.Lock()
    done = threading.Event()
    rng = np.random.default_rng(abs(hash(session)) % 2**32)
    size = int(48_000 * chunk_s)
    if offset is None:
        offset = int(rng.integers(0, len(audio))) if audio is not None else 0

    def browser() -> None:
        start = time.monotonic()
        for k in range(int(seconds / chunk_s)):
            time.sleep(max(0.0, start + (k + 1) * chunk_s - time.monotonic()))
            if audio is None:
                chunk = (rng.standard_normal(size) * 3000).astype(np.int16)
            else:
                chunk = np.take(audio, np.arange(offset + k * size, offset + (k + 1) * size), mode="wrap")
            with lock:
                newest[0] = ((48_000, chunk), time.monotonic())
        done.set()

    thread = threading.Thread(target=browser, daemon=True)
    thread.start()
    request = SimpleNamespace(session_hash=session)  # (what `live.session_of` reads)
    places.start(session)
    while True:
        finished = done.is_set()  # read before taking the chunk: the last one is still served
        with lock:
            item, newest[0] = newest[0], None
        if item is None:
            if finished:
                break
            time.sleep(0.002)
            continue
        chunk, arrived = item
        began = time.perf_counter()
        handler(request, chunk)
        times.append(time.perf_counter() - began)
        if latencies is not None:
            latencies.append(time.monotonic() - arrived)
    thread.join()


def serving(tab: str, loaded, places, vad: bool = False):
    """The tab's Live handler, as the app serves it (`live.serving`); `vad`: the ASR tab listening
    for speech (its box on)."""
    from ui import asr, kws, live

    if tab == "asr" and vad:

        def serve(chunk, state, missing_s):
            return asr.live_chunk(loaded, state, chunk, missing_s, True)

        return live.serving(places, serve, outputs=3)
    if tab == "asr":

        def serve(chunk, state, missing_s):
            return asr.live_update(loaded, state, chunk, missing_s)
    else:

        def serve(chunk, listener, missing_s):
            return kws.listen(loaded, listener, chunk, 0.8, missing_s)

    return live.serving(places, serve)


def run_together(
    models: dict[str, Any], counts: dict[str, int], seconds: float, audio: np.ndarray | None = None, vad: bool = False
) -> list[dict]:
    """`counts[tab]` visitors at each tab's Live microphone at once (each tab with its own places,
    as in the app); one row per tab."""
    from ui import live

    places = {tab: live.Places(places=counts[tab], turn_s=0) for tab in counts}
    handlers = {tab: serving(tab, models[tab], places[tab], vad) for tab in counts}
    visitors = [(tab, f"v{i}") for tab in counts for i in range(counts[tab])]
    times: dict[tuple[str, str], list[float]] = {v: [] for v in visitors}
    threads = [
        threading.Thread(
            target=visitor,
            args=(handlers[tab], places[tab], session, TABS[tab], seconds, times[tab, session], audio),
        )
        for tab, session in visitors
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = []
    for tab, count in counts.items():
        hearings = [places[tab].hearing(f"v{i}") for i in range(count)]  # no Stop here: none is forgotten
        heard = sum(h.heard_s for h in hearings)
        missed = sum(h.dropped_s + h.gaps_s for h in hearings)
        updates = [t for (t_tab, _), per in times.items() if t_tab == tab for t in per[1:]]  # (first: warm-up)
        rows.append(
            {
                "tab": tab,
                "visitors": count,
                "vad": vad and tab == "asr",
                "audio": "speech with pauses" if audio is not None else "noise",
                "alongside": {other: n for other, n in counts.items() if other != tab},
                "heard_share": round(heard / max(heard + missed, 1e-9), 3),
                "update_p50_s": round(statistics.median(updates), 3),
                "update_p95_s": round(float(np.percentile(updates, 95)), 3),
                "updates": len(updates),
            }
        )
    return rows


def run(tab: str, loaded, count: int, seconds: float) -> dict:
    """`count` visitors at one tab's Live microphone at once."""
    return run_together({tab: loaded}, {tab: count}, seconds)[0]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tabs", nargs="*", choices=sorted(TABS), default=sorted(TABS))
    parser.add_argument(
        "--together", nargs="*", default=[], metavar="ASR+KWS", help="then both tabs at once, e.g. 1+1 2+2 3+3"
    )
    parser.add_argument("--speech", action="store_true", help="visitors speak sentences with pauses (else noise)")
    parser.add_argument("--vad", choices=["off", "on", "both"], default="off", help="the ASR tab listening for speech")
    parser.add_argument(
        "--asr-model", choices=["distilhubert", "wav2vec2-base"], default="distilhubert",
        help="the ASR model's architecture (the hub default slot serves wav2vec 2.0 base)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = scratch_folder("live-capacity-")  # the models and their exports: removed at exit
    os.environ.setdefault("ONNX_CACHE", str(root / "onnx-cache"))
    from bench.synthetic import build_checkpoints
    from slots.registry import Registry

    build_checkpoints(root, speech_only=True)
    if args.asr_model != "distilhubert":
        import shutil

        from bench.synthetic import ctc_checkpoint

        shutil.rmtree(root / "asr")
        ctc_checkpoint(root, args.asr_model)
    registry = Registry(root)
    rows = []
    audio = synthetic.speech_with_pauses(root) if args.speech else None
    gates = {"off": [False], "on": [True], "both": [False, True]}[args.vad]
    print(
        f"{os.cpu_count()} cores; {args.seconds:g} s per visitor; {'speech with pauses' if args.speech else 'noise'}"
    )
    print(f"{'tab':<4} {'visitors':>8} {'heard':>7} {'update p50':>11} {'p95':>7}  (chunk: asr 0.5 s, kws 0.25 s)")
    plan = [{tab: count} for tab in args.tabs for count in args.visitors]
    plan += [dict(zip(TABS, map(int, mix.split("+")), strict=True)) for mix in args.together]
    models = {tab: registry[tab].settled(wait_s=900) for tab in {tab for counts in plan for tab in counts}}
    for counts in plan:
        for row in (r for gate in gates for r in run_together(models, counts, args.seconds, audio, gate)):
            row["precision"] = models[row["tab"]].precision
            rows.append(row)
            beside = "".join(f" (+{n} {other})" for other, n in row["alongside"].items())
            beside += " with VAD" if row["vad"] else ""
            print(
                f"{row['tab']:<4} {row['visitors']:>8} {row['heard_share']:>7.1%} {row['update_p50_s']:>10.3f}s "
                f"{row['update_p95_s']:>6.3f}s{beside}",
                flush=True,
            )
    if args.json:
        summary = {"cores": os.cpu_count(), "seconds": args.seconds, "asr_model": args.asr_model, "rows": rows}
        args.json.write_text(json.dumps(summary, indent=2))
    return rows


if __name__ == "__main__":
    main()
