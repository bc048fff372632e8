"""Keyword spotting tab (DistilHuBERT, 12 SUPERB classes)."""

from __future__ import annotations

import gradio as gr

from core.slots import Registry
from tasks.common import status_card

SLOT = "kws"


def build(registry: Registry) -> gr.Blocks:
    slot = registry[SLOT]
    with gr.Blocks() as demo:
        kws_status = gr.Markdown()
        demo.load(lambda: status_card(slot), outputs=kws_status, api_name=False)
    return demo
