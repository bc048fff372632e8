"""A live recording transcribed utterance by utterance: the voice gate (`speech.vad`) passes only
speech on to the CTC stream (`speech.long_audio.stream_*`), so silence costs no model time, and an
utterance's text turns final when its speech ends, without Stop. With readouts of how live it is.

Times: the browser sends audio as it is recorded, so the sample that ends a chunk was spoken when
the chunk arrived; a sample `n` samples earlier was spoken `n / 16 kHz` seconds before that. The
readouts measure from there to when the text was ready:
- *first word*: from an utterance's first speech frame to the first update showing a word of it;
- *final*: from its last speech frame to its final text (it includes the silence that ends an
  utterance, `vad.END_SILENCE_S`);
- *real-time factor*: model work (gate included) over the audio received;
- *rewritten*: the share of word places shown while speaking whose word later changed (not
  counting a word that grows as its letters arrive).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from speech import long_audio, vad
from speech.audio import TARGET_RATE, StreamResampler

Clock = Callable[[], float]


@dataclass
class Readouts:
    """A recording's readouts (module docstring), as it goes."""

    first_word_s: list[float] = field(default_factory=list)  # one per utterance that showed a word
    final_s: list[float] = field(default_factory=list)  # one per utterance made final
    model_s: float = 0.0  # seconds of model work, gate included
    heard_s: float = 0.0  # seconds of audio received
    speech_s: float = 0.0  # of which the gate passed on
    places: int = 0  # word places ever shown
    changed: set[int] = field(default_factory=set)  # those whose word changed afterwards
    shown: list[str] = field(default_factory=list)  # the words shown last

    def saw(self, text: str) -> None:
        """The text shown now: count the word places whose word changed since the last update (a
        word growing as its letters arrive, "th" -> "the", is not a change)."""
        words = text.split()
        for i, before in enumerate(self.shown):
            if i >= len(words) or not words[i].startswith(before):
                self.changed.add(i)
        self.places = max(self.places, len(words))
        self.shown = words

    def summary(self) -> dict[str, Any]:
        """The readouts in numbers (JSON-ready; None where there is nothing to say yet)."""
        return {
            "first_word_s": _median(self.first_word_s),
            "final_s": _median(self.final_s),
            "rtf": round(self.model_s / self.heard_s, 3) if self.heard_s else None,
            "rewritten": round(len(self.changed) / self.places, 3) if self.places else None,
            "utterances": len(self.final_s),
            "heard_s": round(self.heard_s, 2),
            "speech_s": round(self.speech_s, 2),
        }

    def line(self) -> str:
        """The readouts in a short line under the transcript."""
        s = self.summary()
        parts = []
        if s["first_word_s"] is not None:
            parts.append(f"first word {s['first_word_s']:.1f} s after you start")
        if s["final_s"] is not None:
            parts.append(f"final {s['final_s']:.1f} s after you stop")
        if s["rtf"] is not None:
            parts.append(f"model time {s['rtf']:.2f}× the audio")
        if s["rewritten"] is not None:
            parts.append(f"{s['rewritten']:.0%} of words rewritten")
        return " · ".join(parts)


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


@dataclass
class LiveTranscript:
    """One recording: the gate, the current utterance's CTC stream, the final text before it."""

    gate: vad.VoiceGate = field(default_factory=vad.VoiceGate)
    resampler: StreamResampler = field(default_factory=StreamResampler)
    stream: long_audio.StreamState | None = None  # the utterance under way
    done: str = ""  # the utterances made final
    received: int = 0  # 16 kHz samples received (final ones)
    onset_at: float | None = None  # when the current utterance's speech began (clock time)
    waiting_word: bool = False  # the current utterance has shown no word yet
    readouts: Readouts = field(default_factory=Readouts)
    finished: bool = False  # the recording stopped (`finish`)
    ended: int = 0  # utterances ended (a stop-when-quiet page stops once one has)
    missed_s: float = 0.0  # audio that never arrived (`gap`)

    @property
    def text(self) -> str:
        current = self.stream.text if self.stream is not None else ""
        return " ".join(t for t in (self.done, current) if t)

    @property
    def seconds(self) -> float:
        return self.received / TARGET_RATE

    @property
    def speaking(self) -> bool:
        return self.gate.speaking


def step(
    model: Any, processor: Any, live: LiveTranscript, rate: int, chunk: np.ndarray, clock: Clock = time.monotonic
) -> LiveTranscript:
    """Feed one microphone chunk: the gate's speech to the utterance's stream, an utterance made
    final where its speech ended; the readouts updated."""
    arrived = clock()
    final, _ = live.resampler.push(rate, chunk)  # (the provisional tail waits for the next chunk)
    live.received += len(final)
    live.readouts.heard_s += len(final) / TARGET_RATE
    live.finished = False
    work = time.perf_counter()
    for piece in live.gate.push(final):
        if piece.onset is not None:
            live.stream = long_audio.StreamState()
            live.onset_at = arrived - (live.received - piece.onset) / TARGET_RATE
            live.waiting_word = True
        if piece.audio is not None and live.stream is not None:
            live.stream = long_audio.stream_step(model, processor, live.stream, TARGET_RATE, piece.audio)
        if piece.end is not None:
            _end_utterance(model, processor, live, clock, arrived - (live.received - piece.end) / TARGET_RATE)
    live.readouts.model_s += time.perf_counter() - work
    live.readouts.speech_s = live.gate.speech_s
    if live.waiting_word and live.stream is not None and live.stream.text.strip() and live.onset_at is not None:
        live.readouts.first_word_s.append(clock() - live.onset_at)
        live.waiting_word = False
    live.readouts.saw(live.text)
    return live


def _end_utterance(model: Any, processor: Any, live: LiveTranscript, clock: Clock, speech_ended: float | None) -> None:
    if live.stream is None:
        return
    stream = long_audio.stream_finish(model, processor, live.stream)
    live.done = " ".join(t for t in (live.done, stream.text) if t)
    live.stream, live.waiting_word = None, False
    live.ended += 1
    if speech_ended is not None and stream.text:
        live.readouts.final_s.append(clock() - speech_ended)


def finish(model: Any, processor: Any, live: LiveTranscript, clock: Clock = time.monotonic) -> LiveTranscript:
    """The recording stopped: the utterance under way ends and its text turns final."""
    work = time.perf_counter()
    for piece in live.gate.flush():
        if piece.end is not None:
            _end_utterance(model, processor, live, clock, None)
    live.readouts.model_s += time.perf_counter() - work
    live.finished = True
    live.readouts.saw(live.text)
    return live


def gap(model: Any, processor: Any, live: LiveTranscript, missed_s: float) -> LiveTranscript:
    """Audio never arrived (a busy server dropped chunks): the utterance under way ends before the
    gap, and the gate starts afresh after it (no utterance joins audio from both sides)."""
    if live.stream is not None:
        _end_utterance(model, processor, live, time.monotonic, None)
        live.done += " …"
    live.gate = vad.VoiceGate()
    live.received += int(missed_s * TARGET_RATE)
    live.missed_s += missed_s
    return live
