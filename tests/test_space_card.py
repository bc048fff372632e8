"""README's front matter is a Space card that ZeroGPU can build: parsed as the hub parses it, it
names a ZeroGPU Python, the Gradio pin, ZeroGPU hardware, and preloads exactly the four revisions
and files the slot table pins (`python -m scripts.space_check --resolve` also resolves the pins
for that Python; CI runs it)."""

from __future__ import annotations

from scripts import space_check
from slots.table import SLOTS


def test_the_front_matter_is_what_a_zerogpu_space_needs():
    data = space_check.card()
    assert space_check.problems(data) == []
    assert data.python_version == "3.12" and data.sdk == "gradio" and data.app_file == "app.py"
    entries = [entry.split(" ") for entry in data.preload_from_hub]
    assert [(repo, rev) for repo, _, rev in entries] == [(s.hub_id, s.revision) for s in SLOTS.values()]
    assert [files.split(",") for _, files, _ in entries] == [list(s.files) for s in SLOTS.values()]
    assert all("model.safetensors" in s.files and "config.json" in s.files for s in SLOTS.values())
    assert space_check.pins()["spaces"] == "0.51.3"


def test_a_card_that_drifts_from_the_slot_table_is_named():
    data = space_check.card()
    data.preload_from_hub = [*data.preload_from_hub[:-1], "deepset/xlm-roberta-base-squad2 config.json main"]
    data.python_version = "3.11"
    found = space_check.problems(data)
    assert len(found) == 2 and found[0].startswith("python_version '3.11'")
    assert (
        found[1].startswith("preload_from_hub is not the slot table's defaults")
        and SLOTS["qa-xlmr"].revision in found[1]
    )
