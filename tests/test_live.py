"""The Live tabs served: transcripts across gaps and Stop, chunks decoded with the app's limits,
the streams as the app registers them, and two browsers taking turns (who is heard, and why:
tests/test_live_places.py)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from serving import live_places
from speech import long_audio
from speech.ctc import build_char_vocab, make_processor
from tests.helpers import Clock
from tests.tone_ctc import ToneCTC, speak_as_tones
from ui import asr as asr_tab
from ui import asr_live, live


@pytest.fixture(scope="module")
def tone_speech():
    """A CTC model that reads letters spoken as tones (`tests/tone_ctc.py`), and two phrases in
    its tones as 16 kHz PCM: "hello little" and "the quick"."""
    processor = make_processor(build_char_vocab(["hello little letters the quick brown fox"]))
    model = ToneCTC(len(processor.tokenizer))
    loaded = SimpleNamespace(model=model, live_model=model, processor=processor, device="cpu")
    before, after = (
        (speak_as_tones(t, processor.tokenizer) * 32767).astype(np.int16) for t in ("hello little", "the quick")
    )
    return loaded, before, after


def test_live_transcript_marks_the_gap_and_the_final_line_says_what_was_not_heard(tone_speech):
    loaded, before, after = tone_speech
    state = None
    for pcm, missing in ((before, 0.0), (after, 3.0)):
        for i, start in enumerate(range(0, len(pcm), 8_000)):
            state, text, note = asr_tab.live_update(
                loaded, state, (16_000, pcm[start : start + 8_000]), missing if i == 0 else 0.0
            )
            assert note.startswith(asr_tab.LISTENING)
    state, text, note = asr_tab.live_finish(loaded, state)
    assert text == "hello little … the quick"
    heard = (len(before) + len(after)) / 16_000
    assert note == (
        f"Final transcript of {heard:.1f} s of audio. "
        "3.0 s more were not heard (the server was busy): “…” marks where."
    )
    # Jitter below `live.GAP_S` marks nothing.
    state, _, _ = asr_tab.live_update(loaded, None, (16_000, before[:8_000]), 0.0)
    state, text, _ = asr_tab.live_update(loaded, state, (16_000, before[8_000:16_000]), live.GAP_S - 0.01)
    assert "…" not in text and state.missed_s == 0 and isinstance(state, long_audio.StreamState)


def test_a_stop_during_a_chunk_finishes_with_that_chunk_and_its_gap(tone_speech):
    # Gradio runs a recording's Stop handler while one of its chunks is still being served; the
    # stop must wait for that chunk and finish on the state it leaves (its words, the gap before it).
    loaded, before, after = tone_speech
    clock = Clock()
    places = live.Places(places=1, turn_s=0, clock=clock)
    serving = threading.Event()
    go_on = threading.Event()

    def on_chunk(chunk, state, missing_s):
        if missing_s:  # the chunk after the gap
            serving.set()
            go_on.wait(10)
        return asr_tab.live_update(loaded, state, chunk, missing_s)

    chunk = live.serving(places, on_chunk)
    stop = live.finishing(places, lambda state: asr_tab.live_finish(loaded, state))
    request = SimpleNamespace(session_hash="a")
    places.start("a")
    for start in range(0, len(before), 8_000):
        piece = before[start : start + 8_000]
        clock.t += len(piece) / 16_000  # served as it is recorded
        text, note = chunk(request, (16_000, piece))
    assert text == "hello little" and note.startswith(asr_tab.LISTENING + "\n\nInput level `")
    clock.t += 2.0 + len(after) / 16_000  # the next chunk comes after 2 s that never arrived
    served = threading.Thread(target=chunk, args=(request, (16_000, after)))
    served.start()
    assert serving.wait(10)
    finished = []
    stopping = threading.Thread(target=lambda: finished.append(stop(request)))
    places.stop("a")  # (what the unqueued Stop event does at once)
    stopping.start()
    time.sleep(0.3)
    assert not finished  # it waits for the chunk being served...
    go_on.set()
    served.join(10)
    stopping.join(10)
    heard = (len(before) + len(after)) / 16_000
    assert finished == [  # ...and finishes with it
        (
            "hello little … the quick",
            f"Final transcript of {heard:.1f} s of audio. "
            "2.0 s more were not heard (the server was busy): “…” marks where.",
        )
    ]


def test_a_stop_handled_after_record_was_pressed_again_finishes_the_recording_it_stopped(tone_speech):
    # Stop's handler is queued; on a busy server Record can be pressed again before it runs. It
    # must finish the recording that was stopped, and leave the new one listening.
    loaded, before, after = tone_speech
    places = live.Places(places=2, turn_s=0, clock=Clock())
    chunk = live.serving(places, lambda chunk, state, missing_s: asr_tab.live_update(loaded, state, chunk, missing_s))
    stop = live.finishing(places, lambda state: asr_tab.live_finish(loaded, state))
    request = SimpleNamespace(session_hash="a")
    places.start("a")
    for start in range(0, len(before), 8_000):
        chunk(request, (16_000, before[start : start + 8_000]))
    places.stop("a")  # (the unqueued Stop event, at once)
    places.start("a")  # Record again
    assert chunk(request, (16_000, after[:8_000]))[1].startswith(asr_tab.LISTENING)
    assert stop(request) == ("hello little", f"Final transcript of {len(before) / 16_000:.1f} s of audio.")
    for start in range(8_000, len(after), 8_000):
        text, note = chunk(request, (16_000, after[start : start + 8_000]))
    assert note.startswith(asr_tab.LISTENING) and places.recording("a").state.finished is False
    places.stop("a")
    assert stop(request) == ("the quick", f"Final transcript of {len(after) / 16_000:.1f} s of audio.")


def test_status_reports_each_live_tabs_places(tiny_checkpoints):
    import app
    from ui import models

    registry = app.open_registry(tiny_checkpoints)
    demo = app.build_app(registry)
    report = models.status(registry)
    for name in ("asr", "kws"):
        assert report[name]["live"] == {
            "places": live.PLACES,
            "turn_s": live.TURN_S,
            "listening": 0,
            "listening_all_tabs": 0,
            "waiting_all_tabs": 0,
        }
    assert "live" not in report["qa-distilbert"] and "live" not in report["qa-xlmr"]
    # The two Live streams: no limit in Gradio's queue (`Seats` decides), payloads undecoded.
    streams = [fn for fn in demo.fns.values() if fn.connection == "stream"]
    assert len(streams) == 2
    assert {(fn.concurrency_limit, fn.time_limit, fn.preprocess) for fn in streams} == {(None, None, False)}
    assert live.places_of(registry["asr"]).seats is live.places_of(registry["kws"]).seats


def tone_microphone(folder) -> str:
    """A 3 s 440 Hz tone at 44.1 kHz for Chromium's fake microphone (which loops it)."""
    wav = folder / "tone.wav"
    t = np.arange(44_100 * 3) / 44_100
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44_100)
    return str(wav)


