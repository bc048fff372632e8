"""CPU serving through ONNX Runtime: the export computes what torch computes, padding never leaks
into a row, the int8 model is built once and cached, and the status says which precision serves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import onnx_ctc
from core.slots import Registry
from tests.test_long_audio import tiny  # noqa: F401 - the fixture
from tests.tiny_models import build_asr


def test_export_gives_torch_logits_and_a_padded_row_reads_as_it_would_alone(tiny, tmp_path):  # noqa: F811
    model, _ = tiny
    onnx_ctc._export(model, tmp_path / "model.onnx")
    served = onnx_ctc.OnnxCTC(tmp_path / "model.onnx", model)
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
    build_asr(tmp_path / "asr")
    loaded = Registry(tmp_path)["asr"].get()
    assert loaded.precision == "int8 (onnxruntime, cpu)" and isinstance(loaded.model, onnx_ctc.OnnxCTC)
    assert loaded.model.path.is_file() and loaded.model.path.is_relative_to(onnx_ctc.CACHE)
    status = Registry(tmp_path).status()["asr"]
    assert status["precision"] == "int8 (onnxruntime, cpu)" and status["parameters"] == loaded.parameters

    def no_rebuild(*args):
        raise AssertionError("the cached int8 model should have been reused")

    monkeypatch.setattr(onnx_ctc, "_build", no_rebuild)
    again = Registry(tmp_path)["asr"].get()
    assert again.model.path == loaded.model.path
    monkeypatch.setenv("SERVE_PRECISION", "fp32")
    fp32 = Registry(tmp_path)["asr"].get()
    assert fp32.precision == "fp32 (torch, cpu)" and not isinstance(fp32.model, onnx_ctc.OnnxCTC)
    monkeypatch.setenv("SERVE_PRECISION", "int4")
    with pytest.raises(ValueError, match="SERVE_PRECISION must be int8 or fp32"):
        onnx_ctc.precision_setting()
