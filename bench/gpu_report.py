"""The next GPU run in one command: the training scripts end to end with the optional machinery's
A/B, the app serving on CUDA against fp32, and int8 on the machine's own CPU. Each section is a
benchmark of bench/ in a process of its own under one time budget; then one table of figures
against their targets, written with the raw results to `--out`.

    python -m bench.gpu_report                    # on a CUDA machine (sizes below; budget 570 s)
    python -m bench.gpu_report --tiny             # the rehearsal: every section at tiny sizes on a CPU
    python -m bench.gpu_report --sections serving cpu_int8   # what the budget left out, next call

Sections:
  training  `bench.train_e2e` on keyword spotting at the real split's size (51,094 clips) and speech
            recognition (`--asr_train` utterances of ~12.7 s): the report's recipe against the
            default (store built, store reused), whole process and training phase; the lean epoch,
            the graphed update and the head's CUDA-graph step each against the run without it.
  serving   `bench.serve_speed`: every endpoint over HTTP on the GPU next to its raw forward, and
            fp16 against fp32 (largest differences; same label and answer span); `bench.live_latency`:
            the Live tab's update on the served model, without and with the voice gate.
  cpu_int8  `bench.serve_speed --device cpu` twice, on 2 cores and on all of them, with the CPU's
            flags: the served QA pair's int8 forward against the fp32 sum (target at most 0.45x).

Exit status: 0 when every check holds (a target not met is a finding, not a failure); 1 when a
result contradicts what the CPU rehearsal holds (runs that train the same steps on the same store
ending at different losses, half precision beyond its tolerance); 2 when a section failed to run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SECTIONS = ("training", "serving", "cpu_int8")
TIMEOUT_S = {"training": 480, "serving": 240, "live": 150, "cpu_int8": 300}
LEAST_S = 60  # a section is not started with less of the budget left
# Training-phase targets (report's recipe / default): reusing the store, and with its first build.
TARGET_REUSED, TARGET_BUILT = 5.0, 3.0
TARGET_QA_INT8 = 0.45  # the served QA pair's int8 forward / the fp32 forwards' sum
# An optional piece of machinery pays when the run with it trains at least this much faster.
PAYS = 1.05
# Half precision against fp32 on random weights (the CPU rehearsal of bf16 measured 0.021, 0.0001
# and 0.989): beyond these a GPU result contradicts it.
HALF_LIMITS = {"logits": 0.1, "probabilities": 0.01, "argmax": 0.95}
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


@dataclass
class Row:
    section: str
    what: str
    figure: str
    target: str = ""
    verdict: str = ""

    @property
    def contradicts(self) -> bool:
        return self.verdict.startswith("CONTRADICTS")


def machine() -> dict:
    """Where the run happened (`core.checkpoint.hardware_info`), the CPU's flags that decide int8
    speed and the commit."""
    from core.checkpoint import hardware_info

    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {**hardware_info(), "cpu_flags": [f for f in FLAGS if f in flags], "commit": commit or None}


def commands(section: str, args: argparse.Namespace, out: Path) -> list[tuple[str, list[str]]]:
    """(name, command) of each process a section runs; each writes `out/<name>.json`."""
    py = [sys.executable, "-m"]
    tiny = ["--tiny"] if args.tiny else []
    if section == "training":
        sizes = [f"{task}={n}" for task, n in (("kws", args.kws_train), ("asr", args.asr_train)) if n]
        extra = ["--work", str(out / "work-e2e"), *(["--train", *sizes] if sizes else [])]
        extra += ["--epochs", str(args.epochs)] if args.epochs else []
        return [("training", [*py, "bench.train_e2e", *tiny, "--tasks", "kws", "asr", *extra])]
    repeat = ["--repeat", str(args.repeat)]
    if section == "serving":  # on a CPU, the GPU path's steps in bf16 (serve_speed's own rehearsal)
        device = ["--device", "cpu", "--precision", "bf16"] if args.tiny else ["--device", "cuda"]
        # The Live tab's update on the served model: one visitor speaking with pauses, gate off and on.
        live = ["--model", "tiny", "--seconds", "6"] if args.tiny else ["--model", "distilhubert", "--seconds", "30"]
        half = ["env", "SERVE_DEVICE=cpu", "SERVE_PRECISION=bf16"] if args.tiny else []
        return [
            ("serving", [*py, "bench.serve_speed", *tiny, *repeat, *device]),
            ("live", [*half, *py, "bench.live_latency", *live]),
        ]
    cpu = [*py, "bench.serve_speed", *tiny, *repeat, "--device", "cpu"]
    if (os.cpu_count() or 1) <= 2:  # all of this machine's cores are the two: one run says both
        return [("cpu_int8_all_cores", cpu)]
    return [("cpu_int8_2_cores", ["taskset", "-c", "0,1", *cpu]), ("cpu_int8_all_cores", cpu)]


def run_section(section: str, args: argparse.Namespace, out: Path, deadline: float) -> dict:
    """Runs a section's processes in turn: {name: results} or {name: {"error": why}}."""
    found = {}
    env = {**os.environ, "ONNX_CACHE": str(out / "onnx-cache")}  # both CPU runs share one export
    for name, command in commands(section, args, out):
        left = deadline - time.monotonic()
        if left < LEAST_S:
            found[name] = {"error": f"not run: {left:.0f} s of the budget left"}
            continue
        timeout = min(TIMEOUT_S.get(name, TIMEOUT_S[section]), left)
        print(f"\n# {name}: {' '.join(command)} (at most {timeout:.0f} s)", flush=True)
        json_path = out / f"{name}.json"
        json_path.unlink(missing_ok=True)
        with open(out / f"{name}.log", "w") as log:
            try:
                code = subprocess.run([*command, "--json", str(json_path)], stdout=log, stderr=subprocess.STDOUT,
                                      env=env, timeout=timeout).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                code = None
        if json_path.exists():  # train_e2e writes after each task: a run cut short keeps those
            found[name] = json.loads(json_path.read_text())
            if code is None:
                found[name]["cut_short"] = f"timed out after {timeout:.0f} s"
        else:
            why = f"timed out after {timeout:.0f} s" if code is None else f"exit status {code}"
            found[name] = {"error": why, "log_tail": (out / f"{name}.log").read_text()[-1500:]}
    return found


