"""The controls of transformers' question-answering pipeline (removed in 5.3), kept with its
meanings (`qa.extractive.AnswerOptions`), in the domain code and through `/answer_with_options`."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client

from qa import extractive
from slots.registry import Registry

CONTEXT = (
    "The tower was designed by Gustave Eiffel's company and built in eighteen eighty nine in Paris, "
    "where it still stands beside the river."
)


def inside_a_word(context: str, i: int) -> bool:
    """Whether character boundary `i` falls between two letters or digits of one word."""
    return 0 < i < len(context) and context[i - 1].isalnum() and context[i].isalnum()


def cuts_a_word(context: str, start: int, end: int) -> bool:
    return inside_a_word(context, start) or inside_a_word(context, end)


@pytest.mark.parametrize("slot", ["qa-distilbert", "qa-xlmr"])
def test_aligned_spans_never_cut_a_word_and_unaligned_ones_do(tiny_checkpoints, slot):
    """Random logits over a context whose words the tokenizer splits into pieces: with
    align_to_words no answer starts or ends inside a word; without, some do (the control)."""
    tokenizer = Registry(tiny_checkpoints)[slot].get().processor
    example = extractive.Example("q", "Who designed the tower?", CONTEXT)
    features = extractive.prepare(tokenizer, [example], 64, 16)
    pieces = [o for o in features.offsets[0] if o is not None and inside_a_word(CONTEXT, o[0])]
    assert pieces, "the tokenizer should split some word of the context into pieces"
    rng = np.random.default_rng(0)
    cut = {True: 0, False: 0}
    for _ in range(40):
        shape = (len(features.example_index), len(features.offsets[0]))
        starts, ends = rng.normal(size=shape), rng.normal(size=shape)
        for align in (True, False):
            (prediction,) = extractive.postprocess([example], features, starts, ends, align_to_words=align)
            cut[align] += sum(cuts_a_word(CONTEXT, a["start"], a["end"]) for a in prediction.alternatives)
    assert cut[True] == 0 and cut[False] > 0


def test_a_span_starting_inside_a_word_is_widened_to_the_whole_word(tiny_checkpoints):
    tokenizer = Registry(tiny_checkpoints)["qa-distilbert"].get().processor
    example = extractive.Example("q", "Who?", CONTEXT)
    features = extractive.prepare(tokenizer, [example], 384, 128)
    offsets = features.offsets[0]
    start = next(k for k, o in enumerate(offsets) if o is not None and inside_a_word(CONTEXT, o[0]))
    end = next(
        k
        for k in range(start, len(offsets))
        if offsets[k] is not None and CONTEXT[offsets[k][1] : offsets[k][1] + 1] in (" ", ",")
    )
    starts, ends = np.full((1, len(offsets)), -10.0), np.full((1, len(offsets)), -10.0)
    starts[0, start], ends[0, end] = 10.0, 10.0
    raw = extractive.postprocess([example], features, starts, ends)[0].best_span
    aligned = extractive.postprocess([example], features, starts, ends, align_to_words=True)[0].best_span
    assert aligned.endswith(raw) and len(aligned) > len(raw) and f" {aligned}" in f" {CONTEXT}"


def test_top_k_max_answer_len_and_impossible_answers(tiny_checkpoints):
    loaded = Registry(tiny_checkpoints)["qa-distilbert"].get()
    ask = lambda threshold=0.0, **o: extractive.answer(  # noqa: E731
        loaded.model, loaded.processor, CONTEXT, "Who designed it?", threshold, options=extractive.AnswerOptions(**o)
    )
    assert len(ask(top_k=12).alternatives) >= 12
    for alternative in ask(max_answer_len=1, align_to_words=False).alternatives:
        assert len(loaded.processor(alternative["text"], add_special_tokens=False)["input_ids"]) == 1
    assert ask(threshold=-1e9).text == ""  # abstains whenever "no answer" may be the answer...
    forced = ask(threshold=-1e9, handle_impossible_answer=False)
    assert forced.text and forced.text == forced.best_span  # ...and never where it may not


def test_doc_stride_and_max_question_len_are_used_and_refused_in_a_sentence(tiny_checkpoints, monkeypatch):
    loaded = Registry(tiny_checkpoints)["qa-xlmr"].get()
    strides = []
    real = extractive.prepare
    monkeypatch.setattr(extractive, "prepare", lambda *a, **k: strides.append(a[3]) or real(*a, **k))

    def ask(question="Who designed it?", **options):
        options = extractive.AnswerOptions(**options)
        return extractive.answer(loaded.model, loaded.processor, CONTEXT, question, options=options)

    ask()
    ask(doc_stride=64)
    assert strides == [min(extractive.STRIDE, extractive.window_length(loaded.model.config) // 4), 64]
    with pytest.raises(extractive.QAInputError, match="doc_stride must be a whole number from 0 to 192, not 500"):
        ask(doc_stride=500)
    with pytest.raises(extractive.QuestionTooLong, match=r"at most 3 are allowed \(max_question_len\)"):
        ask(max_question_len=3)
    with pytest.raises(extractive.QAInputError, match="top_k must be a whole number from 1 to 20, not 0"):
        ask(top_k=0)


def test_the_options_endpoint_takes_every_control(tiny_app):
    client = Client(tiny_app, verbose=False)
    answers = client.predict(CONTEXT, "Who designed it?", 5, 30, 64, 20, False, True, api_name="/answer_with_options")
    assert set(answers) == {"qa-distilbert", "qa-xlmr"}
    for answer in answers.values():
        assert len(answer["alternatives"]) == 5 and answer["text"]  # never "no answer" here
        assert not any(cuts_a_word(CONTEXT, a["start"], a["end"]) for a in answer["alternatives"])
    with pytest.raises(Exception, match="top_k must be a whole number from 1 to 20, not 25"):
        client.predict(CONTEXT, "Who?", 25, 30, None, None, True, True, api_name="/answer_with_options")
    assert len(client.predict(CONTEXT, "Who?", api_name="/answer")["qa-xlmr"]["alternatives"]) == 3  # as before


def test_an_aligned_answer_leaves_the_punctuation_a_sentencepiece_word_carries(tiny_checkpoints):
    """XLM-R's tokenizer splits on spaces only: "Eiffel." is one word; the answer stops at the
    last letter, as the model's own span does."""
    tokenizer = Registry(tiny_checkpoints)["qa-xlmr"].get().processor
    context = "It was built by Gustave Eiffel. It stands in Paris."
    example = extractive.Example("q", "Who built it?", context)
    features = extractive.prepare(tokenizer, [example], 128, 32)
    offsets, words = features.offsets[0], features.words[0]
    first = next(k for k, o in enumerate(offsets) if o is not None and o[0] <= context.index("Gustave") < o[1])
    last = next(k for k, o in enumerate(offsets) if o is not None and o[0] < context.index(". It") <= o[1])
    assert context[slice(*words[last])] == "Eiffel."  # the tokenizer's word
    starts, ends = np.full((1, len(offsets)), -10.0), np.full((1, len(offsets)), -10.0)
    starts[0, first], ends[0, last] = 10.0, 10.0
    (aligned,) = extractive.postprocess([example], features, starts, ends, align_to_words=True)
    assert aligned.text == "Gustave Eiffel"
