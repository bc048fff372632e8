"""One source of a slot's model (a local folder or a hub repository) turned into a model ready to
serve: reading it, exporting it for serving, its metrics and warnings, and what a visitor may read
about where it came from. `slots/slot.py` decides which sources to try, when, and in which thread."""

from __future__ import annotations

import logging
import os
import stat
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.checkpoint import MetricsError, folder_size, read_metrics
from core.errors import NoModelFiles
from slots import hub, loading, placement
from slots.errors import short_error
from slots.table import SlotSpec
from speech import audio

logger = logging.getLogger("slots.slot")  # one log for the slots and their sources

# A loader's progress: `phase(state, progress)` moves the slot to "resolving", "downloading" (with
# the download's progress) or "loading".
Phase = Callable[..., None]


# Every model serving now, by key: a `LoadedModel` pickles as its key (`LoadedModel.__reduce__`), so
# a ZeroGPU worker, forked from the app, finds the same model instead of receiving a copy.
_SERVING: weakref.WeakValueDictionary[int, LoadedModel] = weakref.WeakValueDictionary()


def served(key: int) -> LoadedModel:
    """The model that pickled as `key`, in this process or one forked from it."""
    return _SERVING[key]


@dataclass
class LoadedModel:
    """A model ready to serve, with what the status endpoint reports about it."""

    model: Any
    processor: Any  # feature extractor, processor or tokenizer
    source: str  # as configured: a folder or a hub id (operator detail)
    path: Path  # local folder the weights came from
    device: str
    load_time_s: float
    metrics: dict[str, Any] | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)  # earlier sources that failed
    precision: str = "fp32 (torch, cpu)"
    label: str = ""  # where the model comes from, fit for a visitor: "checkpoint asr", a hub id
    warnings: list[str] = field(default_factory=list)  # e.g. a metrics.json that was ignored
    # The sources up to the one it came from, as they were when its load began (`Slot.origins`):
    # Reload loads again only when they differ.
    origin: tuple = ()
    commit: str | None = None  # the hub commit it was read at (its snapshot folder); None for a folder
    live_model: Any = None  # what Live runs: `model`, but on ZeroGPU a CPU copy (`slots.placement`)
    upgrade: Any = None  # the int8 export still to come (`slots.placement.Placement.upgrade`)
    export: dict[str, Any] | None = None  # what that export cost, once done
    parameters: int = field(init=False)
    size_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.live_model = self.model if self.live_model is None else self.live_model
        self.parameters = getattr(self.model, "source_parameters", None) or sum(
            p.numel() for p in self.model.parameters()
        )
        self.size_bytes = folder_size(self.path)
        _SERVING[id(self)] = self

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return served, (id(self),)


def folder_fingerprint(source: str) -> tuple | None:
    """What Reload compares for one source: a local folder's identity and its files' sizes and
    times (train/ writes a checkpoint as a new folder swapped in whole: core/checkpoint.py); None
    for a hub id or a folder that is not there. A few stat calls: cheap enough for any visitor."""
    path = Path(source).expanduser()
    try:
        folder = path.stat()
        if not stat.S_ISDIR(folder.st_mode):
            return None
        with os.scandir(path) as entries:
            files = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file())
    except OSError:
        return None
    return folder.st_ino, folder.st_mtime_ns, tuple(files)


def load_source(spec: SlotSpec, label: str, source: str, phase: Phase, attempts: list[dict[str, str]]) -> LoadedModel:
    """The model at `source` (`label`: its place in the slot's order), ready to serve; `attempts`:
    the sources that failed before it."""
    path = Path(source).expanduser()
    remote = hub.parse_source(source) if label != "checkpoint" and not path.is_dir() else None
    commit = moved = None
    if remote is None:
        if not path.is_dir():
            plain = "not trained yet" if label == "checkpoint" else "no such folder"
            raise NoModelFiles(f"no folder at {path}", plain)
        phase("loading")
        model, processor = loading.from_pretrained(spec.kind, path)
    else:
        model, processor, path, moved = _from_hub_or_newest(spec, remote, source, phase)
        commit = path.name  # huggingface_hub's snapshot folders are named by their commit
    placed = placement.place(spec.kind, model.eval(), path)
    if spec.kind != "question-answering":
        audio.prepare_resampling()
    metrics, warnings = None, ([moved] if moved else [])
    try:
        metrics = read_metrics(path)
    except MetricsError as err:  # the model still serves; the tab and status say what is wrong
        warnings.append(f"{err}; it is ignored")
        logger.warning("slot %s: %s in %s", spec.name, err, path)
    label = visitor_label(spec, label, source)
    return LoadedModel(
        placed.model, processor, source, path, placed.device, 0.0, metrics, list(attempts), placed.precision, label,
        warnings, commit=commit, live_model=placed.live, upgrade=placed.upgrade,
    )  # fmt: skip


