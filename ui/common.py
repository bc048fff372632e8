"""UI helpers every tab uses: the slot status card, files sent to an API endpoint, and turning
refused input (`core.errors.InputError`) into the `gr.Error` a user sees."""

from __future__ import annotations

import functools
import html
import inspect
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from core.errors import InputError
from core.structure import human_bytes
from serving.audio_worker import load_isolated
from serving.scratch import scratch_folder
from slots.errors import SlotNotReady, SlotUnavailable, visitor_reasons
from slots.slot import Slot
from slots.sources import LoadedModel
from speech.audio import AudioInput


def status_card(slot: Slot, load: bool = True) -> str:
    """Markdown for a visitor: a small line about the model served, how far its download or load
    is, or that it has no model and why in plain words (no ids, revisions or server paths; the
    operator's detail is in the Models tab). With `load`, starts the slot's load; it never waits
    for one (the card's timer shows the rest)."""
    if load:
        slot.start()
    info = slot.status()
    spec = slot.spec
    if info["state"] == "loaded":
        card = (
            f"<small>About this model: {spec.title.lower()}, `{info['source']}` · {info['parameters']:,} "
            f"parameters · {human_bytes(info['size_bytes'])} · {info['precision']} · "
            f"loaded in {info['load_time_s']:.1f} s</small>"
        )
        if info.get("reloading"):
            card += f"\n\nA newer model is loading ({info['reloading']}); this one serves until it is ready."
        return "\n\n".join([card, *(f"⚠️ {warning}" for warning in info["warnings"])])
    if info["state"] == "not loaded":
        return f"**{spec.title}** — not loaded yet; it loads on the first request."
    if info["state"] == "retrying":
        return f"**{spec.title}** — the model hub did not answer; {info['detail']} (this page updates by itself)."
    if info["state"] != "unavailable":  # starting, resolving, downloading, loading
        return f"**{spec.title}** — getting the model ready: {info['detail']} (this page updates by itself)."
    return f"**{spec.title}: this model is not available on this server** ({visitor_reasons(info.get('tried', []))})."


def without_server_paths(text: str, checkpoints: Path | None = None) -> str:
    """`text` with the server's folders named instead of spelled out (a public Space shows the
    operator's section to every visitor; the log keeps the full paths): the checkpoints folder,
    the hub cache, the temporary folder, the app's folder (`.`) and the home folder (`~`)."""
    from huggingface_hub import constants

    named = [(constants.HF_HUB_CACHE, "<hub cache>"), (tempfile.gettempdir(), "<tmp>")]
    if checkpoints is not None:
        named.append((str(Path(checkpoints).resolve()), "<checkpoints>"))
    named += [(os.getcwd(), "."), (str(Path.home()), "~")]
    spelled = {}
    for folder, name in named:
        for form in {str(folder), str(Path(folder).resolve())}:
            if len(form.rstrip("/")) > 1:
                spelled.setdefault(form.rstrip("/"), name)
    for folder in sorted(spelled, key=len, reverse=True):  # the most specific first
        text = text.replace(folder, spelled[folder])
    return text


def operator_card(slot: Slot) -> str:
    """Markdown for the operator: every source tried with its error, where a trained checkpoint
    goes and how to make one (the Models tab shows it collapsed), without server paths."""
    info = slot.status(detail=True)
    spec = slot.spec
    lines = [f"**{spec.title}** (`{spec.name}`): {info['detail']}"]
    if info.get("path"):
        lines.append(f"- serving `{info['configured']}` from `{info['path']}`")
    lines += [f"- tried `{a['source']}`: {a['error']}" for a in info.get("attempts", [])]
    lines.append(
        f"- a trained checkpoint goes to `{slot.checkpoints / spec.name}` (`{spec.train_command}`); or set "
        f"`{spec.env_var}` to a folder or a hub id; then *Reload models*"
    )
    return without_server_paths("\n".join(lines), slot.checkpoints)


def no_evaluation(loaded: LoadedModel | None) -> str:
    """Why a tab has no evaluation to show (its model has no readable `metrics.json`), for a visitor."""
    if loaded is None:
        return "No model is loaded, so there is no evaluation to show."
    ignored = [w for w in loaded.warnings if w.startswith("metrics.json")]
    if ignored:
        return f"This model's evaluation could not be read: {ignored[0]}."
    return "This model has no evaluation of its own: it was not trained by this project's training script."


