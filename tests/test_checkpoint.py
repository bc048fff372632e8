"""The checkpoint contract: what a checkpoint holds, and publishing it atomically."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import asdict

import pytest

from core.checkpoint import METRICS_FILE, Metrics, publish, read_metrics, validate, write_metrics
from scripts.tiny_models import build_kws
from tests.helpers import ROOT


def test_saved_checkpoint_fulfils_the_contract(tmp_path):
    folder = build_kws(tmp_path / "kws")
    validate(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"]["10"] == "_silence_" and config["label2id"]["go"] == 9
    metrics = read_metrics(folder)
    assert metrics["task"] == "kws"
    assert metrics["dataset_sizes"] == {"train": 12, "validation": 12, "test": 12}
    assert metrics["hardware"]["device"] == "cpu" and metrics["hardware"]["torch"]
    assert not list(folder.glob("*.bin"))
    # Nothing but the checkpoint is left beside it.
    assert [p.name for p in tmp_path.iterdir()] == ["kws"]


def _write_version(folder, version: str) -> None:
    (folder / "config.json").write_text(json.dumps({"version": version}))
    (folder / "model.safetensors").write_text(version)
    write_metrics(folder, Metrics(task="asr", hyperparameters={"version": version}))


def test_publish_replaces_the_old_checkpoint_in_one_step(tmp_path):
    target = tmp_path / "asr"
    for version in ("v1", "v2"):
        with publish(target) as staging:
            _write_version(staging, version)
    assert read_metrics(target)["hyperparameters"] == {"version": "v2"}
    assert [p.name for p in tmp_path.iterdir()] == ["asr"]


def test_a_failing_run_leaves_the_previous_checkpoint(tmp_path):
    target = tmp_path / "asr"
    with publish(target) as staging:
        _write_version(staging, "v1")
    with pytest.raises(RuntimeError, match="out of memory"), publish(target) as staging:
        (staging / "config.json").write_text("{}")
        raise RuntimeError("out of memory")
    assert read_metrics(target)["hyperparameters"] == {"version": "v1"}
    assert [p.name for p in tmp_path.iterdir()] == ["asr"]


def test_a_killed_process_leaves_the_previous_checkpoint(tmp_path):
    target = tmp_path / "asr"
    with publish(target) as staging:
        _write_version(staging, "v1")
    # A real crash: the process dies mid-write, no exception handler runs.
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from core.checkpoint import publish
        with publish(Path({str(target)!r})) as staging:
            (staging / "config.json").write_text("{{}}")
            (staging / "model.safetensors").write_bytes(b"half")
            os._exit(9)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT)
    assert result.returncode == 9
    assert read_metrics(target)["hyperparameters"] == {"version": "v1"}
    assert json.loads((target / "config.json").read_text()) == {"version": "v1"}
    # The dead run's staging folder is cleared by the next publish.
    assert len(list(tmp_path.glob(".asr.staging-*"))) == 1
    with publish(target) as staging:
        _write_version(staging, "v3")
    assert [p.name for p in tmp_path.iterdir()] == ["asr"]


def test_another_machines_staging_folder_on_a_shared_disk_is_left_alone(tmp_path):
    target = tmp_path / "asr"
    dead = 2**22 + 1  # above the default pid_max: no process here has it
    theirs = tmp_path / f".asr.staging-{dead}-0123abcd@another-node"
    ours_dead = tmp_path / f".asr.staging-{dead}-89abcdef"  # a dead run's, named before hosts were
    theirs.mkdir(), ours_dead.mkdir()
    with publish(target) as staging:
        _write_version(staging, "v1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [theirs.name, "asr"]


def test_a_folder_named_by_its_contents_published_meanwhile_elsewhere_is_kept(tmp_path):
    target = tmp_path / "store"
    with publish(target, check=lambda folder: None, replace=False) as staging:
        (staging / "mine").write_text("late")
        target.mkdir()  # another node's build of the same contents wins the race
        (target / "theirs").write_text("first")
    assert [p.name for p in tmp_path.iterdir()] == ["store"] and [p.name for p in target.iterdir()] == ["theirs"]
    with publish(tmp_path / "fresh", check=lambda folder: None, replace=False) as staging:
        (staging / "mine").write_text("only")
    assert (tmp_path / "fresh" / "mine").read_text() == "only"


def test_an_incomplete_checkpoint_is_never_published(tmp_path):
    target = tmp_path / "qa"
    with pytest.raises(ValueError, match=f"lacks model.safetensors, {METRICS_FILE}"), publish(target) as staging:
        (staging / "config.json").write_text("{}")
    assert not target.exists()


def test_pickled_weights_are_refused(tmp_path):
    target = tmp_path / "qa"
    with pytest.raises(ValueError, match="pickled weights"), publish(target) as staging:
        _write_version(staging, "v1")
        (staging / "pytorch_model.bin").write_bytes(b"pickle")
    assert not target.exists()


def test_model_card_names_a_hub_base_model_and_parses_with_huggingface_hub(tmp_path):
    from huggingface_hub import ModelCard

    from core.model_card import render

    metrics = Metrics(
        task="kws",
        final={"test": {"accuracy": 0.9625, "confusion_matrix": [[1]]}},
        dataset_sizes={"test": 3081},
        hyperparameters={"model_name_or_path": "ntu-spml/distilhubert", "dataset_name": "google/speech_commands"},
        hardware={"gpu": "NVIDIA H100", "torch": "2.13.0", "python": "3.11.7"},
    )
    (tmp_path / "README.md").write_text(
        render(asdict(metrics), "kws", "hubert", command="python -m train.kws train/configs/kws_hw4.json")
    )
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "ntu-spml/distilhubert" and card.data.datasets == ["google/speech_commands"]
    assert [(r.dataset_split, r.metric_type, r.metric_value) for r in card.data.eval_results] == [
        ("test", "accuracy", 0.9625)
    ]
    assert "python -m train.kws train/configs/kws_hw4.json" in card.text and "NVIDIA H100" in card.text
