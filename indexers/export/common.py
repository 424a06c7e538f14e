"""The export skeleton every family runs, and its steps.

`run_export`: stage a folder -> the family's build (resolve weights, build the torch model, write
the tokenizer, export each tower's fp32 graph, compute PyTorch's reference outputs) -> parity check
of every graph against PyTorch -> the towers that opt in optimised (`indexers.export.optimize`)
and checked against PyTorch again -> with `quantize="int8"`, the calibration set written and an
int8 graph beside each fp32 one, compared with it on that set -> the manifest (both graphs per
tower, with their sha256, the optimisation, the calibration set and the int8 cosine to fp32) and
the verification stamp -> the folder moved into place.

File convention: tower `<key>` has its fp32 graph in `<key>.onnx`, always written and kept, and
with int8 its int8 graph in `<key>.int8.onnx`; calibration sets are under `calibration/`.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.metadata
import io
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from indexers.integrity import record_verified
from indexers.manifest import (
    CalibrationSet,
    GraphOptimization,
    Int8Graph,
    Manifest,
    Quantization,
    QuantMethod,
    Tower,
    TowerInfo,
    WeightsSource,
)
from indexers.protocol import MODEL_NAME_RULE, is_model_name
from mmsearch.errors import ConfigError, ExportError, ParityError
from mmsearch.files import sha256_file, writing

log = logging.getLogger(__name__)
# Where `stage` reports the export's steps while `run_export` runs (a command prints them).
_PROGRESS: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("progress", default=None)
_STARTED: contextvars.ContextVar[float] = contextvars.ContextVar("started", default=0.0)

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
        optimize: save the fused graph of the towers that gain from it (see `indexers.export.optimize`).
        overwrite: replace an existing, non-empty output folder.
        name: the model's name, the `<model>` of its vector names (`<model>.image`, `<model>.text`);
            None for the output folder's name. The same rule for every family.
    """

    model_config = ConfigDict(extra="forbid")

    opset: int = Field(default=DEFAULT_OPSET, ge=DEFAULT_OPSET)
    tolerance: float = Field(default=DEFAULT_TOLERANCE, gt=0)
    quantize: Literal["none", "int8"] = "none"
    optimize: bool = True
    overwrite: bool = False
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str | None) -> str | None:
        if name is not None and not is_model_name(name):
            raise ValueError(f"model name {name!r} cannot name vectors: use {MODEL_NAME_RULE}")
        return name


def model_name(options: ExportOptions, out_dir: Path) -> str:
    """The exported model's name: `options.name`, else the output folder's name.

    Raises:
        ConfigError: the folder's name cannot name vectors (then `name` must be given).
    """
    name = options.name or Path(out_dir).name
    if not is_model_name(name):
        raise ConfigError(
            f"the model would be named {name!r} after its folder, which cannot name vectors ({MODEL_NAME_RULE}); "
            f"pass a name (--name) or choose another --out folder"
        )
    return name


