"""Speech recognition tab: a CTC model (the slot's), from the microphone or a file, live or not."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
from gradio import FileData

from serving import gpu
from slots.registry import Registry
from slots.sources import LoadedModel
from speech import long_audio, utterances
from speech.audio import duration_s
from speech.audio_arrays import DEFAULT_MAX_DURATION_S
from speech.ctc import Word
from ui import asr_compare, asr_live, live
from ui.common import (
    audio_or_error,
    card_and_controls,
    fading,
    hide_empty,
    no_evaluation,
    require,
    scroll_into_view,
    status_watch,
    uploaded_path,
    user_errors,
)
from ui.error_views import asr_panel
from ui.plots import history_figure, human, key_value_markdown

SLOT = "asr"
INSTRUCTION = (
    f"Record or upload **English** speech (up to {DEFAULT_MAX_DURATION_S / 60:g} minutes): the model writes "
    "down what it hears. **Live** writes as you speak."
)
EXAMPLES = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "assets" / "asr").glob("*.wav"))
LIVE_EVERY_S = 0.5


def transcribe(loaded: LoadedModel, samples: np.ndarray) -> tuple[str, list[Word]]:
    """Greedy CTC transcript of 16 kHz mono samples, with each word's start and end; long audio
    runs in overlapping windows."""
    return gpu.transcribe(loaded, samples)


def transcribe_input(loaded: LoadedModel, audio: Any) -> tuple[str, str, list[Word]]:
    """Transcript, a line with the audio's duration and the processing time, and the words' times."""
    samples = audio_or_error(audio)
    start = time.perf_counter()
    text, words = transcribe(loaded, samples)
    elapsed = time.perf_counter() - start
    seconds = duration_s(samples)
    return (
        text,
        (
            f"{seconds:.1f} s of audio transcribed in {elapsed:.2f} s "
            f"({seconds / max(elapsed, 1e-9):.0f}× real time) on {loaded.device}"
        ),
        words,
    )


def words_table(words: list[Word]) -> pd.DataFrame:
    """What the word-timestamps table shows: one row per word, times in seconds."""
    return pd.DataFrame(
        [(f"{w.start_s:.2f}", f"{w.end_s:.2f}", w.text) for w in words], columns=["start (s)", "end (s)", "word"]
    )


def live_update(
    loaded: LoadedModel,
    state: long_audio.StreamState | None,
    chunk: tuple[int, np.ndarray] | None,
    missing_s: float = 0.0,
) -> tuple[long_audio.StreamState, str, Any]:
    """One streaming microphone chunk in: the state, the transcript so far and the line under
    the text (`LISTENING` and the input level while recording: it replaces whatever `live.watch`
    said meanwhile).

    `missing_s` of audio never arrived before this chunk (`live.Places.heard`): from
    `live.GAP_S` on, the text marks the gap and the stream starts again after it
    (`long_audio.stream_gap`). A chunk can arrive after the recording stopped and the final text
    was shown (the browser sends what it recorded last while the stop event runs; on a busy
    server every pending chunk can): it is added and the text made final again, so the visitor's
    last words are neither lost nor left provisional."""
    state = state or long_audio.StreamState()
    if chunk is None or chunk[1] is None or np.size(chunk[1]) == 0:
        return state, state.text, gr.skip()
    rate, samples = chunk
    with user_errors():
        if missing_s >= live.GAP_S and not state.finished:
            state = long_audio.stream_gap(loaded.live_model, loaded.processor, state, missing_s)
        state = long_audio.stream_step(loaded.live_model, loaded.processor, state, rate, samples)
        if state.finished:
            state = long_audio.stream_finish(loaded.live_model, loaded.processor, state)
    if state.finished:
        return state, state.text, final_note(state)
    return state, state.text, f"{LISTENING}\n\n{live.level_meter(rate, samples)}"


def live_finish(loaded: LoadedModel, state: long_audio.StreamState | None) -> tuple[long_audio.StreamState, str, str]:
    """The microphone stopped: the state, the transcript including the last half second, and the
    line under it saying the text is final (chunks still on their way join it: `live_update`)."""
    state = long_audio.stream_finish(loaded.live_model, loaded.processor, state or long_audio.StreamState())
    return state, state.text, final_note(state)


def live_chunk(
    loaded: LoadedModel, state: Any, chunk: Any, missing_s: float, listen: bool, stop_when_quiet: bool = False
) -> tuple[Any, str, bool, Any]:
    """One Live chunk: through the voice gate when the visitor `listen`s for speech
    (`ui.asr_live.update`), else every chunk to the model (`live_update`). A recording keeps the
    path it began with (the box may change while it runs). Returns the state, the text, whether
    the page should stop recording, and the line under the text."""
    if isinstance(state, utterances.LiveTranscript) or (state is None and listen):
        return asr_live.update(loaded, state, chunk, missing_s, stop_when_quiet)
    state, text, line = live_update(loaded, state, chunk, missing_s)
    return state, text, False, line


def live_stop(loaded: LoadedModel, state: Any, slot: Any = None) -> tuple[Any, str, str]:
    """Stop, on either path (`live_chunk`)."""
    if isinstance(state, utterances.LiveTranscript):
        return asr_live.finish(loaded, state, slot)
    return live_finish(loaded, state)


def final_note(state: long_audio.StreamState) -> str:
    note = f"Final transcript of {state.seconds:.1f} s of audio."
    if state.missed_s:  # the gaps `stream_gap` marked
        note += f" {state.missed_s:.1f} s more were not heard (the server was busy): “…” marks where."
    return note


LISTENING = "Listening: the transcript updates every half second."
STOP_JS = """(stop) => {
  if (!stop) return;
  const root = document.querySelector('#asr-live-audio');
  const buttons = root ? [...root.querySelectorAll('button')] : [];
  const button = buttons.find((b) => /stop/i.test(b.getAttribute('aria-label') || b.textContent));
  if (button) button.click();
}"""
FINALISING = "Finalising: reading the last words…"


def results(metrics: dict[str, Any] | None, absent: str = "") -> tuple[str, Any, Any]:
    """The checkpoint's evaluation: a summary table and loss / WER curves; `absent` says why
    there is none (`no_evaluation`)."""
    if not metrics:
        return absent or no_evaluation(None), None, None
    test = metrics.get("final", {}).get("test", {})
    rows = {f"test {human(k)}": None if test.get(k) is None else f"{test[k]:.1%}" for k in ("wer", "cer")}
    rows.update({f"{split} utterances": n for split, n in metrics.get("dataset_sizes", {}).items()})
    params = metrics.get("hyperparameters", {})
    rows.update(
        {
            human(k): params[k]
            for k in (
                "model_name_or_path",
                "freeze",
                "learning_rate",
                "weight_decay",
                "warmup_steps",
                "per_device_train_batch_size",
                "num_train_epochs",
            )
            if k in params
        }
    )
    rows["wall time"] = f"{metrics.get('wall_time_s', 0):.0f} s on {metrics.get('hardware', {}).get('gpu') or 'CPU'}"
    history = metrics.get("history", [])
    return (
        key_value_markdown({k: v for k, v in rows.items() if v is not None}),
        history_figure(history, ["loss", "eval_loss"]),
        history_figure(history, ["eval_wer", "eval_cer"]),
    )


def build(registry: Registry, page: gr.Blocks) -> None:
    """The Speech recognition tab's components, placed in the caller's layout; `page`, the app's Blocks,
    runs their load events."""
    slot = registry[SLOT]

    def on_transcribe(audio: Any) -> tuple[str, str, pd.DataFrame]:
        text, line, words = transcribe_input(require(slot), audio)
        return text, line, words_table(words)

    places = live.places_of(slot)

    def on_live(chunk, state, listen, stop_when_quiet, missing_s):
        return live_chunk(require(slot), state, chunk, missing_s, listen, stop_when_quiet)

    def on_live_stop(state):
        return live_stop(require(slot), state, slot)

    def on_results():
        loaded = slot.peek()
        shown = hide_empty(results(loaded.metrics if loaded else None, no_evaluation(loaded)))
        return [*shown, *errors_refresh()]

    gr.Markdown(INSTRUCTION, elem_classes=["instruction"])
    asr_status = gr.Markdown(elem_classes=["about-model"])
    with gr.Tabs(overflow_behavior="wrap"):  # on a phone every sub-tab stays in view
        with gr.Tab("Record or upload"):
            asr_audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speech")
            asr_button = gr.Button("Transcribe", variant="primary")
            asr_text = gr.Textbox(label="Transcript", lines=4, max_lines=8, buttons=["copy"], elem_id="asr-transcript")
            asr_timing = gr.Markdown()
            # The times come with every transcript (the same frames); the box only shows them.
            asr_show_words = gr.Checkbox(label="Word timestamps", value=False)
            asr_words = gr.Dataframe(label="When each word is spoken", interactive=False, visible=False)
            if EXAMPLES:
                gr.Examples(EXAMPLES, inputs=asr_audio, label="Examples (synthetic voices)")
        with gr.Tab("Live"):
            gr.Markdown(
                "Speak: the transcript updates every half second. Each update runs the model "
                f"on at most one {long_audio.LIVE_WINDOW_S:g} s window of the newest audio." + live.where_it_runs()
            )
            asr_live_audio = gr.Audio(
                sources=["microphone"], type="numpy", streaming=True, label="Microphone", elem_id="asr-live-audio"
            )
            asr_live_text = gr.Textbox(label="Partial transcript", lines=4, max_lines=8, autoscroll=True)
            asr_live_note = gr.Markdown()
            # One under the other: side by side, a phone cuts their labels.
            asr_listen = gr.Checkbox(
                value=True, label="Listen for speech: skip silence, and make each sentence final when you pause"
            )
            asr_autostop = gr.Checkbox(value=False, label="Stop recording when I stop talking")
            asr_live_stop = gr.Checkbox(visible=False)  # set when the page should stop recording
        with gr.Tab("Compare") as compare_tab:
            refill, pickers = asr_compare.section(registry)
        with gr.Tab("Evaluation"):
            asr_summary = gr.Markdown()
            with gr.Row():
                asr_loss_plot = gr.Plot(label="Training and validation loss")
                asr_wer_plot = gr.Plot(label="Validation WER and CER")
            errors_refresh, errors_outputs = asr_panel(slot)

    asr_button.click(
        fading(on_transcribe, 3, line=1),
        inputs=asr_audio,
        outputs=[asr_text, asr_timing, asr_words],
        api_name=False,
    ).then(None, js=scroll_into_view("asr-transcript"))
    asr_show_words.change(
        lambda shown: gr.Dataframe(visible=shown), inputs=asr_show_words, outputs=asr_words, api_name=False
    )
    # (No progress shown: over the text, a timer counting each event's seconds means nothing.)
    asr_live_audio.start_recording(
        lambda: ("", LISTENING), outputs=[asr_live_text, asr_live_note], api_name=False, show_progress="hidden"
    )
    # On a phone the transcript sits under the microphone: bring both into view while speaking.
    asr_live_audio.start_recording(None, js=scroll_into_view("asr-live-audio", block="start"))
    # Stop: at once a line saying the text is being finalised (not queued behind the model),
    # then the final text; until then the partial text may still change.
    asr_live_audio.stop_recording(
        lambda: FINALISING, outputs=asr_live_note, queue=False, show_progress="hidden", api_name=False
    ).then(
        live.finishing(places, on_live_stop),
        outputs=[asr_live_text, asr_live_note],
        api_name=False,
        show_progress="hidden",
    )
    live.stream(
        asr_live_audio, places, on_live, inputs=[asr_listen, asr_autostop],
        outputs=[asr_live_text, asr_live_stop, asr_live_note], every_s=LIVE_EVERY_S,
    )  # fmt: skip
    # Stop when quiet: the page presses Stop itself once a sentence has ended (as a visitor would).
    asr_live_stop.change(None, inputs=asr_live_stop, js=STOP_JS, api_name=False)
    live.watch(asr_live_audio, places, asr_live_note)
    results_outputs = [asr_summary, asr_loss_plot, asr_wer_plot, *errors_outputs]
    controls = [asr_button, asr_audio, asr_live_audio]
    watch = status_watch(slot, asr_status, then=on_results, outputs=results_outputs, controls=controls)
    page.load(lambda: card_and_controls(slot, len(controls)), outputs=[asr_status, *controls], api_name=False).then(
        watch.render, outputs=[*results_outputs, watch.shown], api_name=False
    )
    page.load(refill, outputs=pickers, api_name=False, show_progress="hidden")
    compare_tab.select(refill, inputs=pickers, outputs=pickers, api_name=False, show_progress="hidden")

    def api_transcribe(audio: FileData | None = None) -> str:
        """The transcript of an uploaded audio file (wav, flac, ogg, mp3 or m4a; long audio in
        overlapping windows)."""
        path = uploaded_path(audio)
        return transcribe_input(require(slot), path)[0]

    def api_transcribe_words(audio: FileData | None = None) -> dict:
        """The transcript of an uploaded audio file and when each word is spoken:
        {"text": ..., "words": [{"text", "start_s", "end_s"}]}, times in seconds from the start."""
        path = uploaded_path(audio)
        text, _, words = transcribe_input(require(slot), path)
        return {"text": text, "words": [asdict(w) for w in words]}

    gr.api(api_transcribe, api_name="transcribe")
    gr.api(api_transcribe_words, api_name="transcribe_words")
