"""Question answering with bad or odd input: malformed metrics.json, /answer arguments of the
wrong kind, batch files that are not SQuAD v2 or exceed the limits, a long batch beside /answer,
and how each model's column words its answer."""

from __future__ import annotations

import json
import re
import time

import pytest
from gradio_client import Client

from scripts.make_smoke_data import squad_json
from slots.registry import Registry
from tests.helpers import QA_CONTEXT as CONTEXT


def test_a_malformed_metrics_json_is_reported_on_its_slot_and_never_stops_either_model(
    launch, tiny_checkpoints, tmp_path
):
    import shutil

    from ui.common import status_card

    for name in ("qa-distilbert", "qa-xlmr"):
        shutil.copytree(tiny_checkpoints / name, tmp_path / name)
    (tmp_path / "qa-distilbert" / "metrics.json").write_text("{broken")
    (tmp_path / "qa-xlmr" / "metrics.json").write_text(json.dumps({"extra": {"null_score_diff_threshold": "abc"}}))
    client = Client(launch(tmp_path), verbose=False)
    expected = {
        "qa-distilbert": "metrics.json is not valid JSON (line 1, column 2); it is ignored",
        "qa-xlmr": "metrics.json: 'extra.null_score_diff_threshold' is \"abc\", not a number; it is ignored",
    }
    status = client.predict(api_name="/reload")
    for name, warning in expected.items():
        assert status[name]["state"] == "loaded" and status[name]["warnings"] == [warning]
    answers = client.predict("Paris is the capital of France.", "What is the capital?", api_name="/answer")
    for name in expected:  # both answer, each with the default threshold
        assert "error" not in answers[name] and answers[name]["threshold"] == 0.0, answers[name]
    # A number instead of an object on one side, a good threshold on the other: only one is affected.
    (tmp_path / "qa-distilbert" / "metrics.json").write_text("5")
    (tmp_path / "qa-xlmr" / "metrics.json").write_text(json.dumps({"extra": {"null_score_diff_threshold": -1.5}}))
    status = client.predict(api_name="/reload")
    assert status["qa-distilbert"]["warnings"] == ["metrics.json holds a number, not an object; it is ignored"]
    assert status["qa-xlmr"]["warnings"] == []
    answers = client.predict("Paris is the capital of France.", "What is the capital?", api_name="/answer")
    assert answers["qa-distilbert"]["threshold"] == 0.0 and answers["qa-xlmr"]["threshold"] == -1.5
    slot = Registry(tmp_path)["qa-distilbert"]
    slot.get()
    assert status_card(slot).endswith("\n\n⚠️ metrics.json holds a number, not an object; it is ignored")


ACCEPTED = "Accepted: a SQuAD v2 JSON file"


@pytest.mark.parametrize(
    "args,message",
    [
        ((12345, "When?"), "The context must be text, not a number."),
        (("Paris is in France.", ["a", "list"]), "The question must be text, not a list."),
        (({"an": "object"}, "When?"), "The context must be text, not an object."),
        (("Paris is in France.", 3.5), "The question must be text, not a number."),
        (("Paris is in France.",), "The question is empty."),  # an argument left out
        ((), "The context is empty"),
        (("Paris is in France.", "why " * 300), "The question has 1,199 characters; the limit is 1,000."),
    ],
)
def test_malformed_answer_arguments_get_the_apps_sentence(tiny_app, args, message):
    client = Client(tiny_app, verbose=False)
    with pytest.raises(Exception, match=re.escape(message)):
        client.predict(*args, api_name="/answer")


