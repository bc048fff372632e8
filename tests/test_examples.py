"""Per-example results (core/examples.py, speech/error_analysis.py, qa/error_analysis.py): the files, the
audio cap, the questions asked of them, and evaluation order under length-grouped batches."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import TrainingArguments

from core.examples import CLIP_RATE, ExamplesError, ExampleSet, read_examples, write_examples
from qa import error_analysis as qa_ea
from speech import error_analysis as ea
from train.common import GroupedTrainer


def _noise(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(16_000 * seconds)) * 0.1).astype(np.float32)


def test_audio_stops_at_the_cap_and_says_how_much_was_left_out(tmp_path):
    rows = [{"id": f"clip{i}", "true": "yes", "predicted": "no", "top3": [["no", 0.9]]} for i in range(200)]
    listen = [(i, lambda i=i: _noise(1.0, i)) for i in range(200)]  # white noise: ~25 KB per FLAC second
    summary = write_examples(tmp_path, ExampleSet("kws", "test", rows, listen, audio_mb=0.5))
    audio = summary["audio"]
    assert audio["stored"] + audio["left_out"] == 200 and audio["left_out"] > 150
    stored = list((tmp_path / "examples" / "audio").glob("*.flac"))
    assert len(stored) == audio["stored"] and sum(p.stat().st_size for p in stored) <= 0.5 * 2**20
    assert audio["bytes"] == sum(p.stat().st_size for p in stored)

    examples = read_examples(tmp_path)
    assert [r["id"] for r in examples.rows] == [f"clip{i}" for i in range(200)]
    with_audio = [r for r in examples.rows if examples.audio_path(r)]
    assert len(with_audio) == audio["stored"] and with_audio[0]["id"] == "clip0"  # in `listen` order
    samples, rate = sf.read(examples.audio_path(with_audio[0]), dtype="float32")
    assert rate == 16_000 and np.abs(samples - _noise(1.0, 0)).max() < 1e-4  # 16-bit FLAC: lossless to 2**-15
    assert examples.audio_note().endswith(f"{audio['left_out']} more left out to keep the audio under 0.5 MB.")
    assert f"{audio['stored']} clips stored" in examples.audio_note() and "left out" in examples.audio_note()


def test_old_checkpoints_have_none_and_broken_files_are_named(tmp_path):
    assert read_examples(tmp_path) is None
    row = {"id": "a", "true": "yes", "predicted": "no", "top3": [["no", 0.9]], "audio": "../../../etc/passwd"}
    write_examples(tmp_path, ExampleSet("kws", "test", [row]))
    examples = read_examples(tmp_path)
    assert examples.audio_path(examples.rows[0]) is None  # a row can only name a file under audio/
    (tmp_path / "examples" / "predictions.jsonl").write_text('{"id": "a"}\n[1, 2]\n')
    with pytest.raises(ExamplesError, match="predictions.jsonl line 2 holds a list"):
        read_examples(tmp_path)
    (tmp_path / "examples" / "predictions.jsonl").write_text("{broken\n")
    with pytest.raises(ExamplesError, match="predictions.jsonl is not valid JSON lines"):
        read_examples(tmp_path)
    (tmp_path / "examples" / "summary.json").write_text("5")
    with pytest.raises(ExamplesError, match="summary.json holds a number"):
        read_examples(tmp_path)


def test_kws_cells_and_confused_pairs():
    labels = ["yes", "no", "up", "off"]
    truth = [0, 0, 1, 3, 3, 3, 2]
    picks = [0, 1, 1, 2, 2, 0, 2]
    probs = np.full((7, 4), 0.1)
    probs[np.arange(7), picks] = np.linspace(0.5, 0.8, 7)
    rows = ea.kws_rows([f"c{i}" for i in range(7)], labels, truth, probs)
    assert [r["predicted"] for r in rows] == [labels[p] for p in picks]
    assert rows[3]["top3"][0] == ["up", pytest.approx(0.65)]
    assert ea.confused_pairs(rows) == [("off", "up", 2), ("off", "yes", 1), ("yes", "no", 1)]
    assert [r["id"] for r in ea.cell(rows, "off", "up")] == ["c4", "c3"]  # most confident first
    order = ea.kws_listen_order(rows, correct_per_class=1)
    assert set(order[:4]) == {1, 3, 4, 5} and order[0] == 5 and set(order[4:]) == {0, 2, 6}


def test_asr_alignment_is_jiwers():
    ref, hyp = "the cat sat on the mat", "the bat sat the mat now"
    row = ea.asr_rows(["u1"], [ref], [hyp])[0]
    chunks = jiwer.process_words(ref, hyp).alignments[0]
    assert row["alignment"] == [
        [c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx] for c in chunks
    ]
    assert row["errors"] == {"substitutions": 1, "deletions": 1, "insertions": 1, "words": 6}
    assert row["wer"] == 0.5
    assert ea.aligned_words(row) == [
        ("equal", "the", "the"),
        ("substitute", "cat", "bat"),
        ("equal", "sat", "sat"),
        ("delete", "on", ""),
        ("equal", "the", "the"),
        ("equal", "mat", "mat"),
        ("insert", "", "now"),
    ]
    rows = ea.asr_rows(["u1", "u2", "u3", "u4"], [ref, "a cat", "right", ""], [hyp, "a bat", "right", "noise"])
    assert [r["id"] for r in ea.worst(rows)] == ["u4", "u1", "u2"]  # u4: an empty reference, all inserted
    assert ea.substitutions(rows) == [("cat", "bat", 2)]
    assert ea.error_breakdown(rows) == {"substitutions": 2, "deletions": 1, "insertions": 2, "words": 9}


def _qa_row(qid: str, said: str, gold: list[str]) -> dict:
    golds = gold or [""]
    return {
        "id": qid,
        "question": f"q {qid}",
        "context": "c0",
        "answers": [{"text": g, "start": 0} for g in gold],
        "prediction": {"text": said, "start": 0 if said else None, "end": len(said) if said else None},
        "exact": int(any(qa_ea.normalize_answer(g) == qa_ea.normalize_answer(said) for g in golds)),
    }


def test_qa_filters_on_the_questions_both_models_answered():
    a = [_qa_row("1", "Paris", ["Paris"]), _qa_row("2", "the Paris", ["Paris"]), _qa_row("3", "", [])]
    a += [_qa_row("4", "1889", []), _qa_row("5", "", ["Rome"]), _qa_row("only-a", "x", ["x"])]
    b = [_qa_row("1", "Lyon", ["Paris"]), _qa_row("2", "Paris!", ["Paris"]), _qa_row("3", "", [])]
    b += [_qa_row("4", "", []), _qa_row("5", "Rome", ["Rome"])]
    joined = qa_ea.join({"a": a, "b": b})
    assert [j["a"]["id"] for j in joined] == ["1", "2", "3", "4", "5"]
    chosen = {how: [j["a"]["id"] for j in joined if qa_ea.keep(j, how)] for how in qa_ea.QA_FILTERS}
    assert chosen["disagree"] == ["1", "4", "5"]  # "the Paris" and "Paris!" normalise alike
    assert chosen["one right"] == ["1", "4", "5"]
    assert chosen["unanswerable answered"] == ["4"]
    assert chosen["answerable abstained"] == ["5"]
    alone = qa_ea.join({"a": a})
    assert len(alone) == 6 and not any(qa_ea.keep(j, "disagree") for j in alone)


class _Echo(torch.nn.Module):
    """Returns each example's own id as its prediction."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, labels=None):
        return {"loss": self.w.sum(), "logits": x[:, :1] + self.w}


