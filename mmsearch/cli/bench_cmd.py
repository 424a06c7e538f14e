"""`mmsearch bench`: throughput and latency figures with ratios against a baseline from the same run.

`encoders` is defined here; `cf`, `distributed`, `index`, `query`, `scale`, `serve` and `store` live in
`mmsearch.cli.bench_commands`,
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
    "scale": "mmsearch.cli.bench_commands:bench_scale",
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
      mmsearch bench scale --items 1000000
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
    "--runs",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Timed runs per image cell, rounds of the text rows.",
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
@click.option(
    "--texts",
    type=click.IntRange(min=64),
    default=2000,
    show_default=True,
    help="Varied sentences the text rows embed.",
)
@click.option(
    "--fastembed-python",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="An interpreter with fastembed installed, for its text rows (default: this one, if it has fastembed).",
)
@click.option("--no-int8", is_flag=True, help="Skip the int8 exports.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON at the end.")
def bench_encoders(
    batches: tuple[int, ...],
    threads: int | None,
    runs: int,
    only: tuple[str, ...],
    bert_model: str | None,
    texts: int,
    fastembed_python: str | None,
    no_int8: bool,
    as_json: bool,
) -> None:
    """Encoders against same-run baselines: image towers vs PyTorch, text towers vs their libraries.

    Image rows: items/s of PyTorch eager, ONNX fp32 and int8 (ViT-B-32, ResNet-50). Text rows, on
    the same generated sentences: sentence-transformers `encode()` (MiniLM) or open_clip (CLIP
    text) as the baseline, mmsearch fp32 and int8, and fastembed on the same graph file when an
    interpreter with fastembed is given (its pins clash with sentence-transformers': give it a
    venv of its own).

    \b
    Example:
      mmsearch bench encoders --only bert --threads 2
      mmsearch bench encoders --fastembed-python /tmp/fe-venv/bin/python --json
    """
    from dataclasses import asdict

    from indexers.export.bench import run
    from mmsearch.datasets.shipped import shipped_minilm

    bert_model = bert_model or (str(shipped_minilm()) if shipped_minilm() else None)
    results = run(
        batches,
        threads=threads,
        runs=runs,
        quantize=not no_int8,
        only=only,
        bert_model=bert_model,
        texts=texts,
        fastembed_python=fastembed_python,
        log=lambda line: click.echo(line, err=as_json),
    )
    if as_json:
        figures = {"images": [asdict(r) for r in results.images], "texts": [asdict(r) for r in results.texts]}
        click.echo(json.dumps(figures, indent=2))
