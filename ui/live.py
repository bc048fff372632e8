"""The Live tabs on a shared server: how many visitors are listened to at once, turns when more
want to be, what went unheard, and what a visitor whose audio is not being heard is told.

Facts about Gradio 6.31's streaming that this is built on (checked with two browsers on one
server, `docs/measurements.md`, and in `gradio/queueing.py`):
- the browser sends a chunk every `stream_every` seconds, and the server keeps only the newest
  one while the handler is busy: a handler slower than the audio loses audio;
- a stream event's `concurrency_limit` would hold a place from a stream's first chunk until its
  `time_limit` ran out *in wall-clock time* (the wait for each next chunk counts), and a stream
  that sends nothing more keeps it that long: three clients sending one chunk each could hold
  every place. So the stream events have no Gradio limit, and `Seats` decides here, at every
  chunk, who is heard: a stream takes a seat with its first chunk, loses it after `IDLE_S`
  without a chunk, and gives it up after `TURN_S` seconds seated when someone waits; the others
  wait in line, told their position, their chunks not served;
- the queue runs a recording's Stop handler while its last chunk is being served, each on the
  `gr.State` as it was when it began (`Recording` keeps the state on the server instead);
- a stream event's payload is a file Gradio would decode whole before the handler runs: the
  stream takes it unprocessed and `speech.audio.load_chunk` decodes it, refusing one longer than a
  few stream intervals from its header.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from serving import gpu
from serving.clients import client_address, is_loopback
from serving.live_places import (  # noqa: F401 - re-exported: the tabs and tests name them as live.*
    GAP_S,
    IDLE_S,
    NO_SOUND,
    NO_SOUND_S,
    PER_ADDRESS,
    PLACES,
    TURN_S,
    Places,
    Seats,
    TooManyStreams,
    busy_note,
)
from slots.slot import Slot
from speech import spotting
from speech.audio import load_chunk, to_mono_float
from ui.common import NOTICE_S, user_errors

WATCH_S = 1.0  # how often a recording's page asks whether it is heard
MISSING_SHARE = 0.15  # dropped audio worth telling the visitor about...
MISSING_AFTER_S = 5.0  # ...once this much was heard
CHUNK_INTERVALS = 4  # a chunk longer than this many stream intervals (1 s at least) is refused


def where_it_runs() -> str:
    """A Live tab's line on a ZeroGPU Space, where other requests borrow a GPU: Live does not."""
    if not gpu.ZERO_GPU:
        return ""
    return " Live runs on this Space's processor, not its GPU: it uses none of your daily GPU time."


def skipping_note(share: float) -> str:
    return (
        f"The app is slower than your speech right now: about {share:.0%} of the audio is not heard, "
        "so words can be missing."
    )


_PLACES: weakref.WeakKeyDictionary[Slot, Places] = weakref.WeakKeyDictionary()
_SEATS: Seats | None = None  # every Live tab's: they share the cores


def places_of(slot: Slot) -> Places:
    """The Live tab's places for the slot's model (made on first use; its seats shared with the
    other Live tab's, `PLACES` in all)."""
    global _SEATS
    places = _PLACES.get(slot)
    if places is None:
        _SEATS = _SEATS or Seats()
        places = _PLACES[slot] = Places(seats=_SEATS)
    return places


def status(slot: Slot) -> dict[str, Any] | None:
    """For `/status`: the slot's live places, the turn, and how many are heard now (None: the
    slot has no Live tab)."""
    places = _PLACES.get(slot)
    return None if places is None else places.summary()


def chunk_seconds(chunk: tuple[int, Any] | None) -> float:
    """The length of a streamed microphone chunk (rate, samples)."""
    if chunk is None or chunk[1] is None or not chunk[0]:
        return 0.0
    return len(chunk[1]) / chunk[0]


def while_heard(places: Places, session: str, note: Any) -> Any:
    """The line a served chunk shows: `note`, headed by the news that audio is being dropped when
    a share of it is (after `MISSING_AFTER_S` of audio, so one slow update early on says nothing;
    never after Stop, when `note` is the final line). The note stays under it: what is heard, the
    input level, the sentences made final are what a visitor watches most when the app lags."""
    hearing = places.hearing(session)
    if hearing is None or hearing.heard_s < MISSING_AFTER_S or hearing.missing_share() < MISSING_SHARE:
        return note
    lagging = skipping_note(hearing.missing_share())
    return f"{lagging}\n\n{note}" if isinstance(note, str) and note else lagging


def session_of(request: gr.Request | None) -> str:
    return (getattr(request, "session_hash", None) if request is not None else None) or "-"


def address_of(request: gr.Request | None) -> str | None:
    """The visitor's address, for `PER_ADDRESS` (`serving.clients`). None where none is known, or it
    is a loopback one (every visitor of a proxy that forwards nothing would share it)."""
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    address = client_address(getattr(client, "host", None), headers.get("x-forwarded-for"))
    return None if is_loopback(address) else address


def chunk_limit_s(every_s: float) -> float:
    """The longest chunk a Live tab that streams every `every_s` seconds accepts."""
    return max(1.0, CHUNK_INTERVALS * every_s)