class _Varied(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.lengths = [int(v) for v in np.random.default_rng(0).integers(1, 50, n)]

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        return {"x": torch.full((4,), float(i)), "labels": torch.tensor(float(i))}


def test_predict_in_order_undoes_length_grouping(tmp_path):
    args = TrainingArguments(
        tmp_path, per_device_eval_batch_size=4, train_sampling_strategy="group_by_length", report_to="none"
    )
    trainer = GroupedTrainer(model=_Echo(), args=args)
    data = _Varied(37)
    grouped = trainer.predict(data).predictions[:, 0]
    assert not np.array_equal(grouped, np.arange(37))  # the sampler does permute
    output = trainer.predict_in_order(data)
    np.testing.assert_array_equal(output.predictions[:, 0], np.arange(37))
    np.testing.assert_array_equal(output.label_ids, np.arange(37))


def test_summary_and_rows_are_plain_json(tmp_path):
    rows = ea.kws_rows(["a"], ["yes", "no"], [np.int64(1)], np.array([[0.2, 0.8]], np.float32))
    write_examples(tmp_path, ExampleSet("kws", "test", rows))
    line = (tmp_path / "examples" / "predictions.jsonl").read_text().splitlines()[0]
    assert json.loads(line) == {"id": "a", "true": "no", "predicted": "no", "top3": [["no", 0.8], ["yes", 0.2]]}


def test_the_context_marks_each_answer_and_escapes_the_text():
    from ui.qa_explorer import BOTH, COLOURS, marked_context

    text = "The <tower> was built in 1889."
    spans = {"gold": [(25, 29)], "qa-distilbert": [(16, 29)], "qa-xlmr": [(25, 29)]}
    shown = marked_context(text, spans)
    assert "The &lt;tower&gt; was " in shown  # a context is text, never markup
    assert f"<span style='background:{COLOURS[0]}'>built in </span>" in shown  # DistilBERT alone
    assert f"<span style='background:{BOTH};text-decoration:underline" in shown and ">1889</span>." in shown
    assert shown.count("<span") == 2


def test_alignment_marks_substitutions_deletions_and_insertions():
    from ui.error_views import alignment_html

    row = ea.asr_rows(["u"], ["the cat sat on the <mat>"], ["the bat sat the <mat> now"])[0]
    shown = alignment_html(row)
    assert shown.startswith("the <span") and "cat → bat</span> sat" in shown
    assert 'title="missed">on</span> the &lt;mat&gt;' in shown and 'title="added">+now</span>' in shown


def test_models_without_per_example_results_say_so(tiny_app):
    from gradio_client import Client

    client = Client(tiny_app, verbose=False)
    for endpoint, args in (("/kws_errors", ("yes", "no")), ("/asr_errors", ()), ("/qa_questions", ("all",))):
        with pytest.raises(Exception, match="no per-example results: only checkpoints written by") as err:
            client.predict(*args, api_name=endpoint)
        assert "train/" not in str(err.value) and ".py" not in str(err.value)  # no server paths for visitors


def test_a_model_without_an_evaluation_says_so_without_server_files():
    from types import SimpleNamespace

    from ui.common import no_evaluation

    hub_model = SimpleNamespace(warnings=[], metrics=None)
    assert no_evaluation(hub_model) == (
        "This model has no evaluation of its own: it was not trained by this project's training script."
    )
    broken = SimpleNamespace(warnings=["metrics.json holds a number, not an object; it is ignored"], metrics=None)
    assert no_evaluation(broken) == (
        "This model's evaluation could not be read: metrics.json holds a number, not an object; it is ignored."
    )


def test_the_explorer_works_with_one_model_and_says_so(tmp_path):
    from ui.qa_explorer import _note, qa_questions, question_detail

    rows = [_qa_row("1", "Paris", ["Paris"]), _qa_row("2", "", ["Rome"])]
    for row in rows:
        row.update(f1=float(row["exact"]), null_margin=0.5, threshold=0.0)
    rows[0]["answers"][0]["start"] = 15
    rows[0]["prediction"].update(start=15, end=20)
    write_examples(tmp_path, ExampleSet("qa", "validation", rows, contexts=["The capital is Paris."]))
    alone = {"qa-xlmr": read_examples(tmp_path)}
    listed = qa_questions(alone, "answerable abstained")
    assert listed["models"] == ["qa-xlmr"] and [q["id"] for q in listed["questions"]] == ["2"]
    assert qa_questions(alone, "disagree")["questions"] == []
    note = _note(qa_questions(alone, "disagree"), "DistilBERT: no model.", "disagree")
    assert note.startswith("Only XLM-RoBERTa has per-example results (DistilBERT: no model.)")
    assert "compares two models, so it shows nothing" in note
    detail = question_detail(alone, "1")
    assert "<b>XLM-RoBERTa</b>: Paris (EM 1, F1 1.00, no-answer margin +0.50, abstains above +0.00)" in detail
    assert "DistilBERT" not in detail and ">Paris</span>." in detail


def _one_clip(folder) -> Path:
    rows = [{"id": "clip0", "true": "yes", "predicted": "no", "top3": [["no", 0.9], ["yes", 0.1]]}]
    write_examples(folder, ExampleSet("kws", "test", rows, [(0, lambda: _noise(0.5, 0))]))
    return folder / "examples" / "audio" / "00000.flac"


def test_a_clip_that_links_outside_its_checkpoint_is_never_served(tmp_path):
    secret = tmp_path / "server-file.flac"
    secret.write_bytes(b"not for visitors")
    clip = _one_clip(tmp_path / "ckpt")
    examples = read_examples(tmp_path / "ckpt")
    assert examples.audio_path(examples.rows[0]) == clip  # the stored clip itself
    clip.unlink()
    clip.symlink_to(secret)
    assert examples.audio_path(examples.rows[0]) is None
    clip.unlink()
    clip.symlink_to(Path("/etc/passwd"))
    assert examples.audio_path(examples.rows[0]) is None
    clip.unlink()
    clip.symlink_to(clip)  # a loop of links
    assert examples.audio_path(examples.rows[0]) is None
    # A whole audio/ folder linked elsewhere.
    other = _one_clip(tmp_path / "other")
    audio = tmp_path / "ckpt" / "examples" / "audio"
    clip.unlink()
    audio.rmdir()
    audio.symlink_to(other.parent)
    assert examples.audio_path(examples.rows[0]) is None


def test_a_checkpoint_in_the_hub_cache_serves_its_clips_through_the_cache_links(tmp_path):
    # huggingface_hub's layout: snapshots/<commit>/... are links into the repository's blobs/.
    repo = tmp_path / "hub" / "models--me--kws"
    snapshot = repo / "snapshots" / ("a" * 40)
    clip = _one_clip(snapshot)
    blob = repo / "blobs" / "0123abcd"
    blob.parent.mkdir(parents=True)
    clip.replace(blob)
    clip.symlink_to(Path("../../../../blobs/0123abcd"))
    examples = read_examples(snapshot)
    assert examples.audio_path(examples.rows[0]) == clip and clip.resolve() == blob.resolve()


def test_malformed_rows_are_left_out_with_a_warning_and_the_rest_serve(tmp_path, caplog):
    from speech import error_analysis as ea

    good = {"id": "c1", "true": "yes", "predicted": "no", "top3": [["no", 0.9], ["yes", 0.1]]}
    bad = [
        {"id": "c2", "true": "yes", "predicted": "no"},  # no top3
        {"id": "c3", "true": "yes", "predicted": "no", "top3": "no"},
        {"id": "c4", "true": 5, "predicted": "no", "top3": [["no", 0.9]]},
        {"id": "c5", "true": "yes", "predicted": "no", "top3": [["no", "high"]]},
    ]
    write_examples(tmp_path, ExampleSet("kws", "test", [good, *bad]))
    with caplog.at_level("WARNING"):
        examples = read_examples(tmp_path)
    assert [r["id"] for r in examples.rows] == ["c1"] and examples.skipped == 4
    assert "4 of 5 rows of examples/predictions.jsonl left out" in caplog.text
    assert ea.confused_pairs(examples.rows) == [("yes", "no", 1)]
    asr_good = {
        "id": "u1", "reference": "a b", "hypothesis": "a c", "wer": 0.5, "cer": 0.3,
        "errors": {"substitutions": 1, "deletions": 0, "insertions": 0, "words": 2},
        "alignment": [["equal", 0, 1, 0, 1], ["substitute", 1, 2, 1, 2]],
    }  # fmt: skip
    asr_bad = [
        {**asr_good, "id": "u2", "alignment": [["substitute", 1, 9, 1, 2]]},  # past the reference's words
        {**asr_good, "id": "u3", "errors": {"substitutions": "1"}},
        {**asr_good, "id": "u4", "wer": None},
    ]
    write_examples(tmp_path / "asr", ExampleSet("asr", "test", [asr_good, *asr_bad]))
    examples = read_examples(tmp_path / "asr")
    assert [r["id"] for r in examples.rows] == ["u1"]
    assert ea.substitutions(examples.rows, 5) == [("b", "c", 1)]


def test_renders_of_a_clip_share_one_servable_copy_and_a_changed_clip_gets_a_new_one(tmp_path):
    from ui import error_views

    clip = _one_clip(tmp_path)
    before = sum(1 for _ in error_views.CLIPS.rglob("*"))
    copies = {error_views._servable(clip) for _ in range(200)}
    assert len(copies) == 1
    (copy,) = copies
    assert Path(copy).read_bytes() == clip.read_bytes() and Path(copy).is_relative_to(error_views.CLIPS)
    assert sum(1 for _ in error_views.CLIPS.rglob("*")) == before + 2  # one folder, one file
    sf.write(clip, _noise(0.5, 1), 16_000, format="FLAC")  # the checkpoint retrained
    changed = error_views._servable(clip)
    assert changed != copy and Path(changed).read_bytes() == clip.read_bytes()


def test_clips_are_stored_at_the_rate_the_speech_models_hear(tmp_path):
    from speech.audio import TARGET_RATE

    assert CLIP_RATE == TARGET_RATE
    summary = write_examples(tmp_path, ExampleSet("kws", "test", [{"id": "c0"}], [(0, lambda: _noise(0.5, 0))]))
    stored = next((tmp_path / "examples").rglob("*.flac"))
    assert summary["audio"]["stored"] == 1 and sf.info(str(stored)).samplerate == TARGET_RATE
