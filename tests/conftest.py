"""Shared fixtures. Every test runs offline: the hub is never reached."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: the hub is off for the whole test session.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# int8 models exported for serving (slots/onnx_serving.py) go to a folder of this session's, and
# Gradio's copies of uploads and examples too: an app that stops deletes every copy it handed out,
# the example clips' among them, at content-hashed paths that every app sharing the folder uses.
# With Gradio's default (/tmp/gradio, one per machine) the apps that CI's second test process
# stopped took away the example clips of the app a browser test was using in the first. Both are
# removed when the session ends (`pytest_sessionfinish`). An app started as `python app.py`
# (`app_process`) makes a Gradio folder of its own, as it does for users.
os.environ["ONNX_CACHE"] = __import__("tempfile").mkdtemp(prefix="onnx-cache-")
os.environ["GRADIO_TEMP_DIR"] = __import__("tempfile").mkdtemp(prefix="gradio-tests-")

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from core.settings import CANDIDATE_VARIABLES
from slots.table import SLOTS
from tests.helpers import LONG_AUDIO_TEXT, ROOT, close_app, free_port, serve_here
from tests.learned import Learning

pytest_plugins = ["tests.system_packages"]

# Fixtures that train a model or start `python app.py`: a test that uses one is marked slow (as the
# benchmark tests and those that start a process mark themselves), so `pytest -m "not slow and not
# browser"` is the quick tier while the full suite runs them all.
SLOW_FIXTURES = {"learned_kws", "learned_asr", "learned_qa", "microphone_wav", "smoke_workdir", "app_process", "repos"}
SLOW_FIXTURES |= {"two_asr", "every_container", "speech_app", "qa_app"}


# The models trained from scratch (`tests/learned.py`), by fixture.
LEARNED = {"learned_asr": "asr", "learned_kws": "kws", "learned_qa": "qa"}
_learning: Learning | None = None


def _learned(item: pytest.Item) -> set[str]:
    return {LEARNED[name] for name in getattr(item, "fixturenames", ()) if name in LEARNED}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("beside") and _learned(item):
            raise pytest.UsageError(f"{item.nodeid} needs a learned model: it cannot be marked beside (pytest.ini)")
        marks = {mark.name for mark in item.iter_markers()}
        if "quiet" in marks and ("beside" in marks or not marks & {"slow", "browser"}):
            raise pytest.UsageError(f"{item.nodeid}: a quiet test is slow or browser, never beside (pytest.ini)")
    # Test files that need a learned model run last, each file kept whole (its module fixtures
    # are made once): their models train meanwhile.
    learning = {item.module for item in items if _learned(item) and getattr(item, "module", None)}
    items.sort(key=lambda item: getattr(item, "module", None) in learning)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start training the learned models the selected tests need, before the first test runs."""
    needed = set().union(*(_learned(item) for item in session.items))
    if needed and not session.config.option.collectonly:
        _session_learning().start(needed)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _learning is not None:
        _learning.close()
        shutil.rmtree(_learning.base, ignore_errors=True)
    for variable in ("ONNX_CACHE", "GRADIO_TEMP_DIR"):
        shutil.rmtree(os.environ[variable], ignore_errors=True)


def _session_learning() -> Learning:
    global _learning
    if _learning is None:
        _learning = Learning(Path(tempfile.mkdtemp(prefix="learned-")))
    return _learning


def _learned_model(task: str) -> tuple[Path, Path]:
    return _session_learning().result(task)  # started at collection unless the collection missed it


@pytest.fixture(autouse=True)
def _no_slot_env(monkeypatch):
    """A developer's own ASR_MODEL etc. must not leak into the tests."""
    for spec in SLOTS.values():
        monkeypatch.delenv(spec.env_var, raising=False)
    for variable in CANDIDATE_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    from scripts.tiny_models import build_all

    folder = tmp_path_factory.mktemp("checkpoints")
    build_all(folder)
    return folder


@pytest.fixture(scope="session")
def learned_kws() -> tuple[Path, Path]:
    """The keyword model the KWS tests share (`tests/kws_learned.py`): its tree and checkpoints."""
    return _learned_model("kws")


@pytest.fixture(scope="session")
def learned_asr() -> tuple[Path, Path]:
    """A tiny Hubert trained from scratch until it transcribes its 4 utterances
    (`tests/learned.py`): the root with its `librispeech/` tree, and the checkpoints."""
    return _learned_model("asr")


@pytest.fixture(scope="session")
def learned_qa() -> tuple[Path, Path]:
    """Tiny DistilBERT and XLM-R trained on 10 questions, 4 unanswerable (`tests/learned.py`):
    the root with its `squad_v2.json`, and the checkpoints."""
    return _learned_model("qa")


@pytest.fixture
def launch():
    """Start the app on `checkpoints` in this process; yields a function returning its URL."""
    launched = []

    def _launch(checkpoints: Path) -> str:
        demo, url = serve_here(checkpoints)
        launched.append(demo)
        return url

    yield _launch
    for demo in launched:
        close_app(demo)


@pytest.fixture(scope="session")
def tiny_app(tiny_checkpoints):
    """One app on the tiny checkpoints for the whole session (its URL), for tests that only send
    requests: fuzz cases need not start an app each."""
    demo, url = serve_here(tiny_checkpoints)
    yield url
    close_app(demo)


@pytest.fixture
def app_process():
    """Start `python app.py ARGS` as users do; yields a function returning (process, url)."""
    procs = []

    def _start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
        env = dict(env or {})
        if "GRADIO_SERVER_PORT" in env:  # the app must find its port in the environment
            port = int(env["GRADIO_SERVER_PORT"])
        else:
            port = free_port()
            args = ("--port", str(port), *args)
        proc = subprocess.Popen(
            [sys.executable, "app.py", *args],
            cwd=ROOT,
            # A Gradio folder of its own unless the test names one, as `python app.py` makes.
            env={**{k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc, f"http://127.0.0.1:{port}/"

    yield _start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def smoke_workdir(tmp_path, monkeypatch) -> Path:
    """A working directory where the smoke configs' relative paths (outputs/smoke/...) resolve."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "train" / "configs", tmp_path / "train" / "configs")
    return tmp_path


@pytest.fixture(scope="session")
def tiny_hubert_ctc():
    """A random Hubert CTC model with the real 320-sample frame hop."""
    import torch
    from transformers import HubertForCTC

    from scripts.tiny_models import hubert_config
    from speech.ctc import build_char_vocab, make_processor

    processor = make_processor(build_char_vocab([LONG_AUDIO_TEXT]))
    torch.manual_seed(0)
    config = hubert_config(
        conv_dim=(16,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        vocab_size=len(processor.tokenizer),
        pad_token_id=0,
    )
    return HubertForCTC(config).eval(), processor
