"""What the page carries beside the tabs: the theme, its stylesheet and the scripts in its <head>."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

# System fonts only: the default theme's font is a web font, and where it cannot load (an offline
# machine, a blocked network) headings mix letter heights from fallback faces.
SYSTEM_FONTS = ("system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace")
WEB = Path(__file__).resolve().parents[1] / "assets" / "web"
# Each script says why it is there in its own header.
SCRIPTS = ("raw_microphone.js", "scroll_cue.js", "example_first.js")


def theme() -> gr.themes.Base:
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def head() -> str:
    """What goes in the page's <head>: the scripts that ask for the microphone's raw signal, mark
    tables and plots scrolled sideways, and hold a press made while a picked example is on its way."""
    return "".join(f"<script>{(WEB / name).read_text(encoding='utf-8')}</script>" for name in SCRIPTS)


def css() -> str:
    return (WEB / "page.css").read_text(encoding="utf-8")
