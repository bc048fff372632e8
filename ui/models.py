"""Models tab: the course report's structure table (layers, widths, heads,
vocabulary, parameters) for every slot, read from the loaded configs, and the
`status` endpoint."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from core.structure import ROWS, structure
from slots.registry import Registry
from slots.table import TASK_TITLES
from ui import asr_live, live
from ui.common import operator_card, settled, status_card

TABLE_ROWS = ("model type", *ROWS, "vocabulary", "parameters", "size on disk")


def structure_table(registry: Registry) -> pd.DataFrame:
    """Rows = the structure table's attributes, one column per slot; '—' where a slot has no model."""
    columns: dict[str, list[Any]] = {"": list(TABLE_ROWS)}
    for slot in registry.slots.values():
        loaded = slot.peek()
        rows = structure(loaded.model.config, loaded.parameters, loaded.size_bytes) if loaded else {}
        columns[slot.spec.title if slot.spec.default else slot.spec.name] = [
            _cell(rows.get(key)) for key in TABLE_ROWS
        ]
    return pd.DataFrame(columns)


def status(registry: Registry, report: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per slot: state (and download progress), source, parameters, size on disk, device, load
    time, or the error, and for a slot with a Live tab its places (`live.Places.summary`); under
    "app": whether slots preload and seconds from launch to all ready. `report`: the slots'
    status already taken (`Registry.reload` returns one), else it is taken now, never waiting."""
    if report is None:
        report = registry.status(load=True, wait=False)
    for name, slot in registry.slots.items():
        if (listening := live.status(slot)) is not None:
            report[name]["live"] = listening
            if (readouts := asr_live.status(slot)) is not None:  # recordings that listened for speech
                listening["readouts"] = readouts
    report["app"] = registry.summary()
    return report


def overview(registry: Registry) -> tuple[pd.DataFrame, str, str, dict]:
    """The structure table, the visitor's cards, the operator's detail and the status JSON."""
    report = status(registry)
    cards = "\n\n".join(status_card(slot, load=False) for slot in registry.slots.values())
    ready = report["app"]["all_ready_after_s"]
    if ready is not None:
        cards += f"\n\nThe default models were ready {ready:.1f} s after launch."
    app = report["app"]
    others = {task: [n for n in names if not registry[n].spec.default] for task, names in app["candidates"].items()}
    if any(others.values()):
        listed = "; ".join(f"{TASK_TITLES[t]}: {', '.join(n)}" for t, n in others.items() if n)
        cards += f"\n\nMore models to compare (each loads when first used): {listed}."
    if app["max_loaded_models"]:
        cards += (
            f"\n\nAt most {app['max_loaded_models']} models are loaded at once ({app['loaded_models']} now); "
            "the least recently used one is unloaded to make room."
        )
    details = "\n\n".join(operator_card(slot) for slot in registry.slots.values())
    return structure_table(registry), cards, details, report


def reload(registry: Registry) -> tuple[pd.DataFrame, str, str, dict]:
    """Reload (`Registry.reload`: safe for any visitor to press), say what it did, and the overview."""
    report = registry.reload()
    gr.Info(
        "Reload: " + "; ".join(f"{slot.spec.title}: {report[name]['reload']}" for name, slot in registry.slots.items())
    )
    return overview(registry)


def build(registry: Registry, page: gr.Blocks) -> None:
    """The Models tab's components, placed in the caller's layout; `page`, the app's Blocks,
    runs their load events."""
    gr.Markdown(
        "Structure of the model behind each slot, read from its config "
        "(the structure table of the course report this app recreates), and where each model comes from."
    )
    models_table = gr.Dataframe(label="Model structure", interactive=False, wrap=True)
    models_cards = gr.Markdown()
    with gr.Row():
        models_refresh = gr.Button("Refresh status")
        models_reload = gr.Button("Reload models", variant="secondary")
    with gr.Accordion("For the operator: what each slot tried, folders and errors in full", open=False):
        models_details = gr.Markdown()
    with gr.Accordion("Status (JSON, as the status endpoint returns it)", open=False):
        models_status = gr.JSON()
    outputs = [models_table, models_cards, models_details, models_status]
    # Status reads take microseconds: no concurrency limit, so no visitor waits for another's.
    page.load(lambda: overview(registry), outputs=outputs, api_name=False, concurrency_limit=None)
    models_refresh.click(lambda: overview(registry), outputs=outputs, api_name=False, concurrency_limit=None)
    models_reload.click(lambda: reload(registry), outputs=outputs, api_name=False)
    models_timer = gr.Timer(2.0)  # refreshes while any slot downloads, loads or waits to retry
    models_timer.tick(
        lambda: (*overview(registry), gr.Timer(active=not all_settled(registry))),
        outputs=[*outputs, models_timer],
        api_name=False,
        show_progress="hidden",
        concurrency_limit=None,
    )

    def slot_status() -> dict:
        """Per slot: state, source, parameters, size on disk, device, load time or error;
        under "app": whether slots preload and seconds from launch until all were ready."""
        return status(registry)

    def reload_models() -> dict:
        """Load what changed since launch (a checkpoint trained since, a slot that failed),
        serving the current model until its successor is ready; returns the status, as /status
        does, with what was done to each slot under "reload", once local reads are done."""
        return status(registry, registry.reload())

    # Off the queue for a plain POST to /gradio_api/run/status; gradio_client joins the queue
    # even so, where no concurrency limit makes it wait for other status calls. Either way it
    # never waits behind inference (nor for a load).
    gr.api(slot_status, api_name="status", queue=False, concurrency_limit=None)
    gr.api(reload_models, api_name="reload")


def all_settled(registry: Registry) -> bool:
    return all(settled(slot) for slot in registry.slots.values())


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
