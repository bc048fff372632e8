"""Fine-tune DistilHuBERT with a CTC head on LibriSpeech.

    python -m train.asr train/configs/asr_hw4.json            # the course report's recipe
    python -m train.asr train/configs/asr_superb.json            # SUPERB's BiLSTM head
    python -m train.asr train/configs/asr_smoke.json             # seconds on CPU
    torchrun --standalone --nproc_per_node 4 -m train.asr train/configs/asr_hw4.json   # docs/training.md

Writes the checkpoint contract (core/checkpoint.py) to --output_dir (default checkpoints/asr).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCTC

from core.examples import ExampleSet
from core.metrics import wer_cer
from speech.audio import TARGET_RATE, load_audio
from speech.ctc import (
    build_char_vocab,
    decode_labels,
    decode_predictions,
    make_processor,
    mask_padding,
    normalize_transcript,
)
from speech.error_analysis import asr_rows, worst
from speech.heads import SUPERB_LSTM, HubertSuperbForCTC, ctc_loss
from train.common import (
    GroupedTrainer,
    Run,
    RunArguments,
    SpeechModelArguments,
    apply_freeze,
    begin,
    split_metrics,
)
from train.feature_store import audio_identity
from train.frozen_head import FeatureArguments, HeadTraining, SplitData, TrainerInputs, dataset_source, frozen_head
from train.hub_data import HubDataset, OpenedDataset, dataset_record
from train.librispeech import Utterance, drop_long, load_hub, load_local
from train.publish import command_line, publish_run

logger = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


@dataclass
class ModelArguments(SpeechModelArguments):
    mask_time_prob: float = field(default=0.05, metadata={"help": "SpecAugment time masking probability."})
    superb_lstm_size: int = field(
        default=SUPERB_LSTM["lstm_size"],
        metadata={"help": "Units per direction of the --head superb BiLSTM (SUPERB: 1024)."},
    )


@dataclass
class DataArguments:
    data_dir: str | None = field(
        default=None,
        metadata={"help": "A local LibriSpeech tree (one folder per split); when set, the hub is not used."},
    )
    train_dir: str = field(default="train-clean-100", metadata={"help": "Training split folder under data_dir."})
    validation_dir: str = field(default="dev-clean", metadata={"help": "Validation split folder under data_dir."})
    test_dir: str = field(default="test-clean", metadata={"help": "Test split folder under data_dir."})
    dataset_name: str = field(default="openslr/librispeech_asr", metadata={"help": "Parquet-backed hub dataset id."})
    dataset_config: str | None = field(default="clean", metadata={"help": "Hub dataset configuration."})
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub dataset revision."})
    train_split: str = field(default="train.100", metadata={"help": "Hub training split."})
    validation_split: str = field(default="validation", metadata={"help": "Hub validation split."})
    test_split: str = field(default="test", metadata={"help": "Hub test split."})
    max_duration_s: float = field(default=20.0, metadata={"help": "Drop utterances longer than this."})


@dataclass
class Arguments:
    """This script's arguments besides TrainingArguments (`Run.training_args`), by name."""

    model: ModelArguments
    features: FeatureArguments
    data: DataArguments
    run: RunArguments


class SpeechDataset(torch.utils.data.Dataset):
    """Decodes each utterance when it is asked for (in dataloader workers), not up front."""

    def __init__(self, utterances: list[Utterance], durations: list[float], processor):
        self.utterances, self.processor = utterances, processor
        self.lengths = [int(d * TARGET_RATE) for d in durations]

    def __len__(self) -> int:
        return len(self.utterances)

    def label_ids(self, i: int) -> list[int]:
        return self.processor.tokenizer(normalize_transcript(self.utterances[i].text)).input_ids

    def __getitem__(self, i: int) -> dict[str, Any]:
        samples = load_audio(self.utterances[i].audio, max_duration_s=float("inf"))
        values = self.processor.feature_extractor(samples, sampling_rate=TARGET_RATE).input_values[0]
        return {"input_values": values, "labels": self.label_ids(i)}


