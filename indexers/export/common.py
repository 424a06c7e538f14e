"""Shared export plumbing: dynamo export to one .onnx file, parity check, toolchain versions."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from mmsearch.errors import ExportError, ParityError

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
# fp32 ONNX vs eager PyTorch differ only by operator fusion and summation order: ~1e-7 on the
# L2-normalised outputs of CLIP and BERT towers, ~1e-6 on ResNet's. 1e-4 on unit-norm vectors
# bounds the cosine change by 5e-9 relative to rank-relevant gaps, and still catches any real
# export bug (a wrong mask, a baked-in shape, a dropped normalisation), which shows as >1e-2.
DEFAULT_TOLERANCE = 1e-4


class ExportOptions(BaseModel):
    """Options every family's export takes.

    Attributes:
        opset: ONNX opset; 18 is the dynamo exporter's own (asking for less silently gives 18).
        tolerance: max abs difference allowed between ONNX and PyTorch embeddings.
        quantize: `int8` also quantizes the graphs after the fp32 parity check.
        overwrite: replace an existing, non-empty output folder.
    """

    model_config = ConfigDict(extra="forbid")

    opset: int = Field(default=DEFAULT_OPSET, ge=DEFAULT_OPSET)
    tolerance: float = Field(default=DEFAULT_TOLERANCE, gt=0)
    quantize: Literal["none", "int8"] = "none"
    overwrite: bool = False


def export_onnx(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    *,
    input_names: list[str],
    output_name: str,
    dynamic_shapes: Any,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export `module` with the dynamo exporter into a single self-contained .onnx file.

    The example batch must have at least 2 rows: with 1 the exporter specialises the batch axis.
    """
    if example[0].shape[0] < 2:
        raise ExportError("export needs an example batch of at least 2 rows (batch 1 gets baked in)")
    module = module.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = io.StringIO()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(noise):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example,
                str(path),
                input_names=input_names,
                output_names=[output_name],
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as e:  # the exporter raises many types; all mean the same to the user
        raise ExportError(f"torch.onnx.export failed for {path.name}: {e}") from e
    written = graph_opset(path)
    if written != opset:
        # The dynamo exporter's down-converter fails silently (it only logs), leaving its own opset.
        raise ExportError(f"asked for opset {opset} but the exporter wrote opset {written}; use opset {written}")
    return path


def graph_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def run_onnx(path: Path, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feeds.items() if k in names})[0]


def check_parity(
    name: str,
    expected: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, float]:
    """Compare PyTorch and ONNX outputs; raise ParityError listing each output's max abs diff."""
    diffs: dict[str, float] = {}
    for key, ref in expected.items():
        got = actual[key]
        if got.shape != ref.shape:
            raise ExportError(f"{name}: output {key!r} has shape {got.shape}, PyTorch gives {ref.shape}")
        diffs[key] = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
    if any(not np.isfinite(d) or d > tolerance for d in diffs.values()):
        raise ParityError(name, diffs, tolerance)
    log.info("%s parity: %s", name, diffs)
    return diffs


def toolchain_versions(*dists: str) -> dict[str, str]:
    out = {}
    for dist in ("torch", "onnx", "onnxruntime", *dists):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@contextlib.contextmanager
def staging_folder(out_dir: Path, *, overwrite: bool = False):  # noqa: ANN201 - a context manager
    """Yield a scratch folder beside `out_dir`; on success it replaces `out_dir` in one rename.

    A failed or interrupted export therefore never leaves a half-written model folder behind.
    """
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ExportError(f"{str(out_dir)!r} exists and is not empty; pass --overwrite to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is meant to be shared and served
    try:
        yield tmp
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
