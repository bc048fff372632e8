"""Decoding a visitor's file in a worker process, so that a decoder that crashes natively (FFmpeg
or libsndfile on a file made to break them) ends the worker, not the server: the file is refused
and a new worker takes the dead one's place.

No file is known to crash the decoders as `speech/audio_files.py` drives them (a channel matrix and
1,550 damaged files, docs/measurements.md); PyAV's multichannel `to_ndarray` did, and this is the
net under whatever the next one is. Its cost, measured by `bench.audio_decode`: 2-11 ms a file on
top of the decode and 85 MB a worker, kept running (a fresh process per file cost 150-780 ms).

A worker is `python -m serving.audio_worker`, one request at a time over its stdin/stdout (a JSON
line in; a JSON line and the float32 samples out), so it imports the decoders and nothing of the
server (a `multiprocessing` child would import the server's own `__main__` again), and a death is
the file it was decoding. `WORKERS` of them, so one slow file does not hold every upload; the
serving process receives only the 16 kHz result, so a decode's peak memory is the worker's.
Training reads its data in-process (`load_audio`): its files are the operator's own.
"""

from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from core import settings
from speech.audio import SUPPORTED_FILES, AudioInput, AudioInputError, file_path, load_audio

WORKERS = 2
TIMEOUT_S = 300.0  # a decode stuck this long ends its worker (the budget bounds a real one to seconds)
ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)


def load_isolated(source: AudioInput, max_duration_s: float | None = None) -> np.ndarray:
    """`load_audio(source, max_duration_s=...)` run in a worker process for an encoded file (a path or
    Gradio's file dict); in this process for arrays. A worker that dies on the file makes it an
    `AudioInputError`."""
    path = file_path(source)
    if path is None or not Path(path).is_file():  # (a missing file: `load_audio` says so)
        return load_audio(source, max_duration_s=max_duration_s)
    # (absolute: the worker runs in the repository's folder, the server wherever it was started)
    return run("speech.audio:load_audio", os.path.abspath(path), max_duration_s=max_duration_s)


def run(decoder: str, path: str, **kwargs: Any) -> np.ndarray:
    """`decoder(path, **kwargs)` ("module:function", returning samples) in a worker; an
    `AudioInputError` it raises is raised here. Raises `AudioInputError` when the worker dies."""
    worker = _idle.get()
    try:
        return worker.decode(decoder, path, kwargs)
    finally:
        _idle.put(worker)


def warm() -> None:
    """Start the workers now (they import their decoders as they start, ~1 s, in their own
    processes), not on a visitor's first upload."""
    for worker in _workers:
        worker.start()


class _Worker:
    """One worker process, started on first use and again after it died."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def start(self) -> subprocess.Popen:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "serving.audio_worker"],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=settings.child_env(ROOT),
                )
            return self.process

    def decode(self, decoder: str, path: str, kwargs: dict[str, Any]) -> np.ndarray:
        process = self.start()
        name = os.path.basename(path)
        timer = threading.Timer(TIMEOUT_S, process.kill)
        timer.start()
        try:
            process.stdin.write((json.dumps({"decoder": decoder, "path": path, "kwargs": kwargs}) + "\n").encode())
            process.stdin.flush()
            answer = json.loads(process.stdout.readline() or "null")
            if answer is not None and answer.get("samples") is not None:
                data = process.stdout.read(4 * answer["samples"])
                if len(data) == 4 * answer["samples"]:
                    return np.frombuffer(data, np.float32).copy()
        except (BrokenPipeError, OSError, ValueError):
            answer = None
        finally:
            timer.cancel()
        if answer is not None and "refused" in answer:
            raise AudioInputError(answer["refused"])
        if answer is not None and answer.get("failed"):
            raise AudioInputError(f"'{name}' could not be decoded. Use {SUPPORTED_FILES}.")
        process.kill()
        process.wait()
        logger.warning("audio decoding: the worker died on %s (exit %s); a new one starts", path, process.returncode)
        raise AudioInputError(f"'{name}' could not be decoded: the file is damaged. Use {SUPPORTED_FILES}.")


def serve() -> None:
    """The worker's loop: a request per line on stdin, its answer on stdout."""
    import av  # noqa: F401 - the decoders `load_audio` imports on first use: now, before any request
    import scipy.signal  # noqa: F401

    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # whatever a decoder prints goes to the log, not into the answers
    for line in sys.stdin.buffer:
        request = json.loads(line)
        module, _, function = request["decoder"].partition(":")
        try:
            samples = getattr(importlib.import_module(module), function)(request["path"], **request["kwargs"])
        except AudioInputError as err:
            out.write((json.dumps({"refused": str(err)}) + "\n").encode())
        except Exception:  # noqa: BLE001 - a decoder's bug: logged, the file refused, the worker lives on
            traceback.print_exc()
            out.write((json.dumps({"failed": True}) + "\n").encode())
        else:
            samples = np.ascontiguousarray(samples, np.float32)
            out.write((json.dumps({"samples": len(samples)}) + "\n").encode())
            out.write(samples.tobytes())
        out.flush()


def _stop_all() -> None:
    for worker in _workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.kill()


_workers = [_Worker() for _ in range(WORKERS)]
_idle: queue.Queue[_Worker] = queue.Queue()
for _worker in _workers:
    _idle.put(_worker)
atexit.register(_stop_all)

if __name__ == "__main__":
    serve()
