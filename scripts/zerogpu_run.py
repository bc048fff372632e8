"""The app on ZeroGPU, driven as visitors do; prints a JSON report. Run in its own process with
SPACES_ZERO_GPU=true, so that `serving.gpu` decorates at import:

    python -m scripts.zerogpu_run CHECKPOINTS SQUAD_FILE [LONG_CLIP]

with the stand-in package first on PYTHONPATH (`tests/zerogpu_standin/spaces`; `tests/test_zerogpu.py`),
or with the real package and a device API (`scripts/zerogpu_device_api.py`; `bench/zerogpu_e2e.py`, on
a CUDA machine): there the device API records the calls, and the guard and the refusal, which only
the stand-in offers, are left out.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import spaces  # the stand-in
from gradio_client import Client, handle_file

import app
from scripts.local_app import free_port
from serving import gpu
from ui import asr, kws

ROOT = Path(__file__).resolve().parents[1]
QUOTA = (
    "ZeroGPU quota exceeded",
    "You have exceeded your free ZeroGPU quota (20s requested vs. 3s left). Try again in 7:41:22. ",
)


STAND_IN = hasattr(spaces, "CALLS")


def calls_since(before: int) -> list:
    return spaces.CALLS[before:] if STAND_IN else []


def main(checkpoints: Path, squad_file: Path) -> dict:
    report: dict = {"zero_gpu": gpu.ZERO_GPU, "outside": [], "stand_in": STAND_IN}
    registry = app.open_registry(checkpoints, preload=False)  # as app.py: on ZeroGPU, loads every slot here
    report["app"] = registry.summary()
    report["states"] = {name: slot.state for name, slot in registry.slots.items()}
    report["precisions"] = {name: slot.peek().precision for name, slot in registry.slots.items()}
    report["live_is_a_copy"] = {
        n: registry[n].peek().live_model is not registry[n].peek().model for n in ("asr", "kws")
    }

    def only_inside(module, args):  # a served model run outside a lent GPU call
        if not spaces.inside():
            report["outside"].append(type(module).__name__)

    if STAND_IN:  # (the real package's emulation fails such a run by itself)
        for slot in registry.slots.values():
            slot.peek().model.register_forward_pre_hook(only_inside)

        from speech import spotting  # the guard's control: a served model run outside a call is caught

        loaded = registry["kws"].peek()
        spotting.window_probs(loaded.model, loaded.processor, [np.zeros(spotting.WINDOW, np.float32)])
        report["control"], report["outside"] = report["outside"], []

    demo = app.build_app(registry)
    texts = [str(c.get("props", {}).get("value", "")) for c in demo.config["components"]]
    report["live_lines"] = sum("uses none of your daily GPU time" in text for text in texts)
    port = free_port()
    app.serve(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    long_clip = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    visits = {
        "transcribe": lambda: client.predict(handle_file(asr.EXAMPLES[0]), api_name="/transcribe"),
        "spot": lambda: client.predict(handle_file(str(ROOT / "assets/kws/yes_en-us.wav")), api_name="/spot"),
        "answer": lambda: client.predict(
            "Paris is the capital of France.", "What is the capital?", api_name="/answer"
        ),
        "batch": lambda: client.predict(handle_file(str(squad_file)), True, api_name="/batch_evaluate"),
    }
    if long_clip is not None:
        visits["transcribe_long"] = lambda: client.predict(handle_file(str(long_clip)), api_name="/transcribe")
    report["visits"] = {}
    for name, visit in visits.items():
        before, start = len(getattr(spaces, "CALLS", [])), time.monotonic()
        result = visit()
        report["visits"][name] = {
            "calls": calls_since(before),
            "result": _short(result),
            "window": [start, time.monotonic()],  # (CLOCK_MONOTONIC: comparable with the device API's)
        }

    # A live recording of 5 s on each Live tab, as their stream handlers receive it.
    before, live_start = len(getattr(spaces, "CALLS", [])), time.monotonic()
    speech, rate = sf.read(asr.EXAMPLES[0], dtype="float32")
    state = None
    for start in range(0, 5 * rate, rate // 2):
        state, text, _ = asr.live_update(registry["asr"].peek(), state, (rate, speech[start : start + rate // 2]))
    state, text, _ = asr.live_finish(registry["asr"].peek(), state)
    listener = None
    for start in range(0, 5 * rate, rate // 4):
        chunk = speech[start : start + rate // 4] if start < len(speech) else np.zeros(rate // 4, np.float32)
        listener, *_ = kws.listen(registry["kws"].peek(), listener, (rate, chunk), 0.5)
    report["live"] = {
        "calls": calls_since(before),
        "seconds": round(state.seconds, 2),
        "text": text,
        "window": [live_start, time.monotonic()],
    }
    report["reload"] = {name: what["reload"] for name, what in registry.reload().items()}
    if not STAND_IN:
        demo.close()
        return report

    spaces.REFUSE = QUOTA  # this visitor's quota is spent...
    try:
        client.predict("Paris is the capital of France.", "What is the capital?", api_name="/answer")
        report["refused"] = None
    except Exception as err:  # noqa: BLE001 - what the visitor's client is told
        report["refused"] = str(err)
    spaces.REFUSE = None  # ...and the next visitor is served
    report["after_refusal"] = _short(
        client.predict("Paris is the capital of France.", "What is the capital?", api_name="/answer")
    )
    demo.close()
    return report


def _short(result):
    return json.loads(json.dumps(result, default=str))


if __name__ == "__main__":
    print("REPORT " + json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
