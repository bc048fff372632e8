"""The Live tabs on a shared server: how many visitors are listened to at once, turns when more
want to be, what went unheard, and what a visitor whose audio is not being heard is told.

Facts about Gradio 6.31's streaming that this is built on (checked with two browsers on one
server, `docs/MEASUREMENTS.md`, and in `gradio/queueing.py`):
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
  stream takes it unprocessed and `core.audio.load_chunk` decodes it, refusing one longer than a
  few stream intervals from its header.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from core import settings
from core.audio import DEFAULT_MAX_DURATION_S, AudioInputError, load_chunk
from core.slots import Slot
from tasks.clients import client_address, is_loopback
from tasks.common import user_errors

# Recordings listened to at once, by both Live tabs together (they share the cores). 3: on 2 cores
# (a free Space) three DistilHuBERT-size recordings are heard in full in any mix of the tabs
# (95-100 % of their audio), four ASR ones lose 16-24 % each, five in a mix 22-45 % (`bench.live_capacity`).
PLACES = int(settings.number("LIVE_PLACES", 3, int, least=1))
# Seconds a recording holds a seat before it gives it to a waiting visitor (0: no turns).
TURN_S = settings.number("LIVE_TURN_S", 15.0)
# Recordings one client address may have seated or waiting at once (loopback: not counted).
PER_ADDRESS = int(settings.number("LIVE_PER_ADDRESS", 2, int, least=1))
IDLE_S = 2.0  # no chunk for this long (and none being served): the stream gives up its seat or place in line
GAP_S = 1.0  # audio missing between two chunks that the transcript marks (shorter: chunks jitter ~0.1 s)
STALL_S = 1.5  # no chunk served for this long: the visitor is not being heard now
WATCH_S = 1.0  # how often a recording's page asks whether it is heard
NO_SOUND_S = 4.0  # no chunk this long after Record: the microphone sent none
MISSING_SHARE = 0.15  # dropped audio worth telling the visitor about...
MISSING_AFTER_S = 5.0  # ...once this much was heard
FORGET_S = 600.0  # a recording not heard from for this long is gone (a tab closed without Stop)
AFTER_STOP_S = 3.0  # chunks the browser sends after Stop are its last words for this long; later ones are ignored
CHUNK_INTERVALS = 4  # a chunk longer than this many stream intervals (1 s at least) is refused
CONCURRENCY_ID = "live-microphones"

NO_SOUND = (
    "No sound has reached the app from your microphone. Press **Stop**, then **Record** again; "
    "if that does not help, allow this page to use the microphone."
)


def busy_note(places: int, turn_s: float, position: int | None = None) -> str:
    """What a visitor waiting for a seat is told (`position`: theirs in line, 1 = next)."""
    how_many = "one recording" if places == 1 else f"{places} recordings"
    where = "" if position is None else f"You are number {position} in line. "
    when = "You are heard in turns with the others" if turn_s > 0 else "You are heard once a place frees up"
    return (
        f"Live listening is full: this server listens to {how_many} at a time. {where}{when}; what you say "
        "until then is not heard."
    )


def skipping_note(share: float) -> str:
    return (
        f"The app is slower than your speech right now: about {share:.0%} of the audio is not heard, "
        "so words can be missing."
    )


class TooManyStreams(AudioInputError):
    """A session or client address that already has the live recordings it may have."""


@dataclass
class Seat:
    """A stream seated (heard) or in line: its client address, since when, and its last chunk."""

    address: str | None
    since: float
    last: float
    serving: int = 0  # chunks being served now: never idle meanwhile


class Seats:
    """Who is heard, server-wide: at most `places` streams at once, the others in line (first come,
    first seated). A stream is a Live tab's recording in one session (`key`)."""

    def __init__(
        self, places: int | None = None, turn_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self._places = places
        self._turn_s = turn_s
        self._clock = clock
        self._lock = threading.Lock()
        self.seated: dict[tuple, Seat] = {}
        self.line: OrderedDict[tuple, Seat] = OrderedDict()

    @property
    def places(self) -> int:
        """The seats (`PLACES` unless given: read when used, so an operator's test can change it)."""
        return PLACES if self._places is None else self._places

    @property
    def turn_s(self) -> float:
        return TURN_S if self._turn_s is None else self._turn_s

    def admit(self, key: tuple, address: str | None) -> int:
        """A chunk of `key`'s stream arrived: 0 if it is heard (seated), else its position in line
        (1 = next). Call `done` once the chunk is served. Raises `TooManyStreams` for a new stream
        of a session that has one already, or of an address that has `PER_ADDRESS`."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            seat = self.seated.get(key)
            if seat is not None and self.turn_s and now - seat.since >= self.turn_s and self.line:
                del self.seated[key]  # its turn is over and someone waits: to the back of the line
                self.line[key] = seat
            elif key not in self.line and seat is None:
                self._check_limits(key, address)
                self.line[key] = Seat(address, since=now, last=now)
            seat = self.seated.get(key) or self.line[key]
            seat.last = now
            seat.serving += 1
            while len(self.seated) < self.places and self.line:
                front, waiting = self.line.popitem(last=False)
                waiting.since = now
                self.seated[front] = waiting
            return 0 if key in self.seated else list(self.line).index(key) + 1

    def done(self, key: tuple) -> None:
        """The chunk `admit` let in was served (or refused)."""
        with self._lock:
            seat = self.seated.get(key) or self.line.get(key)
            if seat is not None:
                seat.serving = max(0, seat.serving - 1)
                seat.last = self._clock()

    def leave(self, key: tuple) -> None:
        with self._lock:
            self.seated.pop(key, None)
            self.line.pop(key, None)

    def position(self, key: tuple) -> int | None:
        """0: seated; k: k-th in line; None: neither."""
        with self._lock:
            self._expire(self._clock())
            if key in self.seated:
                return 0
            return list(self.line).index(key) + 1 if key in self.line else None

    def taken(self, tab: object | None = None) -> int:
        """Seats taken (by `tab`'s streams only, when given)."""
        with self._lock:
            self._expire(self._clock())
            return sum(1 for key in self.seated if tab is None or key[0] == tab)

    def waiting(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self.line)

    def _check_limits(self, key: tuple, address: str | None) -> None:  # (holding `_lock`)
        streams = [*self.seated.items(), *self.line.items()]
        if any(other[1] == key[1] for other, _ in streams):
            raise TooManyStreams("This page is already recording in the other Live tab: press Stop there first.")
        if address is not None and sum(seat.address == address for _, seat in streams) >= PER_ADDRESS:
            raise TooManyStreams(
                f"Your network already has {PER_ADDRESS} live recordings on this server: stop one to start another."
            )

    def _expire(self, now: float) -> None:  # (holding `_lock`)
        for streams in (self.seated, self.line):
            for key in [k for k, seat in streams.items() if not seat.serving and now - seat.last > IDLE_S]:
                del streams[key]


@dataclass
class Hearing:
    """One recording as the server hears it (seconds of audio; times from the places' clock)."""

    began: float  # when it began, as far as the server can tell: its first chunk's service less its length
    last: float  # when its latest chunk was served
    heard_s: float = 0.0
    dropped_s: float = 0.0  # lost in small pieces: chunks replaced while the handler was busy
    gaps_s: float = 0.0  # lost in gaps of `GAP_S` or more: waiting for a seat
    waited_s: float = 0.0  # chunks that arrived while waiting in line, not yet counted in a gap

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
    stopped: float | None = None  # when Stop was seen
    state: Any = None  # the handler's state after the newest chunk or Stop (None: nothing yet)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Places:
    """The recordings one Live tab listens to: who is heard now (its `seats`, shared by both Live
    tabs), and how much of each one's audio arrives. A visitor speaks for as long as their
    recording lasts, so audio the server should have had by a chunk's service and did not get
    never arrived. Counted that way (against the recording's whole length, not chunk by chunk),
    chunks served late by jitter or in a burst after a wait are not counted as lost more than once."""

    def __init__(
        self,
        places: int | None = None,
        turn_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        seats: Seats | None = None,
    ):
        self.seats = seats or Seats(places, turn_s, clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._recordings: dict[str, Recording] = {}
        self._stopped: dict[str, Recording] = {}  # each session's last stopped recording, for `finishing`

    @property
    def places(self) -> int:
        return self.seats.places

    @property
    def turn_s(self) -> float:
        return self.seats.turn_s

    def start(self, session: str) -> None:
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            self._recordings[session] = Recording(started=now, last=now)

    def stop(self, session: str) -> None:
        with self._lock:
            recording = self._recording(session, self._clock())
            recording.stopped = self._clock()
            recording.hearing = None
            self._stopped[session] = recording
        self.seats.leave((self, session))

    def stopped(self, session: str) -> Recording:
        """The session's recording that Stop ended last: its Stop handler is queued and may run
        after Record was pressed again (the current recording if Stop was not seen yet)."""
        with self._lock:
            return self._stopped.pop(session, None) or self._recording(session, self._clock())

    def recording(self, session: str) -> Recording:
        """The session's latest recording (one begins here if Record was not seen)."""
        with self._lock:
            return self._recording(session, self._clock())

    def admit(self, session: str, address: str | None = None) -> int:
        """A chunk of the session's recording arrived: 0 if it is heard, else its position in line
        (`Seats.admit`). A stopped recording is not seated again: its last chunks are heard for
        `AFTER_STOP_S` (-1 after that: ignore the chunk)."""
        with self._lock:
            recording = self._recording(session, self._clock())
            if recording.stopped is not None:
                return 0 if self._clock() - recording.stopped <= AFTER_STOP_S else -1
        return self.seats.admit((self, session), address)

    def done(self, session: str) -> None:
        self.seats.done((self, session))

    def position(self, session: str) -> int | None:
        return self.seats.position((self, session))

    def waited(self, session: str, seconds: float) -> None:
        """A chunk of `seconds` arrived while the recording waited in line: not heard."""
        with self._lock:
            now = self._clock()
            recording = self._recording(session, now)
            if recording.hearing is None:
                recording.hearing = Hearing(began=now - seconds, last=now)
            recording.hearing.last = now
            recording.hearing.waited_s += seconds

    def heard(self, session: str, seconds: float) -> float:
        """A chunk of `seconds` is being served: the seconds of audio that went missing before it
        (while the recording waited in line too). Nothing after Stop: the time since is not audio
        (the browser sends its last chunks then). Raises `AudioInputError` once the recording is
        longer than the audio limit."""
        with self._lock:
            now = self._clock()
            recording = self._recording(session, now)
            if recording.stopped is not None:
                return 0.0
            hearing = recording.hearing
            if hearing is None:
                recording.hearing = Hearing(began=now - seconds, last=now, heard_s=seconds)
                return 0.0
            if now - hearing.began > DEFAULT_MAX_DURATION_S:
                raise AudioInputError(
                    f"A live recording is limited to {DEFAULT_MAX_DURATION_S:.0f} s: press Stop, then Record "
                    "to start a new one."
                )
            hearing.last = now
            hearing.heard_s += seconds
            accounted = hearing.heard_s + hearing.dropped_s + hearing.gaps_s + hearing.waited_s
            late = now - hearing.began - accounted
            missing = (late if late > 1e-9 else 0.0) + hearing.waited_s  # (1e-9: sums of floats are not audio)
            hearing.waited_s = 0.0
            if missing >= GAP_S:
                hearing.gaps_s += missing
            else:
                hearing.dropped_s += missing
            return missing

    def hearing(self, session: str) -> Hearing | None:
        with self._lock:
            recording = self._recordings.get(session)
            return None if recording is None else recording.hearing

    def listening(self) -> int:
        """Recordings seated, by all the tabs that share the seats."""
        return self.seats.taken()

    def listening_here(self) -> int:
        """As `listening`, this tab's recordings only."""
        return self.seats.taken(self)

    def note(self, session: str) -> str | None:
        """What the page of a recording in progress says when it is not being heard (None: it is
        heard, or it is too early to say; the live handler's own lines speak then)."""
        with self._lock:
            recording = self._recordings.get(session)
        if recording is None or recording.stopped is not None:
            return None
        position = self.position(session)
        if position:
            return busy_note(self.places, self.turn_s, position)
        if position == 0 or recording.hearing is not None:
            return None
        if self._clock() - recording.started < NO_SOUND_S:
            return None
        return NO_SOUND

    def summary(self) -> dict[str, Any]:
        return {
            "places": self.places,
            "turn_s": self.turn_s,
            "listening": self.listening_here(),
            "listening_all_tabs": self.listening(),
            "waiting_all_tabs": self.seats.waiting(),
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
    """The line a served chunk shows: `note`, or that audio is being dropped when a share of it
    is (after `MISSING_AFTER_S` of audio, so one slow update early on says nothing; never after
    Stop, when `note` is the final line)."""
    hearing = places.hearing(session)
    if hearing is None or hearing.heard_s < MISSING_AFTER_S or hearing.missing_share() < MISSING_SHARE:
        return note
    return skipping_note(hearing.missing_share())


def session_of(request: gr.Request | None) -> str:
    return (getattr(request, "session_hash", None) if request is not None else None) or "-"


def address_of(request: gr.Request | None) -> str | None:
    """The visitor's address, for `PER_ADDRESS` (`tasks.clients`). None where none is known, or it
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
    waits for a seat, it says that (and the others stay as they are).

    The chunk is Gradio's unprocessed file payload (or an in-process `(rate, samples)` pair),
    decoded here with the app's limits: longer than `chunk_limit_s(every_s)` is refused."""
    unchanged = [gr.skip()] * (outputs - 1)

    def on_chunk(request: gr.Request, payload, *values):  # (Gradio fills a request only before *values)
        session = session_of(request)
        with user_errors():
            chunk = None if payload is None else load_chunk(payload, chunk_limit_s(every_s))
            position = places.admit(session, address_of(request))
        try:
            if position < 0:  # long after Stop: not this recording's audio
                return *unchanged, gr.skip()
            if position > 0:
                places.waited(session, chunk_seconds(chunk))
                return *unchanged, busy_note(places.places, places.turn_s, position)
            recording = places.recording(session)
            with recording.lock, user_errors():
                missing = places.heard(session, chunk_seconds(chunk))
                recording.state, *shown, line = fn(chunk, recording.state, *values, missing_s=missing)
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
        concurrency_id=CONCURRENCY_ID,
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