def test_a_lone_surrogate_sent_over_plain_http_is_refused_with_a_sentence(tiny_app):
    # gradio_client cannot even encode "\ud800"; a plain HTTP client sends it as a JSON escape.
    import urllib.request

    url = tiny_app + "gradio_api/call/answer"
    body = b'{"data": ["Paris \\ud800 is in France.", "Where is Paris?"]}'
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}/{event}", timeout=60).read().decode()
    assert "event: error" in stream
    assert "The context holds a character that is not valid text (an unpaired surrogate at position 7)" in stream


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("numbers.json", "[1, 2, 3]", f"Item 1 is a number, not an object. {ACCEPTED}"),
        ("words.json", '["a", "b"]', f"Item 1 is text, not an object. {ACCEPTED}"),
        (
            "context.json",
            json.dumps([{"id": "q1", "question": "When?", "context": 12345}]),
            f"Item 1: 'context' is a number, not text. {ACCEPTED}",
        ),
        (
            "answer.json",
            json.dumps([{"id": "q1", "question": "When?", "context": "In 1889.", "answers": [{"text": 5}]}]),
            "Item 1: answer 1: 'text' is a number, not text.",
        ),
        ("deep_lists.json", "[" * 100_000 + "]" * 100_000, "The file nests lists or objects too deeply"),
        ("deep_objects.json", '{"a":' * 100_000 + "1" + "}" * 100_000, "The file nests lists or objects too deeply"),
        ("broken.json", '{"data": [', "The file is not valid JSON (line 1, column 11)."),
        ("lines.jsonl", '{"id": "q1"}\nhello\n', "Item 1: 'question' is null, not text."),
        ("text.jsonl", "hello\n", "Line 1 is not valid JSON (column 1)."),
        ("empty.json", '{"data": []}', "The file holds no questions"),
        ("nodata.json", '{"version": "v2.0"}', "This is not SQuAD v2: the top level has no 'data' list."),
        (
            "twice.json",
            json.dumps([{"id": "q1", "question": "When?", "context": "In 1889."}] * 2),
            "The question id 'q1' appears more than once",
        ),
        (
            "huge_context.json",
            json.dumps([{"id": "q1", "question": "When?", "context": "word " * 200_000 + "in 1889."}] * 3),
            "Question 1 (id 'q1'): The context has 1,000,008 characters; the limit is 20,000.",
        ),
    ],
)
def test_malformed_batch_files_get_the_apps_sentence_before_any_model_runs(tiny_app, tmp_path, name, text, message):
    from gradio_client import handle_file

    upload = tmp_path / name
    upload.write_text(text)
    client = Client(tiny_app, verbose=False)
    start = time.monotonic()
    with pytest.raises(Exception, match=re.escape(message)):
        client.predict(handle_file(str(upload)), api_name="/batch_evaluate")
    assert time.monotonic() - start < 10  # refused from the file alone; no model ran


@pytest.mark.slow
def test_a_long_batch_never_holds_up_answer(launch, tiny_checkpoints, tmp_path, monkeypatch):
    import threading

    from gradio_client import handle_file

    from serving import gpu

    real, started = gpu.answer_all, threading.Event()

    def slow_predict_all(*args, **kwargs):
        started.set()
        time.sleep(6)  # 200 long questions on a busy CPU
        return real(*args, **kwargs)

    monkeypatch.setattr(gpu, "answer_all", slow_predict_all)
    url = launch(tiny_checkpoints)
    upload = tmp_path / "batch.json"
    upload.write_text(json.dumps(squad_json()))
    batch = threading.Thread(
        target=lambda: Client(url, verbose=False).predict(handle_file(str(upload)), api_name="/batch_evaluate")
    )
    batch.start()
    assert started.wait(60)
    start = time.monotonic()
    answers = Client(url, verbose=False).predict(CONTEXT, "Which letter follows alpha?", api_name="/answer")
    assert time.monotonic() - start < 4.0 and set(answers) == {"qa-distilbert", "qa-xlmr"}
    assert batch.is_alive()  # the batch was still running while /answer was served
    batch.join(60)


def test_each_column_says_the_answer_in_plain_words_and_the_numbers_in_a_details_line():
    from ui.qa_answers import side, side_shown

    context = "The tower was built in 1889."
    answered = {
        "text": "1889",
        "best_span": "1889",
        "probability": 0.6234,
        "score_diff": -2.3456,
        "threshold": -0.130182415,
        "seconds": 0.0123,
        "start": 23,
        "end": 27,
        "alternatives": [{"text": "1889", "probability": 0.6234, "score": 7.891}],
    }
    summary, spans, rows = side(answered, context)
    assert summary == (
        "### 1889\nAnswers with 62% confidence.\n\n<small>no-answer margin (no-answer score − best span score) "
        "-2.35; it abstains above -0.13 · 12 ms</small>"
    )
    assert spans == (  # one paragraph, the answer marked in place
        "<div style='max-height:22em;overflow-y:auto'><p style='line-height:1.7;margin:0'>The tower was built in "
        "<mark style='background:#fde68a;padding:0 2px' title='answer'>1889</mark>.</p></div>"
    )
    assert rows == [["1889", 0.623, 7.89]]
    # The page shows the spans' table only with spans in it (not while answering, not for an error).
    table = side_shown(answered, context)[2]
    assert table.visible and table.value["data"] == rows
    assert not side_shown(None, context)[2].visible and not side_shown({"error": "x"}, context)[2].visible
    abstained = {**answered, "text": "", "probability": 0.7, "score_diff": 1.5}
    summary, spans, _ = side(abstained, context)
    assert summary.startswith(
        "### No answer\nAbstains: it finds no answer to this question in the text. Its best guess was “1889”."
    )
    assert "title='best span (abstained)'>1889</mark>." in spans
    assert side(None, "a <b> c")[1].endswith(">a &lt;b&gt; c</p></div>")  # a context is text, never markup


