"""Miniature copies of the datasets' original layouts, spoken by espeak-ng, plus tiny random
"pretrained" encoders: what the smoke configs and the learning tests train on.

    python scripts/make_smoke_data.py            # writes outputs/smoke/
    python -m train.asr train/configs/asr_smoke.json

Needs espeak-ng and sox (`apt-get install -y espeak-ng sox`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

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


def speak(text: str, out: Path, voice: str = "en-us+m3", speed: int = 150, pitch: int = 50,
          rate: int = 16_000) -> Path:
    """Synthesise `text` with espeak-ng and convert it with sox to mono 16-bit at `rate`."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: `apt-get install -y espeak-ng sox`.")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                       check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out)],
                       check=True, capture_output=True)
    return out


def librispeech_tree(root: Path, splits: dict[str, list[str]], voice: str = "en-us+m3") -> Path:
    """The LibriSpeech layout: <split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac and one
    <speaker>-<chapter>.trans.txt per chapter with upper-case transcripts, as the original."""
    for split, texts in splits.items():
        speaker, chapter = "19", "198"
        folder = root / split / speaker / chapter
        lines = []
        for i, text in enumerate(texts):
            utt = f"{speaker}-{chapter}-{i:04d}"
            speak(text, folder / f"{utt}.flac", voice=voice)
            lines.append(f"{utt} {text.upper()}")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def tiny_hubert(folder: Path, hidden: int = 64, layers: int = 2, conv: int = 32) -> Path:
    """A randomly initialised HubertModel with the real 7-layer conv stack (320 samples per
    frame) but tiny widths, saved like `ntu-spml/distilhubert` so the train scripts load it as
    their pretrained encoder."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = HubertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                          intermediate_size=2 * hidden, conv_dim=(conv,) * 7,
                          num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                          hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                          feat_proj_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0)
    HubertModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(folder)
    return Path(folder)


def make_asr_smoke(root: Path = SMOKE_ROOT) -> Path:
    """What train/configs/asr_smoke.json reads."""
    librispeech_tree(root / "librispeech", {"train-clean-100": [SENTENCES[i] for i in (0, 1, 2, 4)],
                                            "dev-clean": SENTENCES[5:6], "test-clean": SENTENCES[3:4]})
    tiny_hubert(root / "tiny-hubert")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=SMOKE_ROOT)
    args = parser.parse_args()
    print("wrote", make_asr_smoke(args.root))


if __name__ == "__main__":
    main()
