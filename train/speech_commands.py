"""Speech Commands v0.01 for the 12-class SUPERB keyword-spotting task, from the hub (the parquet
export of `google/speech_commands`) or from the original folder tree; both give `Clip` lists.

`_silence_` has almost no examples of its own (the hub's v0.01 train split holds the 6
background-noise files themselves, which is why the course report this project recreates counted 6 `_silence_`
training clips): long silence sources are
cut into 1 s windows, `silence_clips` of them per training split, spread evenly over the sources.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speech import keywords
from speech.audio import file_duration_s, load_audio
from train.hub_data import HubDataset, OpenedDataset, audio_rows, open_splits, read_split

logger = logging.getLogger(__name__)
CLIP_S = 1.0


@dataclass(frozen=True)
class Clip:
    audio: Any  # a file path, or a dataset row's audio read when used (train.hub_data.DatasetAudio)
    label: int
    start_s: float | None = None  # a 1 s window of a longer source (silence from noise)


def clip_audio(clip: Clip) -> np.ndarray:
    """A clip's 16 kHz audio as recorded (a window cut from a longer source, that window; a long
    recording stays whole)."""
    segment = None if clip.start_s is None else (clip.start_s, CLIP_S)
    return load_audio(clip.audio, max_duration_s=float("inf"), segment_s=segment)


def _read_list(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.is_file() else set()


def load_local(data_dir: Path, test_dir: Path | None = None) -> dict[str, list[Clip]]:
    """The v0.01 tree: `<word>/*.wav`, `_background_noise_/*.wav`, `validation_list.txt`,
    `testing_list.txt`. With `test_dir` (the separate official test set, whose folders include
    `_silence_` and `_unknown_`), that is the test split; otherwise `testing_list.txt`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"Speech Commands folder {data_dir} does not exist")
    validation = _read_list(data_dir / "validation_list.txt")
    testing = _read_list(data_dir / "testing_list.txt")
    splits: dict[str, list[Clip]] = {"train": [], "validation": [], "test": []}
    for wav in sorted(data_dir.glob("*/*.wav")):
        word = wav.parent.name
        relative = f"{word}/{wav.name}"
        split = "validation" if relative in validation else "test" if relative in testing else "train"
        if word == "_background_noise_":
            split = "train"
        splits[split].append(Clip(str(wav), keywords.LABEL2ID[keywords.to_label(word)]))
    if test_dir is not None:
        splits["test"] = [
            Clip(str(wav), keywords.LABEL2ID[keywords.to_label(wav.parent.name)])
            for wav in sorted(Path(test_dir).glob("*/*.wav"))
        ]
    if not splits["train"]:
        raise ValueError(f"no training clips under {data_dir}")
    return splits


def load_hub(dataset: HubDataset) -> tuple[dict[str, list[Clip]], OpenedDataset]:
    """`google/speech_commands`' parquet export (revision `refs/convert/parquet`, folder `v0.01`):
    `audio` and a `label` ClassLabel over the 30 words plus `_silence_`, mapped to the 12 classes.
    The clips stay in the memory-mapped splits until used."""
    opened = open_splits(dataset, ["train", "validation", "test"])
    splits = {}
    for split in opened.files:
        table = read_split(opened, split)
        names = table.features["label"].names
        labels = [keywords.LABEL2ID[keywords.to_label(names[i])] for i in table["label"]]
        splits[split] = [Clip(audio, label) for audio, label in zip(audio_rows(table), labels, strict=True)]
    return splits, opened


def noise_sources(clips: list[Clip]) -> list[Clip]:
    """The `_silence_` sources longer than a clip: the background-noise recordings."""
    silence_id = keywords.LABEL2ID[keywords.SILENCE]
    return [c for c in clips if c.label == silence_id and c.start_s is None and file_duration_s(c.audio) > CLIP_S]


def cut_silence(clips: list[Clip], count: int, seed: int) -> list[Clip]:
    """Replace `_silence_` sources longer than 1 s by `count` 1 s windows spread over them."""
    long_sources = [(c, file_duration_s(c.audio)) for c in noise_sources(clips)]
    if not long_sources or count <= 0:
        return clips
    rng = random.Random(seed)
    windows = []
    for i in range(count):
        source, seconds = long_sources[i % len(long_sources)]
        windows.append(Clip(source.audio, source.label, rng.uniform(0, seconds - CLIP_S)))
    kept = [c for c in clips if not any(c is s for s, _ in long_sources)]
    logger.info("cut %d silence windows from %d background-noise sources", count, len(long_sources))
    return kept + windows


def subset(clips: list[Clip], n: int | None, seed: int) -> list[Clip]:
    """A seeded random sample of N clips (the tree is sorted by word: its first N would all be
    one word)."""
    if n is None or n >= len(clips):
        return clips
    return random.Random(seed).sample(clips, n)
