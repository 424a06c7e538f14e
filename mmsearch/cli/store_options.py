"""Options naming a collection and its encoders, shared by `query`, `recommend` and `cf fit`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mmsearch.cli.options import config_option, option_group

if TYPE_CHECKING:
    from mmsearch.indexing.config import IndexConfig

F = TypeVar("F", bound=Callable[..., Any])


_STORE_OPTIONS = option_group(
    config_option,
    click.option(
        "--store",
        "store_path",
        type=click.Path(file_okay=False),
        default=None,
        help="The store folder (overrides the config; default ./mmsearch-data).",
    ),
    click.option("--collection", default=None, help="The collection (overrides the config; default mmsearch)."),
    click.option(
        "--model",
        "models",
        type=click.Path(file_okay=False),
        multiple=True,
        help="A model folder to embed query inputs with (repeatable; replaces the config's encoders) "
        "[default: the folders the collection recorded when it was indexed].",
    ),
    click.option(
        "--cf-path",
        type=click.Path(file_okay=False),
        default=None,
        help="The CF model folder (default: beside the store; needed for a server store).",
    ),
)


def store_options(f: F) -> F:
    """Add --config, --store, --collection, --model and --cf-path to a command."""
    return _STORE_OPTIONS(f)


def resolve_config(
    config_path: str | None, store_path: str | None, collection: str | None, models: tuple[str, ...]
) -> IndexConfig:
    """The `IndexConfig` from the config file (if any) with the command line's overrides applied.

    Raises:
        ConfigError: a missing or invalid config file, or an invalid override.
    """
    from mmsearch.indexing.config import load_config, with_overrides

    config = load_config(Path(config_path) if config_path else None)
    return with_overrides(config, collection=collection, store_path=store_path, models=list(models))


__all__ = ["resolve_config", "store_options"]