def hide_empty(values: tuple) -> tuple:
    """A pane's outputs with each missing one (None: no plot or table to show) hidden, so a
    visitor never sees an empty plot or a table headed "1 2 3"."""
    return tuple(gr.update(value=v, visible=v is not None) for v in values)


def usable(slot: Slot, count: int, available: Callable[[], bool] | None = None) -> tuple[Any, ...]:
    """Updates for `count` controls (buttons, and audio inputs: a disabled one is a player, with no
    Record): disabled while the slot is unavailable (using one could only repeat the card's
    message), enabled otherwise (a press during a load says to wait). `available` decides instead
    for controls that serve several slots."""
    on = available() if available is not None else slot.state != "unavailable"
    return tuple(gr.update(interactive=on) for _ in range(count))


def card_and_controls(slot: Slot, count: int) -> tuple[Any, ...]:
    """The status card (starting the slot's load) and `usable` updates for `count` controls."""
    return status_card(slot), *usable(slot, count)


def scroll_into_view(elem_id: str, block: str = "nearest") -> str:
    """A page event's script that scrolls the element `elem_id` into view: on a phone a result
    lands below the controls that made it, under the fold. "nearest" moves the page only as far
    as needed (not at all when the element is in view); "start" puts the element at the top.
    After a short wait: the event's outputs are drawn after it ends, and a result that grows
    (a transcript filling its box) would otherwise be measured empty."""
    return (
        f"() => setTimeout(() => {{ const e = document.getElementById({elem_id!r}); "
        f"if (e) e.scrollIntoView({{block: {block!r}, behavior: 'smooth'}}); }}, 200)"
    )


def settled(slot: Slot) -> bool:
    """Whether the slot is done changing by itself (loaded or given up), so polling can stop."""
    loaded = slot.peek()
    upgrading = loaded is not None and loaded.upgrade is not None  # its card says "int8 on its way"
    return slot.state in ("loaded", "unavailable", "not loaded") and slot.swapping is None and not upgrading


def shown_key(slot: Slot) -> str:
    """What a tab's results are made from: the served model (this object, so a swapped-in one
    differs, and its precision, which changes when its int8 export takes over) and the state
    (without a model, the "no evaluation" line says loading or given up)."""
    loaded = slot.peek()
    return f"{slot.state}:{id(loaded) if loaded is not None else ''}:{loaded.precision if loaded else ''}"


@dataclass
class Watch:
    """A tab's status timer and the key (`shown_key`) of what its results show on this page.
    The page's first render goes through `render`, so the timer's first tick, finding the slot
    settled on the model already shown, sends nothing: it used to render the results a second
    time (for keyword spotting, re-sending the plots and eight audio clips) while the visitor
    was already picking a cell."""

    timer: gr.Timer
    shown: gr.State
    slot: Slot
    then: Callable[..., Any]

    def render(self, *args: Any) -> list[Any]:
        """The results, and the key they were made for (taken first: a model that arrives
        meanwhile leaves the key behind, so the next tick renders again rather than never)."""
        key = shown_key(self.slot)
        return [*_as_list(self.then(*args)), key]


def _as_list(result: Any) -> list[Any]:
    return list(result) if isinstance(result, (list, tuple)) else [result]


SETTLED_EVERY_S = 30.0  # how soon an open page learns of a model that Reload swapped in


def status_watch(
    slot: Slot,
    card: gr.Markdown,
    then: Callable[..., Any] | None = None,
    inputs: list[Any] | None = None,
    outputs: list[Any] | None = None,
    every_s: float = 2.0,
    controls: Sequence[Any] = (),
    available: Callable[[], bool] | None = None,
) -> Watch:
    """A timer that refreshes `card` every `every_s` while the slot downloads, loads or waits to
    retry, and every SETTLED_EVERY_S once it has settled (so a page open when an operator's
    Reload swaps in a retrained model shows it); `then` (e.g. the tab's results) runs when the
    slot settles on a model other than the one the page shows (`Watch.render`, `Watch.shown`).
    `controls` (the tab's buttons and audio inputs) are disabled while the slot has no model, or
    while `available()` is false (`usable`)."""
    timer = gr.Timer(every_s, active=True)
    shown = gr.State(None)
    watch = Watch(timer, shown, slot, then or (lambda *args: []))
    results = list(outputs or []) if then is not None else []

    def tick(key: str | None, *args: Any) -> list[Any]:
        calm = settled(slot)
        head = [
            status_card(slot, load=False),
            gr.Timer(SETTLED_EVERY_S if calm else every_s, active=True),
            *usable(slot, len(controls), available),
        ]
        if not results or not calm or key == shown_key(slot):
            return head + [gr.skip() for _ in range(len(results) + 1)]
        return head + watch.render(*args)

    # One event a tick (the results ride on it, skipped unless the model changed), without a
    # concurrency limit: a status read takes microseconds, so it never waits for another
    # visitor's (Gradio's default is one at a time per event) nor, being its own event, for inference.
    timer.tick(
        tick,
        inputs=[shown, *(inputs or [])] if results else [shown],
        outputs=[card, timer, *controls, *results, shown],
        api_name=False,
        show_progress="hidden",
        concurrency_limit=None,
    )
    return watch


