"""The app under many visitors at once: N clients each sending a mix of requests through
gradio_client, on loopback only, in rounds; prints errors, p50/p95 per endpoint, how long `/status`
took while the others computed, and the app's memory after each round.

    python -m bench.load                                   # 50 clients x 20 requests, 5 rounds
    python -m bench.load --rounds 1 --clients 8 --requests 5 --json out.json

The app runs as `python app.py` in a process of its own (so its memory is its own), on the tiny
checkpoints the tests use unless `--checkpoints` names a folder. Each client cycles through
/status, /answer, /spot and /transcribe (uploading its clip as a visitor's browser does). The run
is bounded: `--max-s` stops it (and the app) whatever is left, and each request has a timeout.

Beside the visitors, two monitors in processes of their own (so the visitors' threads do not slow
their clocks) call `/status` every 0.25 s, one over plain HTTP (`POST /gradio_api/run/status`, off
the queue: a health check), one through gradio_client (a visitor's script): what `/status` costs
while the app is under load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from scripts.local_app import ROOT, free_port
from serving.scratch import scratch_folder

ENDPOINTS = ("/status", "/answer", "/spot", "/transcribe")
CONTEXT = "The Eiffel Tower was built in 1889 by Gustave Eiffel. It stands in Paris and is 330 metres tall."
QUESTION = "When was the Eiffel Tower built?"
SLOW_S = 5.0  # what the clients waited before giving up


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread(seconds: list[float]) -> dict:
    """Count, p50, p95 and max of request times (None where there were none)."""
    if not seconds:
        return {"n": 0, "p50_s": None, "p95_s": None, "max_s": None}
    return {
        "n": len(seconds),
        "p50_s": round(statistics.median(seconds), 3),
        "p95_s": round(percentile(seconds, 0.95), 3),
        "max_s": round(max(seconds), 3),
    }


def run_client(url: str, requests: int, offset: int, clips: dict[str, Path], timeout_s: float, results: list) -> None:
    """One visitor: `requests` calls cycling through ENDPOINTS, starting at `offset`."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    for i in range(requests):
        endpoint = ENDPOINTS[(offset + i) % len(ENDPOINTS)]
        args: tuple = ()
        if endpoint == "/answer":
            args = (CONTEXT, QUESTION)
        elif endpoint in ("/spot", "/transcribe"):
            args = (handle_file(str(clips[endpoint])),)
        start = time.perf_counter()
        error = None
        try:
            client.submit(*args, api_name=endpoint).result(timeout=timeout_s)
        except Exception as err:  # noqa: BLE001 - every failure is counted, by kind
            error = f"{type(err).__name__}: {str(err)[:120]}"
        results.append((endpoint, time.perf_counter() - start, error))


MONITOR = """
import json, os, sys, time
url, out, stop, kind = sys.argv[1:5]
if kind == "http":
    import httpx
    http = httpx.Client(timeout=60)
    call = lambda: http.post(url + "gradio_api/run/status", json={"data": []}).raise_for_status()
else:
    from gradio_client import Client
    client = Client(url, verbose=False)
    call = lambda: client.predict(api_name="/status")
times = []
while True:  # at least one call, however short the round
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
    if os.path.exists(stop):
        break
    time.sleep(0.25)
open(out, "w").write(json.dumps(times))
"""


def monitor(url: str, out: Path, stop: Path, kind: str) -> subprocess.Popen:
    """`/status` every 0.25 s until `stop` exists, in a process of its own: over plain HTTP
    (`kind` "http") or through gradio_client ("client"), as a health check or a visitor would."""
    return subprocess.Popen([sys.executable, "-c", MONITOR, url, str(out), str(stop), kind])