def serving(places: Places, fn: Callable[..., tuple], outputs: int = 2, every_s: float = 0.5) -> Callable[..., tuple]:
    """A stream handler for the places' recordings: `fn(chunk, state, *values, missing_s=...)`
    serves one chunk given the recording's state (None at first) and the audio that never arrived
    before it (`Places.heard`), and returns `(state, *outputs)`; the state stays on the server
    with the recording (`Recording`). The last of the `outputs` is the line under the result:
    while a share of the audio is lost, it says so instead (`while_heard`); while the recording
    waits for a seat, it says that (and the others stay as they are). A refused chunk (no model,
    audio it cannot read, a recording over the limit) ends the recording's service with one
    notice and a line saying so (`Places.refuse`), not an error per chunk.

    The chunk is Gradio's unprocessed file payload (or an in-process `(rate, samples)` pair),
    decoded here with the app's limits: longer than `chunk_limit_s(every_s)` is refused."""
    unchanged = [gr.skip()] * (outputs - 1)

    def refused(session: str, err: gr.Error) -> tuple:
        # The first refusal of a recording says why, once; its later chunks are not served.
        if not places.refuse(session, err.message):
            return *unchanged, gr.skip()
        gr.Warning(err.message, duration=NOTICE_S)
        return *unchanged, f"Stopped listening: {err.message} Press Stop, then Record to try again."

    def on_chunk(request: gr.Request, payload, *values):  # (Gradio fills a request only before *values)
        session = session_of(request)
        try:
            with user_errors():
                chunk = None if payload is None else load_chunk(payload, chunk_limit_s(every_s))
        except gr.Error as err:
            return refused(session, err)
        position = places.admit(session, address_of(request))
        try:
            if position < 0:  # long after Stop, or refused: not audio to serve
                return *unchanged, gr.skip()
            if position > 0:
                places.waited(session, chunk_seconds(chunk))
                return *unchanged, busy_note(places.places, places.turn_s, position)
            recording = places.recording(session)
            with recording.lock:
                try:
                    with user_errors():
                        missing = places.heard(session, chunk_seconds(chunk))
                        recording.state, *shown, line = fn(chunk, recording.state, *values, missing_s=missing)
                except gr.Error as err:
                    return refused(session, err)
            return *shown, while_heard(places, session, line)
        finally:
            places.done(session)

    return on_chunk


def stream(
    audio: gr.Audio, places: Places, fn: Callable[..., tuple], inputs: list[Any], outputs: list[Any], every_s: float
) -> None:
    """Register a Live tab's stream of `audio` (and `inputs`) to `outputs` with the seats and
    turns above; `fn` as in `serving`. The payload reaches the handler undecoded
    (`preprocess=False`): Gradio would decode any file whole, before a limit applies. No Gradio
    concurrency limit or time limit: `Seats` decides who is heard (see the module's note)."""
    audio.stream(
        serving(places, fn, len(outputs), every_s),
        inputs=[audio, *inputs],
        outputs=outputs,
        stream_every=every_s,
        api_name=False,
        preprocess=False,
        concurrency_limit=None,
        show_progress="hidden",
    )


def finishing(places: Places, fn: Callable[[Any], tuple]) -> Callable[..., tuple]:
    """A Stop handler for `stream`'s recordings: `fn(state)` returns `(state, *outputs)`. It runs
    after the chunk being served (if any), on the state that chunk left, of the recording that
    was stopped (not of one begun since: `Places.stopped`)."""

    def on_stop(request: gr.Request):
        recording = places.stopped(session_of(request))
        with recording.lock:
            recording.state, *shown = fn(recording.state)
        return tuple(shown)

    return on_stop


def watch(audio: gr.Audio, places: Places, note: gr.Markdown) -> None:
    """While a recording is on, tell its visitor when they are not being heard, and why: every
    place is taken (`busy_note`), or no audio has come at all (`NO_SOUND`).

    The second: Gradio loads the streaming recorder's encoder when the microphone's tab first
    opens; a Record pressed before it arrives (a slow connection, a busy machine) records nothing
    while the page shows a recording in progress, and so does a refused microphone. Stop and
    Record again works once the encoder is there. Whatever the note says, the stream handler's
    next answer replaces it."""
    timer = gr.Timer(WATCH_S, active=False)
    quiet = {"queue": False, "api_name": False, "show_progress": "hidden"}

    def begin(request: gr.Request) -> gr.Timer:
        places.start(session_of(request))
        return gr.Timer(active=True)

    def end(request: gr.Request) -> gr.Timer:
        places.stop(session_of(request))
        return gr.Timer(active=False)

    def tick(request: gr.Request) -> Any:
        said = places.note(session_of(request))
        return gr.skip() if said is None else said

    audio.start_recording(begin, outputs=timer, **quiet)
    audio.stop_recording(end, outputs=timer, **quiet)
    timer.tick(tick, outputs=note, **quiet)


def level_meter(rate: int, samples: np.ndarray, bars: int = 12) -> str:
    """A microphone chunk's input level as a bar from -60 dBFS (nothing a model hears) to 0 dBFS,
    under both Live tabs' results: a visitor sees at once whether the microphone is heard."""
    dbfs = spotting.level_dbfs(to_mono_float(rate, samples)[1])
    filled = 0 if not np.isfinite(dbfs) else int(np.clip((dbfs + 60) / 60, 0, 1) * bars + 0.5)
    shown = "silence" if not np.isfinite(dbfs) else f"{dbfs:.0f} dBFS"
    quiet = " · too quiet to score" if not np.isfinite(dbfs) or dbfs < -60 else ""
    return f"Input level `{'█' * filled}{'░' * (bars - filled)}` {shown}{quiet}"
