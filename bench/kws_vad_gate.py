"""Does a voice-activity gate in front of the keyword detector lower false alarms per hour at the
same miss rate? Runs train.kws's streaming evaluation (the same streams, step 7) on a trained
checkpoint twice: without the voice gate, and with it, as the Live tab listens by default (every
1 s window holding no frame that Silero VAD hears speech in scored as silence). train.kws records
both in every checkpoint's metrics.json ("without_gate"); this runs them on any checkpoint.

    python -m bench.kws_vad_gate --checkpoint checkpoints/kws --data_dir DIR [--test_dir DIR]

Prints both curves' false alarms per hour and misses (at the highest SNR) per threshold, and the
gated false alarms per hour at the ungated miss rates: where the gated curve needs fewer alarms
to miss no more, the gate pays.
"""

from __future__ import annotations

import argparse
import json


def at_miss_rate(per_hour: list[float], misses: list[float], target: float) -> float | None:
    """The fewest false alarms per hour at any threshold missing at most `target`."""
    rates = [r for r, m in zip(per_hour, misses, strict=True) if m <= target + 1e-9]
    return min(rates) if rates else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--test_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from speech import false_alarms as fa
    from train import kws as train_kws
    from train.kws_streams import StreamArguments, build_streams, evaluate

    data = train_kws.DataArguments(data_dir=args.data_dir, test_dir=args.test_dir)
    clips, noise, _ = train_kws.load_splits(data, None, args.seed)
    split = "test" if clips["test"] else "validation"
    negative, positive = build_streams(clips[split], noise, train_kws.clip_audio, StreamArguments(), args.seed)
    model = AutoModelForAudioClassification.from_pretrained(args.checkpoint).eval()
    extractor = AutoFeatureExtractor.from_pretrained(args.checkpoint)
    snr, _ = positive[0]
    # train.kws's own step 7 on the highest SNR's stream: the curves with the gate and "without_gate"
    judged, _ = evaluate(model, extractor, negative, positive[:1], StreamArguments())
    plain = judged["without_gate"]
    free = {"gated": judged["keyword_free"]["per_hour"], "plain": plain["per_hour"]}
    spoken = {"gated": judged["keyword_streams"][0]["miss_rate"], "plain": plain["miss_rate"][f"{snr:g}"]}
    result = {"split": split, "keyword_free_s": round(len(negative.samples) / 16_000, 1), "snr_db": snr,
              "keyword_free": free, "keywords": spoken, "cost": judged["cost"]}  # fmt: skip
    thresholds = list(fa.THRESHOLDS)
    result["at_equal_misses"] = [
        {
            "threshold": t,
            "miss_rate": m,
            "per_hour": round(r, 2),
            "gated_per_hour": at_miss_rate(free["gated"], spoken["gated"], m),
        }  # fmt: skip
        for t, r, m in zip(thresholds, free["plain"], spoken["plain"], strict=True)
    ]
    print(json.dumps({k: v for k, v in result.items() if k != "at_equal_misses"}, default=float))
    for p in result["at_equal_misses"][::3]:
        print(p)
    better = [
        p for p in result["at_equal_misses"] if p["gated_per_hour"] is not None and p["gated_per_hour"] < p["per_hour"]
    ]
    worse = [
        p for p in result["at_equal_misses"] if p["gated_per_hour"] is None or p["gated_per_hour"] > p["per_hour"]
    ]
    print(f"gate lowers false alarms at equal misses at {len(better)} thresholds, raises them at {len(worse)}")


if __name__ == "__main__":
    main()
