"""Fine-tune DistilBERT or XLM-RoBERTa for extractive QA on SQuAD v2 (unanswerable questions
included).

    python -m train.qa train/configs/qa_distilbert.json     # -> checkpoints/qa-distilbert
    python -m train.qa train/configs/qa_xlmr.json           # -> checkpoints/qa-xlmr
    torchrun --standalone --nproc_per_node 4 -m train.qa train/configs/qa_xlmr.json   # docs/training.md

Writes the checkpoint contract (core/checkpoint.py) to --output_dir.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding

from core.examples import ExampleSet
from core.structure import structure
from qa import extractive
from qa.error_analysis import qa_rows
from qa.squad_data import SquadFormatError, from_flat, gold_answers, load_file
from qa.squad_metric import robust_threshold, squad_v2
from train.common import GroupedTrainer, RunArguments, begin, every_parameter_used
from train.hub_data import HubDataset, dataset_record, first_rows, open_splits, read_split
from train.publish import command_line, publish_run

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="distilbert-base-uncased",
        metadata={"help": "distilbert-base-uncased, xlm-roberta-base, or a local save_pretrained folder."},
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision."})


@dataclass
class DataArguments:
    train_file: str | None = field(
        default=None,
        metadata={"help": "SQuAD v2 JSON (data/paragraphs/qas) or flat JSON lines; else the hub dataset."},
    )
    validation_file: str | None = field(default=None, metadata={"help": "As train_file, for validation."})
    dataset_name: str = field(default="rajpurkar/squad_v2", metadata={"help": "Parquet-backed hub dataset id."})
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub dataset revision."})
    max_length: int = field(default=512, metadata={"help": "Tokens per window (question + context)."})
    doc_stride: int = field(default=128, metadata={"help": "Tokens of overlap between windows."})
    n_best: int = field(default=20, metadata={"help": "Start/end candidates per window."})
    max_answer_length: int = field(default=30, metadata={"help": "Longest answer, in tokens."})


@dataclass
class Arguments:
    """This script's arguments besides TrainingArguments (`Run.training_args`), by name."""

    model: ModelArguments
    data: DataArguments
    run: RunArguments


class FeatureDataset(torch.utils.data.Dataset):
    def __init__(self, features: extractive.Features):
        self.encodings = features.encodings
        self.lengths = [len(ids) for ids in features.encodings["input_ids"]]

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.encodings.items()}


class Evaluation(NamedTuple):
    """SQuAD v2 scores on the evaluation examples, and each example's null-minus-best margin
    (from which the app's default threshold is chosen)."""

    metrics: dict[str, float]
    null_diffs: dict[str, float]
    predictions: list[extractive.Prediction]


