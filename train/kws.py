"""Fine-tune DistilHuBERT for keyword spotting (12 SUPERB classes of Speech Commands v0.01) with a
class-weighted cross-entropy.

    python -m train.kws train/configs/kws_hw4.json            # the course report's recipe
    python -m train.kws train/configs/kws_superb.json            # SUPERB's layer-mix head
    python -m scripts.make_smoke_data && python -m train.kws train/configs/kws_smoke.json
    torchrun --standalone --nproc_per_node 4 -m train.kws train/configs/kws_hw4.json   # docs/training.md

Writes the checkpoint contract (core/checkpoint.py) to --output_dir (default checkpoints/kws).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from core.examples import ExampleSet
from core.metrics import classification_report
from speech import keywords
from speech.audio import TARGET_RATE, stored
from speech.error_analysis import kws_listen_order, kws_rows
from speech.spotting import fit_window
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
from train.frozen_head import (
    FeatureArguments,
    FrozenEncoderHead,
    HeadTraining,
    SplitData,
    TrainerInputs,
    dataset_source,
    frozen_head,
)
from train.hub_data import HubDataset, OpenedDataset, dataset_record
from train.kws_streams import NoNoise, StreamArguments, headline, judge_as_deployed, stored_alarms
from train.publish import command_line, publish_run
from train.speech_commands import (
    CLIP_S,
    Clip,
    clip_audio,
    cut_silence,
    load_hub,
    load_local,
    noise_sources,
    subset,
)
from train.weighted_loss import WeightedCrossEntropy

logger = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")
CLIP_SAMPLES = int(CLIP_S * TARGET_RATE)


ModelArguments = SpeechModelArguments


@dataclass
class DataArguments:
    data_dir: str | None = field(
        default=None, metadata={"help": "A local Speech Commands v0.01 tree; when set, the hub is not used."}
    )
    test_dir: str | None = field(
        default=None, metadata={"help": "The separate official v0.01 test set (folders incl. _silence_, _unknown_)."}
    )
    dataset_name: str = field(default="google/speech_commands", metadata={"help": "Hub dataset id."})
    dataset_config: str | None = field(default="v0.01", metadata={"help": "Hub dataset configuration."})
    dataset_revision: str | None = field(
        default="refs/convert/parquet",
        metadata={"help": "Hub revision; the parquet conversion loads without the dataset script."},
    )
    silence_clips: int = field(
        default=2000, metadata={"help": "1 s `_silence_` windows cut from the background-noise files for training."}
    )
    drop_silence: bool = field(
        default=False,
        metadata={"help": "Drop `_silence_` from every split (the course report's other remedy for the imbalance)."},
    )
    class_weights: str = field(
        default="balanced",
        metadata={
            "help": "'balanced': scikit-learn compute_class_weight over the training labels, in the "
            "cross-entropy; 'none': plain cross-entropy.",
            "choices": ["balanced", "none"],
        },
    )
    balanced_sampler: bool = field(
        default=False,
        metadata={"help": "Sample training clips with probability 1/count(class) instead (an alternative remedy)."},
    )
    augment: bool = field(
        default=True, metadata={"help": "Training only: random time shift (±100 ms) and gain (±6 dB)."}
    )


@dataclass
class Arguments:
    """This script's arguments besides TrainingArguments (`Run.training_args`), by name."""

    model: ModelArguments
    features: FeatureArguments
    data: DataArguments
    streams: StreamArguments
    run: RunArguments


