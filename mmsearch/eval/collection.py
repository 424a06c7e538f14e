"""`mmsearch cf fit --tune`: a collection's CF model tuned on a held-out part of its log, then fitted on all of it."""

from __future__ import annotations

from pathlib import Path

from mmsearch.cf import CFModel, EASEModel
from mmsearch.cf.collection import (
    CFFitSummary,
    catalog_ids,
    check_cf_dim,
    collection_features,
    fit_collection_cf,
)
from mmsearch.cf.config import AnyCFConfig, EASEConfig
from mmsearch.cf.interactions import Interactions
from mmsearch.eval.runner import Log, tune_cf
from mmsearch.eval.tuning import DEFAULT_BUDGET_S, ModelTuning
from mmsearch.storage import CF_VECTOR, Store


def tune_collection_cf(
    store: Store,
    interactions: Interactions,
    config: AnyCFConfig,
    folder: str | Path | None = None,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    holdout: float = 0.1,
    metric: str = "ndcg@10",
    seed: int = 0,
    log: Log | None = None,
) -> tuple[CFModel | EASEModel, CFFitSummary, ModelTuning]:
    """Tune `config` on a held-out part of the log (restricted to the collection's items), then fit it on all of it.

    ALS and BPR keep their factor count (the store's `cf` vector fixes it); EASE's side
    information is read from the collection as `fit_collection_cf` reads it.

    Args:
        store: the open store; its items are the catalog.
        interactions: the whole log.
        config: the starting settings (the defaults, or the options given).
        folder: the CF folder (see `mmsearch.cf.collection.cf_folder`).
        budget_s, holdout, metric, seed: the search (see `mmsearch.eval.runner.tune_cf`).
        log: called with progress messages.

    Returns:
        The model fitted on the whole log with the winning settings, what fitting wrote, and the search.

    Raises:
        SchemaMismatchError: a factor count that does not fit the store's `cf` vector.
        the errors of `tune_cf` and `fit_collection_cf`.
    """
    catalog = catalog_ids(store)
    table, _ = interactions.align(item_ids=catalog)
    features = None
    if isinstance(config, EASEConfig):
        features = collection_features(store, list(config.side), catalog) if config.side else None
        fixed: tuple[str, ...] = ()
    else:
        spec = store.schema.vectors.get(CF_VECTOR)
        if spec is not None:  # the factor count must fill it; without one, the tuner picks it
            check_cf_dim(config.algorithm, config.factors, spec.dim)
        fixed = ("factors",) if spec is not None else ()
    best, tuning = tune_cf(
        table,
        config,
        features=features,
        budget_s=budget_s,
        fixed=fixed,
        holdout=holdout,
        metric=metric,
        seed=seed,
        log=log,
    )
    model, summary = fit_collection_cf(store, interactions, best, folder)
    return model, summary, tuning


__all__ = ["tune_collection_cf"]
