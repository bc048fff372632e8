"""What turning a live transcript's frame ids into text costs per update as the recording grows,
folding committed words into text once (`speech.long_audio._fold_committed`) against decoding every
id on every update (what a tokenizer that cleans up spaces still gets). The model's share of an
update is `bench.asr_serving`'s; this is the rest, which grew with the recording.

    python -m bench.live_decode                     # 1, 10, 30 and 60 minutes
    python -m bench.live_decode --minutes 1 5 --json out.json

The ids spell English words as a CTC model emits them (each letter two frames, a blank between
letters, "|" between words), 50 frames a second, committed 1.5 s at a time as the live tab's
2.5 s windows with 0.5 s context do, with the window's right context provisional; the letters
are facebook/wav2vec2-base-960h's.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import numpy as np

from speech import long_audio
from speech.ctc import PAD, UNK, WORD_DELIMITER, make_processor

FRAMES_PER_S = 50
UPDATE_FRAMES = FRAMES_PER_S // 2  # an update every 0.5 s
COMMIT_FRAMES = 75  # 1.5 s: a 2.5 s window less 0.5 s of context each side
SENTENCE = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG WHILE SHE SELLS SEA SHELLS BY THE SHORE"
WORDS = SENTENCE.split(" ")
LETTERS = "ETAOINSHRDLUCMFWYPVBGKQJXZ'"  # a character vocabulary as facebook/wav2vec2-base-960h's


def spoken_ids(processor, frames: int) -> np.ndarray:
    """`frames` frame ids of the words above, over and over."""
    vocab = processor.tokenizer.get_vocab()
    pad = processor.tokenizer.pad_token_id
    row = []
    while len(row) < frames:
        for word in WORDS:
            for char in word:
                row += [vocab[char], vocab[char], pad]
            row += [vocab["|"], pad]
    return np.asarray(row[:frames], np.int64)


def per_update_ms(processor, minutes: list[float], measured: int = 20) -> tuple[list[float], str]:
    """Mean ms of `_decode` over the `measured` updates before each minute mark, and the last
    text. Decoding every id depends on no earlier update, so that way only the measured updates
    run (an hour of them would take ~20 minutes)."""
    every_id = processor.tokenizer.clean_up_tokenization_spaces
    ids = spoken_ids(processor, int(max(minutes) * 60 * FRAMES_PER_S) + COMMIT_FRAMES)
    marks = [round(m * 60 * 2) for m in minutes]  # the update at each minute mark
    state = long_audio.StreamState()
    committed = 0
    times = {}
    for update in range(1, max(marks) + 1):
        heard = update * UPDATE_FRAMES
        while heard - committed >= COMMIT_FRAMES:
            state.committed.append(ids[committed : committed + COMMIT_FRAMES])
            committed += COMMIT_FRAMES
        state.provisional = ids[committed:heard]
        if every_id and not any(0 <= mark - update < measured for mark in marks):
            continue
        start = time.perf_counter()
        long_audio._decode(state, processor)
        times[update] = time.perf_counter() - start
    means = [1000 * statistics.mean(times[u] for u in range(mark - measured + 1, mark + 1)) for mark in marks]
    return means, state.text


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 30, 60])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    vocab = {PAD: 0, UNK: 1, WORD_DELIMITER: 2, **{c: i + 3 for i, c in enumerate(LETTERS)}}
    folded = make_processor(vocab)
    everything = copy.deepcopy(folded)
    everything.tokenizer.clean_up_tokenization_spaces = True  # decodes every id on every update
    folded_ms, folded_text = per_update_ms(folded, args.minutes)
    every_ms, every_text = per_update_ms(everything, args.minutes)
    results = {
        "minutes": args.minutes,
        "folded_ms": folded_ms,
        "every_id_ms": every_ms,
        "same_text": folded_text == every_text,
        "words": len(folded_text.split()),
    }
    print(
        "# live transcript decoding per 0.5 s update (mean of 20 updates), same text both ways:", results["same_text"]
    )
    print(f"{'recording':>10}  {'folded (ms)':>12}  {'every id (ms)':>14}  {'ratio':>6}")
    for m, fast, slow in zip(args.minutes, folded_ms, every_ms, strict=True):
        print(f"{m:>8g} m  {fast:>12.2f}  {slow:>14.2f}  {slow / fast:>5.1f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
