"""Projected wall time of the training recipes of the course report this project recreates (HW4)
against this project's defaults, measured in one process on one device with the real
architectures (random weights) and synthetic data shaped like the real sets. Data loading is
excluded from both sides (bench/data_loading.py measures it).

    python -m bench.train_speed                  # on a GPU: real sizes; on CPU: tiny sizes
    python -m bench.train_speed --tiny --json out.json

Speech (frozen DistilHuBERT): the course report runs the encoder in fp32 on every batch of every epoch;
the default runs it once in bf16 (store build, length-grouped batches of --cache_batch_seconds)
and then trains the head on the stored outputs. QA: fp32 against bf16 autocast, batch 8 x 512.
Each step time is the mean over batches at evenly spaced quantiles of the length distribution,
times the recipe's number of steps.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
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

from scripts.tiny_configs import tiny_hubert_config
from speech.audio import TARGET_RATE
from speech.heads import HubertSuperbForCTC, ctc_loss, encode
from train.build_batches import length_batches
from train.frozen_head import FrozenEncoderHead

RATE = TARGET_RATE
TARGETS = {"asr": 5.0, "kws": 8.0, "qa-distilbert": 1.8, "qa-xlmr": 1.8}


@dataclass
class Speech:
    """A speech task's recipe and data shape (the HW4 course report's numbers)."""

    name: str
    clips: int
    epochs: int
    batch: int
    seconds: Callable[[np.random.Generator, int], np.ndarray]


def librispeech_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    # train-clean-100: mean about 12.7 s, most between 10 and 16 s; the recipe drops > 20 s.
    return np.clip(rng.normal(12.7, 3.3, n), 1.5, 20.0)


def tiny_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(rng.normal(3.0, 0.8, n), 1.0, 5.0)


SPEECH = {
    "asr": Speech("asr", 28_539, 5, 16, librispeech_seconds),
    "kws": Speech("kws", 51_094, 10, 64, lambda rng, n: np.ones(n)),
}
QA = {"qa-distilbert": 60_000, "qa-xlmr": 60_000}  # training examples; batch 8, 3 epochs, length 512


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], None], device: torch.device, repeat: int) -> float:
    fn()  # warm-up at this shape
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


def adamw(params, lr: float, device: torch.device) -> torch.optim.Optimizer:
    # The Trainer's default optimizer ("adamw_torch_fused"), on both sides of every comparison.
    return torch.optim.AdamW(params, lr=lr, fused=device.type == "cuda")


def hubert_config(tiny: bool, **extra) -> HubertConfig:
    if tiny:
        return tiny_hubert_config(**extra)
    # ntu-spml/distilhubert: HuBERT-base widths, 2 transformer layers, group-norm conv front end.
    return HubertConfig(num_hidden_layers=2, **extra)


def quantile_batches(lengths: np.ndarray, batch: int, k: int) -> list[int]:
    """Padded length (samples) of k length-grouped batches at evenly spaced quantiles."""
    padded = np.array([chunk.max() for chunk in np.array_split(np.sort(lengths), max(1, len(lengths) // batch))])
    return [int(padded[int(q * (len(padded) - 1))]) for q in np.linspace(0.05, 0.95, k)]


def speech_task(
    spec: Speech,
    device: torch.device,
    tiny: bool,
    k: int,
    repeat: int,
    head: str = "linear",
    cache_batch_seconds: float = 320.0,
) -> dict:
    rng = np.random.default_rng(0)
    lengths = (spec.seconds(rng, spec.clips) * RATE).astype(np.int64)
    steps = spec.epochs * -(-spec.clips // spec.batch)
    torch.manual_seed(0)
    if spec.name == "asr":
        config = hubert_config(tiny, vocab_size=32, pad_token_id=0, ctc_zero_infinity=True, mask_time_prob=0.05)
        if tiny:
            config.superb_head = {"lstm_size": 32, "lstm_layers": 2, "dropout": 0.2}
        model = (HubertSuperbForCTC(config) if head == "superb" else HubertForCTC(config)).to(device)
    else:
        no_layerdrop = {"layerdrop": 0.0} if head == "superb" else {}
        config = hubert_config(
            tiny,
            num_labels=12,
            use_weighted_layer_sum=head == "superb",
            **no_layerdrop,
        )
        model = HubertForSequenceClassification(config).to(device)
    for p in model.base_model.parameters():
        p.requires_grad = False
    if spec.name == "asr":
        loss = lambda lo, n, y: ctc_loss(lo, n, y, model.config)  # noqa: E731
    else:
        loss = lambda lo, n, y: torch.nn.functional.cross_entropy(lo.float(), y)  # noqa: E731
    head_model = FrozenEncoderHead(
        model, live_encoder=False, mask_time_prob=0.05, cuda_graphs=device.type == "cuda", loss=loss
    )
    graphed = head_model.graphed  # the default on a GPU for pooling heads; also timed without
    optimizer = adamw([p for p in model.parameters() if p.requires_grad], 1e-4, device)

    def labels_for(b: int, frames: int) -> torch.Tensor:
        if spec.name == "asr":  # about 15 characters a second, as in LibriSpeech
            return torch.randint(1, 32, (b, max(1, min(frames // 2, int(frames * 0.3)))), device=device)
        return torch.randint(0, 12, (b,), device=device)

    def step(fn: Callable[[], torch.Tensor]) -> None:
        optimizer.zero_grad(set_to_none=True)
        fn().backward()
        optimizer.step()

    hw4_times = []
    head_times = []
    eager_times = []
    for samples in quantile_batches(lengths, spec.batch, k):
        audio = torch.randn(spec.batch, samples, device=device)
        frames = int(model._get_feat_extract_output_lengths(samples))
        labels = labels_for(spec.batch, frames)
        # HW4's way: the HF model's own forward, fp32, frozen encoder run on every batch.
        model.train()
        hw4_times.append(timed(lambda: step(lambda: model(audio, labels=labels).loss), device, repeat))
        # This project: the head alone on stored (bf16 on GPU) features of the same batch.
        with torch.no_grad():
            hidden, counts = encode(model.base_model.eval(), audio, None, head_model.head.layers)
        stored_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        stored = hidden.to(stored_dtype)
        head_model.train()

        frame_counts = counts.tolist()  # as the collator hands them over: no read-back per step

        def head_step() -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                return head_model(labels=labels, hidden=stored, frame_lengths=counts, frame_counts=frame_counts).loss

        if graphed is not None:
            head_model.graphed = None
            eager_times.append(timed(lambda: step(head_step), device, repeat))
            head_model.graphed = graphed
        head_times.append(timed(lambda: step(head_step), device, repeat))
    # Building the store: one bf16 no-grad pass, batches of about cache_batch_seconds of audio.
    build_batches = length_batches(lengths.tolist(), int(cache_batch_seconds * RATE))
    picks = [build_batches[int(q * (len(build_batches) - 1))] for q in np.linspace(0.05, 0.95, k)]
    build_time = 0.0
    build_audio = 0
    for ids in picks:
        audio = torch.randn(len(ids), int(lengths[ids].max()), device=device)
        sample_lengths = torch.tensor(lengths[ids], device=device)

        def build_step() -> None:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                hidden, _ = encode(model.base_model, audio, sample_lengths, head_model.head.layers)
                hidden.to(torch.bfloat16).cpu()

        build_time += timed(build_step, device, repeat)
        build_audio += int(lengths[ids].sum())
    build_rate = build_audio / RATE / build_time  # audio seconds per second
    hw4_s = float(np.mean(hw4_times)) * steps
    build_s = float(lengths.sum()) / RATE / build_rate
    head_s = float(np.mean(head_times)) * steps
    return {
        "task": spec.name,
        "head": head,
        "steps": steps,
        "hw4_step_ms": 1e3 * float(np.mean(hw4_times)),
        "head_step_ms": 1e3 * float(np.mean(head_times)),
        "build_audio_s_per_s": build_rate,
        "hw4_s": hw4_s,
        "default_s": build_s + head_s,
        "build_s": build_s,
        "head_s": head_s,
        "ratio": hw4_s / (build_s + head_s),
        **(
            {
                "cuda_graphs": not graphed.failed,
                "eager_head_step_ms": 1e3 * float(np.mean(eager_times)),
                "eager_ratio": hw4_s / (build_s + float(np.mean(eager_times)) * steps),
            }
            if eager_times
            else {}
        ),
    }


def qa_task(name: str, examples: int, device: torch.device, tiny: bool, repeat: int, compile: bool = False) -> dict:
    torch.manual_seed(0)
    if name == "qa-distilbert":
        config = DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64) if tiny else DistilBertConfig()
        model = DistilBertForQuestionAnswering(config)
    else:
        config = (
            XLMRobertaConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                vocab_size=1000,
                max_position_embeddings=514,
            )
            if tiny
            else XLMRobertaConfig(vocab_size=250_002, max_position_embeddings=514, type_vocab_size=1)
        )
        model = XLMRobertaForQuestionAnswering(config)
    model.to(device).train()
    optimizer = adamw(model.parameters(), 1e-5, device)
    batch = 8
    length = 512
    ids = torch.randint(5, config.vocab_size, (batch, length), device=device)
    starts = torch.randint(0, length, (batch,), device=device)
    ends = torch.randint(0, length, (batch,), device=device)

    def step(bf16: bool) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, start_positions=starts, end_positions=ends).loss
        loss.backward()
        optimizer.step()

    steps = 3 * -(-examples // batch)
    fp32 = timed(lambda: step(False), device, repeat)
    bf16 = timed(lambda: step(device.type == "cuda"), device, repeat)
    row = {
        "task": name,
        "steps": steps,
        "hw4_step_ms": 1e3 * fp32,
        "head_step_ms": 1e3 * bf16,
        "hw4_s": fp32 * steps,
        "default_s": bf16 * steps,
        "ratio": fp32 / bf16,
    }
    if compile:  # what --torch_compile True would give (one shape here: a real run recompiles per length at first)
        model = torch.compile(model)
        sync(device)
        start = time.perf_counter()
        step(device.type == "cuda")
        sync(device)
        compile_s = time.perf_counter() - start
        compiled = timed(lambda: step(device.type == "cuda"), device, repeat)
        row.update(
            compile_s=compile_s,
            compiled_step_ms=1e3 * compiled,
            compiled_ratio=fp32 * steps / (compile_s + compiled * steps),
        )
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="Tiny widths (the default without a GPU).")
    parser.add_argument("--quantiles", type=int, default=8, help="Batches timed per task (length quantiles).")
    parser.add_argument("--repeat", type=int, default=3, help="Timed repetitions per batch.")
    parser.add_argument("--tasks", nargs="+", default=["asr", "kws", "qa-distilbert", "qa-xlmr"])
    parser.add_argument("--superb", action="store_true", help="Also time the SUPERB-style heads.")
    parser.add_argument(
        "--qa_compile",
        action="store_true",
        help="Also time QA's bf16 step under torch.compile (compile time included).",
    )
    parser.add_argument("--json", help="Also write the rows to this file.")
    args = parser.parse_args(argv)
    device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    tiny = args.tiny or device.type == "cpu"
    if tiny:  # small sets too, so the CPU run takes seconds; projections then describe those sets
        args.quantiles = min(args.quantiles, 3)
        args.repeat = 1
    speech = SPEECH
    if tiny:
        speech = {k: replace(spec, clips=spec.batch * 4) for k, spec in SPEECH.items()}
        speech["asr"] = replace(speech["asr"], seconds=tiny_seconds)
    qa_examples = dict.fromkeys(QA, 64) if tiny else QA
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device: {name}; sizes: {'tiny' if tiny else 'real (DistilHuBERT, DistilBERT-base, XLM-R-base)'}")
    rows = []
    for task in args.tasks:
        runs = (
            [lambda: qa_task(task, qa_examples[task], device, tiny, args.repeat, args.qa_compile)]
            if task not in SPEECH
            else [
                lambda head=head: speech_task(speech[task], device, tiny, args.quantiles, args.repeat, head=head)
                for head in (("linear", "superb") if args.superb else ("linear",))
            ]
        )
        done = len(rows)
        for run in runs:
            try:
                rows.append(run())
            except Exception as err:  # one broken row must not cost the others (a GPU minute is dear)
                print(f"{task}: FAILED: {type(err).__name__}: {err}", flush=True)
        for row in rows[done:]:
            verdict = (
                "" if tiny or row.get("head") == "superb" else ", met" if row["ratio"] >= TARGETS[task] else ", MISSED"
            )
            print(
                f"{task:14s} {row.get('head', ''):7s} HW4 {row['hw4_s'] / 60:8.2f} min | default "
                f"{row['default_s'] / 60:8.2f} min | {row['ratio']:5.2f}x (target >= {TARGETS[task]}x{verdict})"
                + (
                    f" | head step {row['head_step_ms']:.2f} ms graphed, {row['eager_head_step_ms']:.2f} ms eager "
                    f"({row['eager_ratio']:.2f}x)"
                    if "eager_ratio" in row
                    else ""
                )
                + (
                    f" | compiled: {row['compiled_step_ms']:.1f} ms/step after {row['compile_s']:.0f} s, "
                    f"{row['compiled_ratio']:.2f}x"
                    if "compiled_ratio" in row
                    else ""
                ),
                flush=True,
            )
    for row in rows:
        row.update(device=name, tiny=tiny)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
