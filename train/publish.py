"""The end of a training run: its checkpoint published atomically by the main process, with a
metrics.json (the final evaluation, the training history, the arguments as trained) and the
command that started the run, for the model card."""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.checkpoint import Metrics, hardware_info, save_checkpoint
from core.examples import ExampleSet
from train.common import GroupedTrainer, Run

logger = logging.getLogger(__name__)


def history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trainer logs as rows: training loss and evaluation metrics per step (runtime noise dropped)."""
    rows = []
    for entry in log_history:
        row = {
            k: v
            for k, v in entry.items()
            if not k.endswith(("_runtime", "_per_second", "_flos")) and k not in ("total_flos", "grad_norm")
        }
        if len(row) > 2:  # more than step and epoch
            rows.append(row)
    return rows


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The command that started this run (`python -m train.asr config.json --flag ...`), for the
    model card's recipe."""
    argv = sys.argv[1:] if argv is None else argv
    return " ".join([f"python -m {module}", *map(shlex.quote, argv)])


def publish_run(
    run: Run,
    trainer: GroupedTrainer,
    processor: Any,
    *,
    model: Any,
    task: str,
    final: dict[str, dict[str, Any]],
    sizes: dict[str, int],
    params: dict[str, Any],
    command: str,
    extra: dict[str, Any] | None = None,
    examples: ExampleSet | None = None,
) -> Path:
    """Write `model` (with its trained head) in the checkpoint contract to the run's target
    atomically, with a model card that records `command`, and the per-example results if given;
    only the main process writes."""
    if trainer.is_world_process_zero():
        metrics = Metrics(
            task=task,
            final=final,
            history=history(trainer.state.log_history),
            dataset_sizes=sizes,
            hyperparameters=params,
            wall_time_s=round(time.time() - run.started, 2),
            hardware=hardware_info(),
            extra={
                **(extra or {}),
                "phases_s": dict(run.phases),
                "training_loop": trainer.loop_used,
            },
        )
        save_checkpoint(run.target, model.to("cpu"), processor, metrics, command=command, examples=examples)
        logger.info("published %s", run.target)
    trainer.accelerator.wait_for_everyone()  # the other processes end once the checkpoint is in place
    return run.target
