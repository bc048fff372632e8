"""LibriSpeech- and Speech Commands-shaped trees of synthetic audio, for speed measurements only
(no words in them), and the benchmarks' checkpoints: real architectures, random weights.

    python -m bench.synthetic /tmp/librispeech --train 400 --validation 40 --test 40
    python -m bench.synthetic /tmp/speech_commands --speech_commands --train 3000

Utterance lengths follow train-clean-100's shape (about 12.7 s on average, at most 20 s), the
audio is voiced-sounding (harmonics with a moving pitch and syllable-rate envelope, plus noise) so
FLAC compresses it about as much as speech, and transcripts have about 15 characters a second.
"""

from __future__ import annotations

import argparse
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from speech.audio import TARGET_RATE
from speech.keywords import KEYWORDS

RATE = TARGET_RATE
FOLDERS = {"train": "train-clean-100", "validation": "dev-clean", "test": "test-clean"}
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "that",
    "he",
    "was",
    "it",
    "his",
    "for",
    "with",
    "as",
    "had",
    "you",
    "not",
    "be",
    "her",
    "on",
    "at",
    "by",
    "which",
]


def utterance(rng: np.random.Generator, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0, None) ** 2
    audio = 0.3 * voiced * envelope + 0.003 * rng.standard_normal(len(t))
    return audio.astype(np.float32)


def transcript(rng: np.random.Generator, seconds: float) -> str:
    words = []
    length = 0
    while length < 15 * seconds:
        words.append(str(rng.choice(WORDS)))
        length += len(words[-1]) + 1
    return " ".join(words).upper()


