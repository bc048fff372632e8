"""How `bench.gpu_report` judges a GPU run's figures: targets met or not, the A/B verdicts, and the
results that contradict the CPU rehearsal (exit status 1) or a section that did not run (2)."""

from __future__ import annotations

from bench import gpu_report

GPU = {"gpu": "NVIDIA H100 80GB HBM3", "cpu_flags": ["avx2", "avx512_vnni"]}


def run(name: str, train: float, loss: float, process: float = 30.0, features: float = 0.5) -> dict:
    return {"run": name, "process_s": process, "start-up": 12.0, "features": features, "train": train,
            "last_loss": loss, "steps": 100}  # fmt: skip


def training(losses: tuple[float, ...] = (2.0, 2.001, 2.0, 2.0, 2.0, 2.0), built_features: float = 20.0) -> dict:
    hw4, built, reused, lean, graphed, eager = losses
    rows = [
        run("hw4 recipe", 150.0, hw4, process=170.0),
        run("default (store built)", 26.0, built, process=60.0, features=built_features),
        run("default (store reused)", 25.0, reused, process=40.0),
        run("default (store reused, lean epoch)", 20.0, lean),
        run("default (store reused, graphed update)", 19.9, graphed),
        run("default (store reused, eager head step)", 30.0, eager),
    ]
    from bench.train_e2e import ratios_of

    task = {"counts": [51_094, 6_798, 6_835], "rows": rows, "ratios": ratios_of({r["run"]: r for r in rows})}
    return {"tasks": {"kws": task}}


def verdicts(rows: list[gpu_report.Row]) -> dict[str, tuple[str, str]]:
    return {r.what: (r.figure, r.verdict) for r in rows}


def test_the_training_targets_and_each_ab_are_judged_from_the_ratios():
    found = verdicts(gpu_report.judge({"training": training()}, GPU, tiny=False))
    assert found["kws: training phase, recipe / default reusing its store"] == ("6.0x", "met")  # 150 / 25
    assert found["kws: training phase, recipe / default building its store"] == ("3.26x", "met")  # 150 / (20 + 26)
    assert found["kws: Trainer's loop / lean loop (training phase)"] == ("1.25x", "pays")
    assert found["kws: lean loop / with the graphed update (training phase)"] == ("1.01x", "does not pay")
    assert found["kws: eager head step / from CUDA graphs (training phase)"] == ("1.2x", "pays")
    assert found["kws: last loss of the default's runs"][1] == "holds"  # within 1 % on a GPU
    slow_build = verdicts(gpu_report.judge({"training": training(built_features=40.0)}, GPU, tiny=False))
    assert slow_build["kws: training phase, recipe / default building its store"] == ("2.27x", "not met")


def test_a_run_on_one_store_ending_at_another_loss_contradicts_the_rehearsal():
    rows = gpu_report.judge({"training": training((2.0, 2.0, 2.0, 2.0, 2.5, 2.0))}, GPU, tiny=False)
    assert verdicts(rows)["kws: last loss of the default's runs"][1] == "CONTRADICTS: one store, other losses"
    assert any(r.contradicts for r in rows)
    # On a CPU (fp32 throughout) the same runs must agree exactly.
    cpu = {**GPU, "gpu": None}
    found = verdicts(gpu_report.judge({"training": training((2.0, 2.0, 2.0, 2.0, 2.0, 2.00001))}, cpu, tiny=True))
    assert found["kws: last loss of the default's runs"][1].startswith("CONTRADICTS")
    assert found["kws: training phase, recipe / default reusing its store"][1] == "not judged: tiny sizes"


def test_half_precision_beyond_its_tolerance_contradicts_and_a_flipped_label_is_only_reported():
    endpoint = {"endpoint": "/spot 1 s", "device": "cuda", "precision": "fp16", "http_p50_s": 0.02,
                "served_raw_s": 0.004, "overhead_s": 0.016, "fp32_raw_s": 0.008, "ratio_to_fp32": 2.5}  # fmt: skip
    agreement = {
        "qa-xlmr logits, max |difference|": 0.3,
        "kws probabilities, max |difference|": 0.0002,
        "kws same label": False,
        "asr frames with the same argmax (30 s)": 0.99,
    }
    found = verdicts(gpu_report.judge({"serving": {"rows": [endpoint], "half_against_fp32": agreement}}, GPU, False))
    assert found["/spot 1 s (fp16 on cuda)"] == ("20 ms over HTTP, 4 ms raw, 2.50x fp32's 8 ms", "")
    assert found["qa-xlmr logits, max |difference|"] == ("0.3", "CONTRADICTS the CPU rehearsal")
    assert found["kws probabilities, max |difference|"][1] == "holds"
    assert found["kws same label"] == ("no", "random weights: near-ties")
    assert found["asr frames with the same argmax (30 s)"][1] == "holds"


def test_the_qa_pair_int8_target_and_a_section_that_did_not_run():
    def answer(int8_s: float) -> dict:
        return {"rows": [{"endpoint": "/answer", "http_p50_s": 0.2, "served_raw_s": int8_s, "fp32_raw_s": 0.4}]}

    results = {"cpu_int8_2_cores": answer(0.2), "cpu_int8_all_cores": answer(0.16), "serving": {"error": "exit 1"}}
    found = verdicts(gpu_report.judge(results, GPU, tiny=False))
    assert found["CPU flags for int8"] == ("avx2, avx512_vnni", "")
    assert found["/answer, 2 cores"] == ("200 ms over HTTP, int8 raw 200 ms = 0.50x the fp32 sum", "not met")
    assert found["/answer, all cores"][1] == "met"  # 0.40x
    assert found["the section's run"] == ("-", "FAILED: exit 1")
