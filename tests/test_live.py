"""The Live tabs on a shared server: places, turns, audio that never arrived, and what the page
says when a visitor is not being heard."""

from __future__ import annotations

import threading
import time
import weakref
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from core import long_audio
from core.ctc import build_char_vocab, make_processor
from tasks import asr as asr_tab
from tasks import live
from tests.tone_ctc import ToneCTC, speak_as_tones


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_chunk_served_later_than_its_length_says_how_much_audio_never_arrived():
    clock = Clock()
    places = live.Places(places=2, turn_s=15, clock=clock)
    places.start("a")
    assert places.heard("a", 0.5) == 0.0  # the first chunk: nothing before it to miss
    clock.t += 0.55
    assert places.heard("a", 0.5) == pytest.approx(0.05)  # the browser's timer jitters
    clock.t += 0.8
    assert places.heard("a", 0.5) == pytest.approx(0.3)  # a handler slower than the audio
    clock.t += 3.0
    assert places.heard("a", 0.5) == pytest.approx(2.5)  # a wait for a place
    # After a wait the browser sends what it held at once: only the first of a burst says so.
    clock.t += 0.05
    assert places.heard("a", 0.5) == 0.0
    hearing = places.hearing("a")
    assert hearing.heard_s == 2.5
    assert hearing.dropped_s == pytest.approx(0.35) and hearing.gaps_s == pytest.approx(2.5)
    # Chunks served early, then late, by the same jitter are not lost audio.
    for step in (0.4, 0.6, 0.4, 0.6, 0.5):
        clock.t += step
        assert places.heard("a", 0.5) == pytest.approx(0.0, abs=1e-9)
    places.stop("a")
    assert places.hearing("a") is None
    # The browser sends its last chunks after Stop: the wait since is not audio that went missing.
    clock.t += 5.0
    assert places.heard("a", 0.5) == 0.0 and places.hearing("a") is None


def test_the_watch_says_busy_only_when_every_place_is_taken_and_no_sound_only_when_one_was_free():
    clock = Clock()
    places = live.Places(places=2, turn_s=15, clock=clock)
    for session in "abc":
        places.start(session)
    places.heard("a", 0.5)
    places.heard("b", 0.5)
    clock.t += 1.0
    assert places.note("a") is None  # being heard: the handler's own lines speak
    assert places.note("c") == live.busy_note(2, 15) and "in turns" in places.note("c")
    assert places.summary() == {"places": 2, "turn_s": 15, "listening": 2, "listening_all_tabs": 2}
    places.stop("b")
    assert places.note("c") is None  # a place is free and it is too early to blame the microphone
    clock.t += 3.0  # 4 s since Record, nothing came
    assert places.note("c") == live.NO_SOUND
    assert places.note("a") is None  # heard before, stalled with places free: nothing to blame
    assert places.summary()["listening"] == 0
    assert live.busy_note(1, 0) == (
        "Live listening is full: this server listens to one recording at a time. You are heard once a "
        "place frees up; what you say while the button reads **Waiting** is not heard."
    )
    assert "listens to 4 recordings at a time. You are heard in turns with the others;" in live.busy_note(4, 15)


def test_the_live_tabs_share_their_places():
    # Both tabs' recordings run on the same cores: a recording in one tab takes a place from both.
    clock = Clock()
    group = weakref.WeakSet()
    asr_tab_places = live.Places(places=2, turn_s=15, clock=clock, group=group)
    kws_tab_places = live.Places(places=2, turn_s=15, clock=clock, group=group)
    for places, session in ((asr_tab_places, "a"), (kws_tab_places, "b"), (kws_tab_places, "c")):
        places.start(session)
    asr_tab_places.heard("a", 0.5)
    assert kws_tab_places.note("c") is None  # a place is free
    kws_tab_places.heard("b", 0.5)
    clock.t += 1.0
    assert kws_tab_places.note("c") == live.busy_note(2, 15)
    asr_tab_places.start("c")  # the same visitor in the other tab: a recording of its own
    assert asr_tab_places.note("c") == live.busy_note(2, 15)
    assert kws_tab_places.summary() == {"places": 2, "turn_s": 15, "listening": 1, "listening_all_tabs": 2}
    asr_tab_places.stop("a")
    assert kws_tab_places.note("c") is None and kws_tab_places.listening() == 1
    # A tab outside the group counts its own recordings only.
    alone = live.Places(places=1, turn_s=15, clock=clock)
    alone.start("d")
    assert alone.note("d") is None and alone.listening() == 0


