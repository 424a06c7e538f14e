"""`mmsearch bench`: throughput and latency figures with ratios against a baseline from the same run.

`encoders` is defined here; `cf`, `distributed`, `index`, `query` and `store` live in `mmsearch.cli.bench_commands`,
imported when one of them is asked for: their options are read off the benchmarks' settings
models, and importing those (numpy, pydantic, the store) would slow down every `mmsearch` call.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

import click

from mmsearch.cli.options import threads_option

_LAZY = {
    "distributed": "mmsearch.cli.bench_commands:bench_distributed",
    "cf": "mmsearch.cli.bench_commands:bench_cf",
    "index": "mmsearch.cli.bench_commands:bench_index",
    "query": "mmsearch.cli.bench_commands:bench_query",
    "store": "mmsearch.cli.bench_commands:bench_store",
    "serve": "mmsearch.cli.bench_commands:bench_serve",
}


class LazyGroup(click.Group):
    """A click group whose commands named in `lazy` (name -> "module:attribute") load on first use."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy and cmd_name not in self.commands:
            module, attr = self._lazy[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=_LAZY)
def bench() -> None:
    """Benchmarks that print figures and ratios against a baseline measured in the same run.

    Progress goes to stderr and the figures to stdout; with --json, the figures as JSON.

    \b
    Example:
      mmsearch bench encoders --batch 1 --batch 32
      mmsearch bench index --items 1000 --rounds 3
      mmsearch bench distributed --items 500 --workers 2
      mmsearch bench query --quantize int8 --threads 2 --json
      mmsearch bench cf --items 10000 --items 100000
      mmsearch bench serve --items 20000 --requests 30
    """


@bench.command("encoders")
@click.option(
    "--batch",
    "batches",
    type=click.IntRange(min=1),
    multiple=True,
    default=(1, 32),
    show_default=True,
    help="Items per run (repeatable: one row per batch size).",
)
@threads_option("threads of torch and of each onnxruntime session", "torch's and onnxruntime's choice")
@click.option(
    "--runs", type=click.IntRange(min=1), default=3, show_default=True, help="Timed runs per cell, after a warm-up."
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(["clip", "resnet", "bert"]),
    default=("clip", "resnet", "bert"),
    show_default=True,
    help="The families to measure (repeatable).",
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
