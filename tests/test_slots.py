"""Model slots: resolution order, hub fallback through the cache, fast offline failure, and one
load under concurrent requests."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from scripts.tiny_models import build_asr
from slots import loading, table
from slots import slot as slot_module
from slots.errors import SlotUnavailable
from slots.registry import Registry
from ui.asr import transcribe
from ui.common import SETTLED_EVERY_S, settled, status_card, status_watch


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
    monkeypatch.setitem(table.SLOTS, "asr", replace(table.SLOTS["asr"], hub_id="someone/tiny-asr", revision="0" * 40))
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
        assert sources == [f"checkpoint {tmp_path / name}", f"hub default {table.SLOTS[name].hub_default}"]
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
    report = registry.reload()["asr"]
    assert report["state"] == "loaded" and report["reload"] == "loading"


def _alone(root, checkpoint):
    """`checkpoint` loaded by a registry of its own."""
    shutil.copytree(checkpoint, root / "asr")
    return Registry(root)["asr"].get()


def _retrain(folder, source, wer: float) -> None:
    """What train/ does to a checkpoint: a new folder swapped in whole (core/checkpoint.py), here
    with other weights (its CTC head moved) and a `wer` in its metrics."""
    staging = shutil.copytree(source, folder.with_name(folder.name + ".new"))
    weights = load_file(staging / "model.safetensors")
    torch.manual_seed(1)
    moved = {name: t + torch.randn_like(t) if name.startswith("lm_head") else t for name, t in weights.items()}
    save_file(moved, staging / "model.safetensors", metadata={"format": "pt"})
    metrics = json.loads((staging / "metrics.json").read_text())
    metrics["final"]["test"]["wer"] = wer
    (staging / "metrics.json").write_text(json.dumps(metrics))
    shutil.rmtree(folder)
    staging.rename(folder)


def test_reload_keeps_an_unchanged_model_and_swaps_in_a_retrained_one_while_the_old_serves(
    tmp_path, monkeypatch, two_asr
):
    # Reload is a button any visitor of a public Space can press: it must never take a model away.
    shutil.copytree(two_asr[0], tmp_path / "asr")
    registry = Registry(tmp_path)
    slot = registry["asr"]
    first = slot.get()
    assert registry.reload()["asr"]["reload"] == "unchanged" and slot.peek() is first
    _retrain(tmp_path / "asr", two_asr[1], wer=0.25)
    gate = threading.Event()
    calls = []
    real = loading.from_pretrained

    def held(kind, path):
        calls.append(path)
        assert gate.wait(60)
        return real(kind, path)

    monkeypatch.setattr(loading, "from_pretrained", held)
    assert slot.refresh() == "loading the new model; the current one serves meanwhile"
    assert slot.refresh() == "a load is under way"  # pressing again starts nothing
    deadline = time.monotonic() + 60
    while not calls and time.monotonic() < deadline:  # the new model's files are being read
        time.sleep(0.01)
    assert slot.get(wait_s=0) is first and slot.status()["state"] == "loaded"
    assert slot.status()["reloading"] == "loading" and not settled(slot)
    assert "A newer model is loading (loading); this one serves until it is ready." in status_card(slot)
    gate.set()
    deadline = time.monotonic() + 60
    while slot.swapping is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    new = slot.get(wait_s=0)
    assert new is not first and new.metrics["final"]["test"]["wer"] == 0.25 and len(calls) == 1
    # The retrained weights serve (the int8 export cache is keyed by the weights file, not the folder).
    noise = np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1
    alone = _alone(tmp_path / "alone", tmp_path / "asr")
    assert transcribe(new, noise)[0] == transcribe(alone, noise)[0] != transcribe(first, noise)[0]
    assert slot.settled(wait_s=60) is new  # (its int8 export done: nothing left to watch)
    assert "reloading" not in slot.status() and settled(slot)
    assert registry.reload()["asr"]["reload"] == "unchanged" and slot.peek() is new


def test_a_reload_that_fails_keeps_the_model_serving_and_says_why(tmp_path, two_asr):
    shutil.copytree(two_asr[0], tmp_path / "asr")
    registry = Registry(tmp_path)
    first = registry["asr"].get()
    (tmp_path / "asr" / "model.safetensors").write_bytes(b"not weights")  # a broken save
    report = registry.reload()["asr"]
    assert report["reload"] == "loading the new model; the current one serves meanwhile"
    assert report["state"] == "loaded" and registry["asr"].peek() is first
    (warning,) = report["warnings"]
    assert warning.startswith("a newer model could not be loaded (checkpoint asr: its files could not be loaded; ")
    assert warning.endswith("); the one loaded before still serves")
    assert "⚠️ " + warning in status_card(registry["asr"])
    # Mended: the next Reload loads it, and the warning goes.
    shutil.copy(two_asr[0] / "model.safetensors", tmp_path / "asr" / "model.safetensors")
    report = registry.reload()["asr"]
    assert report["warnings"] == [] and registry["asr"].peek() is not first


def test_hub_models_and_missing_folders_have_no_fingerprint(tmp_path, two_asr):
    assert slot_module.folder_fingerprint(f"someone/tiny-asr@{'0' * 40}") is None
    assert slot_module.folder_fingerprint(str(tmp_path / "missing")) is None
    folder = shutil.copytree(two_asr[0], tmp_path / "asr")
    before = slot_module.folder_fingerprint(str(folder))
    assert before == slot_module.folder_fingerprint(str(folder))
    (folder / "metrics.json").write_text("{}")
    assert slot_module.folder_fingerprint(str(folder)) != before


@pytest.mark.slow
def test_the_four_slots_load_at_once_in_a_fresh_process(tiny_checkpoints):
    """At launch the slots load in parallel threads, each the first in its process to ask
    transformers for its Auto classes; resolved at the same time, those lazy names came back
    missing ("no attribute 'AutoModelForCTC'") and slots went unavailable. The same came back when
    another thread was importing transformers as the loads began (muting its progress bars at
    start did): a thread that waits for that import is handed the half-built module."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = """
