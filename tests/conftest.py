"""Shared fixtures. Every test runs offline: the hub is never reached."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: the hub is off for the whole test session.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# int8 speech models exported for serving (core/onnx_ctc.py) go to a folder of this session's.
os.environ["ONNX_CACHE"] = __import__("tempfile").mkdtemp(prefix="onnx-cache-")

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.slots import SLOTS

ROOT = Path(__file__).resolve().parents[1]
# Seconds `python app.py` may take to answer: importing torch, transformers and Gradio alone takes
# 13-17 s on a 2-core machine; a start that waits on the hub would take far longer.
START_S = 30


@pytest.fixture(autouse=True)
def _no_slot_env(monkeypatch):
    """A developer's own ASR_MODEL etc. must not leak into the tests."""
    for spec in SLOTS.values():
        monkeypatch.delenv(spec.env_var, raising=False)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    from tests.tiny_models import build_all

    folder = tmp_path_factory.mktemp("checkpoints")
    build_all(folder)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def launch():
    """Start `app.build_app(checkpoints)` in this process; yields a function returning its URL."""
    import app

    launched = []

    def _launch(checkpoints: Path) -> str:
        demo = app.build_app(checkpoints)
        port = free_port()
        demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                            quiet=True)
        launched.append(demo)
        return f"http://127.0.0.1:{port}/"

    yield _launch
    for demo in launched:
        demo.close()


def wait_for_http(url: str, timeout_s: float) -> float:
    """Seconds until `url` answered 200; fails the test after `timeout_s`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout_s} s")


SETTLED = ("loaded", "unavailable")


def settled_status(client, timeout_s: float = 60) -> dict:
    """`/status` once every slot has finished loading or given up (the endpoint never waits)."""
    start = time.monotonic()
    while True:
        status = client.predict(api_name="/status")
        if all(status[name]["state"] in SETTLED for name in SLOTS) or time.monotonic() - start > timeout_s:
            return status
        time.sleep(0.3)


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
        proc = subprocess.Popen([sys.executable, "app.py", *args], cwd=ROOT,
                                env={**os.environ, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return proc, f"http://127.0.0.1:{port}/"

    yield _start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def recordings(upload_dir: Path) -> list[Path]:
    """WAV files the browser uploaded to Gradio, without the example clips Gradio copies there."""
    from tasks.asr import EXAMPLES

    examples = {Path(e).name for e in EXAMPLES}
    return [p for p in Path(upload_dir).rglob("*.wav") if p.name not in examples]


@pytest.fixture
def smoke_workdir(tmp_path, monkeypatch) -> Path:
    """A working directory where the smoke configs' relative paths (outputs/smoke/...) resolve."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "train" / "configs", tmp_path / "train" / "configs")
    return tmp_path
