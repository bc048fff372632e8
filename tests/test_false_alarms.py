"""False accepts per hour and misses over the threshold, counted with the live detector on scans
whose every window is known."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import soundfile as sf

from speech import false_alarms as fa
from speech import keywords, spotting

LABELS = list(keywords.LABELS)


def scan_of(seconds: float, events: dict[float, tuple[str, float]]) -> spotting.Scan:
    """A scan of `seconds` of audio, one window every 250 ms; `events`: window centre -> (label, p),
    every other window "_unknown_" at 0.9."""
    times = np.arange(0.5, seconds - 0.49, 0.25)
    probs = np.zeros((len(times), len(LABELS)), np.float32)
    probs[:, LABELS.index(keywords.UNKNOWN)] = 0.9
    for i, t in enumerate(times):
        if (event := events.get(round(float(t), 2))) is not None:
            probs[i] = 0.0
            probs[i, LABELS.index(event[0])] = event[1]
    return spotting.Scan(times, probs, np.zeros(len(times), bool))


# a planted "yes" over three windows, a "no" nobody said over two, a one-window "up" spike
EVENTS = {2.0: ("yes", 0.9), 2.25: ("yes", 0.92), 2.5: ("yes", 0.9), 6.0: ("no", 0.7), 6.25: ("no", 0.71),
          8.0: ("up", 0.95)}  # fmt: skip
PLANTED = [fa.Planted("yes", 1.8, 2.6)]


def test_a_planted_keyword_is_a_hit_and_a_word_nobody_said_is_one_false_accept():
    scan = scan_of(10.0, EVENTS)
    assert [(d.label, d.time_s) for d in fa.false_accepts(scan, LABELS, 0.5, PLANTED)] == [("no", 6.0)]
    assert fa.false_accepts(scan, LABELS, 0.75, PLANTED) == []  # "no" never reaches 0.75 twice
    assert [d.label for d in fa.false_accepts(scan, LABELS, 0.5)] == ["yes", "no"]  # unplanted, "yes" is one too


def test_the_curve_counts_exactly_and_is_monotone_in_the_threshold():
    curve = fa.curve(scan_of(10.0, EVENTS), LABELS, PLANTED)
    by_threshold = dict(zip(curve.thresholds, curve.false_accepts, strict=True))
    assert all(n == 1 for t, n in by_threshold.items() if t <= 0.70)
    assert all(n == 0 for t, n in by_threshold.items() if t > 0.70)
    misses = dict(zip(curve.thresholds, curve.miss_rate, strict=True))
    assert all(m == 0.0 for t, m in misses.items() if t <= 0.9) and all(m == 1.0 for t, m in misses.items() if t > 0.9)
    assert curve.false_accepts == sorted(curve.false_accepts, reverse=True)
    assert curve.miss_rate == sorted(curve.miss_rate)
    assert curve.seconds == pytest.approx(10.0) and curve.per_hour()[0] == pytest.approx(360.0)
    assert curve.per_keyword == {"no": [1 if t <= 0.70 else 0 for t in curve.thresholds]}
    point = curve.operating_point(0.5)  # 1 false accept in 10 s is 360 an hour: the first threshold with none
    assert point["threshold"] == 0.72 and point["miss_rate"] == 0.0 and point["per_hour"] == 0.0


def test_the_false_activations_zip_holds_their_windows():
    samples = np.random.default_rng(0).normal(0, 0.1, 16_000 * 10).astype(np.float32)
    found = fa.false_accepts(scan_of(10.0, EVENTS), LABELS, 0.5, PLANTED)
    with zipfile.ZipFile(io.BytesIO(fa.clips_zip(samples, found))) as archive:
        assert archive.namelist() == ["no/00006.00s_p0.71.wav"]
        clip, rate = sf.read(io.BytesIO(archive.read("no/00006.00s_p0.71.wav")), dtype="float32")
    assert rate == 16_000 and len(clip) == 16_000
    np.testing.assert_allclose(clip, samples[16_000 * 6 - 8_000 : 16_000 * 6 + 8_000], atol=1 / 32768)


def test_on_a_learned_model_planted_keywords_are_hits_and_the_room_tuner_counts_as_the_evaluation(
    learned_kws, tmp_path
):
    from gradio_client import handle_file

    from scripts.make_smoke_data import noise
    from slots.registry import Registry
    from tests.helpers import served
    from tests.kws_learned import two_words
    from ui.kws_room import room_report, scan_in_parts

    root, checkpoints = learned_kws
    loaded = Registry(checkpoints)["kws"].settled()
    labels = [loaded.model.config.id2label[i] for i in range(loaded.model.config.num_labels)]
    words = two_words(root)  # "yes" at 1.0 s and "stop" at 3.5 s in a quiet room
    stream = np.concatenate([0.1 * noise(70.0, seed=3), words, 0.1 * noise(8.0, seed=4)]).astype(np.float32)
    whole = spotting.sliding_probs(loaded.model, loaded.processor, stream)
    parts = scan_in_parts(loaded, stream)  # a minute at a time: the same windows
    np.testing.assert_array_equal(parts.times, whole.times)
    np.testing.assert_array_equal(parts.quiet, whole.quiet)
    np.testing.assert_array_equal(parts.probs, whole.probs)  # the same batches: the same int8 scores
    said = [fa.Planted("yes", 71.0, 72.0), fa.Planted("stop", 73.5, 74.5)]
    everything = spotting.detect(whole, labels, 0.8)
    assert sorted(d.label for d in everything) == ["stop", "yes"]  # each word fires once
    assert fa.false_accepts(whole, labels, 0.8, said) == []  # planted: hits, not false accepts
    # the tuner, through the app, on the same audio uploaded as a room recording: every detection
    # is a false alarm there, as the evaluation code counts it
    path = tmp_path / "room.wav"
    sf.write(path, stream, 16_000, subtype="FLOAT")
    with served(checkpoints) as client:
        report = client.predict(handle_file(str(path)), 0.8, False, api_name="/kws_false_alarms")
        gated = client.predict(handle_file(str(path)), 0.8, api_name="/kws_false_alarms")  # as Live: gated
    assert [(d["label"], d["time_s"]) for d in report["false_accepts"]] == [(d.label, d.time_s) for d in everything]
    assert report["per_hour"] == pytest.approx(round(2 * 3600 / (len(stream) / 16_000), 2))
    assert report["curve"]["false_accepts"] == fa.curve(whole, labels).false_accepts
    heard = fa.gated(whole, spotting.speech_frames(stream))
    assert gated["voice_gate"] and gated["curve"]["false_accepts"] == fa.curve(heard, labels).false_accepts
    assert [d["label"] for d in gated["false_accepts"]] == ["yes", "stop"]  # the words pass the gate
    local, found = room_report(loaded, stream, 0.8, voice_gate=False)
    with zipfile.ZipFile(io.BytesIO(fa.clips_zip(stream, found))) as archive:
        names = archive.namelist()
    assert names == [f"{d.label}/{d.time_s:08.2f}s_p{d.probability:.2f}.wav" for d in everything]


def _by_debouncer(scan: spotting.Scan, labels: list[str], threshold: float) -> list[spotting.Detection]:
    """The live tab's window-by-window decisions over a scan."""
    debouncer, found = spotting.Debouncer(), []
    for centre, p, silent in zip(scan.times, scan.probs, scan.quiet, strict=True):
        found += debouncer.decide(float(centre), np.zeros_like(p) if silent else p, labels, threshold)
    return found