def same_loss(a: float | None, b: float | None, relative: float) -> bool:
    return a is not None and b is not None and abs(a - b) <= relative * max(abs(a), abs(b), 1e-12)


def judge_training(result: dict, tiny: bool, cuda: bool) -> list[Row]:
    """The targets, the whole-process ratios beside them, the A/B rows, and the checks: every run
    of a task trains the same steps; the default's runs (one store) end at the same loss, exactly
    on a CPU; the report's way (fp32, live encoder) near them."""
    from bench.train_e2e import AB

    rows = []
    for task, found in result["tasks"].items():
        ratios, runs = found["ratios"], {row["run"]: row for row in found["rows"]}

        def add(what: str, figure: str, target: str, verdict: str = "", task: str = task) -> None:
            rows.append(Row("training", f"{task}: {what}", figure, target, verdict))

        add("clips (train / validation / test)", "/".join(f"{n:,}" for n in found["counts"]), "reported")
        for key, what, target in (
            ("train_phase_reused", "training phase, recipe / default reusing its store", TARGET_REUSED),
            ("train_phase_built", "training phase, recipe / default building its store", TARGET_BUILT),
        ):
            met = "met" if ratios[key] >= target else "not met"
            add(what, f"{ratios[key]}x", f">= {target}x", "not judged: tiny sizes" if tiny else met)
        startup = max(row["start-up"] for row in runs.values())
        whole = f"{ratios['built']}x, {ratios['reused']}x"
        add("whole process, recipe / default (built, reused)", whole, f"reported (start-up up to {startup:.1f} s)")
        for key, what in AB.items():
            if key in ratios:
                add(
                    f"{what} (training phase)",
                    f"{ratios[key]}x",
                    f">= {PAYS}x",
                    "pays" if ratios[key] >= PAYS else "does not pay",
                )
        steps = sorted({row["steps"] for row in runs.values()})
        add("optimizer steps in every run", str(steps), "one number",
            "holds" if len(steps) == 1 else "CONTRADICTS: the runs trained different steps")  # fmt: skip
        losses = [row["last_loss"] for name, row in runs.items() if name != "hw4 recipe"]
        tolerance = 1e-2 if cuda else 1e-6  # GPU kernels may sum in another order from run to run
        same = all(same_loss(losses[0], loss, tolerance) for loss in losses)
        add("last loss of the default's runs", ", ".join(map(str, losses)), f"equal within {tolerance:g}",
            "holds" if same else "CONTRADICTS: one store, other losses")  # fmt: skip
        hw4 = runs["hw4 recipe"]["last_loss"]
        near = same_loss(hw4, losses[0], 0.05 if cuda else 1e-3)
        add("last loss, recipe against default", f"{hw4} / {losses[0]}", "within 5 %" if cuda else "within 0.1 %",
            "holds" if near else "CONTRADICTS: the stored features train another model")  # fmt: skip
    return rows


def judge_serving(result: dict) -> list[Row]:
    rows = []
    for row in result["rows"]:
        ratio = row["ratio_to_fp32"]
        figure = f"{row['http_p50_s'] * 1e3:.0f} ms over HTTP, {row['served_raw_s'] * 1e3:.0f} ms raw"
        if ratio:
            figure += f", {ratio:.2f}x fp32's {row['fp32_raw_s'] * 1e3:.0f} ms"
        rows.append(Row("serving", f"{row['endpoint']} ({row['precision']} on {row['device']})", figure, "reported"))
    for what, value in result.get("half_against_fp32", {}).items():
        if isinstance(value, bool):  # on random weights a near-tie may flip: reported, not judged
            rows.append(Row("serving", what, "yes" if value else "no", "reported", "random weights: near-ties"))
            continue
        kind = next(k for k in HALF_LIMITS if k in what)
        limit = HALF_LIMITS[kind]
        ok = value >= limit if kind == "argmax" else value <= limit
        target = f">= {limit}" if kind == "argmax" else f"<= {limit}"
        rows.append(Row("serving", what, str(value), target, "holds" if ok else "CONTRADICTS the CPU rehearsal"))
    return rows


