"""The QA comparison's question-by-question explorer: the validation questions both checkpoints
answered (their per-example results, core/examples.py), filtered to where they differ, and one
question's context with both answers and the gold answers marked."""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd

from core.examples import Examples
from qa import error_analysis as ea
from slots.errors import SlotUnavailable
from slots.registry import Registry
from ui.error_views import examples_of
from ui.qa_panels import NAMES

SHOWN = 500  # rows in the table and the picker; the API returns every question
COLOURS = ("#bfdbfe", "#fde68a")  # one background per model, in NAMES order
BOTH = "#bbf7d0"


def per_model(registry: Registry, load: bool = False) -> tuple[dict[str, Examples], str]:
    """Each QA model's per-example results (those that have them) and a note on the others; with
    `load`, models not loaded yet are loaded first."""
    found, missing = {}, []
    for name, title in NAMES.items():
        loaded = registry[name].peek()
        if load and loaded is None:
            with contextlib.suppress(SlotUnavailable):  # then examples_of says there is no model
                loaded = registry[name].get()
        examples, why = examples_of(loaded, "qa")
        if examples is None:
            missing.append(f"{title}: {why}")
        else:
            found[name] = examples
    return found, " ".join(missing)


def qa_questions(by_model: dict[str, Examples], how: str = "all") -> dict[str, Any]:
    """The questions every model in `by_model` answered that pass the filter `how`, JSON-ready:
    id, question, gold answers, and per model its answer ("" = abstained), exact and F1."""
    if how not in ea.QA_FILTERS:
        raise gr.Error(f"Unknown filter '{how}'. Use one of: {', '.join(ea.QA_FILTERS)}.")
    joined = ea.join({name: e.rows for name, e in by_model.items()})
    questions = [
        {
            "id": next(iter(j.values()))["id"],
            "question": next(iter(j.values()))["question"],
            "gold": [a["text"] for a in next(iter(j.values()))["answers"]],
            "answers": {name: r["prediction"]["text"] for name, r in j.items()},
            "exact": {name: r["exact"] for name, r in j.items()},
            "f1": {name: r.get("f1") for name, r in j.items()},
        }
        for j in joined
        if ea.keep(j, how)
    ]
    return {"models": list(by_model), "joined": len(joined), "filter": how, "questions": questions}


def marked_context(context: str, marks: dict[str, list[tuple[int, int]]]) -> str:
    """`context` as HTML, one paragraph: each model's answer on its own background (both: green),
    gold answers underlined. `marks` maps "gold" or a slot name to character spans."""
    owners: list[set[str]] = [set() for _ in context]
    for who, spans in marks.items():
        for start, end in spans:
            for k in range(max(start, 0), min(end, len(context))):
                owners[k].add(who)
    parts, k = [], 0
    while k < len(context):
        end = k
        while end < len(context) and owners[end] == owners[k]:
            end += 1
        parts.append(_span(html.escape(context[k:end]), owners[k]))
        k = end
    return f"<p style='line-height:1.7'>{''.join(parts)}</p>"


def _span(text: str, who: set[str]) -> str:
    models = [n for n in NAMES if n in who]
    style = []
    if len(models) == 2:
        style.append(f"background:{BOTH}")
    elif models:
        style.append(f"background:{COLOURS[list(NAMES).index(models[0])]}")
    if "gold" in who:
        style.append("text-decoration:underline;text-decoration-thickness:2px;font-weight:600")
    return f"<span style='{';'.join(style)}'>{text}</span>" if style else text


def legend(models: list[str]) -> str:
    keys = [f"<span style='background:{COLOURS[list(NAMES).index(n)]}'>&nbsp;{NAMES[n]}&nbsp;</span>" for n in models]
    if len(models) == 2:
        keys.append(f"<span style='background:{BOTH}'>&nbsp;both&nbsp;</span>")
    keys.append("<u><b>gold answer</b></u>")
    return "<div>" + " · ".join(keys) + "</div>"


