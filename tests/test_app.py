"""The app shell: starts offline with nothing to serve, reports every slot, serves tiny models."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request

import pytest
from gradio_client import Client
from safetensors.torch import load_file

from slots.errors import SlotUnavailable
from slots.registry import Registry
from slots.table import SLOTS
from tests.helpers import ROOT, START_S, TAB_NAMES, free_port, settled_status, wait_for_http
from ui import models
from ui.common import operator_card, status_card


def tab_labels(url: str) -> list[str]:
    """Labels of the app's top-level tabs (tasks have tabs of their own inside)."""
    with urllib.request.urlopen(url + "config", timeout=5) as response:
        config = json.load(response)
    types = {c["id"]: c["type"] for c in config["components"]}
    labels = {c["id"]: c["props"].get("label") for c in config["components"]}

    def first_tabs(node):
        if types.get(node["id"]) == "tabs":
            return node
        return next((found for child in node.get("children", []) if (found := first_tabs(child))), None)

    return [labels[child["id"]] for child in first_tabs(config["layout"])["children"]]


def slot_items(status: dict) -> list[tuple[str, dict]]:
    return [(name, info) for name, info in status.items() if name in SLOTS]


def test_python_app_py_starts_fast_offline_with_every_slot_unavailable(app_process, tmp_path):
    proc, url = app_process("--checkpoints", str(tmp_path / "none"))
    assert wait_for_http(url, timeout_s=START_S) < START_S
    assert tab_labels(url) == TAB_NAMES
    status = settled_status(Client(url, verbose=False))
    assert sorted(status) == sorted([*SLOTS, "app"])
    assert status["app"]["preload"] is True and status["app"]["all_ready_after_s"] is None
    for name, info in slot_items(status):
        assert info["state"] == "unavailable", name
        assert info["reason"] == (
            f"checkpoint {name}: not trained yet; {SLOTS[name].hub_default}: "
            "the model hub is not reachable from this server"
        )
        assert "attempts" not in info and str(tmp_path) not in json.dumps(status)  # no server path


