"""The demo app: one tab per task module. Run `python app.py --help` for the flags."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import gradio as gr

from core.slots import Registry
from tasks import asr, kws, models, qa

TABS = (("Speech recognition", asr), ("Keyword spotting", kws), ("Question answering", qa),
        ("Models", models))


def build_app(checkpoints: Path | str = "checkpoints") -> gr.Blocks:
    """Compose the tabs; no model is loaded here (slots load lazily on first use)."""
    registry = Registry(Path(checkpoints))
    # Built outside the app's context: a Blocks created inside another renders itself there, and
    # `.render()` would then place it a second time.
    parts = [(title, module.build(registry)) for title, module in TABS]
    with gr.Blocks(title="Speech & QA transformers") as demo:
        gr.Markdown("# Speech & QA transformers\nDistilHuBERT speech recognition and keyword "
                    "spotting, DistilBERT vs XLM-RoBERTa question answering.")
        for title, part in parts:
            with gr.Tab(title):
                part.render()
    demo.registry = registry  # for tests and scripts that inspect what the app serves
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    # Spaces sets GRADIO_SERVER_NAME/PORT; the defaults keep a local run private.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"),
                        help="folder holding <slot>/ checkpoints written by train/")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    build_app(args.checkpoints).queue().launch(server_name=args.host, server_port=args.port,
                                               share=args.share)
