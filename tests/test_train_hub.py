"""Each training script's default data path, the hub, run as a user runs it: `python -m train.x`
against a stand-in hub on loopback (tests/hub_standin.py, the real `datasets` and
`huggingface_hub` clients through `HF_ENDPOINT`) holding the three datasets laid out as on the hub
(tests/dataset_repos.py). Each loads, trains a few steps and publishes; only the files of the
splits it uses are downloaded; the dataset's commit is in metrics.json and the model card; a
revision, config or hub that is not there is one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.make_smoke_data import qa_corpus, squad_json, tiny_hubert, tiny_qa
from tests import dataset_repos
from tests.helpers import ROOT
from tests.hub_standin import StandInHub

pytestmark = [pytest.mark.slow, pytest.mark.beside]  # each test starts training processes
CONFIGS = ROOT / "train" / "configs"
DATASETS = {"google/speech_commands", "openslr/librispeech_asr", "rajpurkar/squad_v2"}


@pytest.fixture(scope="module")
def dataset_hub():
    paragraphs = [d["paragraphs"][0] for d in squad_json()["data"]]
    datasets = {
        "google/speech_commands": dataset_repos.speech_commands(),
        "openslr/librispeech_asr": dataset_repos.librispeech(),
        "rajpurkar/squad_v2": dataset_repos.squad_v2(paragraphs),
    }
    with StandInHub({}, datasets) as hub:
        yield hub


def train(hub: StandInHub, workdir: Path, module: str, *args: str, endpoint: str | None = None):
    """`python -m module args` in `workdir`, online against `hub`: (exit code, stderr, the data
    files downloaded). A dataset's README, which declares its configs, is read as well."""
    hub.requests.clear()
    env = {**os.environ, "HF_ENDPOINT": endpoint or hub.url, "HF_HOME": str(workdir / "hf"), "PYTHONPATH": str(ROOT)}
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )
    downloads = sorted({path for method, path in hub.requests if method == "GET" and path.endswith(".parquet")})
    return done.returncode, done.stderr, downloads


def published(folder: Path) -> tuple[dict, str]:
    return json.loads((folder / "metrics.json").read_text()), (folder / "README.md").read_text()


def test_keyword_spotting_trains_from_the_parquet_export_of_v0_01_alone(dataset_hub, tmp_path):
    encoder = tiny_hubert(tmp_path / "tiny-hubert")
    code, err, downloads = train(
        dataset_hub,
        tmp_path,
        "train.kws",
        str(CONFIGS / "kws_smoke.json"),
        *("--data_dir", "", "--test_dir", "", "--model_name_or_path", str(encoder), "--silence_clips", "4"),
        *("--output_dir", "out/kws", "--run_dir", "runs/kws", "--feature_cache_dir", "cache"),
    )
    assert code == 0, err[-3000:]
    export = f"/datasets/google/speech_commands/resolve/{'e7' * 20}"
    assert downloads == [f"{export}/v0.01/{split}/0000.parquet" for split in ("test", "train", "validation")]
    metrics, card = published(tmp_path / "out/kws")
    dataset = metrics["extra"]["dataset"]
    assert (dataset["name"], dataset["folder"], dataset["revision"]) == (
        "google/speech_commands",
        "v0.01",
        "refs/convert/parquet",
    )
    assert dataset["commit"] == "e7" * 20 and sorted(dataset["files"]) == ["test", "train", "validation"]
    # 24 clips a split; the 31 words map to the 12 classes; the silence sources become 4 windows.
    assert metrics["dataset_sizes"]["validation"] == metrics["dataset_sizes"]["test"] == 24
    assert sum(metrics["extra"]["class_counts"].values()) == metrics["dataset_sizes"]["train"]
    # this miniature holds no `_silence_` rows: no noise to judge the model in, and the run says so
    assert metrics["extra"]["streaming"] is None and "no background noise" in metrics["extra"]["streaming_skipped"]
    assert f"revision: {'e7' * 20}" in card and f"at commit `{'e7' * 20}`" in card


def test_speech_recognition_downloads_train_100_validation_and_test_only(dataset_hub, tmp_path):
    encoder = tiny_hubert(tmp_path / "tiny-hubert")
    code, err, downloads = train(
        dataset_hub,
        tmp_path,
        "train.asr",
        str(CONFIGS / "asr_smoke.json"),
        *("--data_dir", "", "--model_name_or_path", str(encoder), "--examples", "false"),
        *("--output_dir", "out/asr", "--run_dir", "runs/asr", "--feature_cache_dir", "cache"),
    )
    assert code == 0, err[-3000:]
    main = f"/datasets/openslr/librispeech_asr/resolve/{'1b' * 20}"
    assert downloads == [f"{main}/clean/{split}/0000.parquet" for split in ("test", "train.100", "validation")]
    metrics, card = published(tmp_path / "out/asr")
    assert metrics["extra"]["dataset"]["config"] == "clean" and metrics["extra"]["dataset"]["commit"] == "1b" * 20
    assert metrics["dataset_sizes"] == {"train": 6, "validation": 6, "test": 6}
    assert f"revision: {'1b' * 20}" in card


