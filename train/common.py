"""What every training script shares to start a run and train: argument parsing (JSON config +
command-line overrides), logging and the seed, the run's record, and length-grouped batches.
Publishing its checkpoint is `train/publish.py`."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
import transformers
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PredictionOutput

from core import memory
from core.errors import InputError
from core.examples import AUDIO_CAP_MB
from train.lean_loop import LeanLoop

logger = logging.getLogger(__name__)


@dataclass
class RunArguments:
    """Where the run writes, its precision, and `subset` (the course report's `WholeDataset` switch:
    how many examples of each split to train and evaluate on)."""

    run_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder for the trainer's intermediate checkpoints (for --resume). Default: "
            "outputs/<name of output_dir>. The published checkpoint goes to output_dir."
        },
    )
    subset: list[int] | None = field(
        default=None,
        metadata={
            "help": "Load only the first N examples of each split (train, validation[, test]), in the "
            "dataset's order (the course report's WholeDataset list). Omitted = everything."
        },
    )
    resume: bool = field(default=False, metadata={"help": "Resume from the last checkpoint in run_dir."})
    examples: bool = field(
        default=True,
        metadata={
            "help": "Store the final evaluation's per-example results (and audio worth hearing) with the "
            "checkpoint, for the app's error analysis (core/examples.py)."
        },
    )
    examples_audio_mb: float = field(
        default=AUDIO_CAP_MB, metadata={"help": "Cap on the audio stored with the per-example results, in MB."}
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "'auto': bf16 on a GPU that has it, else fp16 on GPU, fp32 on CPU. Or fp32/bf16/fp16.",
            "choices": ["auto", "fp32", "bf16", "fp16"],
        },
    )


@dataclass
class SpeechModelArguments:
    """The pretrained speech encoder and what of it stays frozen (both speech scripts)."""

    model_name_or_path: str = field(
        default="ntu-spml/distilhubert",
        metadata={"help": "Pretrained encoder: a hub id or a local save_pretrained folder."},
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the encoder."})
    freeze: str = field(
        default="encoder",
        metadata={
            "help": "What stays frozen: 'encoder' (only the new head trains, as in the course report's recipe), "
            "'feature_encoder' (the conv front end), or 'none'.",
            "choices": ["encoder", "feature_encoder", "none"],
        },
    )


def apply_freeze(model: Any, freeze: str) -> Any:
    if freeze == "encoder":
        for p in model.base_model.parameters():
            p.requires_grad = False
    elif freeze == "feature_encoder":
        model.freeze_feature_encoder()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("model: %d parameters, %d trainable (freeze=%s)", model.num_parameters(), trainable, freeze)
    return model


@dataclass
class Run:
    """A training run as parsed: the script's arguments record (a dataclass of its argument
    dataclasses, `run` its RunArguments), the run's one TrainingArguments (writing to run_dir,
    precision resolved, and what the Trainer's inputs change: `change_training_args`), where the
    checkpoint is published and when the run started."""

    arguments: Any
    training_args: TrainingArguments
    target: Path
    started: float
    phases: dict[str, float] = field(default_factory=dict)  # seconds per numbered step, for metrics.json

    def argument_objects(self) -> list[Any]:
        """The script's argument dataclasses, in the record's order."""
        return [getattr(self.arguments, f.name) for f in fields(self.arguments)]

    def change_training_args(self, changes: dict[str, Any]) -> None:
        """What the Trainer's inputs need set otherwise (stored features are read without loader
        workers, ...): the run's TrainingArguments are replaced by a copy with `changes`, logged."""
        if changes:
            logger.info("training arguments for these inputs: %s", changes)
            self.training_args = replace(self.training_args, **changes)

    def hyperparameters(self) -> dict[str, Any]:
        """What metrics.json records of the arguments, as trained."""
        return hyperparameters(self.training_args, *self.argument_objects())

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a step of the script (data, features, train, evaluate): users feel the whole run's
        wall time, and these say where it goes (bench/train_e2e.py prints them)."""
        tick = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = round(self.phases.get(name, 0.0) + time.perf_counter() - tick, 3)

    @contextmanager
    def reading_data(self) -> Iterator[None]:
        """The "data" phase. Data that cannot be used (a folder or file that is not there, a file
        in another format) ends the run with one line naming it and exit code 2, as a bad flag
        does: a traceback through our readers would tell the operator nothing more."""
        with self.phase("data"):
            try:
                yield
            except (FileNotFoundError, InputError) as err:
                print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
                raise SystemExit(2) from err


def begin(arguments: type, argv: Sequence[str] | None) -> Run:
    """Parse the script's `arguments` record (a dataclass whose fields are its argument
    dataclasses, one of them `run: RunArguments`) with TrainingArguments, set up logging and the
    seed."""
    started = time.time()
    types = typing.get_type_hints(arguments)
    *objects, parsed = parse_args([*(types[f.name] for f in fields(arguments)), TrainingArguments], argv)
    record = arguments(*objects)
    training_args = setup(parsed, record.run, *objects)
    run = Run(record, training_args, Path(parsed.output_dir), started)
    memory.resume_collection()  # paused for the imports (train/__init__.py)
    # Before this: the interpreter and the imports (torch, transformers' Trainer), a few seconds
    # of every run that no training setting changes.
    run.phases["start-up"] = round(process_age() - (time.time() - started), 3)
    run.phases["setup"] = round(time.time() - started, 3)
    return run


def process_age() -> float:
    """Seconds since this process started. On Linux from its start in clock ticks since boot, read
    against the boot clock: psutil's `create_time` adds the boot time in whole seconds, up to 1 s
    off (the tiny CI bench showed start-up longer than the whole process)."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start = int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start
    except (OSError, IndexError, ValueError, AttributeError):
        return time.time() - psutil.Process().create_time()


