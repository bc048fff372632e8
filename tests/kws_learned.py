"""The keyword model the KWS tests share (`learned_kws` in conftest.py): a tiny Hubert trained from
scratch on espeak-ng keywords, and clips and streams made from its training tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from scripts.make_smoke_data import UNKNOWN_WORDS, speech_commands_tree, tiny_hubert
from speech import keywords
from train import kws as train_kws

TRAIN_VOICES = ["en-us+m1", "en-us+m3", "en-us+m7", "en-us+f1", "en-us+f3"]
UNHEARD_VOICES = ["en-gb+m2", "en-gb+f2", "en-us+m5"]
LEARN = [
    "--freeze", "none", "--silence_clips", "60", "--max_steps", "800", "--warmup_steps", "40",
    "--per_device_train_batch_size", "16", "--learning_rate", "1e-3", "--max_grad_norm", "1.0",
    "--eval_steps", "200", "--logging_steps", "100",
]  # fmt: skip


def learn(root: Path) -> tuple[Path, Path]:
    """A tiny Hubert trained from scratch on espeak-ng keywords under `root` (~1 min on 2 CPU
    cores): the tree it learned from and its checkpoints folder (the `learned_kws` fixture)."""
    words = list(keywords.KEYWORDS) + UNKNOWN_WORDS
    variants = {
        "train": [(v, s, p) for v in TRAIN_VOICES for s in (130, 175) for p in (30, 70)],
        "validation": [(v, 150, 50) for v in TRAIN_VOICES],
    }
    unheard = [(v, s, 50) for v in UNHEARD_VOICES for s in (140, 165)]
    speech_commands_tree(root / "tree", words, variants, noise_files=3, test_dir=root / "test", test_variants=unheard)
    tiny_hubert(root / "encoder")
    checkpoints = root / "checkpoints"
    train_kws.main(
        [
            "train/configs/kws_smoke.json",
            "--model_name_or_path",
            str(root / "encoder"),
            "--data_dir",
            str(root / "tree"),
            "--test_dir",
            str(root / "test"),
            "--output_dir",
            str(checkpoints / "kws"),
            "--run_dir",
            str(root / "run"),
            *LEARN,
        ]
    )
    return root, checkpoints


def training_clip(root, word: str, voice: str = "en-us+m3") -> str:
    """A training clip: these tests check the app's plumbing, the learning test generalisation."""
    return str(next((root / "tree" / word).glob(f"{voice.replace('+', '-')}-130-70_*.wav")))


def voiced_centre_s(samples: np.ndarray) -> float:
    """Middle of the part of a clip louder than -30 dB below its peak (espeak pads with silence)."""
    loud = np.flatnonzero(np.abs(samples) > np.abs(samples).max() * 10 ** (-30 / 20))
    return (loud[0] + loud[-1]) / 2 / 16_000


def two_words(root) -> np.ndarray:
    """6 s of a quiet room (not digital silence) with "yes" spoken at 1.0 s and "stop" at 3.5 s."""
    from scripts.make_smoke_data import noise

    yes, _ = sf.read(training_clip(root, "yes"), dtype="float32")
    stop, _ = sf.read(training_clip(root, "stop"), dtype="float32")
    stream = 0.1 * noise(6.0, seed=7)
    stream[16_000 : 16_000 + len(yes)] += yes
    stream[int(3.5 * 16_000) : int(3.5 * 16_000) + len(stop)] += stop
    return stream