def test_question_answering_reads_squad_v2_at_its_commit(dataset_hub, tmp_path):
    model = tiny_qa(tmp_path / "tiny-distilbert", "distilbert", qa_corpus())
    code, err, downloads = train(
        dataset_hub,
        tmp_path,
        "train.qa",
        str(CONFIGS / "qa_distilbert_smoke.json"),
        *("--train_file", "", "--validation_file", "", "--model_name_or_path", str(model)),
        *("--output_dir", "out/qa", "--run_dir", "runs/qa", "--subset", "8", "5"),
    )
    assert code == 0, err[-3000:]
    main = f"/datasets/rajpurkar/squad_v2/resolve/{'3d' * 20}/squad_v2"
    assert downloads == [f"{main}/train-00000-of-00001.parquet", f"{main}/validation-00000-of-00001.parquet"]
    metrics, card = published(tmp_path / "out/qa")
    assert metrics["extra"]["dataset"]["commit"] == "3d" * 20
    assert metrics["dataset_sizes"]["train"] == 8 and metrics["dataset_sizes"]["validation"] == 5
    assert f"revision: {'3d' * 20}" in card


def test_a_revision_that_is_not_there_is_one_line_and_exit_code_2(dataset_hub, tmp_path):
    code, err, downloads = train(
        dataset_hub,
        tmp_path,
        "train.kws",
        str(CONFIGS / "kws_smoke.json"),
        *("--data_dir", "", "--test_dir", "", "--output_dir", "out/kws", "--dataset_revision", "no-such-branch"),
    )
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert "no revision 'no-such-branch' on the hub; check --dataset_revision" in lines[0]
    assert "--data_dir for a local copy" in lines[0] and downloads == []


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (lambda: _hub_error("RepositoryNotFoundError"), "no such dataset on the hub; check --dataset_name"),
        (lambda: _hub_error("RevisionNotFoundError"), "no revision 'v9' on the hub; check --dataset_revision"),
        (lambda: FileNotFoundError("v9.99 doesn't contain any data files"), "check --dataset_config"),
        (lambda: ValueError("BuilderConfig 'v9.99' not found"), "check --dataset_config"),
        (lambda: ConnectionRefusedError(111, "Connection refused"), "the hub could not be reached"),
    ],
)
def test_each_hub_failure_is_a_sentence_naming_the_flag_to_change(raised, said):
    from train.hub_data import DataSourceError, HubDataset, hub_errors

    with (
        pytest.raises(DataSourceError) as caught,
        hub_errors(HubDataset("google/speech_commands", "v9", folder="v0.01")),
    ):
        raise raised()
    message = str(caught.value)
    assert message.startswith("hub dataset google/speech_commands (v0.01)@v9: ") and said in message
    assert message.endswith("or use --data_dir for a local copy") and "\n" not in message


def _hub_error(name: str) -> Exception:
    import httpx2
    from huggingface_hub import errors

    response = httpx2.Response(404, request=httpx2.Request("GET", "http://127.0.0.1/api/datasets/x"))
    return getattr(errors, name)("404 Client Error", response=response)


def test_a_full_speech_run_holds_positions_not_audio_and_stores_the_used_splits_once(tmp_path):
    """LibriSpeech without a subset: what the process holds after loading, and what lands on disk,
    against the audio it reads (printed with -s: docs/measurements.md quotes it)."""
    repo = dataset_repos.librispeech(utterances=600, seconds=4.0)
    audio = dict.fromkeys(("train.100", "train.360", "validation", "test"), 0)
    for path, data in next(iter(repo.commits.values())).items():
        split = path.split("/")[1] if path.startswith("clean/") else None
        if split in audio:
            audio[split] += len(data)
    code = """
import json, os
import datasets, pyarrow  # their imports are not what loading holds
from train.hub_data import HubDataset
from train.librispeech import load_hub
from speech.audio import stored
def anonymous():  # memory of the process's own, not pages of files it maps
    return int(next(l for l in open("/proc/self/status") if l.startswith("RssAnon:")).split()[1]) * 1024
before = anonymous()
splits, opened = load_hub(HubDataset("openslr/librispeech_asr", config="clean"),
                          {"train": "train.100", "validation": "validation", "test": "test"}, {})
held = anonymous() - before
encoded = sum(len(stored(u.audio)["bytes"]) for u in splits["train"])
lazy = all(type(u.audio).__name__ == "DatasetAudio" for s in splits.values() for u in s)
print(json.dumps({"held": held, "utterances": {s: len(u) for s, u in splits.items()}, "train_audio": encoded,
                  "lazy": lazy}))
"""
    with StandInHub({}, {"openslr/librispeech_asr": repo}) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
        env.pop("HF_HUB_OFFLINE", None)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["utterances"] == {"train": 600, "validation": 600, "test": 600}
    used = audio["train.100"] + audio["validation"] + audio["test"]
    on_disk = sum(f.stat().st_size for f in (tmp_path / "hf").rglob("*") if f.is_file() and not f.is_symlink())
    print(
        f"\nparquet of the used splits {used / 2**20:.1f} MiB (train.360 {audio['train.360'] / 2**20:.1f} MiB not"
        f" fetched); on disk after loading {on_disk / 2**20:.1f} MiB ({on_disk / used:.2f}x);"
        f" held in memory {found['held'] / 2**20:.1f} MiB for {found['train_audio'] / 2**20:.1f} MiB of train audio"
    )
    assert on_disk < 2.2 * used  # the downloaded parquet and the memory-mapped Arrow copy, nothing else
    # Each utterance is a position in a memory-mapped file; what the process keeps beyond that is
    # the allocators' slack from converting the files (30-135 MiB here, not growing with the data).
    assert found["lazy"] and found["held"] < used
