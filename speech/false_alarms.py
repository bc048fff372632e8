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
    return any(
        p.label == detection.label and p.start_s - HIT_TOLERANCE_S <= detection.time_s <= p.end_s + HIT_TOLERANCE_S
        for p in planted
    )


def false_accepts(
    scan: spotting.Scan, labels: list[str], threshold: float, planted: list[Planted] = ()
) -> list[spotting.Detection]:
    """The detections the live detector makes over `scan` at `threshold` that are no planted keyword."""
    return [d for d in spotting.detect(scan, labels, threshold) if not is_hit(d, list(planted))]


@dataclass
class Curve:
    """False accepts per hour and misses over thresholds (one entry per threshold)."""

    thresholds: list[float]
    seconds: float  # audio the false accepts were counted on
    false_accepts: list[int]
    per_keyword: dict[str, list[int]] = field(default_factory=dict)  # false accepts by the keyword fired
    miss_rate: list[float | None] = field(default_factory=list)  # None where no keyword was planted
    planted: int = 0

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
        for i, rate in enumerate(self.per_hour()):
            if rate <= target_per_hour:
                return {**self.at(self.thresholds[i]), "target_per_hour": target_per_hour}
        return None

    def as_dict(self) -> dict:
        return {
            "thresholds": self.thresholds, "seconds": round(self.seconds, 1), "false_accepts": self.false_accepts,
            "per_hour": [round(r, 3) for r in self.per_hour()], "per_keyword": self.per_keyword,
            "miss_rate": self.miss_rate, "planted": self.planted, "operating_point": self.operating_point(),
        }  # fmt: skip


def curve(
    scan: spotting.Scan, labels: list[str], planted: list[Planted] = (), thresholds: tuple[float, ...] = THRESHOLDS
) -> Curve:
    """False accepts (and, for planted keywords, misses) of the live detector over `scan` at each
    threshold."""
    seconds = (scan.times[-1] + 0.5) if len(scan.times) else 0.0  # the last window's end
    planted = list(planted)
    counts, per_keyword, misses = [], {}, []
    for t in thresholds:
        found = spotting.detect(scan, labels, t)
        wrong = [d for d in found if not is_hit(d, planted)]
        counts.append(len(wrong))
        for d in wrong:
            per_keyword.setdefault(d.label, [0] * len(thresholds))[len(counts) - 1] += 1
        if planted:
            heard = sum(any(is_hit(d, [p]) for d in found) for p in planted)
            misses.append(round(1 - heard / len(planted), 4))
    return Curve(list(thresholds), float(seconds), counts, per_keyword, misses, len(planted))


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
