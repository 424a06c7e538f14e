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

Run: `mmsearch bench index --items 1000` (add `--json` for a machine-readable line).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from indexers.images import load_image
from indexers.runtime import ImageEncoder


@dataclass(frozen=True)
class IndexBenchResult:
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
    photos = make_photos(folder / "photos", n, size)
    catalog = folder / "catalog.jsonl"
    with open(catalog, "w", encoding="utf-8") as f:
        for i, p in enumerate(photos):
            f.write(json.dumps({"id": f"item-{i:05d}", "title": f"item {i}", "images": [f"photos/{p.name}"]}) + "\n")
    return catalog


def raw_rate(encoder: ImageEncoder, paths: list[Path], batch_size: int) -> tuple[float, float]:
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
    from indexers.export import export_model

    out = folder / "resnet18"
    export_model("resnet", out, architecture="resnet18", weights="none")
    return out


def run(
    items: int = 1000,
    *,
    model: Path | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    threads: int | None = None,
    device: str = "auto",
    image_size: int = 320,
    rounds: int = 1,
    log: Callable[[str], None] = print,
) -> IndexBenchResult:
    """Alternate raw, pipeline, raw, pipeline... (`rounds` pipeline runs, each into a new collection).

    Each pipeline run is compared with the mean of the raw runs on either side of it; the result
    holds the median round.
    """
    from mmsearch.indexing.config import EncoderConfig, IndexConfig, IndexSettings
    from mmsearch.indexing.index import Index
    from mmsearch.storage import StoreSettings

    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-index-") as tmp:
        folder = Path(tmp)
        if model is None:
            log("exporting resnet18 with random weights (the weights do not change the speed)...")
            model = export_default_model(folder)
        log(f"generating {items} photos of {image_size}x{image_size} px...")
        catalog = make_catalog(folder / "catalog", items, image_size)
        paths = sorted((folder / "catalog" / "photos").iterdir())
        settings = IndexSettings(
            batch_size=batch_size,
            threads=threads,
            device=device,  # type: ignore[arg-type]
            **({"workers": workers} if workers else {}),
        )
        encoders = (EncoderConfig(model=model, text_fields=()),)
        raws: list[tuple[float, float]] = []  # (items per wall s, items per cpu s)
        pipes: list[tuple[float, float, float, float]] = []  # (per wall s, per cpu s, seconds, encoder busy)
        key, on = "", "cpu"
        for r in range(rounds):
            config = IndexConfig(
                store=StoreSettings(path=folder / "store", collection=f"bench-{r}"), index=settings, encoders=encoders
            )
            with Index.open(config) as index:
                encoder = index.embedders[0].encoder
                key, on = index.embedders[0].key, ("cuda" if encoder.session.on_cuda else "cpu")
                if r == 0:
                    log(f"model {key} on {on}, batch {batch_size}, {settings.workers} decode workers")
                    raws.append(raw_rate(encoder, paths, batch_size))
                    log(f"raw encoder: {raws[-1][0]:.1f} items/s ({raws[-1][1]:.1f} per CPU s)")
                c0 = time.process_time()
                summary = index.sync(catalog)
                cpu = time.process_time() - c0
                if summary.indexed != items:
                    raise RuntimeError(f"the pipeline indexed {summary.indexed} of {items} items: {summary}")
                pipes.append((items / summary.seconds, items / cpu, summary.seconds, summary.encoder_busy))
                log(
                    f"pipeline: {pipes[-1][0]:.1f} items/s ({pipes[-1][1]:.1f} per CPU s, {summary.seconds:.1f} s, "
                    f"encoder busy {100 * summary.encoder_busy:.1f}% of it)"
                )
                raws.append(raw_rate(encoder, paths, batch_size))
                log(f"raw encoder: {raws[-1][0]:.1f} items/s ({raws[-1][1]:.1f} per CPU s)")
        # Each pipeline run against the mean of the raw runs just before and just after it.
        around = [((raws[i][0] + raws[i + 1][0]) / 2, (raws[i][1] + raws[i + 1][1]) / 2) for i in range(rounds)]
        wall_ratios = [p[0] / a[0] for p, a in zip(pipes, around, strict=True)]
        cpu_ratios = [p[1] / a[1] for p, a in zip(pipes, around, strict=True)]
        mid = sorted(range(rounds), key=lambda i: wall_ratios[i])[rounds // 2]
        return IndexBenchResult(
            model=key,
            device=on,
            items=items,
            batch_size=batch_size,
            workers=settings.workers,
            raw_items_per_s=round(around[mid][0], 2),
            pipeline_items_per_s=round(pipes[mid][0], 2),
            ratio=round(wall_ratios[mid], 3),
            pipeline_seconds=round(pipes[mid][2], 2),
            raw_items_per_cpu_s=round(around[mid][1], 2),
            pipeline_items_per_cpu_s=round(pipes[mid][1], 2),
            cpu_ratio=round(sorted(cpu_ratios)[rounds // 2], 3),
            encoder_busy=pipes[mid][3],
            rounds=rounds,
            wall_ratios=tuple(round(r, 3) for r in wall_ratios),
            cpu_ratios=tuple(round(r, 3) for r in cpu_ratios),
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mmsearch bench index", description="mmsearch index end to end vs the encoder alone"
    )
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: resnet18, random weights)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="decode threads (default: 2 x cores)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=1, help="pipeline runs, each between two raw runs")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)
    result = run(
        args.items,
        model=args.model,
        batch_size=args.batch_size,
        workers=args.workers,
        threads=args.threads,
        device=args.device,
        image_size=args.image_size,
        rounds=args.rounds,
    )
    print(
        f"pipeline {result.pipeline_items_per_s:.1f} items/s vs raw encoder {result.raw_items_per_s:.1f} "
        f"items/s: {100 * result.ratio:.1f}% ({result.model}, {result.device}, batch {result.batch_size}, "
        f"median of {result.rounds} round(s))"
    )
    print(
        f"per CPU second: pipeline {result.pipeline_items_per_cpu_s:.1f} vs raw {result.raw_items_per_cpu_s:.1f}: "
        f"{100 * result.cpu_ratio:.1f}% (what the pipeline reaches when every core is busy)"
    )
    print(f"the encoder was busy {100 * result.encoder_busy:.1f}% of the pipeline's wall time")
    if args.json:
        print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
