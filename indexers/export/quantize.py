"""int8 quantization of exported graphs, checked against the fp32 graph.

Dynamic quantization (weights int8, activations quantized on the fly) pays for transformer towers,
whose time goes into MatMul. It makes CNNs slower (ResNet-50 went from 23 to 3.8 items/s here:
ConvInteger has no fast kernel), so CNNs get static QDQ quantization with calibration images.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexers.export.common import run_onnx
from indexers.manifest import INT8_MIN_COSINE, Quantization, QuantMethod
from mmsearch.errors import ConfigError, ExportError

log = logging.getLogger(__name__)

METHODS: tuple[QuantMethod, ...] = ("dynamic-int8", "static-qdq-int8")


def quantize_tower(
    fp32_path: Path,
    out_path: Path,
    *,
    method: QuantMethod,
    check_feeds: Sequence[dict[str, np.ndarray]],
    calibration_feeds: Sequence[dict[str, np.ndarray]] | None = None,
) -> Quantization:
    """Write an int8 version of `fp32_path` to `out_path` and measure how far it drifts.

    Args:
        fp32_path: the exported fp32 graph.
        out_path: where the int8 graph goes.
        method: `dynamic-int8` (transformers) or `static-qdq-int8` (CNNs; needs calibration).
        check_feeds: input batches on which the int8 graph is compared with fp32 (the export's
            calibration set).
        calibration_feeds: input batches for static quantization's activation ranges.

    Returns:
        The Quantization record for the manifest (mean and min cosine to fp32).

    Raises:
        ConfigError: static quantization without calibration data, or an unknown method.
        ExportError: onnxruntime's quantizer failed.
    """
    if not check_feeds:
        raise ConfigError("quantize_tower needs at least one check batch")
    if method not in METHODS:
        raise ConfigError(f"quantization method {method!r} is not one of {', '.join(METHODS)}")
    if method == "static-qdq-int8" and not calibration_feeds:
        raise ConfigError("static int8 quantization needs calibration images")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _pre_process(Path(fp32_path), Path(tmp) / "prepared.onnx")
        try:
            _quantize(prepared, out_path, method, calibration_feeds or ())
        except Exception as e:  # onnxruntime's quantizer raises many types; all mean the same here
            raise ExportError(f"int8 quantization of {fp32_path.name} failed: {e}") from e
    cosines = np.concatenate(
        [_row_cosine(run_onnx(fp32_path, feeds), run_onnx(out_path, feeds)) for feeds in check_feeds]
    )
    record = Quantization(
        method=method,
        cosine_to_fp32_mean=float(cosines.mean()),
        cosine_to_fp32_min=float(cosines.min()),
    )
    if record.cosine_to_fp32_min < INT8_MIN_COSINE:
        log.warning(
            "int8 %s drifts from fp32: min cosine %.4f < %s (mean %.4f), so precision='auto' loads the fp32 graph",
            fp32_path.name,
            record.cosine_to_fp32_min,
            INT8_MIN_COSINE,
            record.cosine_to_fp32_mean,
        )
    return record


def _pre_process(fp32_path: Path, prepared: Path) -> Path:
    """onnxruntime's quantization pre-processing (shape inference, folding); the raw graph if it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    except Exception as e:  # noqa: BLE001 - pre-processing is an optimisation; quantize the raw graph instead
        log.info("quant_pre_process skipped for %s: %s", fp32_path.name, e)
        return fp32_path
    return prepared


def _quantize(
    prepared: Path, out_path: Path, method: QuantMethod, calibration_feeds: Sequence[dict[str, np.ndarray]]
) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if method == "dynamic-int8":
        # Per-channel weight scales: per-tensor took MiniLM's cosine to fp32 down to 0.947.
        quantize_dynamic(str(prepared), str(out_path), weight_type=QuantType.QInt8, per_channel=True)
        return
    quantize_static(
        str(prepared),
        str(out_path),
        _Reader(calibration_feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(denom, 1e-12)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feed dicts."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._iter = iter(list(feeds))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:  # pragma: no cover - part of the protocol, unused by MinMax
        pass