class ClipDataset(torch.utils.data.Dataset):
    """1 s clips at 16 kHz, decoded when asked for; longer clips are cropped (randomly when
    training), shorter ones padded with silence."""

    def __init__(self, clips: list[Clip], extractor, train: bool, augment: bool, seed: int):
        self.clips, self.extractor, self.train, self.augment = clips, extractor, train, augment
        self.rng = np.random.default_rng(seed)
        self.lengths = [CLIP_SAMPLES] * len(clips)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        samples = clip_samples(self.clips[i], self.rng if self.train else None)
        if self.train and self.augment:
            samples = np.roll(samples, int(self.rng.integers(-1600, 1601)))
            samples = samples * np.float32(10 ** (self.rng.uniform(-6, 6) / 20))
        values = self.extractor(samples, sampling_rate=TARGET_RATE).input_values[0]
        return {"input_values": np.asarray(values, np.float32), "labels": self.clips[i].label}


def clip_samples(clip: Clip, rng: np.random.Generator | None = None) -> np.ndarray:
    """The clip's 1 s of 16 kHz audio, as the model hears it (`fit_clip`)."""
    return fit_clip(clip_audio(clip), rng)


def clip_id(clip: Clip, index: int) -> str:
    """A readable id: `word/file.wav` as in the dataset (plus the offset of a window cut from a
    longer file), else the clip's position."""
    audio = stored(clip.audio)
    path = audio.get("path") if isinstance(audio, dict) else audio
    name = "/".join(Path(str(path)).parts[-2:]) if path else f"clip {index}"
    return name if clip.start_s is None else f"{name}@{clip.start_s:.2f}s"


def per_example(clips: list[Clip], logits: np.ndarray, split: str, audio_mb: float) -> ExampleSet:
    """The split's clips with their true and predicted labels and top-3 probabilities; the audio
    of every mistake and of a few correct clips per class (speech/error_analysis.py)."""
    probs = torch.softmax(torch.from_numpy(np.asarray(logits, np.float32)), -1).numpy()
    rows = kws_rows([clip_id(c, i) for i, c in enumerate(clips)], keywords.LABELS, [c.label for c in clips], probs)
    listen = [(i, functools.partial(clip_samples, clips[i])) for i in kws_listen_order(rows)]
    return ExampleSet("kws", split, rows, listen, audio_mb=audio_mb)


