"""CPU serving through ONNX Runtime: each kind's export computes what torch computes, padding never
leaks into a speech row, the int8 model is built once and cached, and the status says which
precision serves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slots import onnx_graph, onnx_serving
from slots.registry import Registry


def test_export_gives_torch_logits_and_a_padded_row_reads_as_it_would_alone(tiny_hubert_ctc, tmp_path):
    """The exported graph (what is quantized and served) computes torch's logits."""
    model, _ = tiny_hubert_ctc
    exported = tmp_path / "model.onnx"
    onnx_serving._export(onnx_serving.EXPORTS["ctc"], model, exported)
    _check_speech_graph(exported, model)


def _check_speech_graph(graph, model) -> None:
    served = onnx_serving.OnnxSpeech(graph, model)
    rng = np.random.default_rng(0)
    long, short = (rng.normal(0, 0.1, n).astype(np.float32) for n in (24_000, 13_000))
    with torch.inference_mode():
        expected_long = model(torch.from_numpy(long)[None]).logits[0].numpy()
        expected_short = model(torch.from_numpy(short)[None]).logits[0].numpy()
    batch = torch.zeros(2, len(long))
    batch[0] = torch.from_numpy(long)
    batch[1, : len(short)] = torch.from_numpy(short)
    mask = torch.zeros(2, len(long), dtype=torch.long)
    mask[0] = 1
    mask[1, : len(short)] = 1
    logits = served(batch, attention_mask=mask).logits.numpy()
    frames = int(served._get_feat_extract_output_lengths(len(short)))
    assert frames == len(expected_short) == int(model._get_feat_extract_output_lengths(len(short)))
    np.testing.assert_allclose(logits[0], expected_long, atol=1e-4)
    np.testing.assert_allclose(logits[1, :frames], expected_short, atol=1e-4)


def test_int8_is_the_cpu_default_built_once_and_fp32_is_one_setting_away(tmp_path, monkeypatch):
    # A QA model: its export takes all three steps (export, fusion, quantization).
    import onnx

    from scripts.tiny_models import build_qa_distilbert
    from slots import int8_export

    monkeypatch.setattr(int8_export, "OWN_PROCESS_FROM", 0)  # as a real-size model exports
    build_qa_distilbert(tmp_path / "qa-distilbert")
    slot = Registry(tmp_path)["qa-distilbert"]
    first = slot.get()  # serves at once, in fp32, while the export runs in processes of its own
    assert first.precision == "fp32 (torch, cpu; int8 on its way)" and not isinstance(first.model, onnx_serving.OnnxQA)
    assert slot.status()["upgrading"] == "int8 export under way; fp32 serves meanwhile"
    loaded = slot.settled()
    assert loaded is first and "upgrading" not in slot.status()
    assert (
        set(loaded.export) == {"peak_rss_mb", "seconds"} and slot.status(detail=True)["int8_export"] == loaded.export
    )
    assert loaded.precision == "int8 (onnxruntime, cpu)" and isinstance(loaded.model, onnx_serving.OnnxQA)
    assert loaded.model.path.is_file() and loaded.model.path.is_relative_to(onnx_serving.CACHE)
    # The fusion's process read the heads and the width from config.json (without transformers):
    # read wrong, the attention would go unfused and unquantized.
    ops = [node.op_type for node in onnx.load(str(loaded.model.path)).graph.node]
    assert ops.count("QAttention") == loaded.model.config.num_hidden_layers, ops
    # Its workers do not spin after a run (they would slow the next model to run, see the code).
    options = loaded.model.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    status = Registry(tmp_path).status()["qa-distilbert"]
    assert status["precision"] == "int8 (onnxruntime, cpu)" and status["parameters"] == loaded.parameters

    def no_rebuild(*args):
        raise AssertionError("the cached int8 model should have been reused")

    monkeypatch.setattr(int8_export, "run", no_rebuild)
    again = Registry(tmp_path)["qa-distilbert"].get()  # from the cache: int8 at once
    assert again.model.path == loaded.model.path and again.precision == "int8 (onnxruntime, cpu)"
    monkeypatch.setenv("SERVE_PRECISION", "fp32")
    fp32 = Registry(tmp_path)["qa-distilbert"].get()
    assert fp32.precision == "fp32 (torch, cpu)" and not isinstance(fp32.model, onnx_serving.OnnxQA)


