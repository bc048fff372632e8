"""Tiny random models for all four slots, saved in the checkpoint contract.

Built from configs (no hub), small enough that loading and a forward pass take milliseconds on
CPU. Used by the tests, the benchmarks and `scripts/screenshot.py`.
"""

from __future__ import annotations

from pathlib import Path

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

from core.checkpoint import Metrics, hardware_info, save_checkpoint
from scripts.make_smoke_data import unigram_tokenizer, wordpiece_tokenizer
from scripts.tiny_configs import speech_extractor, tiny_hubert_config, tiny_qa_config
from speech import keywords
from speech.ctc import build_char_vocab, make_processor

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "speech recognition turns audio into text",
    "keyword spotting listens for yes no up down left right on off stop go",
    "question answering finds the answer span in a context paragraph",
    "when was the tower built it was built in eighteen eighty nine",
    "paris is the capital of france and berlin is the capital of germany",
    "la tour eiffel se trouve a paris",
]


def hubert_config(**overrides) -> HubertConfig:
    """The shared tiny HuBERT with a 3-stage conv front end: a forward pass takes ms."""
    return tiny_hubert_config(stages=3, intermediate_size=37, **overrides)


def tiny_metrics(task: str, sizes: dict[str, int], final: dict[str, dict]) -> Metrics:
    return Metrics(
        task=task,
        final=final,
        dataset_sizes=sizes,
        history=[{"step": 1, "epoch": 1.0, "loss": 1.0}],
        hyperparameters={"learning_rate": 1e-3, "note": "random tiny model for tests"},
        hardware=hardware_info(),
    )


def build_asr(target: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    processor = make_processor(build_char_vocab(CORPUS))
    config = hubert_config(
        vocab_size=len(processor.tokenizer), pad_token_id=processor.tokenizer.pad_token_id, ctc_loss_reduction="mean"
    )
    metrics = tiny_metrics("asr", {"train": 4, "validation": 2, "test": 2}, {"test": {"wer": 1.0, "cer": 1.0}})
    return save_checkpoint(target, HubertForCTC(config), processor, metrics)


def build_kws(target: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = kws_config()
    extractor = speech_extractor()
    metrics = tiny_metrics("kws", {"train": 12, "validation": 12, "test": 12}, {"test": {"accuracy": 0.0}})
    return save_checkpoint(target, HubertForSequenceClassification(config), extractor, metrics)


def qa_metrics() -> Metrics:
    scores = {"exact": 0.0, "f1": 0.0, "total": 2, "HasAns_exact": 0.0, "NoAns_exact": 0.0}
    return tiny_metrics("qa", {"train": 8, "validation": 2}, {"validation": scores})


def distilbert_config(tokenizer) -> DistilBertConfig:
    return tiny_qa_config("distilbert", tokenizer, hidden=32, intermediate=37, positions=128)


def xlmr_config(tokenizer) -> XLMRobertaConfig:
    return tiny_qa_config("xlmr", tokenizer, hidden=32, intermediate=37, positions=128)


def kws_config() -> HubertConfig:
    """The tiny HuBERT classifier over the 12 keyword labels."""
    return hubert_config(
        num_labels=len(keywords.LABELS),
        id2label=keywords.ID2LABEL,
        label2id=keywords.LABEL2ID,
        classifier_proj_size=16,
    )


def build_qa_distilbert(target: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    tokenizer = wordpiece_tokenizer(CORPUS)
    config = distilbert_config(tokenizer)
    return save_checkpoint(target, DistilBertForQuestionAnswering(config), tokenizer, qa_metrics())


def build_qa_xlmr(target: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    tokenizer = unigram_tokenizer(CORPUS)
    config = xlmr_config(tokenizer)
    return save_checkpoint(target, XLMRobertaForQuestionAnswering(config), tokenizer, qa_metrics())


BUILDERS = {"asr": build_asr, "kws": build_kws, "qa-distilbert": build_qa_distilbert, "qa-xlmr": build_qa_xlmr}


def build_all(checkpoints: Path) -> dict[str, Path]:
    """Write all four tiny checkpoints under `checkpoints/<slot>/`."""
    return {slot: build(Path(checkpoints) / slot) for slot, build in BUILDERS.items()}
