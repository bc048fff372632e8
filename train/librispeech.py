"""LibriSpeech from the hub (parquet-backed, no dataset scripts) or from the original folder
layout; both give the same `Utterance` list, so everything after loading is one code path."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speech.audio import file_duration_s

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: Any  # a file path, or a `datasets` audio dict with encoded "bytes"
    text: str


def load_local(split_dir: Path, limit: int | None = None) -> list[Utterance]:
    """`<split>/<speaker>/<chapter>/*.flac` + `<speaker>-<chapter>.trans.txt`, sorted by id."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"LibriSpeech split folder {split_dir} does not exist")
    utterances = []
    for transcript in sorted(split_dir.glob("*/*/*.trans.txt")):
        for line in transcript.read_text().splitlines():
            if not line.strip():
                continue
            utt_id, _, text = line.partition(" ")
            audio = transcript.parent / f"{utt_id}.flac"
            if not audio.is_file():
                raise FileNotFoundError(f"{transcript} names {utt_id}, but {audio} is missing")
            utterances.append(Utterance(utt_id, str(audio), text.strip()))
            if limit is not None and len(utterances) >= limit:
                return utterances
    if not utterances:
        raise ValueError(f"no *.trans.txt transcripts under {split_dir}")
    return utterances


def load_hub(
    name: str, config: str | None, split: str, revision: str | None, limit: int | None = None
) -> list[Utterance]:
    """A parquet-backed hub dataset with `audio`, `text` and `id` columns. Audio stays encoded
    (`decode=False`): `speech.audio` decodes it with soundfile, not torchcodec. With a limit the
    split is streamed, so only what is used is downloaded."""
    from datasets import Audio, load_dataset

    ds = load_dataset(name, config, split=split, revision=revision, streaming=limit is not None)
    ds = ds.cast_column("audio", Audio(decode=False))
    rows = ds.take(limit) if limit is not None else ds
    return [Utterance(str(row.get("id", i)), row["audio"], row["text"]) for i, row in enumerate(rows)]


def drop_long(utterances: list[Utterance], max_duration_s: float, split: str) -> tuple[list[Utterance], list[float]]:
    """Keep utterances no longer than `max_duration_s`; returns them and their durations."""
    kept = []
    durations = []
    for utt in utterances:
        seconds = file_duration_s(utt.audio)
        if seconds <= max_duration_s:
            kept.append(utt)
            durations.append(seconds)
    dropped = len(utterances) - len(kept)
    if not kept:
        raise ValueError(
            f"all {len(utterances)} {split} utterances are longer than max_duration_s={max_duration_s}; raise it"
        )
    logger.info("%s: %d utterances, %d longer than %.0f s dropped", split, len(kept), dropped, max_duration_s)
    return kept, durations
