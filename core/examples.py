"""Per-example results of a checkpoint's final evaluation (part of the checkpoint contract, optional):

    checkpoints/<slot>/examples/
        summary.json        task, split, row count, what audio was stored and what was left out
        predictions.jsonl   one JSON object per evaluated example (fields: speech/, qa/error_analysis.py)
        contexts.jsonl      QA: each context once, {"id": "c0", "text": ...}; rows name theirs
        audio/00012.flac    16 kHz mono FLAC of the clips worth listening to; a row's "audio" names it
        false_alarms.jsonl  KWS: the false activations of the streaming evaluation (train/kws_streams.py)
        alarms/00003.flac   their 1 s windows, as the detector heard them

The training scripts write it beside `metrics.json` (inside the staging folder, so it is published
atomically with the rest); the app reads it to list, play and compare individual examples on a
Space that has no dataset. Checkpoints without it still load: the tabs say there are no
per-example results.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from core.errors import json_kind

# The clips are stored at the rate the speech models hear (speech.audio.TARGET_RATE; a test holds
# the two equal): this module sits below the speech package, so it names the number itself.
CLIP_RATE = 16_000
EXAMPLES_DIR = "examples"
SUMMARY_FILE = "summary.json"
ROWS_FILE = "predictions.jsonl"
CONTEXTS_FILE = "contexts.jsonl"
AUDIO_DIR = "audio"
ALARMS_FILE = "false_alarms.jsonl"
ALARMS_DIR = "alarms"
AUDIO_CAP_MB = 20.0  # default cap on the stored audio: a Space's repo stays small
logger = logging.getLogger(__name__)
# What a row may name: a clip in audio/ or alarms/, nothing else.
_AUDIO_NAME = re.compile(rf"^({AUDIO_DIR}|{ALARMS_DIR})/\d{{5,}}\.flac$")


@dataclass
class ExampleSet:
    """What a training script hands to `write_examples`.

    `listen` lists the rows whose audio is worth storing, most important first, each with a
    function that decodes it (called only for what fits under the cap)."""

    task: str
    split: str
    rows: list[dict[str, Any]]
    listen: list[tuple[int, Callable[[], np.ndarray]]] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    audio_mb: float = AUDIO_CAP_MB
    alarms: list[tuple[dict[str, Any], Callable[[], np.ndarray]]] = field(default_factory=list)  # row, its audio


def write_examples(folder: Path, examples: ExampleSet) -> dict[str, Any]:
    """Write `examples` under `folder/examples` and return its summary.

    Audio goes in `listen` order until the next clip would pass the cap; clips that do not fit
    are counted in the summary's `audio.left_out` (a smaller one later in the list may still fit)."""
    root = Path(folder) / EXAMPLES_DIR
    root.mkdir(parents=True, exist_ok=True)
    rows = [dict(row) for row in examples.rows]
    cap = int(examples.audio_mb * 2**20)
    used = _write_alarms(root, examples.alarms)  # few and short: before the clips, under the same cap
    stored = left_out = 0
    for index, load in examples.listen:
        data = flac_bytes(load())
        if used + len(data) > cap:
            left_out += 1
            continue
        name = f"{AUDIO_DIR}/{index:05d}.flac"
        (root / AUDIO_DIR).mkdir(exist_ok=True)
        (root / name).write_bytes(data)
        rows[index]["audio"] = name
        stored, used = stored + 1, used + len(data)
    _write_jsonl(root / ROWS_FILE, rows)
    if examples.contexts:
        _write_jsonl(root / CONTEXTS_FILE, [{"id": f"c{i}", "text": t} for i, t in enumerate(examples.contexts)])
    summary = {
        "task": examples.task,
        "split": examples.split,
        "rows": len(rows),
        "audio": {"stored": stored, "left_out": left_out, "bytes": used, "cap_bytes": cap},
    }
    if examples.alarms:
        summary["false_alarms"] = len(examples.alarms)
    (root / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _write_alarms(root: Path, alarms: list[tuple[dict[str, Any], Callable[[], np.ndarray]]]) -> int:
    """`false_alarms.jsonl` and each alarm's clip; returns the audio's bytes."""
    if not alarms:
        return 0
    (root / ALARMS_DIR).mkdir(exist_ok=True)
    rows, used = [], 0
    for i, (row, load) in enumerate(alarms):
        data = flac_bytes(load())
        name = f"{ALARMS_DIR}/{i:05d}.flac"
        (root / name).write_bytes(data)
        rows.append({**row, "audio": name})
        used += len(data)
    _write_jsonl(root / ALARMS_FILE, rows)
    return used


def flac_bytes(samples: np.ndarray) -> bytes:
    """16 kHz mono samples as 16-bit FLAC (lossless for what the model heard at 16-bit, ~half a WAV)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.asarray(samples, np.float32), -1, 1), CLIP_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class ExamplesError(ValueError):
    """Per-example files that exist but cannot be read; the message names the file, never the folder."""


@dataclass(frozen=True)
class Examples:
    """A checkpoint's per-example results as read back."""

    folder: Path  # the examples folder
    task: str
    split: str
    rows: list[dict[str, Any]]
    contexts: dict[str, str]
    audio: dict[str, int]  # stored, left_out, bytes, cap_bytes
    skipped: int = 0  # rows left out because a field the app reads is missing or of the wrong kind
    alarms: list[dict[str, Any]] = field(default_factory=list)  # KWS: the streaming evaluation's false alarms

    def audio_path(self, row: dict[str, Any]) -> Path | None:
        """The row's stored clip, or None: not stored, a name pointing outside `audio/`, or a
        file that is (or passes through) a link to somewhere else than this folder or, for a
        checkpoint in the hub cache, its repository's blobs (a checkpoint from someone else
        must not make the app serve a server file)."""
        name = row.get("audio")
        if not isinstance(name, str) or not _AUDIO_NAME.match(name):
            return None
        path = self.folder / name
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a loop of links
            return None
        return path if real.is_file() and any(real.is_relative_to(root) for root in self._roots()) else None

    def _roots(self) -> list[Path]:
        roots = [self.folder.resolve()]
        parts = self.folder.parts
        if "snapshots" in parts:  # huggingface_hub's cache: snapshot files link into the repo's blobs/
            roots.append(Path(*parts[: parts.index("snapshots")], "blobs").resolve())
        return roots

    def audio_note(self) -> str:
        """What a visitor can listen to, in one sentence."""
        stored, left = self.audio.get("stored", 0), self.audio.get("left_out", 0)
        cap = self.audio.get("cap_bytes", 0) / 2**20
        note = f"{stored} clip{'s' * (stored != 1)} stored with the model"
        return note + (f"; {left} more left out to keep the audio under {round(cap, 1):g} MB." if left else ".")


def read_examples(checkpoint: Path) -> Examples | None:
    """The per-example results stored with the checkpoint at `checkpoint`, or None when it has none.

    Raises:
        ExamplesError: a file is not valid JSON / JSON lines or not the shape written above."""
    root = Path(checkpoint) / EXAMPLES_DIR
    summary_path = root / SUMMARY_FILE
    if not summary_path.is_file():
        return None
    files = (summary_path, root / ROWS_FILE, root / CONTEXTS_FILE, root / ALARMS_FILE)
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None for p in files)
    return _read_cached(root, stamp)


