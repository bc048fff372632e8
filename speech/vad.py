"""Voice-activity detection for live audio: Silero VAD's own ONNX model (the `silero-vad` wheel
ships it, so it runs offline) through ONNX Runtime, and a gate that passes a stream's speech on
and tells when an utterance has ended.

The model scores each 32 ms frame (512 samples at 16 kHz, with the 64 samples before it as
context) with the probability that it holds speech, carrying a recurrent state from frame to
frame. The gate turns that into utterances with hysteresis, as Silero's own `VADIterator` does:
speech starts at a frame scoring `threshold` or more, and ends once `end_silence_s` of frames
have scored below `threshold - 0.15`. What the gate passes on starts `pre_roll_s` before the first
speech frame (a word's first consonant scores low) and runs through the silence that ended it.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16_000
FRAME = 512  # samples the 16 kHz model scores at a time
CONTEXT = 64  # samples of the frame before, fed with each frame
THRESHOLD = 0.5
END_SILENCE_S = 0.5  # silence that ends an utterance: short pauses inside a sentence do not
PRE_ROLL_S = 0.3  # audio before the first speech frame, passed on with it


def model_path() -> Path:
    """The 16 kHz ONNX model inside the installed `silero-vad` wheel (found without importing the
    package, whose own helpers import torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("voice-activity detection needs the silero-vad package (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> Any:
    """One ONNX Runtime session for every stream (each keeps its own recurrent state); one thread
    each run: a frame is 0.1 ms of work, and the speech models need the cores."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])


def session() -> Any:
    with _SESSION_LOCK:  # (functools.cache may build it twice under a race: harmless but wasted)
        return _session()


@dataclass
class Scorer:
    """One stream's frame-by-frame speech probabilities: the model's recurrent state, the last
    frame's context, and audio not yet a whole frame."""

    state: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT, np.float32))
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The whole frames that `samples` completes (n x FRAME) and each one's probability."""
        audio = np.concatenate([self.pending, np.asarray(samples, np.float32)])
        whole = len(audio) // FRAME * FRAME
        frames, self.pending = audio[:whole].reshape(-1, FRAME), audio[whole:]
        probs = np.zeros(len(frames), np.float32)
        run, rate = session().run, np.array(RATE, dtype=np.int64)
        for i, frame in enumerate(frames):
            x = np.concatenate([self.context, frame])[None, :]
            out, self.state = run(None, {"input": x, "state": self.state, "sr": rate})
            probs[i] = float(out[0, 0])
            self.context = frame[-CONTEXT:]
        return frames, probs


@dataclass(frozen=True)
class Piece:
    """What the gate makes of a stretch of audio: speech audio to pass on (`audio`), or the end of
    an utterance (`end`). Positions are samples from the stream's start."""

    audio: np.ndarray | None = None
    start: int = 0  # where `audio` begins
    onset: int | None = None  # an utterance's first speech frame begins here (with its first audio)
    end: int | None = None  # an utterance ended: its last speech frame ended here


@dataclass
class VoiceGate:
    """A stream's voice gate (module docstring): `push` 16 kHz audio in, `Piece`s out."""

    threshold: float = THRESHOLD
    end_silence_s: float = END_SILENCE_S
    pre_roll_s: float = PRE_ROLL_S
    scorer: Scorer = field(default_factory=Scorer)
    speaking: bool = False
    position: int = 0  # samples scored so far
    last_speech: int = 0  # end of the last frame scoring above the lower threshold
    held: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # recent silence: the pre-roll
    scored_s: float = 0.0  # audio scored...
    speech_s: float = 0.0  # ...and how much of it passed on

    def push(self, samples: np.ndarray) -> list[Piece]:
        frames, probs = self.scorer.push(samples)
        pieces: list[Piece] = []
        run: list[np.ndarray] = []  # speech frames passed on, contiguous
        run_start = self.position
        low = self.threshold - 0.15
        keep = int(self.pre_roll_s * RATE)
        for frame, p in zip(frames, probs, strict=True):
            start, self.position = self.position, self.position + FRAME
            if not self.speaking:
                if p < self.threshold:
                    self.held = np.concatenate([self.held, frame])[-keep:] if keep else self.held[:0]
                    continue
                self.speaking, self.last_speech = True, self.position
                onset_audio = np.concatenate([self.held, frame])
                pieces.append(Piece(onset_audio, start - len(self.held), onset=start))
                self.held = self.held[:0]
                run, run_start = [], self.position
                continue
            run.append(frame)
            if p >= low:
                self.last_speech = self.position
            elif self.position - self.last_speech >= self.end_silence_s * RATE:
                pieces.append(Piece(np.concatenate(run), run_start))
                pieces.append(Piece(end=self.last_speech))
                self.speaking, run = False, []
        if run:
            pieces.append(Piece(np.concatenate(run), run_start))
        self.scored_s += len(frames) * FRAME / RATE
        self.speech_s += sum(len(p.audio) for p in pieces if p.audio is not None) / RATE
        return pieces

    def flush(self) -> list[Piece]:
        """The stream stopped: an utterance under way ends where its speech last was."""
        if not self.speaking:
            return []
        self.speaking = False
        return [Piece(end=self.last_speech)]


def speech_spans(samples: np.ndarray, **gate: Any) -> list[tuple[float, float]]:
    """The utterances of 16 kHz `samples`, as (start, end) in seconds of speech frames (the first
    speech frame's start, the last one's end): what the gate finds in a whole recording."""
    g = VoiceGate(**gate)
    spans, onset = [], None
    for piece in [*g.push(samples), *g.flush()]:
        if piece.onset is not None:
            onset = piece.onset
        if piece.end is not None and onset is not None:
            spans.append((onset / RATE, piece.end / RATE))
            onset = None
    return spans
