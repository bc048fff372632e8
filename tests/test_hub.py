"""The hub path, offline: the unchanged app (`python app.py`) fetches its four defaults from a
stand-in hub on loopback (`HF_ENDPOINT`), laid out as the real repositories are."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from slots.table import SLOTS
from tests.helpers import ROOT, START_S, call, wait_for_http
from tests.hub_repos import NEWER_LETTER, SPOKEN_LETTER, default_repos, moving_asr_repo
from tests.hub_standin import Repo, StandInHub


@pytest.fixture(scope="module")
def repos():
    return default_repos()


def hub_env(hub: StandInHub, home: Path, **extra: str) -> dict[str, str]:
    return {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "0",
        "HUB_TIMEOUT_S": "3",
        "HF_HUB_DISABLE_XET": "1",
        **extra,
    }


def transcribe(url: str, clip: str) -> str:
    from gradio_client import Client, handle_file

    return Client(url, verbose=False).predict(handle_file(clip), api_name="/transcribe")


def weights_fetched(hub: StandInHub) -> list[str]:
    return [path for method, path in hub.requests if method == "GET" and path.endswith("model.safetensors")]


def wait_for_states(url: str, done, timeout_s: float) -> dict:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        status = call(url, "status")
        if done(status):
            return status
        time.sleep(0.5)
    pytest.fail(f"slots did not settle within {timeout_s} s: {status}")


def test_all_four_defaults_load_at_their_pinned_revisions_then_from_the_cache_offline(app_process, tmp_path, repos):
    clip = str(sorted((ROOT / "assets" / "asr").glob("*.wav"))[0])
    with StandInHub(repos) as hub:
        first, url = app_process("--checkpoints", str(tmp_path / "none"), env=hub_env(hub, tmp_path / "hf"))
        wait_for_http(url, START_S)
        status = wait_for_states(url, lambda s: all(s[n]["state"] == "loaded" for n in SLOTS), 120)
        for name, spec in SLOTS.items():
            assert status[name]["source"] == f"{spec.hub_id}@{spec.revision}"
        assert status["app"]["all_ready_after_s"] > 0
        # Upper-case vocabulary, lower-case transcript; the special tokens never show.
        assert transcribe(url, clip) == SPOKEN_LETTER.lower()
        # Both QA tokenizers work from the hub's files, offsets included (the SentencePiece one too).
        answers = call(url, "answer", "Paris is the capital of France.", "What is the capital of France?")
        assert set(answers) == {"qa-distilbert", "qa-xlmr"}
        for result in answers.values():
            assert "error" not in result and (
                result["text"] == "" or result["text"] in "Paris is the capital of France."
            )
        asked = [path for _, path in hub.requests]
        first.terminate()
        log = first.communicate(timeout=30)[0]
    # Four downloads and loads at once leave no progress bars in the operator's log (their lines
    # interleaved into escape codes); /status says how far each is.
    assert "Running on local URL" in log, log
    assert "Fetching" not in log and "Loading weights" not in log and "\x1b[" not in log, log
    assert not [p for p in asked if p.endswith(".bin")]  # pickled weights are never fetched
    for spec in SLOTS.values():  # every listing and download at the pinned commit, never at main
        mine = [p for p in asked if spec.hub_id in p]
        assert mine and all(spec.revision in p for p in mine), mine

    # The hub is gone; a second launch finds everything in the cache the first one filled.
    _, url = app_process(
        "--checkpoints", str(tmp_path / "none"), env={**hub_env(hub, tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    )
    wait_for_http(url, START_S)
    status = wait_for_states(
        url,
        lambda s: (
            all(s[n]["state"] != "not loaded" for n in SLOTS)
            and all(s[n]["state"] in ("loaded", "unavailable") for n in SLOTS)
        ),
        60,
    )
    assert {n: status[n]["state"] for n in SLOTS} == dict.fromkeys(SLOTS, "loaded")


def test_pickle_only_revision_is_refused_with_the_reason_and_nothing_downloaded(app_process, tmp_path, repos):
    kws = SLOTS["kws"]
    with StandInHub(repos) as hub:
        _, url = app_process(
            "--checkpoints",
            str(tmp_path / "none"),
            env=hub_env(hub, tmp_path / "hf", KWS_MODEL=kws.hub_id, PRELOAD_MODELS="0"),
        )
        wait_for_http(url, START_S)
        call(url, "status")  # starts the loads
        status = wait_for_states(url, lambda s: s["kws"]["state"] in ("loaded", "unavailable"), 60)
    assert status["kws"]["source"] == kws.hub_default  # fell through to the pinned default
    assert status["kws"]["skipped"][0] == {
        "source": kws.hub_id,
        "reason": "no safetensors weights (pickled weights are never loaded)",
    }
    assert not [p for _, p in hub.requests if p.endswith(".bin")]


def test_a_pr_ref_resolves_to_its_commit(app_process, tmp_path, repos):
    kws = SLOTS["kws"]
    with StandInHub(repos) as hub:
        _, url = app_process(
            "--checkpoints",
            str(tmp_path / "none"),
            env=hub_env(hub, tmp_path / "hf", KWS_MODEL=f"{kws.hub_id}@refs/pr/1"),
        )
        wait_for_http(url, START_S)
        status = wait_for_states(url, lambda s: s["kws"]["state"] == "loaded", 60)
    assert status["kws"]["source"] == f"{kws.hub_id}@refs/pr/1" and status["kws"]["skipped"] == []
    assert ("GET", f"/{kws.hub_id}/resolve/{kws.revision}/model.safetensors") in hub.requests


def test_a_stalled_hub_hits_the_deadline_the_app_keeps_answering_and_heals_later(app_process, tmp_path, repos):
    with StandInHub(repos) as hub:
        hub.stall()
        _, url = app_process(
            "--checkpoints",
            str(tmp_path / "none"),
            env=hub_env(hub, tmp_path / "hf", HUB_TIMEOUT_S="2", HUB_RETRY_S="4"),
        )
        wait_for_http(url, START_S)
        for _ in range(3):  # while every hub request hangs, status answers at once
            start = time.monotonic()
            call(url, "status")
            assert time.monotonic() - start < 1.0
        status = wait_for_states(url, lambda s: all(s[n]["state"] == "retrying" for n in SLOTS), 30)
        assert status["asr"]["tried"][-1] == {
            "source": SLOTS["asr"].hub_default,
            "reason": "the model hub did not answer",
        }
        with pytest.raises(Exception, match="not ready yet"):
            transcribe(url, str(sorted((ROOT / "assets" / "asr").glob("*.wav"))[0]))
        hub.stalled.clear()  # the hub comes back: the next retry succeeds without anyone's help
        hub.released.set()
        status = wait_for_states(url, lambda s: all(s[n]["state"] == "loaded" for n in SLOTS), 90)
    assert all(status[n]["source"] == SLOTS[n].hub_default for n in SLOTS)


def test_reload_loads_a_hub_branch_that_moved_and_leaves_one_that_did_not(app_process, tmp_path):
    # An operator serving their own model (`$ASR_MODEL=me/asr`, no revision) pushes a newer one
    # and presses Reload: before, a hub model changed only when the app restarted.
    clip = str(sorted((ROOT / "assets" / "asr").glob("*.wav"))[0])
    repo, newer = moving_asr_repo()
    with StandInHub({"me/asr": repo}) as hub:
        env = hub_env(hub, tmp_path / "hf", ASR_MODEL="me/asr")
        _, url = app_process("--checkpoints", str(tmp_path / "none"), env=env)
        wait_for_http(url, START_S)
        wait_for_states(url, lambda s: s["asr"]["state"] == "loaded", 60)
        assert transcribe(url, clip) == SPOKEN_LETTER.lower()

        def reload() -> dict:
            report = call(url, "reload")["asr"]
            assert report["reload"] == "asking the hub whether me/asr has a newer commit"
            return wait_for_states(url, lambda s: "reloading" not in s["asr"], 60)["asr"]

        unchanged = reload()  # main has not moved: one API call, nothing downloaded or loaded again
        assert unchanged["warnings"] == [] and ("GET", "/api/models/me/asr/revision/main") in hub.requests
        assert len(weights_fetched(hub)) == 1
        repo.refs["main"] = newer
        moved = reload()
        assert transcribe(url, clip) == NEWER_LETTER.lower() and moved["source"] == "me/asr"
        assert moved["load_time_s"] != unchanged["load_time_s"] and moved["warnings"] == []
        assert len(weights_fetched(hub)) == 2 and weights_fetched(hub)[-1].endswith(f"/{newer}/model.safetensors")
        del hub.repos["me/asr"]  # the hub cannot answer: the model serves on, and the card says why
        lost = reload()
        assert lost["warnings"] == [
            "the hub could not say whether there is a newer model (not found on the model hub); "
            "the one loaded before serves"
        ]
        assert transcribe(url, clip) == NEWER_LETTER.lower()


BLOCKED_SENTENCEPIECE = """
import json, sys, time
sys.modules["sentencepiece"] = None  # as on a machine without these two packages
sys.modules["google.protobuf"] = None
from slots.registry import Registry
slot = Registry(sys.argv[1])["qa-xlmr"]
slot.start()
while slot.status()["state"] not in ("loaded", "unavailable", "retrying"):
    time.sleep(0.1)