@functools.lru_cache(maxsize=8)  # a tab reads them on every choice; the files change only on publish
def _read_cached(root: Path, stamp: tuple) -> Examples:
    summary = _read_json(root / SUMMARY_FILE)
    if not isinstance(summary, dict) or not isinstance(summary.get("task"), str):
        raise ExamplesError(f"{EXAMPLES_DIR}/{SUMMARY_FILE} holds {json_kind(summary)}, not a summary")
    rows = _read_jsonl(root / ROWS_FILE)
    contexts = {}
    if (root / CONTEXTS_FILE).is_file():
        contexts = {str(c.get("id")): str(c.get("text", "")) for c in _read_jsonl(root / CONTEXTS_FILE)}
    audio = summary.get("audio") if isinstance(summary.get("audio"), dict) else {}
    audio = {k: int(v) for k, v in audio.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    usable = [row for row in rows if row_is_usable(summary["task"], row)]
    if len(usable) < len(rows):
        logger.warning(
            "%s: %d of %d rows of %s/%s left out: a field the app reads is missing or of the wrong kind",
            root.parent,
            len(rows) - len(usable),
            len(rows),
            EXAMPLES_DIR,
            ROWS_FILE,
        )
    alarms = []
    if (root / ALARMS_FILE).is_file():
        alarms = [a for a in _read_jsonl(root / ALARMS_FILE) if alarm_is_usable(a)]
    return Examples(
        root, summary["task"], str(summary.get("split", "")), usable, contexts, audio, len(rows) - len(usable), alarms
    )


def alarm_is_usable(row: dict[str, Any]) -> bool:
    """A false activation the app can show: where, which keyword, its probability and the highest
    threshold it fires at (train/kws_streams.py)."""
    return _text(row.get("label")) and all(_number(row.get(k)) for k in ("time_s", "probability", "up_to"))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _text(*values: Any) -> bool:
    return all(isinstance(v, str) for v in values)


def row_is_usable(task: str, row: dict[str, Any]) -> bool:
    """Whether a row has every field the app reads for its task, of the kind it reads
    (speech/error_analysis.py, qa/error_analysis.py lists them); a task this app does not know keeps its rows."""
    if task == "kws":
        top = row.get("top3")
        return (
            _text(row.get("id"), row.get("true"), row.get("predicted"))
            and isinstance(top, list)
            and len(top) > 0
            and all(isinstance(p, list) and len(p) == 2 and _text(p[0]) and _number(p[1]) for p in top)
        )
    if task == "asr":
        errors = row.get("errors")
        alignment = row.get("alignment")
        return (
            _text(row.get("id"), row.get("reference"), row.get("hypothesis"))
            and _number(row.get("wer"))
            and isinstance(errors, dict)
            and all(isinstance(errors.get(k), int) for k in ("substitutions", "deletions", "insertions"))
            and isinstance(alignment, list)
            and all(_chunk_is_usable(c, row["reference"], row["hypothesis"]) for c in alignment)
        )
    if task == "qa":
        prediction = row.get("prediction")
        return (
            _text(row.get("id"), row.get("question"))
            and isinstance(prediction, dict)
            and _text(prediction.get("text"))
            and _number(row.get("exact"))
            and all(row.get(k) is None or _number(row[k]) for k in ("f1", "null_margin", "threshold"))
        )
    return True


def _chunk_is_usable(chunk: Any, reference: str, hypothesis: str) -> bool:
    """jiwer's [type, ref_start, ref_end, hyp_start, hyp_end], within the two texts' words."""
    if not isinstance(chunk, list) or len(chunk) != 5 or not _text(chunk[0]):
        return False
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in chunk[1:]):
        return False
    return chunk[2] <= len(reference.split()) and chunk[4] <= len(hypothesis.split())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ExamplesError(f"{EXAMPLES_DIR}/{path.name} is not valid JSON") from err


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ExamplesError(f"{EXAMPLES_DIR}/{path.name} is missing")
    rows = []
    with path.open(encoding="utf-8", errors="strict") as f:
        try:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ExamplesError(
                        f"{EXAMPLES_DIR}/{path.name} line {number} holds {json_kind(row)}, not an object"
                    )
                rows.append(row)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise ExamplesError(f"{EXAMPLES_DIR}/{path.name} is not valid JSON lines") from err
    return rows
