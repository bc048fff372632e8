"""Training a head on a frozen encoder: the Trainer's model (`FrozenEncoderHead`) fed either
stored features (train/feature_store.py, read by train/stored_batches.py) or the live encoder,
and the arguments that choose between them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from speech.heads import HeadOutput, encode, head_of, mean_pooling_weights
from train.augment import Augment
from train.common import every_parameter_used
from train.feature_store import encoder_fingerprint, open_or_build, store_key
from train.graphed_step import GraphedPoolingStep
from train.stored_batches import CachedDataset, collate_features, device_copies

logger = logging.getLogger(__name__)


@dataclass
class FeatureArguments:
    """The frozen-encoder path (used when --freeze encoder)."""

    feature_cache: bool = field(
        default=True,
        metadata={
            "help": "Run the frozen encoder once and train the head on its stored outputs. "
            "--no_feature_cache runs the encoder on every batch of every epoch instead."
        },
    )
    feature_cache_dir: str = field(
        default="outputs/feature_cache",
        metadata={"help": "Where stores live; one folder per (encoder, layers, clips, preprocessing, precision)."},
    )
    cache_batch_seconds: float = field(
        default=320.0, metadata={"help": "Audio seconds (padded) per encoder batch while building a store."}
    )
    cache_workers: int | None = field(
        default=None,
        metadata={
            "help": "Decoding worker processes while building a store (default: one per core, none for a "
            "store of one or two encoder batches). A build is bound by decoding (metrics.json says)."
        },
    )
    cuda_graphs: bool = field(
        default=True,
        metadata={
            "help": "On one GPU, replay a pooling head's training step (KWS on stored features) from CUDA "
            "graphs: the step is launch-bound. --no_cuda_graphs runs it eagerly."
        },
    )
    lean_loop: bool = field(
        default=False,
        metadata={
            "help": "Experimental, unmeasured on a GPU: on stored features, train in a lean epoch "
            "(train/lean_loop.py: the same batches, loss, optimizer, logging and checkpoints without the "
            "Trainer's per-step generality; it overrides private Trainer members). Off: the Trainer's own epoch."
        },
    )
    graphed_update: bool = field(
        default=False,
        metadata={
            "help": "Experimental, unmeasured on a GPU: with --lean_loop on one GPU, replay each optimizer "
            "update (clipping, a fused AdamW step, zeroing the gradients) from a CUDA graph "
            "(train/graphed_update.py); bench.graph_check compares it with the eager update."
        },
    )
    store_device_share: float = field(
        default=0.5,
        metadata={
            "help": "On a GPU, copy the stores there when together they fit in this share of its free "
            "memory: each batch is then gathered on the GPU, with no read from disk or copy from the "
            "host per step. 0 keeps them on the host (memory-mapped)."
        },
    )
    store_workers: int = field(
        default=0,
        metadata={
            "help": "DataLoader workers while training on stored features (replaces --dataloader_num_workers "
            "there). Reading a memory-mapped store in the main process is cheaper than handing "
            "batches between processes (bench/data_loading.py)."
        },
    )
    head: str = field(
        default="linear",
        metadata={
            "help": "'linear': the course report's head (linear, on the last layer). 'superb': SUPERB's "
            "downstream on a learned mix of all layers (ASR: 2-layer BiLSTM + CTC; KWS: projection + mean + linear).",
            "choices": ["linear", "superb"],
        },
    )


# What metrics.json records about each store (a store built by an older version lacks the last four).
BUILD_FACTS = (
    "bytes",
    "build_seconds",
    "audio_seconds_per_second",
    "decode_wait_seconds",
    "encoder_seconds",
    "workers",
    "bound_by",
)


class FrozenEncoderHead(nn.Module):
    """What the Trainer trains when the encoder is frozen: the model's head, fed either stored
    hidden states (`hidden`, `frame_lengths`) or audio that the frozen encoder turns into them on
    the spot (`input_values`, `attention_mask`). The encoder always runs in eval mode: frozen means
    no dropout and no masking inside it, so both feeds give the head the same numbers."""

    def __init__(
        self,
        model: nn.Module,
        live_encoder: bool,
        loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        mask_time_prob: float = 0.0,
        mask_time_length: int = 10,
        shift_frames: int = 0,
        cuda_graphs: bool = False,
        lean_loop: bool = False,
        graphed_update: bool = False,
    ):
        super().__init__()
        self.head = head_of(model)
        self.encoder = model.base_model if live_encoder else None
        self.loss = loss  # an nn.Module loss (class weights as a buffer) moves to the GPU with the head
        # Stored features and a pooling head: fixed-size, launch-bound steps (train/graphed_step.py).
        graphable = cuda_graphs and not live_encoder and loss is not None and hasattr(self.head, "pooled_logits")
        self.graphed = GraphedPoolingStep(self.head, loss) if graphable else None
        self.mask_time_prob, self.mask_time_length, self.shift_frames = mask_time_prob, mask_time_length, shift_frames
        self.lean_loop = lean_loop and not live_encoder  # stored features: train.lean_loop's epoch
        self.graphed_update = graphed_update and self.lean_loop  # its updates from a graph

    def train(self, mode: bool = True) -> FrozenEncoderHead:
        super().train(mode)
        if self.encoder is not None:
            self.encoder.eval()
        return self

    def forward(
        self,
        labels: torch.Tensor | None = None,
        hidden: torch.Tensor | None = None,
        frame_lengths: torch.Tensor | None = None,
        frame_counts: Sequence[int] | None = None,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> HeadOutput:
        if hidden is None:
            with torch.no_grad():
                sample_lengths = None if attention_mask is None else attention_mask.sum(-1)
                hidden, frame_lengths = encode(
                    self.encoder,
                    input_values,
                    sample_lengths,
                    self.head.layers,
                )
        augment = self._draw(hidden, frame_lengths, frame_counts)
        graphed = (
            self.graphed is not None
            and self.training
            and torch.is_grad_enabled()
            and hidden.is_cuda
            and frame_counts is not None
            and labels is not None
        )
        # A light head runs in fp32 even under bf16 autocast: its arithmetic is negligible, and
        # autocast would add a cast kernel for every weight, forward and backward.
        with torch.autocast(hidden.device.type, enabled=False) if self.head.light else contextlib.nullcontext():
            if graphed:  # pooling weights from the CPU, where the graph's input copy reads them
                if augment is not None:
                    weights = augment.pooling_weights()
                else:
                    weights = mean_pooling_weights(torch.tensor(frame_counts), hidden.shape[1])
                logits, loss = self.graphed(hidden, weights, frame_lengths, labels)
                return HeadOutput(loss=loss, logits=logits)
            head_input = hidden.float() if self.head.light else hidden
            logits = self._head(head_input, frame_lengths, augment)
        loss = None if labels is None or self.loss is None else self.loss(logits, frame_lengths, labels)
        frame_lengths_out = frame_lengths if self.head.per_frame else None
        return HeadOutput(loss=loss, logits=logits, frame_lengths=frame_lengths_out)

    def _draw(
        self, hidden: torch.Tensor, frame_lengths: torch.Tensor, frame_counts: Sequence[int] | None
    ) -> Augment | None:
        """This batch's shift and time mask while training, if any is asked for."""
        if not self.training or not (self.shift_frames or self.mask_time_prob):
            return None
        # Stored batches bring their frame counts as a list; live ones cost a read-back.
        counts = frame_lengths.tolist() if frame_counts is None else frame_counts
        return Augment.draw(counts, hidden.shape[1], self.shift_frames, self.mask_time_prob, self.mask_time_length)

    def _head(self, hidden: torch.Tensor, frame_lengths: torch.Tensor, augment: Augment | None) -> torch.Tensor:
        """The head on (augmented) hidden states: a per-frame head sees shifted and masked frames;
        a pooling head gets the same effect folded into its pooling weights."""
        if augment is None:
            return self.head(hidden, frame_lengths)
        if self.head.per_frame:
            return self.head(augment.apply(hidden), frame_lengths)
        weights = augment.pooling_weights().to(hidden.device, non_blocking=True)
        return self.head(hidden, frame_lengths, weights)


