"""The models the learning tests train from scratch (the `learned_asr`, `learned_kws` and
`learned_qa` fixtures), each through the real training script on data the tests synthesise.

The suite trains every model its tests will need as soon as it knows them (`Learning`), side by
side in background processes, while the tests that need none run. Each process runs
`python -m tests.learned TASK ROOT` (its threads from `OMP_NUM_THREADS`) and leaves its log in
`ROOT/learn.log`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT

# Four utterances without doubled letters: one spoken /l/ in "shells" must become "l, blank, l",
# which a tiny model memorises only sometimes (repeat handling is tested in test_long_audio.py).
ASR_SENTENCES = (0, 1, 3, 5)
# Evaluation one utterance at a time, as the app sees it: with group-norm convolutions, padding
# in a batch shifts the features slightly, and a barely-learnt model can then pass the metric
# but miss a letter when serving. 1,000 steps leave a margin (CER 0 is reached near step 250).
ASR_LEARN = [
    "--freeze", "none", "--mask_time_prob", "0", "--max_steps", "1000", "--warmup_steps", "50",
    "--learning_rate", "1e-3", "--max_grad_norm", "1.0", "--per_device_train_batch_size", "4",
    "--per_device_eval_batch_size", "1", "--eval_steps", "250", "--logging_steps", "50",
]  # fmt: skip
QA_LEARN = [
    "--max_steps", "800", "--eval_steps", "400", "--logging_steps", "100", "--warmup_steps", "20",
    "--per_device_train_batch_size", "4", "--learning_rate", "1e-3",
]  # fmt: skip
TASKS = ("asr", "kws", "qa")
LEARN_TIMEOUT_S = 600


def learn_asr(root: Path) -> tuple[Path, Path]:
    """A tiny Hubert trained from scratch until it transcribes its 4 utterances: the root (with
    `librispeech/` it learned from) and its checkpoints folder."""
    from scripts.make_smoke_data import SENTENCES, librispeech_tree, tiny_hubert
    from train import asr as train_asr

    utterances = [SENTENCES[i] for i in ASR_SENTENCES]
    librispeech_tree(
        root / "librispeech", {"train-clean-100": utterances, "dev-clean": utterances, "test-clean": utterances}
    )
    tiny_hubert(root / "encoder")
    checkpoints = root / "checkpoints"
    train_asr.main(
        ["train/configs/asr_smoke.json", "--model_name_or_path", str(root / "encoder")]
        + ["--data_dir", str(root / "librispeech"), "--output_dir", str(checkpoints / "asr")]
        + ["--run_dir", str(root / "run"), *ASR_LEARN]
    )
    return root, checkpoints


def learn_qa(root: Path) -> tuple[Path, Path]:
    """Tiny DistilBERT (WordPiece) and XLM-R (Unigram) trained by train.qa on 10 questions, 4 of
    them unanswerable: the root (with `squad_v2.json`) and the checkpoints folder."""
    from scripts.make_smoke_data import qa_corpus, squad_json, tiny_qa
    from train import qa as train_qa

    data = root / "squad_v2.json"
    data.write_text(json.dumps(squad_json()))
    checkpoints = root / "checkpoints"
    for kind in ("distilbert", "xlmr"):
        tiny_qa(root / f"base-{kind}", kind, qa_corpus())
        train_qa.main(
            [f"train/configs/qa_{kind}_smoke.json", "--model_name_or_path", str(root / f"base-{kind}")]
            + ["--train_file", str(data), "--validation_file", str(data)]
            + ["--output_dir", str(checkpoints / f"qa-{kind}"), "--run_dir", str(root / f"run-{kind}"), *QA_LEARN]
        )
    return root, checkpoints


def learn(task: str, root: Path) -> tuple[Path, Path]:
    from tests import kws_learned

    return {"asr": learn_asr, "kws": kws_learned.learn, "qa": learn_qa}[task](root)


class Learning:
    """The learned models of one test session. `start` trains those asked for side by side, each
    in a process of its own in the CPU's idle class, on what the other tests leave of the CPU
    (`tests/conftest.py` starts them once the session's tests are known and runs the tests that
    need them last); `result` waits for one and returns (root, checkpoints), or fails with the
    end of its log."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, tasks: set[str]) -> None:
        new = sorted(set(tasks) - set(self.running))
        # One thread each, whichever tests were selected: tiny models gain little from a second
        # thread, three train faster side by side than one after the other, and the thread count
        # moves a kernel's sums (AMD EPYC): learned alone on two threads, the keyword model made
        # `test_kws_live.py` fail (its per-keyword threshold box never showed); on one it passes.
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        for task in new:
            root = self.base / task
            root.mkdir(parents=True, exist_ok=True)
            with open(root / "learn.log", "w") as log:
                self.running[task] = subprocess.Popen(
                    [sys.executable, "-m", "tests.learned", task, str(root)],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

    def result(self, task: str) -> tuple[Path, Path]:
        self.start({task})
        process, root = self.running[task], self.base / task
        try:
            code: int | str = process.wait(timeout=LEARN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            code = f"killed after {LEARN_TIMEOUT_S} s"
        if code != 0:
            raise RuntimeError(f"learning {task} failed ({code}):\n" + (root / "learn.log").read_text()[-4000:])
        return root, root / "checkpoints"

    def close(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def main(argv: list[str]) -> None:
    # The tests running meanwhile come first: the idle class runs only where they leave a core
    # free, and yields it the moment one of theirs wakes (espeak-ng's processes inherit it).
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    task, root = argv
    start = time.perf_counter()
    learn(task, Path(root))
    print(f"learned {task} in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
