"""int8 quantization of exported graphs, checked against the fp32 graph.

Dynamic quantization (weights int8, activations quantized on the fly) pays for transformer towers,
whose time goes into MatMul. It makes CNNs slower (ResNet-50 went from 23 to 3.8 items/s here:
ConvInteger has no fast kernel), so CNNs get static QDQ quantization with calibration images.

Dynamic int8 tries scopes from the fastest to the most accurate and keeps the first whose lowest
cosine to fp32 on the check inputs (the calibration set) reaches `INT8_MIN_COSINE`, else the most
accurate one (`SCOPES`). On all-MiniLM-L6-v2's fused graph, 256 calibration sentences, one thread:

| scope | min / mean cosine | speed vs fp32 |
| --- | --- | --- |
| `all` (fused attention as QAttention) | 0.879 / 0.972 | 1.90x |
| `no-attention` (attention left fp32) | 0.989 / 0.994 | 1.39x |
| `no-gelu-input` (also the MatMuls reading a GELU's output) | 0.996 / 0.998 | 1.17x |

The plain (unfused) graph quantized whole gave 0.980 / 0.992, 1.50x. The GELU's outputs carry the
outliers that a per-tensor activation scale rounds away; the attention's packed QKV input is
quantized with 7-bit weights (`reduce_range`) by onnxruntime's QAttention.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from indexers.export.common import run_onnx
from indexers.manifest import INT8_MIN_COSINE, Int8Scope, Quantization, QuantMethod
from mmsearch.errors import ConfigError, ExportError

log = logging.getLogger(__name__)

METHODS: tuple[QuantMethod, ...] = ("dynamic-int8", "static-qdq-int8")
# Dynamic int8's scopes, fastest first (see the module docstring).
SCOPES: tuple[Int8Scope, ...] = ("all", "no-attention", "no-gelu-input")
_GELU_OPS = {"Gelu", "BiasGelu", "FastGelu", "QuickGelu"}


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
    scopes: tuple[Int8Scope, ...] = SCOPES if method == "dynamic-int8" else ("all",)
    record = _best_scope(Path(fp32_path), Path(out_path), method, scopes, check_feeds, calibration_feeds or ())
    if record.cosine_to_fp32_min < INT8_MIN_COSINE:
        log.warning(
            "int8 %s drifts from fp32: min cosine %.4f < %s (mean %.4f), so precision='auto' loads the fp32 graph",
            fp32_path.name,
            record.cosine_to_fp32_min,
            INT8_MIN_COSINE,
            record.cosine_to_fp32_mean,
        )
    return record


def _best_scope(
    fp32_path: Path,
    out_path: Path,
    method: QuantMethod,
    scopes: Sequence[Int8Scope],
    check_feeds: Sequence[dict[str, np.ndarray]],
    calibration_feeds: Sequence[dict[str, np.ndarray]],
) -> Quantization:
    """Quantize with each scope in turn until one reaches `INT8_MIN_COSINE`; keep it, else the most accurate."""
    reference = [run_onnx(fp32_path, feeds) for feeds in check_feeds]
    best: Quantization | None = None
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _pre_process(fp32_path, Path(tmp) / "prepared.onnx")
        for scope in scopes:
            candidate = Path(tmp) / f"{scope}.onnx"
            try:
                _quantize(prepared, candidate, method, scope, calibration_feeds)
            except Exception as e:  # onnxruntime's quantizer raises many types; all mean the same here
                raise ExportError(f"int8 quantization of {fp32_path.name} failed: {e}") from e
            outputs = [run_onnx(candidate, feeds) for feeds in check_feeds]
            cosines = np.concatenate([_row_cosine(r, o) for r, o in zip(reference, outputs, strict=True)])
            record = Quantization(
                method=method,
                scope=scope,
                cosine_to_fp32_mean=float(cosines.mean()),
                cosine_to_fp32_min=float(cosines.min()),
            )
            log.info("int8 %s, scope %s: cosine to fp32 min %.4f, mean %.4f", fp32_path.name, scope,
                     record.cosine_to_fp32_min, record.cosine_to_fp32_mean)  # fmt: skip
            if best is None or record.cosine_to_fp32_min > best.cosine_to_fp32_min:
                best = record
                candidate.replace(out_path)
            if record.cosine_to_fp32_min >= INT8_MIN_COSINE:
                break
    if best is None:
        raise ConfigError("quantize_tower needs at least one scope")
    return best


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
    prepared: Path,
    out_path: Path,
    method: QuantMethod,
    scope: Int8Scope,
    calibration_feeds: Sequence[dict[str, np.ndarray]],
) -> None:
    with _quiet_quantizer():
        _run_quantizer(prepared, out_path, method, scope, calibration_feeds)


class _DropTypeWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # onnxruntime's quantizer logs this to the root logger for every output of a contrib
        # operator (fused Attention, SkipLayerNormalization) that onnx's shape inference skips.
        return not record.getMessage().startswith("Failed to infer data type")


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    quiet = _DropTypeWarnings()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def _run_quantizer(
    prepared: Path,
    out_path: Path,
    method: QuantMethod,
    scope: Int8Scope,
    calibration_feeds: Sequence[dict[str, np.ndarray]],
) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    if method == "dynamic-int8":
        ops = [op for op in IntegerOpsRegistry if scope == "all" or op != "Attention"]
        excluded = _gelu_fed_matmuls(prepared) if scope == "no-gelu-input" else []
        # Per-channel weight scales: per-tensor took MiniLM's cosine to fp32 down to 0.947.
        quantize_dynamic(
            str(prepared),
            str(out_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=ops,
            nodes_to_exclude=excluded,
        )
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


def _gelu_fed_matmuls(path: Path) -> list[str]:
    """The MatMul nodes whose input is a GELU's output: a fused GELU, or the `x * ...` Mul closing an
    erf, tanh or sigmoid GELU."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}

    def gelu(name: str, depth: int = 0) -> bool:
        node = producer.get(name)
        if node is None or depth > 3:
            return False
        if node.op_type in _GELU_OPS or (depth and node.op_type in ("Erf", "Tanh", "Sigmoid")):
            return True
        return node.op_type in ("Mul", "Add") and any(gelu(i, depth + 1) for i in node.input)

    return [n.name for n in graph.node if n.op_type == "MatMul" and n.name and gelu(n.input[0])]


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
