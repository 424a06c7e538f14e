"""Distributed indexing benchmark: `mmsearch index` against Ray Data and Spark, same rows, same model.

- Catalog: `--items` generated JPEG photos with a title (as `bench index` makes them).
- `mmsearch index`: `Index.sync` into a fresh Qdrant Edge collection, run before and after the
  engines; the baseline is the mean of the two, so a machine that slows down or speeds up during
  the run favours no engine.
- Ray: `MmsearchSink` with `EmbedBatch` on an autoscaling pool of up to `--workers` actors (one
  CPU each), read with `ray.data.read_json`, into a fresh collection.
- Spark: `SparkIndexer` on `local[--workers]`, the rows in `--workers` partitions.
- Each engine's first run is followed by a rerun over the same catalog, where every row is
  unchanged: what a resumed or repeated job costs.
Rates are rows per second of wall time from planning the job (building the `Index`, sink or
indexer) to the last write and the index build; starting Ray or Spark is timed apart. Every run
must store every item, and every rerun embed none, or the benchmark fails.

Run: `mmsearch bench distributed --items 500` (add `--json` for the figures as JSON); from Python,
`format_result(run(DistributedBenchConfig(items=500)))`. Needs the `distributed` extra and Java.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mmsearch.bench.index import export_default_model, make_catalog
from mmsearch.errors import DependencyError, MmsearchError
from mmsearch.indexing.config import EncoderConfig, IndexConfig, IndexSettings
from mmsearch.indexing.index import Index
from mmsearch.storage import StoreSettings

_log = logging.getLogger(__name__)
Engine = Literal["ray", "spark"]


class DistributedBenchConfig(BaseModel):
    """What to measure.

    Attributes:
        items: generated photos in the catalog, one item each.
        model: an image model folder; None exports ResNet-18 with random weights (needs `export`).
        image_size: side of the generated JPEGs, in pixels.
        workers: Ray actors at most, Spark's local cores and partitions.
        engines: which engines to run against `mmsearch index`.
        index: `mmsearch index`'s settings (batch size, decode workers, device, threads); the
            engines' embed steps use the same batch size and limits.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: int = Field(500, ge=1)
    model: Path | None = None
    image_size: int = Field(320, ge=16, le=4096)
    workers: int = Field(2, ge=1, le=256)
    engines: tuple[Engine, ...] = ("ray", "spark")
    index: IndexSettings = Field(default_factory=IndexSettings)


@dataclass(frozen=True)
class EngineRun:
    """One engine's figures (rates in rows per second).

    Attributes:
        engine: `mmsearch index`, `ray` or `spark`.
        rows_per_s, seconds: the first run, into an empty collection.
        rerun_rows_per_s, rerun_seconds: the rerun, every row unchanged.
        ratio, rerun_ratio: against `mmsearch index`'s (first run, rerun) in the same run.
        startup_s: starting the engine (not counted in the runs); None for `mmsearch index`.
    """

    engine: str
    rows_per_s: float
    seconds: float
    rerun_rows_per_s: float
    rerun_seconds: float
    ratio: float = 1.0
    rerun_ratio: float = 1.0
    startup_s: float | None = None


@dataclass(frozen=True)
class DistributedBenchResult:
    """Every engine's figures, `mmsearch index` first (the mean of its runs before and after)."""

    model: str
    items: int
    workers: int
    batch_size: int
    runs: tuple[EngineRun, ...]
    index_rows_per_s: tuple[float, float]

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Timed:
    seconds: float
    indexed: int
    stored: int


def _check(engine: str, first: _Timed, rerun: _Timed, items: int) -> None:
    if first.indexed != items or first.stored != items or rerun.indexed != 0:
        raise MmsearchError(
            f"{engine}: indexed {first.indexed} and stored {first.stored} of {items} items, then re-indexed "
            f"{rerun.indexed} on the rerun (expected {items}, {items}, 0)"
        )


def _index_runs(config: IndexConfig, catalog: Path) -> tuple[_Timed, _Timed]:
    out = []
    for _ in range(2):
        start = time.perf_counter()
        with Index.open(config) as index:
            summary = index.sync(catalog)
        out.append(_Timed(time.perf_counter() - start, summary.indexed, summary.stored))
    return out[0], out[1]


def _ray_runs(config: IndexConfig, catalog: Path, workers: int) -> tuple[float, _Timed, _Timed]:
    try:
        import ray
    except ImportError as e:
        raise DependencyError("the Ray benchmark needs ray: pip install 'mmsearch[distributed]'") from e
    from mmsearch.indexing.distributed import EmbedBatch, MmsearchSink

    start = time.perf_counter()
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    startup = time.perf_counter() - start
    try:
        out = []
        for _ in range(2):
            sink = MmsearchSink(config, base_dir=catalog.parent)
            embedded = ray.data.read_json(str(catalog)).map_batches(
                EmbedBatch,
                fn_constructor_kwargs=sink.embed_kwargs,
                batch_size=config.index.batch_size,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers),
            )
            embedded.write_datasink(sink, concurrency=sink.concurrency)
            s = sink.summary
            if s is None:
                raise MmsearchError("the Ray write finished without calling the sink's on_write_complete")
            out.append(_Timed(s.seconds, s.indexed, s.stored))
    finally:
        if started:
            ray.shutdown()
    return startup, out[0], out[1]