def fit_clip(samples: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Exactly 1 s: a random crop of a longer clip with `rng` (training), else as the app does."""
    if rng is not None and len(samples) > CLIP_SAMPLES:
        start = int(rng.integers(0, len(samples) - CLIP_SAMPLES + 1))
        return samples[start : start + CLIP_SAMPLES]
    return fit_window(samples)


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "input_values": torch.from_numpy(np.stack([f["input_values"] for f in features])),
        "labels": torch.tensor([f["labels"] for f in features]),
    }


class WeightedTrainer(GroupedTrainer):
    """The class-weighted loss, and optionally a sampler that draws classes equally often."""

    def __init__(self, *args, loss: WeightedCrossEntropy, sample_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss, self.sample_weights = loss, sample_weights

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        if isinstance(model, FrozenEncoderHead):  # computes the loss itself, inside its CUDA graph if any
            outputs = model(**inputs, labels=labels)
            loss = outputs.loss
        else:
            outputs = model(**inputs)
            loss = self.loss(outputs.logits, None, labels)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        if self.sample_weights is not None:
            return torch.utils.data.WeightedRandomSampler(self.sample_weights, len(self.sample_weights))
        return super()._get_train_sampler(train_dataset)


def graph_use(trained: torch.nn.Module) -> dict[str, int] | None:
    """What metrics.json says about the head's CUDA graphs (None: eager steps only)."""
    graphed = getattr(trained, "graphed", None)
    return {"shapes": len(graphed.graphs), "eager_steps": graphed.eager_steps} if graphed and graphed.graphs else None


def load_splits(
    data: DataArguments, subset_sizes: list[int] | None, seed: int
) -> tuple[dict[str, list[Clip]], list[Clip], OpenedDataset | None]:
    """The three splits, from `--data_dir` or the hub (then also the dataset at its commit), and
    the background-noise recordings the training split's silence is cut from."""
    opened = None
    if data.data_dir:
        splits = load_local(Path(data.data_dir), Path(data.test_dir) if data.test_dir else None)
    else:
        # The parquet export declares no configs: `--dataset_config v0.01` names its folder.
        hub = HubDataset(data.dataset_name, data.dataset_revision, folder=data.dataset_config)
        splits, opened = load_hub(hub)
    noise = noise_sources(splits["train"])
    splits["train"] = cut_silence(splits["train"], data.silence_clips, seed)
    if data.drop_silence:
        silence = keywords.LABEL2ID[keywords.SILENCE]
        splits = {s: [c for c in clips if c.label != silence] for s, clips in splits.items()}
    limits = dict(zip(SPLITS, subset_sizes or [], strict=False))  # a subset may omit test: all of it
    return {s: subset(splits[s], limits.get(s), seed) for s in SPLITS}, noise, opened


def build_model(args: ModelArguments, head: str) -> torch.nn.Module:
    no_layerdrop = {"layerdrop": 0.0} if head == "superb" else {}
    model = AutoModelForAudioClassification.from_pretrained(
        args.model_name_or_path,
        revision=args.model_revision,
        num_labels=len(keywords.LABELS),
        id2label=keywords.ID2LABEL,
        label2id=keywords.LABEL2ID,
        use_safetensors=True,
        use_weighted_layer_sum=head == "superb",
        **no_layerdrop,
    )
    return apply_freeze(model, args.freeze)


def trainer_inputs(
    run: Run, model, clips: dict[str, list[Clip]], extractor, dataset: dict[str, Any], loss: WeightedCrossEntropy
) -> TrainerInputs:
    """What the Trainer gets. A frozen encoder runs once (stored features, or live with
    --no_feature_cache) on fixed 1 s clips; shift and time masking then act on its outputs.
    Otherwise the full model trains on augmented audio."""
    args = run.arguments
    frozen = args.model.freeze == "encoder"
    audio = {
        s: ClipDataset(clips[s], extractor, s == "train" and not frozen, args.data.augment, run.training_args.seed + i)
        for i, s in enumerate(SPLITS)
    }
    if not frozen:
        return TrainerInputs(model, audio, collate, {}, {})
    splits = {
        s: SplitData(
            audio[s], [c.label for c in clips[s]], [f"{audio_identity(c.audio)}@{c.start_s}" for c in clips[s]]
        )
        for s in SPLITS
    }
    preprocessing = {"extractor": extractor.to_dict(), "decode": "speech.audio.load_audio", "fit": "1 s fit_window"}
    training = HeadTraining(loss=loss)
    if args.data.augment:
        training = HeadTraining(
            loss=loss,
            mask_time_prob=model.config.mask_time_prob,
            mask_time_length=model.config.mask_time_length,
            shift_frames=5,
        )
    return frozen_head(
        model,
        splits,
        audio_collator=collate,
        dataset=dataset,
        preprocessing=preprocessing,
        training=training,
        features=args.features,
        training_args=run.training_args,
    )


def main(argv: list[str] | None = None) -> Path:
    run = begin(Arguments, argv)
    args = run.arguments

    # 1. Data: 12-class clips from the hub or a local tree; silence cut from background noise.
    with run.reading_data():
        clips, noise, dataset = load_splits(args.data, args.run.subset, run.training_args.seed)
        extractor = AutoFeatureExtractor.from_pretrained(
            args.model.model_name_or_path, revision=args.model.model_revision
        )

    # 2. Imbalance: class counts, balanced class weights (or a balanced sampler).
    train_labels = np.array([c.label for c in clips["train"]])
    counts = Counter(keywords.ID2LABEL[int(i)] for i in train_labels)
    weights = keywords.class_weights(train_labels) if args.data.class_weights == "balanced" else None
    logger.info("training class counts: %s", dict(counts))
    shown_weights = None if weights is None else dict(zip(keywords.LABELS, weights.round(3), strict=True))
    logger.info("class weights: %s", shown_weights)
    per_class = np.bincount(train_labels, minlength=len(keywords.LABELS))
    sample_weights = (1.0 / per_class[train_labels]).tolist() if args.data.balanced_sampler else None

    # 3. Model: pretrained encoder + a new 12-way head with the label maps in its config. A frozen
    #    encoder runs once over every split (or per batch, --no_feature_cache); only the head trains.
    with run.phase("features"):
        model = build_model(args.model, args.features.head)
        dataset_id = {"source": dataset_source(args.data), "test_dir": args.data.test_dir, "subset": args.run.subset}
        loss = WeightedCrossEntropy(weights)
        inputs = trainer_inputs(run, model, clips, extractor, dataset_id, loss)
        run.change_training_args(inputs.training_changes)
        datasets = inputs.datasets

    # 4. Metrics: accuracy, precision/recall/F1 micro and macro during training.
    def compute_metrics(pred) -> dict[str, float]:
        return classification_report(pred.label_ids, pred.predictions.argmax(-1), keywords.LABELS, full=False)

    # 5. Train, evaluating every eval_steps.
    trainer = WeightedTrainer(
        model=inputs.model,
        args=run.training_args,
        data_collator=inputs.collator,
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        processing_class=extractor,
        compute_metrics=compute_metrics,
        loss=loss,
        sample_weights=sample_weights,
    )
    with run.phase("train"):
        trainer.train(resume_from_checkpoint=args.run.resume or None)  # True: the last one in run_dir

    # 6. Final evaluation with per-class scores and confusion matrices; publish.
    #    The last split evaluated (test where there is one) is kept per clip for error analysis.
    final, examples, judged = {}, None, None
    with run.phase("evaluate"):
        for split in ("validation", "test"):
            if len(datasets[split]):
                judged = split  # the last split evaluated is also judged as deployed (step 7)
                prediction = trainer.predict_in_order(datasets[split], metric_key_prefix=split)
                labels = prediction.predictions.argmax(-1)
                report = classification_report(prediction.label_ids, labels, keywords.LABELS)
                final[split] = {**split_metrics(prediction.metrics, split), **report}
                if args.run.examples:
                    examples = per_example(clips[split], prediction.predictions, split, args.run.examples_audio_mb)

    # 7. The final model as deployed: the live detector over long streams of that split's clips.
    streaming, skipped = None, None
    if args.streams.stream_eval and judged and trainer.is_world_process_zero():
        with run.phase("streaming"):
            try:
                device, seed = run.training_args.device, run.training_args.seed
                streaming = judge_as_deployed(model, extractor, clips[judged], noise, args.streams, device, seed)
            except NoNoise as err:
                skipped = f"not judged as deployed: {err}"
                logger.warning(skipped)
        if streaming is not None:
            final[judged].update(headline(streaming["result"]))
            if examples is not None:
                examples.alarms = stored_alarms(
                    streaming["negative"], streaming["alarms"], args.streams.false_alarm_clips
                )
    logger.info("final: %s", {s: {k: v for k, v in m.items() if isinstance(v, float)} for s, m in final.items()})
    extra = {
        **dataset_record(dataset),
        "class_counts": {label: int(counts.get(label, 0)) for label in keywords.LABELS},
        "class_weights": None if weights is None else dict(zip(keywords.LABELS, weights.tolist(), strict=True)),
        **inputs.cache_info,
        "cuda_graphs": graph_use(inputs.model),
        "streaming": streaming and streaming["result"],
        "streaming_skipped": skipped,
    }
    return publish_run(
        run,
        trainer,
        extractor,
        model=model,
        task="kws",
        final=final,
        sizes={s: len(datasets[s]) for s in SPLITS},
        params=run.hyperparameters(),
        command=command_line("train.kws", argv),
        extra=extra,
        examples=examples,
    )


if __name__ == "__main__":
    main()
