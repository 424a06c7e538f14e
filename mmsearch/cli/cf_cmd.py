"""`mmsearch cf`: collaborative filtering for a collection."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from mmsearch.cli.options import column_mapping, interaction_log_options, threads_option
from mmsearch.cli.store_options import resolve_config, store_options

if TYPE_CHECKING:
    from mmsearch.cf.interactions import Duplicates


@click.group()
def cf() -> None:
    """Collaborative filtering: fit ALS or BPR on an interaction log and attach it to a collection.

    \b
    Example:
      mmsearch cf fit interactions.csv -c mmsearch.toml --algorithm als
    """


@cf.command("fit")
@click.argument("interactions", type=click.Path(dir_okay=False))
@store_options
@click.option(
    "--algorithm",
    type=click.Choice(["als", "bpr"]),
    default="als",
    show_default=True,
    help="Implicit ALS (alternating least squares) or BPR (Bayesian personalised ranking).",
)
@click.option(
    "--factors",
    type=click.IntRange(min=1),
    default=None,
    help="Latent factors (default: what fills the store's cf vector: cf_dim for ALS, cf_dim - 1 for BPR).",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Training iterations (default 15 for ALS, 100 for BPR).",
)
@click.option("--regularization", type=click.FloatRange(min=0), default=None, help="L2 penalty (default 0.01).")
@click.option(
    "--alpha",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="ALS: confidence scale of observed interactions (default 1).",
)
@click.option(
    "--weighting",
    type=click.Choice(["linear", "log1p", "binary"]),
    default=None,
    help="ALS: how interaction weights become confidences (default linear).",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="BPR: SGD learning rate (default 0.01).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed of the fit.")
@threads_option("implicit's training threads", "1, which makes a fit reproducible")
@interaction_log_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def cf_fit(
    interactions: str,
    config_path: str | None,
    store_path: str | None,
    collection: str | None,
    models: tuple[str, ...],
    cf_path: str | None,
    algorithm: str,
    columns: tuple[str, ...],
    duplicates: Duplicates,
    as_json: bool,
    seed: int,
    **options: Any,
) -> None:
    """Train CF on an interaction log (user, item, optional weight or rating, optional timestamp).

    Item factors go into the `cf` vector of the collection's items (their other vectors stay);
    user factors and id maps are saved beside the store for `query --user` and `recommend`.
    Users and items unknown to the catalog are counted and reported, not fatal.

    \b
    Example:
      mmsearch cf fit interactions.csv -c mmsearch.toml --algorithm als --iterations 20
      mmsearch cf fit ratings.tsv --algorithm bpr --factors 63 --column user=user_id --column item=movie_id
    """
    from mmsearch.cf import cf_config
    from mmsearch.cf.collection import default_factors, fit_collection_cf
    from mmsearch.cf.interactions import read_interactions
    from mmsearch.storage import CF_VECTOR, open_store

    config = resolve_config(config_path, store_path, collection, models)
    log, read = read_interactions(interactions, columns=column_mapping(columns), duplicates=duplicates)
    if options.get("threads") is not None:
        options["num_threads"] = options.pop("threads")
    given = {k: v for k, v in options.items() if v is not None}
    with open_store(config.store) as store:
        given.setdefault("factors", default_factors(algorithm, store.schema.get(CF_VECTOR).dim))
        settings = cf_config(algorithm, seed=seed, **given)
        _, summary = fit_collection_cf(store, log, settings, cf_path)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "read": {"rows_read": read.rows_read, "rows_kept": read.rows_kept, "skipped": dict(read.skipped)},
                    **summary.to_json(),
                }
            )
        )
        return
    if read.rows_skipped:
        click.echo(f"note: {read.summary()}", err=True)
    click.echo(summary.summary())


__all__ = ["cf"]