def wait_until(done, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.25)


@pytest.mark.browser
def test_browser_a_full_live_tab_says_so_and_takes_turns(launch, tiny_checkpoints, tmp_path, monkeypatch):
    # One place; each update takes >= 0.25 s of model time and a turn is 5 s of it (at most 20
    # updates): the second visitor is told the tab is full, then the two are heard in turns, and
    # the first one's transcript and final line say what it missed meanwhile.
    from scripts.screenshot import open_pages

    monkeypatch.setattr(live_places, "PLACES", 1)
    monkeypatch.setattr(live_places, "TURN_S", 5.0)
    served: list[tuple[str, float]] = []
    real_heard = live.Places.heard

    def heard(self, session, seconds):
        missing = real_heard(self, session, seconds)
        served.append((session, missing))
        time.sleep(0.25)  # in the stream's handler: counts towards its turn
        return missing

    monkeypatch.setattr(live.Places, "heard", heard)
    wav = tone_microphone(tmp_path)
    url = launch(tiny_checkpoints)

    def sessions() -> list[str]:  # in the order they were first heard
        return list(dict.fromkeys(s for s, _ in served))

    full = "Live listening is full"
    with open_pages(url, 2, fake_microphone=wav) as (first, second):
        for page in (first, second):
            page.get_by_text("About this model").first.wait_for()
            page.get_by_role("tab", name="Live").first.click()
        first.wait_for_timeout(3000)  # the recorder's scripts (`held_recorder` tests that race)
        first.get_by_role("button", name="Record").first.click()
        wait_until(lambda: served, 30)
        assert served, "the first visitor was never heard"
        second.get_by_role("button", name="Record").first.click()
        second.get_by_text(full).wait_for(timeout=20_000)  # while the first one's turn lasts
        wait_until(lambda: len(sessions()) == 2, 60)
        assert len(sessions()) == 2, "the second visitor never got a turn"
        first.get_by_text(full).wait_for(timeout=20_000)  # now the first one waits
        a = sessions()[0]
        wait_until(lambda: any(s == a and m >= live.GAP_S for s, m in served), 60)
        first.wait_for_timeout(1000)
        for page in (first, second):
            page.get_by_role("button", name="Stop").first.click()
        final = first.get_by_text("more were not heard")
        final.wait_for(timeout=30_000)
        note = final.inner_text()
        transcript = first.locator("label:has-text('Partial transcript') textarea").input_value()
    gaps = [m for s, m in served if s == a and m >= live.GAP_S]
    assert gaps and f"{sum(gaps):.1f} s more were not heard" in note, (gaps, note)
    assert "…" in transcript or not transcript.strip()  # a gap after words is marked


