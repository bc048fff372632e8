"""The model card (`README.md`) every training run writes into its checkpoint: hub metadata whose
`model-index` results are the numbers in `metrics.json`, then the recipe and the hardware.

Built with huggingface_hub's own `ModelCardData`/`EvalResult`, so the hub reads it as it reads
any card, and `ModelCard.load(folder)` parses it back.
"""

from __future__ import annotations

import json
from typing import Any

CARD_FILE = "README.md"

TASKS = {  # our task -> (pipeline tag, task name, dataset name, dataset config)
    "asr": ("automatic-speech-recognition", "Automatic Speech Recognition", "LibriSpeech", "clean"),
    "kws": ("audio-classification", "Keyword Spotting", "Speech Commands (SUPERB KS)", "v0.01"),
    "qa": ("question-answering", "Question Answering", "SQuAD v2", "squad_v2"),
}
LICENSES = {"xlm-roberta": "mit"}  # the base model's license carries over; the rest are Apache-2.0
NON_METRICS = ("total", "HasAns_total", "NoAns_total")  # counts, not scores


def scores(metrics: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(split, metric, value) for every numeric score in `metrics["final"]`, in file order."""
    return [
        (split, key, float(value))
        for split, values in metrics.get("final", {}).items()
        for key, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in NON_METRICS
    ]


def render(metrics: dict[str, Any], model_name: str, model_type: str, command: str | None = None) -> str:
    """The card's text: YAML front matter, then a human-readable body."""
    from huggingface_hub import EvalResult, ModelCardData

    task = metrics["task"]
    pipeline_tag, task_name, dataset_name, dataset_config = TASKS[task]
    params = metrics.get("hyperparameters", {})
    found = scores(metrics)
    dataset = params.get("dataset_name") or dataset_name
    source = metrics.get("extra", {}).get("dataset") or {}  # a hub dataset, at the commit trained on
    dataset_config = source.get("config") or source.get("folder") or dataset_config
    base_model = params.get("model_name_or_path")
    results = [
        EvalResult(
            task_type=pipeline_tag,
            task_name=task_name,
            dataset_type=dataset,
            dataset_name=dataset_name,
            dataset_config=dataset_config,
            dataset_split=split,
            dataset_revision=source.get("commit"),
            metric_type=key,
            metric_name=f"{split} {key}",
            metric_value=value,
        )
        for split, key, value in found
    ]
    hub_base = base_model if _is_hub_id(base_model) else None
    data = ModelCardData(
        model_name=model_name,
        base_model=hub_base,
        datasets=[dataset],
        license=LICENSES.get(model_type, "apache-2.0"),
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        eval_results=results or None,
        tags=["speech-qa-transformers", task],
    )
    hardware = metrics.get("hardware", {})
    device = hardware.get("gpu") or f"CPU ({hardware.get('cpu_count', '?')} cores)"
    table = "\n".join(f"| {split} | {key} | {value:.4f} |" for split, key, value in found)
    sizes = ", ".join(f"{split} {n:,}" for split, n in metrics.get("dataset_sizes", {}).items())
    data_line = "Data: a local copy (`--data_dir`)."
    if source:
        data_line = (
            f"Data: [`{source['name']}`](https://huggingface.co/datasets/{source['name']}) "
            f"({dataset_config}) at commit `{source['commit']}` (asked for `{source.get('revision')}`)."
        )
    return f"""---
{data.to_yaml()}
---

# {model_name}

{task_name} model fine-tuned from `{base_model}` on {dataset_name} by this project's training script
(`train/{task}.py`), published in its checkpoint contract: `from_pretrained` loads this folder as it is.

## Results

| split | metric | value |
|---|---|---|
{table}

{data_line} Examples: {sizes or "not recorded"}. Every number above is copied from `metrics.json`, which also
holds the training history and task-specific results.
{as_deployed(metrics.get("extra", {}).get("streaming"))}
## Recipe

```bash
{command or "(not recorded)"}
```

Resolved arguments:

```json
{json.dumps(params, indent=2, sort_keys=True)}
```

## Hardware

{device}, torch {hardware.get("torch", "?")}, Python {hardware.get("python", "?")};
{metrics.get("wall_time_s", 0):.0f} s of wall time.

## Use

In the app: set the slot's environment variable to this folder or to its hub id, e.g.
`{_env_var(task, model_type)}=<you>/{model_name} python app.py`.
"""


def as_deployed(streaming: dict[str, Any] | None) -> str:
    """A keyword spotter's streaming evaluation (train/kws_streams.py) in a paragraph, or nothing."""
    if not streaming:
        return ""
    free = streaming["keyword_free"]
    minutes = free["seconds"] / 60
    point = streaming.get("operating_point")
    text = (
        f"\n## As deployed\n\nThe app's live detector over {minutes:.1f} minutes of audio with no keyword in it "
        f"({free['noise_recordings']} background-noise recordings, {free['silence_clips']} `_silence_` clips and "
        f"{free['other_words']} other words with pauses) and over the keyword clips laid in that noise at "
        + ", ".join(f"{s['snr_db']:g}" for s in streaming["keyword_streams"])
        + " dB SNR. "
    )
    if point is None:
        return text + "No threshold tried kept false accepts within the target; metrics.json holds the curve.\n"
    misses = ", ".join(f"{float(snr):g} dB: {miss:.1%}" for snr, miss in point["miss_rate"].items())
    return text + (
        f"Operating point (the lowest threshold with at most {point['target_per_hour']:g} false accepts an hour): "
        f"**{point['threshold']:.2f}**, {point['per_hour']:.2f} false accepts an hour, missed keywords {misses}. "
        f"An hourly figure from {minutes:.1f} minutes of audio is a rough one.\n"
    )


def _is_hub_id(value: Any) -> bool:
    return isinstance(value, str) and not value.startswith((".", "/", "~")) and value.count("/") <= 1


def _env_var(task: str, model_type: str) -> str:
    if task == "qa":
        return "QA_XLMR_MODEL" if model_type == "xlm-roberta" else "QA_DISTILBERT_MODEL"
    return {"asr": "ASR_MODEL", "kws": "KWS_MODEL"}[task]
