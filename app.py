"""The demo app: one tab per task module. Run `python app.py --help` for the flags."""

from __future__ import annotations

import gc

if __name__ == "__main__":
    # Serving: no collections while the imports below make the server's millions of long-lived
    # objects (each full collection walks them all); `serving.server.warm_start` freezes them and
    # turns collection back on once the app answers.
    gc.disable()
    from serving.scratch import own_gradio_folder

    own_gradio_folder()  # before Gradio is imported: it reads the folder's name then

import logging
from typing import Any

import gradio as gr

from core import memory
from serving import server
from serving.server import open_registry, parse_args, warm_start
from slots.registry import Registry
from ui import asr, kws, models, page, qa

# Gradio's cache of uploads and outputs: every hour, files older than an hour are deleted.
CACHE_SWEEP_S = (3600, 3600)
TABS = (("Speech recognition", asr), ("Keyword spotting", kws), ("Question answering", qa), ("Models", models))


def build_app(registry: Registry) -> gr.Blocks:
    """Compose the tabs around one registry of models."""
    with gr.Blocks(title="Speech & QA transformers", delete_cache=CACHE_SWEEP_S) as demo:
        gr.Markdown(
            "# Speech & QA transformers\nTranscribe speech, spot spoken keywords, and ask two models a question "
            "about a text.",
            elem_id="page-intro",
        )
        # "wrap": on a phone the four tabs take two rows instead of hiding behind a "..." menu.
        with gr.Tabs(overflow_behavior="wrap"):
            for title, module in TABS:
                # Each tab places its components here rather than in a Blocks of its own: every
                # Blocks builds a web app of its own at creation and again when closed.
                with gr.Tab(title):
                    module.build(registry, demo)
    return demo


def serve(demo: gr.Blocks, host: str, port: int | None, **launch: Any) -> None:
    """`serving.server.serve` with the page's theme, stylesheet and scripts."""
    server.serve(demo, host, port, theme=page.theme(), head=page.head(), css=page.css(), **launch)


if __name__ == "__main__":
    # The operator's log: what each slot tried and why it failed, in full, with a timestamp.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    memory.bound_allocator()
    args = parse_args()
    # The models start loading once the app answers: loading them (threads that share the GIL
    # with the page's construction and the server's start) would delay the first answer.
    registry = open_registry(args.checkpoints, preload=False)
    demo = build_app(registry)
    serve(demo, args.host, args.port, started=warm_start(registry, args.preload), share=args.share)