def require(slot: Slot) -> LoadedModel:
    """The slot's model, or a `gr.Error` that says it is on its way or how to get one."""
    try:
        return slot.get()
    except SlotNotReady as err:
        raise gr.Error(
            f"The {slot.spec.title.lower()} model is not ready yet ({err.state}). Try again in a moment."
        ) from err
    except SlotUnavailable as err:
        reason = visitor_reasons(err.attempts)
        raise gr.Error(f"The {slot.spec.title.lower()} model is not available on this server ({reason}).") from err


@contextmanager
def user_errors() -> Iterator[None]:
    """Input refused by `core` (audio, QA text) reaches the browser or API client as a `gr.Error`
    with its sentence; anything else stays an error for the server log."""
    try:
        yield
    except InputError as err:
        raise gr.Error(str(err)) from err


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def literal(text: str) -> str:
    """`text` (a visitor's words) shown as it is inside Markdown: HTML escaped and Markdown's
    special characters backslashed, so neither markup nor tags in it render."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text, quote=False))


NOTICE_S = 6  # how long a refusal's notice stays: read, then out of the way of the next result


def fading(fn: Callable[..., Any], outputs: int, line: int | None = None) -> Callable[..., Any]:
    """A page event's handler whose refusal (a `gr.Error`: no audio, a file it cannot read) shows
    as a notice that fades, and leaves the event's `outputs` as they were; but for output `line`
    (the line under the result), which says the input was refused, so an earlier result beside a
    new input is never taken for its result.

    Raised, the error would also mark every output with a red "Error" badge that stays after the
    message has gone, over whatever the visitor had there. API endpoints keep raising: a client
    needs the failure. Generator handlers (answers streamed as they come) are wrapped as such."""

    def refused(err: gr.Error) -> Any:
        gr.Warning(err.message, duration=NOTICE_S)
        kept: list[Any] = [gr.skip() for _ in range(outputs)]
        if line is not None:
            kept[line] = f"⚠️ Not done: {err.message}"
        return kept[0] if outputs == 1 else tuple(kept)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error as err:
                yield refused(err)

        return stream

    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error as err:
            return refused(err)

    return handler


def audio_or_error(source: AudioInput, max_duration_s: float | None = None) -> np.ndarray:
    """16 kHz mono float32 samples, or a `gr.Error` with the reason the audio was refused. A file
    is decoded in a worker process (`serving.audio_worker`): one that crashes a decoder is refused."""
    with user_errors():
        return load_isolated(source, max_duration_s=max_duration_s)


def uploaded_path(file: Any) -> str:
    """The server-side path of a file an API client uploaded (`gradio_client.handle_file`).

    Gradio checks a `FileData` dict's path (it must be an upload, never a server file) before the
    endpoint runs; a bare string or a dict without FileData's marker skips that check, so it is
    refused here."""
    if file is None:
        raise gr.Error("No file was sent: upload one (gradio_client's handle_file).")
    meta = file.get("meta") if isinstance(file, dict) else None
    if not isinstance(meta, dict) or meta.get("_type") != "gradio.FileData" or not file.get("path"):
        raise gr.Error("Send the file as an upload (gradio_client's handle_file), not as a path or text.")
    return str(file["path"])


# Files the app writes for a visitor to download (Gradio copies each into its own cache, which
# `delete_cache` clears); ours are removed once they are an hour old, so the folder never grows,
# and the folder itself when the app stops.
OUTPUTS = scratch_folder("app-outputs-")
OUTPUT_LIFETIME_S = 3600


def output_file(name: str) -> Path:
    """A fresh path named `name` in a folder of its own under `OUTPUTS` (older outputs pruned)."""
    cutoff = time.time() - OUTPUT_LIFETIME_S
    for old in OUTPUTS.iterdir():
        if old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    folder = OUTPUTS / uuid.uuid4().hex
    folder.mkdir()
    return folder / name
