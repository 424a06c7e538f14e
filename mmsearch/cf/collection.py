"""Collaborative filtering attached to a collection: item factors in `cf`, the model beside the store.

`fit_collection_cf` trains ALS or BPR on an interaction log restricted to the collection's items,
then:

1. writes each item's factors into its `cf` vector (`update_vectors`: the item's other vectors and
   payload stay as they are);
2. removes the `cf` vector of catalog items that have no interaction in this log (they are cold,
   reachable through content only; a `cf` vector from an earlier fit would be in another factor
   space and score nonsense);
3. saves the model (user factors, id maps, the training interactions, no pickle) into the
   collection's CF folder, where `Searcher` finds it for `--user` queries.

The collection's `cf` vector has a fixed dimension (`cf_dim`, 64 unless the store was created with
another). ALS vectors have `factors` values; BPR vectors have `factors + 1` (implicit appends an
item bias, matched by a constant 1 in every user vector). `default_factors` picks the factor
count that fills `cf_dim`; another one is refused with the numbers to use.

Where the model lives: `<path>/<collection>/cf/` for an Edge store, `<path>/<collection>.cf/` for a
local-mode store on disk; a server (or in-memory) store needs an explicit folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmsearch.cf import CFModel, FitReport, fit, load_model, save_model
from mmsearch.cf.config import ALSConfig, BPRConfig
from mmsearch.cf.interactions import Interactions
from mmsearch.cf.persist import SIDECAR
from mmsearch.errors import ConfigError, SchemaMismatchError
from mmsearch.files import writing
from mmsearch.storage import CF_VECTOR, Store, VectorUpdate

CF_FOLDER = "cf"
_WRITE_CHUNK = 2048


def cf_folder(store: Store, path: str | Path | None = None) -> Path | None:
    """The folder holding a collection's CF model: `path` when given, else the store's own.

    Args:
        store: the open store.
        path: an explicit folder, which wins.

    Returns:
        The folder (it may not exist yet), or None: a server or in-memory store and no `path`.
    """
    if path is not None:
        return Path(path)
    return store.sidecar_folder(CF_FOLDER)


def _folder_to_save(store: Store, path: str | Path | None) -> Path:
    folder = cf_folder(store, path)
    if folder is None:
        s = store.settings
        raise ConfigError(
            f"a {s.backend} store has no local folder to keep the CF model of collection "
            f"{s.collection!r} in; give one (cf_path=..., --cf-path DIR)"
        )
    with writing(folder, "CF model folder"):  # before training, so a bad folder costs no fit
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def default_factors(algorithm: str, cf_dim: int) -> int:
    """The factor count whose vectors fill a `cf` vector of `cf_dim` values (BPR adds a bias value).

    Raises:
        ConfigError: BPR and `cf_dim` 1 (no room for a factor beside the bias).
    """
    if algorithm == "bpr":
        if cf_dim < 2:
            raise ConfigError(f"the store's cf vector has {cf_dim} value; BPR needs at least 2 (factors + a bias)")
        return cf_dim - 1
    return cf_dim


def check_cf_dim(algorithm: str, factors: int, cf_dim: int) -> None:
    """Refuse a factor count whose vectors do not fit the store's `cf` vector.

    Raises:
        SchemaMismatchError: the model's vectors would have another length than `cf_dim`.
    """
    dim = factors + 1 if algorithm == "bpr" else factors
    if dim != cf_dim:
        extra = " (BPR vectors hold factors + 1 values: the last is an item bias)" if algorithm == "bpr" else ""
        raise SchemaMismatchError(
            f"{algorithm} with {factors} factors makes {dim}-value vectors{extra}, but the store's 'cf' vector "
            f"holds {cf_dim}: use --factors {default_factors(algorithm, cf_dim)}, or index into a collection "
            f"created with cf_dim = {dim}"
        )


@dataclass(frozen=True)
class CFFitSummary:
    """What fitting CF on a collection did.

    Attributes:
        algorithm, factors, dim: the model (dim = factors, + 1 for BPR).
        n_users, n_items, n_interactions, seconds: the training matrix and time.
        catalog_items: items in the collection.
        items_written: items whose `cf` vector was written.
        items_cleared: catalog items without interactions (cold): their `cf` vector was removed.
        unknown_users: users dropped because all their interactions were with unknown items.
        unknown_items: distinct item ids in the log that the collection does not hold.
        rows_dropped: interactions with those unknown items.
        folder: where the model was saved.
        examples: `items`: up to five of the unknown item ids.
    """

    algorithm: str
    factors: int
    dim: int
    n_users: int
    n_items: int
    n_interactions: int
    seconds: float
    catalog_items: int
    items_written: int
    items_cleared: int
    unknown_users: int
    unknown_items: int
    rows_dropped: int
    folder: Path
    examples: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        shown = self.examples.get("items") or []
        examples = f" (e.g. {', '.join(map(repr, shown))})" if shown else ""
        return (
            f"{self.algorithm} ({self.factors} factors) trained on {self.n_interactions} interactions of "
            f"{self.n_users} users with {self.n_items} items in {self.seconds:.2f} s; cf vectors written for "
            f"{self.items_written} of {self.catalog_items} catalog items, {self.items_cleared} without "
            f"interactions (cold, content only); not in the catalog: {self.unknown_items} items"
            f"{examples}, {self.rows_dropped} interactions dropped, {self.unknown_users} users left with "
            f"none; model saved in {self.folder}"
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["folder"] = str(self.folder)
        return data


def _catalog_ids(store: Store) -> list[str]:
    return [it.id for it in store.iter_items(page_size=1024, with_payload=False)]


def fit_collection_cf(
    store: Store,
    interactions: Interactions,
    config: ALSConfig | BPRConfig,
    folder: str | Path | None = None,
) -> tuple[CFModel, CFFitSummary]:
    """Train CF on `interactions` restricted to the collection's items and attach it to the collection.

    Args:
        store: the open store; its items are the catalog.
        interactions: the interaction log.
        config: ALS or BPR settings; their factor count must fill the store's `cf` vector.
        folder: where to save the model; None for the store's own CF folder (see `cf_folder`).

    Returns:
        The model and a summary of what was written, cleared and dropped.

    Raises:
        SchemaMismatchError: the factor count does not fit the store's `cf` vector.
        InputError: no interaction concerns a catalog item.
        ConfigError: no `folder`, and the store has none of its own (a server or in-memory store).
    """
    target = _folder_to_save(store, folder)  # before training, not after
    cf_dim = store.schema.get(CF_VECTOR).dim
    check_cf_dim(config.algorithm, config.factors, cf_dim)
    catalog = _catalog_ids(store)
    model, report = fit(interactions, config, catalog_item_ids=catalog)
    model = dataclasses.replace(model, info={**model.info, "collection": store.settings.collection, "cf_dim": cf_dim})
    known = set(model.item_ids)
    for start in range(0, model.n_items, _WRITE_CHUNK):
        rows = range(start, min(start + _WRITE_CHUNK, model.n_items))
        store.update_vectors([VectorUpdate(model.item_ids[r], {CF_VECTOR: model.item_factors[r]}) for r in rows])
    cold = [i for i in catalog if i not in known]
    if cold:
        store.delete_vectors(cold, [CF_VECTOR])
    store.optimize()
    saved = save_model(model, target)
    return model, _summary(model, report, config, catalog, len(cold), saved)


def _summary(
    model: CFModel, report: FitReport, config: ALSConfig | BPRConfig, catalog: list[str], cleared: int, folder: Path
) -> CFFitSummary:
    align = report.catalog
    unknown_items = align.unknown_items if align is not None else ()
    return CFFitSummary(
        algorithm=config.algorithm,
        factors=config.factors,
        dim=model.dim,
        n_users=report.n_users,
        n_items=report.n_items,
        n_interactions=report.n_interactions,
        seconds=round(report.seconds, 4),
        catalog_items=len(catalog),
        items_written=model.n_items,
        items_cleared=cleared,
        unknown_users=report.users_dropped,
        unknown_items=len(unknown_items),
        rows_dropped=align.rows_dropped if align is not None else 0,
        folder=folder,
        examples={"items": list(unknown_items[:5])},
    )


def load_collection_cf(store: Store, path: str | Path | None = None) -> CFModel | None:
    """The collection's CF model, from `path` or the store's own CF folder.

    Returns:
        The model, or None when this store keeps none: none was fitted (no model in the folder),
        or a server or in-memory store was given no `path`.

    Raises:
        ModelError, ModelIntegrityError: a model folder that cannot be read.
    """
    folder = cf_folder(store, path)
    if folder is None or not (folder / SIDECAR).is_file():
        return None
    return load_model(folder)


__all__ = ["CFFitSummary", "cf_folder", "check_cf_dim", "default_factors", "fit_collection_cf", "load_collection_cf"]
