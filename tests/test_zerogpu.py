"""ZeroGPU: every request's model work runs inside a call the `spaces` package lends a GPU to, with a
duration from its work; Live runs on the CPU copies and costs none; a refusal reads as a sentence.

The real package's ZeroGPU mode needs a CUDA build of torch, so the app runs here on a stand-in
of it (`tests/zerogpu_standin/spaces`, what it keeps of the contract is in its docstring); the real
package is installed (requirements.txt) and its no-op mode is what every other test runs on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from serving import gpu

ROOT = Path(__file__).resolve().parents[1]


def test_outside_zerogpu_the_real_spaces_package_changes_nothing():
    import spaces

    assert gpu.spaces is spaces and not gpu.ZERO_GPU
    assert spaces.GPU(len) is len and spaces.GPU(duration=5)(len) is len
    from ui import live

    assert live.where_it_runs() == ""  # the Live tabs say nothing about a GPU they do not borrow


def test_durations_grow_with_the_work_and_stay_bounded():
    one_minute = np.zeros(16_000 * 60, np.float32)
    assert gpu.audio_duration(None, one_minute[:16_000]) == gpu.LEAST_S + 1
    assert gpu.audio_duration(None, one_minute) == gpu.LEAST_S + 2
    assert gpu.audio_duration(None, np.zeros(16_000 * 3600, np.float32)) == gpu.MOST_S
    assert gpu.text_duration(None, "x" * 100_000) == gpu.LEAST_S + 5
    examples = [None] * 200
    assert gpu.examples_duration(None, examples, 0.0) == gpu.LEAST_S + 10
    assert gpu.examples_duration(None, examples, 0.0, fp32=True) == gpu.LEAST_S + 25


def test_zerogpu_refusals_read_as_a_sentence_and_other_errors_pass_unchanged():
    quota = gr.Error("You have exceeded your free ZeroGPU quota (60s requested vs. 12s left). Try again in 0:41:10. ")
    quota.title = "ZeroGPU quota exceeded"
    said = gpu.plain(quota, "transcribe").message
    assert said.startswith("Your free GPU time on this Space is used up") and "0:41:10" in said
    assert "requested" not in said and "ZeroGPU" not in said
    queue = gr.Error("No GPU was available after 60s", title="ZeroGPU queue timeout")
    assert gpu.plain(queue, "answer").message == gpu.REFUSALS["ZeroGPU queue timeout"]
    worker = gr.Error("RuntimeError", title="ZeroGPU worker error")
    assert gpu.plain(worker, "answer").message == gpu.FAILED
    own = gr.Error("The question is empty.")
    assert gpu.plain(own, "answer") is own


@pytest.mark.slow
def test_on_a_stand_in_zerogpu_every_request_borrows_the_gpu_and_live_never_does(tiny_checkpoints, tmp_path):
    long_clip = tmp_path / "two_minutes.wav"
    sf.write(long_clip, np.random.default_rng(0).normal(0, 0.05, 16_000 * 120).astype(np.float32), 16_000)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "zerogpu_standin"), str(ROOT)]),
        "SPACES_ZERO_GPU": "true",
        # No CUDA here: the models serve on the CPU as PyTorch models, as on the GPU (in fp32: fp16
        # matrix products on this CPU are emulated, and slow).
        "SERVE_DEVICE": "cpu",
        "SERVE_PRECISION": "fp32",
        "ONNX_CACHE": str(tmp_path / "onnx"),
    }
    squad = ROOT / "assets" / "qa" / "sample_squad_v2.json"
    command = [sys.executable, "-m", "scripts.zerogpu_run", str(tiny_checkpoints), str(squad), str(long_clip)]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("REPORT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(lines[-1].removeprefix("REPORT "))

    assert report["zero_gpu"] and set(report["states"].values()) == {"loaded"}  # loaded before launch
    assert report["app"]["zero_gpu"] is True  # what /status says under "app"
    assert set(report["precisions"].values()) == {"fp32 (torch, cpu)"}
    assert report["live_is_a_copy"] == {"asr": True, "kws": True}
    assert report["control"] == ["HubertForSequenceClassification"]  # the guard catches a model run outside...
    assert report["outside"] == []  # ...and no request ran one outside a lent call
    calls = {name: visit["calls"] for name, visit in report["visits"].items()}
    assert calls["transcribe"] == [["transcribe", gpu.LEAST_S + 1]]  # a clip of a few seconds
    assert calls["transcribe_long"] == [["transcribe", gpu.LEAST_S + 4]]  # two minutes: 1 s per 30 s
    assert calls["spot"] == [["keyword_scan", gpu.LEAST_S + 1]]
    assert calls["answer"] == [["answer", gpu.LEAST_S + 1]] * 2  # one per model
    # The sample file's 12 questions, one call per model (served in fp32 here: no fp32 reference to add).
    assert calls["batch"] == [["answer_all", gpu.LEAST_S + 1]] * 2
    assert report["visits"]["batch"]["result"]["scores"]["qa-xlmr"]["total"] == 12
    assert set(report["visits"]["answer"]["result"]) == {"qa-distilbert", "qa-xlmr"}
    assert report["visits"]["spot"]["result"]["label"] in {
        c["label"] for c in report["visits"]["spot"]["result"]["confidences"]
    }

    assert report["live"]["calls"] == [] and report["live"]["seconds"] > 3  # Live: no GPU second spent
    assert report["live_lines"] == 2  # and both Live tabs say so
    assert (
        report["refused"].startswith("Your free GPU time on this Space is used up") and "7:41:22" in report["refused"]
    )
    assert set(report["after_refusal"]) == {"qa-distilbert", "qa-xlmr"}  # the next visitor is served
    assert all(
        what.startswith("on ZeroGPU the models are placed when the Space starts") for what in report["reload"].values()
    )


def test_the_device_api_stand_in_answers_the_spaces_client_as_zerogpu_does():
    """The real package's client (spaces/zero/api.py) against the stand-in device API a GPU run
    uses for ZeroGPU end to end: a GPU lent, its worker allowed, the call released and charged, and
    a duration over the quota left refused with what is left and when it comes back."""
    from datetime import timedelta

    import httpx
    from spaces.zero.api import APIClient, QuotaInfos, ScheduleResponse

    from scripts.zerogpu_device_api import DeviceApi

    with DeviceApi(quota_s=30, gpu="GPU-0000", wait_s=600) as api:
        client = APIClient(httpx.Client(base_url=api.url, timeout=10))
        assert client.startup_report() is httpx.codes.OK and api.startups == 1
        lent, _ = client.schedule(cgroup_path="/", task_id=7, duration_seconds=20)
        assert isinstance(lent, ScheduleResponse) and lent.nvidiaUUID == "GPU-0000" and lent.idle
        assert client.allow(allow_token=lent.allowToken, pid=4242) is httpx.codes.OK and api.allowed == [4242]
        assert client.release(allow_token=lent.allowToken) is httpx.codes.OK
        assert api.calls[0].task == 7 and api.calls[0].asked_s == 20 and 0 <= api.calls[0].used_s < 5
        refused, _ = client.schedule(cgroup_path="/", task_id=7, duration_seconds=31)
        assert isinstance(refused, QuotaInfos) and refused.wait == timedelta(seconds=600) and refused.left <= 30
