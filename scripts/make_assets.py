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

# Keyword spotting: one word each, in the voices and speeds the project's tests train on.
KWS_CLIPS = {
    "yes_en-us.wav": ("yes", "en-us+m3", 130, 70),
    "stop_en-us.wav": ("stop", "en-us+f1", 130, 70),
    "left_en-us.wav": ("left", "en-us+m7", 175, 30),
    "off_en-us.wav": ("off", "en-us+f3", 175, 70),
}


def main() -> None:
    for name, (text, voice, speed) in ASR_CLIPS.items():
        speak(text, ASSETS / "asr" / name, voice=voice, speed=speed)
        print("wrote", ASSETS / "asr" / name)
    for name, (text, voice, speed, pitch) in KWS_CLIPS.items():
        speak(text, ASSETS / "kws" / name, voice=voice, speed=speed, pitch=pitch)
        print("wrote", ASSETS / "kws" / name)


if __name__ == "__main__":
    main()