@pytest.mark.slow
def test_the_app_answers_before_torch_is_imported_and_its_models_load_after(tiny_checkpoints):
    # A fresh interpreter, as `python app.py` runs: the page is built and served without torch or
    # transformers (~1.5 s of imports), and the models start loading once it answers. A speech
    # model's load also imports the resampler (~1 s), so a visitor's first chunk does not wait.
    code = f"""
import os, sys, urllib.request
import app
registry = app.open_registry({str(tiny_checkpoints)!r}, preload=False)
demo = app.build_app(registry)
seen = ["torch" in sys.modules or "transformers" in sys.modules or "scipy.signal" in sys.modules]
def started():
    with urllib.request.urlopen(demo.local_url, timeout=10) as response:
        seen.append(response.status)
    seen.append("torch" in sys.modules)
    registry.preload()
app.serve(demo, "127.0.0.1", {free_port()}, started=started, prevent_thread_lock=True, quiet=True)
model = registry.slots["kws"].settled(wait_s=120)
print(seen, model.precision, "torch" in sys.modules, "scipy.signal" in sys.modules, flush=True)
os._exit(0)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert last == "[False, 200, False] int8 (onnxruntime, cpu) True True"


def test_port_and_host_come_from_the_spaces_environment(app_process, tmp_path):
    port = free_port()
    proc, url = app_process(
        "--checkpoints", str(tmp_path), env={"GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    )
    assert url == f"http://127.0.0.1:{port}/"
    wait_for_http(url, timeout_s=START_S)
    assert tab_labels(url) == TAB_NAMES


def test_status_reports_all_four_tiny_models_with_true_counts(launch, tiny_checkpoints):
    url = launch(tiny_checkpoints)
    status = settled_status(Client(url, verbose=False))
    assert 0 < status["app"]["all_ready_after_s"] == max(info["ready_after_s"] for _, info in slot_items(status))
    for name, info in slot_items(status):
        assert info["state"] == "loaded"
        assert info["source"] == f"checkpoint {name}" and "path" not in info
        assert info["device"] == "cpu" and info["load_time_s"] >= 0
        weights = tiny_checkpoints / name / "model.safetensors"
        assert info["parameters"] == sum(t.numel() for t in load_file(weights).values())
        assert info["size_bytes"] == sum(p.stat().st_size for p in (tiny_checkpoints / name).iterdir())


def test_structure_table_is_read_from_the_configs(tiny_checkpoints):
    registry = Registry(tiny_checkpoints)
    registry.status()
    table = models.structure_table(registry).set_index("")
    assert table.loc["model type"].tolist() == ["hubert", "hubert", "distilbert", "xlm-roberta"]
    assert table.loc["hidden size"].tolist() == ["32"] * 4
    assert table.loc["feed-forward size"].tolist() == ["37"] * 4
    assert table.loc["layers"].tolist() == ["2"] * 4
    assert table.loc["activation"].tolist() == ["gelu"] * 4
    assert list(table.columns) == [registry[name].spec.title for name in registry.slots]  # no slot ids
    assert table.loc["vocabulary", "Keyword spotting"] == "12 labels"
    tokenizer = registry["qa-distilbert"].get().processor
    assert table.loc["vocabulary", "Question answering (DistilBERT)"] == str(len(tokenizer))
    assert table.loc["parameters", "Speech recognition"] == f"{registry['asr'].get().parameters:,}"


def test_missing_slot_card_says_why_in_one_line_and_the_operator_card_how_to_fix_it(tmp_path):
    slot = Registry(tmp_path)["qa-xlmr"]
    with pytest.raises(SlotUnavailable):
        slot.get()
    card = status_card(slot)
    # Plain reasons, no ids or revisions: the operator's card keeps which source said what.
    assert card == (
        "**Question answering (XLM-RoBERTa): this model is not available on this server** "
        "(not trained yet; the model hub is not reachable from this server)."
    )
    detail = operator_card(slot)
    # The folders named, not spelled out: a public Space shows this section to every visitor.
    assert "tried `checkpoint <checkpoints>/qa-xlmr`: no folder at <checkpoints>/qa-xlmr" in detail
    assert str(tmp_path) not in detail and "a trained checkpoint goes to `<checkpoints>/qa-xlmr`" in detail
    assert "outgoing traffic has been disabled" in detail  # the hub library's own words, in full
    assert "python -m train.qa train/configs/qa_xlmr.json" in detail and "QA_XLMR_MODEL" in detail


def test_reload_endpoint_finds_a_checkpoint_trained_after_start(launch, tmp_path, tiny_checkpoints):
    url = launch(tmp_path)
    client = Client(url, verbose=False)
    assert settled_status(client)["kws"]["state"] == "unavailable"
    shutil.copytree(tiny_checkpoints / "kws", tmp_path / "kws")
    status = client.predict(api_name="/reload")
    assert status["kws"]["state"] == "loaded" and status["asr"]["state"] == "unavailable"
    assert status["kws"]["source"] == "checkpoint kws" and status["kws"]["reload"] == "loading"
    again = client.predict(api_name="/reload")  # nothing changed: the model stays, nothing loads
    assert again["kws"]["reload"] == "unchanged" and again["kws"]["load_time_s"] == status["kws"]["load_time_s"]


def test_tasks_without_a_model_say_so_in_plain_words_without_server_paths(launch, tmp_path):
    from gradio_client import handle_file

    client = Client(launch(tmp_path), verbose=False)
    clip = sorted((ROOT / "assets" / "asr").glob("*.wav"))[0]
    with pytest.raises(
        Exception, match=r"speech recognition model is not available on this server \(not trained yet"
    ) as err:
        client.predict(handle_file(str(clip)), api_name="/transcribe")
    assert str(tmp_path) not in str(err.value)
    result = client.predict("Paris is in France.", "Where is Paris?", api_name="/answer")
    assert set(result) == {"qa-distilbert", "qa-xlmr"}
    assert result["qa-xlmr"]["error"].startswith(
        "No model for 'qa-xlmr' is available (checkpoint qa-xlmr: not trained yet;"
    )
    assert str(tmp_path) not in json.dumps(result)
    assert settled_status(client)["kws"]["state"] == "unavailable"  # still serving


def test_status_and_the_cards_never_wait_for_a_load(launch, tiny_checkpoints, monkeypatch):
    import threading
    import time

    from slots import loading

    real = loading.from_pretrained
    gate = threading.Event()

    def slow(kind, path):
        gate.wait(60)  # a big model read from disk, or an int8 export, until the test lets go
        return real(kind, path)

    monkeypatch.setattr(loading, "from_pretrained", slow)
    client = Client(launch(tiny_checkpoints), verbose=False)
    start = time.monotonic()
    status = client.predict(api_name="/status")
    assert time.monotonic() - start < 2.0
    assert {status[name]["state"] for name in SLOTS} == {"loading"}
    gate.set()
    assert all(info["state"] == "loaded" for _, info in slot_items(settled_status(client)))


def test_file_endpoints_take_uploads_only_never_a_server_path(launch, tmp_path):
    import httpx

    url = launch(tmp_path)
    client = Client(url, verbose=False)
    for endpoint in ("transcribe", "transcribe_words", "spot", "batch_evaluate"):
        # A bare path skips Gradio's upload check, so the endpoint itself refuses it ...
        with pytest.raises(Exception, match="Send the file as an upload"):
            client.predict("/etc/passwd", api_name=f"/{endpoint}")
        # ... and a FileData naming a server file (sent raw: gradio_client would upload its own
        # copy) is refused by Gradio before the endpoint runs.
        event = httpx.post(
            f"{url}gradio_api/call/{endpoint}",
            json={"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]},
        )
        stream = httpx.get(f"{url}gradio_api/call/{endpoint}/{event.json()['event_id']}", timeout=30).text
        assert stream.startswith("event: error") and "root:" not in stream
    assert settled_status(client)["app"]["preload"] is True  # still serving


@pytest.mark.slow
def test_status_answers_while_a_request_is_computing(launch, tiny_checkpoints, monkeypatch):
    import threading
    import time

    from qa import extractive

    real, busy = extractive.answer, threading.Event()

    def slow_answer(*args, **kwargs):
        busy.set()
        time.sleep(4)  # a long context on a busy CPU
        return real(*args, **kwargs)

    monkeypatch.setattr(extractive, "answer", slow_answer)
    url = launch(tiny_checkpoints)
    settled_status(Client(url, verbose=False))
    worker = threading.Thread(
        target=lambda: Client(url, verbose=False).predict("Paris is in France.", "Where?", api_name="/answer")
    )
    worker.start()
    assert busy.wait(30)
    start = time.monotonic()
    status = Client(url, verbose=False).predict(api_name="/status")
    assert time.monotonic() - start < 2.0 and status["qa-xlmr"]["state"] == "loaded"
    worker.join(30)


def test_status_calls_never_wait_for_each_other(launch, tiny_checkpoints, monkeypatch):
    # Gradio runs one call of an event at a time unless told otherwise; /status has no limit, so
    # five visitors whose status reads are slow (a busy CPU) are answered side by side.
    import threading
    import time

    real = models.status

    def slow_status(registry):
        time.sleep(1.5)
        return real(registry)

    monkeypatch.setattr(models, "status", slow_status)
    url = launch(tiny_checkpoints)
    clients = [Client(url, verbose=False) for _ in range(5)]
    answers = []
    threads = [threading.Thread(target=lambda c=c: answers.append(c.predict(api_name="/status"))) for c in clients]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 5 and time.monotonic() - start < 5.0  # one after the other: >= 7.5 s


def test_a_stopped_app_leaves_no_scratch_folder_behind(app_process, tmp_path):
    # SIGTERM is how a container or a Space stops the app; each start used to leave its folder.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc, url = app_process("--checkpoints", str(tmp_path / "none"), env={"TMPDIR": str(scratch)})
    wait_for_http(url, START_S)
    assert len(list(scratch.glob("app-outputs-*"))) == 1 and len(list(scratch.glob("app-clips-*"))) == 1
    settled_status(Client(url, verbose=False))  # started: a stop while starting takes another way out
    page_left_open = urllib.request.urlopen(f"{url}gradio_api/heartbeat/a-page", timeout=30)  # a stream
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    page_left_open.close()
    log = proc.stdout.read()
    assert not list(scratch.glob("app-*")), log
    # The stream cut at the stop is one line in the operator's log, not a traceback.
    assert re.search(
        r"WARNING: +Stopping: [12] connection\(s\) still open \(a page's stream, a request\) cut after 1 s", log
    ), log
    assert "Traceback" not in log and "CancelledError" not in log, log


def test_uploads_over_the_size_limit_are_refused_and_never_stored(app_process, tmp_path):
    from gradio_client import handle_file

    cache = tmp_path / "gradio-cache"
    _, url = app_process(
        "--checkpoints", str(tmp_path / "none"), env={"UPLOAD_MAX_MB": "1", "GRADIO_TEMP_DIR": str(cache)}
    )
    wait_for_http(url, START_S)
    client = Client(url, verbose=False)
    big = tmp_path / "big.wav"
    big.write_bytes(b"RIFF" + bytes(3 * 1024 * 1024))
    with pytest.raises(Exception, match="(?i)file.*(too large|size)"):
        client.predict(handle_file(str(big)), api_name="/transcribe")
    stored = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert not [p for p in stored if p.stat().st_size > 1024 * 1024], stored
    small = tmp_path / "small.wav"
    small.write_bytes(b"RIFF" + bytes(1000))  # under the limit: it reaches the endpoint (which has no model)
    with pytest.raises(Exception, match="speech recognition model is not available on this server"):
        client.predict(handle_file(str(small)), api_name="/transcribe")


def test_the_operator_section_names_server_folders_instead_of_spelling_them_out(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from ui.common import without_server_paths

    monkeypatch.chdir(tmp_path)
    text = f"no folder at {tmp_path}/checkpoints/asr; cached {constants.HF_HUB_CACHE}/models--a--b/snapshots/c"
    assert without_server_paths(text) == (
        "no folder at ./checkpoints/asr; cached <hub cache>/models--a--b/snapshots/c"
    )
    elsewhere = tmp_path / "data" / "ckpt"
    assert without_server_paths(f"at {elsewhere}/kws", elsewhere) == "at <checkpoints>/kws"