class QATrainer(GroupedTrainer):
    """Evaluation = loss on the validation windows + post-processed SQuAD v2 EM/F1 per example."""

    def __init__(
        self,
        *args,
        eval_examples: list[extractive.Example],
        eval_features: extractive.Features,
        data_args: DataArguments,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.eval_examples = eval_examples
        self.eval_features = eval_features
        self.data_args = data_args

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        return self.evaluate_answers(eval_dataset, ignore_keys, metric_key_prefix).metrics

    def evaluate_answers(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> Evaluation:
        """`evaluate`, also returning the null-score margins of the examples."""
        output = self.predict_in_order(  # postprocess maps windows to examples by position
            eval_dataset or self.eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
        )
        start_logits, end_logits = output.predictions
        predictions = extractive.postprocess(
            self.eval_examples,
            self.eval_features,
            start_logits,
            end_logits,
            self.data_args.n_best,
            self.data_args.max_answer_length,
        )
        null_diffs = {e.id: p.score_diff for e, p in zip(self.eval_examples, predictions, strict=True)}
        scores = squad_v2(
            gold_answers(self.eval_examples),
            {e.id: p.text for e, p in zip(self.eval_examples, predictions, strict=True)},
            null_diffs,
        )
        metrics = {f"{metric_key_prefix}_{k}": float(v) for k, v in scores.items()}
        metrics[f"{metric_key_prefix}_loss"] = float(output.metrics.get(f"{metric_key_prefix}_loss", float("nan")))
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return Evaluation(metrics, null_diffs, predictions)


def length_histogram(tokenizer, examples: list[extractive.Example], max_length: int, bins: int = 20) -> dict[str, Any]:
    """Token lengths of question + context, untruncated (figure 10 of the course report this project recreates)."""
    lengths = np.array(
        [len(ids) for ids in tokenizer([e.question for e in examples], [e.context for e in examples])["input_ids"]]
    )
    counts, edges = np.histogram(lengths, bins=bins)
    return {
        "counts": counts.tolist(),
        "bin_edges": edges.tolist(),
        "mean": float(lengths.mean()),
        "max": int(lengths.max()),
        "over_max_length": int((lengths > max_length).sum()),
    }


def load_named(path: str) -> list[extractive.Example]:
    """A SQuAD v2 file's examples; a file in another format is named in the error (the app's
    batch upload has one file, a run has two)."""
    try:
        return load_file(path)
    except SquadFormatError as err:
        raise SquadFormatError(f"{path}: {err}") from err


def main(argv: list[str] | None = None) -> Path:
    run = begin(Arguments, argv)
    args = run.arguments

    # 1. Data: SQuAD v2 examples from files or the hub; --subset takes the first N of each split.
    n_train, n_val = (args.run.subset or [None, None])[:2]
    dataset = None
    with run.reading_data():
        if args.data.train_file:
            train_all = load_named(args.data.train_file)
            val_file = args.data.validation_file or args.data.train_file
            val_all = train_all if val_file == args.data.train_file else load_named(val_file)  # read once
            train_examples, val_examples = train_all[:n_train], val_all[:n_val]
        else:
            hub = HubDataset(args.data.dataset_name, args.data.dataset_revision)
            dataset = open_splits(hub, ["train", "validation"])
            train_examples = from_flat(first_rows(read_split(dataset, "train"), n_train))
            val_examples = from_flat(first_rows(read_split(dataset, "validation"), n_val))
    logger.info(
        "examples: %d train, %d validation (%d unanswerable)",
        len(train_examples),
        len(val_examples),
        sum(not e.answers for e in val_examples),
    )

    # 2. Windows: question first, context truncated with overflow; unanswerable windows -> CLS.
    with run.phase("features"):
        tokenizer = AutoTokenizer.from_pretrained(args.model.model_name_or_path, revision=args.model.model_revision)
        train_features = extractive.prepare(
            tokenizer, train_examples, args.data.max_length, args.data.doc_stride, True
        )
        val_features = extractive.prepare(tokenizer, val_examples, args.data.max_length, args.data.doc_stride, True)

    # 3. Model with a start/end head (no pooler, no layer drop: every parameter trains every step).
    model = AutoModelForQuestionAnswering.from_pretrained(
        args.model.model_name_or_path, revision=args.model.model_revision, use_safetensors=True
    )
    run.change_training_args(every_parameter_used(run.training_args))

    # 4-5. Train with dynamic padding; evaluate loss + EM/F1 every eval_steps.
    trainer = QATrainer(
        model=model,
        args=run.training_args,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=FeatureDataset(train_features),
        eval_dataset=FeatureDataset(val_features),
        processing_class=tokenizer,
        eval_examples=val_examples,
        eval_features=val_features,
        data_args=args.data,
    )
    with run.phase("train"):
        trainer.train(resume_from_checkpoint=args.run.resume or None)  # True: the last one in run_dir

    # 6. Final validation; its best-F1 null threshold becomes the app's default. Publish.
    with run.phase("evaluate"):
        evaluation = trainer.evaluate_answers(metric_key_prefix="validation")
    final = {k.removeprefix("validation_"): v for k, v in evaluation.metrics.items() if k != "epoch"}
    threshold = robust_threshold(evaluation.null_diffs, final.get("best_f1_thresh", 0.0))
    extra = {
        **dataset_record(dataset),
        "null_score_diff_threshold": threshold,
        "token_lengths": length_histogram(tokenizer, train_examples, args.data.max_length),
        "structure": structure(model.config, model.num_parameters()),
        "windows": {"train": len(train_features.example_index), "validation": len(val_features.example_index)},
    }
    logger.info("final: %s", final)
    examples = None
    if args.run.examples:  # each validation question as the app answers it, for the comparison's explorer
        rows, contexts = qa_rows(val_examples, evaluation.predictions, threshold)
        examples = ExampleSet("qa", "validation", rows, contexts=contexts)
    return publish_run(
        run,
        trainer,
        tokenizer,
        model=trainer.model,
        task="qa",
        final={"validation": final},
        sizes={
            "train": len(train_examples),
            "validation": len(val_examples),
            "validation_unanswerable": sum(not e.answers for e in val_examples),
        },
        params=run.hyperparameters(),
        command=command_line("train.qa", argv),
        extra=extra,
        examples=examples,
    )


if __name__ == "__main__":
    main()
