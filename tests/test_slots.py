"""Model slots: resolution order, hub fallback through the cache, fast offline failure, and one
load under concurrent requests."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import replace

import pytest
from safetensors.torch import load_file

import core.slots as slots
from core import loading
from core.slot_errors import SlotUnavailable
from core.slots import Registry
from tests.tiny_models import build_asr


@pytest.fixture(scope="module")
def two_asr(tmp_path_factory):
    """Two distinguishable tiny ASR checkpoints."""
    root = tmp_path_factory.mktemp("asr")
    return build_asr(root / "a"), build_asr(root / "b")


def test_env_var_beats_checkpoint(tmp_path, monkeypatch, two_asr):
    env_model, trained = two_asr
    shutil.copytree(trained, tmp_path / "asr")
    monkeypatch.setenv("ASR_MODEL", str(env_model))
    assert Registry(tmp_path)["asr"].get().source == str(env_model)
    monkeypatch.delenv("ASR_MODEL")
    assert Registry(tmp_path)["asr"].get().source == str(tmp_path / "asr")


def test_broken_env_var_falls_through_and_is_reported(tmp_path, monkeypatch, two_asr):
    shutil.copytree(two_asr[1], tmp_path / "asr")
    monkeypatch.setenv("ASR_MODEL", str(tmp_path / "typo"))
    registry = Registry(tmp_path)
    status = registry.status()["asr"]
    assert status["state"] == "loaded" and status["source"] == "checkpoint asr"
    assert status["skipped"] == [{"source": "$ASR_MODEL (a local folder)", "reason": "no such folder"}]
    detail = registry["asr"].status(detail=True)
    assert detail["path"] == str(tmp_path / "asr")
    assert detail["attempts"] == [
        {"source": f"$ASR_MODEL {tmp_path / 'typo'}", "error": f"no folder at {tmp_path / 'typo'}"}
    ]


def _fake_hub_cache(cache, repo_id: str, source) -> None:
    """The layout huggingface_hub leaves after a download: refs/main -> snapshots/<commit>/."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(source, repo / "snapshots" / commit)


def test_hub_id_loads_from_the_cache_when_offline(tmp_path, monkeypatch, two_asr):
    from huggingface_hub import constants

    _fake_hub_cache(tmp_path / "hub", "someone/tiny-asr", two_asr[0])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    # Also the last resort: the slot's default hub id, when no env var and no checkpoint.
    monkeypatch.setitem(slots.SLOTS, "asr", replace(slots.SLOTS["asr"], hub_id="someone/tiny-asr", revision="0" * 40))
    for env in ("someone/tiny-asr", None):
        if env:
            monkeypatch.setenv("ASR_MODEL", env)
        else:
            monkeypatch.delenv("ASR_MODEL")
        loaded = Registry(tmp_path / "empty")["asr"].get()
        assert loaded.source == ("someone/tiny-asr" if env else f"someone/tiny-asr@{'0' * 40}")
        weights = load_file(two_asr[0] / "model.safetensors")
        assert loaded.parameters == sum(t.numel() for t in weights.values()) > 0
        assert loaded.metrics["task"] == "asr"


def test_missing_slot_is_unavailable_fast_and_says_what_was_tried(tmp_path):
    start = time.monotonic()
    status = Registry(tmp_path).status(detail=True)
    assert time.monotonic() - start < 5
    for name, info in status.items():
        assert info["state"] == "unavailable"
        sources = [a["source"] for a in info["attempts"]]
        assert sources == [f"checkpoint {tmp_path / name}", f"hub default {slots.SLOTS[name].hub_default}"]
        assert "outgoing traffic has been disabled" in info["attempts"][1]["error"]
        assert info["train_command"].startswith("python -m train.")
    with pytest.raises(SlotUnavailable, match=r"No model for 'kws' is available \(checkpoint kws: not trained yet;"):
        Registry(tmp_path)["kws"].get()


def test_pickled_weights_are_not_loaded(tmp_path, two_asr):
    folder = shutil.copytree(two_asr[0], tmp_path / "asr")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    info = Registry(tmp_path).status(detail=True)["asr"]
    assert info["state"] == "unavailable"
    assert info["attempts"][0]["error"] == f"no safetensors weights in {folder} (pickled weights are not loaded)"
    assert info["tried"][0] == {
        "source": "checkpoint asr",
        "reason": "no safetensors weights (pickled weights are never loaded)",
    }


def test_concurrent_first_requests_load_once(tmp_path, monkeypatch, two_asr):
    shutil.copytree(two_asr[0], tmp_path / "asr")
    calls = []
    real = loading.from_pretrained

    def counting(kind, path):
        calls.append(path)
        time.sleep(0.3)  # a slow load, so the other requests arrive while it runs
        return real(kind, path)

    monkeypatch.setattr(loading, "from_pretrained", counting)
    slot = Registry(tmp_path)["asr"]
    results = []
    threads = [threading.Thread(target=lambda: results.append(slot.get())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_reload_picks_up_a_new_checkpoint(tmp_path, two_asr):
    registry = Registry(tmp_path)
    assert registry.status()["asr"]["state"] == "unavailable"
    shutil.copytree(two_asr[0], tmp_path / "asr")
    assert registry.status()["asr"]["state"] == "unavailable"  # cached until reload
    assert registry.reload()["asr"]["state"] == "loaded"


def test_the_four_slots_load_at_once_in_a_fresh_process(tiny_checkpoints):
    """At launch the slots load in parallel threads, each the first in its process to ask
    transformers for its Auto classes; resolved at the same time, those lazy names came back
    missing ("no attribute 'AutoModelForCTC'") and slots went unavailable."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = """
import json, sys, threading
import app  # what the app has imported when its slots start loading
from core import loading
from pathlib import Path
kinds = {"asr": "ctc", "kws": "audio-classification", "qa-distilbert": "question-answering",
         "qa-xlmr": "question-answering"}
loaded, errors = {}, []
start = threading.Barrier(len(kinds))  # all four ask at the same moment, as at launch
def load(slot, kind):
    start.wait()
    try:
        loaded[slot] = type(loading.from_pretrained(kind, Path(sys.argv[1]) / slot)[0]).__name__
    except Exception as err:
        errors.append(f"{slot}: {err!r}")
threads = [threading.Thread(target=load, args=item) for item in kinds.items()]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"loaded": loaded, "errors": errors}))
"""
    root = Path(__file__).resolve().parents[1]
    # The race is a matter of timing: three fresh processes side by side give it three chances.
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tiny_checkpoints)], cwd=root, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [json.loads(run.communicate(timeout=300)[0].strip().splitlines()[-1]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert results == 3 * [
        {
            "loaded": {
                "asr": "HubertForCTC",
                "kws": "HubertForSequenceClassification",
                "qa-distilbert": "DistilBertForQuestionAnswering",
                "qa-xlmr": "XLMRobertaForQuestionAnswering",
            },
            "errors": [],
        }
    ]
