"""Every model an operator makes available for a task beyond its default slots: its *candidates*,
which any tab can compare with each other and with the defaults.

A task's candidates, after its default slots (`slots.table.SLOTS`), are
  1. each folder `<checkpoints>/<task>-<anything>/` (a training run with `--output_dir
     checkpoints/asr-superb`), in name order, and
  2. each entry of `$ASR_CANDIDATES`, `$KWS_CANDIDATES` or `$QA_CANDIDATES`: comma-separated
     `name=source`, a source being a local folder, a hub id or `hub-id@revision`.
Each becomes a `SlotSpec` with that one source, so it loads, fails and reloads as a slot does. The
list is read again whenever a tab or `/status` asks (a listing and a few small JSON files), so a
run that finishes while the app serves is offered without a restart.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path
from typing import Any

from core import settings
from core.checkpoint import METRICS_FILE
from slots import hub
from slots.table import SLOTS, TASK_OF_KIND, TASK_TITLES, SlotSpec

KIND_OF_TASK = {task: kind for kind, task in TASK_OF_KIND.items()}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TRAIN_MODULE = {"asr": "train.asr", "kws": "train.kws", "qa": "train.qa"}
HEADLINE = {"asr": ("wer", "WER"), "kws": ("accuracy", "accuracy"), "qa": ("f1", "F1")}
logger = logging.getLogger(__name__)


def discover(task: str, checkpoints: Path) -> list[SlotSpec]:
    """The task's candidates other than its default slots, as the module docstring lists them."""
    found: list[SlotSpec] = []
    taken = set(SLOTS)
    try:
        folders = sorted(p for p in Path(checkpoints).glob(f"{task}-*") if p.is_dir())
    except OSError:
        folders = []
    for folder in folders:
        if folder.name in taken or not NAME.match(folder.name):
            continue
        taken.add(folder.name)
        found.append(_spec(task, folder.name, "", title(task, folder.name, _metrics(folder))))
    variable = settings.CANDIDATE_VARIABLES[task]
    for name, source in parse_entries(settings.candidate_sources(task)):
        if name in taken:
            logger.warning("$%s: %r is named twice (or is a default slot's name); the later one is ignored",
                           variable, name)  # fmt: skip
            continue
        if not NAME.match(name):
            logger.warning("$%s: %r is not a usable name (letters, digits, '.', '_', '-'); ignored", variable, name)
            continue
        taken.add(name)
        local = Path(source).expanduser()
        metrics = _metrics(local) if local.is_dir() else None
        found.append(_spec(task, name, source, title(task, name, metrics, source)))
    return found


def parse_entries(text: str) -> list[tuple[str, str]]:
    """`a=facebook/wav2vec2-base-960h, /data/asr-seed2` as [(name, source)]: a name left out is
    the hub repository's or the folder's own name."""
    entries = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, equals, source = part.partition("=")
        if not equals:
            name, source = "", part
        name, source = name.strip(), source.strip()
        if not source:
            continue
        if not name:
            remote = hub.parse_source(source)
            name = remote.repo_id.split("/")[-1] if remote and not Path(source).expanduser().is_dir() else ""
            name = name or Path(source).expanduser().name
        entries.append((name, source))
    return entries


def title(task: str, name: str, metrics: dict[str, Any] | None, source: str = "") -> str:
    """A candidate in plain words: its name, what it is, how it was trained, its headline metric
    ("asr-superb: distilhubert, encoder frozen, 5 epochs, seed 42 · test WER 12.3 %")."""
    return f"{name}: {describe(task, metrics, source)}"


def describe(task: str, metrics: dict[str, Any] | None, source: str = "") -> str:
    """What a model is, how it was trained and its headline metric, from its metrics.json."""
    what: list[str] = []
    params = (metrics or {}).get("hyperparameters", {}) if isinstance(metrics, dict) else {}
    if base := params.get("model_name_or_path"):
        what.append(str(base).rstrip("/").split("/")[-1])
    elif source and (remote := hub.parse_source(source)) and not Path(source).expanduser().is_dir():
        what.append(f"{remote.repo_id} from the hub")
    else:
        what.append(f"{TASK_TITLES[task]} model")
    if params.get("head"):
        what.append(f"{params['head']} head")
    if params.get("freeze"):
        what.append(f"{params['freeze']} frozen")
    if params.get("num_train_epochs") is not None:
        what.append(f"{params['num_train_epochs']} epochs")
    if params.get("seed") is not None:
        what.append(f"seed {params['seed']}")
    text = ", ".join(what)
    key, shown = HEADLINE[task]
    final = (metrics or {}).get("final", {}) if isinstance(metrics, dict) else {}
    for split in ("test", "validation", "eval"):
        value = final.get(split, {}).get(key) if isinstance(final.get(split), dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{text} · {split} {shown} {value:.1%}"
    return text


def _spec(task: str, name: str, source: str, shown: str) -> SlotSpec:
    kind = KIND_OF_TASK[task]
    command = f"python -m {TRAIN_MODULE[task]} <config.json> --output_dir checkpoints/{name}"
    return SlotSpec(name, shown, "", "", "", kind, command, source=source)


def _metrics(folder: Path) -> dict[str, Any] | None:
    """The folder's metrics.json for its label only; anything unreadable is left to the load to
    report (`core.checkpoint.read_metrics`). Read again only when the file changed: the list is
    looked for on every `/status`."""
    path = Path(folder) / METRICS_FILE
    try:
        stat = path.stat()
    except OSError:
        return None
    return _read_metrics(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _read_metrics(path: Path, mtime_ns: int, size: int) -> dict[str, Any] | None:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None
