"""The Live tabs on a shared server: how many visitors are listened to at once, turns when more
want to be, what went unheard, and what a visitor whose audio is not being heard is told.

Facts about Gradio 6.31's streaming that this is built on (checked with two browsers on one
server, `docs/MEASUREMENTS.md`):
- a recording's stream holds one of its event's `concurrency_limit` places from Record to Stop;
  a visitor beyond them waits in the queue (the Stop button reads "Waiting") and nothing they
  say reaches the server meanwhile;
- the browser sends a chunk every `stream_every` seconds, and the server keeps only the newest
  one while the handler is busy: a handler slower than the audio, or a wait for a place, loses
  audio without anyone being told;
- a stream whose handler has run for `time_limit` seconds (model time, not wall time) ends and
  the browser joins the queue again with the same state: with nobody waiting it goes on without
  a lost chunk; otherwise the waiting visitors take turns.
- the queue picks events by concurrency group, not one session's at a time: a recording's Stop
  handler runs while its last chunk is being served, each on the `gr.State` as it was when it
  began (`Recording` keeps the state on the server instead).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from core import settings
from core.slots import Slot

# Recordings listened to at once, by both Live tabs together (they share the cores). 3: on 2 cores
# (a free Space) three DistilHuBERT-size recordings are heard in full in any mix of the tabs
# (95-100 % of their audio), four ASR ones lose 16-24 % each, five in a mix 22-45 % (`bench.live_capacity`).
PLACES = int(settings.number("LIVE_PLACES", 3, int, least=1))
# Model seconds a recording runs before it gives its place to a waiting visitor (0: no turns).
TURN_S = settings.number("LIVE_TURN_S", 15.0)
GAP_S = 1.0  # audio missing between two chunks that the transcript marks (shorter: chunks jitter ~0.1 s)
STALL_S = 1.5  # no chunk served for this long: the visitor is not being heard now
WATCH_S = 1.0  # how often a recording's page asks whether it is heard
NO_SOUND_S = 4.0  # no chunk this long after Record, and a place was free: the microphone sent none
MISSING_SHARE = 0.15  # dropped audio worth telling the visitor about...
MISSING_AFTER_S = 5.0  # ...once this much was heard
FORGET_S = 600.0  # a recording not heard from for this long is gone (a tab closed without Stop)

NO_SOUND = (
    "No sound has reached the app from your microphone. Press **Stop**, then **Record** again; "
    "if that does not help, allow this page to use the microphone."
)


def busy_note(places: int, turn_s: float) -> str:
    """What a visitor waiting for a place is told."""
    how_many = "one recording" if places == 1 else f"{places} recordings"
    when = "You are heard in turns with the others" if turn_s > 0 else "You are heard once a place frees up"
    return (
        f"Live listening is full: this server listens to {how_many} at a time. {when}; what you say "
        "while the button reads **Waiting** is not heard."
    )


def skipping_note(share: float) -> str:
    return (
        f"The app is slower than your speech right now: about {share:.0%} of the audio is not heard, "
        "so words can be missing."
    )


@dataclass
class Hearing:
    """One recording as the server hears it (seconds of audio; times from the places' clock)."""

    began: float  # when it began, as far as the server can tell: its first chunk's service less its length
    last: float  # when its latest chunk was served
    heard_s: float = 0.0
    dropped_s: float = 0.0  # lost in small pieces: chunks replaced while the handler was busy
    gaps_s: float = 0.0  # lost in gaps of `GAP_S` or more: waiting for a place

    def missing_share(self) -> float:
        return self.dropped_s / max(self.heard_s + self.dropped_s, 1e-9)


@dataclass
class Recording:
    """One visitor's recording, from Record on, as its tab's handlers share it.

    Gradio runs a chunk and the Stop handler of one recording at the same time and each reads
    the `gr.State` as it was when it began, so a Stop during a chunk would finish without that
    chunk (its words and what went unheard before it), or a chunk would bring back a state from
    before the Stop. Here the handlers take turns (`lock`) on the newest state (`state`)."""

    started: float
    last: float
    hearing: Hearing | None = None  # None until its first chunk, and after Stop
    stopped: bool = False
    state: Any = None  # the handler's state after the newest chunk or Stop (None: nothing yet)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Places:
    """The recordings one Live tab listens to: who is heard now, and how much of each one's audio
    arrives. A visitor speaks for as long as their recording lasts, so audio the server should
    have had by a chunk's service and did not get never arrived. Counted that way (against the
    recording's whole length, not chunk by chunk), chunks served late by jitter or in a burst
    after a wait are not counted as lost more than once."""

    def __init__(
        self,
        places: int | None = None,
        turn_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        group: weakref.WeakSet[Places] | None = None,
    ):
        self.places = PLACES if places is None else places
        self.turn_s = TURN_S if turn_s is None else turn_s
        self._clock = clock
        self._lock = threading.Lock()
        self._recordings: dict[str, Recording] = {}
        self._stopped: dict[str, Recording] = {}  # each session's last stopped recording, for `finishing`
        # The tabs whose recordings share `places` (the same `stream` concurrency group): a
        # visitor waits when they all, together, hold every place.
        self._group = weakref.WeakSet() if group is None else group
        self._group.add(self)

    def start(self, session: str) -> None:
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            self._recordings[session] = Recording(started=now, last=now)

    def stop(self, session: str) -> None:
        with self._lock:
            recording = self._recording(session, self._clock())
            recording.stopped = True
            recording.hearing = None
            self._stopped[session] = recording

    def stopped(self, session: str) -> Recording:
        """The session's recording that Stop ended last: its Stop handler is queued and may run
        after Record was pressed again (the current recording if Stop was not seen yet)."""
        with self._lock:
            return self._stopped.pop(session, None) or self._recording(session, self._clock())

    def recording(self, session: str) -> Recording:
        """The session's latest recording (one begins here if Record was not seen)."""
        with self._lock:
            return self._recording(session, self._clock())

    def heard(self, session: str, seconds: float) -> float:
        """A chunk of `seconds` is being served: the seconds of audio that went missing before it.
        Nothing after Stop: the time since is not audio (the browser sends its last chunks then)."""
        with self._lock:
            now = self._clock()
            recording = self._recording(session, now)
            if recording.stopped:
                return 0.0
            hearing = recording.hearing
            if hearing is None:
                recording.hearing = Hearing(began=now - seconds, last=now, heard_s=seconds)
                return 0.0
            hearing.last = now
            hearing.heard_s += seconds
            accounted = hearing.heard_s + hearing.dropped_s + hearing.gaps_s
            missing = max(0.0, now - hearing.began - accounted)
            if missing >= GAP_S:
                hearing.gaps_s += missing
            else:
                hearing.dropped_s += missing
            return missing

    def hearing(self, session: str) -> Hearing | None:
        with self._lock:
            recording = self._recordings.get(session)
            return None if recording is None else recording.hearing

    def listening(self, but: str | None = None) -> int:
        """Recordings heard within the last `STALL_S` seconds by all the tabs of the group (other
        than this tab's `but`)."""
        return sum(tab.listening_here(but if tab is self else None) for tab in list(self._group))

    def listening_here(self, but: str | None = None) -> int:
        """As `listening`, this tab's recordings only."""
        with self._lock:
            now = self._clock()
            return sum(
                1
                for s, r in self._recordings.items()
                if s != but and r.hearing is not None and now - r.hearing.last <= STALL_S
            )

    def note(self, session: str) -> str | None:
        """What the page of a recording in progress says when it is not being heard (None: it is
        heard, or it is too early to say; the live handler's own lines speak then)."""
        hearing = self.hearing(session)
        now = self._clock()
        if hearing is not None and now - hearing.last <= STALL_S:
            return None
        if self.listening(but=session) >= self.places:
            return busy_note(self.places, self.turn_s)
        with self._lock:
            recording = self._recordings.get(session)
        if recording is None or recording.stopped:
            return None
        if hearing is None and now - recording.started >= NO_SOUND_S:
            return NO_SOUND
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "places": self.places,
            "turn_s": self.turn_s,
            "listening": self.listening_here(),
            "listening_all_tabs": self.listening(),
        }

    def _recording(self, session: str, now: float) -> Recording:  # (holding `_lock`)
        recording = self._recordings.get(session)
        if recording is None:
            recording = self._recordings[session] = Recording(started=now, last=now)
        recording.last = now
        return recording

    def _forget_old(self, now: float) -> None:
        for recordings in (self._recordings, self._stopped):
            for session in [s for s, r in recordings.items() if now - r.last > FORGET_S]:
                del recordings[session]


