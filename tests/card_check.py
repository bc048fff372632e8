"""What every training run's model card must hold: hub metadata that huggingface_hub parses, a
model-index equal to metrics.json, the recipe and the hardware."""

from __future__ import annotations

from pathlib import Path

from core.checkpoint import read_metrics


def assert_card_matches_metrics(folder: Path, base_model: str, pipeline_tag: str, command: str) -> None:
    from huggingface_hub import ModelCard

    metrics = read_metrics(folder)
    card = ModelCard.load(Path(folder) / "README.md")
    data = card.data
    assert data.base_model == base_model and data.pipeline_tag == pipeline_tag
    assert data.library_name == "transformers" and data.license in ("apache-2.0", "mit") and data.datasets
    from_card = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    from_metrics = {
        (split, key): value
        for split, scores in metrics["final"].items()
        for key, value in scores.items()
        if isinstance(value, (int, float)) and key not in ("total", "HasAns_total", "NoAns_total")
    }
    assert from_card == from_metrics and from_card
    assert command in card.text and metrics["hardware"]["torch"] in card.text
