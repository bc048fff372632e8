"""Model slots: which model each tab serves, where it comes from, and loading it once.

A slot is resolved in this order, the first that loads wins:
  1. the slot's environment variable (a local folder or a hub id),
  2. `<checkpoints>/<slot>/` written by `train/`,
  3. the public fine-tuned hub checkpoint named in `SLOTS` (also listed in the README),
and is otherwise *unavailable*: the app keeps serving and the tab says what was tried.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.checkpoint import folder_size, read_metrics

# Seconds the hub may take to answer before the slot gives up on it; a machine without network
# must start in seconds, not wait out the library's default timeouts.
HUB_TIMEOUT_S = float(os.environ.get("HUB_TIMEOUT_S", 5))
# Files worth fetching from a hub repo: configs, tokenizer/processor files and safetensors
# weights. Pickled weights are never downloaded, so they can never be loaded.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.spm"]


@dataclass(frozen=True)
class SlotSpec:
    name: str
    title: str
    env_var: str
    hub_id: str  # the public fine-tuned default; documented in the README's slot table
    kind: str  # "ctc", "audio-classification" or "question-answering"
    train_command: str


SLOTS: dict[str, SlotSpec] = {
    spec.name: spec
    for spec in (
        SlotSpec("asr", "Speech recognition (HuBERT + CTC)", "ASR_MODEL",
                 "facebook/hubert-large-ls960-ft", "ctc",
                 "python -m train.asr train/configs/asr_report.json"),
        SlotSpec("kws", "Keyword spotting (DistilHuBERT)", "KWS_MODEL",
                 "anton-l/distilhubert-ft-keyword-spotting", "audio-classification",
                 "python -m train.kws train/configs/kws_report.json"),
        SlotSpec("qa-distilbert", "Question answering (DistilBERT)", "QA_DISTILBERT_MODEL",
                 "twmkn9/distilbert-base-uncased-squad2", "question-answering",
                 "python -m train.qa train/configs/qa_distilbert.json"),
        SlotSpec("qa-xlmr", "Question answering (XLM-RoBERTa)", "QA_XLMR_MODEL",
                 "deepset/xlm-roberta-base-squad2", "question-answering",
                 "python -m train.qa train/configs/qa_xlmr.json"),
    )
}


class SlotUnavailable(RuntimeError):
    """No source of a slot could be loaded; `attempts` says what was tried and why it failed."""

    def __init__(self, slot: str, attempts: list[dict[str, str]]):
        self.slot, self.attempts = slot, attempts
        tried = "; ".join(f"{a['source']}: {a['error']}" for a in attempts)
        super().__init__(f"No model for '{slot}' could be loaded ({tried}).")


@dataclass
class LoadedModel:
    """A model ready to serve, with what the status endpoint reports about it."""

    model: Any
    processor: Any  # feature extractor, processor or tokenizer
    source: str
    path: Path  # local folder the weights came from
    device: str
    load_time_s: float
    metrics: dict[str, Any] | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)  # earlier sources that failed
    parameters: int = field(init=False)
    size_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.size_bytes = folder_size(self.path)


class Slot:
    """One slot: resolves and loads its model on first use, once, under a lock."""

    def __init__(self, spec: SlotSpec, checkpoints: Path):
        self.spec, self.checkpoints = spec, Path(checkpoints)
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._failure: SlotUnavailable | None = None

    def candidates(self) -> list[tuple[str, str]]:
        """(label, source) pairs in resolution order."""
        found = []
        if os.environ.get(self.spec.env_var, "").strip():
            found.append((f"${self.spec.env_var}", os.environ[self.spec.env_var].strip()))
        found.append(("checkpoint", str(self.checkpoints / self.spec.name)))
        found.append(("hub default", self.spec.hub_id))
        return found

    def get(self) -> LoadedModel:
        """The loaded model; loads it on the first call. Raises `SlotUnavailable`."""
        if self._loaded is None and self._failure is None:
            with self._lock:  # concurrent first requests wait here for one load
                if self._loaded is None and self._failure is None:
                    self._load()
        if self._failure is not None:
            raise self._failure
        return self._loaded  # type: ignore[return-value]

    def reset(self) -> None:
        """Forget the loaded model or failure, so the next `get` resolves again."""
        with self._lock:
            self._loaded, self._failure = None, None

    def peek(self) -> LoadedModel | None:
        return self._loaded

    def status(self) -> dict[str, Any]:
        """State without triggering a load: 'loaded', 'unavailable' or 'not loaded'."""
        info: dict[str, Any] = {"slot": self.spec.name, "title": self.spec.title,
                                "env_var": self.spec.env_var, "train_command": self.spec.train_command}
        if self._loaded is not None:
            m = self._loaded
            info.update(state="loaded", source=m.source, parameters=m.parameters,
                        size_bytes=m.size_bytes, device=m.device, load_time_s=round(m.load_time_s, 3),
                        skipped=m.skipped)
        elif self._failure is not None:
            info.update(state="unavailable", source=None, error=str(self._failure),
                        attempts=self._failure.attempts)
        else:
            info.update(state="not loaded", source=None)
        return info

    def _load(self) -> None:
        attempts = []
        for label, source in self.candidates():
            start = time.perf_counter()
            try:
                path = _local_folder(source, is_checkpoint=label == "checkpoint")
                model, processor = _from_pretrained(self.spec.kind, path)
            except Exception as err:  # noqa: BLE001 - every failure is reported, none is fatal
                attempts.append({"source": f"{label} {source}", "error": _short(err)})
                continue
            device = _best_device()
            model.to(device).eval()
            self._loaded = LoadedModel(model, processor, source, path, device,
                                       time.perf_counter() - start, read_metrics(path), attempts)
            return
        self._failure = SlotUnavailable(self.spec.name, attempts)


class Registry:
    """All slots of one app instance, bound to its checkpoints folder."""

    def __init__(self, checkpoints: Path):
        self.checkpoints = Path(checkpoints)
        self.slots = {name: Slot(spec, self.checkpoints) for name, spec in SLOTS.items()}

    def __getitem__(self, name: str) -> Slot:
        return self.slots[name]

    def status(self, load: bool = True) -> dict[str, dict[str, Any]]:
        """Per-slot status; with `load`, resolves every slot first (cached after the first time)."""
        if load:
            for slot in self.slots.values():
                try:
                    slot.get()
                except SlotUnavailable:
                    pass
        return {name: slot.status() for name, slot in self.slots.items()}

    def reload(self) -> dict[str, dict[str, Any]]:
        for slot in self.slots.values():
            slot.reset()
        return self.status()


def _local_folder(source: str, is_checkpoint: bool) -> Path:
    """A local folder for `source`: the folder itself, or a hub snapshot (safetensors only)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    # A hub id is "name" or "owner/name"; anything else that is not a folder is a missing path.
    if is_checkpoint or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise FileNotFoundError(f"no folder at {path}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_OFFLINE

    # HF_HUB_OFFLINE: only the local cache is consulted, so an offline machine fails at once.
    return Path(snapshot_download(source, allow_patterns=HUB_PATTERNS, etag_timeout=HUB_TIMEOUT_S,
                                  local_files_only=HF_HUB_OFFLINE))


def _from_pretrained(kind: str, path: Path) -> tuple[Any, Any]:
    import transformers as tf

    model_cls, processor_cls = {
        "ctc": (tf.AutoModelForCTC, tf.AutoProcessor),
        "audio-classification": (tf.AutoModelForAudioClassification, tf.AutoFeatureExtractor),
        "question-answering": (tf.AutoModelForQuestionAnswering, tf.AutoTokenizer),
    }[kind]
    if not any(path.glob("*.safetensors")):
        raise FileNotFoundError(f"no safetensors weights in {path} (pickled weights are not loaded)")
    if kind == "ctc":  # this project's SUPERB head is no transformers Auto class
        from core.heads import SUPERB_CTC, HubertSuperbForCTC

        if SUPERB_CTC in (tf.AutoConfig.from_pretrained(path).architectures or []):
            model_cls = HubertSuperbForCTC
    model = model_cls.from_pretrained(path, use_safetensors=True, trust_remote_code=False)
    processor = processor_cls.from_pretrained(path, trust_remote_code=False)
    return model, processor


def _best_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _short(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."
