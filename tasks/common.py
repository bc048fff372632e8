"""UI helpers every tab uses: the slot status card and turning bad input into `gr.Error`."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import gradio as gr
import numpy as np

from core.audio import AudioInput, AudioInputError, load_audio
from core.slots import LoadedModel, Slot, SlotUnavailable
from core.structure import human_bytes


def status_card(slot: Slot, load: bool = True) -> str:
    """Markdown saying what the slot serves, or what was tried and how to get a model."""
    if load:
        try:
            slot.get()
        except SlotUnavailable:
            pass
    info = slot.status()
    spec = slot.spec
    if info["state"] == "loaded":
        return (f"**{spec.title}** — serving `{info['source']}` · {info['parameters']:,} parameters · "
                f"{human_bytes(info['size_bytes'])} on disk · {info['device']} · "
                f"loaded in {info['load_time_s']:.1f} s")
    if info["state"] == "not loaded":
        return f"**{spec.title}** — not loaded yet; it loads on the first request."
    tried = "\n".join(f"- `{a['source']}` — {a['error']}" for a in info["attempts"])
    return (f"**{spec.title}: no model available.** Tried, in order:\n{tried}\n\n"
            f"Train one with `{spec.train_command}` (writes `{slot.checkpoints / spec.name}`), "
            f"or set `{spec.env_var}` to a local folder or a hub id, then press *Reload models* "
            f"in the Models tab.")


def require(slot: Slot) -> LoadedModel:
    """The slot's model, or a `gr.Error` that tells the user how to get one."""
    try:
        return slot.get()
    except SlotUnavailable as err:
        raise gr.Error(f"No {slot.spec.title} model is loaded. Train one with "
                       f"`{slot.spec.train_command}` or set {slot.spec.env_var}. ({err})") from err


@contextmanager
def audio_errors_for_users() -> Iterator[None]:
    """Audio refused by `core.audio` reaches the browser as a `gr.Error` with its sentence."""
    try:
        yield
    except AudioInputError as err:
        raise gr.Error(str(err)) from err


def audio_or_error(source: AudioInput, max_duration_s: float | None = None) -> np.ndarray:
    """16 kHz mono float32 samples, or a `gr.Error` with the reason the audio was refused."""
    with audio_errors_for_users():
        return load_audio(source, max_duration_s=max_duration_s)
