"""Decoding a visitor's file in a worker process, so that a decoder that crashes natively (FFmpeg
or libsndfile on a file made to break them) ends the worker, not the server: the file is refused
and the next one gets a fresh worker.

No file is known to crash the decoders as `core/audio_files.py` drives them (a channel matrix and
1,550 damaged files, docs/MEASUREMENTS.md); PyAV's multichannel `to_ndarray` did, and this is the
net under whatever the next one is. Its cost, measured by `bench.audio_decode`: 2-5 ms a file on
top of the decode, in a worker kept running (a fresh process per file cost 140-740 ms). Two
workers, so one slow file does not hold every upload; the serving process receives only the
16 kHz result, so a decode's peak memory is the worker's. Training reads its data in-process
(`load_audio`): its files are the operator's own.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from core.audio import SUPPORTED_FILES, AudioInput, AudioInputError, load_audio

WORKERS = 2
logger = logging.getLogger(__name__)

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def load_isolated(source: AudioInput, max_duration_s: float | None = None) -> np.ndarray:
    """`load_audio(source, max_duration_s=...)` run in a worker process for an encoded file (a path or
    Gradio's file dict); in this process for arrays. A worker that dies on the file makes it an
    `AudioInputError`; a file decoded beside it when it died is tried once more in a new worker."""
    path = source.get("path") if isinstance(source, dict) and not source.get("bytes") else source
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        return load_audio(source, max_duration_s=max_duration_s)
    return run(load_audio, str(path), name=os.path.basename(str(path)), max_duration_s=max_duration_s)


def run(fn: Any, *args: Any, name: str, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` in a worker (`fn` importable by name); what it raises is raised here.
    Raises `AudioInputError` naming `name` when the worker dies on it twice."""
    for attempt in (1, 2):
        pool = _workers()
        try:
            return pool.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool:
            _replace(pool)
            logger.warning("audio decoding: a worker died on %s (attempt %d)", name, attempt)
    raise AudioInputError(f"'{name}' could not be decoded: the file is damaged. Use {SUPPORTED_FILES}.")


def warm() -> None:
    """Start the workers and their decoders' imports now, not on a visitor's first upload."""
    pool = _workers()
    for future in [pool.submit(_imports) for _ in range(WORKERS)]:
        future.result()


def _imports() -> None:
    import av  # noqa: F401
    import scipy.signal  # noqa: F401


def _workers() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            # forkserver: a clean process that imports the decoders once, never a fork of the
            # server's threads (a fork of a threaded process may inherit a held lock).
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["core.audio"])
            _pool = ProcessPoolExecutor(WORKERS, mp_context=context)
        return _pool


def _replace(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)