def test_the_line_under_a_served_chunk_tells_of_dropped_audio_once_it_is_a_real_share():
    clock = Clock()
    places = live.Places(places=4, turn_s=15, clock=clock)
    places.start("a")
    places.heard("a", 0.5)
    for _ in range(8):  # served every 0.7 s: 0.2 s of each 0.7 s never arrives
        clock.t += 0.7
        places.heard("a", 0.5)
    assert live.while_heard(places, "a", "Listening") == "Listening"  # 4.5 s heard: too early to say
    clock.t += 0.7
    places.heard("a", 0.5)
    assert live.while_heard(places, "a", "Listening") == live.skipping_note(1.8 / 6.8)
    assert "about 26% of the audio is not heard" in live.skipping_note(1.8 / 6.8)
    # A wait for a place is a gap the transcript marks, not a share of dropped audio.
    other = live.Places(places=4, turn_s=15, clock=clock)
    other.heard("b", 0.5)
    for gap in (0.5, 0.5, 6.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5):
        clock.t += gap
        other.heard("b", 0.5)
    assert live.while_heard(other, "b", "Listening") == "Listening"


@pytest.fixture(scope="module")
def tone_speech():
    """A CTC model that reads letters spoken as tones (`tests/tone_ctc.py`), and two phrases in
    its tones as 16 kHz PCM: "hello little" and "the quick"."""
    processor = make_processor(build_char_vocab(["hello little letters the quick brown fox"]))
    loaded = SimpleNamespace(model=ToneCTC(len(processor.tokenizer)), processor=processor, device="cpu")
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
            assert note == asr_tab.LISTENING
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
    assert (text, note) == ("hello little", asr_tab.LISTENING)
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
    assert chunk(request, (16_000, after[:8_000]))[1] == asr_tab.LISTENING
    assert stop(request) == ("hello little", f"Final transcript of {len(before) / 16_000:.1f} s of audio.")
    for start in range(8_000, len(after), 8_000):
        text, note = chunk(request, (16_000, after[start : start + 8_000]))
    assert note == asr_tab.LISTENING and places.recording("a").state.finished is False
    places.stop("a")
    assert stop(request) == ("the quick", f"Final transcript of {len(after) / 16_000:.1f} s of audio.")


def test_status_reports_each_live_tabs_places(tiny_checkpoints):
    import app
    from tasks import models

    registry = app.open_registry(tiny_checkpoints)
    demo = app.build_app(registry)
    report = models.status(registry)
    for name in ("asr", "kws"):
        assert report[name]["live"] == {
            "places": live.PLACES,
            "turn_s": live.TURN_S,
            "listening": 0,
            "listening_all_tabs": 0,
        }
    assert "live" not in report["qa-distilbert"] and "live" not in report["qa-xlmr"]
    # The two Live streams are one concurrency group of `PLACES` in the app's queue.
    streams = [fn for fn in demo.fns.values() if fn.connection == "stream"]
    assert len(streams) == 2
    assert {(fn.concurrency_id, fn.concurrency_limit, fn.time_limit) for fn in streams} == {
        (live.CONCURRENCY_ID, live.PLACES, live.TURN_S)
    }


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

    monkeypatch.setattr(live, "PLACES", 1)
    monkeypatch.setattr(live, "TURN_S", 5.0)
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
            page.get_by_text("serving").first.wait_for()
            page.get_by_role("tab", name="Live").first.click()
        first.wait_for_timeout(3000)  # the recorder's scripts (`HeldRecorder` tests that race)
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

    monkeypatch.setattr(live, "PLACES", 1)
    monkeypatch.setattr(live, "TURN_S", 0.0)
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
            page.get_by_text("serving").first.wait_for()
        speech.get_by_role("tab", name="Live").first.click()
        keywords.get_by_role("tab", name="Keyword spotting").click()
        keywords.get_by_role("tab", name="Live").click()
        speech.wait_for_timeout(3000)  # the recorder's scripts (`HeldRecorder` tests that race)
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
