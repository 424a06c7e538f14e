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
    """Collaborative filtering: fit ALS, BPR or EASE on an interaction log and attach it to a collection.

    \b
    Example:
      mmsearch cf fit interactions.csv -c mmsearch.toml --algorithm als
      mmsearch cf fit interactions.csv -c mmsearch.toml --algorithm ease --side category
    """


@cf.command("fit")
@click.argument("interactions", type=click.Path(dir_okay=False))
@store_options
@click.option(
    "--algorithm",
    type=click.Choice(["als", "bpr", "ease"]),
    default="als",
    show_default=True,
    help="Implicit ALS (alternating least squares), BPR (Bayesian personalised ranking) or EASE (item-item weights).",
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
@click.option(
    "--regularization",
    type=click.FloatRange(min=0),
    default=None,
    help="L2 penalty (default 50 for ALS, 0.0001 for BPR, 300 for EASE's lambda).",
)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="ALS: confidence scale of observed interactions (default 10).",
)
@click.option(
    "--weighting",
    type=click.Choice(["linear", "log1p", "binary"]),
    default=None,
    help="ALS and EASE: how interaction weights become confidences (default binary).",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="BPR: SGD learning rate (default 0.005).",
)
@click.option(
    "--neighbors",
    type=click.IntRange(min=1),
    default=None,
    help="EASE: weights kept per item, the size of its sparse vector (default 256).",
)
@click.option(
    "--solver",
    type=click.Choice(["sparse", "exact"]),
    default=None,
    help="EASE: sparse (each item's weights solved on its nearest items; scales) or exact (one "
    "items x items inversion; up to ~50,000 items). Default sparse.",
)
@click.option(
    "--side",
    "side",
    multiple=True,
    metavar="SOURCE[=W]",
    help="EASE side information: a stored vector (minilm.text) or a payload field (genres), weight W "
    "(default 5); repeatable. Items without interactions then get EASE scores from their content.",
)
@click.option(
    "--tune",
    is_flag=True,
    help="Search the settings first on a held-out 10% of the log (the options given are the start), then fit "
    "the winner on all of it.",
)
@click.option(
    "--tune-budget",
    "tune_budget_s",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="With --tune: seconds of search.",
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
    side: tuple[str, ...],
    tune: bool,
    tune_budget_s: float,
    **options: Any,
) -> None:
    """Train CF on an interaction log (user, item, optional weight or rating, optional timestamp).

    ALS and BPR item factors go into the `cf` vector of the collection's items; EASE writes each
    item's column of its item-item weights into the sparse vector `ease` (their other vectors
    stay). User factors, id maps and histories are saved beside the store for `query --user`,
    `--history` and `recommend`. Users and items unknown to the catalog are counted and
    reported, not fatal.

    \b
    Example:
      mmsearch cf fit interactions.csv -c mmsearch.toml --algorithm als --iterations 20
      mmsearch cf fit ratings.tsv --algorithm bpr --factors 63 --column user=user_id --column item=movie_id
      mmsearch cf fit interactions.csv -c mmsearch.toml --algorithm ease --side minilm.text=5
      mmsearch cf fit interactions.csv -c mmsearch.toml --algorithm ease --tune --tune-budget 10
    """
    from mmsearch.cf import cf_config
    from mmsearch.cf.collection import default_factors, fit_collection_cf
    from mmsearch.cf.config import parse_side
    from mmsearch.cf.interactions import read_interactions
    from mmsearch.storage import CF_VECTOR, open_store

    config = resolve_config(config_path, store_path, collection, models)
    log, read = read_interactions(interactions, columns=column_mapping(columns), duplicates=duplicates)
    given = _algorithm_options(algorithm, seed, parse_side(side), options)
    tuning = None
    with open_store(config.store) as store:
        spec = store.schema.vectors.get(CF_VECTOR)
        if algorithm != "ease" and spec is not None:  # else the algorithm's default, and `cf` gets its length
            given.setdefault("factors", default_factors(algorithm, spec.dim))
        settings = cf_config(algorithm, **given)
        if tune:
            from mmsearch.eval.collection import tune_collection_cf

            say = None if as_json else (lambda message: click.echo(message, err=True))
            _, summary, tuning = tune_collection_cf(store, log, settings, cf_path, budget_s=tune_budget_s, log=say)
        else:
            _, summary = fit_collection_cf(store, log, settings, cf_path)
    if as_json:
        read_facts = {"rows_read": read.rows_read, "rows_kept": read.rows_kept, "skipped": dict(read.skipped)}
        extra = {"tuning": tuning.to_dict()} if tuning is not None else {}
        click.echo(json.dumps({"read": read_facts, **summary.to_json(), **extra}))
        return
    if read.rows_skipped:
        click.echo(f"note: {read.summary()}", err=True)
    if tuning is not None:
        click.echo(f"tuned {tuning.summary()}")
    click.echo(summary.summary())


# Options that only some algorithms take; giving one to another algorithm is refused, not ignored.
_ONLY = {
    "factors": ("als", "bpr"),
    "iterations": ("als", "bpr"),
    "alpha": ("als",),
    "weighting": ("als", "ease"),
    "learning_rate": ("bpr",),
    "num_threads": ("als", "bpr"),
    "neighbors": ("ease",),
    "solver": ("ease",),
    "side": ("ease",),
    "seed": ("als", "bpr"),
}


def _algorithm_options(algorithm: str, seed: int, side: dict[str, float], options: dict[str, Any]) -> dict[str, Any]:
    """The options given for `algorithm` as config fields; an option it does not take is a usage error."""
    if options.get("threads") is not None:
        options["num_threads"] = options.pop("threads")
    given = {k: v for k, v in options.items() if v is not None}
    if side:
        given["side"] = side
    wrong = sorted(k for k in given if algorithm not in _ONLY.get(k, (algorithm,)))
    if wrong:
        names = ", ".join("--" + ("threads" if k == "num_threads" else k.replace("_", "-")) for k in wrong)
        raise click.UsageError(f"{names} do not apply to --algorithm {algorithm}")
    if algorithm != "ease":
        given["seed"] = seed
    return given


__all__ = ["cf"]
