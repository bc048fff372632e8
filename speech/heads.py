"""Task heads on a speech encoder's hidden states, shared by training (on cached or live encoder
outputs) and by the app (the full model).

A head sees `hidden` of shape [batch, frames, hidden] (the last layer) or [batch, frames, layers,
hidden] (every layer, for a learned weighted sum) plus each utterance's frame count, and never looks
past that count: the same head gives the same answer on a padded batch, on one utterance, and on
features read back from the cache. `encode` makes the encoder obey the same rule.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import CausalLMOutput
from transformers.models.hubert.modeling_hubert import HubertModel, HubertPreTrainedModel
from transformers.utils import ModelOutput

from speech.padding import frame_mask, padding_proof

SUPERB_LSTM = {"lstm_size": 1024, "lstm_layers": 2, "dropout": 0.2}  # SUPERB's ASR downstream


def encode(
    encoder: HubertModel, input_values: torch.Tensor, sample_lengths: torch.Tensor | None, layers: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's hidden states for a padded batch, each clip computed as if it were alone.

    Args:
        encoder: a HubertModel (or the base model of a *ForCTC / *ForSequenceClassification).
        input_values: [B, S] normalised audio, zero-padded.
        sample_lengths: [B] real samples per clip; None when no clip is padded.
        layers: "last" for the last layer, "all" for every layer (a learned layer mix).

    Returns:
        hidden: [B, T, H] ("last") or [B, T, layers + 1, H] ("all").
        frame_counts: [B] real frames per clip; frames past them are padding.
    """
    if sample_lengths is None:
        sample_lengths = torch.full((input_values.shape[0],), input_values.shape[1], device=input_values.device)
    padded = bool((sample_lengths < input_values.shape[1]).any())
    mask = frame_mask(sample_lengths, input_values.shape[1]).long() if padded else None
    with padding_proof(encoder, sample_lengths) if padded else contextlib.nullcontext():
        out = encoder(input_values, attention_mask=mask, output_hidden_states=layers == "all")
    if layers == "all" and len(out.hidden_states) != encoder.config.num_hidden_layers + 1:
        raise ValueError("a layer mix needs every layer: set layerdrop to 0 in the model's config")
    hidden = torch.stack(out.hidden_states, dim=2) if layers == "all" else out.last_hidden_state
    return hidden, encoder._get_feat_extract_output_lengths(sample_lengths).long()


# ---- heads ----------------------------------------------------------------------------------------


