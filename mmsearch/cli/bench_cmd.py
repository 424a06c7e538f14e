"""`mmsearch bench`: throughput figures with ratios against a baseline from the same run."""

from __future__ import annotations

import json

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
@click.option("--only", multiple=True, type=click.Choice(["clip", "resnet", "bert"]),
              default=("clip", "resnet", "bert"), show_default=True)
@click.option("--bert-model", default=None,
              help="sentence-transformers folder or hub name for the bert row (default: the shipped MiniLM).")
@click.option("--no-int8", is_flag=True, help="Skip the int8 exports.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON at the end.")
def bench_encoders(batches: tuple[int, ...], threads: int | None, runs: int, only: tuple[str, ...],
                   bert_model: str | None, no_int8: bool, as_json: bool) -> None:
    """Items/s for PyTorch eager vs ONNX fp32 vs ONNX int8 (ViT-B-32, ResNet-50, MiniLM-L6).

    \b
    Example:
      mmsearch bench encoders --batch 1 --batch 32 --threads 2
    """
    from dataclasses import asdict

    from indexers.export.bench import HEADER, run
    from mmsearch.shipped import shipped_minilm

    bert_model = bert_model or (str(shipped_minilm()) if shipped_minilm() else None)
    click.echo(HEADER, err=as_json)
    rows = run(batches, threads=threads, runs=runs, quantize=not no_int8, only=only, bert_model=bert_model,
               log=lambda line: click.echo(line, err=as_json))
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
