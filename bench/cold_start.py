"""A CPU Space's start: `python app.py` on real-size models (random weights) with an empty int8
export cache, then again with the cache filled, as a Space restarts.

    python -m bench.cold_start

The four slots as this project trains them (`bench.synthetic.build_checkpoints`: DistilHuBERT
CTC and keyword classifier, DistilBERT and XLM-R QA). Prints, per start: seconds from launch to
the page, to the first `/answer` (and in what precision it came), to every slot serving int8;
the serving process's RSS at its peak and once the exports are done; the export processes' peak
RSS (their memory is returned when they exit); the two together at their highest, sampled twice a
second (what the machine must hold).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from bench.synthetic import build_checkpoints
from scripts.local_app import ROOT, free_port
from serving.scratch import scratch_folder

CONTEXT = "The Eiffel Tower was built in 1889 by Gustave Eiffel. It stands in Paris and is 330 metres tall."
QUESTION = "When was the Eiffel Tower built?"


def call(client: httpx.Client, url: str, endpoint: str, data: list) -> object | None:
    """The endpoint's result, or None if it failed (a slot not ready yet)."""
    event = client.post(f"{url}gradio_api/call/{endpoint}", json={"data": data}).json()["event_id"]
    body = client.get(f"{url}gradio_api/call/{endpoint}/{event}").text
    if "event: complete" not in body:
        return None
    return json.loads(body.split("data:", 1)[1].strip())[0]


def start(checkpoints: Path, cache: Path, timeout_s: float = 1800) -> dict:
    """One start of the app, watched until every slot serves int8 (and 5 s more)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "ONNX_CACHE": str(cache)}
    launched = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--checkpoints", str(checkpoints)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    app = psutil.Process(proc.pid)
    row: dict = {"page_s": None, "first_answer_s": None, "first_answer_precision": None, "all_int8_s": None}
    peak, children_peak, together = 0.0, 0.0, 0.0
    try:
        with httpx.Client(timeout=600) as client:
            while time.monotonic() - launched < timeout_s:
                serving = app.memory_info().rss / 2**20
                exporting = 0.0
                for child in app.children(recursive=True):
                    try:
                        if "slots.int8_export" in " ".join(child.cmdline()):
                            exporting += child.memory_info().rss / 2**20
                    except psutil.Error:
                        pass
                peak, children_peak = max(peak, serving), max(children_peak, exporting)
                together = max(together, serving + exporting)
                try:
                    if row["page_s"] is None:
                        client.get(url).raise_for_status()
                        row["page_s"] = round(time.monotonic() - launched, 1)
                    if row["first_answer_s"] is None:
                        answers = call(client, url, "answer", [CONTEXT, QUESTION])
                        if answers and all("error" not in a for a in answers.values()):
                            row["first_answer_s"] = round(time.monotonic() - launched, 1)
                            row["first_answer_precision"] = sorted({a["precision"] for a in answers.values()})
                    status = call(client, url, "status", [])
                except httpx.HTTPError:
                    time.sleep(0.5)
                    continue
                slots = {k: v for k, v in (status or {}).items() if isinstance(v, dict) and "precision" in v}
                if len(slots) == 4 and all(v["precision"].startswith("int8") for v in slots.values()):
                    if row["all_int8_s"] is None:
                        row["all_int8_s"] = round(time.monotonic() - launched, 1)
                        settled_at = time.monotonic()
                    elif time.monotonic() - settled_at > 5:
                        break
                time.sleep(0.5)
        row["rss_peak_mb"] = round(peak)
        row["rss_after_mb"] = round(app.memory_info().rss / 2**20)
        row["export_process_peak_mb"] = round(children_peak) or None
        row["together_peak_mb"] = round(together)  # the machine's memory must hold this
    finally:
        proc.terminate()
        proc.wait(30)
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    root, cache = scratch_folder("cold-start-"), scratch_folder("cold-start-onnx-")
    build_checkpoints(root)
    rows = [{"start": "empty export cache", **start(root, cache)}]
    rows.append({"start": "exports cached", **start(root, cache)})
    for row in rows:
        print(json.dumps(row))
    return rows


if __name__ == "__main__":
    main()
