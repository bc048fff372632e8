"""The demo app: one tab per task module. Run `python app.py --help` for the flags."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from core import memory
from core.slots import Registry
from tasks import asr, kws, models, page, qa, sessions

# Uploads: Gradio refuses a larger file while it streams in, before it is stored. 128 MB holds ten
# minutes (the audio limit) of 48 kHz 16-bit stereo WAV; `UPLOAD_MAX_MB` changes it.
UPLOAD_MAX_MB = float(os.environ.get("UPLOAD_MAX_MB", 128))
# Gradio's cache of uploads and outputs: every hour, files older than an hour are deleted.
CACHE_SWEEP_S = (3600, 3600)
# Gradio keeps per-visitor state (a copy of every component's config, ~20 KB here) for this many
# sessions, least recently used out first; its default, 10,000, lets it grow to ~200 MB.
STATE_SESSIONS = 1000

TABS = (("Speech recognition", asr), ("Keyword spotting", kws), ("Question answering", qa), ("Models", models))


def preload_default() -> bool:
    return os.environ.get("PRELOAD_MODELS", "1").strip().lower() not in ("0", "false", "no", "off")


def open_registry(checkpoints: Path | str = "checkpoints", preload: bool | None = None) -> Registry:
    """The model slots, read from `checkpoints` (then the env vars and the hub). With `preload`
    (default: `PRELOAD_MODELS`, on), every slot starts loading in the background now, so no
    visitor's request waits for a download; without it a slot loads on its first use."""
    registry = Registry(Path(checkpoints))
    if preload_default() if preload is None else preload:
        registry.preload()
    return registry


def build_app(registry: Registry) -> gr.Blocks:
    """Compose the tabs around one registry of models."""
    # Built outside the app's context: a Blocks created inside another renders itself there, and
    # `.render()` would then place it a second time.
    parts = [(title, module.build(registry)) for title, module in TABS]
    with gr.Blocks(title="Speech & QA transformers", delete_cache=CACHE_SWEEP_S) as demo:
        gr.Markdown(
            "# Speech & QA transformers\nSpeech recognition and keyword spotting with "
            "HuBERT-family encoders, DistilBERT vs XLM-RoBERTa question answering. Each tab "
            "says which model it serves."
        )
        # "wrap": on a phone the four tabs take two rows instead of hiding behind a "..." menu.
        with gr.Tabs(overflow_behavior="wrap"):
            for title, part in parts:
                with gr.Tab(title):
                    part.render()
    return demo


def serve(
    demo: gr.Blocks, host: str, port: int | None, started: Callable[[], None] | None = None, **launch: Any
) -> None:
    """Queue and launch `demo` with the app's limits (upload size, sessions kept), then call
    `started` once it answers; `launch` is passed on (with `prevent_thread_lock`, this returns)."""
    sessions.install()  # a session's config copy built on first use: 41 ms and ~330 KB less per session
    block = not launch.pop("prevent_thread_lock", False)
    # Queue positions sent to waiting visitors once a second, not at every job's start: under 50
    # visitors each start sent a message to every queued one, work the server's event loop (which
    # also answers /status) did between requests.
    demo.queue(status_update_rate=1).launch(
        server_name=host,
        server_port=port,
        max_file_size=f"{UPLOAD_MAX_MB:g}mb",
        state_session_capacity=STATE_SESSIONS,
        theme=page.theme(),
        head=page.head(),
        css=page.css(),
        prevent_thread_lock=True,
        **launch,
    )
    if started is not None:
        started()
    if block:
        demo.block_thread()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    # Spaces sets GRADIO_SERVER_NAME/PORT; the defaults keep a local run private.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
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


if __name__ == "__main__":
    # The operator's log: what each slot tried and why it failed, in full, with a timestamp.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    memory.bound_allocator()
    args = parse_args()
    # The models start loading once the app answers: loading them (threads that share the GIL
    # with the page's construction and the server's start) would delay the first answer.
    registry = open_registry(args.checkpoints, preload=False)
    demo = build_app(registry)
    serve(demo, args.host, args.port, started=registry.preload if args.preload else None, share=args.share)
