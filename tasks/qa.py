"""Question answering tab: DistilBERT and XLM-RoBERTa side by side."""

from __future__ import annotations

import gradio as gr

from core.slots import Registry
from tasks.common import status_card

SLOTS = ("qa-distilbert", "qa-xlmr")


def build(registry: Registry) -> gr.Blocks:
    with gr.Blocks() as demo:
        with gr.Row():
            for name in SLOTS:
                card = gr.Markdown()
                demo.load(lambda slot=registry[name]: status_card(slot), outputs=card, api_name=False)
    return demo