@pytest.mark.browser
def test_browser_a_recording_in_one_live_tab_takes_the_place_of_the_other(
    launch, tiny_checkpoints, tmp_path, monkeypatch
):
    # One place for the server: a visitor recording speech holds it, so a second visitor at the
    # keyword tab is told it is full and is heard once the first one stops.
    from scripts.screenshot import open_pages

    monkeypatch.setattr(live_places, "PLACES", 1)
    monkeypatch.setattr(live_places, "TURN_S", 0.0)
    served: list[str] = []
    real_heard = live.Places.heard

    def heard(self, session, seconds):
        served.append(session)
        return real_heard(self, session, seconds)

    monkeypatch.setattr(live.Places, "heard", heard)
    wav = tone_microphone(tmp_path)
    url = launch(tiny_checkpoints)
    with open_pages(url, 2, fake_microphone=wav) as (speech, keywords):
        for page in (speech, keywords):
            page.get_by_text("About this model").first.wait_for()
        speech.get_by_role("tab", name="Live").first.click()
        keywords.get_by_role("tab", name="Keyword spotting").click()
        keywords.get_by_role("tab", name="Live").click()
        speech.wait_for_timeout(3000)  # the recorder's scripts (`held_recorder` tests that race)
        speech.get_by_role("button", name="Record").first.click()
        wait_until(lambda: served, 30)
        assert served, "the speech visitor was never heard"
        keywords.get_by_role("button", name="Record").first.click()
        keywords.get_by_text("Live listening is full").wait_for(timeout=20_000)
        assert set(served) == {served[0]} and not keywords.get_by_text("Input level").count()
        speech.get_by_role("button", name="Stop").first.click()
        keywords.get_by_text("Input level").first.wait_for(timeout=30_000)  # its place came
        keywords.get_by_role("button", name="Stop").first.click()
    assert len(set(served)) == 2


