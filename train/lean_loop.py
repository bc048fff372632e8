"""The Trainer's epoch without its per-step generality, for heads on stored features: opt-in and
experimental (`--lean_loop`) until a GPU run shows it pays; the Trainer's own epoch is the default.
It overrides `Trainer._run_epoch` and calls private Trainer and accelerate members, listed in
`PRIVATE_MEMBERS`: tests/test_lean_loop.py fails on an upgrade that changes one of them.

On stored features a head's step is a few small kernels (on a GPU ~0.4 ms, graphed), and the
Trainer's step wraps it in machinery made for every setting it supports: context parallelism,
sequence parallelism, DeepSpeed and FSDP hooks, token counting, FLOP estimates, per-step
`model.train()`, accelerate's backward, clipping and optimizer wrappers (each checking for loss
scalers, XLA and sharded tensors), a scan of every parameter for mixed device meshes. None of it
applies to one process training a head in bf16 or fp32, and on a GPU it is host time the device
may wait for (KWS's step took 3.2 ms on an H100 around that head step: docs/benchmarks.md, #17).
On the CPU box the difference is below that machine's run-to-run noise (docs/benchmarks.md).

`LeanLoop._run_epoch` runs the same epoch with only what such a run needs: the same batches in the
same order (the Trainer's own loader, sampler and `set_epoch`), the same loss (the trainer's
`compute_loss`, so subclasses keep theirs), the same gradient accumulation, clipping, optimizer and
scheduler calls, every callback event, and the Trainer's own logging, evaluation and checkpoint
saving (`_maybe_log_save_evaluate`), so `trainer_state.json`, checkpoints, `--resume` and
metrics.json are the Trainer's. Anything outside that setting runs the Trainer's own epoch.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from accelerate.data_loader import skip_first_batches
from accelerate.utils import DistributedType
from transformers import Trainer
from transformers.optimization import GreedyLR
from transformers.training_args import OptimizerNames

from train import graphed_update
from train.graphed_update import GraphedUpdate

logger = logging.getLogger(__name__)

# The private members this module overrides or calls, with the parameters it passes them: the
# transformers 5 / accelerate signatures it was written against (tests/test_lean_loop.py).
PRIVATE_MEMBERS = {
    "Trainer._run_epoch": "self, model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, trial, "
    "ignore_keys_for_eval, start_time, resume_from_checkpoint, epochs_trained, steps_trained_in_current_epoch",
    "Trainer._load_rng_state": "self, checkpoint",
    "Trainer._prepare_inputs": "self, inputs",
    "Trainer._get_learning_rate": "self",
    "Trainer._maybe_log_save_evaluate": "self, tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval, "
    "start_time, learning_rate",
    "GradientState._set_sync_gradients": "self, sync_gradients",
}
# Attributes of the Trainer's own training loop this one keeps up to date as it does.
PRIVATE_ATTRIBUTES = ("_tr_loss", "current_gradient_accumulation_steps")


class LeanLoop(Trainer):
    """A Trainer that runs a lean epoch when its model asks for one (`model.lean_loop` true: set by
    `train.frozen_head` for heads on stored features) and the run allows it (`lean_reason`)."""

    def lean_reason(self) -> str | None:
        """Why this run takes the Trainer's own epoch, or None when the lean one applies."""
        if not getattr(self.model, "lean_loop", False):
            return "not asked for (--lean_loop, on stored features only)"
        args = self.args
        checks = {
            "more than one process or GPU": args.world_size > 1 or args.n_gpu > 1,
            "a distributed engine": self.accelerator.distributed_type != DistributedType.NO,
            "fp16 (a loss scaler)": self.accelerator.scaler is not None,
            "a wrapped model": self.model_wrapped is not self.model,
            "a LOMO optimizer": args.optim in (OptimizerNames.LOMO, OptimizerNames.ADALOMO),
            "a schedule-free optimizer": callable(getattr(getattr(self.optimizer, "optimizer", None), "train", None)),
            "a loss that takes the batch's item count": self.model_accepts_loss_kwargs
            or self.compute_loss_func is not None,
            "per-step cache clearing": args.torch_empty_cache_steps is not None,
            "token counting": args.include_num_input_tokens_seen != "no",
            "the NaN filter": args.logging_nan_inf_filter,
            "context parallelism": self.get_cp_size() > 1 or self.get_sp_size() > 1,
        }
        reasons = [reason for reason, applies in checks.items() if applies]
        return ", ".join(reasons) or None

    loop_used: str | None = None  # what metrics.json records: "lean", "lean, ...", or "trainer: <why>"
    graphed: GraphedUpdate | None = None  # the lean epoch's optimizer update from a CUDA graph

    def _graphed_update(self, model: torch.nn.Module) -> tuple[GraphedUpdate | None, str]:
        """The update from a CUDA graph when the model asks for it (`model.graphed_update`) and
        the optimizer allows it, else None; and what metrics.json adds to "lean"."""
        if not getattr(model, "graphed_update", False):
            return None, ""
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)  # under accelerate's wrapper
        params = [p for p in model.parameters() if p.requires_grad]
        current = self.graphed
        if (
            current is None
            or current.optimizer is not optimizer
            or list(map(id, current.params)) != list(map(id, params))
        ):
            why = graphed_update.unsupported(optimizer, params)
            if why is not None:
                return None, f", optimizer update eager ({why})"
            current = GraphedUpdate(optimizer, params, self.args.max_grad_norm, self.optimizer.step)
            self.graphed = current
        return current, f", optimizer update {current.describe()}"

    def _note_loop(self, used: str) -> None:
        """What metrics.json records as the training loop, logged when it changes."""
        if used != self.loop_used:
            logger.info("training loop: %s", used)
            self.loop_used = used

    def _run_epoch(self, model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, *rest, **kw):
        reason = self.lean_reason()
        if reason is not None:
            self._note_loop(f"trainer: {reason}")
            return super()._run_epoch(
                model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, *rest, **kw
            )
        update, how = self._graphed_update(model)
        self._note_loop(f"lean{how}")
        return self._lean_epoch(
            model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, *rest, **kw, update=update
        )

    @staticmethod
    def _next_batches(batches: Any, count: int) -> list[Any]:
        """The next `count` batches of an update (fewer at the epoch's end)."""
        return [b for b in (next(batches, None) for _ in range(count)) if b is not None]

    def _lean_epoch(
        self,
        model: torch.nn.Module,
        epoch: int,
        train_dataloader: Any,
        steps_in_epoch: int,
        num_update_steps_per_epoch: int,
        trial: Any,
        ignore_keys_for_eval: Any,
        start_time: float,
        resume_from_checkpoint: str | None,
        epochs_trained: int,
        steps_trained_in_current_epoch: int,
        update: GraphedUpdate | None = None,
    ) -> None:
        args, state, handler = self.args, self.state, self.callback_handler
        accumulation = args.gradient_accumulation_steps
        step, grad_norm, learning_rate, rng_to_sync, first_update = -1, None, None, False, 0
        # Resuming: the same skip and RNG restore as the Trainer's epoch.
        if epoch == epochs_trained and resume_from_checkpoint is not None:
            if steps_trained_in_current_epoch > 0 and not args.ignore_data_skip:
                train_dataloader = skip_first_batches(train_dataloader, steps_trained_in_current_epoch)
                step = steps_trained_in_current_epoch - 1
                first_update = steps_trained_in_current_epoch // accumulation
                rng_to_sync = True
            elif steps_trained_in_current_epoch == 0:
                self._load_rng_state(resume_from_checkpoint)
        if hasattr(train_dataloader, "set_epoch"):
            train_dataloader.set_epoch(epoch)
        sampler = getattr(getattr(train_dataloader, "batch_sampler", None), "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        batches = iter(train_dataloader)
        params = [p for p in model.parameters() if p.requires_grad]
        self.accelerator.gradient_state._set_sync_gradients(True)  # what accelerate's optimizer.step reads
        remainder = steps_in_epoch % accumulation or accumulation
        if update is not None:
            update.ensure_grads()
        # The whole tree: a head taken from a model loaded with from_pretrained is in eval mode
        # (no dropout) while the new wrapper around it says it is training.
        model.train()

        for update_step in range(first_update, num_update_steps_per_epoch):
            micro = accumulation if update_step != num_update_steps_per_epoch - 1 else remainder
            samples = self._next_batches(batches, micro)
            if rng_to_sync:
                self._load_rng_state(resume_from_checkpoint)
                rng_to_sync = False
            self.current_gradient_accumulation_steps = len(samples)
            for inputs in samples:
                step += 1
                if step % accumulation == 0:
                    self.control = handler.on_step_begin(args, state, self.control)
                if not model.training:  # an evaluation ran since the last step
                    model.train()
                loss = self.compute_loss(model, self._prepare_inputs(inputs))
                if len(samples) > 1:  # as the Trainer's training_step scales it
                    loss = loss / self.current_gradient_accumulation_steps
                loss.backward()
                self._tr_loss += loss.detach()  # on the device: read only when logged
                if (step + 1) % accumulation and step + 1 != steps_in_epoch:
                    self.control = handler.on_substep_end(args, state, self.control)
                    continue
                if update is None and args.max_grad_norm > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
                self.control = handler.on_pre_optimizer_step(args, state, self.control)
                if update is not None:  # clipping, the step and zeroing, from one graph
                    grad_norm = update.step()
                else:
                    self.optimizer.step()
                self.control = handler.on_optimizer_step(args, state, self.control)
                learning_rate = self._get_learning_rate()
                if not isinstance(self.lr_scheduler, (torch.optim.lr_scheduler.ReduceLROnPlateau, GreedyLR)):
                    self.lr_scheduler.step()
                if update is None:
                    for p in params:
                        p.grad = None
                state.global_step += 1
                state.epoch = epoch + (step + 1) / steps_in_epoch
                self.control = handler.on_step_end(args, state, self.control)
                self._maybe_log_save_evaluate(
                    self._tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval, start_time, learning_rate
                )
                if self.control.should_epoch_stop or self.control.should_training_stop:
                    break
            if self.control.should_epoch_stop or self.control.should_training_stop:
                break

        if step < 0:
            logger.warning("no batch in this epoch: training stops at step %d", state.global_step)
            self.control.should_training_stop = True
        if update is not None:  # a capture that failed during the epoch: metrics.json says what ran
            self._note_loop(f"lean, optimizer update {update.describe()}")
        self.control = handler.on_epoch_end(args, state, self.control)
        self._maybe_log_save_evaluate(
            self._tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval, start_time, learning_rate
        )