print(json.dumps(slot.status(detail=True)["attempts"]))
"""


def test_a_tokenizer_that_cannot_load_names_its_packages_and_costs_no_weight_download(tmp_path, repos):
    import os
    import subprocess
    import sys

    xlmr = SLOTS["qa-xlmr"]
    with StandInHub(repos) as hub:
        env = {**os.environ, **hub_env(hub, tmp_path / "hf")}
        out = subprocess.run(
            [sys.executable, "-c", BLOCKED_SENTENCEPIECE, str(tmp_path / "none")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    attempts = json.loads(out.stdout.strip().splitlines()[-1])
    assert attempts[-1]["source"] == f"hub default {xlmr.hub_default}"
    assert attempts[-1]["error"] == (
        "this tokenizer is a SentencePiece model (sentencepiece.bpe.model); loading it "
        "needs the Python packages sentencepiece and protobuf "
        "(pip install -r requirements.txt)"
    )
    fetched = [p for method, p in hub.requests if method == "GET" and "/resolve/" in p]
    assert f"/{xlmr.hub_id}/resolve/{xlmr.revision}/sentencepiece.bpe.model" in fetched
    assert not [p for p in fetched if p.endswith(".safetensors")]


PROGRESS = """
import json, sys
from slots import hub
from slots.table import SLOTS
spec = SLOTS["kws"]
source = hub.HubSource(spec.hub_id, spec.revision)
progress = hub.Progress()
files = hub.list_files(source)
folder = hub.download(source, hub.PROCESSOR_PATTERNS + hub.WEIGHT_PATTERNS, progress)
wanted = hub.matching(files, hub.PROCESSOR_PATTERNS + hub.WEIGHT_PATTERNS)
print(json.dumps({"done": progress.done, "total": progress.total, "fraction": progress.fraction,
                  "bytes": sum(wanted.values()), "files": sorted(p.name for p in folder.iterdir())}))
