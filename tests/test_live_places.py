"""Who the Live tabs hear (serving/live_places.py): seats taken and freed, turns, the line and its
notes, limits per page and address, and the audio a recording lost while it was not heard."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from tests.helpers import Clock
from ui import live


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


def test_a_stream_takes_a_seat_with_its_first_chunk_and_waiting_visitors_are_told_their_place_in_line():
    clock = Clock()
    places = live.Places(places=2, turn_s=15, clock=clock)
    for session in "abcd":
        places.start(session)
    assert places.admit("a") == 0 and places.admit("b") == 0  # seated by their first chunk, heard or not
    assert places.summary() == {
        "places": 2, "turn_s": 15, "listening": 2, "listening_all_tabs": 2, "waiting_all_tabs": 0,
    }  # fmt: skip
    assert places.admit("c") == 1 and places.admit("d") == 2
    assert places.note("a") is None  # seated: the handler's own lines speak
    assert places.note("c") == live.busy_note(2, 15, 1)
    assert places.note("d") == (
        "Live listening is full: this server listens to 2 recordings at a time. You are number 2 in line. "
        "You are heard in turns with the others; what you say until then is not heard."
    )
    places.stop("b")
    assert places.admit("c") == 0 and places.admit("d") == 1  # first come, first seated
    assert places.admit("d") == 1


def test_a_stream_that_stops_sending_frees_its_seat_within_two_seconds_unless_a_chunk_is_being_served():
    clock = Clock()
    places = live.Places(places=1, turn_s=15, clock=clock)
    assert places.admit("squatter") == 0
    places.done("squatter")
    assert places.admit("visitor") == 1
    places.done("visitor")
    clock.t += 1.0
    assert places.admit("visitor") == 1  # the squatter's last chunk was 1 s ago
    places.done("visitor")
    clock.t += live.IDLE_S
    assert places.admit("visitor") == 0  # no chunk from it for over IDLE_S: the seat is the visitor's
    assert places.admit("squatter") == 1  # back in line if it sends again
    places.done("squatter")
    # The visitor's chunk is served for longer than IDLE_S (a slow model): it keeps its seat.
    clock.t += 5.0
    assert places.admit("squatter") == 1
    places.done("squatter")
    places.done("visitor")
    clock.t += live.IDLE_S + 0.1
    assert places.admit("squatter") == 0 and places.listening() == 1


def test_turns_end_after_turn_s_seated_when_someone_waits_and_never_when_nobody_does():
    clock = Clock()
    places = live.Places(places=1, turn_s=15, clock=clock)
    assert places.admit("a") == 0
    for _ in range(40):  # 20 s alone: no turn ends
        clock.t += 0.5
        places.done("a")
        assert places.admit("a") == 0
    places.done("a")
    assert places.admit("b") == 1
    places.done("b")
    clock.t += 0.5
    assert places.admit("a") == 1  # seated over 15 s and someone waits: to the back of the line
    assert places.admit("b") == 0
    for _ in range(29):
        clock.t += 0.5
        for session, expected in (("a", 1), ("b", 0)):
            assert places.admit(session) == expected
            places.done(session)
    clock.t += 0.5
    assert places.admit("b") == 1 and places.admit("a") == 0  # b's 15 s are over


def test_one_session_and_one_address_cannot_take_every_seat():
    clock = Clock()
    seats = live.Seats(places=3, turn_s=15, clock=clock)
    asr_places = live.Places(seats=seats, clock=clock)
    kws_places = live.Places(seats=seats, clock=clock)
    assert asr_places.admit("page", "203.0.113.7") == 0
    with pytest.raises(live.TooManyStreams, match="already recording in the other Live tab"):
        kws_places.admit("page", "203.0.113.7")
    assert kws_places.admit("page2", "203.0.113.7") == 0
    with pytest.raises(live.TooManyStreams, match=f"Your network already has {live.PER_ADDRESS} live recordings"):
        kws_places.admit("page3", "203.0.113.7")
    assert kws_places.admit("page4", "198.51.100.2") == 0  # another address
    assert kws_places.admit("page5", None) == 1  # no address known: only the seats limit it


def test_the_address_is_the_peer_or_what_a_private_proxy_forwarded_last():
    def request(host, forwarded=None):
        headers = {} if forwarded is None else {"x-forwarded-for": forwarded}
        return SimpleNamespace(client=SimpleNamespace(host=host), headers=headers, session_hash="s")

    assert live.address_of(request("93.184.216.34", "1.2.3.4")) == "93.184.216.34"  # a public peer is the client
    assert live.address_of(request("10.0.0.5", "6.6.6.6, 93.184.216.34")) == "93.184.216.34"
    assert live.address_of(request("127.0.0.1")) is None  # loopback: every local visitor would share it
    assert live.address_of(request("10.0.0.5", "not an address")) is None
    assert live.address_of(None) is None


def test_the_live_tabs_share_their_places():
    # Both tabs' recordings run on the same cores: a recording in one tab takes a place from both.
    clock = Clock()
    seats = live.Seats(places=2, turn_s=15, clock=clock)
    asr_tab_places = live.Places(seats=seats, clock=clock)
    kws_tab_places = live.Places(seats=seats, clock=clock)
    assert asr_tab_places.admit("a") == 0 and kws_tab_places.admit("b") == 0
    assert kws_tab_places.admit("c") == 1
    assert kws_tab_places.summary() == {
        "places": 2, "turn_s": 15, "listening": 1, "listening_all_tabs": 2, "waiting_all_tabs": 1,
    }  # fmt: skip
    asr_tab_places.stop("a")
    assert kws_tab_places.admit("c") == 0 and kws_tab_places.listening() == 2
    # A tab with seats of its own counts its own recordings only.
    alone = live.Places(places=1, turn_s=15, clock=clock)
    assert alone.admit("d") == 0 and alone.listening() == 1


def test_the_watch_says_no_sound_only_when_nothing_came_at_all():
    clock = Clock()
    places = live.Places(places=1, turn_s=15, clock=clock)
    places.start("a")
    places.start("b")
    clock.t += live.NO_SOUND_S
    assert places.note("a") == live.NO_SOUND
    places.admit("a")
    assert places.note("a") is None
    places.admit("b")
    assert places.note("b") == live.busy_note(1, 15, 1)  # its chunks arrive: the seats are full, not its microphone
    places.stop("b")
    assert places.note("b") is None


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
    assert live.while_heard(places, "a", "Listening") == f"{live.skipping_note(1.8 / 6.8)}\n\nListening"
    assert live.while_heard(places, "a", gr.skip()) == live.skipping_note(1.8 / 6.8)  # a chunk that changed nothing
    assert "about 26% of the audio is not heard" in live.skipping_note(1.8 / 6.8)
    # A wait for a place is a gap the transcript marks, not a share of dropped audio.
    other = live.Places(places=4, turn_s=15, clock=clock)
    other.heard("b", 0.5)
    for gap in (0.5, 0.5, 6.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5):
        clock.t += gap
        other.heard("b", 0.5)
    assert live.while_heard(other, "b", "Listening") == "Listening"


def test_the_line_tells_of_dropped_audio_only_while_it_is_being_dropped():
    clock = Clock()
    places = live.Places(places=4, turn_s=15, clock=clock)
    places.start("a")
    places.heard("a", 0.5)
    for _ in range(10):  # a slow start: 0.4 s of each 0.9 s never arrives
        clock.t += 0.9
        places.heard("a", 0.5)
    assert live.while_heard(places, "a", "Listening") == f"{live.skipping_note(4.0 / 9.5)}\n\nListening"
    for _ in range(16):  # then every chunk on time, 8 s of them
        clock.t += 0.5
        places.heard("a", 0.5)
    hearing = places.hearing("a")
    # Since Record, 4 s of 17.5 s never arrived (over 15 %); of the newest chunks that cover 10 s
    # (the 16 on time and the last 3 slow ones: 10.7 s), 1.2 s did not.
    assert hearing.dropped_s / (hearing.heard_s + hearing.dropped_s) == pytest.approx(4.0 / 17.5)
    assert hearing.missing_share() == pytest.approx(1.2 / 10.7)
    assert live.while_heard(places, "a", "Listening") == "Listening"
    for _ in range(4):  # it falls behind again: said within seconds
        clock.t += 0.9
        places.heard("a", 0.5)
    assert live.while_heard(places, "a", "Listening").startswith(live.skipping_note(hearing.missing_share()))
    assert hearing.missing_share() > live.MISSING_SHARE


def test_a_refused_recording_says_why_once_gives_up_its_seat_and_never_reads_as_silent():
    clock = Clock()
    places = live.Places(places=1, turn_s=0, clock=clock)
    places.start("a")
    assert places.admit("a") == 0
    assert places.refuse("a", "no model") is True and places.refuse("a", "again") is False
    assert places.admit("a") == -1 and places.position("a") is None  # not served, not seated
    places.start("b")
    assert places.admit("b") == 0  # the seat it held is free
    clock.t += live.NO_SOUND_S + 1
    assert places.note("a") is None  # its line says why; "no audio has come" would be wrong
    places.start("a")  # Record again: served again
    assert places.admit("a") == 1  # in line behind b