def summarise(results: list) -> dict:
    by_endpoint: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for endpoint, seconds, error in results:
        by_endpoint[endpoint].append(seconds)
        if error:
            errors[f"{endpoint} {error}"] += 1
    return {
        "requests": len(results),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "over_5s": sum(s > SLOW_S for _, s, _ in results),
        "endpoints": {e: spread(v) for e, v in sorted(by_endpoint.items())},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="per client and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checkpoints", type=Path, help="default: the tests' tiny models, built here")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="per request")
    parser.add_argument("--max-s", type=float, default=1800.0, help="the whole run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.max_s

    work = scratch_folder("load-")  # models, clips, the app's log and uploads: removed at exit
    checkpoints = args.checkpoints
    if checkpoints is None:
        from scripts.tiny_models import build_all

        checkpoints = work / "checkpoints"
        build_all(checkpoints)
    clips = {"/transcribe": sorted((ROOT / "assets" / "asr").glob("*.wav"))[0], "/spot": one_second_clip(work)}

    # 1. The app, alone in its process, every model loaded.
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(work)}
    app = subprocess.Popen(
        [sys.executable, "app.py", "--checkpoints", str(checkpoints), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=(work / "app.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    report: dict = {"clients": args.clients, "requests_per_client": args.requests, "rounds": []}
    try:
        if not wait_for_app(url, app, 120):
            raise SystemExit(f"the app did not start:\n{(work / 'app.log').read_text()[-3000:]}")
        from gradio_client import Client

        from scripts.local_app import settled_status

        settled_status(Client(url, verbose=False), timeout_s=300)
        report["rss_mb_start"] = round(rss_mb(app.pid), 1)
        print(f"app up, RSS {report['rss_mb_start']:.0f} MB; {args.rounds} rounds of {args.clients} x {args.requests}")

        # 2. Rounds of concurrent clients; the memory after each.
        for number in range(1, args.rounds + 1):
            if time.monotonic() > deadline:
                print("stopped: --max-s reached")
                break
            results: list = []
            threads = [
                threading.Thread(
                    target=run_client, args=(url, args.requests, c, clips, args.timeout_s, results), daemon=True
                )
                for c in range(args.clients)
            ]
            start = time.perf_counter()
            for t in threads:
                t.start()
            watches = {
                kind: monitor(url, work / f"{kind}-{number}.json", work / f"stop-{number}", kind)
                for kind in ("http", "client")
            }
            for t in threads:
                t.join(timeout=max(0.0, deadline - time.monotonic()))
            (work / f"stop-{number}").touch()
            for watch in watches.values():
                watch.wait(timeout=120)
            summary = summarise(list(results))
            for kind, key in (("http", "status_plain_http"), ("client", "status_client_monitor")):
                summary[key] = spread(json.loads((work / f"{kind}-{number}.json").read_text()))
            summary.update(
                round=number, wall_s=round(time.perf_counter() - start, 1), rss_mb=round(rss_mb(app.pid), 1)
            )
            report["rounds"].append(summary)
            status = summary["endpoints"].get("/status", {})
            print(
                f"round {number}: {summary['requests']} requests in {summary['wall_s']} s, "
                f"{summary['errors']} errors, {summary['over_5s']} over 5 s, /status p95 {status.get('p95_s')} s, "
                f"RSS {summary['rss_mb']:.0f} MB"
            )
            for endpoint, numbers in summary["endpoints"].items():
                print(f"  {endpoint:12s} {numbers}")
            print(f"  /status over plain HTTP from a monitor process: {summary['status_plain_http']}")
            print(f"  /status through gradio_client from a monitor process: {summary['status_client_monitor']}")
            for kind, count in summary["error_kinds"].items():
                print(f"  error x{count}: {kind}")
        rounds = report["rounds"]
        if len(rounds) >= 2:
            second, last = rounds[1]["rss_mb"], rounds[-1]["rss_mb"]
            report["rss_growth_from_round_2"] = round((last - second) / second, 4)
            print(
                f"RSS after round 2: {second:.0f} MB, after round {len(rounds)}: {last:.0f} MB "
                f"({100 * report['rss_growth_from_round_2']:+.1f} %)"
            )
    finally:
        app.terminate()
        app.wait(timeout=30)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


def wait_for_app(url: str, app: subprocess.Popen, timeout_s: float) -> bool:
    """Whether the app answered HTTP within `timeout_s` (False at once if it exited)."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and app.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2)
            return True
        except OSError:
            time.sleep(0.5)
    return False


def one_second_clip(folder: Path) -> Path:
    """A spoken-word-like second of audio for /spot (a tone burst; the label does not matter here)."""
    import numpy as np
    import soundfile as sf

    t = np.arange(16_000) / 16_000
    path = folder / "one_second.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 300 * t) * np.hanning(16_000)).astype(np.float32), 16_000)
    return path


if __name__ == "__main__":
    main()