def _write(job: tuple[Path, tuple[int, ...], float, int, str]) -> None:
    """One file: its audio drawn from its own seed, so a tree is the same however many processes
    write it."""
    path, seed, seconds, rate, subtype = job
    audio = utterance(np.random.default_rng(seed), seconds)
    if rate != RATE:
        audio = resample_poly(audio, rate // math.gcd(rate, RATE), RATE // math.gcd(rate, RATE))
    sf.write(path, audio, rate, subtype=subtype)


def _write_all(jobs: list[tuple[Path, tuple[int, ...], float, int, str]]) -> None:
    """Every file, by one process per core (a real-size tree is tens of thousands of files)."""
    workers = min(len(os.sched_getaffinity(0)), max(1, len(jobs) // 64))
    if workers <= 1:
        for job in jobs:
            _write(job)
        return
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write, jobs, chunksize=64))


def librispeech_like(root: Path, counts: dict[str, int], seed: int = 0, rate: int = RATE) -> list[float]:
    """Write the tree (files at `rate`: other than 16 kHz, loading must resample); returns every
    utterance's length in seconds."""
    rng = np.random.default_rng(seed)
    lengths, jobs = [], []
    for number, (split, count) in enumerate(counts.items()):
        folder = Path(root) / FOLDERS[split] / "19" / "198"
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            seconds = float(np.clip(rng.normal(12.7, 3.3), 1.5, 20.0))
            utt = f"19-198-{i:04d}"
            jobs.append((folder / f"{utt}.flac", (seed, number, i), seconds, rate, "PCM_16"))
            lines.append(f"{utt} {transcript(rng, seconds)}")
            lengths.append(seconds)
        (folder / "19-198.trans.txt").write_text("\n".join(lines) + "\n")
    _write_all(jobs)
    return lengths


def speech_commands_like(root: Path, counts: dict[str, int], seed: int = 0) -> None:
    """The v0.01 layout (`<word>/<speaker>_nohash_<n>.wav`, validation/testing lists, 60 s of
    background noise per file): 1 s clips, one in ten shorter (0.5-1 s) as in the real set."""
    rng = np.random.default_rng(seed)
    words = [*KEYWORDS, "bed", "bird", "cat", "dog", "happy", "house"]
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    jobs = []
    for number, (split, count) in enumerate(counts.items()):
        for i in range(count):
            word = words[i % len(words)]
            seconds = 1.0 if rng.random() > 0.1 else rng.uniform(0.5, 1.0)
            name = f"{split[:2]}{i:05d}_nohash_0.wav"
            (Path(root) / word).mkdir(parents=True, exist_ok=True)
            jobs.append((Path(root) / word / name, (seed, number, i), seconds, RATE, "PCM_16"))
            if split in lists:
                lists[split].append(f"{word}/{name}")
    _write_all(jobs)
    for split, names in lists.items():
        (Path(root) / f"{split.replace('test', 'testing')}_list.txt").write_text("\n".join(names) + "\n")
    (Path(root) / "_background_noise_").mkdir(parents=True, exist_ok=True)
    for i in range(3):
        sf.write(
            Path(root) / "_background_noise_" / f"noise_{i}.wav",
            (0.05 * rng.standard_normal(60 * RATE)).astype(np.float32),
            RATE,
            subtype="PCM_16",
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--speech_commands", action="store_true", help="The Speech Commands v0.01 layout.")
    for split, default in (("train", 400), ("validation", 40), ("test", 40)):
        parser.add_argument(f"--{split}", type=int, default=default)
    args = parser.parse_args()
    if args.speech_commands:
        speech_commands_like(args.root, {s: getattr(args, s) for s in FOLDERS})
        print(f"Speech Commands layout -> {args.root}")
        raise SystemExit
    seconds = librispeech_like(args.root, {s: getattr(args, s) for s in FOLDERS})
    print(f"{len(seconds)} utterances, {sum(seconds) / 3600:.2f} h, mean {np.mean(seconds):.1f} s -> {args.root}")


def speech_with_pauses(folder: Path, pause_s: float = 1.5) -> np.ndarray:
    """Three espeak-ng sentences, each followed by `pause_s` of silence, at 48 kHz int16 (what a
    browser sends): about half of it speech."""
    from scripts.make_smoke_data import speak

    sentences = ("the quick brown fox jumps over the lazy dog", "speech recognition turns audio into text",
                 "paris is the capital of france and berlin is the capital of germany")  # fmt: skip
    pieces = []
    for i, text in enumerate(sentences):
        pieces += [sf.read(speak(text, folder / f"{i}.wav"), dtype="float32")[0], np.zeros(int(pause_s * 16_000))]
    audio = resample_poly(np.concatenate(pieces), 3, 1)
    return (audio / np.abs(audio).max() * 0.5 * 32767).astype(np.int16)


# The QA benchmarks' question and the words their contexts repeat (the QA tokenizer's corpus).
QA_QUESTION = "when was the tower built"
QA_WORDS = "the tower was built in paris in eighteen eighty nine and it is the capital of france".split()  # noqa: SIM905


def build_checkpoints(root: Path, speech_only: bool = False) -> None:
    """The four slots at real sizes with random weights (only `asr` and `kws` with `speech_only`)."""
    import torch
    from transformers import (
        DistilBertConfig,
        DistilBertForQuestionAnswering,
        HubertConfig,
        HubertForCTC,
        HubertForSequenceClassification,
        XLMRobertaConfig,
        XLMRobertaForQuestionAnswering,
    )

    from core.checkpoint import Metrics, save_checkpoint
    from scripts.make_smoke_data import wordpiece_tokenizer
    from scripts.tiny_configs import speech_extractor
    from speech import keywords
    from speech.ctc import build_char_vocab, make_processor

    corpus = [" ".join(QA_WORDS), QA_QUESTION]

    def metrics(task: str) -> Metrics:
        return Metrics(task=task, hyperparameters={"note": "random weights, for timing"})

    torch.manual_seed(0)
    processor = make_processor(build_char_vocab(corpus))
    distilhubert = {"num_hidden_layers": 2}  # ntu-spml/distilhubert: HuBERT-base widths, 2 layers
    asr = HubertForCTC(HubertConfig(vocab_size=len(processor.tokenizer), **distilhubert))
    save_checkpoint(root / "asr", asr, processor, metrics("asr"))
    labels = {"num_labels": 12, "id2label": keywords.ID2LABEL, "label2id": keywords.LABEL2ID}
    save_checkpoint(
        root / "kws",
        HubertForSequenceClassification(HubertConfig(**distilhubert, **labels)),
        speech_extractor(),
        metrics("kws"),
    )
    if speech_only:
        return
    save_checkpoint(
        root / "qa-distilbert",
        DistilBertForQuestionAnswering(DistilBertConfig()),
        wordpiece_tokenizer(corpus),
        metrics("qa"),
    )
    xlmr = XLMRobertaConfig(vocab_size=250_002, max_position_embeddings=514, type_vocab_size=1)
    save_checkpoint(root / "qa-xlmr", XLMRobertaForQuestionAnswering(xlmr), wordpiece_tokenizer(corpus), metrics("qa"))


def ctc_checkpoint(root: Path, model: str) -> None:
    """A CTC checkpoint of `model`'s architecture at real size (or the tests' tiny one), random weights."""
    from transformers import HubertConfig, HubertForCTC, Wav2Vec2Config, Wav2Vec2ForCTC

    from core.checkpoint import Metrics, save_checkpoint
    from speech.ctc import build_char_vocab, make_processor

    processor = make_processor(build_char_vocab(["the quick brown fox jumps over the lazy dog"]))
    vocab = len(processor.tokenizer)
    if model == "wav2vec2-base":
        net = Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=vocab))  # wav2vec 2.0 base: 12 layers, 768 wide
    elif model == "tiny":  # the tests' tiny HuBERT: every step of a benchmark in seconds
        from scripts.tiny_configs import tiny_hubert_config

        net = HubertForCTC(tiny_hubert_config(vocab_size=vocab))
    else:
        net = HubertForCTC(HubertConfig(vocab_size=vocab, num_hidden_layers=2))  # DistilHuBERT's shape
    save_checkpoint(root / "asr", net, processor, Metrics(task="asr", hyperparameters={"note": "random weights"}))
