"""Several models per task: candidates found under checkpoints/ and in $<TASK>_CANDIDATES, loaded
on first use, named in /status, and at most MAX_LOADED_MODELS of them loaded at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.errors import InputError
from slots import candidates
from slots.registry import Registry


def candidate(root: Path, source: Path, name: str, **hyperparameters) -> Path:
    """A copy of a tiny checkpoint as another training run, with its own recipe in metrics.json."""
    target = root / name
    shutil.copytree(source, target)
    metrics = json.loads((target / "metrics.json").read_text())
    metrics["hyperparameters"].update(hyperparameters)
    (target / "metrics.json").write_text(json.dumps(metrics))
    return target


@pytest.fixture
def root(tmp_path, tiny_checkpoints, monkeypatch):
    monkeypatch.setenv("SERVE_PRECISION", "fp32")  # the bound is about models, not exports
    for name in ("asr", "kws", "qa-distilbert", "qa-xlmr"):
        shutil.copytree(tiny_checkpoints / name, tmp_path / name)
    candidate(tmp_path, tiny_checkpoints / "asr", "asr-superb", model_name_or_path="ntu-spml/distilhubert",
              head="superb", freeze="encoder", num_train_epochs=5, seed=42)  # fmt: skip
    candidate(tmp_path, tiny_checkpoints / "kws", "kws-seed2", seed=2)
    (tmp_path / ".asr-next.staging-1-ab@host").mkdir()  # a run still writing: not offered
    (tmp_path / "asr-notes.txt").write_text("not a folder")
    return tmp_path


def test_candidates_are_the_defaults_then_runs_under_checkpoints_then_the_variable(root, monkeypatch, tmp_path):
    extra = candidate(tmp_path, root / "qa-distilbert", "elsewhere", seed=7)
    monkeypatch.setenv("QA_CANDIDATES", f"mine={extra}, deepset/roberta-base-squad2@abc123, broken name=x")
    registry = Registry(root)
    assert [s.spec.name for s in registry.candidates("asr")] == ["asr", "asr-superb"]
    assert [s.spec.name for s in registry.candidates("kws")] == ["kws", "kws-seed2"]
    assert [s.spec.name for s in registry.candidates("qa")] == [
        "qa-distilbert",
        "qa-xlmr",
        "mine",
        "roberta-base-squad2",
    ]
    superb = registry["asr-superb"].spec
    assert superb.title == "asr-superb: distilhubert, superb head, encoder frozen, 5 epochs, seed 42 · test WER 100.0%"
    assert registry["mine"].spec.title == "mine: question answering model, seed 7 · validation F1 0.0%"
    assert (
        registry["roberta-base-squad2"].spec.title == "roberta-base-squad2: deepset/roberta-base-squad2 from the hub"
    )
    assert registry["roberta-base-squad2"].candidates() == [("$QA_CANDIDATES", "deepset/roberta-base-squad2@abc123")]
    assert registry["asr-superb"].candidates() == [("checkpoint", str(root / "asr-superb"))]
    assert registry.summary()["candidates"] == {
        "asr": ["asr", "asr-superb"],
        "kws": ["kws", "kws-seed2"],
        "qa": ["qa-distilbert", "qa-xlmr", "mine", "roberta-base-squad2"],
    }


def test_a_run_that_finishes_while_serving_is_offered_and_one_removed_goes(root, tiny_checkpoints):
    registry = Registry(root)
    candidate(root, tiny_checkpoints / "asr", "asr-seed3", seed=3)
    assert [s.spec.name for s in registry.candidates("asr")] == ["asr", "asr-superb", "asr-seed3"]
    shutil.rmtree(root / "asr-seed3")
    assert [s.spec.name for s in registry.candidates("asr")] == ["asr", "asr-superb"]


def test_candidates_load_on_first_use_not_at_launch(root):
    registry = Registry(root)
    registry.preload()
    for name in ("asr", "kws", "qa-distilbert", "qa-xlmr"):
        registry[name].get()
    report = registry.status(load=True, wait=True)
    assert report["asr-superb"]["state"] == "not loaded" and report["kws-seed2"]["state"] == "not loaded"
    assert report["asr-superb"]["task"] == "asr" and report["asr-superb"]["default"] is False
    loaded = registry["asr-superb"].get()
    assert loaded.label == "checkpoint asr-superb" and registry["asr-superb"].state == "loaded"


def test_the_least_recently_used_model_unloads_beyond_the_limit(root):
    registry = Registry(root, max_loaded=2)
    registry["asr"].get()
    registry["kws"].get()
    registry["asr"].get()  # asr is used again: kws is now the least recently used
    registry["asr-superb"].get()
    assert registry.loaded() == {"asr", "asr-superb"}
    assert registry["kws"].status()["detail"] == "unloaded to make room for other models; loads again when next used"
    # /status never brings an unloaded model back (a poll would push out the one in use)
    registry.status(load=True, wait=True)
    assert registry.loaded() == {"asr", "asr-superb"}
    assert registry["kws"].get().label == "checkpoint kws"  # a request does
    assert registry.loaded() == {"kws", "asr-superb"} and registry.summary()["unloads"] == 2


def test_no_limit_keeps_every_model(root):
    registry = Registry(root, max_loaded=0)
    for name in ("asr", "asr-superb", "kws", "kws-seed2"):
        registry[name].get()
    assert registry.loaded() == {"asr", "asr-superb", "kws", "kws-seed2"}


@pytest.mark.parametrize(
    ("task", "a", "b", "says"),
    [
        ("asr", "asr", "nope", "There is no speech recognition model called “nope”. The choices: asr, asr-superb."),
        ("asr", "asr", "kws", "“kws” is a keyword spotting model: it cannot be compared on speech recognition."),
        ("asr", "asr", "asr", "Choose two different models: “asr” was chosen twice."),
        ("kws", "", "kws", "Choose two keyword spotting models to compare."),
    ],
)
def test_a_bad_pair_gets_a_sentence(root, task, a, b, says):
    with pytest.raises(InputError) as refused:
        Registry(root).pair(task, a, b)
    assert str(refused.value) == says


def test_entries_of_the_variable():
    assert candidates.parse_entries(" a=facebook/x@1 ,, facebook/wav2vec2-large, b=/data/run ,c=") == [
        ("a", "facebook/x@1"),
        ("wav2vec2-large", "facebook/wav2vec2-large"),
        ("b", "/data/run"),
    ]


def test_on_zerogpu_every_candidate_is_placed_at_start_and_the_list_stays(root, monkeypatch, tiny_checkpoints):
    from core import settings
    from slots.slot import Slot

    monkeypatch.setattr(settings, "ZERO_GPU", True)
    placed = []  # (placing itself is tests/test_zerogpu.py's: in a process of its own, as a Space runs)
    monkeypatch.setattr(Slot, "load_here", lambda slot: placed.append(slot.spec.name))
    registry = Registry(root, max_loaded=2)  # a bound is not applied there: nothing may load later
    registry.load_here()
    assert placed == ["asr", "kws", "qa-distilbert", "qa-xlmr", "asr-superb", "kws-seed2"]
    candidate(root, tiny_checkpoints / "asr", "asr-later", seed=5)
    assert [s.spec.name for s in registry.candidates("asr")] == ["asr", "asr-superb"]
    assert registry.summary()["max_loaded_models"] is None


def test_a_default_slot_serving_a_run_of_ours_is_labelled_as_a_candidate_is(root):
    from ui.compare import label

    registry = Registry(root)
    assert label(registry["asr"]) == "asr (default): facebook/wav2vec2-base-960h"  # not loaded: its hub default
    registry["asr"].get()
    assert label(registry["asr"]) == "asr (default): speech recognition model · test WER 100.0%"
    assert label(registry["asr-superb"]) == registry["asr-superb"].spec.title
