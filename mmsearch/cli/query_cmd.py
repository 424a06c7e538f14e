"""`mmsearch query` and `mmsearch recommend`: hybrid search from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from mmsearch.cli.options import device_option, limit_option, option_group, threads_option
from mmsearch.cli.store_options import resolve_config, store_options

F = TypeVar("F", bound=Callable[..., Any])
_TITLE_WIDTH = 48


_SEARCH_OPTIONS = option_group(
    click.option(
        "-w",
        "--weight",
        "weights",
        multiple=True,
        metavar="SIGNAL=W",
        help="A signal's weight, e.g. -w clip_image=0.5 -w bert=0.3 -w cf=0.2 (repeatable; only the "
        "signals named take part). Default: query content, user profile and CF share equally.",
    ),
    click.option(
        "--fusion",
        type=click.Choice(["wsum", "rrf", "dbsf"]),
        default="wsum",
        show_default=True,
        help="Weighted sum of normalised scores, weighted RRF, or DBSF.",
    ),
    click.option(
        "--normalization",
        type=click.Choice(["minmax", "dbsf", "none"]),
        default="minmax",
        show_default=True,
        help="Score normalisation for wsum.",
    ),
    click.option(
        "--filter",
        "filters",
        multiple=True,
        metavar="EXPR",
        help="Payload filter: color=red, color=red,blue, color!=red, 'price<20', 'price>=5', or Qdrant's JSON "
        """form '{"should": [...]}' (repeatable, all must hold).""",
    ),
    limit_option(),
    click.option("--explain", is_flag=True, help="Show each signal's raw and normalised score per hit."),
    click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
    click.option(
        "--html",
        "html_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Also write an HTML page with the hits' photos and breakdowns.",
    ),
    click.option(
        "--image-root",
        type=click.Path(file_okay=False),
        default=".",
        show_default=True,
        help="Folder relative image paths in payloads are resolved against (for --html).",
    ),
    click.option(
        "--candidates",
        type=click.IntRange(min=1),
        default=50,
        show_default=True,
        help="Nearest neighbours fetched per signal; all are scored on every signal.",
    ),
    click.option("--maxsim", is_flag=True, help="Score content signals on the best matching photo/text (MaxSim)."),
    click.option(
        "--profile",
        type=click.Choice(["mixed", "same", "crossed"]),
        default="mixed",
        show_default=True,
        help="How a user's content profile is built from their items.",
    ),
    click.option(
        "--min-interactions",
        type=click.IntRange(min=1),
        default=3,
        show_default=True,
        help="Users with fewer interactions are cold: no CF signal, content only.",
    ),
    device_option(),
    threads_option(),
)


def _search_options(f: F) -> F:
    return store_options(_SEARCH_OPTIONS(f))


_HISTORY_OPTION = click.option(
    "--history",
    default=None,
    metavar="ITEM,ITEM,...",
    help="Items the user, or an anonymous session, interacted with (comma-separated): they feed the EASE "
    "signal and the content profile, and --exclude-seen leaves them out. No user needed.",
)


def _history(text: str | None) -> list[str] | None:
    """`--history a,b,c` as item ids (None without the option)."""
    if text is None:
        return None
    items = [i.strip() for i in text.split(",") if i.strip()]
    if not items:
        raise click.BadParameter(f"{text!r} names no item; give item ids separated by commas", param_hint="--history")
    return items


def _searcher(opts: Mapping[str, Any]) -> Any:
    from mmsearch.query.engine import Searcher, SearchSettings

    config = resolve_config(opts["config_path"], opts["store_path"], opts["collection"], opts["models"])
    settings = SearchSettings(
        candidates=opts["candidates"],
        maxsim=opts["maxsim"],
        profile=opts["profile"],
        min_interactions=opts["min_interactions"],
    )
    return Searcher.open(
        config.store,
        models=config.model_folders or None,  # none named: the folders the collection recorded
        cf_path=opts["cf_path"],
        settings=settings,
        device=opts["device"],
        threads=opts["threads"],
    )


def _print_table(response: Any, explain: bool) -> None:
    if len(response):
        click.echo(f"{'rank':>4}  {'score':>8}  {'id':<16} title")
    else:
        click.echo("no results")
    width = max((len(s.name) for s in response.signals), default=0) + 2
    for rank, r in enumerate(response, 1):
        title = str(r.payload.get("title") or r.payload.get("name") or "")
        if len(title) > _TITLE_WIDTH:
            title = title[: _TITLE_WIDTH - 3] + "..."
        click.echo(f"{rank:>4}  {r.score:>8.4f}  {r.id:<16} {title}")
        if explain:
            for name, s in r.signals.items():
                raw = "-" if s.raw is None else f"{s.raw:.4f}"
                norm = "-" if s.normalized is None else f"{s.normalized:.4f}"
                missing = "  (missing: weight moved to the other signals)" if s.raw is None else ""
                click.echo(
                    f"{'':>6}{name:<{width}} raw {raw:>8}  norm {norm:>7}  weight {s.weight:.3f}  "
                    f"+{s.contribution:.4f}{missing}"
                )
    used = ", ".join(f"{s.name}={s.weight:.2f}" for s in response.signals)
    click.echo(
        f"fusion {response.fusion} ({response.engine}), {response.candidates} candidates; signals: {used}", err=True
    )
    for e in response.encoders:
        click.echo(
            f"{e.input} embedded by {e.vector}: {e.precision or '?'} ({e.reason or 'precision not known'})", err=True
        )


def _run(opts: Mapping[str, Any], query: Mapping[str, Any], call: Callable[[Any, Any, Any], Any]) -> None:
    from mmsearch.query.filters import parse_filters
    from mmsearch.query.signals import parse_weights

    weights = parse_weights(opts["weights"]) if opts["weights"] else None
    flt = parse_filters(opts["filters"])
    explain = opts["explain"] or opts["as_json"] or bool(opts["html_path"])
    with _searcher(opts) as searcher:
        response = call(searcher, weights, flt)
    for note in response.notes:
        click.echo(note if note.startswith("warning:") else f"note: {note}", err=True)
    if opts["html_path"]:
        from mmsearch.query.report import write_report

        path = write_report(opts["html_path"], response, query, image_root=opts["image_root"])
        click.echo(f"wrote {path}", err=True)
    if opts["as_json"]:
        click.echo(json.dumps({"query": dict(query), **response.to_dict()}, ensure_ascii=False))
    else:
        _print_table(response, explain and opts["explain"])


def _list_signals(opts: Mapping[str, Any]) -> None:
    with _searcher(opts) as searcher:
        for s in searcher.signals:
            aliases = f"  (also: {', '.join(s.aliases)})" if s.aliases else ""
            click.echo(f"{s.name:<34} {s.kind:<8} {s.vector}{aliases}")


@click.command()
@click.option("--text", default=None, help="A query text (CLIP text searches images too).")
@click.option("--image", default=None, help="A query image: a file path or an http(s) URL.")
@click.option("--item", default=None, help="An item id: more like this item.")
@click.option("--user", default=None, help="A user id: personalise with CF and the user's content profile.")
@_HISTORY_OPTION
@click.option("--exclude-seen", is_flag=True, help="Leave out the items the user interacted with.")
@click.option("--signals", "list_signals", is_flag=True, help="List the collection's signals and their aliases.")
@_search_options
def query(
    text: str | None,
    image: str | None,
    item: str | None,
    user: str | None,
    history: str | None,
    exclude_seen: bool,
    list_signals: bool,
    **opts: Any,
) -> None:
    """Search a collection with a text, an image, an item, a user and/or a history, fusing every signal.

    Each input is embedded by every encoder that takes it and matched against the vectors it is
    comparable with (CLIP text also searches CLIP image vectors); a user adds the CF signal and
    a content profile from their items. Scores are normalised and fused inside Qdrant.

    Without --model (or [[encoders]] in the config), the model folders the collection recorded
    when it was indexed are used. Notes (fallbacks, a filter on a field no item has, signals of
    models with random weights) go to stderr.

    \b
    Example:
      mmsearch query --text "red running shoes" --limit 5
      mmsearch query -c mmsearch.toml --text "red dress" --user u42 -w clip_image=0.5 -w bert=0.3 -w cf=0.2 --explain
      mmsearch query --image photo.jpg --filter 'price<50' --filter color=red --json
      mmsearch query --item sku-017 --html hits.html
      mmsearch query --text "lamp" --history sku-003,sku-008
    """
    if list_signals:
        _list_signals(opts)
        return
    items = _history(history)
    asked = {"text": text, "image": image, "item": item, "user": user, "history": items}
    _run(
        opts,
        asked,
        lambda s, w, f: s.search(
            text=text,
            image=image,
            item=item,
            user=user,
            history=items,
            weights=w,
            fusion=opts["fusion"],
            normalization=opts["normalization"],
            filter=f,
            limit=opts["limit"],
            exclude_seen=exclude_seen,
            explain=opts["explain"] or opts["as_json"] or bool(opts["html_path"]),
        ),
    )


@click.command()
@click.option("--user", default=None, help="The user id (or give --history alone, for an anonymous session).")
@_HISTORY_OPTION
@click.option(
    "--exclude-seen/--include-seen",
    default=True,
    show_default=True,
    help="Leave out the items the user interacted with.",
)
@_search_options
def recommend(user: str | None, history: str | None, exclude_seen: bool, **opts: Any) -> None:
    """Recommend items for a user or a history: CF and EASE fused with the content profile.

    A user with few interactions is cold (no CF signal, content and EASE only); a history alone
    (an anonymous session's items) gets EASE and the content profile, no refit needed.

    \b
    Example:
      mmsearch recommend -c mmsearch.toml --user u42 --limit 10
      mmsearch recommend --user u7 -w cf=0.7 -w profile:clip_image=0.3 --explain
      mmsearch recommend --history sku-003,sku-008,sku-021 --explain
      mmsearch recommend -c mmsearch.toml --user u3 --filter in_stock=true --json
    """
    if user is None and history is None:
        raise click.UsageError("give --user ID, --history ITEM,ITEM,... or both")
    items = _history(history)
    _run(
        opts,
        {"user": user, "history": items},
        lambda s, w, f: s.recommend(
            user,
            history=items,
            limit=opts["limit"],
            exclude_seen=exclude_seen,
            weights=w,
            fusion=opts["fusion"],
            normalization=opts["normalization"],
            filter=f,
            explain=opts["explain"] or opts["as_json"] or bool(opts["html_path"]),
        ),
    )


__all__ = ["query", "recommend"]
