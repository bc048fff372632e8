"""What the page carries beside the tabs: the theme and a script in its <head>."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

# System fonts only: the default theme's font is a web font, and where it cannot load (an offline
# machine, a blocked network) headings mix letter heights from fallback faces.
SYSTEM_FONTS = ("system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace")
RAW_MICROPHONE = Path(__file__).resolve().parents[1] / "assets" / "web" / "raw_microphone.js"


def theme() -> gr.themes.Base:
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def head() -> str:
    """What goes in the page's <head>: the script that asks for the microphone's raw signal."""
    return f"<script>{RAW_MICROPHONE.read_text(encoding='utf-8')}</script>"
