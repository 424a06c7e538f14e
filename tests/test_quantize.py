import numpy as np
import onnx
import pytest

from indexers.export.quantize import quantize_tower
from indexers.onnx_session import OnnxSession
from mmsearch.errors import ConfigError


def _ops(path):
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _pixels(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"pixel_values": rng.standard_normal((n, 3, 224, 224), dtype=np.float32)}


def test_static_qdq_on_a_cnn_stays_close_to_fp32(resnet_dir, tmp_path):
    out = tmp_path / "image.int8.onnx"
    check = [_pixels(3, 0)]
    record = quantize_tower(
        resnet_dir / "image.onnx",
        out,
        method="static-qdq-int8",
        check_feeds=check,
        calibration_feeds=[_pixels(2, s) for s in range(1, 5)],
    )
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(out)
    fp32 = OnnxSession(resnet_dir / "image.onnx", device="cpu").run(check[0])
    int8 = OnnxSession(out, device="cpu").run(check[0])
    cos = np.sum(fp32 * int8, axis=1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert record.cosine_to_fp32_min == pytest.approx(cos.min(), abs=1e-5)
    assert record.cosine_to_fp32_mean >= 0.99


def test_dynamic_int8_quantizes_transformer_matmuls(tiny_clip_dir, tmp_path):
    out = tmp_path / "text.int8.onnx"
    ids = np.zeros((2, 9), dtype=np.int64)
    ids[:, 0], ids[:, 1:8], ids[:, 8] = 49406, [[320, 1929, 4990, 593, 320, 2972, 1237]] * 2, 49407
    ids[1, 3] = 1125
    record = quantize_tower(tiny_clip_dir / "text.onnx", out, method="dynamic-int8", check_feeds=[{"input_ids": ids}])
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & _ops(out)
    assert -1.0 <= record.cosine_to_fp32_min <= record.cosine_to_fp32_mean <= 1.0 + 1e-6
    assert record.method == "dynamic-int8"


def test_static_quantization_needs_calibration(resnet_dir, tmp_path):
    with pytest.raises(ConfigError, match="calibration"):
        quantize_tower(
            resnet_dir / "image.onnx", tmp_path / "x.onnx", method="static-qdq-int8", check_feeds=[_pixels(2, 0)]
        )
