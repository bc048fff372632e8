"""Long streams made of short clips: words laid one after another with pauses over a room's
background noise at a stated signal-to-noise ratio, knowing where each word lies. What a keyword
spotter is judged on as it is deployed (`speech.false_alarms`), built from a dataset's clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from speech.audio import TARGET_RATE
from speech.false_alarms import Planted

PAUSE_S = (0.4, 1.2)  # the silence between two words, drawn uniformly


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def noise_bed(sources: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` samples of background noise at unit RMS: the sources one after another from a
    random point, each normalised to unit RMS, round again as often as needed.

    Raises:
        ValueError: no source holds any sound.
    """
    usable = [s / rms(s) for s in sources if rms(s) > 0]
    if not usable:
        raise ValueError("no background-noise recording holds any sound")
    whole = np.concatenate(usable).astype(np.float32)
    start = int(rng.integers(0, len(whole)))
    reps = -(-(start + length) // len(whole))
    return np.tile(whole, reps)[start : start + length]


def lay_out(
    words: Sequence[tuple[str | None, np.ndarray]],
    noise: Sequence[np.ndarray],
    snr_db: float,
    rng: np.random.Generator,
    pause_s: tuple[float, float] = PAUSE_S,
) -> tuple[np.ndarray, list[Planted]]:
    """One stream: a pause, a word, a pause, ... a pause, over background noise `snr_db` below
    each word. The words keep the level they were recorded at (the level the model learned from);
    the noise follows them, steady under a word and gliding to the next word's level over a pause.

    Args:
        words: (label, samples) in the order said; a label of None (a word that is no keyword) is
            not planted.
        noise: background recordings (`noise_bed`).
        snr_db: each word's RMS over the noise's RMS under it, in dB.
        rng: draws the pauses and the noise's starting point.
        pause_s: (shortest, longest) pause.

    Returns:
        The stream's [S] 16 kHz float32 samples and the planted keywords (label, start, end in s).
    """
    pauses = (rng.uniform(*pause_s, size=len(words) + 1) * TARGET_RATE).astype(int)
    length = sum(len(w) for _, w in words) + int(pauses.sum())
    levels = [rms(w) for _, w in words]
    audible = [v for v in levels if v > 0] or [1.0]
    levels = [(v if v > 0 else float(np.median(audible))) / 10 ** (snr_db / 20) for v in levels]
    stream = noise_bed(noise, length, rng)
    planted = []
    at = 0
    for i, pause in enumerate(pauses):
        before, after = levels[max(i - 1, 0)], levels[min(i, len(levels) - 1)]
        stream[at : at + pause] *= np.linspace(before, after, pause, dtype=np.float32)
        at += pause
        if i == len(words):
            break
        label, samples = words[i]
        stream[at : at + len(samples)] = stream[at : at + len(samples)] * np.float32(levels[i]) + samples
        if label is not None:
            planted.append(Planted(label, at / TARGET_RATE, (at + len(samples)) / TARGET_RATE))
        at += len(samples)
    return np.clip(stream, -1.0, 1.0), planted
