"""Indexing benchmark: `mmsearch index` end to end against the encoder alone, same model, same batch size.

- Catalog: `--items` (default 1,000) generated JPEG photos (`--image-size` px, drawn shapes on noise,
  so they compress and decode like photos rather than flat art), one per item, with a title.
- Raw encoder rate: the image tower's `embed_pixels` on batches that were decoded and preprocessed
  beforehand (that time is not counted): the best the pipeline could do.
- Pipeline rate: `Index.sync` on the catalog into a fresh Qdrant Edge store, timed from the first
  line read to the last item written and the HNSW index built: reading, hashing, the unchanged
  lookup, decoding and preprocessing in the worker threads, encoding, upserting.
The raw rate is measured before and after each pipeline run and averaged, so a machine that slows
down or speeds up during the run favours neither side; with `--rounds N` the median round is kept.
Both are also given per CPU second of this process (all its threads): that ratio is what the
pipeline reaches on a machine whose cores are all busy (decoding then costs encoder time), and,
unlike wall-clock rates, it holds steady on a machine shared with other jobs.

Model: a model folder (`--model`), or by default ResNet-18 with random weights exported on the fly
(needs the `export` extra): the weights do not change the speed.

Run: `mmsearch bench index --items 1000` (add `--json` for the figures as JSON); from Python,
`format_result(run(IndexBenchConfig(items=1000)))`.
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field

from indexers.images import load_image
from indexers.runtime import ImageEncoder
from mmsearch.errors import ConfigError, MmsearchError
from mmsearch.indexing.config import EncoderConfig, IndexConfig, IndexSettings
from mmsearch.indexing.index import Index
from mmsearch.storage import StoreSettings

_log = logging.getLogger(__name__)


class IndexBenchConfig(BaseModel):
    """What to measure.

    Attributes:
        items: generated photos in the catalog, one item each.
        model: an image model folder (`mmsearch export`); None exports ResNet-18 with random
            weights into a temporary folder (needs the `export` extra).
        image_size: side of the generated JPEGs, in pixels.
        rounds: pipeline runs, each between two runs of the encoder alone; the median round is kept.
        index: the pipeline's settings (batch size, decode workers, device, onnxruntime threads),
            the encoder alone runs on the same batch size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: int = Field(1000, ge=1)
    model: Path | None = None
    image_size: int = Field(320, ge=16, le=4096)
    rounds: int = Field(1, ge=1)
    index: IndexSettings = Field(default_factory=IndexSettings)


@dataclass(frozen=True)
class IndexBenchResult:
    """The median round's figures (rates in items per second).

    Attributes:
        model, device: the vector key benchmarked and where it ran (`cpu` or `cuda`).
        items, batch_size, workers: the catalog size and the pipeline's settings.
        raw_items_per_s: the encoder alone on pre-decoded batches (mean of the runs around the round).
        pipeline_items_per_s: `Index.sync` end to end.
        ratio: pipeline over raw, wall clock.
        pipeline_seconds: the pipeline run's wall time.
        raw_items_per_cpu_s, pipeline_items_per_cpu_s, cpu_ratio: the same per CPU second of the
            process (the median of the rounds' CPU ratios).
        encoder_busy: the share of the pipeline's wall time spent inside the encoder.
        rounds: pipeline runs made; `wall_ratios` and `cpu_ratios` hold every round's ratios.
    """

    model: str
    device: str
    items: int
    batch_size: int
    workers: int
    raw_items_per_s: float
    pipeline_items_per_s: float
    ratio: float
    pipeline_seconds: float
    raw_items_per_cpu_s: float
    pipeline_items_per_cpu_s: float
    cpu_ratio: float
    encoder_busy: float
    rounds: int
    wall_ratios: tuple[float, ...]
    cpu_ratios: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Rate:
    """Items per wall-clock second and per CPU second of this process."""

    wall: float
    cpu: float


@dataclass(frozen=True)
class _PipelineRun:
    rate: _Rate
    seconds: float
    encoder_busy: float


