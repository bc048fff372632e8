"""LibriSpeech from the hub (parquet-backed, no dataset scripts) or from the original folder
layout; both give the same `Utterance` list, so everything after loading is one code path."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speech.audio import file_duration_s
from train.hub_data import HubDataset, OpenedDataset, audio_rows, open_splits, read_split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: Any  # a file path, a `datasets` audio dict, or a row read when used (train.hub_data)
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
    dataset: HubDataset, splits: dict[str, str], limits: dict[str, int | None]
) -> tuple[dict[str, list[Utterance]], OpenedDataset]:
    """A parquet-backed hub dataset with `audio`, `text` and `id` columns: `splits` maps our split
    names to the dataset's (`train` -> `train.100`); only their files are read. Audio stays
    encoded (`speech.audio` decodes it with soundfile, not torchcodec). With a limit a split is
    streamed and only its first rows are downloaded; without, its files are downloaded once and
    memory-mapped, and each utterance reads its audio when used."""
    opened = open_splits(dataset, list(splits.values()))
    out = {}
    for ours, theirs in splits.items():
        limit = limits.get(ours)
        if limit is not None:
            rows = read_split(opened, theirs, streaming=True).take(limit)
            out[ours] = [Utterance(str(row.get("id", i)), row["audio"], row["text"]) for i, row in enumerate(rows)]
            continue
        table = read_split(opened, theirs)
        ids = table["id"] if "id" in table.column_names else [str(i) for i in range(len(table))]
        out[ours] = [Utterance(str(i), a, t) for i, a, t in zip(ids, audio_rows(table), table["text"], strict=True)]
    return out, opened


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
