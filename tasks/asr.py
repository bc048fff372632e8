"""Speech recognition tab (DistilHuBERT + CTC)."""

from __future__ import annotations

import gradio as gr

from core.slots import Registry
from tasks.common import status_card

SLOT = "asr"


def build(registry: Registry) -> gr.Blocks:
    slot = registry[SLOT]
    with gr.Blocks() as demo:
        asr_status = gr.Markdown()
        demo.load(lambda: status_card(slot), outputs=asr_status, api_name=False)
    return demo
