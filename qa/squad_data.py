"""SQuAD v2 from the hub (parquet `rajpurkar/squad_v2`) or from files: the official nested JSON
(data → paragraphs → qas, `is_impossible`) or flat JSON lines. All give `qa.extractive.Example` lists.

A file may come from anyone (the app's batch evaluation takes uploads), so every level is checked
for its JSON type, and a file that is not SQuAD v2 raises `SquadFormatError` with a sentence that
says where and what is wrong, never a KeyError or a RecursionError.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.errors import InputError, json_kind
from qa.extractive import Example

ACCEPTED = (
    "a SQuAD v2 JSON file ({'data': [{'paragraphs': [{'context': ..., 'qas': [...]}]}]}) or JSON lines "
    "with one {'id', 'question', 'context', 'answers'} object per line"
)


class SquadFormatError(InputError):
    """A file that is not SQuAD v2; the message says where, what is wrong and what is accepted."""


def from_flat(rows: Iterable[Any]) -> list[Example]:
    """Rows with id, question, context and answers as {"text": [...], "answer_start": [...]} (the
    hub's layout) or as a list of {"text", "answer_start"} dicts."""
    examples = []
    for i, row in enumerate(rows):
        where = f"item {i + 1}"
        _expect(row, dict, where)
        answers = row.get("answers") or []
        if isinstance(answers, dict):
            texts, starts = answers.get("text", []), answers.get("answer_start", [])
            _expect(texts, list, f"{where}: 'answers.text'")
            _expect(starts, list, f"{where}: 'answers.answer_start'")
            if len(texts) != len(starts):
                raise SquadFormatError(f"{where}: 'answers' has {len(texts)} texts but {len(starts)} starts.")
            answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts, strict=True)]
        examples.append(_example(row.get("id", i), row, row.get("context"), answers, where))
    return examples


def from_squad_json(data: Any) -> list[Example]:
    """The official SQuAD v2 file layout."""
    if not isinstance(data, dict) or "data" not in data:
        raise SquadFormatError(f"This is not SQuAD v2: the top level has no 'data' list. Accepted: {ACCEPTED}.")
    examples = []
    _expect(data["data"], list, "'data'")
    for a, article in enumerate(data["data"]):
        _expect(article, dict, f"article {a + 1}")
        _expect(article.get("paragraphs"), list, f"article {a + 1}: 'paragraphs'")
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"article {a + 1}, paragraph {p + 1}"
            _expect(paragraph, dict, where)
            _expect(paragraph.get("qas"), list, f"{where}: 'qas'")
            for q, qa in enumerate(paragraph["qas"]):
                _expect(qa, dict, f"{where}, question {q + 1}")
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                examples.append(
                    _example(qa.get("id"), qa, paragraph.get("context"), answers, f"{where}, question {q + 1}")
                )
    return examples


def parse(text: str, json_lines: bool) -> list[Example]:
    """Examples from a file's text: JSON lines, or one JSON document (official layout, or a list
    of flat rows).

    Raises:
        SquadFormatError: not JSON, nested too deeply, or not shaped like SQuAD v2.
    """
    try:
        if json_lines:
            return from_flat(_json(line, f"line {n + 1}") for n, line in enumerate(text.splitlines()) if line.strip())
        data = _json(text, "the file")
    except RecursionError as err:  # raised by a deeply nested row while it is being checked
        raise SquadFormatError("The file nests lists or objects too deeply to be SQuAD v2.") from err
    return from_flat(data) if isinstance(data, list) else from_squad_json(data)


def load_file(path: str | Path) -> list[Example]:
    """A SQuAD v2 JSON file, or JSON lines with one flat example per line (`.jsonl`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SquadFormatError(f"The file is not UTF-8 text. Accepted: {ACCEPTED}.") from err
    return parse(text, path.suffix == ".jsonl")


def gold_answers(examples: Iterable[Example]) -> dict[str, list[str]]:
    """Question id -> its gold answer texts (empty for an unanswerable question)."""
    return {e.id: [a["text"] for a in e.answers] for e in examples}


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        at = f"line {err.lineno}, column {err.colno}" if where == "the file" else f"column {err.colno}"
        raise SquadFormatError(
            f"{where[0].upper()}{where[1:]} is not valid JSON ({at}). Accepted: {ACCEPTED}."
        ) from err
    except RecursionError as err:
        raise SquadFormatError(
            f"{where[0].upper()}{where[1:]} nests lists or objects too deeply to be SQuAD v2."
        ) from err


def _example(qid: Any, row: dict, context: Any, answers: Any, where: str) -> Example:
    """One example, every field checked: id (text or number), question and context (text),
    answers (objects with a text and a whole-number start)."""
    if isinstance(qid, bool) or not isinstance(qid, (str, int)):
        raise SquadFormatError(f"{where}: 'id' is {json_kind(qid)}; use text or a number.")
    _expect(row.get("question"), str, f"{where}: 'question'")
    _expect(context, str, f"{where}: 'context'")
    _expect(answers, list, f"{where}: 'answers'")
    checked = []
    for k, answer in enumerate(answers):
        _expect(answer, dict, f"{where}: answer {k + 1}")
        _expect(answer.get("text"), str, f"{where}: answer {k + 1}: 'text'")
        start = answer.get("answer_start", 0)
        if isinstance(start, bool) or not isinstance(start, int):
            raise SquadFormatError(
                f"{where}: answer {k + 1}: 'answer_start' is {json_kind(start)}, not a whole number."
            )
        checked.append({"text": answer["text"], "answer_start": start})
    return Example(str(qid), row["question"], context, checked)


def _expect(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        raise SquadFormatError(
            f"{where[0].upper()}{where[1:]} is {json_kind(value)}, not {json_kind(kind)}. Accepted: {ACCEPTED}."
        )
