"""Serving the app: its model registry (preloaded or not), the queue and launch settings, and the
command line. `app.py` composes the tabs and hands the page to `serve`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from core import memory, settings
from serving import audio_worker, gpu, sessions
from serving.upload_guard import UploadGuard
from slots.registry import Registry

logger = logging.getLogger(__name__)

# Uploads: Gradio refuses a larger file while it streams in, before it is stored. 128 MB holds ten
# minutes (the audio limit) of 48 kHz 16-bit stereo WAV; `UPLOAD_MAX_MB` changes it (fractions too:
# Gradio is given bytes, since its own size strings take whole numbers only).
UPLOAD_MAX_MB = settings.UPLOAD_MAX_MB
UPLOAD_MAX_BYTES = int(UPLOAD_MAX_MB * 2**20)
# Gradio keeps per-visitor state (a copy of every component's config, ~20 KB here) for this many
# sessions, least recently used out first; its default, 10,000, lets it grow to ~200 MB.
STATE_SESSIONS = 1000


def preload_default() -> bool:
    return settings.PRELOAD_MODELS


def open_registry(checkpoints: Path | str = "checkpoints", preload: bool | None = None) -> Registry:
    """The model slots, read from `checkpoints` (then the env vars and the hub). With `preload`
    (default: `PRELOAD_MODELS`, on), every slot starts loading in the background now, so no
    visitor's request waits for a download; without it a slot loads on its first use.

    On ZeroGPU every slot loads here, in the calling (main) thread, before the app launches: the
    `spaces` package emulates CUDA in that thread only, and moves what it placed there to a GPU
    when a request borrows one (`serving.gpu`)."""
    registry = Registry(Path(checkpoints))
    if gpu.ZERO_GPU:
        registry.load_here()
    elif preload_default() if preload is None else preload:
        registry.preload()
    return registry


def warm_start(registry: Registry, preload: bool) -> Callable[[], None]:
    """What runs once the app answers: the heap frozen (`memory.freeze_heap`, again after each
    model load), with `preload`, every slot's load started in the background, and the audio
    decoding workers started (`serving.audio_worker`)."""

    def start() -> None:
        memory.freeze_heap(registry.loaded)
        if preload:
            registry.preload()
        audio_worker.warm()  # (two process starts; their imports run in them)

    return start


def serve(
    demo: gr.Blocks, host: str, port: int | None, started: Callable[[], None] | None = None, **launch: Any
) -> None:
    """Queue and launch `demo` with the app's limits (upload size, sessions kept), then call
    `started` once it answers; `launch` is passed on to Gradio's `launch` (the page's theme and
    stylesheet, `app.serve`; with `prevent_thread_lock`, this returns)."""
    sessions.install()  # a session's config copy built on first use: 41 ms and ~330 KB less per session
    logging.getLogger("uvicorn.error").addFilter(CUT_AT_SHUTDOWN)  # (once: a filter added twice is kept once)
    block = not launch.pop("prevent_thread_lock", False)
    if block:
        stop_on_sigterm()
    try:
        # Queue positions sent to waiting visitors once a second, not at every job's start: under
        # 50 visitors each start sent a message to every queued one, work the server's event loop
        # (which also answers /status) did between requests.
        demo.queue(status_update_rate=1).launch(
            server_name=host,
            server_port=port,
            max_file_size=UPLOAD_MAX_BYTES,
            # Per request and per client: files, bytes (serving/upload_guard.py).
            app_kwargs={"middleware": [Middleware(UploadGuard, max_file_bytes=UPLOAD_MAX_BYTES)]},
            state_session_capacity=STATE_SESSIONS,
            prevent_thread_lock=True,
            **launch,
        )
        # On close, uvicorn waits for every open connection to end (a browser's or a client's
        # keeps one open), without limit; Gradio gives up after 5 s, so every stop took 5 s. Requests
        # still running get this long to finish.
        demo.server.config.timeout_graceful_shutdown = SHUTDOWN_GRACE_S
        if started is not None:
            started()
    except KeyboardInterrupt:  # stopped while starting: close what started, as block_thread does
        if not block:
            raise
        demo.close()
        return
    if block:
        demo.block_thread()


SHUTDOWN_GRACE_S = 1


class CutAtShutdown(logging.Filter):
    """Uvicorn's words for the connections still open when the grace above runs out, for the
    operator: one warning line, without the traceback it logged for each (40 lines that read as a
    crash; a page left open at a stop holds its heartbeat stream, so most stops had one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, asyncio.CancelledError) and "graceful shutdown" in str(error):
            return False
        if isinstance(record.msg, str) and record.msg.startswith("Cancel %s running task(s)"):
            record.msg = "Stopping: %s connection(s) still open (a page's stream, a request) cut after %s s"
            record.args = (record.args[0], SHUTDOWN_GRACE_S)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


CUT_AT_SHUTDOWN = CutAtShutdown()


def stop_on_sigterm() -> None:
    """A SIGTERM (a container's or a Space's stop, `kill`) stops the server as Ctrl-C does: Gradio
    closes it and the process exits normally, removing its scratch files (serving/scratch.py). By
    default SIGTERM ends Python at once and they stayed in /tmp, one folder per start."""

    def interrupt(signum: int, frame: Any) -> None:
        logger.warning("SIGTERM: closing the server")
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The demo app: speech recognition, keyword spotting and question answering, one tab each.",
        prog="python app.py",
    )
    # Spaces sets GRADIO_SERVER_NAME/PORT; the defaults keep a local run private.
    parser.add_argument("--host", default=settings.SERVER_NAME)
    parser.add_argument("--port", type=int, default=settings.SERVER_PORT)
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=Path("checkpoints"),
        help="folder holding <slot>/ checkpoints written by train/",
    )
    parser.add_argument(
        "--no-preload",
        dest="preload",
        action="store_false",
        default=preload_default(),
        help="load each model on its first use instead of at launch (env PRELOAD_MODELS=0)",
    )
    return parser.parse_args(argv)
