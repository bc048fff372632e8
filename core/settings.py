"""Every operator setting: the environment variables the app reads, with their defaults and what
they change. No other module reads the environment for a setting of ours; each reads its value
here. `python -m core.settings` prints the table that `docs/serving.md` carries (a test holds the
two equal).

A value that is not usable (not a number, out of range) is logged and the default served: a typo
in a Space's settings must not keep the app from starting.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: str
    meaning: str
    when: str = "at start"  # or "at each load": read when a model loads, so a Reload sees a change


TABLE: list[Setting] = []


def _declare(name: str, default: object, meaning: str, when: str = "at start") -> None:
    TABLE.append(Setting(name, str(default), meaning, when))


def read_number(name: str, default: float, kind: Callable[[str], float] = float, least: float = 0) -> float:
    """`$name` read with `kind` (`int` or `float`); `default` where it is unset, empty, not a
    number, NaN or below `least`."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        found = kind(value)
    except ValueError:
        found = None
    if found is None or found != found or found < least:  # (found != found: NaN)
        logger.warning("%s=%r is not a number >= %g; using %g", name, value, least, default)
        return default
    return found


def _number(name: str, default: float, meaning: str, kind: Callable[[str], float] = float, least: float = 0) -> float:
    _declare(name, default, meaning)
    return read_number(name, default, kind, least)


def _flag(name: str, default: bool, meaning: str) -> bool:
    _declare(name, "1" if default else "0", meaning)
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


def _text(name: str, default: str, meaning: str, when: str = "at start") -> str:
    _declare(name, default, meaning, when)
    return os.environ.get(name, "").strip() or default


# --- the models ---------------------------------------------------------------------------------

MODEL_VARIABLES = {
    "ASR_MODEL": "speech recognition",
    "KWS_MODEL": "keyword spotting",
    "QA_DISTILBERT_MODEL": "DistilBERT QA",
    "QA_XLMR_MODEL": "XLM-RoBERTa QA",
}
for _name, _tab in MODEL_VARIABLES.items():
    _declare(
        _name,
        "",
        f"The {_tab} slot's model: a local folder, a hub id or `hub-id@revision`; tried before "
        "`checkpoints/<slot>/` and the pinned hub default",
        "at each load",
    )


def model_source(name: str) -> str:
    """A slot's model variable (one of `MODEL_VARIABLES`), read as the slot loads; "" when unset."""
    if name not in MODEL_VARIABLES:
        raise KeyError(f"{name} is not a model setting (core/settings.py lists them)")
    return os.environ.get(name, "").strip()


CANDIDATE_VARIABLES = {"asr": "ASR_CANDIDATES", "kws": "KWS_CANDIDATES", "qa": "QA_CANDIDATES"}
for _name in CANDIDATE_VARIABLES.values():
    _declare(
        _name,
        "",
        "More models to compare in the task's tab, beside `checkpoints/<task>-*/`: comma-separated "
        "`name=source` (a local folder, a hub id or `hub-id@revision`; `name=` may be left out)",
        "at each look",
    )


def candidate_sources(task: str) -> str:
    """A task's candidates variable (`CANDIDATE_VARIABLES`), read whenever the candidates are listed."""
    return os.environ.get(CANDIDATE_VARIABLES[task], "").strip()


# How many models may be loaded at once: the least recently used beyond it is unloaded (not on
# ZeroGPU, where every model is placed at start). docs/serving.md says what fits in 16 GB.
MAX_LOADED_MODELS = int(
    _number(
        "MAX_LOADED_MODELS",
        6,
        "Models loaded at once, every task together; the least recently used beyond it is unloaded "
        "(`0`: no limit; not on ZeroGPU)",
        int,
    )
)

PRELOAD_MODELS = _flag(
    "PRELOAD_MODELS", True, "Load every slot once the app answers (`0`: each on its first use; `--no-preload`)"
)
_declare(
    "SERVE_PRECISION",
    "auto",
    "`auto`: int8 through ONNX Runtime on a CPU, fp16 on a GPU; or `int8` (CPU only), `fp32`, `fp16`, `bf16` "
    "(PyTorch)",
    "at each load",
)


def serve_precision() -> str:
    """`SERVE_PRECISION`, lower-cased, read as a model loads (its check is the loader's)."""
    return os.environ.get("SERVE_PRECISION", "auto").strip().lower() or "auto"