def precision_of(training_args: Any) -> str:
    return "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"


def dataset_source(data_args: Any) -> str:
    """The dataset a speech script reads: its local tree, or hub id, configuration and revision."""
    return data_args.data_dir or f"{data_args.dataset_name}:{data_args.dataset_config}@{data_args.dataset_revision}"


class SplitData(NamedTuple):
    """One split as the frozen-encoder path needs it."""

    audio: torch.utils.data.Dataset  # items with "input_values"; a `lengths` list in samples
    labels: Sequence[Any]  # per clip: a class id, or CTC label ids
    identities: Sequence[str]  # per clip, in order: `audio_identity`, what the store key hashes


@dataclass(frozen=True)
class HeadTraining:
    """How the head trains on the encoder's outputs: its loss and the feature-space augmentation."""

    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    mask_time_prob: float = 0.0
    mask_time_length: int = 10
    shift_frames: int = 0


class TrainerInputs(NamedTuple):
    """What the Trainer gets: the model it trains, a dataset per split, the collator, and the
    TrainingArguments fields these inputs need set otherwise (`Run.change_training_args`);
    `cache_info` is what metrics.json records about the stores."""

    model: nn.Module
    datasets: dict[str, Any]
    collator: Callable
    training_changes: dict[str, Any]
    cache_info: dict[str, Any]


