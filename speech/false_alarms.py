"""Keyword spotting judged as a deployed spotter is: how often the live detector fires when nobody
said the word (false accepts per hour of audio), against how often it misses the word when it is
said (false reject rate), over the detection threshold.

Everything here runs the live tab's own detector (`speech.spotting`: 1 s windows every 250 ms,
two successive windows above the threshold, a refractory time) on a scan of the audio made once;
each threshold only replays the debouncer over the stored probabilities, so a curve of 36
thresholds costs one pass of the model.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

import numpy as np

from speech import spotting
from speech.audio import TARGET_RATE

THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.30, 1.0, 0.02))
TARGET_PER_HOUR = 0.5  # openWakeWord's stated target for false accepts
HIT_TOLERANCE_S = 1.0  # a detection this close to a planted keyword of the same label is that keyword


@dataclass(frozen=True)
class Planted:
    """A keyword known to be said in a stream: its label and where (seconds from the start)."""

    label: str
    start_s: float
    end_s: float


def is_hit(detection: spotting.Detection, planted: list[Planted]) -> bool:
    """Whether a detection is one of the planted keywords (same label, its window within
    `HIT_TOLERANCE_S` of the word)."""
    return bool(match([detection], planted)[0][0])


def match(found: list[spotting.Detection], planted: list[Planted]) -> tuple[np.ndarray, np.ndarray]:
    """Which detections are planted keywords (`is_hit`) and which planted keywords were heard, in
    one sorted pass per keyword (an hour's stream plants thousands).

    Returns:
        hit: [len(found)] bool.
        heard: [len(planted)] bool.
    """
    hit, heard = np.zeros(len(found), bool), np.zeros(len(planted), bool)
    for label in {p.label for p in planted}:
        mine = np.array([i for i, d in enumerate(found) if d.label == label], int)
        if not len(mine):
            continue
        times = np.array([found[i].time_s for i in mine])
        order = np.argsort(times, kind="stable")
        mine, times = mine[order], times[order]
        which = [j for j, p in enumerate(planted) if p.label == label]
        first = np.searchsorted(times, [planted[j].start_s - HIT_TOLERANCE_S for j in which], "left")
        after = np.searchsorted(times, [planted[j].end_s + HIT_TOLERANCE_S for j in which], "right")
        heard[which] = after > first
        cover = np.zeros(len(times) + 1, int)  # detections inside some planted word's span
        np.add.at(cover, first, 1)
        np.add.at(cover, after, -1)
        hit[mine] = np.cumsum(cover)[:-1] > 0
    return hit, heard


def false_accepts(
    scan: spotting.Scan, labels: list[str], threshold: float, planted: list[Planted] = ()
) -> list[spotting.Detection]:
    """The detections the live detector makes over `scan` at `threshold` that are no planted keyword."""
    found = spotting.detect(scan, labels, threshold)
    hit, _ = match(found, list(planted))
    return [d for d, h in zip(found, hit, strict=True) if not h]


@dataclass(frozen=True)
class Alarm:
    """A false activation as the curve saw it: where, which keyword, its probability at the lowest
    threshold, and `up_to`, the highest threshold at which it still fires."""

    time_s: float
    label: str
    probability: float
    up_to: float

    def as_dict(self) -> dict:
        return {"time_s": self.time_s, "label": self.label, "probability": round(self.probability, 4),
                "up_to": self.up_to}  # fmt: skip


@dataclass
class Curve:
    """False accepts per hour and misses over thresholds (one entry per threshold)."""

    thresholds: list[float]
    seconds: float  # audio the false accepts were counted on
    false_accepts: list[int]
    per_keyword: dict[str, list[int]] = field(default_factory=dict)  # false accepts by the keyword fired
    miss_rate: list[float | None] = field(default_factory=list)  # None where no keyword was planted
    planted: int = 0
    misses_per_keyword: dict[str, list[float]] = field(default_factory=dict)  # by the keyword planted
    alarms: list[Alarm] = field(default_factory=list)  # the false accepts at the lowest threshold

    def per_hour(self) -> list[float]:
        return [n * 3600 / self.seconds if self.seconds else 0.0 for n in self.false_accepts]

    def at(self, threshold: float) -> dict[str, float | None]:
        """The curve's point nearest `threshold`."""
        i = int(np.argmin(np.abs(np.array(self.thresholds) - threshold)))
        miss = self.miss_rate[i] if self.miss_rate else None
        return {"threshold": self.thresholds[i], "false_accepts": self.false_accepts[i],
                "per_hour": self.per_hour()[i], "miss_rate": miss}  # fmt: skip

    def operating_point(self, target_per_hour: float = TARGET_PER_HOUR) -> dict[str, float | None] | None:
        """The lowest threshold whose false accepts per hour meet the target (the fewest misses that
        do), or None where none does."""
        i = lowest_meeting(self.per_hour(), target_per_hour)
        return None if i is None else {**self.at(self.thresholds[i]), "target_per_hour": target_per_hour}

    def as_dict(self) -> dict:
        return {
            "thresholds": self.thresholds, "seconds": round(self.seconds, 1), "false_accepts": self.false_accepts,
            "per_hour": [round(r, 3) for r in self.per_hour()], "per_keyword": self.per_keyword,
            "miss_rate": self.miss_rate, "planted": self.planted, "misses_per_keyword": self.misses_per_keyword,
            "operating_point": self.operating_point(),
        }  # fmt: skip


def lowest_meeting(per_hour: list[float], target_per_hour: float) -> int | None:
    """The index of the lowest threshold from which on false accepts per hour stay within the
    target (a curve measured on little audio can dip and rise again), or None."""
    for i in range(len(per_hour)):
        if all(rate <= target_per_hour for rate in per_hour[i:]):
            return i
    return None


def curve(
    scan: spotting.Scan, labels: list[str], planted: list[Planted] = (), thresholds: tuple[float, ...] = THRESHOLDS
) -> Curve:
    """False accepts (and, for planted keywords, misses) of the live detector over `scan` at each
    threshold, and the false activations at the lowest one."""
    seconds = (scan.times[-1] + 0.5) if len(scan.times) else 0.0  # the last window's end
    planted = list(planted)
    planted_labels = sorted({p.label for p in planted})
    counts, per_keyword, misses = [], {}, []
    misses_per_keyword: dict[str, list[float]] = {label: [] for label in planted_labels}
    said = {label: np.array([p.label == label for p in planted]) for label in planted_labels}
    alarms: list[Alarm] = []
    for n, t in enumerate(thresholds):
        found = spotting.detect(scan, labels, t)
        hit, heard = match(found, planted)
        wrong = [d for d, h in zip(found, hit, strict=True) if not h]
        counts.append(len(wrong))
        for d in wrong:
            per_keyword.setdefault(d.label, [0] * len(thresholds))[n] += 1
        alarms = _still_firing(alarms, wrong, t) if n else [Alarm(d.time_s, d.label, d.probability, t) for d in wrong]
        if planted:
            misses.append(round(float(1 - heard.mean()), 4))
            for label, mask in said.items():
                misses_per_keyword[label].append(round(float(1 - heard[mask].mean()), 4))
    return Curve(
        list(thresholds), float(seconds), counts, per_keyword, misses, len(planted), misses_per_keyword, alarms
    )


def _still_firing(alarms: list[Alarm], found: list[spotting.Detection], threshold: float) -> list[Alarm]:
    """`alarms` with `up_to` raised to `threshold` for those a detection at it repeats (same
    keyword, within the refractory time: a higher threshold can confirm a window later)."""
    times: dict[str, np.ndarray] = {}
    for label in {d.label for d in found}:
        times[label] = np.sort([d.time_s for d in found if d.label == label])
    out = []
    for a in alarms:
        near = times.get(a.label, np.zeros(0))
        i = np.searchsorted(near, a.time_s)
        again = any(abs(near[j] - a.time_s) < spotting.REFRACTORY_S for j in (i - 1, i) if 0 <= j < len(near))
        out.append(Alarm(a.time_s, a.label, a.probability, threshold) if again else a)
    return out


def gated(scan: spotting.Scan, speech: np.ndarray) -> spotting.Scan:
    """`scan` as the live listener with its voice gate sees it: every window without a speech
    frame (`spotting.speech_frames` of the same audio) scored as quiet."""
    starts = np.round(np.asarray(scan.times) * TARGET_RATE - spotting.WINDOW / 2).astype(int).clip(0)
    return spotting.Scan(scan.times, scan.probs, np.asarray(scan.quiet, bool) | ~spotting.voiced(starts, speech))


def clips_zip(samples: np.ndarray, detections: list[spotting.Detection]) -> bytes:
    """The false activations' audio as 1 s WAV clips in a zip, named by the keyword fired and its
    time ("yes/00012.50s_p0.93.wav"): negatives ready for a training set."""
    import soundfile as sf

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for d in detections:
            clip = window_at(samples, d.time_s)
            wav = io.BytesIO()
            sf.write(wav, clip, TARGET_RATE, format="WAV", subtype="PCM_16")
            archive.writestr(f"{d.label}/{d.time_s:08.2f}s_p{d.probability:.2f}.wav", wav.getvalue())
    return buffer.getvalue()


def window_at(samples: np.ndarray, centre_s: float) -> np.ndarray:
    """The 1 s window the detector scored, centred at `centre_s`."""
    start = max(0, min(len(samples) - spotting.WINDOW, int(round(centre_s * TARGET_RATE)) - spotting.WINDOW // 2))
    return spotting.fit_window(samples[start : start + spotting.WINDOW])