@contextlib.contextmanager
def reporting(progress: Callable[[str], None] | None) -> Iterator[None]:
    """Within the block, exports report each step to `progress` (None: only to the log)."""
    token = _PROGRESS.set(progress)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def stage(message: str) -> None:
    """Report one step of the running export (see `reporting`), with the seconds since it began."""
    log.info("%s", message)
    progress = _PROGRESS.get()
    if progress is not None:
        progress(f"[{time.perf_counter() - _STARTED.get():6.1f} s] {message}")


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
    stage(f"exporting the {path.stem} tower to ONNX")
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
def staging_folder(out_dir: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a scratch folder beside `out_dir`; on success it replaces `out_dir` in one rename.

    A failed or interrupted export therefore never leaves a half-written model folder behind.
    """
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{str(out_dir)!r} is a file; give a folder to write the model into (--out DIR)")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ExportError(f"{str(out_dir)!r} exists and is not empty; pass --overwrite to replace it")
    with writing(out_dir, "model folder"):
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


# --- the skeleton ------------------------------------------------------------------------------

Feeds = dict[str, np.ndarray]
FamilyName = Literal["clip", "resnet", "bert"]


def graph_file(key: str, precision: Literal["fp32", "int8"] = "fp32") -> str:
    """The file name of tower `key`'s graph: `<key>.onnx`, or `<key>.int8.onnx`."""
    return f"{key}.onnx" if precision == "fp32" else f"{key}.int8.onnx"


@dataclass(frozen=True)
class Int8Plan:
    """How a tower is quantized when the export asks for int8 (it is then compared with fp32 on
    the calibration set stored with the model, `indexers.export.calibration`).

    Attributes:
        method: `dynamic-int8` (transformers) or `static-qdq-int8` (CNNs).
        calibration: builds static int8's calibration batches, for the activation ranges (called
            only when quantizing).
    """

    method: QuantMethod
    calibration: Callable[[], Sequence[Feeds]] | None = None


@dataclass(frozen=True)
class TowerExport:
    """One tower as a family's build hands it over, its fp32 graph written to `graph_file(key)`.

    Attributes:
        key: the tower's name in the manifest (`image`, `text`).
        info: what the tower takes and gives (modality, dim, output, preprocessing or tokenizer).
        feeds: the parity check's inputs to the graph.
        reference: PyTorch's output on the same inputs.
        int8: how to quantize it.
        optimize: save its graph optimised (fused attention, LayerNorm, GELU), parity permitting.
    """

    key: str
    info: TowerInfo
    feeds: Feeds
    reference: np.ndarray
    int8: Int8Plan
    optimize: bool = False


@dataclass(frozen=True)
class Exported:
    """What a family's build made in the staging folder.

    Attributes:
        architecture: the manifest's architecture.
        weights: where the weights came from.
        towers: the towers, in manifest order.
        toolchain: distributions whose versions the manifest records besides torch, onnx, onnxruntime.
    """

    architecture: str
    weights: WeightsSource
    towers: tuple[TowerExport, ...]
    toolchain: tuple[str, ...] = ()


def run_export(
    family: FamilyName, options: ExportOptions, out_dir: Path, build: Callable[[Path], Exported]
) -> Manifest:
    """Export a model with the skeleton: `build(stage)`, parity, optional int8, manifest, move into place.

    Args:
        family: the manifest's family.
        options: the export options (opset, tolerance, quantize, overwrite).
        out_dir: the model folder; written atomically.
        build: the family's steps up to the fp32 graphs, given the staging folder to write into.

    Each step (building, exporting each tower, parity check, quantizing, manifest) is reported
    through `stage` as it starts, to whoever `reporting` names.

    Returns:
        The manifest written to `out_dir`.

    Raises:
        ExportError: `out_dir` exists (without `overwrite`), or the export or quantizer failed.
        ParityError: an ONNX graph and PyTorch differ by more than `options.tolerance`.
    """
    out_dir = Path(out_dir)
    name = model_name(options, out_dir)
    started = time.perf_counter()
    token = _STARTED.set(started)
    try:
        return _run_stages(family, options, out_dir, name, build, started)
    finally:
        _STARTED.reset(token)


def _run_stages(
    family: FamilyName,
    options: ExportOptions,
    out_dir: Path,
    name: str,
    build: Callable[[Path], Exported],
    started: float,
) -> Manifest:
    with staging_folder(out_dir, overwrite=options.overwrite) as folder:
        stage(f"building the {family} model in PyTorch and loading its weights")
        exported = build(folder)
        label = f"{family} {exported.architecture}"
        stage(f"checking {', '.join(t.key for t in exported.towers)} against PyTorch (parity)")
        diffs = check_towers(label, folder, exported.towers, options.tolerance)
        optimized = optimize_towers(label, folder, exported.towers, options.tolerance) if options.optimize else {}
        diffs.update({key: diff for key, (_, diff) in optimized.items()})
        int8 = quantize_towers(folder, exported.towers) if options.quantize == "int8" else {}
        stage(f"writing the manifest and moving the model folder to {out_dir}")
        records = {
            t.key: tower_record(folder, t, int8.get(t.key), optimized.get(t.key, (None, 0.0))[0])
            for t in exported.towers
        }
        manifest = Manifest(
            name=name,
            family=family,
            architecture=exported.architecture,
            weights=exported.weights,
            opset=options.opset,
            towers=records,
            parity_max_abs_diff=diffs,
            parity_tolerance=options.tolerance,
            toolchain=toolchain_versions(*exported.toolchain),
        )
        manifest.write(folder)
        record_verified(folder, manifest.files())
    log.info(
        "%s %s exported to %s in %.1fs; parity %s",
        family,
        manifest.architecture,
        out_dir,
        time.perf_counter() - started,
        diffs,
    )
    return manifest


def check_towers(name: str, folder: Path, towers: Sequence[TowerExport], tolerance: float) -> dict[str, float]:
    """Run each tower's fp32 graph on its parity feeds and compare with PyTorch (see `check_parity`)."""
    expected = {t.key: t.reference for t in towers}
    actual = {t.key: run_onnx(folder / graph_file(t.key), t.feeds) for t in towers}
    return check_parity(name, expected, actual, tolerance)


def optimize_towers(
    name: str, stage_dir: Path, towers: Sequence[TowerExport], tolerance: float
) -> dict[str, tuple[GraphOptimization, float]]:
    """Replace each opted-in tower's fp32 graph by its optimised one when that still matches PyTorch.

    A tower whose optimisation fails, fuses nothing or breaks parity keeps its plain graph, with a
    warning saying why (its manifest record then has no `optimization`).

    Returns:
        Tower key -> (what was fused, the optimised graph's max abs diff to PyTorch).
    """
    out: dict[str, tuple[GraphOptimization, float]] = {}
    for t in towers:
        if t.optimize:
            stage(f"optimising {t.key}'s graph (fusing attention, LayerNorm, GELU) and checking it")
            plain = stage_dir / graph_file(t.key)
            candidate = plain.with_name(f".{plain.stem}.optimized.onnx")
            try:
                done = _optimize(name, t, plain, candidate, tolerance)
            finally:
                candidate.unlink(missing_ok=True)
            if done is not None:
                out[t.key] = done
    return out


def _optimize(
    name: str, tower: TowerExport, plain: Path, candidate: Path, tolerance: float
) -> tuple[GraphOptimization, float] | None:
    from indexers.export.optimize import optimize_graph

    try:
        record = optimize_graph(plain, candidate)
        if not record.fused:
            log.warning("%s: graph optimisation fused nothing in %s; keeping the plain graph", name, plain.name)
            return None
        actual = {tower.key: run_onnx(candidate, tower.feeds)}
        diff = check_parity(f"{name} (optimised)", {tower.key: tower.reference}, actual, tolerance)
    except Exception as e:  # noqa: BLE001 - a failed optimisation leaves the checked plain graph in place
        log.warning("%s: keeping the plain %s, its optimised graph failed: %s", name, plain.name, e)
        return None
    candidate.replace(plain)
    return record, diff[tower.key]


def quantize_towers(stage_dir: Path, towers: Sequence[TowerExport]) -> dict[str, tuple[Int8Graph, CalibrationSet]]:
    """Write `<key>.int8.onnx` beside each tower's fp32 graph, compared with it on the calibration set.

    Returns:
        Tower key -> (the int8 graph's manifest record, the calibration set's record).
    """
    from indexers.export import calibration
    from indexers.export.quantize import quantize_tower

    out: dict[str, tuple[Int8Graph, CalibrationSet]] = {}
    for t in towers:
        stage(f"quantizing {t.key} to int8 ({t.int8.method})")
        path = stage_dir / graph_file(t.key, "int8")
        stored = calibration.write_set(stage_dir, t.info)
        record = quantize_tower(
            stage_dir / graph_file(t.key),
            path,
            method=t.int8.method,
            check_feeds=calibration.feeds(stage_dir, t.info, stored),
            calibration_feeds=t.int8.calibration() if t.int8.calibration else None,
        )
        out[t.key] = (int8_record(path, record), stored)
    return out


def int8_record(path: Path, quantization: Quantization) -> Int8Graph:
    return Int8Graph(file=path.name, sha256=sha256_file(path), **dict(quantization))


def tower_record(
    folder: Path,
    tower: TowerExport,
    int8: tuple[Int8Graph, CalibrationSet] | None,
    optimization: GraphOptimization | None,
) -> Tower:
    fp32 = folder / graph_file(tower.key)
    return Tower(
        **dict(tower.info),
        file=fp32.name,
        sha256=sha256_file(fp32),
        int8=int8[0] if int8 else None,
        calibration=int8[1] if int8 else None,
        optimization=optimization,
    )