def test_the_offline_detector_decides_as_the_live_debouncer_does():
    rng, fired = np.random.default_rng(0), 0
    for trial in range(40):
        n = int(rng.integers(1, 400))
        # runs of a few windows above and below, as a word gives: smooth random walks per label
        probs = np.clip(np.cumsum(rng.normal(0, 0.25, (n, len(LABELS))), axis=0) % 1.6 - 0.3, 0, 1).astype(np.float32)
        scan = spotting.Scan(np.arange(n) * 0.25 + 0.5, probs, rng.random(n) < 0.1)
        own = {"yes": 0.9, "no": 0.35, "stop": 0.6, "*": 0.5}  # a threshold per keyword, the rest at 0.5
        for threshold in (0.3, 0.5, 0.74, 0.9, own):
            expected = _by_debouncer(scan, LABELS, threshold)
            assert spotting.detect(scan, LABELS, threshold) == expected, (trial, threshold)
            fired += len(expected)
    assert fired > 500  # the walks do fire, refractory times and quiet windows included


def test_matching_finds_each_planted_keyword_among_many():
    planted = [fa.Planted("yes" if i % 2 else "no", 10.0 * i, 10.0 * i + 1) for i in range(200)]
    found = [spotting.Detection(10.0 * i + 0.5, "yes", 0.9) for i in range(200)]  # every "yes", and at "no"s
    found.append(spotting.Detection(5.0, "up", 0.9))
    hit, heard = fa.match(found, planted)
    assert hit.tolist() == [i % 2 == 1 for i in range(200)] + [False]
    assert heard.tolist() == [i % 2 == 1 for i in range(200)]
    assert [fa.is_hit(d, planted) for d in found] == hit.tolist()
    edge = spotting.Detection(10.0 * 3 + 1 + fa.HIT_TOLERANCE_S, "yes", 0.9)  # just inside the tolerance
    late = spotting.Detection(10.0 * 3 + 1 + fa.HIT_TOLERANCE_S + 0.01, "yes", 0.9)
    assert fa.is_hit(edge, planted) and not fa.is_hit(late, planted)


def test_each_false_alarm_says_up_to_which_threshold_it_fires():
    curve = fa.curve(scan_of(10.0, EVENTS), LABELS)  # nothing planted: "yes" and "no" are false alarms
    assert [(a.label, a.time_s, a.up_to) for a in curve.alarms] == [("yes", 2.0, 0.9), ("no", 6.0, 0.7)]
    for a in curve.alarms:  # it fires at every threshold up to its own, and at none above
        for t in curve.thresholds:
            fired = any(d.label == a.label for d in fa.false_accepts(scan_of(10.0, EVENTS), LABELS, t))
            assert fired == (t <= a.up_to)