def visitor_label(spec: SlotSpec, label: str, source: str) -> str:
    """Where a model comes from, in words a visitor may read: a hub id is public, a server
    folder is not ("checkpoint asr", "$ASR_MODEL (a local folder)")."""
    if label == "checkpoint":
        return f"checkpoint {spec.name}"
    if hub.parse_source(source) is not None and not Path(source).expanduser().is_dir():
        return source
    return f"{label} (a local folder)"


def failed_attempt(spec: SlotSpec, label: str, source: str, err: Exception) -> dict[str, str]:
    """One failed source: the full error for the operator (also logged), a plain reason."""
    logger.warning("slot %s: %s %s failed: %s", spec.name, label, source, err)
    if isinstance(err, NoModelFiles):
        reason = err.plain
    else:
        reason = hub.plain_reason(err) or (
            "a package it needs is not installed on this server"
            if isinstance(err, ImportError)
            else "its files could not be loaded"
        )
    shown = visitor_label(spec, label, source)
    return {"source": f"{label} {source}", "error": short_error(err), "label": shown, "reason": reason}


def _from_hub_or_newest(
    spec: SlotSpec, remote: hub.HubSource, source: str, phase: Phase
) -> tuple[Any, Any, Path, str | None]:
    """`_from_hub`, and a warning (else None): where the slot's pinned default commit is gone from
    the hub, the repository's default branch is served instead, if it holds safetensors weights."""
    try:
        return (*_from_hub(spec, remote, phase), None)
    except Exception as err:
        if source != spec.hub_default or not hub.vanished(err):
            raise
    logger.warning("slot %s: commit %s of %s is gone from the hub; trying its default branch", spec.name,
                   remote.revision, remote.repo_id)  # fmt: skip
    try:
        model, processor, path = _from_hub(spec, hub.HubSource(remote.repo_id), phase)
    except NoModelFiles as err:
        raise NoModelFiles(
            f"commit {remote.revision} is gone from the hub and the default branch failed: {err}",
            "its pinned version is gone from the hub, and its newest one has no safetensors weights",
        ) from err
    return (
        model,
        processor,
        path,
        (f"the pinned version ({remote.revision[:7]}) is gone from the hub: this is the newest one ({path.name[:7]})"),
    )


def _from_hub(spec: SlotSpec, source: hub.HubSource, phase: Phase) -> tuple[Any, Any, Path]:
    """Tokenizer/processor first (a failure there costs no weight download), then weights; a
    slot's hub default preloaded in full at build is read from the cache, asking nothing."""
    if source == hub.parse_source(spec.hub_default) and (path := hub.preloaded(source, spec.files)):
        phase("loading")
        return (*loading.from_pretrained(spec.kind, path), path)
    if hub.offline():  # the local cache only: as quick as a folder, so requests may wait
        phase("loading")
        path = hub.download(source, hub.SERVED_PATTERNS)
        return (*loading.from_pretrained(spec.kind, path), path)
    hub.install_timeouts()
    progress = hub.Progress()
    phase("resolving")
    files = hub.with_deadline(lambda: hub.list_files(source), progress, "listing files")
    hub.require_safetensors(source, files)
    small = hub.with_deadline(
        lambda: hub.download(source, hub.PROCESSOR_PATTERNS, progress), progress, "tokenizer and config"
    )
    processor = loading.load_processor(spec.kind, small)
    phase("downloading", progress)
    path = hub.with_deadline(lambda: hub.download(source, hub.SERVED_PATTERNS, progress), progress, "weights")
    loading.require_weights(path)
    phase("loading")
    return loading.load_model(spec.kind, path), processor, path
