"""`mmsearch bench index`, `distributed`, `query`, `store`, `cf` and `serve`: one shape for the benchmarks.

Each reads its options off the benchmark's settings model (`settings_option`: the defaults and
limits stay in the library), builds the settings, runs the library's `run` with progress lines on
stderr, and prints the library's table on stdout; with `--json` the table goes to stderr and the
figures, as JSON, to stdout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mmsearch.bench import cf as cf_bench
from mmsearch.bench import distributed as distributed_bench
from mmsearch.bench import index as index_bench
from mmsearch.bench import query as query_bench
from mmsearch.bench import scale as scale_bench
from mmsearch.bench import serve as serve_bench
from mmsearch.bench import store as store_bench
from mmsearch.bench.cf import CFBenchConfig
from mmsearch.bench.distributed import DistributedBenchConfig
from mmsearch.bench.index import IndexBenchConfig
from mmsearch.bench.query import QueryBenchConfig
from mmsearch.bench.scale import ScaleBenchConfig
from mmsearch.bench.serve import ServeBenchConfig
from mmsearch.bench.store import StoreBenchConfig
from mmsearch.cli.options import option_group, progress_options, progress_printer
from mmsearch.cli.settings_options import settings_from, settings_option
from mmsearch.indexing.config import IndexSettings
from mmsearch.storage import HnswSettings

# A model folder given on the command line must exist: said before any photo or store is made.
_MODEL_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


def _report(table: str, figures: dict[str, Any], as_json: bool) -> None:
    click.echo(table, err=as_json)
    if as_json:
        click.echo(json.dumps(figures, indent=2))


# `--hnsw-m`, not `--m`, on the command line; `_hnsw` maps it back to the field `m`.
_hnsw_options = option_group(
    settings_option(HnswSettings, "m", "--hnsw-m", "hnsw_m", help="HNSW edges per node."),
    settings_option(HnswSettings, "ef_construct", help="HNSW build candidates."),
    settings_option(HnswSettings, "ef", help="HNSW search candidates."),
)


def _hnsw(hnsw_m: int | None, opts: dict[str, Any]) -> HnswSettings:
    return settings_from(HnswSettings, {**opts, "m": hnsw_m})


_json_option = click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON (the table to stderr).")


@click.command("index")
@option_group(
    settings_option(IndexBenchConfig, "items", help="Generated photos in the catalog, one item each."),
    settings_option(
        IndexBenchConfig,
        "model",
        help="An image model folder from `mmsearch export` [default: ResNet-18 with random weights, "
        "exported on the fly; needs the export extra].",
        type=_MODEL_DIR,
    ),
    settings_option(IndexBenchConfig, "image_size", help="Side of the generated JPEG photos, in pixels."),
    settings_option(IndexBenchConfig, "rounds", help="Pipeline runs, each between two encoder-alone runs."),
    settings_option(IndexSettings, "batch_size", help="Items per encode step, pipeline and encoder alone alike."),
    settings_option(IndexSettings, "workers", help="The pipeline's decode threads [default: 2 x cores, 2 to 16]."),
    settings_option(IndexSettings, "threads", help="onnxruntime threads per session [default: its choice]."),
    settings_option(IndexSettings, "device", help="Where the encoder runs (auto: CUDA when available)."),
    _json_option,
    progress_options,
)
def bench_index(as_json: bool, progress: str, **opts: Any) -> None:
    """`mmsearch index` end to end against the encoder alone, items/s and the ratio.

    Generates a catalog of JPEG photos, then alternates the encoder alone (on batches decoded
    beforehand) and `Index.sync` into a fresh Qdrant Edge collection; the median round is kept.
    Rates are also given per CPU second, the ratio that holds on a busy machine.

    \b
    Example:
      mmsearch bench index --items 1000 --rounds 3
      mmsearch bench index --model models/clip --items 200 --batch-size 64 --workers 8 --json
    """
    config = settings_from(IndexBenchConfig, opts, index=settings_from(IndexSettings, opts))
    result = index_bench.run(config, log=progress_printer(progress))
    _report(index_bench.format_result(result), result.to_json(), as_json)


@click.command("distributed")
@option_group(
    settings_option(DistributedBenchConfig, "items", help="Generated photos in the catalog, one item each."),
    settings_option(
        DistributedBenchConfig,
        "model",
        help="An image model folder from `mmsearch export` [default: ResNet-18 with random weights, "
        "exported on the fly; needs the export extra].",
        type=_MODEL_DIR,
    ),
    settings_option(DistributedBenchConfig, "image_size", help="Side of the generated JPEG photos, in pixels."),
    settings_option(DistributedBenchConfig, "workers", help="Ray actors at most, Spark's local cores and partitions."),
    click.option(
        "--engine",
        "engines",
        type=click.Choice(["ray", "spark"]),
        multiple=True,
        help="An engine to run against mmsearch index (repeat for several) [default: ray and spark].",
    ),
    settings_option(IndexSettings, "batch_size", help="Items per encode step, in every engine."),
    settings_option(IndexSettings, "device", help="Where the encoders run (auto: CUDA when available)."),
    _json_option,
    progress_options,
)
def bench_distributed(as_json: bool, progress: str, **opts: Any) -> None:
    """`mmsearch index` against Ray Data and Spark on the same rows and model: rows/s and ratios.

    Generates a catalog of JPEG photos, indexes it with `mmsearch index`, then with Ray
    (MmsearchSink) and Spark (SparkIndexer) in local mode, then with `mmsearch index` again (the
    baseline is the mean of its two runs); each run is followed by a rerun, every row unchanged.
    Needs the distributed extra and Java.

    \b
    Example:
      mmsearch bench distributed --items 500 --workers 2
      mmsearch bench distributed --engine spark --model models/clip --json
    """
    if not opts["engines"]:
        del opts["engines"]  # none named: the settings' default, both
    config = settings_from(DistributedBenchConfig, opts, index=settings_from(IndexSettings, opts))
    result = distributed_bench.run(config, log=progress_printer(progress))
    _report(distributed_bench.format_result(result), result.to_json(), as_json)


@click.command("query")
@option_group(
    settings_option(QueryBenchConfig, "items", help="Items in the synthetic catalogue."),
    settings_option(QueryBenchConfig, "queries", help="Timed queries of each kind (text, image)."),
    settings_option(QueryBenchConfig, "warmup", help="Untimed queries of each kind first."),
    settings_option(QueryBenchConfig, "candidates", help="Nearest neighbours per signal (the engine's candidates)."),
    settings_option(QueryBenchConfig, "limit", "-k", "--limit", "limit", help="Results per query."),
    settings_option(QueryBenchConfig, "users", help="Synthetic CF users."),
    settings_option(QueryBenchConfig, "threads", help="onnxruntime threads per tower."),
    settings_option(QueryBenchConfig, "quantize", help="int8: the dynamic-int8 towers (and a store built with them)."),
    settings_option(
        QueryBenchConfig,
        "cache",
        help="Folder for the exported models and the built store, reused by later runs "
        "[default: $MMSEARCH_CACHE/bench-query, else ~/.cache/mmsearch/bench-query].",
    ),
    settings_option(
        QueryBenchConfig, "clip_model", help="A CLIP model folder instead of the cached export.", type=_MODEL_DIR
    ),
    settings_option(
        QueryBenchConfig, "text_model", help="A text model folder instead of the cached MiniLM export.", type=_MODEL_DIR
    ),
    settings_option(QueryBenchConfig, "seed", help="Random seed of the catalogue and the queries."),
    _json_option,
    progress_options,
)
def bench_query(as_json: bool, progress: str, **opts: Any) -> None:
    """Encode + hybrid search latency p50/p95 on 100k items in Qdrant Edge, against encode + one kNN.

    A text query (CLIP text tower + MiniLM; four signals) and an image query (CLIP image tower;
    three signals), each for a warm user, fused inside Qdrant; the baseline is the same CLIP
    encoding followed by one kNN. Models and store are built once into the cache folder.

    \b
    Example:
      mmsearch bench query --items 100000 --queries 100
      mmsearch bench query --items 2000 --queries 20 --clip-model models/clip --text-model models/minilm --json
    """
    result = query_bench.run(settings_from(QueryBenchConfig, opts), log=progress_printer(progress))
    _report(query_bench.format_result(result), result.to_json(), as_json)


@click.command("store")
@option_group(
    settings_option(StoreBenchConfig, "items", help="Items in the Edge catalogue."),
    settings_option(StoreBenchConfig, "dim", help="Vector size."),
    settings_option(StoreBenchConfig, "multi_items", help="Items that also get photos [default: 10% of the items]."),
    settings_option(StoreBenchConfig, "multi_rows", help="Photos per item in that subset (the MaxSim rows)."),
    settings_option(StoreBenchConfig, "queries", help="kNN and MaxSim queries timed on Edge."),
    settings_option(StoreBenchConfig, "memory_items", help="Items for local mode [default: all; 0 skips it]."),
    settings_option(StoreBenchConfig, "memory_queries", help="Queries timed on local mode."),
    settings_option(StoreBenchConfig, "batch", help="Items per upsert call."),
    _hnsw_options,
    settings_option(StoreBenchConfig, "uniform", help="Uniform random vectors instead of clustered ones (worst case)."),
    settings_option(StoreBenchConfig, "seed", help="Random seed."),
    settings_option(StoreBenchConfig, "path", help="Edge store folder [default: a temporary one]."),
    _json_option,
    progress_options,
)
def bench_store(as_json: bool, progress: str, hnsw_m: int | None, **opts: Any) -> None:
    """Store figures: upsert rate, HNSW build, kNN and MaxSim p50/p95, recall@10; Edge vs local mode.

    A clustered synthetic catalogue goes into Qdrant Edge (and qdrant-client's local mode, exact,
    for the agreement of the top 10); kNN queries search the pooled text vector, MaxSim queries
    the photos' multivector.

    \b
    Example:
      mmsearch bench store --items 100000 --queries 200
      mmsearch bench store --items 2000 --memory-items 500 --queries 20 --hnsw-m 32 --json
    """
    hnsw = _hnsw(hnsw_m, opts)
    result = store_bench.run(settings_from(StoreBenchConfig, opts, hnsw=hnsw), log=progress_printer(progress))
    _report(store_bench.format_result(result), result.to_json(), as_json)


@click.command("scale")
@option_group(
    settings_option(ScaleBenchConfig, "items", help="Items in the catalogue."),
    settings_option(ScaleBenchConfig, "queries", help="Timed kNN, exact and hybrid queries."),
    settings_option(ScaleBenchConfig, "batch", help="Items per upsert call (and per resumable batch)."),
    settings_option(ScaleBenchConfig, "quantization", help="Quantization of the pooled vectors."),
    settings_option(ScaleBenchConfig, "in_ram", help="Original vectors in RAM instead of memory-mapped on disk."),
    _hnsw_options,
    settings_option(ScaleBenchConfig, "cache", help="Folder for the built stores, reused (and resumed) by later runs."),
    settings_option(ScaleBenchConfig, "seed", help="Random seed."),
    _json_option,
    progress_options,
)
def bench_scale(as_json: bool, progress: str, hnsw_m: int | None, **opts: Any) -> None:
    """The default schema at scale in one Edge folder: build time, peak memory, disk, kNN, recall, hybrid.

    CLIP image and text, MiniLM and cf vectors for every item (10% with several photos), on
    clustered vectors of low intrinsic dimension; int8 scalar quantization and originals on disk
    by default. The build resumes where an interrupted one stopped.

    \b
    Example:
      mmsearch bench scale --items 1000000
      mmsearch bench scale --items 20000 --queries 50 --quantization none --in-ram --json
    """
    hnsw = _hnsw(hnsw_m, opts)
    config = settings_from(ScaleBenchConfig, opts, hnsw=hnsw)
    figures = scale_bench.run(config, log=progress_printer(progress))
    _report(scale_bench.format_result(figures, config), scale_bench.to_json(figures), as_json)


@click.command("cf")
@option_group(
    click.option(
        "--items",
        "items",
        type=click.IntRange(min=100),
        multiple=True,
        help="Catalogue sizes, one synthetic log each (repeatable) [default: 10000, 50000, 100000].",
    ),
    settings_option(CFBenchConfig, "users_per_item", help="Users per item in each log."),
    settings_option(CFBenchConfig, "per_user", help="Mean interactions per user (log-normal)."),
    settings_option(CFBenchConfig, "zipf", help="Item popularity exponent (Zipf)."),
    settings_option(CFBenchConfig, "exact_max_items", help="Exact EASE only up to this many items (4 n^2 bytes)."),
    settings_option(CFBenchConfig, "neighbors", help="EASE weights kept per item (both solvers)."),
    settings_option(CFBenchConfig, "regularization", help="EASE's lambda."),
    settings_option(CFBenchConfig, "eval_users", help="Test users sampled for nDCG@10."),
    settings_option(CFBenchConfig, "seed", help="Random seed of the logs, the split and the sample."),
    _json_option,
    progress_options,
)
def bench_cf(as_json: bool, progress: str, items: tuple[int, ...], **opts: Any) -> None:
    """EASE exact and sparse against ALS on synthetic power-law logs: fit time, peak memory, nDCG@10.

    Per catalogue size, a log with a popularity long tail and topic structure is split 90/10;
    ALS (the baseline of every ratio), EASE sparse and (up to --exact-max-items) EASE exact are
    fitted on the 90% and ranked for a sample of test users.

    \b
    Example:
      mmsearch bench cf --items 10000 --items 100000
      mmsearch bench cf --items 50000 --exact-max-items 0 --json
    """
    config = settings_from(CFBenchConfig, {**opts, "items": items or None})
    result = cf_bench.run(config, log=progress_printer(progress))
    _report(cf_bench.format_result(result), result.to_json(), as_json)


_CLIENTS = ServeBenchConfig.model_fields["clients"].default


@click.command("serve")
@option_group(
    settings_option(QueryBenchConfig, "items", help="Items in the synthetic catalogue (the query benchmark's store)."),
    settings_option(ServeBenchConfig, "requests", help="Timed requests per cell (kind x clients), on each side."),
    settings_option(ServeBenchConfig, "warmup", help="Untimed requests per kind first, on each side."),
    click.option(
        "--clients",
        type=click.IntRange(min=1),
        multiple=True,
        default=_CLIENTS,
        show_default=True,
        help="Concurrent clients of a cell (repeatable).",
    ),
    settings_option(ServeBenchConfig, "upserts", help="Items upserted over HTTP while searching (0: no write check)."),
    settings_option(ServeBenchConfig, "rounds", help="In-process then HTTP, this many times; cells pool the rounds."),
    settings_option(QueryBenchConfig, "candidates", help="Nearest neighbours per signal (the engine's candidates)."),
    settings_option(QueryBenchConfig, "limit", help="Results per request."),
    settings_option(QueryBenchConfig, "users", help="Synthetic CF users."),
    settings_option(QueryBenchConfig, "threads", help="onnxruntime threads per tower, in process and in the server."),
    settings_option(QueryBenchConfig, "quantize", help="int8: the dynamic-int8 towers (and a store built with them)."),
    settings_option(
        QueryBenchConfig,
        "cache",
        help="The query benchmark's cache folder (models and stores, shared with `bench query`) "
        "[default: $MMSEARCH_CACHE/bench-query, else ~/.cache/mmsearch/bench-query].",
    ),
    settings_option(
        QueryBenchConfig, "clip_model", help="A CLIP model folder instead of the cached export.", type=_MODEL_DIR
    ),
    settings_option(
        QueryBenchConfig, "text_model", help="A text model folder instead of the cached MiniLM export.", type=_MODEL_DIR
    ),
    settings_option(QueryBenchConfig, "seed", help="Random seed of the catalogue and the queries."),
    settings_option(ServeBenchConfig, "concurrency", help="The server's --concurrency [default: its own, 4 per core]."),
    settings_option(ServeBenchConfig, "port", help="The server's port on 127.0.0.1 (0: a free one)."),
    _json_option,
    progress_options,
)
def bench_serve(as_json: bool, progress: str, clients: tuple[int, ...], **opts: Any) -> None:
    """`mmsearch serve` under load: req/s and p50/p95/p99 at 1, 4, 16 clients, against the in-process Searcher.

    Text, image (multipart upload) and recommend requests on the query benchmark's store, first as
    in-process `Searcher` calls from as many threads (the baseline), then over HTTP against a
    `mmsearch serve` process on 127.0.0.1; then items upserted while searching, counted before and
    after (nothing may be lost) and deleted again.

    \b
    Example:
      mmsearch bench serve --items 100000
      mmsearch bench serve --items 20000 --requests 30 --clients 1 --clients 8 --json
    """
    query = settings_from(QueryBenchConfig, opts)
    config = settings_from(ServeBenchConfig, opts, query=query, clients=clients)
    result = serve_bench.run(config, log=progress_printer(progress))
    _report(serve_bench.format_result(result), result.to_json(), as_json)


__all__ = [
    "bench_cf",
    "bench_distributed",
    "bench_index",
    "bench_query",
    "bench_scale",
    "bench_serve",
    "bench_store",
]