@dataclass
class CTCCollator:
    """Pads audio (with an attention mask) and labels (with -100, which the CTC loss ignores)."""

    processor: Any

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.processor.feature_extractor.pad(
            [{"input_values": f["input_values"]} for f in features], return_attention_mask=True, return_tensors="pt"
        )
        labels = self.processor.tokenizer.pad({"input_ids": [f["labels"] for f in features]}, return_tensors="pt")
        batch["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"].ne(1), -100)
        return batch


class CTCTrainer(GroupedTrainer):
    """Evaluation returns greedy frame ids cut at each utterance's true length, not raw logits:
    far less memory, and no garbage from padded frames."""

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        if logits is None:
            return loss, logits, labels
        if isinstance(logits, tuple):  # a frozen-encoder head reports its frame counts
            logits, lengths = logits
        else:
            lengths = self.accelerator.unwrap_model(model)._get_feat_extract_output_lengths(
                inputs["attention_mask"].sum(-1)
            )
        return loss, mask_padding(logits.argmax(-1), lengths), labels


def load_splits(
    data: DataArguments, subset: list[int] | None
) -> tuple[dict[str, list[Utterance]], OpenedDataset | None]:
    """The three splits, from `--data_dir` or the hub (then also the dataset at its commit)."""
    limits = dict(zip(SPLITS, subset or [], strict=False))  # a subset may omit test: all of it
    if data.data_dir:
        folders = dict(zip(SPLITS, (data.train_dir, data.validation_dir, data.test_dir), strict=True))
        return {s: load_local(Path(data.data_dir) / folders[s], limits.get(s)) for s in SPLITS}, None
    splits = dict(zip(SPLITS, (data.train_split, data.validation_split, data.test_split), strict=True))
    return load_hub(HubDataset(data.dataset_name, data.dataset_revision, config=data.dataset_config), splits, limits)


def build_model(args: ModelArguments, head: str, tokenizer) -> torch.nn.Module:
    config = AutoConfig.from_pretrained(
        args.model_name_or_path,
        revision=args.model_revision,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
        mask_time_prob=args.mask_time_prob,
        layerdrop=0.0,
    )
    cls = AutoModelForCTC
    if head == "superb":  # the head's sizes live in the config, so the app rebuilds the same head
        config.superb_head = {**SUPERB_LSTM, "lstm_size": args.superb_lstm_size}
        cls = HubertSuperbForCTC
    model = cls.from_pretrained(
        args.model_name_or_path, revision=args.model_revision, config=config, use_safetensors=True
    )
    return apply_freeze(model, args.freeze)


def trainer_inputs(
    run: Run, model, datasets: dict[str, SpeechDataset], processor, dataset: dict[str, Any]
) -> TrainerInputs:
    """What the Trainer gets. A frozen encoder runs once (stored features, or live with
    --no_feature_cache) and only the head trains; otherwise the full model."""
    args = run.arguments
    collator = CTCCollator(processor)
    if args.model.freeze != "encoder":
        return TrainerInputs(model, datasets, collator, {}, {})
    splits = {
        s: SplitData(d, [d.label_ids(i) for i in range(len(d))], [audio_identity(u.audio) for u in d.utterances])
        for s, d in datasets.items()
    }
    preprocessing = {"extractor": processor.feature_extractor.to_dict(), "decode": "speech.audio.load_audio"}
    training = HeadTraining(
        loss=lambda logits, lengths, targets: ctc_loss(logits, lengths, targets, model.config),
        mask_time_prob=args.model.mask_time_prob,
        mask_time_length=model.config.mask_time_length,
    )
    return frozen_head(
        model,
        splits,
        audio_collator=collator,
        dataset=dataset,
        preprocessing=preprocessing,
        training=training,
        features=args.features,
        training_args=run.training_args,
    )


