"""Who the Live tabs listen to: seats shared by both tabs (`Seats`: taken by a stream's first chunk,
freed after `IDLE_S` without one, turns while someone waits, one stream a page, `PER_ADDRESS` an
address) and each recording's state and hearing (`Places`: what arrived, what went unheard).
No Gradio here: `ui/live.py` wires it to the streams and says why it is built this way."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core import settings
from speech.audio import DEFAULT_MAX_DURATION_S, AudioInputError

# Recordings listened to at once, by both Live tabs together (they share the cores). 3: on 2 cores
# (a free Space) three DistilHuBERT-size recordings are heard in full in any mix of the tabs
# (95-100 % of their audio), four ASR ones lose 16-24 % each, five in a mix 22-45 % (`bench.live_capacity`).
PLACES = settings.LIVE_PLACES
# Seconds a recording holds a seat before it gives it to a waiting visitor (0: no turns).
TURN_S = settings.LIVE_TURN_S
# Recordings one client address may have seated or waiting at once (loopback: not counted).
PER_ADDRESS = settings.LIVE_PER_ADDRESS
IDLE_S = 2.0  # no chunk for this long (and none being served): the stream gives up its seat or place in line
GAP_S = 1.0  # audio missing between two chunks that the transcript marks (shorter: chunks jitter ~0.1 s)
RECENT_S = 10.0  # the share of audio lost is the newest this many seconds' (a slow start is not "right now")
NO_SOUND_S = 4.0  # no chunk this long after Record: the microphone sent none
FORGET_S = 600.0  # a recording not heard from for this long is gone (a tab closed without Stop)
AFTER_STOP_S = 3.0  # chunks the browser sends after Stop are its last words for this long; later ones are ignored

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
    # (heard, dropped) per served chunk: the newest chunks that cover `RECENT_S` of audio
    recent: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, heard_s: float, dropped_s: float) -> None:
        """A chunk served: `heard_s` of audio, after `dropped_s` that never arrived."""
        self.heard_s += heard_s
        self.dropped_s += dropped_s
        self.recent.append((heard_s, dropped_s))
        while sum(map(sum, self.recent)) - sum(self.recent[0]) >= RECENT_S:
            self.recent.popleft()

    def missing_share(self) -> float:
        """The share of the newest `RECENT_S` of audio that never arrived (dropped, not gaps): a
        handler that fell behind at the start and keeps up since stops counting within seconds."""
        dropped = sum(d for _, d in self.recent)
        return dropped / max(sum(map(sum, self.recent)), 1e-9)


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
    refused: str | None = None  # why a chunk was refused: the rest of the recording is not served
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

    def refuse(self, session: str, why: str) -> bool:
        """A chunk of the session's recording was refused for `why`: the recording is served no
        more (one notice, not one per chunk). True the first time."""
        with self._lock:
            recording = self._recording(session, self._clock())
            first, recording.refused = recording.refused is None, recording.refused or why
        if first:
            self.seats.leave((self, session))  # its seat goes to someone who can be heard
        return first

    def admit(self, session: str, address: str | None = None) -> int:
        """A chunk of the session's recording arrived: 0 if it is heard, else its position in line
        (`Seats.admit`). A stopped recording is not seated again: its last chunks are heard for
        `AFTER_STOP_S` (-1 after that: ignore the chunk)."""
        with self._lock:
            recording = self._recording(session, self._clock())
            if recording.refused is not None:
                return -1
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
                recording.hearing = Hearing(began=now - seconds, last=now)
                recording.hearing.add(seconds, 0.0)
                return 0.0
            if now - hearing.began > DEFAULT_MAX_DURATION_S:
                raise AudioInputError(
                    f"A live recording is limited to {DEFAULT_MAX_DURATION_S:.0f} s: press Stop, then Record "
                    "to start a new one."
                )
            hearing.last = now
            accounted = hearing.heard_s + seconds + hearing.dropped_s + hearing.gaps_s + hearing.waited_s
            late = now - hearing.began - accounted
            missing = (late if late > 1e-9 else 0.0) + hearing.waited_s  # (1e-9: sums of floats are not audio)
            hearing.waited_s = 0.0
            if missing >= GAP_S:
                hearing.gaps_s += missing
                hearing.add(seconds, 0.0)
            else:
                hearing.add(seconds, missing)
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
        if recording is None or recording.stopped is not None or recording.refused is not None:
            return None  # (a refused recording's line says why it is not heard)
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