_declare(
    "SERVE_DEVICE",
    "auto",
    "`auto`: a CUDA GPU where one is visible, else the CPU; or `cpu`, `cuda`",
    "at each load",
)


def serve_device() -> str:
    """`SERVE_DEVICE`, lower-cased, read as a model loads (its check is the loader's)."""
    return os.environ.get("SERVE_DEVICE", "auto").strip().lower() or "auto"


# The `spaces` package's own switch (spaces/config.py): a ZeroGPU Space sets it; nobody else should.
ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")
_declare(
    "SPACES_ZERO_GPU",
    "",
    "Set by a ZeroGPU Space (`true`): models load before the app answers, each request runs on a GPU "
    "lent for it, Live runs on the CPU (docs/deployment.md)",
)


ONNX_CACHE = Path(
    _text(
        "ONNX_CACHE",
        str(Path.home() / ".cache" / "speech-qa-transformers" / "onnx"),
        "Where the int8 ONNX exports are kept (one per weights file), so a restart does not export again",
    )
)
HUB_TIMEOUT_S = _number("HUB_TIMEOUT_S", 10.0, "Seconds the hub may take to answer one request", least=0.1)
HUB_RETRY_S = _number("HUB_RETRY_S", 30.0, "First wait after a hub failure at load; it doubles up to 180 s")
LOAD_WAIT_S = _number("LOAD_WAIT_S", 120.0, "Seconds a request may wait for a slot reading its model from disk")
MODEL_NICE = int(
    _number("MODEL_NICE", 10, "Nice steps model work runs below the server (Linux; `0`: same priority)", int)
)

# --- what one visitor may send ----------------------------------------------------------------

AUDIO_MAX_SECONDS = _number(
    "AUDIO_MAX_SECONDS", 600.0, "Longest clip or Live recording transcribed or spotted", least=0.1
)
UPLOAD_MAX_MB = _number("UPLOAD_MAX_MB", 128.0, "Largest uploaded file, in MB (fractions too)", least=0.001)
UPLOAD_MAX_FILES = int(_number("UPLOAD_MAX_FILES", 4, "Files in one upload request", int, least=1))
UPLOAD_CLIENT_MB = _number(
    "UPLOAD_CLIENT_MB", 1024.0, "MB one client address may upload in an hour (loopback not counted)", least=1
)
LIVE_PLACES = int(_number("LIVE_PLACES", 5, "Live streams heard at once, both Live tabs together", int, least=1))
LIVE_TURN_S = _number("LIVE_TURN_S", 15.0, "Seconds of a Live turn while others wait (`0`: no turns)")
LIVE_PER_ADDRESS = int(
    _number("LIVE_PER_ADDRESS", 2, "Live streams one client address may hold (loopback not counted)", int, least=1)
)

# --- where the server listens (Gradio's own names; Spaces sets them) ----------------------------

GRADIO_TEMP_DIR = _text(
    "GRADIO_TEMP_DIR",
    "",
    "Gradio's folder for uploads and example copies; unset: a new one per app, removed when it stops "
    "(two apps on one machine never clear each other's files)",
)


def set_gradio_temp_dir(folder: Path) -> None:
    """Name Gradio's folder for this process (and the processes it starts), before Gradio is imported."""
    global GRADIO_TEMP_DIR
    GRADIO_TEMP_DIR = os.environ["GRADIO_TEMP_DIR"] = str(folder)


def child_env(project: Path) -> dict[str, str]:
    """The environment a process of ours starts with (an audio decoder, an int8 export): this one's,
    settings included, with `project` importable wherever it runs from."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")])}


SERVER_NAME = _text("GRADIO_SERVER_NAME", "127.0.0.1", "Address to listen on (`--host`)")
SERVER_PORT = int(_number("GRADIO_SERVER_PORT", 7860, "Port to listen on (`--port`)", int, least=1))


def markdown_table() -> str:
    """The settings as the Markdown table in `docs/serving.md`."""
    lines = ["| variable | default | read | what it changes |", "|---|---|---|---|"]
    for s in TABLE:
        default = f"`{s.default}`" if s.default else "(unset)"
        if s.name == "ONNX_CACHE":
            default = "`~/.cache/speech-qa-transformers/onnx`"
        lines.append(f"| `{s.name}` | {default} | {s.when} | {s.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