def per_example(utterances: list[Utterance], prediction: Any, tokenizer: Any, audio_mb: float) -> ExampleSet:
    """Each test utterance's reference and greedy transcript aligned by jiwer, with its WER and
    CER; the audio of the worst ones (speech/error_analysis.py)."""
    rows = asr_rows(
        [u.id for u in utterances],
        decode_labels(prediction.label_ids, tokenizer),
        decode_predictions(prediction.predictions, tokenizer),
    )
    order = {row["id"]: i for i, row in enumerate(rows)}
    listen = [
        (
            order[row["id"]],
            functools.partial(load_audio, utterances[order[row["id"]]].audio, max_duration_s=float("inf")),
        )
        for row in worst(rows)
    ]
    return ExampleSet("asr", "test", rows, listen, audio_mb=audio_mb)


def main(argv: list[str] | None = None) -> Path:
    run = begin(Arguments, argv)
    args = run.arguments

    # 1. Data: the same Utterance lists from the hub or a local tree; over-long clips dropped.
    with run.reading_data():
        raw, dataset = load_splits(args.data, args.run.subset)
        kept = {s: drop_long(raw[s], args.data.max_duration_s, s) for s in SPLITS}

        # 2. Vocabulary from the training transcripts only, as it would be for unseen test text.
        processor = make_processor(build_char_vocab(u.text for u in kept["train"][0]))
        datasets = {s: SpeechDataset(*kept[s], processor) for s in SPLITS}

    # 3. Model: pretrained encoder + a new CTC head sized to the vocabulary. A frozen encoder
    #    runs once over every split (or per batch, --no_feature_cache); then only the head trains.
    with run.phase("features"):
        model = build_model(args.model, args.features.head, processor.tokenizer)
        dataset_id = {"source": dataset_source(args.data), "subset": args.run.subset}
        inputs = trainer_inputs(run, model, datasets, processor, dataset_id)
        run.change_training_args(inputs.training_changes)

    # 4. Metrics: greedy decoding, WER and CER with jiwer.
    def compute_metrics(pred) -> dict[str, float]:
        return wer_cer(
            decode_labels(pred.label_ids, processor.tokenizer),
            decode_predictions(pred.predictions, processor.tokenizer),
        )

    # 5. Train, validating every eval_steps (the history in metrics.json).
    trainer = CTCTrainer(
        model=inputs.model,
        args=run.training_args,
        data_collator=inputs.collator,
        train_dataset=inputs.datasets["train"],
        eval_dataset=inputs.datasets["validation"],
        processing_class=processor.feature_extractor,
        compute_metrics=compute_metrics,
    )
    with run.phase("train"):
        trainer.train(resume_from_checkpoint=args.run.resume or None)  # True: the last one in run_dir

    # 6. Final evaluation on validation and test; publish the checkpoint.
    #    Test is kept per utterance (jiwer's alignment, audio of the worst) for error analysis.
    with run.phase("evaluate"):
        validation = trainer.evaluate(inputs.datasets["validation"], metric_key_prefix="validation")
        final = {"validation": split_metrics(validation, "validation")}
        prediction = trainer.predict_in_order(inputs.datasets["test"], metric_key_prefix="test")
        trainer.log(prediction.metrics)  # into the history, as `evaluate` would
        final["test"] = split_metrics(prediction.metrics, "test")
        examples = None
        if args.run.examples:
            examples = per_example(
                datasets["test"].utterances, prediction, processor.tokenizer, args.run.examples_audio_mb
            )
    logger.info("final: %s", final)
    sizes = {s: len(datasets[s]) for s in SPLITS}
    params = run.hyperparameters()
    return publish_run(
        run,
        trainer,
        processor,
        model=model,
        task="asr",
        final=final,
        sizes=sizes,
        params=params,
        command=command_line("train.asr", argv),
        extra={
            **dataset_record(dataset),
            "dropped_long": {s: len(raw[s]) - sizes[s] for s in SPLITS},
            **inputs.cache_info,
        },
        examples=examples,
    )


if __name__ == "__main__":
    main()