def test_batch_files_are_cut_to_the_limits_and_say_so(tmp_path, monkeypatch):
    from ui import qa_panels

    rows = [{"id": f"q{i}", "question": "When?", "context": f"Built in {1800 + i}."} for i in range(250)]
    rows.insert(3, {"id": "blank", "question": " ", "context": "Nothing."})
    upload = tmp_path / "many.json"
    upload.write_text(json.dumps(rows))
    batch = qa_panels.read_batch(upload)
    assert [e.id for e in batch.examples] == [f"q{i}" for i in range(200)]
    assert batch.note == (
        "Scored the first 200 of 250 questions (the limit per file is 200 questions and 300,000 characters "
        "of context). Skipped 1 question(s) with an empty question or context."
    )
    # The context budget: questions are taken while their contexts fit in it.
    monkeypatch.setattr(qa_panels, "BATCH_CONTEXT_CHARS", 50)
    assert [e.id for e in qa_panels.read_batch(upload).examples] == ["q0", "q1", "q2"]  # 3 x 14 characters
    monkeypatch.setattr(qa_panels, "BATCH_MAX_BYTES", 1000)
    with pytest.raises(qa_panels.InputError, match=r"The file is 1[0-9.]+ KB; the limit is 1000 B\."):
        qa_panels.read_batch(upload)


def test_a_batch_question_too_long_for_a_model_refuses_the_file_before_any_model_runs(
    tiny_checkpoints, tmp_path, monkeypatch
):
    import gradio as gr

    from serving import gpu
    from slots.registry import Registry
    from ui import qa_panels

    lines = [
        {"id": "q0", "context": "Paris is the capital of France.", "question": "What is the capital?", "answers": []},
        {"id": "q-long", "context": "Paris is the capital.", "question": "why " * 240, "answers": []},
        {"id": "q2", "context": "Rome is in Italy.", "question": "Where is Rome?", "answers": []},
    ]
    upload = tmp_path / "batch.jsonl"
    upload.write_text("\n".join(json.dumps(line) for line in lines))
    ran = []
    monkeypatch.setattr(gpu, "answer_all", lambda *args, **kwargs: ran.append(args))
    with pytest.raises(gr.Error) as err:
        qa_panels.batch_evaluate(Registry(tiny_checkpoints), str(upload))
    assert str(err.value.message).startswith("Question 'q-long' is ")
    assert "tokens long for distilbert; at most" in err.value.message and not ran


def test_an_answer_from_the_visitors_own_text_is_shown_as_text_never_as_markup():
    from ui import qa_answers as qa_tab

    said = "<img src=x onerror=alert(1)> **bold** [link](http://x)"
    result = {
        "text": said, "probability": 0.9, "score_diff": -2.0, "threshold": 0.0, "seconds": 0.01,
        "start": 0, "end": len(said), "alternatives": [], "best_span": said,
    }  # fmt: skip
    summary, marked, _ = qa_tab.side(result, said)
    heading = summary.splitlines()[0]
    assert heading == (r"### &lt;img src=x onerror=alert\(1\)&gt; \*\*bold\*\* \[link\]\(http://x\)")
    assert "<img" not in summary and "<img" not in marked
    abstained = qa_tab.side({**result, "text": ""}, said)[0]
    assert "“&lt;img src=x onerror=alert\\(1\\)&gt; \\*\\*bold" in abstained
    agree = qa_tab.agreement({"a": {"text": said}, "b": {"text": said}})
    assert "<img" not in agree and "\\*\\*bold\\*\\*" in agree


def test_the_sample_batch_file_is_squad_v2_with_both_kinds_of_question():
    from ui.qa import SAMPLE_FILE
    from ui.qa_panels import read_batch

    batch = read_batch(SAMPLE_FILE)
    assert len(batch.examples) == 12 and sum(not e.answers for e in batch.examples) == 4 and batch.note == ""
    for example in batch.examples:  # every gold answer where its offset says
        for answer in example.answers:
            start = answer["answer_start"]
            assert example.context[start : start + len(answer["text"])] == answer["text"]