def frozen_head(
    model: nn.Module,
    splits: dict[str, SplitData],
    *,
    audio_collator: Callable,
    dataset: dict[str, Any],
    preprocessing: dict[str, Any],
    training: HeadTraining,
    features: FeatureArguments,
    training_args: Any,
) -> TrainerInputs:
    """The Trainer's inputs for a frozen encoder: stored features (built or reused per split,
    keyed by `dataset` and `preprocessing` besides the encoder and clips) or, with
    --no_feature_cache, the audio datasets and a live encoder."""
    # Graphs in one process on one GPU only: DataParallel replicates the head on every step, and
    # multi-process runs are not tested with them.
    single = training_args.world_size == 1 and training_args.n_gpu <= 1
    if not single and (features.cuda_graphs or features.graphed_update):
        logger.info(
            "CUDA graphs: off (%d processes, %d GPUs): every step runs eagerly",
            training_args.world_size,
            training_args.n_gpu,
        )
    head = FrozenEncoderHead(
        model,
        live_encoder=not features.feature_cache,
        loss=training.loss,
        mask_time_prob=training.mask_time_prob,
        mask_time_length=training.mask_time_length,
        shift_frames=training.shift_frames,
        cuda_graphs=features.cuda_graphs and single,
        lean_loop=features.lean_loop,
        graphed_update=features.graphed_update and single,
    )
    all_used = every_parameter_used(training_args)
    audio = {name: split.audio for name, split in splits.items()}
    if not features.feature_cache:
        return TrainerInputs(head, audio, audio_collator, all_used, {"feature_cache": None})
    precision = precision_of(training_args)
    encoder_digest = encoder_fingerprint(model.base_model)
    datasets, stores, built = {}, {}, {}
    for name, split in splits.items():
        if not len(split.audio):
            datasets[name] = split.audio
            continue
        key = store_key(
            encoder_digest, head.head.layers, precision, {**dataset, "split": name}, split.identities, preprocessing
        )
        with training_args.main_process_first(local=True, desc=f"feature cache ({name})"):
            store = open_or_build(
                features.feature_cache_dir,
                key,
                split.audio,
                model.base_model,
                device=training_args.device,
                batch_seconds=features.cache_batch_seconds,
                num_workers=features.cache_workers,
                name=name,
            )
        built[name] = store
        stores[name] = {
            "path": str(store.path),
            "reused": store.reused,
            **{k: store.manifest.get(k) for k in BUILD_FACTS},
        }
    copies, placement = device_copies(built, training_args.device, features.store_device_share, features.store_workers)
    logger.info("feature cache: training reads the stores from the %s", placement)
    for name, store in built.items():
        datasets[name] = CachedDataset(store, splits[name].labels, splits[name].audio.lengths, copies.get(name))
        stores[name]["read_from"] = placement
    # Workers were for decoding audio; the stores need none (the builds above used them).
    # The loss check the Trainer makes on every step (`logging_nan_inf_filter`) reads the loss
    # back from the GPU: a host sync per ~1 ms head step. Off here, a NaN or inf loss shows in
    # the logged loss instead of being replaced by the running mean.
    persistent = training_args.dataloader_persistent_workers and features.store_workers > 0
    pin = training_args.dataloader_pin_memory and not copies  # on the device, batches are already there
    reading = {
        "dataloader_num_workers": features.store_workers,
        "dataloader_persistent_workers": persistent,
        "logging_nan_inf_filter": False,
        "remove_unused_columns": False,  # its wrapper would take a `StoredBatch` apart item by item
        "dataloader_pin_memory": pin,
    }
    return TrainerInputs(head, datasets, collate_features, {**reading, **all_used}, {"feature_cache": stores})