_PLACES: weakref.WeakKeyDictionary[Slot, Places] = weakref.WeakKeyDictionary()
_LIVE_TABS: weakref.WeakSet[Places] = weakref.WeakSet()  # every Live tab's: they share the places
CONCURRENCY_ID = "live-microphones"


def places_of(slot: Slot) -> Places:
    """The Live tab's places for the slot's model (made on first use; shared with the other
    Live tab's, `PLACES` in all)."""
    places = _PLACES.get(slot)
    if places is None:
        places = _PLACES[slot] = Places(group=_LIVE_TABS)
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
    """The line a served chunk shows: `note`, or that audio is being dropped when a share of it
    is (after `MISSING_AFTER_S` of audio, so one slow update early on says nothing; never after
    Stop, when `note` is the final line)."""
    hearing = places.hearing(session)
    if hearing is None or hearing.heard_s < MISSING_AFTER_S or hearing.missing_share() < MISSING_SHARE:
        return note
    return skipping_note(hearing.missing_share())


def session_of(request: gr.Request | None) -> str:
    return (request.session_hash if request is not None else None) or "-"


def serving(places: Places, fn: Callable[..., tuple]) -> Callable[..., tuple]:
    """A stream handler for the places' recordings: `fn(chunk, state, *values, missing_s=...)`
    serves one chunk given the recording's state (None at first) and the audio that never arrived
    before it (`Places.heard`), and returns `(state, *outputs)`; the state stays on the server
    with the recording (`Recording`). The last output is the line under the result: while a share
    of the audio is lost, it says so instead (`while_heard`)."""

    def on_chunk(request: gr.Request, chunk, *values):  # (Gradio fills a request only before *values)
        session = session_of(request)
        recording = places.recording(session)
        with recording.lock:
            missing = places.heard(session, chunk_seconds(chunk))
            recording.state, *shown, line = fn(chunk, recording.state, *values, missing_s=missing)
        return *shown, while_heard(places, session, line)

    return on_chunk


def stream(
    audio: gr.Audio, places: Places, fn: Callable[..., tuple], inputs: list[Any], outputs: list[Any], every_s: float
) -> None:
    """Register a Live tab's stream of `audio` (and `inputs`) to `outputs` with the places and
    turns above; `fn` as in `serving`. Both Live tabs' streams are one concurrency group: their
    recordings share the places (`PLACES` in all), since they share the cores."""
    audio.stream(
        serving(places, fn),
        inputs=[audio, *inputs],
        outputs=outputs,
        stream_every=every_s,
        api_name=False,
        concurrency_limit=places.places,
        concurrency_id=CONCURRENCY_ID,
        time_limit=places.turn_s or None,
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
