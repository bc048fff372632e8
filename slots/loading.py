"""Building a slot's model and processor from a local folder: safetensors only, never remote
code, the processor (tokenizer) first."""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path
from typing import Any

from core.errors import NO_SAFETENSORS, NoModelFiles

# transformers resolves its top-level names on first use, importing the module behind each; two
# threads doing that at once can find it half-imported, so the slots' lookups take turns. And
# `transformers/__init__.py` replaces itself in `sys.modules` with its lazy module when it ends: a
# thread whose `import transformers` waited for another thread's import (one outside these turns:
# anything that imports transformers first, in any thread) is handed the module object it found
# before waiting, the half-built one without the lazy names ("module 'transformers' has no
# attribute 'AutoModelForCTC'"). What `sys.modules` holds once the import is done is the real one.
_LOOKUP = threading.Lock()


def from_transformers(*names: str) -> tuple[Any, ...]:
    """transformers' top-level `names`, looked up in turn with the other slots' lookups."""
    with _LOOKUP:
        import transformers  # noqa: F401 - waits for an import under way in another thread

        _quiet_weight_loading()
        return tuple(getattr(sys.modules["transformers"], name) for name in names)


@functools.cache
def _quiet_weight_loading() -> None:
    """No "Loading weights" progress bars from transformers in the operator's log: the slots load
    at once, and their bars interleave into lines of escape codes (the slots' downloads print none
    either: `slots.hub.download`). The hub's own setting for its bars is left as it was."""
    import huggingface_hub.utils
    from transformers.utils import logging

    downloads_shown = not huggingface_hub.utils.are_progress_bars_disabled()
    logging.disable_progress_bar()  # (it turns the hub's bars off too)
    if downloads_shown:
        huggingface_hub.utils.enable_progress_bars()


# A slot kind's (model class, processor class) in transformers.
CLASSES = {
    "ctc": ("AutoModelForCTC", "AutoProcessor"),
    "audio-classification": ("AutoModelForAudioClassification", "AutoFeatureExtractor"),
    "question-answering": ("AutoModelForQuestionAnswering", "AutoTokenizer"),
}


def classes(kind: str) -> tuple[Any, Any]:
    """The (model class, processor class) of a slot kind: asr, kws or qa."""
    model_class, processor_class = from_transformers(*CLASSES[kind])
    return model_class, processor_class


def load_processor(kind: str, path: Path) -> Any:
    """The tokenizer / feature extractor; a SentencePiece tokenizer without its packages fails
    with their names, not with transformers' guess ("tiktoken is required")."""
    try:
        return classes(kind)[1].from_pretrained(path, trust_remote_code=False)
    except Exception as err:
        missing = _sentencepiece_missing(path)
        if missing:
            raise ImportError(
                f"this tokenizer is a SentencePiece model ({missing[0]}); loading it needs "
                f"the Python packages {' and '.join(missing[1:])} "
                "(pip install -r requirements.txt)"
            ) from err
        raise


def _sentencepiece_missing(path: Path) -> list[str]:
    """[the .model file, missing packages...] for a SentencePiece-only tokenizer folder, else []."""
    models = sorted(p.name for p in Path(path).glob("*.model"))
    if not models or (Path(path) / "tokenizer.json").is_file():
        return []
    missing = [
        pkg
        for pkg, module in (("sentencepiece", "sentencepiece"), ("protobuf", "google.protobuf"))
        if not _importable(module)
    ]
    return [models[0], *missing] if missing else []


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def require_weights(path: Path) -> None:
    """Raise `NoModelFiles` unless `path` holds safetensors weights (pickles are never loaded)."""
    if not any(Path(path).glob("*.safetensors")):
        raise NoModelFiles(f"no safetensors weights in {path} (pickled weights are not loaded)", NO_SAFETENSORS)


def load_model(kind: str, path: Path) -> Any:
    """The model from `path`'s safetensors weights (see `require_weights`), never remote code;
    its weights stay mapped from the file (`in_memory` copies them)."""
    model_cls = classes(kind)[0]
    if kind == "ctc":  # this project's SUPERB head is no transformers Auto class
        from core.structure import SUPERB_CTC
        from speech.heads import HubertSuperbForCTC

        (config_class,) = from_transformers("AutoConfig")
        if SUPERB_CTC in (config_class.from_pretrained(path).architectures or []):
            model_cls = HubertSuperbForCTC
    return model_cls.from_pretrained(path, use_safetensors=True, trust_remote_code=False)


def in_memory(model: Any) -> Any:
    """`model` with its weights copied out of the safetensors file they are memory-mapped from
    (transformers maps them), for a model that serves from the CPU: one reading its weights from
    the file would die (SIGBUS, the whole server with it) when the file is overwritten in place
    (`cp new/model.safetensors checkpoints/asr/`). A model read only to be exported, or moved to a
    GPU, needs no copy."""
    import torch

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.data = tensor.data.clone()
    return model


def from_pretrained(kind: str, path: Path) -> tuple[Any, Any]:
    """Model and processor from a local folder; the processor first, as from the hub."""
    require_weights(path)
    processor = load_processor(kind, path)
    return load_model(kind, path), processor