def _spark_runs(config: IndexConfig, catalog: Path, workers: int) -> tuple[float, _Timed, _Timed]:
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise DependencyError("the Spark benchmark needs pyspark: pip install 'mmsearch[distributed]'") from e
    from mmsearch.indexing.distributed import SparkIndexer

    start = time.perf_counter()
    existing = SparkSession.getActiveSession()
    spark = (
        existing or SparkSession.builder.master(f"local[{workers}]").config("spark.ui.enabled", "false").getOrCreate()
    )
    startup = time.perf_counter() - start
    try:
        out = []
        for _ in range(2):
            indexer = SparkIndexer(config, base_dir=catalog.parent)
            rows = spark.read.json(str(catalog)).repartition(workers)
            s = indexer.write(rows.mapInArrow(indexer.embed, indexer.embed_schema(rows.schema)))
            out.append(_Timed(s.seconds, s.indexed, s.stored))
    finally:
        if existing is None:
            spark.stop()
    return startup, out[0], out[1]


def _rate(items: int, t: _Timed) -> float:
    return round(items / t.seconds, 2) if t.seconds > 0 else 0.0


def _ratio(rate: float, base: float) -> float:
    # Three significant digits, not three decimals: a cold Ray start on a tiny catalogue runs at
    # 0.04x, where rounding to 0.041 would be off by 1%.
    return float(f"{rate / base:.3g}") if base else 0.0


def _engine_run(name: str, items: int, first: _Timed, rerun: _Timed, base: EngineRun, startup: float) -> EngineRun:
    fast, again = _rate(items, first), _rate(items, rerun)
    return EngineRun(
        engine=name,
        rows_per_s=fast,
        seconds=round(first.seconds, 2),
        rerun_rows_per_s=again,
        rerun_seconds=round(rerun.seconds, 2),
        ratio=_ratio(fast, base.rows_per_s),
        rerun_ratio=_ratio(again, base.rerun_rows_per_s),
        startup_s=round(startup, 1),
    )


def _baseline(items: int, before: Sequence[_Timed], after: Sequence[_Timed]) -> tuple[EngineRun, tuple[float, float]]:
    rates = [_rate(items, before[0]), _rate(items, after[0])]
    reruns = [_rate(items, before[1]), _rate(items, after[1])]
    base = EngineRun(
        engine="mmsearch index",
        rows_per_s=round(sum(rates) / 2, 2),
        seconds=round((before[0].seconds + after[0].seconds) / 2, 2),
        rerun_rows_per_s=round(sum(reruns) / 2, 2),
        rerun_seconds=round((before[1].seconds + after[1].seconds) / 2, 2),
    )
    return base, (rates[0], rates[1])


def run(config: DistributedBenchConfig | None = None, log: Callable[[str], None] = _log.info) -> DistributedBenchResult:
    """Generate the catalog, then index it with `mmsearch index`, each engine, and `mmsearch index` again.

    Raises:
        DependencyError: an engine (or, without `model`, the `export` extra) is not installed.
        MmsearchError: a run did not store every item, or a rerun embedded some.
    """
    cfg = config or DistributedBenchConfig()
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-distributed-") as tmp:
        folder = Path(tmp)
        model = cfg.model or export_default_model(folder)
        log(f"generating {cfg.items} photos of {cfg.image_size}x{cfg.image_size} px...")
        catalog = make_catalog(folder / "catalog", cfg.items, cfg.image_size)

        def config_for(name: str) -> IndexConfig:
            store = StoreSettings(path=folder / "stores", collection=name)
            return IndexConfig(store=store, index=cfg.index, encoders=(EncoderConfig(model=model, text_fields=()),))

        before = _index_runs(config_for("index-before"), catalog)
        _check("mmsearch index", *before, cfg.items)
        log(f"mmsearch index: {_rate(cfg.items, before[0]):.1f} rows/s, rerun {_rate(cfg.items, before[1]):.1f}")
        engines: dict[str, tuple[float, _Timed, _Timed]] = {}
        runners = {"ray": _ray_runs, "spark": _spark_runs}
        for name in cfg.engines:
            engines[name] = runners[name](config_for(name), catalog, cfg.workers)
            _, first, rerun = engines[name]
            _check(name, first, rerun, cfg.items)
            log(f"{name}: {_rate(cfg.items, first):.1f} rows/s, rerun {_rate(cfg.items, rerun):.1f}")
        after = _index_runs(config_for("index-after"), catalog)
        _check("mmsearch index", *after, cfg.items)
        base, rounds = _baseline(cfg.items, before, after)
        runs = [base] + [_engine_run(n, cfg.items, f, r, base, s) for n, (s, f, r) in engines.items()]
        return DistributedBenchResult(
            model=model.name,
            items=cfg.items,
            workers=cfg.workers,
            batch_size=cfg.index.batch_size,
            runs=tuple(runs),
            index_rows_per_s=rounds,
        )


def format_result(result: DistributedBenchResult) -> str:
    """The figures as a markdown table, ratios against `mmsearch index` from the same run."""
    lines = [
        f"{result.items} rows, model {result.model}, batch {result.batch_size}, {result.workers} Ray actors / "
        f"Spark cores at most; mmsearch index runs: {result.index_rows_per_s[0]:.1f} and "
        f"{result.index_rows_per_s[1]:.1f} rows/s",
        "",
        "| engine | first run rows/s | vs mmsearch index | rerun rows/s | vs mmsearch index | engine start-up |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result.runs:
        start = "-" if r.startup_s is None else f"{r.startup_s:.1f} s"
        lines.append(
            f"| {r.engine} | {r.rows_per_s:.1f} | {r.ratio:.2f}x | {r.rerun_rows_per_s:.1f} | {r.rerun_ratio:.2f}x "
            f"| {start} |"
        )
    return "\n".join(lines)


__all__ = ["DistributedBenchConfig", "DistributedBenchResult", "EngineRun", "format_result", "run"]