def judge_live(result: dict) -> list[Row]:
    where = f"{result['precision']}, {result['model']} model"
    rows = []
    for key, gate in (("without_vad", "every chunk"), ("with_vad", "voice gate")):
        row = result[key]
        latency = row["update_latency_s"]
        figure = f"p50 {latency['p50']} s, p95 {latency['p95']} s ({latency['n']} updates)"
        figure += f", heard {row['heard_share']:.0%}"
        if "model_time_over_audio" in row:
            figure += f", model time / audio {row['model_time_over_audio']}"
        rows.append(Row("serving", f"Live update, {gate} ({where})", figure, "reported"))
    return rows


def judge_cpu(results: dict[str, dict], flags: list[str]) -> list[Row]:
    rows = [Row("cpu_int8", "CPU flags for int8", ", ".join(flags) or "none of " + ", ".join(FLAGS), "reported")]
    for name, result in results.items():
        cores = name.removeprefix("cpu_int8_").replace("_", " ")
        for row in result["rows"]:
            if row["endpoint"] == "/status":
                continue
            figure = f"{row['http_p50_s'] * 1e3:.0f} ms over HTTP, int8 raw {row['served_raw_s'] * 1e3:.0f} ms"
            target, verdict = "reported", ""
            if row["endpoint"] == "/answer" and row["fp32_raw_s"]:
                share = row["served_raw_s"] / row["fp32_raw_s"]
                figure += f" = {share:.2f}x the fp32 sum"
                target, verdict = f"<= {TARGET_QA_INT8}x", "met" if share <= TARGET_QA_INT8 else "not met"
            rows.append(Row("cpu_int8", f"{row['endpoint']}, {cores}", figure, target, verdict))
    return rows


def judge(results: dict[str, dict], facts: dict, tiny: bool) -> list[Row]:
    """Every figure and check of the sections that ran; a section's failure is a row of its own."""
    cuda = facts.get("gpu") is not None  # (hardware_info names a GPU only where there is one)
    judges = {"training": lambda r: judge_training(r, tiny, cuda), "serving": judge_serving, "live": judge_live}
    rows, cpu = [], {}
    for name, result in results.items():  # in the sections' order
        if "error" in result:
            why = result["error"] + (f": ...{result['log_tail'][-300:]}" if "log_tail" in result else "")
            rows.append(Row(name, "the section's run", "-", "runs", f"FAILED: {why}"))
            continue
        if "cut_short" in result:
            rows.append(Row(name, "the section's run", "-", "runs", f"cut short ({result['cut_short']}): partial"))
        if name in judges:
            rows += judges[name](result)
        elif name.startswith("cpu_int8"):
            cpu[name] = result
    if cpu:
        rows += judge_cpu(cpu, facts["cpu_flags"])
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| section | what | figure | target | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {r.section} | {r.what} | {r.figure} | {r.target} | {r.verdict} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, serving rehearsed in bf16 on the CPU")
    parser.add_argument("--budget_s", type=float, default=570, help="wall time for all sections together")
    parser.add_argument("--kws_train", type=int, help="keyword training clips (default 51,094: the real split's)")
    parser.add_argument("--asr_train", type=int, help="ASR training utterances of ~12.7 s (default 2,000: 7 h)")
    parser.add_argument("--epochs", type=float, help="instead of the configs' epochs (a shorter rehearsal)")
    parser.add_argument("--repeat", type=int, default=7, help="calls per endpoint in the serving sections")
    parser.add_argument("--out", type=Path, default=Path("outputs/gpu-report"))
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeat = min(args.repeat, 2)
    else:
        args.kws_train, args.asr_train = args.kws_train or 51_094, args.asr_train or 2_000
    deadline = time.monotonic() + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    facts = machine()
    print(f"machine: {facts}", flush=True)
    results: dict[str, dict] = {}
    for section in args.sections:
        results.update(run_section(section, args, args.out, deadline))
    rows = judge(results, facts, args.tiny)
    report = table(rows)
    print("\n" + report, flush=True)
    (args.out / "report.md").write_text(f"`{' '.join(sys.argv)}` on {facts}\n\n{report}\n")
    (args.out / "report.json").write_text(
        json.dumps({"machine": facts, "rows": [asdict(r) for r in rows], "results": results}, indent=1)
    )
    if any(r.verdict.startswith("FAILED") for r in rows):
        return 2
    return 1 if any(r.contradicts for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
