"""The frozen encoder runs once: stored features give the head exactly what the live encoder gives,
stores are reused when nothing changed and rebuilt when anything did, and SUPERB-style heads train
and are served."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from transformers import HubertForCTC, HubertModel

from core.checkpoint import read_metrics
from core.structure import SUPERB_CTC, describe_head
from scripts.make_smoke_data import make_asr_smoke, make_kws_smoke, tiny_hubert
from scripts.tiny_models import hubert_config
from slots.registry import Registry
from speech import heads
from train import asr as train_asr
from train import build_batches, stored_batches
from train import feature_store as features
from train import kws as train_kws
from train.augment import Augment
from ui import asr as asr_tab
from ui import kws as kws_tab

pytestmark = pytest.mark.beside  # its slow tests train or build stores and read no clock

SMOKE = "outputs/smoke"
ASR_CLIP = f"{SMOKE}/librispeech/test-clean/19/198/19-198-0000.flac"
# Enough steps for the trajectories to part if anything differed; fp32 so they must not.
STEPS = ["--max_steps", "12", "--logging_steps", "1", "--eval_steps", "6", "--precision", "fp32"]


def losses(checkpoint) -> list[float]:
    return [row["loss"] for row in read_metrics(checkpoint)["history"] if "loss" in row]


# ---- the encoder gives each clip the same features whatever it is batched with --------------------


def test_encode_is_padding_proof_where_plain_group_norm_is_not():
    torch.manual_seed(0)
    encoder = HubertModel(hubert_config(feat_extract_norm="group")).eval()
    long = torch.randn(1, 8000)
    short = torch.randn(1, 5000)
    batch = torch.zeros(2, 8000)
    batch[0] = long[0]
    batch[1, :5000] = short[0]
    with torch.no_grad():
        hidden, lengths = heads.encode(encoder, batch, torch.tensor([8000, 5000]), "all")
        alone, alone_lengths = heads.encode(encoder, short, None, "all")
        plain = encoder(batch, attention_mask=(torch.arange(8000) < torch.tensor([[8000], [5000]])).long())
    n = int(alone_lengths[0])
    assert int(lengths[1]) == n and hidden.shape[2] == encoder.config.num_hidden_layers + 1
    assert torch.allclose(hidden[1, :n], alone[0], atol=1e-5)
    # What it replaces: transformers' own masked forward still lets the padding into the statistics.
    assert (plain.last_hidden_state[1, :n] - alone[0, :, -1]).abs().max() > 1e-3
    assert torch.allclose(hidden[0, :, -1], encoder(long).last_hidden_state[0], atol=1e-5)


def test_superb_ctc_head_answers_the_same_alone_and_padded(tmp_path):
    torch.manual_seed(0)
    config = hubert_config(vocab_size=12, pad_token_id=0)
    config.superb_head = {"lstm_size": 8, "lstm_layers": 2, "dropout": 0.2}
    model = heads.HubertSuperbForCTC(config).eval()
    long = torch.randn(1, 6000)
    short = torch.randn(1, 4000)
    batch = torch.zeros(2, 6000)
    batch[0] = long[0]
    batch[1, :4000] = short[0]
    mask = (torch.arange(6000) < torch.tensor([[6000], [4000]])).long()
    with torch.no_grad():
        padded = model(batch, attention_mask=mask).logits
        alone = model(short).logits
        model.save_pretrained(tmp_path)
        reloaded = heads.HubertSuperbForCTC.from_pretrained(tmp_path).eval()(short).logits
    assert torch.allclose(padded[1, : alone.shape[1]], alone[0], atol=1e-5)
    # Reloaded weights give the same logits (bitwise equality would also test the CPU kernels' choice).
    assert torch.allclose(reloaded, alone, atol=1e-6)
    assert describe_head(reloaded_config := model.config) == "layer mix + 2-layer BiLSTM (8) + linear CTC"
    assert reloaded_config.architectures is None or SUPERB_CTC in reloaded_config.architectures


# ---- same model, same result ------------------------------------------------------------------


def test_asr_head_trained_on_stored_features_follows_the_live_encoder_trajectory(smoke_workdir, monkeypatch):
    make_asr_smoke()
    # Batches of 2 clips of different lengths: padding is in play; the head's dropout and time
    # masking draw random numbers in both runs.
    common = ["train/configs/asr_smoke.json", *STEPS, "--mask_time_prob", "0.3"]
    train_asr.main([*common, "--output_dir", "out/cached"])
    train_asr.main([*common, "--output_dir", "out/live", "--no_feature_cache"])
    cached = losses("out/cached")
    live = losses("out/live")
    assert len(cached) == 12 and max(cached) - min(cached) > 0.1  # it learns: the comparison means something
    np.testing.assert_allclose(cached, live, atol=1e-4, rtol=0)
    assert read_metrics("out/cached")["extra"]["feature_cache"]["train"]["reused"] is False
    assert read_metrics("out/cached")["extra"]["feature_cache"]["train"]["read_from"].startswith("host")
    assert read_metrics("out/live")["extra"]["feature_cache"] is None
    # The stores copied to the training device (a GPU's path, taken here on the CPU): every batch
    # gathered there, padding included, trains the same head.
    monkeypatch.setattr(stored_batches, "free_device_memory", lambda device: 1 << 40)
    train_asr.main([*common, "--output_dir", "out/on_device"])
    np.testing.assert_allclose(losses("out/on_device"), cached, atol=1e-6, rtol=0)
    on_device = read_metrics("out/on_device")["extra"]["feature_cache"]
    assert on_device["train"]["reused"] is True and on_device["train"]["read_from"].startswith("cpu device")
    a = HubertForCTC.from_pretrained("out/cached").lm_head.weight
    b = HubertForCTC.from_pretrained("out/live").lm_head.weight
    assert torch.allclose(a, b, atol=1e-4)


def test_kws_head_trained_on_stored_features_follows_the_live_encoder_trajectory(smoke_workdir):
    make_kws_smoke()
    # Class weights, and the feature-space shift + time masking that replace audio augmentation.
    common = [
        "train/configs/kws_smoke.json",
        *STEPS,
        "--class_weights",
        "balanced",
        "--augment",
        "true",
        "--dataloader_num_workers",
        "1",
    ]
    train_kws.main([*common, "--output_dir", "out/cached"])
    train_kws.main([*common, "--output_dir", "out/live", "--no_feature_cache"])
    cached = losses("out/cached")
    live = losses("out/live")
    assert len(cached) == 12 and max(cached) - min(cached) > 0.01
    np.testing.assert_allclose(cached, live, atol=1e-4, rtol=0)
    # Decoding audio uses the loader workers; reading the store uses none (--store_workers 0).
    workers = {
        run: read_metrics(f"out/{run}")["hyperparameters"]["dataloader_num_workers"] for run in ("cached", "live")
    }
    assert workers == {"cached": 0, "live": 1}


# ---- reused when nothing changed, rebuilt when anything did ---------------------------------------


def cache_runs(metrics_path) -> dict[str, dict]:
    return read_metrics(metrics_path)["extra"]["feature_cache"]


def test_stores_are_reused_or_rebuilt_by_what_decides_their_contents(smoke_workdir):
    make_asr_smoke()
    run = ["train/configs/asr_smoke.json", "--max_steps", "1", "--eval_steps", "1"]
    target = f"{SMOKE}/checkpoints/asr"
    train_asr.main(run)
    first = cache_runs(target)
    assert {s: v["reused"] for s, v in first.items()} == {"train": False, "validation": False, "test": False}

    train_asr.main(run + ["--learning_rate", "0.5"])  # only the head's training changed
    again = cache_runs(target)
    assert all(v["reused"] for v in again.values()) and again["train"]["path"] == first["train"]["path"]

    train_asr.main(run + ["--head", "superb", "--superb_lstm_size", "8"])  # every layer kept now
    layers = cache_runs(target)
    assert not layers["train"]["reused"] and layers["train"]["path"] != first["train"]["path"]

    train_asr.main(run + ["--subset", "2", "1", "1"])  # other clips
    subset = cache_runs(target)
    assert not subset["train"]["reused"] and subset["train"]["path"] != first["train"]["path"]

    # A clip re-recorded in place (same name, new content) is a different dataset.
    clip = next(p for p in sorted((smoke_workdir / SMOKE / "librispeech" / "train-clean-100").rglob("*.flac")))
    data = clip.read_bytes()
    clip.write_bytes(data)
    os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10**9))
    train_asr.main(run)
    touched = cache_runs(target)
    assert not touched["train"]["reused"] and touched["validation"]["reused"]

    # Other encoder weights (same architecture, same folder name): rebuilt.
    tiny_hubert(smoke_workdir / SMOKE / "tiny-hubert", hidden=64)
    weights = smoke_workdir / SMOKE / "tiny-hubert" / "model.safetensors"
    from safetensors.torch import load_file, save_file

    state = load_file(weights)
    state["encoder.layer_norm.bias"] = state["encoder.layer_norm.bias"] + 0.5
    save_file(state, weights, metadata={"format": "pt"})
    train_asr.main(run)
    assert not any(v["reused"] for v in cache_runs(target).values())


def store_inputs(tmp_path, n=3):
    torch.manual_seed(0)
    encoder = HubertModel(hubert_config()).eval()

    class Clips(torch.utils.data.Dataset):
        lengths = [4000 + 1000 * i for i in range(n)]

        def __len__(self):
            return n

        def __getitem__(self, i):
            return {"input_values": np.random.default_rng(i).standard_normal(self.lengths[i]).astype(np.float32)}

    key = features.store_key(
        features.encoder_fingerprint(encoder), "last", "fp32", {"source": "test"}, [f"clip{i}" for i in range(n)], {}
    )
    return encoder, Clips(), key


def test_a_store_holds_what_the_encoder_says_and_a_wrong_or_broken_one_is_rebuilt(tmp_path, monkeypatch):
    encoder, clips, key = store_inputs(tmp_path)
    store = features.open_or_build(tmp_path, key, clips, encoder, device=torch.device("cpu"))
    assert not store.reused and len(store) == 3
    for i in range(3):
        with torch.no_grad():
            expected = encoder(torch.from_numpy(clips[i]["input_values"])[None]).last_hidden_state[0]
        assert torch.allclose(store[i], expected, atol=1e-5)
    builds = []
    monkeypatch.setattr(
        features, "_build", lambda *a, **k: builds.append(1) or (_ for _ in ()).throw(RuntimeError("killed mid-build"))
    )
    assert features.open_or_build(tmp_path, key, clips, encoder, device=torch.device("cpu")).reused
    assert builds == []
    # The folder for this key holds a store built for another key (tampered manifest): rebuilt,
    # and a build that dies leaves nothing under the final name.
    manifest = store.path / "manifest.json"
    data = json.loads(manifest.read_text())
    data["key"]["layers"] = "all"
    manifest.write_text(json.dumps(data))
    with pytest.raises(RuntimeError, match="killed mid-build"):
        features.open_or_build(tmp_path, key, clips, encoder, device=torch.device("cpu"))
    assert builds == [1]
    assert not list(tmp_path.glob(".*staging*"))


def test_disk_use_is_reported_before_the_build_and_too_little_space_refuses(tmp_path, monkeypatch, caplog):
    encoder, clips, key = store_inputs(tmp_path)
    frames = encoder._get_feat_extract_output_lengths(torch.tensor(clips.lengths) + 1).sum().item()
    expected = frames * encoder.config.hidden_size * 4
    with caplog.at_level("INFO", logger="train.feature_store"):
        store = features.open_or_build(tmp_path / "a", key, clips, encoder, device=torch.device("cpu"))
    assert f"= {expected / 1e9:.2f} GB" in caplog.text and store.manifest["bytes"] == expected
    monkeypatch.setattr(features.shutil, "disk_usage", lambda p: type("U", (), {"free": expected - 1})())
    with pytest.raises(OSError, match="--no_feature_cache"):
        features.open_or_build(tmp_path / "b", key, clips, encoder, device=torch.device("cpu"))


# ---- every way of training is served -------------------------------------------------------------


def test_the_app_serves_heads_trained_live_from_the_cache_and_superb_style(smoke_workdir, launch):
    make_asr_smoke()
    make_kws_smoke()
    root = smoke_workdir / SMOKE / "checkpoints"
    train_asr.main(["train/configs/asr_smoke.json", "--no_feature_cache", "--output_dir", str(root / "live" / "asr")])
    train_asr.main(
        [
            "train/configs/asr_smoke.json",
            "--head",
            "superb",
            "--superb_lstm_size",
            "16",
            "--output_dir",
            str(root / "superb" / "asr"),
        ]
    )
    train_kws.main(["train/configs/kws_smoke.json", "--head", "superb", "--output_dir", str(root / "superb" / "kws")])
    live = Registry(root / "live")
    superb = Registry(root / "superb")
    assert type(superb["asr"].get().model).__name__ == "HubertSuperbForCTC"
    assert superb["kws"].get().model.config.use_weighted_layer_sum
    for registry, folder in ((live, root / "live"), (superb, root / "superb")):
        client = Client(launch(folder), verbose=False)
        served = client.predict(handle_file(ASR_CLIP), api_name="/transcribe")
        assert served == asr_tab.transcribe_input(registry["asr"].get(), ASR_CLIP)[0]
    kws_clip = next((smoke_workdir / SMOKE / "speech_commands").glob("yes/*.wav"))
    top = client.predict(handle_file(str(kws_clip)), api_name="/spot")
    expected = kws_tab.spot_input(superb["kws"].get(), str(kws_clip))[1]
    assert top["label"] == max(expected, key=expected.get)
    assert {c["label"]: c["confidence"] for c in top["confidences"]} == pytest.approx(
        dict(sorted(expected.items(), key=lambda kv: -kv[1])[:5]), abs=1e-6
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_classifier_head_pools_first_and_still_gives_the_models_own_logits(weighted):
    from transformers import HubertForSequenceClassification

    torch.manual_seed(0)
    model = HubertForSequenceClassification(
        hubert_config(num_labels=12, use_weighted_layer_sum=weighted, layerdrop=0.0)
    ).eval()
    head = heads.ClassifierHead(model)
    audio = torch.randn(2, 6000)
    audio[1, 4000:] = 0
    lengths = torch.tensor([6000, 4000])
    with torch.no_grad():
        hidden, frames = heads.encode(model.hubert, audio, lengths, head.layers)
        ours = head(hidden, frames)
        theirs = torch.cat([model(audio[:1]).logits, model(audio[1:, :4000]).logits])
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_augmentation_folded_into_pooling_weights_equals_shifting_and_masking_the_frames():
    torch.manual_seed(0)
    hidden = torch.randn(3, 40, 2, 5)
    counts = [40, 25, 12]
    augment = Augment.draw(counts, 40, shift=5, prob=0.3, span=4)
    assert (augment.keep == 0).any() and not torch.equal(augment.source, torch.arange(40).expand(3, 40))
    shifted = augment.apply(hidden)
    means = torch.stack([shifted[b, :n].sum(0) / n for b, n in enumerate(counts)])
    folded = torch.einsum("bt,btlh->blh", augment.pooling_weights(), hidden)
    assert torch.allclose(folded, means, atol=1e-6)
    for b, n in enumerate(counts):  # a rotation within the clip; padding untouched
        assert sorted(augment.source[b, :n].tolist()) == list(range(n))
        assert torch.equal(shifted[b, n:], hidden[b, n:] * augment.keep[b, n:, None, None])


@pytest.mark.parametrize("weighted", [False, True])
def test_graphed_step_pads_frames_without_changing_the_loss_and_falls_back_past_its_shapes(weighted, monkeypatch):
    # CUDA graphs need a GPU (bench/graph_check.py compares them with the eager step there); what
    # runs anywhere is the padding of frames into a bucket and the eager fallback past MAX_GRAPHS.
    from transformers import HubertForSequenceClassification

    from train import graphed_step

    torch.manual_seed(0)
    model = HubertForSequenceClassification(
        hubert_config(num_labels=12, use_weighted_layer_sum=weighted, layerdrop=0.0)
    )
    head = heads.ClassifierHead(model)
    layers = model.config.num_hidden_layers + 1 if weighted else 1
    hidden = torch.randn(3, 13, *((layers,) if weighted else ()), model.config.hidden_size)
    counts = [13, 9, 4]
    weights = Augment.draw(counts, 13, shift=3, prob=0.3, span=2).pooling_weights()
    padded = torch.nn.functional.pad(weights, (0, 3))
    hidden_padded = torch.cat([hidden, torch.randn(3, 3, *hidden.shape[2:])], dim=1)  # finite junk, weight 0
    assert torch.allclose(head.pooled_logits(hidden_padded, padded), head.pooled_logits(hidden, weights), atol=1e-6)

    monkeypatch.setattr(graphed_step, "MAX_GRAPHS", 0)
    loss = lambda logits, lengths, labels: torch.nn.functional.cross_entropy(logits, labels)  # noqa: E731
    step = graphed_step.GraphedPoolingStep(head, loss)
    labels = torch.tensor([1, 5, 11])
    logits, value = step(hidden, weights, torch.tensor(counts), labels)
    assert step.eager_steps == 1 and not step.graphs
    assert torch.allclose(logits, head.pooled_logits(hidden, weights))
    assert value.item() == pytest.approx(loss(head.pooled_logits(hidden, weights), None, labels).item())


def test_a_build_with_filler_rows_stores_what_each_clip_gives_alone(tmp_path):
    encoder, clips, key = store_inputs(tmp_path)
    # 3 clips of 4,000, 5,000 and 6,000 samples: three buckets, so three batches of one clip, each
    # filled up with rows of silence (4 rows at the longest bucket).
    budget = 4 * build_batches.bucket_samples(6_000)
    assert build_batches.length_batches(clips.lengths, budget) == [[2], [1], [0]]
    assert build_batches.bucket_rows(build_batches.bucket_samples(6_000), budget) == 4
    store = features.open_or_build(
        tmp_path, key, clips, encoder, device=torch.device("cpu"), batch_seconds=budget / features.RATE
    )
    assert len(store) == 3 and store.manifest["audio_seconds"] == pytest.approx(15_000 / features.RATE, abs=1e-3)
    for i in range(3):
        with torch.no_grad():
            alone = encoder(torch.from_numpy(clips[i]["input_values"])[None]).last_hidden_state[0]
        assert torch.allclose(store[i], alone, atol=1e-5)