def question_detail(by_model: dict[str, Examples], qid: str | None) -> str:
    """One question: its context with every answer marked, and each model's answer, EM, F1 and
    no-answer margin (how much more the model believed "no answer" than its best span)."""
    rows = {name: next((r for r in e.rows if r["id"] == qid), None) for name, e in by_model.items()}
    rows = {name: r for name, r in rows.items() if r is not None}
    if not rows:
        return ""
    first_name, first = next(iter(rows.items()))
    context = by_model[first_name].contexts.get(first["context"], "")
    marks: dict[str, list[tuple[int, int]]] = {
        "gold": [(a["start"], a["start"] + len(a["text"])) for a in first["answers"]]
    }
    lines = []
    for name, row in rows.items():
        p = row["prediction"]
        if isinstance(p.get("start"), int) and isinstance(p.get("end"), int):  # a row may leave them out
            marks[name] = [(p["start"], p["end"])]
        said = html.escape(p["text"]) if p["text"] else "<i>no answer</i>"
        margin = row.get("null_margin")
        threshold = row.get("threshold", 0)
        extra = "" if margin is None else f", no-answer margin {margin:+.2f}, abstains above {threshold:+.2f}"
        lines.append(f"<li><b>{NAMES[name]}</b>: {said} (EM {row['exact']}, F1 {row.get('f1', 0):.2f}{extra})</li>")
    gold = ", ".join(html.escape(a["text"]) for a in first["answers"]) or "<i>none: the question is unanswerable</i>"
    return (
        f"<p><b>{html.escape(first['question'])}</b></p>"
        f"<ul>{''.join(lines)}<li><b>Gold</b>: {gold}</li></ul>"
        f"{legend(list(rows))}{marked_context(context, marks)}"
    )


def qa_explorer(registry: Registry) -> tuple[Callable[..., list[Any]], list[Any], list[Any]]:
    """The explorer's section of the Comparison tab; returns its refresh function, its inputs
    (the filter and the question shown) and its outputs."""
    gr.Markdown("### Question by question")
    note = gr.Markdown()
    how = gr.Radio([(label, key) for key, label in ea.QA_FILTERS.items()], value="all", label="Show")
    table = gr.Dataframe(label="Questions (select one)", interactive=False, wrap=True, max_height=360)
    picked = gr.Dropdown(label="Question", choices=[], interactive=True)
    detail = gr.HTML()

    def on_filter(chosen: str, current: str | None = None) -> list[Any]:
        """The list for the filter `chosen`; the question shown stays `current` while it is in the
        list (a status refresh must not undo a visitor's choice), else the first one."""
        by_model, missing = per_model(registry)
        if not by_model:
            return [missing, gr.update(visible=False), gr.update(choices=[], value=None, visible=False), ""]
        result = qa_questions(by_model, chosen)
        questions = result["questions"]
        frame = pd.DataFrame(
            [
                {
                    "question": q["question"],
                    "gold": " | ".join(q["gold"]) or "(unanswerable)",
                    **{NAMES[n]: q["answers"][n] or "(no answer)" for n in result["models"]},
                }
                for q in questions[:SHOWN]
            ]
        )
        text = _note(result, missing, chosen)
        choices = [(q["question"][:80], q["id"]) for q in questions[:SHOWN]]
        ids = [c[1] for c in choices]
        first = current if current in ids else (ids[0] if ids else None)
        return [
            text,
            gr.update(value=frame, visible=bool(questions)),
            gr.update(choices=choices, value=first, visible=bool(questions)),
            question_detail(by_model, first),
        ]

    def on_pick(qid: str | None) -> str:
        return question_detail(per_model(registry)[0], qid)

    def on_select(event: gr.SelectData, chosen: str) -> str | None:
        questions = qa_questions(per_model(registry)[0], chosen)["questions"]
        return questions[event.index[0]]["id"] if event.index[0] < len(questions) else None

    outputs = [note, table, picked, detail]
    how.change(on_filter, inputs=how, outputs=outputs, api_name=False)  # a new filter: its first question
    picked.change(on_pick, inputs=picked, outputs=detail, api_name=False)
    table.select(on_select, inputs=how, outputs=picked, api_name=False)

    def api_qa_questions(filter: str = "all") -> dict:  # noqa: A002 - the name API clients pass
        """The validation questions both QA checkpoints answered (joined on id) that pass `filter`:
        "all", "disagree", "one right", "unanswerable answered" or "answerable abstained". Each has
        id, question, gold answers, and per slot its answer ("" = abstained), exact and f1."""
        by_model, missing = per_model(registry, load=True)
        if not by_model:
            raise gr.Error(missing)
        return qa_questions(by_model, filter)

    gr.api(api_qa_questions, api_name="qa_questions")
    return on_filter, [how, picked], outputs


def _note(result: dict[str, Any], missing: str, chosen: str) -> str:
    models = [NAMES[n] for n in result["models"]]
    count = len(result["questions"])
    if len(models) == 1:
        text = f"Only {models[0]} has per-example results ({missing}); its answers are shown alone."
        if chosen in ea.TWO_MODEL_FILTERS:
            text += " This filter compares two models, so it shows nothing."
    else:
        text = f"Both models answered the same {result['joined']:,} validation questions."
    shown = f" The first {SHOWN} are listed." if count > SHOWN else ""
    return f"{text} **{count:,}** shown with “{ea.QA_FILTERS[chosen]}”.{shown}"
