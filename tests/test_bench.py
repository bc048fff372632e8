"""The benchmarks stay working without a GPU (tiny sizes); their GPU numbers are in docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from bench import data_loading, train_speed

pytestmark = pytest.mark.slow  # each runs a whole benchmark


@pytest.mark.beside
def test_train_speed_runs_on_cpu_with_tiny_sizes_and_reports_consistent_ratios(tmp_path):
    out = tmp_path / "speed.json"
    rows = train_speed.main(["--tasks", "asr", "kws", "qa-distilbert", "--quantiles", "2", "--json", str(out)])
    assert [r["task"] for r in rows] == ["asr", "kws", "qa-distilbert"] and all(r["tiny"] for r in rows)
    for row in rows:
        assert row["hw4_s"] > 0 and row["default_s"] > 0
        assert row["ratio"] == pytest.approx(row["hw4_s"] / row["default_s"])
    speech = rows[0]
    assert speech["default_s"] == pytest.approx(speech["build_s"] + speech["head_s"])
    assert json.loads(out.read_text()) == rows


@pytest.mark.beside
def test_data_loading_reports_utterances_and_build_throughput(tmp_path):
    rows = data_loading.main(
        ["--utterances", "8", "--workers", "0", "1", "--build_utterances", "0", "--store_batches", "3"]
    )
    loading = [r for r in rows if r["what"].startswith("loading")]
    assert [(r["what"], r["workers"]) for r in loading] == [
        ("loading, 16 kHz flac", 0),
        ("loading, 16 kHz flac", 1),
        ("loading, 48 kHz flac", 0),
        ("loading, 48 kHz flac", 1),
    ]
    assert all(r["utterances_per_s"] > 0 for r in loading)
    builds = [r for r in rows if r["what"].startswith("cache build")]
    assert len(builds) == 1 and builds[0]["audio_s_per_s"] > 0
    stored = [(r["what"], r["workers"]) for r in rows if r["what"].startswith("stored")]
    assert stored == [(f"stored features, {t}-shaped batches", w) for t in ("kws", "asr") for w in (0, 1)]
    assert all(r["ms_per_batch"] > 0 for r in rows if r["what"].startswith("stored"))


def test_load_runs_concurrent_visitors_and_reports_every_endpoint_and_the_memory(tmp_path, tiny_checkpoints):
    from bench import load

    out = tmp_path / "load.json"
    report = load.main(
        ["--clients", "4", "--requests", "4", "--rounds", "3", "--checkpoints", str(tiny_checkpoints)]
        + ["--json", str(out)]
    )
    assert json.loads(out.read_text()) == report
    assert [r["round"] for r in report["rounds"]] == [1, 2, 3] and report["rss_mb_start"] > 0
    for summary in report["rounds"]:
        # 4 clients x 4 requests cycling from their own offset: each endpoint 4 times, all answered
        assert summary["requests"] == 16 and summary["errors"] == 0, summary["error_kinds"]
        assert {e: n["n"] for e, n in summary["endpoints"].items()} == dict.fromkeys(load.ENDPOINTS, 4)
        assert summary["rss_mb"] > 0
        assert summary["status_plain_http"]["n"] >= 1 and summary["status_client_monitor"]["n"] >= 1
    second, third = (r["rss_mb"] for r in report["rounds"][1:])
    growth = (third - second) / second
    assert report["rss_growth_from_round_2"] == pytest.approx(growth, abs=1e-4)


@pytest.mark.beside
def test_the_gpu_report_rehearses_every_section_on_the_cpu(tmp_path):
    """`python -m bench.gpu_report --tiny`, the rehearsal of the GPU run: each section's benchmark,
    the figures it reports and the checks it makes, on tiny models (targets not judged)."""
    from bench import gpu_report, train_e2e

    out = tmp_path / "report"
    args = ["--tiny", "--epochs", "1", "--kws_train", "120", "--asr_train", "8", "--repeat", "1", "--out", str(out)]
    code = gpu_report.main(args)
    report = json.loads((out / "report.json").read_text())
    bad = [r for r in report["rows"] if r["verdict"].startswith(("FAILED", "CONTRADICTS", "cut short"))]
    assert code == 0 and not bad, bad
    rows = {(r["section"], r["what"]): r for r in report["rows"]}

    # Training: each script four ways on a CPU (the A/B runs that need CUDA are left out).
    results = report["results"]["training"]
    assert results["tasks"]["kws"]["counts"] == [120, 12, 12] and results["tasks"]["asr"]["counts"] == [8, 1, 1]
    for name, task in results["tasks"].items():
        hw4, built, reused, lean = task["rows"]
        assert task["warm_up_s"] > 0.5  # the untimed import pass before the timed runs
        assert [row["run"] for row in task["rows"]] == list(train_e2e.RUNS)
        # HW4's way has no store; the default builds one, then reuses it.
        assert "store" not in hw4 and built["store"] == "built" and reused["store"] == "reused"
        assert built["build_s"] > 0 and built["audio_s_per_s"] > 0 and built["bound_by"] in ("decoding", "encoder")
        assert reused["features"] < built["features"]
        # Every run trains the same steps to the same loss (fp32 on a CPU: stored = live encoder).
        assert hw4["steps"] == built["steps"] == reused["steps"] > 0, name
        assert abs(hw4["last_loss"] - built["last_loss"]) < 1e-3 and built["last_loss"] == reused["last_loss"]
        # The Trainer's own epoch unless the lean one is asked for; the same loss either way.
        assert [row["loop"] for row in task["rows"]] == ["trainer", "trainer", "trainer", "lean"]
        assert lean["steps"] == reused["steps"] and lean["last_loss"] == reused["last_loss"]
        for row in task["rows"]:  # the phases lie inside the process's wall time
            phases = sum(row[p] for p in train_e2e.PHASES)
            assert 0 < phases < row["process_s"] and row["publish + exit"] > 0
            assert 1 < row["start-up"] < row["process_s"]  # the interpreter and the imports, before main
        ratios = task["ratios"]
        assert ratios["built"] == round(hw4["process_s"] / built["process_s"], 2)
        assert ratios["train_phase_reused"] == round(hw4["train"] / reused["train"], 2)
        assert ratios["train_phase_built"] == round(hw4["train"] / (built["features"] + built["train"]), 2)
        assert ratios["lean_loop_train_phase"] == round(reused["train"] / lean["train"], 2)
        judged = rows[("training", f"{name}: training phase, recipe / default reusing its store")]
        assert (judged["figure"], judged["verdict"]) == (f"{ratios['train_phase_reused']}x", "not judged: tiny sizes")
        assert rows[("training", f"{name}: last loss of the default's runs")]["verdict"] == "holds"

    # Serving: the GPU path's steps (bf16) on the CPU, every endpoint, and bf16 against fp32.
    serving = report["results"]["serving"]
    assert [r["endpoint"] for r in serving["rows"]] == ["/status", "/answer", "/spot 1 s", "/transcribe 5 s",
                                                        "/transcribe 10 s"]  # fmt: skip
    assert all(r["precision"] == "bf16" and r["http_p50_s"] > 0 for r in serving["rows"])
    limits = [r for r in report["rows"] if r["section"] == "serving" and r["target"].startswith(("<=", ">="))]
    assert len(limits) == 4 and all(r["verdict"] == "holds" for r in limits)  # 2 QA logits, kws, asr frames
    live = report["results"]["live"]  # the Live tab's update on the served model, gate off and on
    assert live["precision"].startswith("bf16") and live["model"] == "tiny"
    assert live["with_vad"]["update_latency_s"]["n"] > 0 and 0 < live["with_vad"]["speech_share"] < 1
    assert [r["what"] for r in report["rows"] if r["what"].startswith("Live update")] == [
        "Live update, every chunk (bf16 (torch, cpu), tiny model)",
        "Live update, voice gate (bf16 (torch, cpu), tiny model)",
    ]

    # int8 on this CPU, on 2 cores and on all (one run where they are the same two): the QA pair's
    # share of the fp32 sum, from its raw figures.
    runs = [n for n in report["results"] if n.startswith("cpu_int8")]
    assert runs == (["cpu_int8_all_cores"] if os.cpu_count() <= 2 else ["cpu_int8_2_cores", "cpu_int8_all_cores"])
    for cores in (name.removeprefix("cpu_int8_").replace("_", " ") for name in runs):
        raw = report["results"][f"cpu_int8_{cores.replace(' ', '_')}"]["rows"]
        answer = next(r for r in raw if r["endpoint"] == "/answer")
        assert answer["precision"] == "int8" and answer["device"] == "cpu"
        row = rows[("cpu_int8", f"/answer, {cores}")]
        share = answer["served_raw_s"] / answer["fp32_raw_s"]
        assert f"= {share:.2f}x the fp32 sum" in row["figure"]
        assert row["verdict"] == ("met" if share <= gpu_report.TARGET_QA_INT8 else "not met")
    assert (out / "report.md").read_text().count("\n| ") == len(report["rows"]) + 1  # the table, a row each


@pytest.mark.beside
def test_store_build_times_each_precision_with_and_without_the_padding_proof_front_end(tmp_path):
    from bench import store_build

    out = tmp_path / "build.json"
    results = store_build.main(["--tiny", "--batches", "2", "--json", str(out)])
    assert json.loads(out.read_text()) == results
    for task, row in results["tasks"].items():
        assert row["audio_seconds"] > 0 and len(row["batches"]) == 2, task
        assert set(row["audio_s_per_s"]) == {
            f"{variant}, {front}"
            for variant in ("fp32", "bf16 autocast (the build)")
            for front in ("padding-proof", "plain front end")
        }
        assert all(speed > 0 for speed in row["audio_s_per_s"].values())
        assert row["copy"]["pageable_ms"] >= 0 and row["copy"]["mb_per_batch"] >= 0
    # ASR's batches are length-grouped (several clips, padded); KWS's are 1 s clips.
    assert results["tasks"]["asr"]["batches"][0] >= 1 and results["tasks"]["kws"]["batches"] == [8, 8]


@pytest.mark.beside
def test_step_profile_breaks_down_the_start_and_each_loops_step(tmp_path):
    from bench import step_profile

    out = tmp_path / "profile.json"
    results = step_profile.main(["--tiny", "--steps", "20", "--work", str(tmp_path / "work"), "--json", str(out)])
    assert json.loads(out.read_text()) == results
    packages = dict(results["imports"]["packages_s"])
    assert {"torch", "transformers"} <= set(packages) and 0 < sum(packages.values()) < results["imports"]["process_s"]
    lean, trainer = results["runs"]["lean"], results["runs"]["trainer"]
    assert (lean["loop"], lean["epoch_function"]) == ("lean", "lean_loop.py:_lean_epoch")
    assert trainer["loop"].startswith("trainer:") and trainer["epoch_function"] == "trainer.py:_run_epoch"
    # The loss: the lean epoch calls the script's compute_loss, the Trainer's epoch its training_step.
    lean_calls, trainer_calls = dict(lean["callees_ms_per_step"]), dict(trainer["callees_ms_per_step"])
    assert "kws.py:compute_loss" in lean_calls and "trainer.py:training_step" not in lean_calls
    assert "trainer.py:training_step" in trainer_calls
    for run, callees in ((lean, lean_calls), (trainer, trainer_calls)):
        assert 0 < max(callees.values()) <= run["epoch_ms_per_step"]


@pytest.mark.beside
def test_step_profile_breaks_down_the_ctc_heads_step_too(tmp_path):
    from bench import step_profile

    results = step_profile.main(["--task", "asr", "--tiny", "--steps", "4", "--work", str(tmp_path / "work")])
    assert results["task"] == "asr" and "torch" in dict(results["imports"]["packages_s"])
    lean, trainer = results["runs"]["lean"], results["runs"]["trainer"]
    assert (lean["epoch_function"], trainer["epoch_function"]) == ("lean_loop.py:_lean_epoch", "trainer.py:_run_epoch")
    # The CTC loss's backward is the biggest part of the lean step on a CPU; the Trainer's is in its training_step.
    lean_calls = dict(lean["callees_ms_per_step"])
    assert max(lean_calls, key=lean_calls.get) in ("_tensor.py:backward", "trainer.py:compute_loss")
    assert "trainer.py:training_step" in dict(trainer["callees_ms_per_step"])


@pytest.mark.beside
def test_live_decode_folds_committed_words_and_keeps_the_text(tmp_path):
    from bench import live_decode

    out = tmp_path / "live.json"
    results = live_decode.main(["--minutes", "0.5", "2", "--json", str(out)])
    assert json.loads(out.read_text()) == results
    # Both ways give the same transcript, every word spoken in the 2 minutes (6,000 frames): each
    # letter 3 frames with its blank, each word 2 more for its delimiter and blank.
    cycle = sum(3 * len(word) + 2 for word in live_decode.WORDS)
    assert results["same_text"] and abs(results["words"] - 6_000 * len(live_decode.WORDS) / cycle) <= 1
    assert len(results["folded_ms"]) == len(results["every_id_ms"]) == 2


def test_live_capacity_counts_the_audio_a_handler_slower_than_speech_loses(tiny_checkpoints, monkeypatch):
    from bench import live_capacity
    from slots.registry import Registry
    from ui import asr

    registry = Registry(tiny_checkpoints)
    loaded = registry["asr"].get()
    fast = live_capacity.run("asr", loaded, 2, seconds=4.0)
    assert fast["visitors"] == 2 and fast["updates"] >= 10
    assert fast["heard_share"] >= 0.9  # the tiny model keeps up with two recordings
    # Both tabs at once: one row each, saying what ran beside it (KWS chunks are 0.25 s).
    models = {"asr": loaded, "kws": registry["kws"].get()}
    both = live_capacity.run_together(models, {"asr": 1, "kws": 1}, seconds=4.0)
    assert [(r["tab"], r["visitors"], r["alongside"]) for r in both] == [
        ("asr", 1, {"kws": 1}),
        ("kws", 1, {"asr": 1}),
    ]
    assert all(r["heard_share"] >= 0.9 for r in both) and both[1]["updates"] >= 12
    real_update = asr.live_update

    def slow_update(*args):
        time.sleep(0.8)  # 0.8 s per 0.5 s chunk: the server keeps the newest chunk, ~5/8 of the audio
        return real_update(*args)

    monkeypatch.setattr(asr, "live_update", slow_update)
    slow = live_capacity.run("asr", loaded, 1, seconds=6.0)
    assert 0.5 <= slow["heard_share"] <= 0.75, slow
    assert slow["update_p50_s"] >= 0.8


def test_live_benchmarks_feed_speech_with_pauses_through_the_voice_gate(tiny_checkpoints, tmp_path):
    from bench import live_capacity, live_latency, synthetic
    from slots.registry import Registry
    from speech import vad

    audio = synthetic.speech_with_pauses(tmp_path)
    spans = vad.speech_spans(audio[::3].astype(np.float32) / 32767)
    share = sum(e - s for s, e in spans) / (len(audio) / 48_000)
    assert len(spans) == 3 and 0.4 <= share <= 0.7  # three sentences, about half of it speech
    loaded = Registry(tiny_checkpoints)["asr"].get()
    row = live_capacity.run_together({"asr": loaded}, {"asr": 2}, 4.0, audio, vad=True)[0]
    assert row["vad"] and row["audio"] == "speech with pauses" and row["heard_share"] >= 0.9
    run = live_latency.feed(loaded, audio, 6.0, vad=True)
    readouts = run["state"].readouts
    assert readouts.heard_s == pytest.approx(6.0, abs=0.6) and 0 < readouts.speech_s < readouts.heard_s
    assert len(run["latencies"]) >= 8 and max(run["latencies"]) < 2.0


@pytest.mark.beside
def test_render_loop_pages_of_clips_do_not_grow_the_disk(tmp_path):
    from bench import render_loop

    result = render_loop.main(["--seconds", "0", "--renders", "4", "--json", str(tmp_path / "render.json")])
    assert result["renders"] == 4  # two rounds of the two pages, however slowly a loaded box renders
    assert result["at_end_mb"] == result["after_first_round_mb"]
    assert (
        result["at_end_mb"]["app_clips"] > 0.1 and result["at_end_mb"]["gradio_cache"] > 0.1
    )  # the clips were served


def test_audio_decode_reports_the_cost_of_a_worker_process(tmp_path):
    from bench import audio_decode

    rows = audio_decode.main(["--seconds", "1", "--repeats", "1"])
    assert [r["file"] for r in rows] == [k[0] for k in audio_decode.KINDS]
    assert all(r["in_process_s"] > 0 and r["worker_ratio"] > 0 and r["fresh_process_ratio"] > 1 for r in rows)


def test_hostile_uploads_leave_the_app_serving_with_each_answer_served_or_refused_in_a_sentence():
    from bench import hostile

    report = hostile.main(["--endpoints", "/spot"])
    outcomes = {r["file"]: r["outcome"] for r in report["requests"]}
    assert report["app_alive"] and report["status"]["n"] > 0
    assert outcomes["8ch.m4a"] == outcomes["8ch.webm"] == outcomes["damaged_middle.mp3"] == "served"
    assert "has 16 audio channels; at most 8 are accepted" in outcomes["16ch.webm"]
    assert "holds more audio data than this app decodes" in outcomes["dc8ch192k.flac"]
    assert "longer than the limit of 600 s; its header said 10.0 s" in outcomes["two_hours_header_says_10s.mp3"]
    assert "is not an audio file this app can read" in outcomes["text.mp3"]


@pytest.mark.beside
def test_asr_serving_puts_the_endpoint_beside_the_forward_passes_and_the_live_update(tmp_path):
    """`python -m bench.asr_serving`, as a user runs it (the app in its own process), on the tiny
    model: one row per clip length and the live update's costs, also written as JSON."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    out = tmp_path / "asr.json"
    command = ["-m", "bench.asr_serving", "--shape", "tiny", "--seconds", "2", "4", "--repeat", "1"]
    run = subprocess.run(
        [sys.executable, *command, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["shape"] == "tiny" and result["precision"].startswith("int8")
    assert [row["seconds"] for row in result["clips"]] == [2, 4]
    for row in result["clips"]:
        assert row["endpoint_s"] > 0 and row["serving_forward_s"] > 0 and row["torch_fp32_forward_s"] > 0
        assert row["rtf"] == pytest.approx(row["endpoint_s"] / row["seconds"], abs=1e-3)
    live = result["live"]  # 119 updates after the first
    assert live["chunk_s"] == 0.5 and 0 < live["mean_s"] <= live["max_s"] and live["p95_s"] <= live["max_s"]
    assert "endpoint/serving" in run.stdout and "live, 0.5 s chunks over 60 s" in run.stdout