def parse_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple:
    """`python -m train.x config.json --key value ...`: the JSON file sets the parser's defaults
    (typed as written: numbers, lists, booleans and null stay what they are), flags override.

    The dataclasses' own defaults apply where neither sets a value."""
    given = sys.argv[1:] if argv is None else argv
    argv = list(given)
    parser = HfArgumentParser(dataclass_types)
    if launched_processes() > 1 and not torch.cuda.is_available():
        # Several processes on CPU (torchrun, accelerate launch): accelerate makes them one DDP job
        # only when told the run is on the CPU (`use_cpu`); on GPUs it picks NCCL itself. A config
        # or flag may still name another backend.
        parser.set_defaults(ddp_backend="gloo", use_cpu=True)
    if argv and argv[0].endswith(".json"):
        config = read_config(parser, argv[0])
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(config) - known)
        if unknown:
            parser.error(f"{argv[0]} sets unknown arguments: {', '.join(unknown)}")
        parser.set_defaults(**config)
        argv = argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)


def launched_processes() -> int:
    """How many processes the launcher (torchrun, accelerate launch) started: 1 without one."""
    from accelerate.utils import get_int_from_env

    return max(1, get_int_from_env(["WORLD_SIZE"], 1))


def read_config(parser: HfArgumentParser, path: str) -> dict[str, Any]:
    """A JSON config's settings, or the parser's one-line error (as for a bad flag) saying why not."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        parser.error(f"no config file {path}")
    except (OSError, UnicodeDecodeError) as err:
        parser.error(f"{path} could not be read: {err}")
    except json.JSONDecodeError as err:
        parser.error(f"{path} is not valid JSON ({err.msg}, line {err.lineno}, column {err.colno})")
    if not isinstance(config, dict):
        parser.error(f"{path} holds a JSON {type(config).__name__}, not an object of argument names and values")
    return config


def cache_per_step_package_checks() -> None:
    """accelerate asks `is_lomo_available()` in every backward and clipping call and twice in every
    optimizer step, and each answer is a search of the installed packages (find_spec + metadata,
    ~0.2 ms): four times a step, ~0.9 ms of Python against a ~1 ms head step on stored features
    (profiled, 330-step KWS run on the CPU box: 1,320 calls). The answer cannot change while the
    process runs, so it is asked once; both modules hold their own reference to the function."""
    import accelerate.accelerator
    import accelerate.optimizer

    for module in (accelerate.accelerator, accelerate.optimizer):
        check = getattr(module, "is_lomo_available", None)
        if check is not None and not hasattr(check, "cache_info"):
            module.is_lomo_available = functools.lru_cache(maxsize=1)(check)


def setup(training_args: TrainingArguments, run: RunArguments, *arg_objects: Any) -> TrainingArguments:
    """Logging (every argument object in `arg_objects`, `run` among them), seed, and trainer
    arguments that write to run_dir (not to the published folder)."""
    cache_per_step_package_checks()
    level = logging.INFO if training_args.should_log else logging.WARNING
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=level,
    )
    transformers.utils.logging.set_verbosity_warning()
    for obj in arg_objects:
        logger.info("%s: %s", type(obj).__name__, asdict(obj))
    transformers.set_seed(training_args.seed)
    run_dir = run.run_dir or str(Path("outputs") / Path(training_args.output_dir).name)
    precision = run.precision
    if precision == "auto":
        precision = "fp32"
        if torch.cuda.is_available():
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    logger.info("precision: %s", precision)
    resolved = replace(training_args, output_dir=run_dir, bf16=precision == "bf16", fp16=precision == "fp16")
    backend = ""
    if resolved.world_size > 1:
        backend = f", {resolved.ddp_backend or 'default'} backend"
    logger.info(
        "%d process(es)%s; global batch %d (per device %d x processes x accumulation %d), learning rate %g",
        resolved.world_size,
        backend,
        global_batch(resolved),
        resolved.per_device_train_batch_size,
        resolved.gradient_accumulation_steps,
        resolved.learning_rate,
    )
    return resolved


def global_batch(training_args: TrainingArguments) -> int:
    """Examples per optimizer step, over every process (and every GPU a process drives)."""
    return training_args.train_batch_size * training_args.world_size * training_args.gradient_accumulation_steps


class GroupedTrainer(LeanLoop):
    """A Trainer whose datasets may carry a `lengths` list, so `group_by_length` batches need no
    pass over the (lazily decoded) audio to find out how long each example is; a head on stored
    features trains in the lean epoch (train/lean_loop.py)."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = getattr(dataset, "lengths", None)
        if self.args.train_sampling_strategy == "group_by_length" and lengths is not None:
            # Grouped by the global batch: every process draws the same order and the launcher deals
            # its batches out in turn, so N processes see what one accumulating N batches would.
            return LengthGroupedSampler(global_batch(self.args), lengths=lengths)
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        lengths = getattr(eval_dataset, "lengths", None)
        if self.args.train_sampling_strategy == "group_by_length" and lengths is not None:
            return LengthGroupedSampler(
                self.args.eval_batch_size, lengths=lengths, generator=torch.Generator().manual_seed(self.args.seed)
            )
        return super()._get_eval_sampler(eval_dataset)

    def predict_in_order(
        self, dataset: Any, ignore_keys: Any = None, metric_key_prefix: str = "test"
    ) -> PredictionOutput:
        """`predict`, with predictions and labels in the dataset's order. A length-grouped eval
        sampler permutes the examples; its generator is seeded afresh for every loader, so a fresh
        sampler yields the very order `predict` used, and its inverse puts the rows back."""
        output = self.predict(dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        sampler = self._get_eval_sampler(dataset)
        if not isinstance(sampler, LengthGroupedSampler):
            return output
        back = np.argsort(np.fromiter(iter(sampler), dtype=np.int64, count=len(dataset)))

        def reorder(value: Any) -> Any:
            if isinstance(value, (tuple, list)):
                return type(value)(reorder(v) for v in value)
            return None if value is None else value[back]

        return PredictionOutput(reorder(output.predictions), reorder(output.label_ids), output.metrics)


def every_parameter_used(training_args: TrainingArguments) -> dict[str, Any]:
    """The TrainingArguments change for a model whose trainable parameters all take part in every
    step (a head on a frozen encoder, a QA model): DDP's default search for unused ones is one more
    graph traversal per step, and a warning from torch on every process. Unchanged when set."""
    if training_args.world_size > 1 and training_args.ddp_find_unused_parameters is None:
        return {"ddp_find_unused_parameters": False}
    return {}


def hyperparameters(training_args: TrainingArguments, *arg_objects: Any) -> dict[str, Any]:
    keep = (
        "learning_rate",
        "weight_decay",
        "warmup_steps",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "num_train_epochs",
        "max_steps",
        "lr_scheduler_type",
        "max_grad_norm",
        "seed",
        "bf16",
        "fp16",
        "eval_steps",
        "train_sampling_strategy",
        "dataloader_num_workers",
    )  # as trained: stored features are read without workers
    params = {name: getattr(training_args, name) for name in keep}
    params["processes"] = training_args.world_size
    params["global_batch_size"] = global_batch(training_args)
    for obj in arg_objects:
        params.update({f.name: getattr(obj, f.name) for f in fields(obj)})
    return json.loads(json.dumps(params, default=str))


def split_metrics(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """`trainer.evaluate(..., metric_key_prefix=prefix)` output without the prefix and timings."""
    return {
        k.removeprefix(f"{prefix}_"): v
        for k, v in metrics.items()
        if not k.endswith(("_runtime", "_per_second")) and k != "epoch"
    }
