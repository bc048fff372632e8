"""Miniature copies of the datasets' original layouts, spoken by espeak-ng, plus tiny random
"pretrained" encoders: what the smoke configs and the learning tests train on.

    python -m scripts.make_smoke_data            # writes outputs/smoke/
    python -m train.asr train/configs/asr_smoke.json
    python -m train.kws train/configs/kws_smoke.json
    python -m train.qa train/configs/qa_distilbert_smoke.json

Needs espeak-ng and sox (`apt-get install -y espeak-ng sox`).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

from scripts.system_packages import require
from scripts.tiny_configs import speech_extractor, tiny_hubert_config, tiny_qa_config
from speech.audio import TARGET_RATE

SMOKE_ROOT = Path("outputs/smoke")

# Short sentences with distinct words; every letter the vocabulary needs appears.
SENTENCES = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "she sells sea shells",
    "a big wave came in",
    "keep calm and carry on",
    "we went home at night",
]


def speak(
    text: str, out: Path, voice: str = "en-us+m3", speed: int = 150, pitch: int = 50, rate: int = TARGET_RATE
) -> Path:
    """Synthesise `text` with espeak-ng and convert it with sox to mono 16-bit at `rate`."""
    require("espeak-ng", "sox")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        # -D: no dither, so the same text always gives the same file (train and test copies match).
        subprocess.run(
            ["sox", "-D", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out)], check=True, capture_output=True
        )
    return out


def librispeech_tree(root: Path, splits: dict[str, list[str]], voice: str = "en-us+m3") -> Path:
    """The LibriSpeech layout: <split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac and one
    <speaker>-<chapter>.trans.txt per chapter with upper-case transcripts, as the original."""
    for split, texts in splits.items():
        speaker = "19"
        chapter = "198"
        folder = root / split / speaker / chapter
        lines = []
        for i, text in enumerate(texts):
            utt = f"{speaker}-{chapter}-{i:04d}"
            speak(text, folder / f"{utt}.flac", voice=voice)
            lines.append(f"{utt} {text.upper()}")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def noise(seconds: float, seed: int, rate: int = TARGET_RATE):
    """Brown-ish background noise (integrated white noise, high-passed), like a room or a fan."""
    import numpy as np

    rng = np.random.default_rng(seed)
    white = rng.normal(0, 1, int(seconds * rate))
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(400) / 400, mode="same")  # drift removal
    return (0.1 * brown / np.abs(brown).max()).astype(np.float32)


def speech_commands_tree(
    root: Path,
    words: list[str],
    variants: dict[str, list[tuple[str, int, int]]],
    noise_files: int = 2,
    test_dir: Path | None = None,
    test_variants: list[tuple[str, int, int]] = (),
) -> Path:
    """The Speech Commands v0.01 layout: `<word>/<speaker>_nohash_<n>.wav` (16 kHz mono),
    `_background_noise_/*.wav`, and `validation_list.txt` / `testing_list.txt` naming files by
    `<word>/<file>`. `variants` maps "train"/"validation"/"test" to (voice, speed, pitch) triples.
    With `test_dir`, `test_variants` go there in the official test-set layout (folders include
    `_unknown_` and `_silence_`). Gains vary from -6 to +6 dB between files."""
    import numpy as np
    import soundfile as sf

    from speech import keywords

    rng = np.random.default_rng(0)
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    for word in words:
        for split, triples in variants.items():
            for n, (voice, speed, pitch) in enumerate(triples):
                name = f"{voice.replace('+', '-')}-{speed}-{pitch}_nohash_{n}.wav"
                path = speak(word, root / word / name, voice=voice, speed=speed, pitch=pitch)
                _gain(path, rng.uniform(-6, 6))
                if split in lists:
                    lists[split].append(f"{word}/{name}")
        for n, (voice, speed, pitch) in enumerate(test_variants):
            folder = keywords.to_label(word)
            path = speak(
                word,
                Path(test_dir) / folder / f"{word}-{voice.replace('+', '-')}-{n}.wav",
                voice=voice,
                speed=speed,
                pitch=pitch,
            )
            _gain(path, rng.uniform(-6, 6))
    (root / "_background_noise_").mkdir(parents=True, exist_ok=True)
    for i in range(noise_files):
        sf.write(root / "_background_noise_" / f"noise_{i}.wav", noise(30.0, seed=i), TARGET_RATE, subtype="PCM_16")
    if test_dir is not None:
        (Path(test_dir) / keywords.SILENCE).mkdir(parents=True, exist_ok=True)
        for i in range(len(test_variants) * 2):
            sf.write(
                Path(test_dir) / keywords.SILENCE / f"silence_{i}.wav",
                noise(1.0, seed=100 + i),
                TARGET_RATE,
                subtype="PCM_16",
            )
    for split, names in lists.items():
        (root / ("testing_list.txt" if split == "test" else "validation_list.txt")).write_text("\n".join(names) + "\n")
    return root


def _gain(path: Path, db: float) -> None:
    import soundfile as sf

    samples, rate = sf.read(path, dtype="float32")
    sf.write(path, samples * 10 ** (db / 20), rate, subtype="PCM_16")


def tiny_hubert(folder: Path, hidden: int = 64, layers: int = 2, conv: int = 32) -> Path:
    """A randomly initialised HubertModel with the real 7-layer conv stack (320 samples per
    frame) but tiny widths, saved like `ntu-spml/distilhubert` so the train scripts load it as
    their pretrained encoder."""
    import torch
    from transformers import HubertModel

    torch.manual_seed(0)
    config = tiny_hubert_config(
        hidden,
        layers,
        conv,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
        mask_time_prob=0.0,
    )
    HubertModel(config).save_pretrained(folder)
    speech_extractor().save_pretrained(folder)
    return Path(folder)


def make_asr_smoke(root: Path = SMOKE_ROOT) -> Path:
    """What train/configs/asr_smoke.json reads."""
    librispeech_tree(
        root / "librispeech",
        {
            "train-clean-100": [SENTENCES[i] for i in (0, 1, 2, 4)],
            "dev-clean": SENTENCES[5:6],
            "test-clean": SENTENCES[3:4],
        },
    )
    tiny_hubert(root / "tiny-hubert")
    return root


def wordpiece_tokenizer(corpus: list[str]):
    """A lower-casing DistilBERT WordPiece tokenizer: the corpus's words plus single characters."""
    from transformers import DistilBertTokenizerFast

    words = sorted({w for line in corpus for w in re.findall(r"\w+|[^\w\s]", line.lower())})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for w in words for c in w})
    tokens = list(dict.fromkeys(specials + words + chars + [f"##{c}" for c in chars]))  # "?" is both
    # transformers 5 takes the WordPiece vocabulary as a dict (a vocab.txt path is ignored).
    return DistilBertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)


