"""What every tab's comparison shares: the two model pickers over a task's candidates
(`slots.candidates`), the chosen pair's models, their stored evaluations, and the sentences that
say how sure a difference is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from core.examples import Examples
from core.paired import Difference, in_words
from slots import candidates
from slots.registry import Registry
from slots.slot import Slot
from slots.sources import LoadedModel
from ui.common import require, user_errors
from ui.error_views import examples_of


def label(slot: Slot) -> str:
    """A candidate as a picker shows it: a default slot by its name and where its model comes from,
    another by its title (what it is, how it was trained, its headline metric)."""
    spec = slot.spec
    if not spec.default:
        return spec.title
    loaded = slot.peek()
    if loaded is not None and loaded.metrics:  # a run of ours: what it is, as a candidate says it
        return f"{spec.name} (default): {candidates.describe(spec.task, loaded.metrics)}"
    return f"{spec.name} (default): {loaded.label if loaded else spec.hub_id or spec.title}"


def choices(registry: Registry, task: str) -> list[tuple[str, str]]:
    return [(label(slot), slot.spec.name) for slot in registry.candidates(task)]


def default_pair(registry: Registry, task: str) -> tuple[str | None, str | None]:
    """The pair a tab starts with: the task's first two candidates (QA: its two default slots)."""
    names = [slot.spec.name for slot in registry.candidates(task)]
    return (names[0] if names else None), (names[1] if len(names) > 1 else None)


def pickers(registry: Registry, task: str) -> tuple[gr.Dropdown, gr.Dropdown]:
    """Two dropdowns, A and B, over the task's candidates (refilled on page load: `refill`)."""
    with gr.Row():
        a = gr.Dropdown(label="Model A", choices=[], interactive=True, min_width=200)
        b = gr.Dropdown(label="Model B", choices=[], interactive=True, min_width=200)
    return a, b


def refill(registry: Registry, task: str, a: str | None = None, b: str | None = None) -> tuple[Any, Any]:
    """Updates for the pickers: today's candidates (a run finished since is offered), keeping a
    visitor's choice where it is still offered."""
    offered = choices(registry, task)
    names = [name for _, name in offered]
    first, second = default_pair(registry, task)
    a = a if a in names else first
    b = b if b in names and b != a else next((n for n in names if n not in (a,)), second)
    return gr.update(choices=offered, value=a), gr.update(choices=offered, value=b)


def pair(registry: Registry, task: str, a: str | None, b: str | None) -> tuple[Slot, Slot]:
    """The two chosen candidates, or a `gr.Error` that says what is wrong with the choice."""
    with user_errors():
        return registry.pair(task, a or "", b or "")


def models(registry: Registry, task: str, a: str | None, b: str | None) -> tuple[LoadedModel, LoadedModel]:
    """The two chosen candidates' models (loading them: one unloads another beyond the bound)."""
    slot_a, slot_b = pair(registry, task, a, b)
    return require(slot_a), require(slot_b)


def stored_pair(registry: Registry, task: str, a: str | None, b: str | None) -> tuple[Examples, Examples]:
    """Both candidates' stored per-example results, or a `gr.Error` naming the one without them."""
    slot_a, slot_b = pair(registry, task, a, b)
    found = []
    for which, slot in (("A", slot_a), ("B", slot_b)):
        examples, why = examples_of(require(slot), task)
        if examples is None:
            raise gr.Error(f"Model {which} ({slot.spec.name}): {why}")
        found.append(examples)
    return found[0], found[1]


def clip_finder(*stores: Examples) -> Callable[[Any], Path | None]:
    """The stored clip of an example id from whichever of `stores` holds one (two models paired
    on the same examples may have kept the audio of different ones)."""
    indexed = [(store, {row["id"]: row for row in store.rows}) for store in stores]

    def find(uid: Any) -> Path | None:
        for store, rows in indexed:
            if uid in rows and (path := store.audio_path(rows[uid])) is not None:
                return path
        return None

    return find


def difference(d: Difference, metric: str, unit: str, lower_is_better: bool = True) -> dict[str, Any]:
    """A paired test's result as the comparison endpoints return it: both values, the 95 %
    interval of B − A, and `core.paired.in_words`."""
    return {"a": d.a, "b": d.b, "low": d.low, "high": d.high, "in_words": in_words(d, metric, unit, lower_is_better)}


def difference_lines(result: dict[str, Any], metrics: tuple[tuple[str, str], ...]) -> str:
    """One Markdown bullet per (key, name) of `result`'s `difference` entries."""
    return "\n".join(
        f"- **{name}**: A {result[key]['a']:.1%}, B {result[key]['b']:.1%}. {result[key]['in_words']}"
        for key, name in metrics
    )