def weighted_layer_sum(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """SUPERB's learned layer mix.

    Args:
        hidden: [..., L, H] every layer's hidden states.
        weights: [L] unnormalised layer weights (softmax is applied here).

    Returns:
        [..., H].
    """
    return (hidden * F.softmax(weights, dim=-1)[:, None]).sum(dim=-2)


def mean_pooling_weights(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """Weights that average each clip's real frames.

    Args:
        lengths: [B] frame counts.
        frames: T, the padded length.

    Returns:
        [B, T] float: 1 / lengths[b] for t < lengths[b], else 0.
    """
    return frame_mask(lengths, frames) / lengths.unsqueeze(-1)


def ctc_loss(logits: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, config: Any) -> torch.Tensor:
    """CTC as transformers computes it for *ForCTC (blank = pad id, -100 = no label).

    Args:
        logits: [B, T, vocab].
        lengths: [B] real frames per clip.
        labels: [B, N] label ids, -100 past each transcript.
        config: the model config (pad_token_id, ctc_loss_reduction, ctc_zero_infinity).

    Returns:
        The scalar loss.
    """
    log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
    label_mask = labels >= 0
    with torch.backends.cudnn.flags(enabled=False):
        return F.ctc_loss(
            log_probs,
            labels.masked_select(label_mask),
            lengths,
            label_mask.sum(-1),
            blank=config.pad_token_id,
            reduction=config.ctc_loss_reduction,
            zero_infinity=config.ctc_zero_infinity,
        )


class LinearCTCHead(nn.Module):
    """HubertForCTC's own head (dropout + linear), sharing its parameters."""

    layers = "last"
    per_frame = True
    light = True  # a few kernels a step: bf16 would only add casts

    def __init__(self, model: nn.Module):
        super().__init__()
        self.dropout, self.lm_head = model.dropout, model.lm_head

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, vocab] from hidden states [B, T, H] (`lengths` unused: per frame)."""
        return self.lm_head(self.dropout(hidden))


class ClassifierHead(nn.Module):
    """HubertForSequenceClassification's head (optional layer mix, projection, mean over the clip's
    frames, linear), sharing its parameters. Everything before the mean is linear, so the mean
    comes first: the same logits, with the projection applied to one vector per clip."""

    per_frame = False
    light = True

    def __init__(self, model: nn.Module):
        super().__init__()
        self.layers = "all" if model.config.use_weighted_layer_sum else "last"
        if self.layers == "all":
            self.layer_weights = model.layer_weights
        self.projector, self.classifier = model.projector, model.classifier

    def forward(
        self, hidden: torch.Tensor, lengths: torch.Tensor, pooling_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits [B, classes] from hidden states [B, T, (L,) H]: the mean over each clip's
        `lengths[b]` frames, or the pooling with `pooling_weights` [B, T] when given (training
        folds its augmentation into them, train/augment.py)."""
        if pooling_weights is None:
            pooling_weights = mean_pooling_weights(lengths, hidden.shape[1])
        return self.pooled_logits(hidden, pooling_weights)

    def pooled_logits(self, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Logits from frames [B, T, (L,) H] pooled with weights [B, T] (zero past each clip)."""
        batch, frames = hidden.shape[:2]
        pooled = torch.bmm(weights.unsqueeze(1).to(hidden.dtype), hidden.reshape(batch, frames, -1))
        pooled = pooled.view(batch, *hidden.shape[2:])
        if self.layers == "all":
            pooled = weighted_layer_sum(pooled, self.layer_weights)
        return self.classifier(self.projector(pooled))


class SuperbCTCHead(nn.Module):
    """SUPERB's ASR downstream: softmax-weighted sum of all layers, a 2-layer BiLSTM, linear CTC."""

    layers = "all"
    per_frame = True
    light = False  # the BiLSTM is real work: it runs in the training precision

    def __init__(
        self, num_layers: int, hidden_size: int, vocab_size: int, lstm_size: int, lstm_layers: int, dropout: float
    ):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.zeros(num_layers))
        self.lstm = nn.LSTM(
            hidden_size, lstm_size, num_layers=lstm_layers, bidirectional=True, batch_first=True, dropout=dropout
        )
        self.dropout = nn.Dropout(dropout)
        self.lm_head = nn.Linear(2 * lstm_size, vocab_size)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, vocab] from every layer's hidden states [B, T, L, H], each clip's
        `lengths[b]` frames only."""
        mixed = weighted_layer_sum(hidden, self.layer_weights)
        # Packed, so the backward direction starts at each clip's own last frame, not the padding.
        packed = nn.utils.rnn.pack_padded_sequence(mixed, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=hidden.shape[1])
        return self.lm_head(self.dropout(out))


class HubertSuperbForCTC(HubertPreTrainedModel):
    """HuBERT/DistilHuBERT + SuperbCTCHead. Saved and loaded with save_pretrained/from_pretrained;
    `config.superb_head` holds the head's sizes and `config.architectures` names this class."""

    def __init__(self, config):
        config.layerdrop = 0.0  # the layer mix needs every layer on every step
        super().__init__(config)
        self.hubert = HubertModel(config)
        spec = {**SUPERB_LSTM, **(getattr(config, "superb_head", None) or {})}
        config.superb_head = spec
        self.head = SuperbCTCHead(config.num_hidden_layers + 1, config.hidden_size, config.vocab_size, **spec)
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, SuperbCTCHead):
            nn.init.zeros_(module.layer_weights)
        elif isinstance(module, nn.LSTM):
            module.reset_parameters()

    def freeze_feature_encoder(self) -> None:
        self.hubert.feature_extractor._freeze_parameters()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutput:
        sample_lengths = None if attention_mask is None else attention_mask.sum(-1)
        hidden, lengths = encode(self.hubert, input_values, sample_lengths, "all")
        logits = self.head(hidden, lengths)
        loss = None if labels is None else ctc_loss(logits, lengths, labels, self.config)
        return CausalLMOutput(loss=loss, logits=logits)


def head_of(model: nn.Module) -> nn.Module:
    """The trainable head of a full model, as a module that runs on hidden states."""
    if isinstance(model, HubertSuperbForCTC):
        return model.head
    if hasattr(model, "lm_head"):
        return LinearCTCHead(model)
    return ClassifierHead(model)


@dataclass
class HeadOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    frame_lengths: torch.Tensor | None = None
