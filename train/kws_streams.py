"""The keyword spotter judged as it is deployed (step 7 of train.kws): the live tab's detector
(`speech.spotting`) run over long streams made of the evaluated split's clips.

- False accepts per hour on a stream with no keyword in it: the background-noise recordings as
  recorded, the split's own `_silence_` clips, then its words outside the ten keywords laid one
  after another with pauses over that noise.
- Misses (false reject rate) per keyword on the split's keyword clips laid the same way over the
  noise, once per stated SNR.
- Both over thresholds (the curve), and the operating point: the lowest threshold whose false
  accepts per hour meet the target, with its miss rate at each SNR.

The noise recordings are the training split's (Speech Commands has no others); the model heard
1 s windows of them as `_silence_` while training, which metrics.json records.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from speech import false_alarms as fa
from speech import keywords, spotting
from speech.audio import TARGET_RATE
from speech.streams import lay_out
from train.speech_commands import Clip, clip_audio

logger = logging.getLogger(__name__)


@dataclass
class StreamArguments:
    stream_eval: bool = field(
        default=True,
        metadata={"help": "Judge the final model as deployed: false accepts per hour and misses on long streams."},
    )
    stream_snr_db: list[float] = field(
        default_factory=lambda: [20.0, 10.0, 5.0],
        metadata={"help": "SNRs (dB) the keyword clips are laid over the background noise at, one stream each."},
    )
    stream_keyword_clips: int | None = field(
        default=100,
        metadata={"help": "Keyword clips per keyword in each SNR's stream (a seeded sample; null: all)."},
    )
    stream_batch_size: int = field(default=128, metadata={"help": "1 s windows per forward pass."})
    stream_target_per_hour: float = field(
        default=fa.TARGET_PER_HOUR, metadata={"help": "False accepts per hour the operating point must meet."}
    )
    false_alarm_clips: int = field(
        default=40, metadata={"help": "False activations stored with the per-example results as 1 s clips."}
    )


class NoNoise(ValueError):
    """The data holds no background noise to lay the words over (neither `_background_noise_`
    recordings nor `_silence_` clips): a miniature or filtered copy of the dataset."""


@dataclass
class Stream:
    samples: np.ndarray
    planted: list[fa.Planted]
    about: dict


def build_streams(
    clips: list[Clip], noise: list[Clip], load: Callable[[Clip], np.ndarray], args: StreamArguments, seed: int
) -> tuple[Stream, list[tuple[float, Stream]]]:
    """The keyword-free stream and one keyword stream per SNR from an evaluated split's `clips`
    and the background-noise recordings `noise`.

    Raises:
        NoNoise: there is no noise to lay the words over.
    """
    rng = np.random.default_rng(seed)
    silence, unknown = keywords.LABEL2ID[keywords.SILENCE], keywords.LABEL2ID[keywords.UNKNOWN]
    recordings = [load(c) for c in noise]
    silences = [load(c) for c in clips if c.label == silence]
    if not recordings and not silences:
        raise NoNoise("the data has no background noise (`_background_noise_` recordings or `_silence_` clips)")
    bed = recordings or silences
    snr = max(args.stream_snr_db)
    others = [(None, load(c)) for c in clips if c.label == unknown]
    said, _ = lay_out(others, bed, snr, rng) if others else (np.zeros(0, np.float32), [])
    parts = [*recordings, *silences, said]
    negative = Stream(
        np.concatenate(parts).astype(np.float32),
        [],
        {
            "noise_recordings": len(recordings),
            "noise_s": round(sum(map(len, recordings)) / TARGET_RATE, 1),
            "silence_clips": len(silences),
            "other_words": len(others),
            "other_words_snr_db": snr,
            "other_words_s": round(len(said) / TARGET_RATE, 1),
        },
    )
    by_keyword: dict[int, list[Clip]] = {}
    for c in clips:
        if keywords.ID2LABEL[c.label] in keywords.KEYWORDS:
            by_keyword.setdefault(c.label, []).append(c)
    chosen = []
    for label in sorted(by_keyword):
        group = by_keyword[label]
        if args.stream_keyword_clips is not None and len(group) > args.stream_keyword_clips:
            group = [group[i] for i in sorted(rng.choice(len(group), args.stream_keyword_clips, replace=False))]
        chosen += [(keywords.ID2LABEL[label], load(c)) for c in group]
    positive = []
    if chosen:
        for snr_db in args.stream_snr_db:
            order = rng.permutation(len(chosen))
            samples, planted = lay_out([chosen[i] for i in order], bed, snr_db, rng)
            positive.append((snr_db, Stream(samples, planted, {"snr_db": snr_db, "keyword_clips": len(chosen)})))
    return negative, positive


def judge_as_deployed(
    model, extractor, clips: list[Clip], noise: list[Clip], args: StreamArguments, device, seed: int
) -> dict:
    """Step 7 of train.kws: the streams built from `clips`, scanned by `model` on `device`; the
    result for metrics.json, the keyword-free stream and its false alarms."""
    started = time.perf_counter()
    negative, positive = build_streams(clips, noise, clip_audio, args, seed)
    built_s = time.perf_counter() - started
    model.to(device).eval()
    result, alarms = evaluate(model, extractor, negative, positive, args)
    result["cost"]["build_s"] = round(built_s, 2)
    return {"result": result, "negative": negative, "alarms": alarms}


def scan(model, extractor, samples: np.ndarray, batch_size: int) -> spotting.Scan:
    """`spotting.sliding_probs` on the model's own device, in bfloat16 on a GPU (a stream's
    hour of windows is some 14,400 forward passes of 1 s)."""
    device = next(model.parameters()).device
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return spotting.sliding_probs(model, extractor, samples, spotting.score_windows, batch_size)


def evaluate(
    model, extractor, negative: Stream, positive: list[tuple[float, Stream]], args: StreamArguments
) -> tuple[dict, list[fa.Alarm]]:
    """The curve, the operating point and what it cost (metrics.json's "streaming"), and the false
    activations on the keyword-free stream. The curves are the Live tab's as it listens by default,
    through its voice gate (`spotting.Listener`); "without_gate" holds the same streams ungated."""
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    started, windows, vad_s = time.perf_counter(), 0, 0.0

    def curves(stream: Stream) -> tuple[fa.Curve, fa.Curve]:
        nonlocal windows, vad_s
        scanned = scan(model, extractor, stream.samples, args.stream_batch_size)
        windows += len(scanned.times)
        heard = time.perf_counter()
        speech = spotting.speech_frames(stream.samples)
        vad_s += time.perf_counter() - heard
        return fa.curve(fa.gated(scanned, speech), labels, stream.planted), fa.curve(scanned, labels, stream.planted)

    quiet_curve, quiet_plain = curves(negative)
    spoken, spoken_plain = [], {}
    for snr_db, stream in positive:
        found, plain = curves(stream)
        planted = dict(sorted(Counter(p.label for p in stream.planted).items()))
        spoken.append({**stream.about, "seconds": round(found.seconds, 1), "planted": found.planted,
                       "planted_per_keyword": planted, "miss_rate": found.miss_rate,
                       "misses_per_keyword": found.misses_per_keyword})  # fmt: skip
        spoken_plain[f"{snr_db:g}"] = plain.miss_rate
    audio_s = (len(negative.samples) + sum(len(s.samples) for _, s in positive)) / TARGET_RATE
    wall_s = time.perf_counter() - started
    point = operating_point(quiet_curve, spoken, args.stream_target_per_hour)
    each = per_keyword_point(quiet_curve, spoken, args.stream_target_per_hour, point)
    result = {
        "detector": {
            "window_s": spotting.WINDOW / TARGET_RATE,
            "hop_s": spotting.HOP / TARGET_RATE,
            "confirm_windows": spotting.CONFIRM,
            "refractory_s": spotting.REFRACTORY_S,
            "voice_gate": True,
        },
        "thresholds": quiet_curve.thresholds,
        "keyword_free": {**negative.about, **{k: v for k, v in quiet_curve.as_dict().items() if k in KEYWORD_FREE}},
        "keyword_streams": spoken,
        "operating_point": point,
        "per_keyword_point": each,
        "without_gate": {
            "per_hour": [round(r, 3) for r in quiet_plain.per_hour()],
            "miss_rate": spoken_plain,
            "operating_point": operating_point(
                quiet_plain,
                [{**s, "miss_rate": spoken_plain[f"{s['snr_db']:g}"]} for s in spoken],
                args.stream_target_per_hour,
            ),
        },
        "noise_heard_in_training": negative.about["noise_recordings"] > 0,
        "cost": {
            "audio_s": round(audio_s, 1),
            "windows": windows,
            "wall_s": round(wall_s, 2),
            "vad_s": round(vad_s, 2),
            "device": str(next(model.parameters()).device),
        },
    }
    logger.info(
        "streaming: %.1f min keyword-free, %d keyword streams; operating point %s; %.1f s for %d windows",
        quiet_curve.seconds / 60, len(spoken), point, wall_s, windows,
    )  # fmt: skip
    return result, quiet_curve.alarms


def per_keyword_point(free: fa.Curve, spoken: list[dict], target_per_hour: float, one: dict | None) -> dict | None:
    """A threshold per keyword: for each, the lowest from which its own false accepts per hour stay
    within its share of the target (the target over the ten keywords, so together they meet it).
    Kept only where it misses fewer keywords than the one threshold of `one` (averaged over the
    SNRs): a keyword the stream never fires gets a lower threshold, one that fires often a higher
    one. Each keyword's decisions depend on its own threshold alone (`spotting.Debouncer`), so
    the misses and false accepts add up exactly."""
    n = len(free.thresholds)
    chosen = {}
    for keyword in keywords.KEYWORDS:
        counts = free.per_keyword.get(keyword, [0] * n)
        rates = [c * 3600 / free.seconds if free.seconds else 0.0 for c in counts]
        i = lowest_allowed(free.thresholds, rates, target_per_hour / len(keywords.KEYWORDS))
        if i is None:
            return None
        chosen[keyword] = i
    fired = sum(free.per_keyword.get(k, [0] * n)[i] for k, i in chosen.items())
    misses = {}
    for s in spoken:
        weights = {k: s["planted_per_keyword"].get(k, 0) for k in chosen}
        total = sum(weights.values())
        missed = sum(s["misses_per_keyword"][k][i] * weights[k] for k, i in chosen.items() if weights[k])
        misses[str(s["snr_db"])] = round(missed / total, 4) if total else None
    point = {
        "thresholds": {k: free.thresholds[i] for k, i in chosen.items()},
        "false_accepts": fired,
        "per_hour": round(fired * 3600 / free.seconds, 3) if free.seconds else 0.0,
        "target_per_hour": target_per_hour,
        "miss_rate": misses,
    }
    known = [m for m in misses.values() if m is not None]
    if not known or (one and np.mean(known) >= np.mean([m for m in one["miss_rate"].values() if m is not None])):
        return None
    return point


# No operating point below this: under it another class can be as probable as the keyword, and a
# few minutes of keyword-free audio cannot show that a lower threshold is safe (a keyword that
# never fired in them would otherwise get the lowest threshold tried).
FLOOR = 0.5


def lowest_allowed(thresholds: list[float], per_hour: list[float], target_per_hour: float) -> int | None:
    """`fa.lowest_meeting` among the thresholds from `FLOOR` on."""
    first = next((i for i, t in enumerate(thresholds) if t >= FLOOR), len(thresholds))
    i = fa.lowest_meeting(per_hour[first:], target_per_hour)
    return None if i is None else first + i


def operating_point(free: fa.Curve, spoken: list[dict], target_per_hour: float) -> dict | None:
    """The lowest threshold from which false accepts per hour stay within the target, with its
    miss rate at each SNR; None where no threshold does."""
    per_hour = free.per_hour()
    i = lowest_allowed(free.thresholds, per_hour, target_per_hour)
    if i is None:
        return None
    return {
        "threshold": free.thresholds[i],
        "false_accepts": free.false_accepts[i],
        "per_hour": round(per_hour[i], 3),
        "target_per_hour": target_per_hour,
        "miss_rate": {str(s["snr_db"]): s["miss_rate"][i] for s in spoken},
    }


KEYWORD_FREE = ("seconds", "false_accepts", "per_hour", "per_keyword")


def headline(result: dict) -> dict[str, float]:
    """The operating point as scores for the final split's metrics (and so the model card's
    results): its threshold, false accepts per hour and false reject rate at each SNR."""
    point = result.get("operating_point")
    if not point:
        return {}
    scores = {"stream_threshold": point["threshold"], "false_accepts_per_hour": point["per_hour"]}
    for snr, miss in point["miss_rate"].items():
        scores[f"false_reject_rate_snr{float(snr):g}db"] = miss
    return scores


def stored_alarms(negative: Stream, alarms: list[fa.Alarm], cap: int) -> list[tuple[dict, Callable[[], np.ndarray]]]:
    """The false activations worth keeping, those that fire up to the highest thresholds first, each
    with its 1 s window (the audio the detector scored)."""
    kept = sorted(alarms, key=lambda a: (-a.up_to, -a.probability))[:cap]
    return [(a.as_dict(), lambda a=a: fa.window_at(negative.samples, a.time_s)) for a in kept]
