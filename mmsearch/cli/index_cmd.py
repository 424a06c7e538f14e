"""`mmsearch index`: embed a catalog file and write it to the vector store, resumably."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mmsearch.cli.options import (
    config_option,
    device_option,
    progress_bar_disabled,
    progress_options,
    progress_printer,
    threads_option,
)

if TYPE_CHECKING:
    from mmsearch.indexing.index import IndexSummary

# Exit status when the run finished but some items were skipped or failed (see the error log).
EXIT_ITEMS_SKIPPED = 3


def default_error_log(catalog: Path) -> Path:
    """`<catalog name>.errors.jsonl` in the current folder (the catalog's own may be read-only)."""
    return Path(f"{catalog.stem}.errors.jsonl")


@click.command()
@click.argument("catalog", type=click.Path(path_type=Path))
@config_option
@click.option("--collection", default=None, help="Collection name (overrides the config; default mmsearch).")
@click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Store folder (overrides the config; default ./mmsearch-data).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Model folder from `mmsearch export` (repeatable); replaces the config's encoders.",
)
@click.option(
    "--errors",
    "errors_file",
    type=click.Path(path_type=Path),
    default=None,
    help="JSONL error log, rewritten each run [default: ./<catalog name>.errors.jsonl].",
)
@click.option("--prune", is_flag=True, help="Delete stored items that are no longer in the catalog.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Items per encode-and-write step [default: 32]."
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Image fetch/decode threads [default: 2 x cores]."
)
@device_option(None, " [default: the config's, else auto]")
@threads_option()
@progress_options
def index(
    catalog: Path,
    config_path: str | None,
    collection: str | None,
    store_path: Path | None,
    models: tuple[Path, ...],
    errors_file: Path | None,
    prune: bool,
    as_json: bool,
    batch_size: int | None,
    workers: int | None,
    device: str | None,
    threads: int | None,
    progress: str,
) -> None:
    """Embed a catalog (JSONL, CSV/TSV, Parquet) and write its items to the vector store.

    Items already stored with the same content are skipped without encoding, so a run can be
    repeated, or resumed after a crash, at no cost; changed items are re-embedded. Bad items
    (missing or corrupt images, failed URLs, invalid lines, missing or duplicate ids...) are
    skipped and written to the error log, and the run goes on. Texts longer than a model's
    context are embedded truncated to it, and counted. The collection records the model folders,
    so `mmsearch query` finds them without --model.

    \b
    Exit status:
      0  every item is indexed (or was unchanged)
      3  the run finished, but some items were skipped or failed: see the error log
      1  the run stopped: bad config or options, unreadable catalog, store error
      2  usage error

    \b
    Example:
      mmsearch index mmsearch/examples/catalog.jsonl --model models/clip --model models/minilm
      mmsearch index catalog.jsonl -c mmsearch.toml --prune --json
    """
    from tqdm import tqdm

    from mmsearch.indexing.config import load_config, with_overrides
    from mmsearch.indexing.index import Index

    say = progress_printer(progress)
    config = with_overrides(
        load_config(config_path),
        collection=collection,
        store_path=store_path,
        models=models,
        batch_size=batch_size,
        workers=workers,
        device=device,
        threads=threads,
    )
    if config.encoders:
        say(f"loading models: {', '.join(str(e.model) for e in config.encoders)}")
    errors_path = errors_file if errors_file is not None else default_error_log(catalog)
    with Index.open(config) as idx:
        total = idx.count_records(catalog)
        say(f"indexing {total} catalog records into collection {idx.store.settings.collection!r}")
        disable = progress_bar_disabled(progress)
        bar = tqdm(total=total, unit="item", dynamic_ncols=True, disable=disable, desc="indexing")
        try:
            summary = idx.sync(catalog, prune=prune, errors=errors_path, progress=bar.update)
        finally:
            bar.close()
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        click.echo(describe(summary))
    if not summary.ok:
        raise click.exceptions.Exit(EXIT_ITEMS_SKIPPED)


def describe(s: IndexSummary) -> str:
    """The run's summary as the command prints it: a rate only for items actually embedded."""
    from mmsearch.indexing.errorlog import KINDS

    done = (
        f"indexed {s.indexed} items ({s.new} new, {s.changed} changed), {s.unchanged} unchanged, "
        f"{s.skipped} skipped, {s.failed} failed, {s.pruned} pruned in {s.seconds:.1f} s"
    )
    if s.indexed:
        done += f" ({s.indexed_per_s:.1f} items/s)"
    lines = [done]
    if s.truncated:
        lines.append(f"{s.truncated} text(s) were longer than their model's context and embedded truncated to it")
    lines.append(f"collection {s.collection!r} holds {s.stored} items")
    if s.skipped_by_kind:
        lines.append("skipped:")
        width = max(len(k) for k in s.skipped_by_kind)
        for kind, n in s.skipped_by_kind.items():
            lines.append(f"  {kind:<{width}} {n:>6}  {KINDS.get(kind, '')}")
        lines.append(f"error log: {s.error_log}")
    if s.prune_note:
        lines.append(s.prune_note)
    return "\n".join(lines)