def test_a_live_chunk_is_decoded_by_the_app_with_its_limits_and_a_two_hour_file_is_refused_at_once(
    tiny_checkpoints, tmp_path, monkeypatch
):
    import gradio as gr

    import app

    monkeypatch.setattr(live, "_SEATS", None)  # seats of this app's own, whatever earlier tests left
    registry = app.open_registry(tiny_checkpoints)
    demo = app.build_app(registry)
    # the ASR stream: transcript, stop-when-quiet flag, line; its inputs: listen for speech, stop when quiet
    asr_stream = next(fn for fn in demo.fns.values() if fn.connection == "stream" and len(fn.outputs) == 3)
    listen = (True, False)

    def payload(path):  # what Gradio hands an unprocessed stream event: the upload's FileData
        return {"path": str(path), "meta": {"_type": "gradio.FileData"}, "orig_name": path.name}

    two_hours = tmp_path / "two_hours.wav"
    with sf.SoundFile(two_hours, "w", 8_000, 1, subtype="PCM_U8", format="WAV") as file:
        for _ in range(120):
            file.write(np.zeros(8_000 * 60, np.float32))
    request = SimpleNamespace(session_hash="attacker", client=None, headers={})
    start = time.perf_counter()
    text, _, note = asr_stream.fn(request, payload(two_hours), *listen)
    assert time.perf_counter() - start < 1.0
    assert text == gr.skip() and note.startswith(
        "Stopped listening: A live chunk of 7200.0 s was refused: the microphone sends 2 s at most"
    )
    mp3 = tmp_path / "long.mp3"  # no stored length a browser would send: FFmpeg, stopped at the limit
    sf.write(mp3, np.zeros(16_000 * 30, np.float32), 16_000, format="MP3")
    # The recording's later chunks are not served: one notice, not one per chunk.
    assert asr_stream.fn(request, payload(mp3), *listen) == (gr.skip(), gr.skip(), gr.skip())
    other = SimpleNamespace(session_hash="another", client=None, headers={})
    assert "longer than the limit of 2 s" in asr_stream.fn(other, payload(mp3), *listen)[2]
    chunk = tmp_path / "chunk.wav"  # a browser's half second, 48 kHz stereo
    sf.write(chunk, np.zeros((24_000, 2), np.int16), 48_000, subtype="PCM_16")
    registry["asr"].get()  # loaded, so the chunk is served by the model
    visitor = SimpleNamespace(session_hash="visitor", client=None, headers={})
    text, stop, note = asr_stream.fn(visitor, payload(chunk), *listen)
    assert note.startswith(asr_live.LISTENING) and stop is False  # silence: listening for speech
    assert live.places_of(registry["asr"]).hearing("visitor").heard_s == 0.5


def test_a_live_recording_is_limited_to_the_audio_limit(monkeypatch):
    monkeypatch.setattr(live_places, "DEFAULT_MAX_DURATION_S", 10.0)
    clock = Clock()
    places = live.Places(places=1, turn_s=0, clock=clock)
    chunk = live.serving(places, lambda chunk, state, missing_s: (state, "text", "Listening"))
    request = SimpleNamespace(session_hash="a")
    for _ in range(20):
        clock.t += 0.5
        assert chunk(request, (16_000, np.ones(8_000, np.int16))) == ("text", "Listening")
    clock.t += 0.5
    import gradio as gr

    text, note = chunk(request, (16_000, np.ones(8_000, np.int16)))
    assert text == gr.skip() and note.startswith("Stopped listening: A live recording is limited to 10 s")
    clock.t += 0.5
    assert chunk(request, (16_000, np.ones(8_000, np.int16))) == (gr.skip(), gr.skip())
    places.start("a")  # Record again: heard again
    clock.t += 0.5
    assert chunk(request, (16_000, np.ones(8_000, np.int16))) == ("text", "Listening")


def test_idle_streams_in_every_place_keep_a_visitor_out_for_at_most_two_seconds_through_the_apps_handler(
    tiny_checkpoints, tmp_path, monkeypatch
):
    import app

    monkeypatch.setattr(live, "_SEATS", None)  # seats of this app's own, whatever earlier tests left
    registry = app.open_registry(tiny_checkpoints)
    demo = app.build_app(registry)
    registry["asr"].get()
    # the ASR stream: transcript, stop-when-quiet flag, line; its inputs: listen for speech, stop when quiet
    asr_stream = next(fn for fn in demo.fns.values() if fn.connection == "stream" and len(fn.outputs) == 3)
    listen = (True, False)
    chunk = tmp_path / "chunk.wav"
    sf.write(chunk, (np.sin(np.arange(8_000) / 5) * 8_000).astype(np.int16), 16_000, subtype="PCM_16")
    payload = {"path": str(chunk), "meta": {"_type": "gradio.FileData"}, "orig_name": "chunk.wav"}

    def send(session: str):
        return asr_stream.fn(SimpleNamespace(session_hash=session, client=None, headers={}), payload, *listen)

    for squatter in [f"s{n}" for n in range(live.PLACES)]:  # one chunk each, then nothing: every place taken
        assert send(squatter)[2].startswith(asr_live.LISTENING)
    waiting = send("visitor")[2]
    assert waiting.startswith("Live listening is full") and "You are number 1 in line." in waiting
    time.sleep(live.IDLE_S + 0.2)
    assert send("visitor")[2].startswith(asr_live.LISTENING)  # heard
    assert live.places_of(registry["asr"]).listening() == 1