def test_qa_export_gives_torch_logits_on_a_padded_batch_and_int8_serves_by_default(tmp_path):
    from qa import extractive
    from scripts.tiny_models import build_qa_distilbert, build_qa_xlmr

    build_qa_distilbert(tmp_path / "qa-distilbert")
    build_qa_xlmr(tmp_path / "qa-xlmr")
    context = "the tower was built in eighteen eighty nine in paris"
    for name in ("qa-distilbert", "qa-xlmr"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SERVE_PRECISION", "fp32")
            reference = Registry(tmp_path)[name].get()
        model, tokenizer = reference.model, reference.processor
        exported = tmp_path / f"{name}.onnx"
        onnx_serving._export(onnx_serving.EXPORTS["question-answering"], model, exported)
        assert model.config._attn_implementation == reference.model.config._attn_implementation != "eager"
        fused = onnx_graph.fuse_text_attention(exported, model.config, tmp_path / f"{name}.fused.onnx")
        import onnx

        ops = [node.op_type for node in onnx.load(str(fused)).graph.node]
        assert fused != exported and ops.count("Attention") == model.config.num_hidden_layers, ops
        batch = tokenizer(["when was it built", "where"], [context, context[:20]], padding=True, return_tensors="pt")
        with torch.inference_mode():
            expected = model(**batch)
        mask = batch["attention_mask"].bool()
        for graph in (exported, fused):  # the padded row reads as it would alone in both graphs
            out = onnx_serving.OnnxQA(graph, model)(**batch)
            for key in ("start_logits", "end_logits"):
                np.testing.assert_allclose(
                    getattr(out, key)[mask].numpy(), getattr(expected, key)[mask].numpy(), atol=1e-4
                )
        loaded = Registry(tmp_path)[name].settled()
        assert loaded.precision == onnx_serving.INT8 and isinstance(loaded.model, onnx_serving.OnnxQA)
        assert loaded.parameters == reference.parameters
        prediction = extractive.answer(loaded.model, loaded.processor, context, "when was it built")
        assert prediction.best_span in context and prediction.alternatives


def test_keyword_export_gives_torch_probabilities_for_a_batch_of_windows(tmp_path):
    from scripts.tiny_models import build_kws
    from speech import spotting

    build_kws(tmp_path / "kws")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SERVE_PRECISION", "fp32")
        reference = Registry(tmp_path)["kws"].get()
    onnx_serving._export(onnx_serving.EXPORTS["audio-classification"], reference.model, tmp_path / "kws.onnx")
    served = onnx_serving.OnnxSpeech(tmp_path / "kws.onnx", reference.model)
    rng = np.random.default_rng(0)
    windows = [rng.normal(0, 0.1, spotting.WINDOW).astype(np.float32) for _ in range(3)]
    with torch.inference_mode():
        expected = spotting.window_probs(reference.model, reference.processor, windows)
    np.testing.assert_allclose(spotting.window_probs(served, reference.processor, windows), expected, atol=1e-5)
    loaded = Registry(tmp_path)["kws"].settled()
    assert loaded.precision == onnx_serving.INT8 and isinstance(loaded.model, onnx_serving.OnnxSpeech)
    assert spotting.window_probs(loaded.model, loaded.processor, windows).shape == expected.shape


def test_a_model_that_refuses_eager_attention_is_exported_with_its_own(tmp_path, monkeypatch):
    from scripts.tiny_models import build_qa_distilbert

    build_qa_distilbert(tmp_path / "qa-distilbert")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SERVE_PRECISION", "fp32")
        model = Registry(tmp_path)["qa-distilbert"].get().model
    own = model.config._attn_implementation

    def refuse(self, implementation, **kwargs):
        raise ValueError(f"{implementation} is not supported")

    monkeypatch.setattr(type(model), "set_attn_implementation", refuse)
    onnx_serving._export(onnx_serving.EXPORTS["question-answering"], model, tmp_path / "model.onnx")
    assert model.config._attn_implementation == own
    ids = torch.tensor([[101, 7, 8, 9, 102]])
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=torch.ones_like(ids)).start_logits.numpy()
    out = onnx_serving.OnnxQA(tmp_path / "model.onnx", model)(ids, torch.ones_like(ids)).start_logits.numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_an_export_that_fails_leaves_fp32_serving_and_says_why(tmp_path, monkeypatch):
    from scripts.tiny_models import build_kws
    from slots import int8_export

    def crash(kind, folder, target):
        raise RuntimeError("the export process failed (-9): Killed")

    monkeypatch.setattr(int8_export, "run", crash)
    monkeypatch.setattr(int8_export, "OWN_PROCESS_FROM", 0)
    build_kws(tmp_path / "kws")
    slot = Registry(tmp_path)["kws"]
    loaded = slot.settled()
    assert loaded.precision == "fp32 (torch, cpu; int8 export failed: the export process failed (-9): Killed)"
    assert not isinstance(loaded.model, onnx_serving.OnnxSpeech) and slot.state == "loaded"
    assert "upgrading" not in slot.status()