def test_a_stream_lays_words_with_pauses_over_noise_at_the_stated_snr():
    from speech.streams import lay_out, rms

    rng = np.random.default_rng(1)
    tone = (0.3 * np.sin(np.arange(8000) * 0.2)).astype(np.float32)  # half a second
    words = [("yes", tone), (None, tone * 0.1), ("no", tone * 1.5)]
    noise = [rng.normal(0, 0.2, 16_000 * 3).astype(np.float32)]
    stream, planted = lay_out(words, noise, 10.0, np.random.default_rng(2))
    assert [p.label for p in planted] == ["yes", "no"]  # the other word is not planted
    for p, (_, word) in zip(planted, (words[0], words[2]), strict=True):
        start, end = round(p.start_s * 16_000), round(p.end_s * 16_000)
        assert end - start == 8000
        np.testing.assert_array_less(np.abs(stream[start:end] - word), 1.0)  # the word as recorded...
        under = stream[start:end] - word  # ...over noise 10 dB below it
        assert rms(under) == pytest.approx(rms(word) / 10 ** (10 / 20), rel=0.05)
    first, last = stream[: round(planted[0].start_s * 16_000)], stream[round(planted[1].end_s * 16_000) :]
    assert rms(first) == pytest.approx(rms(tone) / 10**0.5, rel=0.05)  # the first pause at the first word's noise
    assert rms(last) == pytest.approx(rms(tone * 1.5) / 10**0.5, rel=0.05)  # the last at the last word's
    assert 0.4 <= len(first) / 16_000 <= 1.2 and 0.4 <= len(last) / 16_000 <= 1.2
    assert 2 * 0.4 + 0.5 <= planted[1].start_s - planted[0].end_s <= 2 * 1.2 + 0.5  # pause, other word, pause


def test_a_window_is_voiced_when_any_of_its_frames_holds_speech():
    speech = np.zeros(100, bool)
    speech[40] = True  # samples 20480-20991
    starts = np.array([0, 4480, 4481, 5000, 20991, 20992])
    # a window is 16,000 samples: from 4481 on it reaches frame 40; from 20992 on it has left it
    assert spotting.voiced(starts, speech).tolist() == [False, False, True, True, True, False]
    # frames counted from a later first frame (a live listener drops the old ones)
    assert spotting.voiced(starts, speech[30:], first_frame=30).tolist() == [False, False, True, True, True, False]
    scan = spotting.Scan(np.array([0.5, 0.78, 1.8]), np.zeros((3, len(LABELS))), np.zeros(3, bool))
    # centres 0.5, 0.78 and 1.8 s: windows from 0, 4480 (both short of frame 40) and 20800
    assert fa.gated(scan, speech).quiet.tolist() == [True, True, False]


def test_thresholds_per_keyword_decide_each_keyword_as_its_own_threshold_alone_would():
    scan = scan_of(10.0, EVENTS)
    own = spotting.detect(scan, LABELS, {"yes": 0.95, "*": 0.5})  # "yes" never reaches 0.95 twice
    assert [(d.label, d.time_s) for d in own] == [("no", 6.0)]
    alone = [d for d in spotting.detect(scan, LABELS, 0.5) if d.label != "yes"]
    assert own == alone


def test_each_keyword_gets_the_lowest_threshold_its_own_false_alarms_allow_when_that_misses_less():
    from train.kws_streams import operating_point, per_keyword_point

    free = fa.Curve([0.3, 0.5, 0.7], 3600.0, [3, 1, 0], per_keyword={"yes": [3, 1, 0]})  # an hour; only "yes" fires
    spoken = [{"snr_db": 20.0, "planted_per_keyword": {"yes": 10, "no": 30}, "miss_rate": [0.05, 0.15, 0.4],
               "misses_per_keyword": {"yes": [0.1, 0.2, 0.5], "no": [0.0, 0.1, 0.3]}}]  # fmt: skip
    one = operating_point(free, spoken, 0.5)
    assert one["threshold"] == 0.7 and one["miss_rate"] == {"20.0": 0.4}
    each = per_keyword_point(free, spoken, 0.5, one)
    # "yes" alone needs 0.7; a keyword that never fired gets the floor, 0.5, not the lowest tried
    assert each["thresholds"] == {**dict.fromkeys(keywords.KEYWORDS, 0.5), "yes": 0.7}
    assert each["false_accepts"] == 0 and each["per_hour"] == 0.0
    assert each["miss_rate"] == {"20.0": round((0.5 * 10 + 0.1 * 30) / 40, 4)}  # weighted by the words planted
    worse = [{**spoken[0], "misses_per_keyword": {"yes": [0.1, 0.2, 0.5], "no": [0.45, 0.45, 0.3]}}]
    assert per_keyword_point(free, worse, 0.5, operating_point(free, worse, 0.5)) is None  # not fewer misses