def unigram_tokenizer(corpus: list[str]):
    """An XLM-R-like SentencePiece Unigram tokenizer trained on `corpus`.

    WhitespaceSplit before Metaspace keeps offsets off the leading space (see ENVIRONMENT.md)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace()])
    trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token="<unk>")
    tok.train_from_iterator(corpus * 4, trainer)
    return XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )


UNKNOWN_WORDS = ["bed", "cat", "happy", "house", "tree", "wow"]


def make_kws_smoke(root: Path = SMOKE_ROOT) -> Path:
    """What train/configs/kws_smoke.json reads: all 12 classes, two voices, an official-style
    test folder spoken by a third."""
    from speech import keywords

    variants = {"train": [("en-us+m3", 150, 50), ("en-us+f2", 150, 50)], "validation": [("en-us+m3", 170, 40)]}
    speech_commands_tree(
        root / "speech_commands",
        list(keywords.KEYWORDS) + UNKNOWN_WORDS[:2],
        variants,
        noise_files=1,
        test_dir=root / "speech_commands_test",
        test_variants=[("en-gb+m2", 150, 50)],
    )
    if not (root / "tiny-hubert").is_dir():
        tiny_hubert(root / "tiny-hubert")
    return root


# Written for this project: 10 questions on 3 common-knowledge paragraphs; 4 of them cannot be
# answered from the paragraph.
QA_PARAGRAPHS = [
    (
        "The Eiffel Tower was built in 1889 by Gustave Eiffel. It stands in Paris and is 330 metres tall.",
        [
            ("When was the Eiffel Tower built?", "1889"),
            ("Who built the Eiffel Tower?", "Gustave Eiffel"),
            ("How tall is the tower?", "330 metres"),
            ("Who painted the tower in 2020?", None),
        ],
    ),
    (
        "Marie Curie was born in Warsaw in 1867. She won the Nobel Prize in Physics in 1903 and in Chemistry in 1911.",
        [
            ("Where was Marie Curie born?", "Warsaw"),
            ("When did she win the Nobel Prize in Chemistry?", "1911"),
            ("What was the name of her first dog?", None),
        ],
    ),
    (
        "The Amazon river flows through Brazil, Peru and Colombia. It carries more water than any "
        "other river on Earth.",
        [
            ("Which countries does the Amazon flow through?", "Brazil, Peru and Colombia"),
            ("How long is the Amazon river?", None),
            ("Who discovered the river?", None),
        ],
    ),
]


def squad_json(paragraphs=QA_PARAGRAPHS) -> dict:
    """The official SQuAD v2 layout."""
    data = []
    for p, (context, questions) in enumerate(paragraphs):
        qas = []
        for q, (question, answer) in enumerate(questions):
            qa = {"id": f"p{p}q{q}", "question": question, "is_impossible": answer is None, "answers": []}
            if answer is not None:
                qa["answers"] = [{"text": answer, "answer_start": context.index(answer)}]
            qas.append(qa)
        data.append({"title": f"paragraph {p}", "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "v2.0", "data": data}


def qa_corpus(paragraphs=QA_PARAGRAPHS) -> list[str]:
    return [text for context, questions in paragraphs for text in (context, *(q for q, _ in questions))]


def tiny_qa(folder: Path, kind: str, corpus: list[str], hidden: int = 64, layers: int = 2) -> Path:
    """A random "pretrained" DistilBERT or XLM-R QA model with a tokenizer made from `corpus`."""
    import torch
    from transformers import DistilBertForQuestionAnswering, XLMRobertaForQuestionAnswering

    torch.manual_seed(0)
    tokenizer = wordpiece_tokenizer(corpus) if kind == "distilbert" else unigram_tokenizer(corpus)
    model_class = DistilBertForQuestionAnswering if kind == "distilbert" else XLMRobertaForQuestionAnswering
    model = model_class(tiny_qa_config(kind, tokenizer, hidden, layers))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def make_qa_smoke(root: Path = SMOKE_ROOT) -> Path:
    """What the QA smoke configs read: a SQuAD v2 file and two tiny base models."""
    (root / "squad").mkdir(parents=True, exist_ok=True)
    (root / "squad" / "squad_v2_mini.json").write_text(json.dumps(squad_json(), indent=1))
    for kind in ("distilbert", "xlmr"):
        tiny_qa(root / f"tiny-{kind}", kind, qa_corpus())
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=SMOKE_ROOT)
    args = parser.parse_args()
    make_asr_smoke(args.root)
    make_kws_smoke(args.root)
    print("wrote", make_qa_smoke(args.root))


if __name__ == "__main__":
    main()
