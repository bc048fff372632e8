"""Regenerate the example clips in assets/ (spoken by espeak-ng; see assets/README.md) and the
sample SQuAD v2 file the Batch evaluation tab offers.

python -m scripts.make_assets
"""

from __future__ import annotations

import json
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

# A sample for Batch evaluation, in SQuAD v2's layout: the Ask tab's English contexts with
# questions of both kinds (None: no answer in the text).
EIFFEL = (
    "The Eiffel Tower was built for the 1889 World's Fair in Paris. It was designed by the engineering "
    "company of Gustave Eiffel and, at 330 metres, was the tallest man-made structure in the world until 1930."
)
CURIE = (
    "Marie Curie was born in Warsaw in 1867 and moved to Paris in 1891. She shared the 1903 Nobel Prize in "
    "Physics with Pierre Curie and Henri Becquerel, and won the 1911 Nobel Prize in Chemistry alone."
)
SQUAD_SAMPLE = {
    EIFFEL: [
        ("Whose company designed the Eiffel Tower?", "Gustave Eiffel"),
        ("For which event was the Eiffel Tower built?", "the 1889 World's Fair"),
        ("How tall is the Eiffel Tower?", "330 metres"),
        ("Until when was it the tallest man-made structure?", "1930"),
        ("How many visitors did the tower have in 2019?", None),
        ("Who painted the tower in 1889?", None),
    ],
    CURIE: [
        ("Where was Marie Curie born?", "Warsaw"),
        ("When did Marie Curie move to Paris?", "1891"),
        ("Which prize did she win alone?", "the 1911 Nobel Prize in Chemistry"),
        ("With whom did she share the 1903 prize?", "Pierre Curie and Henri Becquerel"),
        ("Where did Marie Curie study chemistry?", None),
        ("When did Marie Curie die?", None),
    ],
}


def squad_sample() -> dict:
    paragraphs = []
    for p, (context, questions) in enumerate(SQUAD_SAMPLE.items()):
        qas = []
        for q, (question, answer) in enumerate(questions):
            answers = [] if answer is None else [{"text": answer, "answer_start": context.index(answer)}]
            qid = f"sample-{p}-{q}"
            qas.append({"id": qid, "question": question, "answers": answers, "is_impossible": not answers})
        paragraphs.append({"context": context, "qas": qas})
    return {"version": "v2.0", "data": [{"title": "Sample", "paragraphs": paragraphs}]}


def main() -> None:
    sample = ASSETS / "qa" / "sample_squad_v2.json"
    sample.write_text(json.dumps(squad_sample(), indent=1, ensure_ascii=False) + "\n")
    print("wrote", sample)
    for name, (text, voice, speed) in ASR_CLIPS.items():
        speak(text, ASSETS / "asr" / name, voice=voice, speed=speed)
        print("wrote", ASSETS / "asr" / name)
    for name, (text, voice, speed, pitch) in KWS_CLIPS.items():
        speak(text, ASSETS / "kws" / name, voice=voice, speed=speed, pitch=pitch)
        print("wrote", ASSETS / "kws" / name)


if __name__ == "__main__":
    main()
