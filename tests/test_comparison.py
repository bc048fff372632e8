"""Two speech models side by side (speech/comparison.py): the normaliser, the word-by-word view, and
the paired comparison of stored evaluations against hand computations."""

from __future__ import annotations

import pytest

from core.errors import InputError
from core.metrics import normalise_english
from speech import comparison


def asr_row(uid: str, reference: str, hypothesis: str) -> dict:
    return {"id": uid, "reference": reference, "hypothesis": hypothesis}


def kws_row(uid: str, true: str, predicted: str, p: float = 0.9) -> dict:
    return {"id": uid, "true": true, "predicted": predicted, "top3": [[predicted, p]]}


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("HELLO, World!", "hello world"),
        ("Uh, I have twenty-five colours.", "i have 25 colors"),
        ("He isn't here", "he is not here"),
    ],
)
def test_the_english_normaliser_is_whispers(text, normalised):
    assert normalise_english(text) == normalised


def test_a_transcript_is_scored_on_normalised_text():
    scored = comparison.score("Hello, world. Twenty-five colours!", "hello word 25 colors")
    # "hello world 25 colors" vs "hello word 25 colors": 1 substitution in 4 words; 1 deleted letter in 21 characters
    assert (scored.word_errors, scored.words, scored.char_errors, scored.chars) == (1, 4, 1, 21)
    assert scored.wer == pytest.approx(0.25) and scored.cer == pytest.approx(1 / 21)
    with pytest.raises(InputError, match="no words to score against"):
        comparison.score("uh, hmm", "anything")


def test_the_word_by_word_view_ignores_case_and_punctuation_and_keeps_what_each_wrote():
    assert comparison.word_diff("THE CAT SAT ON MAT", "the cat sat on the hat.") == [
        ("equal", "THE", "the"),
        ("equal", "CAT", "cat"),
        ("equal", "SAT", "sat"),
        ("equal", "ON", "on"),
        ("insert", "", "the"),
        ("substitute", "MAT", "hat."),
    ]
    assert comparison.word_diff("", "yes") == [("insert", "", "yes")]
    assert comparison.word_diff("no", "") == [("delete", "no", "")]


def test_stored_asr_evaluations_pair_by_utterance_with_hand_counted_errors():
    a = [asr_row("u1", "the cat sat", "the cat sat"), asr_row("u2", "a dog ran far", "a dog ran"),
         asr_row("u3", "red fish", "bed dish")]  # fmt: skip
    b = [asr_row("u3", "RED FISH", "RED FISH"), asr_row("u1", "THE CAT SAT", "THE BAT SAT"),
         asr_row("u2", "A DOG RAN FAR", "A DOG RAN FAR")]  # fmt: skip
    paired = comparison.compare_asr(a, b)
    # A: 0 + 1 + 2 word errors over 3 + 4 + 2 words; B: 1 + 0 + 0
    assert paired.wer.a == pytest.approx(3 / 9) and paired.wer.b == pytest.approx(1 / 9)
    # characters: A deletes " far" (4) and substitutes r->b, f->d (2); B substitutes c->b (1); 11 + 13 + 8 characters
    assert paired.cer.a == pytest.approx(6 / 32) and paired.cer.b == pytest.approx(1 / 32)
    assert paired.utterances == 3
    assert [(r["id"], r["a_errors"], r["b_errors"]) for r in paired.differing] == [
        ("u3", 2, 0),
        ("u1", 0, 1),
        ("u2", 1, 0),
    ]


def test_different_test_sets_are_not_paired():
    with pytest.raises(InputError) as refused:
        comparison.compare_asr([asr_row("u1", "a", "a"), asr_row("u2", "b", "b")], [asr_row("u1", "a", "a")])
    assert str(refused.value) == (
        "The two models were evaluated on different utterances (A on 2, B on 1, 1 in common), so they cannot "
        "be paired: evaluate both on the same test set."
    )
    with pytest.raises(InputError, match="different reference text"):
        comparison.compare_asr([asr_row("u1", "a cat", "a")], [asr_row("u1", "a dog", "a")])
    with pytest.raises(InputError, match=r"Clip c1 has a different true label in the two evaluations \(yes and no\)"):
        comparison.compare_kws([kws_row("c1", "yes", "yes")], [kws_row("c1", "no", "no")])


def test_stored_kws_evaluations_pair_by_clip_with_hand_counted_cells():
    a = [kws_row("c1", "yes", "yes"), kws_row("c2", "no", "yes", 0.6), kws_row("c3", "up", "down", 0.7),
         kws_row("c4", "stop", "stop")]  # fmt: skip
    b = [kws_row("c1", "yes", "yes"), kws_row("c2", "no", "no", 0.8), kws_row("c3", "up", "up", 0.5),
         kws_row("c4", "stop", "go", 0.4)]  # fmt: skip
    paired = comparison.compare_kws(a, b)
    assert paired.labels == ["yes", "no", "up", "down", "stop", "go"]
    assert paired.a_matrix.tolist()[1] == [1, 0, 0, 0, 0, 0]  # true "no": A said "yes"
    assert paired.b_matrix.tolist()[1] == [0, 1, 0, 0, 0, 0]
    assert paired.accuracy("a") == 0.5 and paired.accuracy("b") == 0.75
    # only A right on c4, only B on c2 and c3: exact two-sided binomial p = 2 * P(X <= 1 | n=3, 1/2) = 2 * 4/8
    assert (paired.test.only_a, paired.test.only_b, paired.test.p_value) == (1, 2, pytest.approx(1.0))
    assert [(d["id"], d["a"], d["b"], d["right"]) for d in paired.disagreements] == [
        ("c2", "yes", "no", "B"),
        ("c3", "down", "up", "B"),
        ("c4", "stop", "go", "A"),
    ]