import json, sys, threading, time
import app  # what the app has imported when its slots start loading
from slots import loading, table
from pathlib import Path
kinds = {"asr": "ctc", "kws": "audio-classification", "qa-distilbert": "question-answering",
         "qa-xlmr": "question-answering"}
loaded, errors = {}, []
outside = sys.argv[2] == "outside"  # another thread imports transformers as the loads begin
start = threading.Barrier(len(kinds) + outside)  # all four ask at the same moment, as at launch
def load(slot, kind):
    start.wait()
    if outside:
        time.sleep(0.1)  # that import under way (it takes about a second)
    try:
        loaded[slot] = type(loading.from_pretrained(kind, Path(sys.argv[1]) / slot)[0]).__name__
    except Exception as err:
        errors.append(f"{slot}: {err!r}")
def importer():
    start.wait()
    from transformers.utils import logging
threads = [threading.Thread(target=load, args=item) for item in kinds.items()]
threads += [threading.Thread(target=importer)] if outside else []
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"loaded": loaded, "errors": errors}))
"""
    root = Path(__file__).resolve().parents[1]
    # The race is a matter of timing: fresh processes side by side give it several chances.
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tiny_checkpoints), mode], cwd=root, stdout=subprocess.PIPE, text=True
        )
        for mode in ("alone", "outside", "outside")
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


def test_a_status_tick_renders_a_tabs_results_only_for_a_model_the_page_does_not_show(tmp_path, two_asr):
    # Each tab renders its results when the page opens; its status timer's first tick used to
    # render them again (for keyword spotting: plots and eight audio clips), over a visitor's click.
    shutil.copytree(two_asr[0], tmp_path / "asr")
    slot = Registry(tmp_path)["asr"]
    first = slot.settled()  # served in int8 from here on: the page shows this model
    renders = []
    with gr.Blocks() as demo:
        card, results = gr.Markdown(), gr.Markdown()
        watch = status_watch(slot, card, then=lambda: renders.append(slot.peek()) or "results", outputs=[results])
    tick = next(fn.fn for fn in demo.fns.values() if fn.fn.__name__ == "tick")
    shown, key = watch.render()  # the page opens
    assert shown == "results" and renders == [first]
    card_text, timer, *rest = tick(key)  # the first tick: the card, and nothing else
    assert "About this model" in card_text and rest == [gr.skip(), gr.skip()] and renders == [first]
    assert timer.value == SETTLED_EVERY_S and timer.active  # settled: it keeps watching, slowly
    _retrain(tmp_path / "asr", two_asr[1], wer=0.25)
    assert slot.refresh() == "loading the new model; the current one serves meanwhile"  # an operator's Reload
    card_text, timer, *rest = tick(key)
    assert "A newer model is loading" in card_text and timer.value == 2.0 and rest == [gr.skip(), gr.skip()]
    slot.wait_for_swap(time.monotonic() + 60)
    slot.settled(wait_s=60)  # the new model's int8 export done too
    _, timer, shown, new_key = tick(key)  # settled on another model: rendered again
    assert shown == "results" and renders[-1] is slot.peek() is not first and new_key != key
    assert timer.value == SETTLED_EVERY_S and tick(new_key)[2:] == [gr.skip(), gr.skip()] and len(renders) == 2
    slot.reset()  # no model: the "no evaluation" line changes too
    assert tick(new_key)[3] != new_key and len(renders) == 3


def test_a_visitors_reload_keeps_the_hub_back_off_unless_a_source_changed(tmp_path, monkeypatch, two_asr):
    from slots import hub

    real_load = slot_module.load_source
    tried: list[str] = []

    def hub_times_out(spec, label, source, phase, attempts):
        tried.append(label)
        if label == "checkpoint" and (tmp_path / "asr").is_dir():
            return real_load(spec, label, source, phase, attempts)
        raise hub.HubTimeout("the hub did not answer")

    monkeypatch.setattr(slot_module, "load_source", hub_times_out)
    slot = Registry(tmp_path)["asr"]
    slot.start()
    deadline = time.monotonic() + 10
    while slot.state != "retrying" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slot.state == "retrying"
    before = len(tried)
    for _ in range(5):  # visitors pressing Reload
        assert slot.refresh().endswith("nothing changed since the hub last failed")
    time.sleep(0.3)
    assert len(tried) == before and slot.state == "retrying" and slot.status()["retry_in_s"] > 20
    shutil.copytree(two_asr[1], tmp_path / "asr")  # a checkpoint trained meanwhile: tried now
    assert slot.refresh() == "loading"
    assert slot.get().source == str(tmp_path / "asr")


def test_the_wait_before_retrying_the_hub_doubles_to_three_minutes():
    from slots.slot import retry_delay

    assert [retry_delay(n, first=30.0) for n in range(6)] == [30.0, 60.0, 120.0, 180.0, 180.0, 180.0]
