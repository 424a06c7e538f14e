"""`mmsearch bench`: throughput figures with ratios against a baseline from the same run."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def bench() -> None:
    """Benchmarks that print figures and ratios.

    \b
    Example:
      mmsearch bench encoders --batch 1 --batch 32
    """


@bench.command("encoders")
@click.option("--batch", "batches", type=int, multiple=True, default=(1, 32), show_default=True)
@click.option("--threads", type=int, default=None, help="Threads for torch and onnxruntime (default: all cores).")
@click.option("--runs", type=int, default=3, show_default=True, help="Timed runs per cell, after a warm-up.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(["clip", "resnet", "bert"]),
    default=("clip", "resnet", "bert"),
    show_default=True,
)
@click.option(
    "--bert-model",
    default=None,
    help="sentence-transformers folder or hub name for the bert row (default: the shipped MiniLM).",
)
@click.option("--no-int8", is_flag=True, help="Skip the int8 exports.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON at the end.")
def bench_encoders(
    batches: tuple[int, ...],
    threads: int | None,
    runs: int,
    only: tuple[str, ...],
    bert_model: str | None,
    no_int8: bool,
    as_json: bool,
) -> None:
    """Items/s for PyTorch eager vs ONNX fp32 vs ONNX int8 (ViT-B-32, ResNet-50, MiniLM-L6).

    \b
    Example:
      mmsearch bench encoders --batch 1 --batch 32 --threads 2
    """
    from dataclasses import asdict

    from indexers.export.bench import HEADER, run
    from mmsearch.datasets.shipped import shipped_minilm

    bert_model = bert_model or (str(shipped_minilm()) if shipped_minilm() else None)
    click.echo(HEADER, err=as_json)
    rows = run(
        batches,
        threads=threads,
        runs=runs,
        quantize=not no_int8,
        only=only,
        bert_model=bert_model,
        log=lambda line: click.echo(line, err=as_json),
    )
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))


@bench.command("store")
@click.option("--items", type=int, default=100_000, show_default=True)
@click.option("--dim", type=int, default=512, show_default=True)
@click.option("--multi-items", type=int, default=None, help="Items with photos (default: 10%).")
@click.option("--queries", type=int, default=200, show_default=True)
@click.option("--memory-items", type=int, default=None, help="Items for local mode (default: all; 0 skips).")
@click.option("--memory-queries", type=int, default=10, show_default=True)
@click.option("--hnsw-m", type=int, default=16, show_default=True)
@click.option("--ef-construct", type=int, default=100, show_default=True)
@click.option("--ef", type=int, default=128, show_default=True)
@click.option("--uniform", is_flag=True, help="Uniform random vectors instead of clustered ones (worst case).")
@click.option("--path", type=click.Path(path_type=Path), default=None, help="Edge store folder (default: temporary).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON too.")
def bench_store(
    items: int,
    dim: int,
    multi_items: int | None,
    queries: int,
    memory_items: int | None,
    memory_queries: int,
    hnsw_m: int,
    ef_construct: int,
    ef: int,
    uniform: bool,
    path: Path | None,
    as_json: bool,
) -> None:
    """Store figures: upsert rate, HNSW build, kNN and MaxSim p50/p95, recall@10; Edge vs local mode.

    \b
    Example:
      mmsearch bench store --items 100000 --queries 200
    """
    from dataclasses import asdict

    from mmsearch.bench.store import StoreBenchConfig, format_result, run
    from mmsearch.storage import HnswSettings

    cfg = StoreBenchConfig(
        items=items,
        dim=dim,
        multi_items=multi_items,
        queries=queries,
        memory_items=memory_items,
        memory_queries=memory_queries,
        path=path,
        uniform=uniform,
        hnsw=HnswSettings(m=hnsw_m, ef_construct=ef_construct, ef=ef),
    )
    result = run(cfg, log=lambda line: click.echo(line, err=as_json))
    click.echo(format_result(result), err=as_json)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "config": result.config,
                    "backends": [asdict(b) for b in result.backends],
                    "top10_agreement": result.top10_agreement,
                },
                indent=2,
            )
        )


_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


@bench.command("index", context_settings=_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_index(args: tuple[str, ...]) -> None:
    """`mmsearch index` end to end against the encoder alone, items/s and the ratio.

    Options (--items, --model, --batch-size, --workers, --threads, --rounds, --json...) are those of
    `python -m mmsearch.bench.index --help`.

    \b
    Example:
      mmsearch bench index --items 1000 --rounds 3
    """
    from mmsearch.bench.index import main

    main(list(args))


@bench.command("query", context_settings=_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_query(args: tuple[str, ...]) -> None:
    """Encode + hybrid search latency p50/p95 on 100k items in Qdrant Edge, against encode + one kNN.

    Options (--items, --queries, --candidates, --threads, --quantize, --cache, --json...) are those
    of `python -m mmsearch.bench.query --help`.

    \b
    Example:
      mmsearch bench query --quantize int8 --threads 2
    """
    from mmsearch.bench.query import main

    main(list(args))
