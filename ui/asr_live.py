"""The speech recognition tab's Live with voice-activity detection (`speech.utterances`): only speech
reaches the model, each utterance turns final when the speaker pauses, and a short line says how
live the transcript is. The readouts of recent recordings go to `/status`."""

from __future__ import annotations

import threading
import weakref
from collections import deque
from typing import Any

import gradio as gr
import numpy as np

from slots.slot import Slot
from slots.sources import LoadedModel
from speech import utterances
from ui import live
from ui.common import user_errors

RECENT = 50  # recordings whose readouts `/status` sums up

LISTENING = "Listening for speech: each sentence turns final when you pause."


class Recent:
    """The readouts of a slot's recent recordings, for `/status`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.recordings: deque[dict[str, Any]] = deque(maxlen=RECENT)

    def add(self, readouts: utterances.Readouts) -> None:
        with self.lock:
            self.recordings.append(readouts.summary())

    def summary(self) -> dict[str, Any]:
        """Medians over the recent recordings of each readout, and how much of the audio heard was
        speech the model ran on (the rest, silence, cost no model time)."""
        with self.lock:
            rows = list(self.recordings)
        out: dict[str, Any] = {"recordings": len(rows)}
        for key in ("first_word_s", "final_s", "rtf", "rewritten"):
            values = [r[key] for r in rows if r[key] is not None]
            out[key] = round(float(np.median(values)), 3) if values else None
        heard = sum(r["heard_s"] for r in rows)
        out["heard_s"] = round(heard, 1)
        out["speech_share"] = round(sum(r["speech_s"] for r in rows) / heard, 3) if heard else None
        return out


_RECENT: weakref.WeakKeyDictionary[Slot, Recent] = weakref.WeakKeyDictionary()


def recent_of(slot: Slot) -> Recent:
    return _RECENT.setdefault(slot, Recent())


def status(slot: Slot) -> dict[str, Any] | None:
    """For `/status`: the recent recordings' readouts (None: none yet)."""
    recent = _RECENT.get(slot)
    return None if recent is None else recent.summary()


def update(
    loaded: LoadedModel,
    state: utterances.LiveTranscript | None,
    chunk: tuple[int, np.ndarray] | None,
    missing_s: float = 0.0,
    stop_when_quiet: bool = False,
) -> tuple[utterances.LiveTranscript, str, bool, Any]:
    """One microphone chunk through the gate: the state, the transcript, whether the page should
    stop recording (`stop_when_quiet`, once a sentence has ended), and the line under the text
    (what is heard, the input level, the readouts)."""
    state = state or utterances.LiveTranscript()
    if chunk is None or chunk[1] is None or np.size(chunk[1]) == 0:
        return state, state.text, False, gr.skip()
    rate, samples = chunk
    model, processor = loaded.live_model, loaded.processor
    with user_errors():
        if missing_s >= live.GAP_S and not state.finished:
            state = utterances.gap(model, processor, state, missing_s)
        state = utterances.step(model, processor, state, rate, samples)
        if state.finished:  # a chunk after Stop: its words join the final text
            state = utterances.finish(model, processor, state)
    if state.finished:
        return state, state.text, False, final_note(state)
    heard = "Hearing speech" if state.speaking else LISTENING
    line = f"{heard}\n\n{live.level_meter(rate, samples)}"
    if state.ended:
        line += f"\n\n{state.ended} sentence{'s' * (state.ended != 1)} final"
    if readouts := state.readouts.line():
        line += f"\n\n<small>{readouts}</small>"
    return state, state.text, stop_when_quiet and state.ended > 0, line


def finish(
    loaded: LoadedModel, state: utterances.LiveTranscript | None, slot: Slot | None = None
) -> tuple[utterances.LiveTranscript, str, str]:
    """The microphone stopped: the sentence under way turns final; the readouts join the recent
    recordings' (`slot`)."""
    state = utterances.finish(loaded.live_model, loaded.processor, state or utterances.LiveTranscript())
    if slot is not None and state.readouts.heard_s:
        recent_of(slot).add(state.readouts)
    return state, state.text, final_note(state)


def final_note(state: utterances.LiveTranscript) -> str:
    note = f"Final transcript of {state.seconds:.1f} s of audio"
    heard = state.readouts.summary()
    if heard["heard_s"]:
        note += f"; the model ran on the {heard['speech_s']:.1f} s of it that were speech."
    else:
        note += "."
    if state.missed_s:  # the gaps `utterances.gap` marked
        note += f" {state.missed_s:.1f} s more were not heard (the server was busy): “…” marks where."
    if readouts := state.readouts.line():
        note += f"\n\n<small>{readouts}</small>"
    return note