def make_photos(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """`n` distinct JPEG photos: a few random shapes over noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        base = rng.integers(0, 256, 3)
        noise = rng.normal(0, 18, (size, size, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, "RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
            x1, y1 = x0 + int(rng.integers(size // 8, size // 3)), y0 + int(rng.integers(size // 8, size // 3))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=color)
        path = folder / f"photo-{i:05d}.jpg"
        image.save(path, "JPEG", quality=88)
        paths.append(path)
    return paths


def make_catalog(folder: Path, n: int, size: int) -> Path:
    """A JSONL catalog of `n` items, each with a title and one generated photo."""
    photos = make_photos(folder / "photos", n, size)
    catalog = folder / "catalog.jsonl"
    with open(catalog, "w", encoding="utf-8") as f:
        for i, p in enumerate(photos):
            f.write(json.dumps({"id": f"item-{i:05d}", "title": f"item {i}", "images": [f"photos/{p.name}"]}) + "\n")
    return catalog


def raw_rate(encoder: ImageEncoder, paths: Sequence[Path], batch_size: int) -> tuple[float, float]:
    """Items per wall-clock second and per CPU second of `embed_pixels` alone, on batches decoded and
    preprocessed before the clocks start."""
    encoder.embed_pixels(np.stack([encoder.preprocess(paths[0])] * min(batch_size, 2)))  # warm-up
    wall = cpu = 0.0
    for start in range(0, len(paths), batch_size):
        pixels = np.stack([encoder.preprocessor(load_image(p)) for p in paths[start : start + batch_size]])
        c0, t0 = time.process_time(), time.perf_counter()
        encoder.embed_pixels(pixels)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return len(paths) / wall, len(paths) / cpu


def export_default_model(folder: Path) -> Path:
    """ResNet-18 with random weights, exported into `folder/resnet18` (needs the `export` extra)."""
    from indexers.export import export_model

    out = folder / "resnet18"
    export_model("resnet", out, architecture="resnet18", weights="none")
    return out


def _image_encoder(index: Index) -> ImageEncoder:
    encoder = index.embedders[0].encoder
    if not isinstance(encoder, ImageEncoder):  # plan_embedders puts an image tower first
        raise ConfigError(f"the index benchmark needs a model with an image tower; {index.embedders[0].key} is text")
    return encoder


def _raw(encoder: ImageEncoder, paths: Sequence[Path], batch_size: int, log: Callable[[str], None]) -> _Rate:
    rate = _Rate(*raw_rate(encoder, paths, batch_size))
    log(f"raw encoder: {rate.wall:.1f} items/s ({rate.cpu:.1f} per CPU s)")
    return rate


def _pipeline(index: Index, catalog: Path, items: int, log: Callable[[str], None]) -> _PipelineRun:
    c0 = time.process_time()
    summary = index.sync(catalog)
    cpu = time.process_time() - c0
    if summary.indexed != items:
        raise MmsearchError(f"the pipeline indexed {summary.indexed} of {items} generated items: {summary}")
    run = _PipelineRun(_Rate(items / summary.seconds, items / cpu), summary.seconds, summary.encoder_busy)
    log(
        f"pipeline: {run.rate.wall:.1f} items/s ({run.rate.cpu:.1f} per CPU s, {run.seconds:.1f} s, "
        f"encoder busy {100 * run.encoder_busy:.1f}% of it)"
    )
    return run


def _rounds(
    cfg: IndexBenchConfig, model: Path, folder: Path, catalog: Path, log: Callable[[str], None]
) -> tuple[str, str, list[_Rate], list[_PipelineRun]]:
    """Raw, pipeline, raw, pipeline, ... raw: `rounds` pipeline runs, each into a new collection."""
    paths = sorted((catalog.parent / "photos").iterdir())
    batch = cfg.index.batch_size
    encoders = (EncoderConfig(model=model, text_fields=()),)
    raws: list[_Rate] = []
    pipes: list[_PipelineRun] = []
    key = device = ""
    for r in range(cfg.rounds):
        store = StoreSettings(path=folder / "store", collection=f"bench-{r}")
        with Index.open(IndexConfig(store=store, index=cfg.index, encoders=encoders)) as index:
            encoder = _image_encoder(index)
            key, device = index.embedders[0].key, ("cuda" if encoder.session.on_cuda else "cpu")
            if r == 0:
                log(f"model {key} on {device}, batch {batch}, {cfg.index.workers} decode workers")
                raws.append(_raw(encoder, paths, batch, log))
            pipes.append(_pipeline(index, catalog, cfg.items, log))
            raws.append(_raw(encoder, paths, batch, log))
    return key, device, raws, pipes


def _result(
    cfg: IndexBenchConfig, key: str, device: str, raws: Sequence[_Rate], pipes: Sequence[_PipelineRun]
) -> IndexBenchResult:
    # Each pipeline run against the mean of the raw runs just before and just after it.
    around = [_Rate((a.wall + b.wall) / 2, (a.cpu + b.cpu) / 2) for a, b in itertools.pairwise(raws)]
    wall_ratios = [p.rate.wall / a.wall for p, a in zip(pipes, around, strict=True)]
    cpu_ratios = [p.rate.cpu / a.cpu for p, a in zip(pipes, around, strict=True)]
    n = len(pipes)
    mid = sorted(range(n), key=lambda i: wall_ratios[i])[n // 2]
    return IndexBenchResult(
        model=key,
        device=device,
        items=cfg.items,
        batch_size=cfg.index.batch_size,
        workers=cfg.index.workers,
        raw_items_per_s=round(around[mid].wall, 2),
        pipeline_items_per_s=round(pipes[mid].rate.wall, 2),
        ratio=round(wall_ratios[mid], 3),
        pipeline_seconds=round(pipes[mid].seconds, 2),
        raw_items_per_cpu_s=round(around[mid].cpu, 2),
        pipeline_items_per_cpu_s=round(pipes[mid].rate.cpu, 2),
        cpu_ratio=round(sorted(cpu_ratios)[n // 2], 3),
        encoder_busy=pipes[mid].encoder_busy,
        rounds=n,
        wall_ratios=tuple(round(r, 3) for r in wall_ratios),
        cpu_ratios=tuple(round(r, 3) for r in cpu_ratios),
    )


def run(config: IndexBenchConfig | None = None, log: Callable[[str], None] = _log.info) -> IndexBenchResult:
    """Generate the catalog, then alternate the encoder alone and the pipeline on it.

    Each pipeline run is compared with the mean of the encoder-alone runs on either side of it;
    the result holds the median round.

    Args:
        config: what to measure (default: 1,000 photos of 320 px, ResNet-18, batch 32, one round).
        log: called with progress lines (default: this module's logger, at INFO).

    Returns:
        The median round's figures.

    Raises:
        ConfigError: the model has no image tower, or invalid settings.
        ModelError: the model folder cannot be loaded.
        DependencyError: no model given and the `export` extra is not installed.
    """
    cfg = config or IndexBenchConfig()
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-index-") as tmp:
        folder = Path(tmp)
        model = cfg.model
        if model is None:
            log("exporting resnet18 with random weights (the weights do not change the speed)...")
            model = export_default_model(folder)
        log(f"generating {cfg.items} photos of {cfg.image_size}x{cfg.image_size} px...")
        catalog = make_catalog(folder / "catalog", cfg.items, cfg.image_size)
        return _result(cfg, *_rounds(cfg, model, folder, catalog, log))


def format_result(result: IndexBenchResult) -> str:
    """The figures in three lines: wall clock, per CPU second, and the encoder's busy share."""
    r = result
    return "\n".join(
        [
            f"pipeline {r.pipeline_items_per_s:.1f} items/s vs raw encoder {r.raw_items_per_s:.1f} items/s: "
            f"{100 * r.ratio:.1f}% ({r.model}, {r.device}, batch {r.batch_size}, median of {r.rounds} round(s))",
            f"per CPU second: pipeline {r.pipeline_items_per_cpu_s:.1f} vs raw {r.raw_items_per_cpu_s:.1f}: "
            f"{100 * r.cpu_ratio:.1f}% (what the pipeline reaches when every core is busy)",
            f"the encoder was busy {100 * r.encoder_busy:.1f}% of the pipeline's wall time",
        ]
    )


__all__ = ["IndexBenchConfig", "IndexBenchResult", "format_result", "make_catalog", "make_photos", "raw_rate", "run"]