"""


def test_download_progress_counts_the_bytes_the_hub_sends(tmp_path, repos):
    import os
    import subprocess
    import sys

    with StandInHub(repos) as hub:
        env = {**os.environ, **hub_env(hub, tmp_path / "hf")}
        out = subprocess.run(
            [sys.executable, "-c", PROGRESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["done"] == result["total"] == result["bytes"] > 0 and result["fraction"] == 1.0
    assert result["files"] == ["config.json", "model.safetensors", "preprocessor_config.json"]


PUBLISHED = """
import json, time
from pathlib import Path
from core.examples import read_examples
from slots.registry import Registry
slot = Registry(Path("{empty}"))["kws"]
slot.start()
while slot.state not in ("loaded", "unavailable"):  # get() never waits through a download
    time.sleep(0.1)
loaded = slot.get()
found = read_examples(loaded.path)
print(json.dumps({{"source": loaded.source, "rows": [r["id"] for r in found.rows],
                  "audio": [found.audio_path(r) is not None for r in found.rows]}}))
"""


def test_a_checkpoint_published_to_the_hub_brings_its_per_example_results(tmp_path, repos):
    import os
    import subprocess
    import sys

    from core.examples import ExampleSet, write_examples
    from scripts.tiny_models import build_kws
    from tests.hub_repos import _files

    folder = build_kws(tmp_path / "kws")
    rows = [{"id": f"yes/{i}.wav", "true": "yes", "predicted": "no", "top3": [["no", 0.9]]} for i in range(3)]
    write_examples(folder, ExampleSet("kws", "test", rows, [(1, lambda: np.zeros(16_000, np.float32) + 0.1)]))
    files = _files(lambda d: shutil.copytree(folder, d, dirs_exist_ok=True))
    published = {**repos, "you/kws-checkpoint": Repo({"c" * 40: files}, {"main": "c" * 40})}
    with StandInHub(published) as hub:
        env = {**os.environ, **hub_env(hub, tmp_path / "hf", KWS_MODEL="you/kws-checkpoint")}
        script = PUBLISHED.format(empty=tmp_path / "no-checkpoints")
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["source"] == "you/kws-checkpoint"
    assert result["rows"] == ["yes/0.wav", "yes/1.wav", "yes/2.wav"] and result["audio"] == [False, True, False]


PRELOAD_THEN_LOAD = """
import json, sys
from huggingface_hub import hf_hub_download
from slots.registry import Registry
from slots.table import SLOTS
if sys.argv[2] == "build":  # what a Space's build does with README's preload_from_hub entries
    for spec in SLOTS.values():
        for name in spec.files:
            hf_hub_download(spec.hub_id, name, revision=spec.revision)
    sys.exit(0)
