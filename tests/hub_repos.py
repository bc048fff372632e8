"""Tiny repositories laid out as the four hub defaults are (their public file listings, 2026-11):

| repo | `main` | the pinned commit |
|---|---|---|
| anton-l/distilhubert-ft-keyword-spotting | pickle-only | `refs/pr/1`, adds model.safetensors |
| twmkn9/distilbert-base-uncased-squad2 | pickle-only | `refs/pr/1`, adds model.safetensors |
| deepset/xlm-roberta-base-squad2 | moved on (a README edit) | safetensors + pickle,
|   |   | `sentencepiece.bpe.model`, no tokenizer.json |
| facebook/wav2vec2-base-960h | = the pinned commit | safetensors + pickle, upper-case CTC vocabulary |

The ASR model is rigged to say one letter, "O", on every frame: the app must serve "o".
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import torch
from transformers import (
    DistilBertForQuestionAnswering,
    HubertForSequenceClassification,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2ForCTC,
    XLMRobertaForQuestionAnswering,
    XLMRobertaTokenizer,
)

from scripts.make_smoke_data import wordpiece_tokenizer
from scripts.tiny_configs import speech_extractor
from scripts.tiny_models import CORPUS, distilbert_config, kws_config, xlmr_config
from slots.table import SLOTS
from tests.hub_standin import Repo

UPPER_VOCAB = {
    "<pad>": 0,
    "<s>": 1,
    "</s>": 2,
    "<unk>": 3,
    "|": 4,
    **{ch: i + 5 for i, ch in enumerate("ETAOINSHRDLUCMFWYPVBGKQJXZ'")},
}
SPOKEN_LETTER = "O"
NEWER_LETTER = "E"  # what the newer commit of `moving_asr_repo` says


def _sha(tag: str) -> str:
    return (tag.encode().hex() * 40)[:40]


def _files(save) -> dict[str, bytes]:
    """Whatever `save(folder)` writes, as path -> bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        save(Path(tmp))
        return {p.relative_to(tmp).as_posix(): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}


def _pickled(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def _repo(model: torch.nn.Module, processor_files: dict[str, bytes], pinned: str, pr_ref: bool, readme: str) -> Repo:
    weights = _files(lambda d: model.save_pretrained(d))  # config.json + model.safetensors
    pickled = {
        **processor_files,
        "config.json": weights["config.json"],
        "pytorch_model.bin": _pickled(model),
        "README.md": readme.encode(),
    }
    full = {**pickled, "model.safetensors": weights["model.safetensors"]}
    if pr_ref:  # main is pickle-only; the safetensors conversion waits in a pull request
        return Repo({_sha("main"): pickled, pinned: full}, {"main": _sha("main"), "refs/pr/1": pinned})
    return Repo({pinned: full}, {"main": pinned})


def asr_repo(letter: str = SPOKEN_LETTER, pinned: str = SLOTS["asr"].revision) -> Repo:
    """A tiny wav2vec2 CTC model at commit `pinned` (`main` too) that hears `letter` everywhere."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(UPPER_VOCAB))
        tokenizer = Wav2Vec2CTCTokenizer(
            str(Path(tmp) / "vocab.json"),
            unk_token="<unk>",
            pad_token="<pad>",
            bos_token="<s>",
            eos_token="</s>",
            word_delimiter_token="|",
            do_lower_case=False,
        )
    extractor = speech_extractor(attention_mask=False)
    # Laid out as the 2021 repository is: the extractor's and the tokenizer's files side by side
    # (preprocessor_config.json, vocab.json, ...), no processor_config.json.
    processor_files = {
        **_files(extractor.save_pretrained),
        **_files(tokenizer.save_pretrained),
        "special_tokens_map.json": json.dumps(
            {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
        ).encode(),
    }
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(32, 32, 32),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        vocab_size=len(UPPER_VOCAB),
        pad_token_id=0,
    )
    model = Wav2Vec2ForCTC(config)
    with torch.no_grad():  # every frame says `letter`, whatever it hears
        model.lm_head.weight.zero_()
        model.lm_head.bias.fill_(-5.0)
        model.lm_head.bias[UPPER_VOCAB[letter]] = 5.0
    return _repo(model, processor_files, pinned, False, "# wav2vec2-base-960h (tiny)")


def moving_asr_repo() -> tuple[Repo, str]:
    """An operator's own model repository whose `main` can move: it points at a commit that says
    SPOKEN_LETTER; the returned sha is a newer commit that says NEWER_LETTER (move `refs["main"]`)."""
    first, newer = _sha("first"), _sha("newer")
    repo = asr_repo(SPOKEN_LETTER, first)
    repo.commits[newer] = asr_repo(NEWER_LETTER, newer).commits[newer]
    return repo, newer


def kws_repo() -> Repo:
    torch.manual_seed(0)
    config = kws_config()
    extractor = speech_extractor()
    return _repo(
        HubertForSequenceClassification(config),
        _files(extractor.save_pretrained),
        SLOTS["kws"].revision,
        True,
        "# distilhubert-ft-keyword-spotting (tiny)",
    )


def distilbert_repo() -> Repo:
    torch.manual_seed(0)
    tokenizer = wordpiece_tokenizer(CORPUS)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    files = {
        "vocab.txt": "".join(f"{token}\n" for token, _ in vocab).encode(),
        "tokenizer_config.json": b'{"do_lower_case": true}',
        "special_tokens_map.json": json.dumps(
            {
                "unk_token": "[UNK]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
            }
        ).encode(),
    }
    config = distilbert_config(tokenizer)
    return _repo(
        DistilBertForQuestionAnswering(config),
        files,
        SLOTS["qa-distilbert"].revision,
        True,
        "# distilbert-base-uncased-squad2 (tiny)",
    )


def sentencepiece_model() -> bytes:
    """A small BPE SentencePiece model, as XLM-R ships its tokenizer (sentencepiece.bpe.model)."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4),
        model_writer=out,
        vocab_size=120,
        model_type="bpe",
        character_coverage=1.0,
        minloglevel=2,
    )
    return out.getvalue()


def xlmr_repo() -> Repo:
    torch.manual_seed(0)
    files = {
        "sentencepiece.bpe.model": sentencepiece_model(),
        "tokenizer_config.json": b'{"model_max_length": 512}',
        "special_tokens_map.json": json.dumps(
            {
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "sep_token": "</s>",
                "pad_token": "<pad>",
                "cls_token": "<s>",
                "mask_token": "<mask>",
            }
        ).encode(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        tokenizer = XLMRobertaTokenizer.from_pretrained(tmp)
    config = xlmr_config(tokenizer)
    pinned = SLOTS["qa-xlmr"].revision
    repo = _repo(XLMRobertaForQuestionAnswering(config), files, pinned, False, "# xlm-roberta-base-squad2 (tiny)")
    moved = {**repo.commits[pinned], "README.md": b"# xlm-roberta-base-squad2 (tiny), card edited"}
    repo.commits[_sha("later")] = moved  # main moved on after the pinned commit
    repo.refs["main"] = _sha("later")
    return repo


def default_repos() -> dict[str, Repo]:
    """The four hub defaults, keyed by repo id."""
    builders = {"asr": asr_repo, "kws": kws_repo, "qa-distilbert": distilbert_repo, "qa-xlmr": xlmr_repo}
    return {SLOTS[slot].hub_id: build() for slot, build in builders.items()}
