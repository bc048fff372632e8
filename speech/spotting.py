"""Keyword spotting over time: 1 s windows sliding every 250 ms, offline over a clip and live over
a microphone stream, with a debounced detection log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from core.inference import model_work, to_model
from speech import keywords, vad
from speech.audio import TARGET_RATE, StreamResampler

WINDOW = TARGET_RATE  # 1 s, the length the classifier was trained on
HOP = TARGET_RATE // 4  # 250 ms
REFRACTORY_S = 0.75  # one spoken word spans several windows; it must give one detection
# A word of ~0.5 s lies wholly inside two or three successive windows; a window that holds only
# part of a word can look like another keyword, but rarely twice in a row.
CONFIRM = 2
# A window quieter than -60 dBFS RMS holds no speech; the classifier never saw digital silence
# (its `_silence_` is background noise), so such windows are not scored for detections.
QUIET_RMS = 1e-3


def fit_window(samples: np.ndarray) -> np.ndarray:
    """Exactly one window: centred crop, or zero padding on both sides.

    Args:
        samples: [S] 16 kHz mono float32.

    Returns:
        [WINDOW] samples.
    """
    if len(samples) >= WINDOW:
        start = (len(samples) - WINDOW) // 2
        return samples[start : start + WINDOW]
    pad = WINDOW - len(samples)
    return np.pad(samples, (pad // 2, pad - pad // 2))


# Windows per forward pass. int8 models quantise activations per batch, so a window's scores
# depend (slightly) on the windows batched with it: a long scan in parts keeps these batches.
BATCH = 64


def score_windows(model, extractor, windows: list[np.ndarray], batch_size: int = BATCH) -> np.ndarray:
    """Softmax probabilities, one row per 1 s window, in `model.config.id2label` order; the
    caller holds inference mode (`window_probs` in the app, a training run's own evaluation).

    Args:
        model: an audio classification model.
        extractor: its feature extractor.
        windows: arrays of exactly WINDOW samples each.
        batch_size: windows per forward pass.

    Returns:
        [len(windows), num_labels] float32.
    """
    import torch  # not before the app answers (core.inference)

    rows = []
    for b in range(0, len(windows), batch_size):
        inputs = extractor(windows[b : b + batch_size], sampling_rate=TARGET_RATE, return_tensors="pt")
        logits = model(to_model(model, inputs.input_values)).logits
        rows.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(rows)


window_probs = model_work(score_windows)  # the app's: at the model-work priority


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of float samples in dBFS (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def is_quiet(window: np.ndarray) -> bool:
    """Whether a window is too quiet to hold a spoken word (RMS below `QUIET_RMS`)."""
    return float(np.sqrt(np.mean(np.square(window)))) < QUIET_RMS


def speech_frames(samples: np.ndarray, scorer: vad.Scorer | None = None) -> np.ndarray:
    """One flag per `vad.FRAME` samples of 16 kHz audio: whether the voice-activity detector hears
    speech in it (`vad.THRESHOLD`). A `scorer` carries a live stream's state between calls."""
    _, probs = (scorer or vad.Scorer()).push(samples)
    return probs >= vad.THRESHOLD


def voiced(starts: np.ndarray, speech: np.ndarray, first_frame: int = 0) -> np.ndarray:
    """Whether each window (by its start sample) holds a speech frame; `speech[i]` is frame
    `first_frame + i`'s flag (frames outside it count as silence)."""
    starts = np.asarray(starts, int)
    counts = np.concatenate([[0], np.cumsum(speech, dtype=int)])
    first = np.clip(starts // vad.FRAME - first_frame, 0, len(speech))
    last = np.clip((starts + WINDOW - 1) // vad.FRAME + 1 - first_frame, 0, len(speech))
    return counts[last] - counts[first] > 0


class Scan(NamedTuple):
    """`sliding_probs`' output: window centres (s), probabilities and quiet flags."""

    times: np.ndarray
    probs: np.ndarray
    quiet: np.ndarray


def sliding_windows(samples: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """A 1 s window every `HOP` samples over a clip (the end of the clip gets one too); a clip of
    1 s or less is one window.

    Returns:
        windows: views of exactly WINDOW samples.
        times: [W] window centres in seconds.
    """
    if len(samples) <= WINDOW:
        return [fit_window(samples)], np.array([len(samples) / 2 / TARGET_RATE])
    starts = list(range(0, len(samples) - WINDOW + 1, HOP))
    if starts[-1] + WINDOW < len(samples):
        starts.append(len(samples) - WINDOW)
    return [samples[s : s + WINDOW] for s in starts], (np.array(starts) + WINDOW / 2) / TARGET_RATE


def sliding_probs(model, extractor, samples: np.ndarray, score=None, batch_size: int = BATCH) -> Scan:
    """Every window of `sliding_windows` scored.

    Args:
        model: an audio classification model.
        extractor: its feature extractor.
        samples: [S] 16 kHz mono float32.
        score: what scores the windows: `window_probs` (the app's), or `score_windows` for a caller
            holding inference mode itself (a training run's evaluation).
        batch_size: windows per forward pass.

    Returns:
        times: [W] window centres in seconds.
        probs: [W, num_labels] probabilities.
        quiet: [W] bool, True for windows too quiet to hold a word.
    """
    windows, times = sliding_windows(samples)
    quiet = np.array([is_quiet(w) for w in windows])
    return Scan(times, (score or window_probs)(model, extractor, windows, batch_size), quiet)


def best_window(probs: np.ndarray, labels: list[str], quiet: np.ndarray | None = None) -> np.ndarray:
    """The window to summarise a clip by: the audible one most confident about a real keyword.

    Args:
        probs: [W, num_labels] probabilities per window.
        labels: the label names in column order.
        quiet: [W] bool quiet flags; None when every window is audible.

    Returns:
        [num_labels] the chosen window's probabilities.
    """
    keyword_ids = [i for i, label in enumerate(labels) if label in keywords.KEYWORDS]
    audible = np.flatnonzero(~quiet) if quiet is not None and not quiet.all() else np.arange(len(probs))
    if not keyword_ids:
        return probs[audible].mean(axis=0)
    return probs[audible[int(probs[audible][:, keyword_ids].max(axis=1).argmax())]]


# One threshold for every keyword, or one per keyword (the evaluation's per-keyword operating
# point); a keyword missing from the mapping keeps its "*" entry.
Threshold = float | Mapping[str, float]


def threshold_of(threshold: Threshold, label: str) -> float:
    if not isinstance(threshold, Mapping):
        return float(threshold)
    return float(threshold[label] if label in threshold else threshold["*"])


@dataclass
class Detection:
    time_s: float  # centre of the window that fired, from the start of the stream
    label: str
    probability: float


@dataclass
class Debouncer:
    """Turns successive windows' probabilities into detections, the same way live and offline:
    a keyword fires when `CONFIRM` successive windows put it above the threshold; it cannot fire
    again until its probability has fallen below the threshold and `REFRACTORY_S` has passed. The
    time logged is the centre of the first of those windows."""

    armed: dict[str, bool] = field(default_factory=dict)
    streak: dict[str, list[float]] = field(default_factory=dict)  # centres of successive hits
    last_fired: dict[str, float] = field(default_factory=dict)

    def decide(self, centre: float, probs: np.ndarray, labels: list[str], threshold: Threshold) -> list[Detection]:
        """The detections one window (centred at `centre` seconds) completes."""
        fired = []
        for i, label in enumerate(labels):
            if label not in keywords.KEYWORDS:
                continue
            if probs[i] < threshold_of(threshold, label):
                self.armed[label] = True
                self.streak[label] = []
                continue
            streak = self.streak.setdefault(label, [])
            streak.append(centre)
            if (
                len(streak) >= CONFIRM
                and self.armed.get(label, True)
                and streak[0] - self.last_fired.get(label, -1e9) >= REFRACTORY_S
            ):
                fired.append(Detection(round(streak[0], 2), label, float(probs[i])))
                self.armed[label] = False
                self.last_fired[label] = streak[0]
        return fired


def detect(scan: Scan, labels: list[str], threshold: Threshold) -> list[Detection]:
    """The detections a live listener would log over a whole clip (`sliding_probs`' scan);
    quiet windows score nothing, as live.

    The same decisions as a `Debouncer` fed window by window (a test holds the two equal), made
    per keyword over runs of windows above the threshold, so a curve over many thresholds of an
    hour's scan takes seconds: a run fires once, at its first window, when it is `CONFIRM` windows
    long and starts `REFRACTORY_S` after the keyword last fired."""
    levels = np.array([threshold_of(threshold, label) for label in labels], np.float32)
    above = (scan.probs >= levels) & ~np.asarray(scan.quiet, bool)[:, None]
    fired: list[tuple[int, int, Detection]] = []  # (confirming window, label column, detection)
    for i, label in enumerate(labels):
        if label not in keywords.KEYWORDS or not above[:, i].any():
            continue
        edges = np.diff(np.concatenate([[0], above[:, i].astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        last = -1e9
        for start in starts[ends - starts >= CONFIRM]:
            centre = float(scan.times[start])
            if centre - last >= REFRACTORY_S:
                confirm = start + CONFIRM - 1
                fired.append((confirm, i, Detection(round(centre, 2), label, float(scan.probs[confirm, i]))))
                last = centre
    return [d for _, _, d in sorted(fired, key=lambda f: f[:2])]


@dataclass
class Listener:
    """Live state: the newest audio, the next window to score, and the detection log (debounced
    by a `Debouncer`). With a voice gate (`gate`), a window the voice-activity detector hears no
    speech in is not scored: it counts as quiet, and costs nothing."""

    resampler: StreamResampler = field(default_factory=StreamResampler)
    buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # final 16 kHz audio
    buffer_start: int = 0  # stream sample index of buffer[0]
    next_window: int = 0  # stream sample index where the next window starts
    debouncer: Debouncer = field(default_factory=Debouncer)
    detections: list[Detection] = field(default_factory=list)
    latest: np.ndarray | None = None  # probabilities of the newest window scored
    closest: tuple[str, float] | None = None  # the most probable keyword of any audible window so far
    missed_s: float = 0.0  # audio that never arrived (`skip`)
    gate: vad.Scorer | None = None  # the voice gate's scorer; None: every window is scored
    speech: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # frame flags from `first_frame` on
    first_frame: int = 0
    frame_origin: int = 0  # stream sample where the gate's frame 0 starts (a skip starts it afresh)
    gated_windows: int = 0  # windows the gate kept from the model

    def push(self, model, extractor, rate: int, chunk: np.ndarray, threshold: Threshold) -> list[Detection]:
        """Add a microphone chunk; score every window it completes; return new detections."""
        final, _ = self.resampler.push(rate, chunk)
        self.buffer = np.concatenate([self.buffer, final])
        heard_until = self.buffer_start + len(self.buffer)
        if self.gate is not None:  # a window waits for its last frame's verdict (at most 32 ms)
            self.speech = np.concatenate([self.speech, speech_frames(final, self.gate)])
            heard_until = self.frame_origin + (self.first_frame + len(self.speech)) * vad.FRAME
        starts = []
        while self.next_window + WINDOW <= heard_until:
            starts.append(self.next_window)
            self.next_window += HOP
        new = []
        if starts:
            labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
            spoken = np.ones(len(starts), bool)
            if self.gate is not None:
                spoken = voiced(np.array(starts) - self.frame_origin, self.speech, self.first_frame)
                self.gated_windows += int((~spoken).sum())
            windows = [self.buffer[s - self.buffer_start : s - self.buffer_start + WINDOW] for s in starts]
            scored = [w for w, keep in zip(windows, spoken, strict=True) if keep]
            probs = iter(window_probs(model, extractor, scored) if scored else [])
            for start, window, keep in zip(starts, windows, spoken, strict=True):
                row = next(probs) if keep else None
                shown = np.zeros(len(labels), np.float32) if row is None or is_quiet(window) else row
                new += self.debouncer.decide((start + WINDOW / 2) / TARGET_RATE, shown, labels, threshold)
                if row is not None:
                    self.latest = row
                self._note_closest(shown, labels)
        keep_from = self.next_window - self.buffer_start  # older audio is never scored again
        self.buffer = self.buffer[keep_from:]
        self.buffer_start += keep_from
        if self.gate is not None:
            drop = max(0, (self.buffer_start - self.frame_origin) // vad.FRAME - self.first_frame)
            self.speech, self.first_frame = self.speech[drop:], self.first_frame + drop
        self.detections += new
        return new

    def skip(self, seconds: float) -> None:
        """`seconds` of audio never arrived (a busy server drops a live stream's chunks): the
        stream's clock moves on by them, so detection times stay times since Record, and no
        window joins the audio before the gap to the audio after it (nor do two windows on
        either side count as successive)."""
        end = self.buffer_start + len(self.buffer) + round(seconds * TARGET_RATE)
        self.resampler = StreamResampler()
        self.buffer = np.zeros(0, np.float32)
        self.buffer_start = end
        self.next_window = end
        self.debouncer.streak.clear()
        self.missed_s += seconds
        if self.gate is not None:  # the gate starts afresh on frames aligned to the new audio
            self.gate = vad.Scorer()
            self.speech, self.first_frame, self.frame_origin = np.zeros(0, bool), 0, end

    def _note_closest(self, probs: np.ndarray, labels: list[str]) -> None:
        """Remember the strongest keyword so far, so a visitor whose words never pass the
        threshold can be told how close they came."""
        for i, label in enumerate(labels):
            if label in keywords.KEYWORDS and probs[i] > (self.closest[1] if self.closest else 0.0):
                self.closest = (label, float(probs[i]))
