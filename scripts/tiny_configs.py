"""The small model configs shared by the tests, the benchmarks and the smoke data: one tiny HuBERT,
one tiny QA model of each kind, and the speech feature extractor, so every tiny model in the
project is built the same way."""

from __future__ import annotations

from typing import Any

from speech.audio import TARGET_RATE


def tiny_hubert_config(hidden: int = 32, layers: int = 2, conv: int = 32, stages: int = 7, **overrides: Any):
    """The one tiny HuBERT config of tests, benchmarks and smoke data: real structure, tiny widths.

    `stages=7` keeps HuBERT's conv front end (320 samples per frame, what the 1 s clips and the
    feature stores assume); `stages=3` is a shorter one (kernels 10/3/3, strides 5/2/2) for tests
    that only need a forward pass in milliseconds."""
    from transformers import HubertConfig

    shape = {} if stages == 7 else {"conv_kernel": (10, 3, 3), "conv_stride": (5, 2, 2)}
    if stages not in (3, 7):
        raise ValueError(f"stages must be 3 or 7, not {stages}")
    settings = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        conv_dim=(conv,) * stages,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        **shape,
    )
    settings.update(overrides)
    return HubertConfig(**settings)


def tiny_qa_config(
    kind: str, tokenizer: Any, hidden: int = 64, layers: int = 2, intermediate: int | None = None, positions: int = 256
):
    """The one tiny QA config of tests and smoke data: DistilBERT or XLM-R with tiny widths over
    `tokenizer`'s vocabulary; `positions` tokens per window (XLM-R's position ids start after the
    padding index, so it gets two more)."""
    from transformers import DistilBertConfig, XLMRobertaConfig

    width = intermediate or 2 * hidden
    if kind == "distilbert":
        return DistilBertConfig(
            vocab_size=len(tokenizer),
            dim=hidden,
            hidden_dim=width,
            n_layers=layers,
            n_heads=2,
            max_position_embeddings=positions,
            pad_token_id=tokenizer.pad_token_id,
        )
    return XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=width,
        num_hidden_layers=layers,
        num_attention_heads=2,
        max_position_embeddings=positions + 2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
    )


def speech_extractor(attention_mask: bool = True):
    """The 16 kHz feature extractor of HuBERT-family models (normalised input; DistilHuBERT
    asks for the attention mask, wav2vec 2.0 base does not)."""
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=TARGET_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=attention_mask,
    )
