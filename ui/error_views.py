"""Error analysis in the speech tabs, from the per-example results stored with a checkpoint
(core/examples.py): the clips of a confusion-matrix cell (KWS) and the worst utterances aligned
word by word (ASR), each with its audio."""

from __future__ import annotations

import hashlib
import html
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.examples import Examples, ExamplesError, read_examples
from serving.scratch import scratch_folder
from slots.slot import Slot
from slots.sources import LoadedModel
from speech import error_analysis as ea
from ui.common import require

PAGE = 8  # clips with a player on one page: enough to compare, few enough to load at once


def examples_of(loaded: LoadedModel | None, task: str) -> tuple[Examples | None, str]:
    """The loaded model's per-example results, or why there are none, for a visitor."""
    if loaded is None:
        return None, "No model is loaded, so there are no examples to show."
    try:
        examples = read_examples(loaded.path)
    except ExamplesError as err:
        return None, f"This model's per-example results could not be read: {err}."
    if examples is None or examples.task != task:
        return None, (
            "This model has no per-example results: only checkpoints written by this project's training "
            "scripts carry them (hub models and older checkpoints have none)."
        )
    return examples, ""


class ClipList:
    """A page of PAGE clips, each a line of HTML and an audio player, with a page picker."""

    def __init__(self) -> None:
        self.page = gr.Dropdown(label="Page", choices=[], visible=False, interactive=True)
        self.items: list[tuple[gr.HTML, gr.Audio]] = []
        for _ in range(PAGE):
            with gr.Row(equal_height=True):
                self.items.append(
                    (
                        gr.HTML(visible=False),
                        gr.Audio(visible=False, label="Listen", min_width=320, buttons=["download"]),
                    )
                )

    @property
    def outputs(self) -> list[Any]:
        return [self.page, *(c for item in self.items for c in item)]

    def show(self, entries: list[tuple[str, Path | None]], page: int = 0) -> list[Any]:
        """Updates for `outputs`: page `page` of `entries` (text, stored audio or None)."""
        pages = max(1, -(-len(entries) // PAGE))
        page = min(max(int(page or 0), 0), pages - 1)
        choices = [(f"{i * PAGE + 1}–{min((i + 1) * PAGE, len(entries))} of {len(entries)}", i) for i in range(pages)]
        updates: list[Any] = [gr.update(choices=choices, value=page, visible=pages > 1)]
        shown = entries[page * PAGE : (page + 1) * PAGE]
        for i in range(PAGE):
            text, audio = shown[i] if i < len(shown) else ("", None)
            updates.append(gr.update(value=text, visible=i < len(shown)))
            updates.append(gr.update(value=_servable(audio), visible=audio is not None))
        return updates


# One copy per stored clip where Gradio serves outputs from (a checkpoint folder is not one), made
# on its first render and reused by every later one: a copy per render added ~1.7 MB a render.
# Bounded by the checkpoints' stored audio (20 MB each by default); removed when the app stops.
CLIPS = scratch_folder("app-clips-")


def _servable(audio: Path | None) -> str | None:
    """The stable servable copy of a stored clip (a new one when the clip's file changed)."""
    if audio is None:
        return None
    stat = audio.stat()
    key = hashlib.sha256(f"{audio.resolve()}|{stat.st_mtime_ns}|{stat.st_size}".encode()).hexdigest()[:24]
    copy = CLIPS / key / audio.name
    if not copy.is_file():
        copy.parent.mkdir(exist_ok=True)
        staging = copy.with_name(f".{audio.name}.{uuid.uuid4().hex}")
        shutil.copyfile(audio, staging)
        staging.replace(copy)  # (renders of the same clip at once never see half a file)
    return str(copy)


# --- keyword spotting -------------------------------------------------------------------------


def kws_errors(examples: Examples, true: str | None, predicted: str | None) -> dict[str, Any]:
    """The most confused pairs, and the clips of the (true, predicted) cell, JSON-ready."""
    chosen = ea.cell(examples.rows, true, predicted) if true and predicted else []
    return {
        "split": examples.split,
        "confused": [{"true": t, "predicted": p, "count": n} for t, p, n in ea.confused_pairs(examples.rows)],
        "clips": [{**r, "audio": examples.audio_path(r) is not None} for r in chosen],
        "audio_note": examples.audio_note(),
    }


def clip_line(row: dict[str, Any], has_audio: bool) -> str:
    top = " · ".join(f"{html.escape(label)} {p:.0%}" for label, p in row["top3"])
    return f"<b>{html.escape(row['id'])}</b> — heard as {top}" + ("" if has_audio else " <i>(audio not stored)</i>")


def kws_panel(slot: Slot, labels: list[str]) -> tuple[Callable[..., list[Any]], list[Any], list[Any]]:
    """The "listen to the mistakes" section; returns its refresh function, the refresh's inputs
    (the cell pickers) and its outputs."""
    gr.Markdown("### Listen to the mistakes")
    note = gr.Markdown()
    pairs = gr.Dataframe(
        headers=["true", "predicted", "clips"], label="Most confused pairs (select one)", interactive=False
    )
    with gr.Row():
        true = gr.Dropdown(labels, label="True keyword", value=None)
        predicted = gr.Dropdown(labels, label="Predicted as", value=None)
    heading = gr.Markdown()
    clips = ClipList()

    def examples(load: bool = False) -> tuple[Examples | None, str]:
        return examples_of(require(slot) if load else slot.peek(), "kws")

    def on_cell(t: str | None, p: str | None, page: int = 0) -> list[Any]:
        found, _ = examples()
        if found is None or not (t and p):
            return [gr.update(value="", visible=False), *clips.show([])]
        chosen = ea.cell(found.rows, t, p)
        entries = [(clip_line(r, found.audio_path(r) is not None), found.audio_path(r)) for r in chosen]
        count = len(entries)
        text = f"**{count} {found.split} clip{'s' * (count != 1)}** of `{t}` predicted as `{p}`."
        return [gr.update(value=text, visible=True), *clips.show(entries, page)]

    def refresh(chosen_true: str | None = None, chosen_predicted: str | None = None) -> list[Any]:
        """The note, the pairs and the cell shown; the pickers move to the most confused pair
        unless the visitor has already chosen a cell (a status refresh must not undo their choice)."""
        found, why = examples()
        if found is None:  # no empty pickers: the note says why there is nothing to pick
            hidden = [gr.update(value=None, visible=False) for _ in range(2)]
            return [why, gr.update(visible=False), *hidden, *on_cell(None, None)]
        confused = kws_errors(found, None, None)["confused"]
        table = pd.DataFrame(
            [[c["true"], c["predicted"], c["count"]] for c in confused], columns=["true", "predicted", "clips"]
        )
        text = f"Every {found.split} clip with the model's prediction; {found.audio_note()}"
        if not confused:
            text += f" The model got every {found.split} clip right."
        if not (chosen_true and chosen_predicted) and confused:
            chosen_true, chosen_predicted = confused[0]["true"], confused[0]["predicted"]
        return [
            text,
            gr.update(value=table, visible=bool(confused)),
            gr.update(value=chosen_true, visible=True),
            gr.update(value=chosen_predicted, visible=True),
            *on_cell(chosen_true, chosen_predicted),
        ]

    def on_pair(event: gr.SelectData, table: pd.DataFrame) -> list[Any]:
        row = table.iloc[event.index[0]]
        return [row.iloc[0], row.iloc[1], *on_cell(row.iloc[0], row.iloc[1])]

    # One event per visitor action: the pickers listen to `input` (a visitor's choice), not
    # `change`, so a pair picked in the table or a refresh that moves both pickers renders the
    # cell's clips once, not once per picker (each render copies and sends PAGE clips).
    cell_outputs = [heading, *clips.outputs]
    for picker in (true, predicted):
        picker.input(on_cell, inputs=[true, predicted], outputs=cell_outputs, api_name=False)
    clips.page.input(on_cell, inputs=[true, predicted, clips.page], outputs=cell_outputs, api_name=False)
    pairs.select(on_pair, inputs=pairs, outputs=[true, predicted, *cell_outputs], api_name=False)

    def api_kws_errors(true_label: str = "", predicted_label: str = "") -> dict:
        """The evaluation's most confused keyword pairs and the clips whose true and predicted
        labels are (true_label, predicted_label): id, true, predicted, top3, audio (stored or not)."""
        found, why = examples(load=True)
        if found is None:
            raise gr.Error(why)
        return kws_errors(found, true_label or None, predicted_label or None)

    gr.api(api_kws_errors, api_name="kws_errors")
    return refresh, [true, predicted], [note, pairs, true, predicted, *cell_outputs]


# --- speech recognition -----------------------------------------------------------------------

MARK = {
    "substitute": "background:#fde2e1;color:#9b1c1c",
    "delete": "background:#fde2e1;color:#9b1c1c;text-decoration:line-through",
    "insert": "background:#def7ec;color:#03543f",
}


_LEGEND = (
    f"<span style='{MARK['substitute']}'>said → heard</span>, "
    f"<span style='{MARK['delete']}'>missed</span>, <span style='{MARK['insert']}'>+added</span>"
)


def alignment_html(row: dict[str, Any]) -> str:
    """The reference and the transcript word by word: a substitution shows both words, a deleted
    word is struck through, an inserted one is green."""
    return marked_words(ea.aligned_words(row), ("said", "heard"), ("missed", "added"))


def marked_words(steps: Any, names: tuple[str, str], only: tuple[str, str]) -> str:
    """Two texts word by word as (kind, first's word, second's word) steps, in HTML: the first's
    words, a substitution as both ("first → second", `names` in its tooltip), a word only the
    first has struck through, one only the second has green (`only`: their tooltips)."""
    parts = []
    for kind, first, second in steps:
        first, second = html.escape(first), html.escape(second)
        if kind == "equal":
            parts.append(first)
        elif kind == "substitute":
            tip = f"{names[0]} “{first}”, {names[1]} “{second}”"
            parts.append(f'<span style="{MARK[kind]}" title="{tip}">{first} → {second}</span>')
        elif kind == "delete":
            parts.append(f'<span style="{MARK[kind]}" title="{only[0]}">{first}</span>')
        else:
            parts.append(f'<span style="{MARK[kind]}" title="{only[1]}">+{second}</span>')
    return " ".join(parts)


def asr_errors(examples: Examples, top: int = 10) -> dict[str, Any]:
    """S/D/I totals, the most frequent substitutions and the utterances with errors, worst first."""
    return {
        "split": examples.split,
        "breakdown": ea.error_breakdown(examples.rows),
        "substitutions": [
            {"reference": r, "heard": h, "count": n} for r, h, n in ea.substitutions(examples.rows, top)
        ],
        "worst": [{**r, "audio": examples.audio_path(r) is not None} for r in ea.worst(examples.rows)],
        "audio_note": examples.audio_note(),
    }


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def utterance_line(row: dict[str, Any], examples: Examples) -> str:
    errors = row["errors"]
    counts = f"{errors['substitutions']} substituted, {errors['deletions']} missed, {errors['insertions']} added"
    stored = "" if examples.audio_path(row) else " <i>(audio not stored)</i>"
    title = f"<b>{html.escape(row['id'])}</b> — WER {row['wer']:.0%} ({counts}){stored}"
    return f"<div>{title}</div><div style='line-height:1.8'>{alignment_html(row)}</div>"


def asr_panel(slot: Slot) -> tuple[Callable[[], list[Any]], list[Any]]:
    """The "where the words go wrong" section; returns its refresh function and outputs."""
    gr.Markdown("### Where the words go wrong")
    note = gr.Markdown()
    subs = gr.Dataframe(headers=["said", "heard", "times"], label="Most frequent substitutions", interactive=False)
    clips = ClipList()

    def examples(load: bool = False) -> tuple[Examples | None, str]:
        return examples_of(require(slot) if load else slot.peek(), "asr")

    def page_of(page: int = 0) -> list[Any]:
        found, _ = examples()
        if found is None:
            return clips.show([])
        return clips.show([(utterance_line(r, found), found.audio_path(r)) for r in ea.worst(found.rows)], page)

    def refresh() -> list[Any]:
        found, why = examples()
        if found is None:
            return [why, gr.update(visible=False), *page_of()]
        result = asr_errors(found)
        b = result["breakdown"]
        text = (
            f"On the {found.split} set ({plural(len(found.rows), 'utterance')}, {plural(b['words'], 'word')}), "
            "words substituted: "
            f"{b['substitutions']:,}, missed: {b['deletions']:,}, added: {b['insertions']:,}. Below, the utterances "
            f"with errors, worst first ({_LEGEND}); {found.audio_note()}"
        )
        table = pd.DataFrame(
            [[s["reference"], s["heard"], s["count"]] for s in result["substitutions"]],
            columns=["said", "heard", "times"],
        )
        return [text, gr.update(value=table, visible=bool(result["substitutions"])), *page_of()]

    clips.page.input(page_of, inputs=clips.page, outputs=clips.outputs, api_name=False)

    def api_asr_errors() -> dict:
        """The test set's errors: "breakdown" (substitutions, deletions, insertions, words), the
        most frequent "substitutions", and the utterances with errors, worst first ("worst": id,
        reference, hypothesis, wer, cer, errors, alignment as jiwer's chunks, audio stored or not)."""
        found, why = examples(load=True)
        if found is None:
            raise gr.Error(why)
        return asr_errors(found)

    gr.api(api_asr_errors, api_name="asr_errors")
    return refresh, [note, subs, *clips.outputs]
