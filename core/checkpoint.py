"""The checkpoint contract between `train/` (writer) and the app (reader).

A checkpoint is a folder that `from_pretrained` loads as it is:

    checkpoints/<slot>/
        config.json              model config, label maps (id2label/label2id) included
        model.safetensors        weights; pickled *.bin weights are refused
        preprocessor_config.json / tokenizer files / vocab.json   processor or tokenizer
        metrics.json             see `Metrics`
        examples/                optional: the final evaluation per example (core/examples.py)
        README.md                the model card: hub metadata (model-index = metrics.json), recipe

A checkpoint is published atomically (`publish`): it is written into a hidden folder beside the
target and renamed into place only once complete, so a reader never sees half a checkpoint and a
crashed run leaves the previous one untouched.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.errors import json_kind
from core.examples import ExampleSet, write_examples

METRICS_FILE = "metrics.json"
WEIGHTS_FILE = "model.safetensors"
SCHEMA_VERSION = 1
_HOST = platform.node() or "localhost"  # in staging names: a shared folder may hold several machines' runs


@dataclass
class Metrics:
    """What `metrics.json` holds. Every task writes the same top-level keys."""

    task: str  # "asr", "kws" or "qa"
    final: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> metric -> value
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per log/eval step
    dataset_sizes: dict[str, int] = field(default_factory=dict)  # split -> examples
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0
    hardware: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific (class weights, thresholds)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION


def hardware_info() -> dict[str, Any]:
    """Where a run happened, for `metrics.json`."""
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def write_metrics(folder: Path, metrics: Metrics) -> Path:
    """Write `metrics` as `metrics.json` in `folder`; returns its path."""
    path = Path(folder) / METRICS_FILE
    path.write_text(json.dumps(asdict(metrics), indent=2, default=_json_default) + "\n")
    return path


class MetricsError(ValueError):
    """A `metrics.json` that exists but is not what `Metrics` describes; the message names the file
    and what is wrong with it (never the folder: it may reach a visitor)."""


# Sections of `Metrics` a reader relies on, with the JSON type each must have.
_SECTIONS: dict[str, type | tuple[type, ...]] = {
    "task": str,
    "final": dict,
    "history": list,
    "dataset_sizes": dict,
    "hyperparameters": dict,
    "hardware": dict,
    "extra": dict,
    "wall_time_s": (int, float),
}
# Numbers inside `extra` that the app computes with.
_EXTRA_NUMBERS = ("null_score_diff_threshold",)


def read_metrics(folder: Path) -> dict[str, Any] | None:
    """The checkpoint's metrics, or None when the folder has none (e.g. a hub model).

    Raises:
        MetricsError: the file is not JSON, not an object, or a section has the wrong type.
    """
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise MetricsError(f"{METRICS_FILE} is not UTF-8 text") from err
    except (json.JSONDecodeError, RecursionError) as err:
        where = f" (line {err.lineno}, column {err.colno})" if isinstance(err, json.JSONDecodeError) else ""
        raise MetricsError(f"{METRICS_FILE} is not valid JSON{where}") from err
    check_metrics(metrics)
    return metrics


def check_metrics(metrics: Any) -> None:
    """Raise `MetricsError` unless `metrics` has the shape `Metrics` writes (absent sections are
    allowed: a hand-written file may hold only some)."""
    if not isinstance(metrics, dict):
        raise MetricsError(f"{METRICS_FILE} holds {json_kind(metrics)}, not an object")
    for key, kind in _SECTIONS.items():
        if key in metrics and (not isinstance(metrics[key], kind) or isinstance(metrics[key], bool)):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            raise MetricsError(f"{METRICS_FILE}: '{key}' is {json_kind(metrics[key])}, not {json_kind(kinds[0])}")
    for split, values in metrics.get("final", {}).items():
        if not isinstance(values, dict):
            raise MetricsError(f"{METRICS_FILE}: 'final.{split}' is {json_kind(values)}, not an object")
    for key in _EXTRA_NUMBERS:
        value = metrics.get("extra", {}).get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise MetricsError(f"{METRICS_FILE}: 'extra.{key}' is {json.dumps(value)[:40]}, not a number")


def validate(folder: Path) -> None:
    """Raise ValueError unless `folder` fulfils the contract."""
    folder = Path(folder)
    missing = [name for name in ("config.json", WEIGHTS_FILE, METRICS_FILE) if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"checkpoint {folder} lacks {', '.join(missing)}")
    pickled = sorted(p.name for p in folder.glob("*.bin") if p.name != "training_args.bin")
    if pickled:
        raise ValueError(f"checkpoint {folder} holds pickled weights {pickled}; only safetensors are allowed")
    metrics = read_metrics(folder) or {}
    absent = [key for key in ("task", "final", "history", "dataset_sizes", "hyperparameters") if key not in metrics]
    if absent:
        raise ValueError(f"{folder / METRICS_FILE} lacks {', '.join(absent)}")


@contextmanager
def publish(target: Path, check: Callable[[Path], None] | None = None, replace: bool = True) -> Iterator[Path]:
    """Yield a staging folder beside `target`; on success, check it (default: the checkpoint
    contract) and swap it into place.

    If the body raises (or the process dies) the staging folder is discarded and whatever was at
    `target` before is untouched. With `replace=False` (for folders named by their contents) a
    `target` that exists by then, published meanwhile by another process or machine, stays and the
    staging folder is dropped.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(target)
    staging = target.parent / f".{target.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}@{_HOST}"
    staging.mkdir()
    try:
        yield staging
        (check or validate)(staging)
        if replace:
            _swap(staging, target)
        else:
            _move_in_unless_there(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_checkpoint(
    target: Path,
    model: Any,
    processor: Any,
    metrics: Metrics,
    command: str | None = None,
    examples: ExampleSet | None = None,
) -> Path:
    """Publish a checkpoint atomically (see `publish`).

    Args:
        target: the checkpoint folder, replaced only once the new one is complete.
        model: a transformers model (`save_pretrained`, safetensors).
        processor: its tokenizer, feature extractor or processor.
        metrics: what `metrics.json` records (scores, history, sizes, hyperparameters).
        command: the command that trained it, for the model card's recipe.
        examples: per-example results of the final evaluation (core/examples.py); their summary
            and the time spent writing them go into `metrics.extra["examples"]`.

    Returns:
        `target`.
    """
    from core.model_card import CARD_FILE, render

    with publish(target) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        if examples is not None:
            started = time.perf_counter()
            summary = write_examples(staging, examples)
            metrics.extra["examples"] = {**summary, "write_s": round(time.perf_counter() - started, 3)}
        write_metrics(staging, metrics)
        card = render(
            json.loads((staging / METRICS_FILE).read_text()), Path(target).name, model.config.model_type, command
        )
        (staging / CARD_FILE).write_text(card, encoding="utf-8")
    return Path(target)


def folder_size(folder: Path) -> int:
    """Bytes of every file under `folder`."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _remove_orphans(target: Path) -> None:
    """Delete staging folders left by runs that died on this machine (their pid is gone); a live
    run's stay, and so do other machines' (a shared file system: their pids mean nothing here)."""
    for folder in target.parent.glob(f".{target.name}.staging-*"):
        name, _, host = folder.name.partition("@")
        pid = name.rsplit("-", 2)[-2]
        if host in ("", _HOST) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _swap(staging: Path, target: Path) -> None:
    # Two renames on one file system: the old folder moves aside, the new one moves in. A reader
    # sees the old checkpoint, the new one, or (for microseconds) none; never a mixture.
    retired = None
    if target.exists():
        retired = target.parent / f".{target.name}.retired-{uuid.uuid4().hex[:8]}"
        os.rename(target, retired)
    os.rename(staging, target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _move_in_unless_there(staging: Path, target: Path) -> None:
    try:
        os.rename(staging, target)  # a folder renames onto an empty folder only
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