import time
registry = Registry(sys.argv[1])
registry.preload()
deadline = time.monotonic() + 120
while time.monotonic() < deadline and any(
    slot.state not in ("loaded", "unavailable", "retrying") for slot in registry.slots.values()
):
    time.sleep(0.2)
print(json.dumps(registry.status(load=False, detail=True)))
"""


def _run(script: str, env: dict[str, str], *args: str) -> str:
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def test_a_space_preloaded_at_build_starts_without_asking_the_hub(tmp_path, repos):
    """README's preload_from_hub puts exactly `SlotSpec.files` in the cache at build: the app then
    reads all four defaults from it and sends the hub no request at all."""
    with StandInHub(repos) as hub:
        env = hub_env(hub, tmp_path / "hf")
        _run(PRELOAD_THEN_LOAD, env, str(tmp_path / "none"), "build")
        fetched = sorted(p.rsplit("/", 1)[-1] for method, p in hub.requests if method == "GET" and "/resolve/" in p)
        assert fetched == sorted(name for spec in SLOTS.values() for name in spec.files)
        built = len(hub.requests)
        status = json.loads(_run(PRELOAD_THEN_LOAD, env, str(tmp_path / "none"), "start"))
        assert hub.requests[built:] == []
    for name, spec in SLOTS.items():
        assert status[name]["state"] == "loaded" and status[name]["source"] == spec.hub_default
        assert status[name]["path"].endswith(f"/snapshots/{spec.revision}")


def test_a_pinned_commit_gone_from_the_hub_serves_the_newest_with_a_warning_or_says_why_not(tmp_path, repos):
    """The XLM-R repository's default branch holds safetensors: it serves, and says it is not the
    pinned version. The keyword repository's default branch is pickle-only: unavailable, and why."""
    gone = {}
    for repo_id, repo in repos.items():
        commits = {
            sha: files for sha, files in repo.commits.items() if sha not in {s.revision for s in SLOTS.values()}
        }
        refs = {ref: sha for ref, sha in repo.refs.items() if sha in commits}
        if commits:
            gone[repo_id] = Repo(commits, refs)
    with StandInHub(gone) as hub:
        status = json.loads(_run(PRELOAD_THEN_LOAD, hub_env(hub, tmp_path / "hf"), str(tmp_path / "none"), "start"))
    xlmr, kws = status["qa-xlmr"], status["kws"]
    newest = gone[SLOTS["qa-xlmr"].hub_id].refs["main"]
    assert xlmr["state"] == "loaded" and xlmr["path"].endswith(f"/snapshots/{newest}")
    pinned = SLOTS["qa-xlmr"].revision
    assert xlmr["warnings"] == [
        f"the pinned version ({pinned[:7]}) is gone from the hub: this is the newest one ({newest[:7]})"
    ]
    assert kws["state"] == "unavailable"
    assert "its pinned version is gone from the hub, and its newest one has no safetensors weights" in kws["reason"]
