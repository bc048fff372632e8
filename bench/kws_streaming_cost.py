"""What the keyword training's streaming evaluation (step 7, train/kws_streams.py) costs next to
the rest of a run, on a real-size DistilHuBERT classifier with random weights (speed does not
depend on the weights' values).

    python -m bench.kws_streaming_cost [--seconds 60] [--batch 128] [--device cuda]

Measures, in one run on this machine: the streaming scan of `--seconds` of audio (1 s windows every
250 ms, `train.kws_streams.scan`) against the raw forward pass over the same windows, the curve
over every threshold and the voice gate's pass over the audio. Then extrapolates to Speech
Commands v0.01 with the defaults (`StreamArguments`): the windows the streams hold against the
clips a frozen-encoder run's feature pass reads once each, a forward pass of the same 1 s shape.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from speech import keywords

# The official v0.01 test set: 3,081 clips, 257 each of `_silence_` and `_unknown_`; the training
# split's 6 background-noise recordings, about a minute each (one about 1.5 minutes).
REAL = {"train": 51_094, "validation": 6_798, "test": 3_081, "silence_clips_cut": 2_000}
TEST_SILENCE, TEST_UNKNOWN, NOISE_S = 257, 257, 400.0


def stream_windows(per_keyword: int, snrs: int, pause_s: float = 0.8, clip_s: float = 1.0) -> dict[str, float]:
    """Windows the default streams hold on the real test set (a hop is 0.25 s)."""
    keyword_free_s = NOISE_S + TEST_SILENCE * clip_s + TEST_UNKNOWN * (clip_s + pause_s)
    keyword_s = snrs * len(keywords.KEYWORDS) * per_keyword * (clip_s + pause_s)
    return {"keyword_free_s": keyword_free_s, "keyword_s": keyword_s, "windows": (keyword_free_s + keyword_s) * 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cuda: the scan in bfloat16 on the GPU, as train.kws runs it")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

    from bench.train_speed import hubert_config
    from speech import false_alarms as fa
    from speech import spotting
    from train.kws_streams import StreamArguments, scan

    torch.manual_seed(0)
    model = AutoModelForAudioClassification.from_config(hubert_config(False, num_labels=12)).eval().to(args.device)
    model.config.id2label = keywords.ID2LABEL
    extractor = Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False)
    audio = np.random.default_rng(0).normal(0, 0.05, int(args.seconds * 16_000)).astype(np.float32)
    scan(model, extractor, audio[: 16_000 * 3], args.batch)  # warm-up

    started = time.perf_counter()
    scanned = scan(model, extractor, audio, args.batch)
    scan_s = time.perf_counter() - started
    windows, _ = spotting.sliding_windows(audio)
    started = time.perf_counter()
    cuda = args.device.startswith("cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        for b in range(0, len(windows), args.batch):
            model(torch.from_numpy(np.stack(windows[b : b + args.batch])).to(args.device))
        if cuda:
            torch.cuda.synchronize()
    forward_s = time.perf_counter() - started
    started = time.perf_counter()
    fa.curve(scanned, list(keywords.LABELS))
    curve_s = time.perf_counter() - started
    started = time.perf_counter()
    spotting.speech_frames(audio)
    vad_s = time.perf_counter() - started

    defaults = StreamArguments()
    real = stream_windows(defaults.stream_keyword_clips, len(defaults.stream_snr_db))
    clips = REAL["train"] + REAL["silence_clips_cut"] + REAL["validation"] + REAL["test"]
    per_window = scan_s / len(windows)
    print(
        json.dumps(
            {
                "audio_s": args.seconds,
                "windows": len(windows),
                "batch": args.batch,
                "scan_s": round(scan_s, 2),
                "raw_forward_s": round(forward_s, 2),
                "scan_over_forward": round(scan_s / forward_s, 3),
                "windows_per_s": round(len(windows) / scan_s, 1),
                "curve_s": round(curve_s, 3),
                "voice_gate_s": round(vad_s, 3),
                "real_split": {
                    **{k: round(v) for k, v in real.items()},
                    "feature_pass_clips": clips,
                    "windows_over_feature_clips": round(real["windows"] / clips, 3),
                    "estimated_streaming_s": round(real["windows"] * per_window),
                    "estimated_feature_pass_s": round(clips * per_window),
                },
                "threads": torch.get_num_threads(),
                "device": torch.cuda.get_device_name() if cuda else "cpu",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
