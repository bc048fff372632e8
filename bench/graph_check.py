"""On a GPU: the keyword-spotting head trained with its step replayed from CUDA graphs follows the
eager head step for step (a check to run where there is a GPU; CI has none).

    python -m bench.graph_check            # real sizes (DistilHuBERT widths), exits 1 on a mismatch

Two copies of the same head (the course report's linear head, then SUPERB's layer mix), the same batches
(full, short clips padded into a frame bucket, a small last batch, repeated shapes), the same
augmentation draws, the class-weighted loss of train.kws, gradient clipping and fused AdamW as the
Trainer runs them; then two micro-batches accumulated before one step; then evaluation. Then the
optimizer update from a CUDA graph (train/graphed_update.py, `--graphed_update`) against the eager
update, while a schedule changes the learning rate every step and the optimizer's state is reloaded
mid-run (as a resume does), and each update's time both ways.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np
import torch
from transformers import HubertForSequenceClassification

from bench.train_speed import hubert_config
from train.frozen_head import FrozenEncoderHead
from train.graphed_update import GraphedUpdate
from train.weighted_loss import WeightedCrossEntropy

SHAPES = [(64, 49)] * 4 + [(64, 41), (64, 33), (17, 49), (64, 49), (64, 41), (64, 46)] * 2


def batch(rng: np.random.Generator, size: int, frames: int, layers: int, hidden: int):
    counts = rng.integers(max(2, frames - 12), frames + 1, size)
    counts[0] = frames
    shape = (size, frames, layers, hidden) if layers > 1 else (size, frames, hidden)
    features = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(torch.bfloat16)
    return features, counts.tolist(), torch.from_numpy(rng.integers(0, 12, size))


def check(superb: bool, device: torch.device, tolerance: float) -> bool:
    torch.manual_seed(0)
    no_layerdrop = {"layerdrop": 0.0} if superb else {}
    config = hubert_config(False, num_labels=12, use_weighted_layer_sum=superb, **no_layerdrop)
    models = [HubertForSequenceClassification(config)]
    models.append(copy.deepcopy(models[0]))
    loss = WeightedCrossEntropy(np.linspace(0.5, 2.0, 12))
    heads = [
        FrozenEncoderHead(
            m, live_encoder=False, loss=copy.deepcopy(loss), cuda_graphs=graphs, shift_frames=5, mask_time_prob=0.05
        )
        .to(device)
        .train()
        for m, graphs in zip(models, (True, False), strict=True)
    ]
    assert heads[0].graphed is not None and heads[1].graphed is None
    optimizers = [
        torch.optim.AdamW([p for p in h.parameters() if p.requires_grad], lr=1e-3, fused=True) for h in heads
    ]
    layers = config.num_hidden_layers + 1 if superb else 1
    rng = np.random.default_rng(0)
    worst_loss = 0.0

    def forward(head, features, counts, labels, seed):
        torch.manual_seed(seed)  # the augmentation's draw, the same for both heads
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return head(
                hidden=features.to(device),
                frame_lengths=torch.tensor(counts, device=device),
                frame_counts=counts,
                labels=labels.to(device),
            ).loss

    for step, (size, frames) in enumerate(SHAPES):
        features, counts, labels = batch(rng, size, frames, layers, config.hidden_size)
        losses = []
        for head, optimizer in zip(heads, optimizers, strict=True):
            optimizer.zero_grad(set_to_none=True)
            value = forward(head, features, counts, labels, step)
            value.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimizer.step()
            losses.append(value.item())
        worst_loss = max(worst_loss, abs(losses[0] - losses[1]))
    # Accumulation: two micro-batches, one step.
    grads = []
    for head in heads:
        head.zero_grad(set_to_none=True)
        for micro in range(2):
            features, counts, labels = batch(np.random.default_rng(100 + micro), 64, 49, layers, config.hidden_size)
            (forward(head, features, counts, labels, 100 + micro) / 2).backward()
        grads.append([p.grad.clone() for p in head.parameters() if p.requires_grad])
    worst_grad = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(*grads, strict=True))
    worst_param = max(
        float((a - b).abs().max()) for a, b in zip(heads[0].parameters(), heads[1].parameters(), strict=True)
    )
    # Evaluation runs eagerly on both: same logits.
    features, counts, labels = batch(rng, 33, 49, layers, config.hidden_size)
    with torch.no_grad():
        logits = [
            h.eval()(hidden=features.to(device), frame_lengths=torch.tensor(counts, device=device)).logits
            for h in heads
        ]
    worst_eval = float((logits[0] - logits[1]).abs().max())
    graphs = len(heads[0].graphed.graphs)
    ok = max(worst_loss, worst_param, worst_grad, worst_eval) <= tolerance and heads[0].graphed.eager_steps == 0
    print(
        f"{'superb' if superb else 'linear'} head, {len(SHAPES)} steps + accumulation, {graphs} graphs: "
        f"max |loss diff| {worst_loss:.2e}, max |param diff| {worst_param:.2e}, accumulated grad rel. diff "
        f"{worst_grad:.2e}, eval logits diff {worst_eval:.2e} -> "
        f"{'CAPTURE FAILED' if heads[0].graphed.failed else 'OK' if ok else 'MISMATCH'}",
        flush=True,
    )
    return ok


def check_update(device: torch.device, tolerance: float) -> bool:
    """The graphed update against the eager one on two copies of the report's KWS head, then the
    time of an update each way."""
    torch.manual_seed(0)
    config = hubert_config(False, num_labels=12)
    models = [HubertForSequenceClassification(config)]
    models.append(copy.deepcopy(models[0]))
    heads = [
        FrozenEncoderHead(m, live_encoder=False, loss=WeightedCrossEntropy(np.linspace(0.5, 2.0, 12))).to(device)
        for m in models
    ]
    params = [[p for p in h.parameters() if p.requires_grad] for h in heads]
    optimizers = [torch.optim.AdamW(p, lr=1e-3, fused=True) for p in params]
    schedules = [torch.optim.lr_scheduler.LambdaLR(o, lambda step: 1 / (1 + 0.1 * step)) for o in optimizers]
    update = GraphedUpdate(optimizers[0], params[0], max_grad_norm=1.0)
    rng = np.random.default_rng(1)
    worst_loss = worst_norm = 0.0
    for step, (size, frames) in enumerate(SHAPES * 2):
        if step == len(SHAPES):  # a resume: new state tensors, so the graph is captured again
            for optimizer in optimizers:
                optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        micro = 2 if step % 3 == 2 else 1
        batches = [batch(rng, size, frames, 1, config.hidden_size) for _ in range(micro)]
        losses = []
        norms = []
        for i, head in enumerate(heads):
            total = 0.0
            for features, counts, labels in batches:
                loss = head(
                    hidden=features.to(device).float(),
                    frame_lengths=torch.tensor(counts, device=device),
                    frame_counts=counts,
                    labels=labels.to(device),
                ).loss
                (loss / micro).backward()
                total += loss.item() / micro
            if i == 0:
                norms.append(float(update.step()))
            else:
                norms.append(float(torch.nn.utils.clip_grad_norm_(params[1], 1.0)))
                optimizers[1].step()
                optimizers[1].zero_grad(set_to_none=True)
            schedules[i].step()
            losses.append(total)
        worst_loss = max(worst_loss, abs(losses[0] - losses[1]))
        worst_norm = max(worst_norm, abs(norms[0] - norms[1]) / max(norms[1], 1e-12))
    worst_param = max(float((a - b).detach().abs().max()) for a, b in zip(*params, strict=True))
    ok = max(worst_loss, worst_param, worst_norm) <= tolerance and not update.failed and update.replays > 0

    # The update's own time: gradients in place, 200 updates each way after the ones above.
    def timed(run) -> float:
        synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
        synchronize()
        start = time.perf_counter()
        for _ in range(200):
            run()
        synchronize()
        return (time.perf_counter() - start) / 200 * 1e3

    def eager() -> None:  # the lean epoch's update without the graph: clipping, the optimizer's step
        torch.nn.utils.clip_grad_norm_(params[1], 1.0)
        optimizers[1].step()

    for p in params[1]:
        p.grad = torch.zeros_like(p)
    eager_ms = timed(eager)
    graphed_ms = timed(update.step)
    print(
        f"graphed optimizer update, {len(SHAPES) * 2} steps (accumulation every third, a state reload midway, "
        f"learning rate changing every step): max |loss diff| {worst_loss:.2e}, max |param diff| {worst_param:.2e}, "
        f"grad norm rel. diff {worst_norm:.2e}, {update.replays} replays -> "
        f"{'CAPTURE FAILED' if update.failed else 'OK' if ok else 'MISMATCH'}; one update: eager {eager_ms:.3f} ms, "
        f"graphed {graphed_ms:.3f} ms",
        flush=True,
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no GPU: nothing to check (CUDA graphs need one)")
        return 0
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name()}")
    results = [check(superb, device, args.tolerance) for superb in (False, True)]
    results.append(check_update(device, args.tolerance))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
