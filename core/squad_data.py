"""SQuAD v2 from the hub (parquet `rajpurkar/squad_v2`) or from files: the official nested JSON
(data → paragraphs → qas, `is_impossible`) or flat JSON lines. All give `core.qa.Example` lists."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.qa import Example


def from_flat(rows: Iterable[dict[str, Any]]) -> list[Example]:
    """Rows with id, question, context and answers as {"text": [...], "answer_start": [...]} (the
    hub's layout) or as a list of {"text", "answer_start"} dicts."""
    examples = []
    for i, row in enumerate(rows):
        answers = row.get("answers") or []
        if isinstance(answers, dict):
            answers = [
                {"text": t, "answer_start": s} for t, s in zip(answers["text"], answers["answer_start"], strict=True)
            ]
        examples.append(Example(str(row.get("id", i)), row["question"], row["context"], list(answers)))
    return examples


def from_squad_json(data: dict[str, Any]) -> list[Example]:
    """The official SQuAD v2 file layout."""
    if "data" not in data:
        raise ValueError("not a SQuAD file: the top level has no 'data' list")
    examples = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                examples.append(
                    Example(
                        str(qa["id"]),
                        qa["question"],
                        paragraph["context"],
                        [{"text": a["text"], "answer_start": a["answer_start"]} for a in answers],
                    )
                )
    return examples


def load_file(path: str | Path) -> list[Example]:
    """A SQuAD v2 JSON file, or JSON lines with one flat example per line."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return from_flat(json.loads(line) for line in text.splitlines() if line.strip())
    data = json.loads(text)
    return from_flat(data) if isinstance(data, list) else from_squad_json(data)


def load_hub(name: str, split: str, revision: str | None, limit: int | None) -> list[Example]:
    """The first `limit` examples (all when None) of a parquet-backed hub dataset split."""
    from datasets import load_dataset

    selection = split if limit is None else f"{split}[:{limit}]"
    ds = load_dataset(name, split=selection, revision=revision)
    return from_flat(ds)


def gold_answers(examples: Iterable[Example]) -> dict[str, list[str]]:
    """Question id -> its gold answer texts (empty for an unanswerable question)."""
    return {e.id: [a["text"] for a in e.answers] for e in examples}
