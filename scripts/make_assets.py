"""Regenerate the example clips in assets/ (spoken by espeak-ng; see assets/README.md).

python -m scripts.make_assets
"""

from __future__ import annotations

from pathlib import Path

from scripts.make_smoke_data import speak

ASSETS = Path(__file__).resolve().parents[1] / "assets"

ASR_CLIPS = {
    "weather_en-us.wav": ("the weather is nice today so we will walk to the park", "en-us+m3", 150),
    "numbers_en-gb.wav": ("please call me back at seven thirty tomorrow morning", "en-gb+f2", 140),
    "pangram_en-us.wav": ("the quick brown fox jumps over the lazy dog", "en-us+f4", 160),
}


def main() -> None:
    for name, (text, voice, speed) in ASR_CLIPS.items():
        speak(text, ASSETS / "asr" / name, voice=voice, speed=speed)
        print("wrote", ASSETS / "asr" / name)


if __name__ == "__main__":
    main()
