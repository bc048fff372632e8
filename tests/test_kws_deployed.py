"""The keyword model judged as it is deployed: train.kws's streaming evaluation (false accepts per
hour on keyword-free audio, misses at each SNR, the operating point, the false activations kept
as clips) and what the keyword tab makes of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speech import false_alarms as fa
from speech import keywords
from ui import kws_deployed as deployed

THRESHOLDS = [0.3, 0.5, 0.7, 0.9]
STREAMING = {
    "thresholds": THRESHOLDS,
    "keyword_free": {"seconds": 1200.0, "false_accepts": [6, 2, 0, 0], "per_hour": [18.0, 6.0, 0.0, 0.0],
                     "per_keyword": {"no": [4, 2, 0, 0], "up": [2, 0, 0, 0]}, "noise_recordings": 6,
                     "silence_clips": 257, "other_words": 257},
    "keyword_streams": [
        {"snr_db": 20.0, "miss_rate": [0.02, 0.05, 0.1, 0.4], "misses_per_keyword": {"no": [0.0, 0.1, 0.2, 0.5]}},
        {"snr_db": 5.0, "miss_rate": [0.1, 0.2, 0.35, 0.7], "misses_per_keyword": {"no": [0.1, 0.3, 0.4, 0.8]}},
    ],
    "operating_point": {"threshold": 0.7, "per_hour": 0.0, "target_per_hour": 0.5,
                        "miss_rate": {"20.0": 0.1, "5.0": 0.35}},
    "without_gate": {"per_hour": [30.0, 12.0, 3.0, 0.0],
                     "miss_rate": {"20": [0.02, 0.05, 0.1, 0.4], "5": [0.08, 0.2, 0.3, 0.7]}},
    "per_keyword_point": {"thresholds": {**dict.fromkeys(keywords.KEYWORDS, 0.3), "no": 0.7, "up": 0.5},
                          "false_accepts": 0, "per_hour": 0.0, "target_per_hour": 0.5,
                          "miss_rate": {"20.0": 0.04, "5.0": 0.15}},
    "noise_heard_in_training": True,
}  # fmt: skip
METRICS = {"extra": {"streaming": STREAMING}}


def test_the_live_threshold_starts_at_the_operating_point_and_says_what_it_means():
    assert deployed.live_threshold(METRICS) == 0.7
    assert deployed.live_threshold({"extra": {}}) == deployed.DEFAULT_THRESHOLD  # an older checkpoint
    no_point = {"extra": {"streaming": {**STREAMING, "operating_point": None}}}
    assert deployed.live_threshold(no_point) == deployed.DEFAULT_THRESHOLD
    note = deployed.threshold_note(METRICS)
    assert "**0.70**" in note and "no false alarm in 20 minutes" in note
    assert deployed.in_words(0.25) == "about one false alarm every 4 hours"
    assert deployed.in_words(3.2) == "about 3 false alarms an hour"
    assert deployed.rate_bound(0, 1200) == pytest.approx(-np.log(0.05) * 3)  # 0 in 20 min: under ~9 an hour
    # each keyword's own threshold, where the evaluation chose them; the slider covers the rest
    own = deployed.listening_threshold(METRICS, 0.8, each=True)
    assert own["no"] == 0.7 and own["up"] == 0.5 and own["yes"] == 0.3 and own["*"] == 0.8
    assert deployed.listening_threshold(METRICS, 0.8, each=False) == 0.8
    assert deployed.listening_threshold({"extra": {}}, 0.8, each=True) == 0.8
    assert "own threshold (yes 0.30, no 0.70, up 0.50," in note


def test_the_curve_marks_the_operating_point_and_the_live_threshold_on_every_snr():
    fig = deployed.figure(STREAMING, 0.5)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["20 dB SNR", "5 dB SNR"]
    assert list(lines[0].x) == [18.0, 6.0, 0.0, 0.0] and list(lines[1].y) == [0.1, 0.2, 0.35, 0.7]
    marks = {(t.marker.symbol, t.x[0], t.y[0]) for t in fig.data if t.mode == "markers" and t.marker.symbol != "x"}
    assert marks == {("diamond", 6.0, 0.05), ("star", 0.0, 0.1), ("diamond", 6.0, 0.2), ("star", 0.0, 0.35)}
    ungated = [t for t in fig.data if t.mode == "lines"]  # the same streams without the voice gate, dotted
    assert [t.name for t in ungated] == ["20 dB, no voice gate", "5 dB, no voice gate"]
    assert list(ungated[0].x) == [30.0, 12.0, 3.0, 0.0] and list(ungated[1].y) == [0.08, 0.2, 0.3, 0.7]
    crosses = {(t.x[0], t.y[0]) for t in fig.data if t.mode == "markers" and t.marker.symbol == "x"}
    assert crosses == {(0.0, 0.04), (0.0, 0.15)}  # the keywords' own thresholds together
    one = deployed.figure(STREAMING, 0.5, "no")  # one keyword: its own false alarms and misses
    assert list(one.data[0].x) == [12.0, 6.0, 0.0, 0.0] and list(one.data[0].y) == [0.0, 0.1, 0.2, 0.5]
    own = {(t.x[0], t.y[0]) for t in one.data if t.mode == "markers" and t.marker.symbol == "x"}
    assert own == {(0.0, 0.2), (0.0, 0.4)}  # "no" at its own 0.70, on both SNRs' lines


def test_the_summary_reads_the_curve_at_the_live_threshold():
    text = deployed.summary(STREAMING, 0.5)
    assert (
        "**20.0 minutes**" in text and "live threshold **0.50**: 2 false alarms (about 6 false alarms an hour" in text
    )
    assert "5% at 20 dB, 20% at 5 dB" in text and "Operating point **0.70**" in text
    assert "without it, about 12 false alarms an hour at 0.50" in text
    assert "keywords missed: 4% at 20 dB, 15% at 5 dB. The Live tab uses them" in text
    assert "not judged" in deployed.summary(None, 0.5)


def _hand_count(found: list, planted: list[fa.Planted]) -> tuple[int, int]:
    """(false accepts, planted keywords heard), one detection and one planted word at a time."""

    def near(d, p):
        return d.label == p.label and p.start_s - fa.HIT_TOLERANCE_S <= d.time_s <= p.end_s + fa.HIT_TOLERANCE_S

    wrong = sum(1 for d in found if not any(near(d, p) for p in planted))
    heard = sum(1 for p in planted if any(near(d, p) for d in found))
    return wrong, heard


def test_training_judges_the_model_on_streams_as_the_live_detector_counts_them(learned_kws):
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from core.checkpoint import read_metrics
    from core.examples import read_examples
    from speech import spotting
    from train import kws as train_kws
    from train.kws_streams import StreamArguments, build_streams, scan

    root, checkpoints = learned_kws
    metrics = read_metrics(checkpoints / "kws")
    streaming = metrics["extra"]["streaming"]
    # the streams step 7 built, again, scanned by the published model
    data = train_kws.DataArguments(data_dir=str(root / "tree"), test_dir=str(root / "test"))
    clips, noise, _ = train_kws.load_splits(data, None, seed=0)
    negative, positive = build_streams(clips["test"], noise, train_kws.clip_audio, StreamArguments(), 0)
    model = AutoModelForAudioClassification.from_pretrained(checkpoints / "kws").eval()
    extractor = AutoFeatureExtractor.from_pretrained(checkpoints / "kws")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    free = streaming["keyword_free"]
    assert free["noise_recordings"] == 3 and free["other_words"] == 6 * 6  # 6 other words, 6 unheard voices
    assert free["seconds"] == pytest.approx(len(negative.samples) / 16_000, abs=0.5)
    # as the Live tab listens by default: windows the voice gate hears no speech in are silent
    assert streaming["detector"]["voice_gate"] is True
    ungated = scan(model, extractor, negative.samples, 128)
    quiet_scan = fa.gated(ungated, spotting.speech_frames(negative.samples))
    assert 0 < quiet_scan.quiet.sum() < len(quiet_scan.quiet)  # the gate silences the noise, not the words
    plain = streaming["without_gate"]["per_hour"]
    for t, count, rate, rate_ungated in zip(
        streaming["thresholds"], free["false_accepts"], free["per_hour"], plain, strict=True
    ):
        assert _hand_count(spotting.detect(quiet_scan, labels, t), [])[0] == count
        assert rate == pytest.approx(count * 3600 / free["seconds"], rel=1e-3)
        ungated_count = _hand_count(spotting.detect(ungated, labels, t), [])[0]
        assert rate_ungated == pytest.approx(ungated_count * 3600 / free["seconds"], rel=1e-3)
        assert count <= ungated_count  # a gate only takes windows away
    assert sum(free["false_accepts"]) > 0  # the other words do fire at low thresholds
    # misses at 20 dB, counted by hand at every threshold
    loud = streaming["keyword_streams"][0]
    snr, stream = positive[0]
    assert loud["snr_db"] == snr == 20.0 and loud["planted"] == len(stream.planted) == 10 * 6
    spoken_scan = fa.gated(scan(model, extractor, stream.samples, 128), spotting.speech_frames(stream.samples))
    for t, miss in zip(streaming["thresholds"], loud["miss_rate"], strict=True):
        _, heard = _hand_count(spotting.detect(spoken_scan, labels, t), stream.planted)
        assert miss == pytest.approx(1 - heard / len(stream.planted), abs=1e-4)
    quietest = streaming["keyword_streams"][-1]
    assert quietest["snr_db"] == 5.0 and loud["miss_rate"][0] < quietest["miss_rate"][0] <= 1  # noise hides words
    # the operating point: the lowest threshold from which false accepts stay within 0.5 an hour
    point = streaming["operating_point"]
    i = streaming["thresholds"].index(point["threshold"])
    first = streaming["thresholds"].index(0.5)  # never below 0.5 (train.kws_streams.FLOOR)
    assert i >= first and all(r <= 0.5 for r in free["per_hour"][i:]) and (i == first or free["per_hour"][i - 1] > 0.5)
    assert point["miss_rate"]["20.0"] == loud["miss_rate"][i]
    # each keyword's own threshold: the detector at those thresholds makes exactly the false accepts
    # and misses the evaluation adds up from the curves
    each = streaming["per_keyword_point"]
    own = {**each["thresholds"], "*": 1.0}
    assert _hand_count(spotting.detect(quiet_scan, labels, own), [])[0] == each["false_accepts"]
    _, heard = _hand_count(spotting.detect(spoken_scan, labels, own), stream.planted)
    assert each["miss_rate"]["20.0"] == pytest.approx(1 - heard / len(stream.planted), abs=1e-4)
    assert each["per_hour"] <= 0.5 and np.mean(list(each["miss_rate"].values())) < np.mean(
        list(point["miss_rate"].values())
    )
    assert 0.5 <= min(each["thresholds"].values()) < point["threshold"]  # one that never fires listens lower
    test = metrics["final"]["test"]
    assert (
        test["stream_threshold"] == point["threshold"]
        and test["false_reject_rate_snr5db"] == point["miss_rate"]["5.0"]
    )
    card = (checkpoints / "kws" / "README.md").read_text()
    assert f"**{point['threshold']:.2f}**, {point['per_hour']:.2f} false accepts an hour" in card
    # the false activations kept: their 1 s windows, firing up to the threshold each names
    examples = read_examples(checkpoints / "kws")
    assert examples.alarms and len(examples.alarms) <= 40
    thresholds = streaming["thresholds"]
    for alarm in examples.alarms:
        clip, rate = sf.read(examples.audio_path(alarm), dtype="float32")
        np.testing.assert_allclose(clip, fa.window_at(negative.samples, alarm["time_s"]), atol=1 / 32768)
        assert alarm["label"] in keywords.KEYWORDS
        at_up_to = spotting.detect(quiet_scan, labels, alarm["up_to"])
        assert any(d.label == alarm["label"] and abs(d.time_s - alarm["time_s"]) < 0.75 for d in at_up_to)
        if alarm["up_to"] < thresholds[-1]:
            above = spotting.detect(quiet_scan, labels, thresholds[thresholds.index(alarm["up_to"]) + 1])
            assert not any(d.label == alarm["label"] and abs(d.time_s - alarm["time_s"]) < 0.75 for d in above)
    assert json.loads(json.dumps(streaming)) == streaming  # plain JSON, as the app reads it
