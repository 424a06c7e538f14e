"""CF attached to a collection: item factors in `cf`, EASE weights in the sparse `ease`, models beside the store.

`fit_collection_cf` trains ALS, BPR or EASE on an interaction log restricted to the collection's
items, then:

1. writes each item's factors into its `cf` vector (ALS, BPR), or its column of the EASE weights
   into its sparse vector `ease` (`update_vectors`: the item's other vectors and payload stay as
   they are);
2. removes that vector from catalog items the model has nothing for (cold: reachable through
   content only; a vector from an earlier fit would be in another space and score nonsense);
3. saves the model (id maps, the training interactions, factors or weights; no pickle) into the
   collection's CF folder (EASE: its `ease/` sub-folder), where `Searcher` finds it for `--user`
   and `--history` queries.

EASE's side information (`EASEConfig.side`) comes from the collection itself: a source named
after a stored pooled vector (`minilm.text`, `clip.image`) uses the items' vectors; any other
name is a payload field (`genres`, `category`) whose values (a string or a list of strings)
become one-hot features. Items lacking the source get no feature row.

The collection's `cf` vector comes with its first CF fit, at that model's length (unless the store
was created with a `cf_dim`); from then on its length is fixed. ALS vectors have `factors`
values; BPR vectors have `factors + 1` (implicit appends an item bias, matched by a constant 1 in
every user vector). `default_factors` picks the factor count that fills an existing `cf` vector;
another one is refused with the numbers to use.

Where the model lives: `<path>/<collection>/cf/` for an Edge store, `<path>/<collection>.cf/` for a
local-mode store on disk; a server (or in-memory) store needs an explicit folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mmsearch.cf import CFModel, EASEModel, FitReport, fit, load_model, save_model
from mmsearch.cf.config import AnyCFConfig, EASEConfig
from mmsearch.cf.ease import one_hot
from mmsearch.cf.interactions import Interactions
from mmsearch.cf.persist import SIDECAR
from mmsearch.errors import ConfigError, InputError, ModelError, SchemaMismatchError, listed
from mmsearch.files import writing
from mmsearch.storage import CF_VECTOR, EASE_VECTOR, Store, VectorUpdate

CF_FOLDER = "cf"
EASE_FOLDER = "ease"  # inside the CF folder
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


def ease_folder(store: Store, path: str | Path | None = None) -> Path | None:
    """The folder holding a collection's EASE model: `ease/` inside its CF folder (see `cf_folder`)."""
    folder = cf_folder(store, path)
    return None if folder is None else folder / EASE_FOLDER


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


def cf_vector_length(algorithm: str, factors: int) -> int:
    """The length of an ALS (`factors`) or BPR (`factors + 1`: an item bias) item vector."""
    return factors + 1 if algorithm == "bpr" else factors


def fit_cf_vector(store: Store, algorithm: str, factors: int) -> int:
    """The store's `cf` length for this model: checked against an existing `cf` vector, or added at it.

    Raises:
        SchemaMismatchError: the store's `cf` vector has another length.
    """
    spec = store.schema.vectors.get(CF_VECTOR)
    if spec is not None:
        check_cf_dim(algorithm, factors, spec.dim)
        return spec.dim
    dim = cf_vector_length(algorithm, factors)
    store.add_cf_vector(dim)
    return dim


def check_cf_dim(algorithm: str, factors: int, cf_dim: int) -> None:
    """Refuse a factor count whose vectors do not fit the store's `cf` vector.

    Raises:
        SchemaMismatchError: the model's vectors would have another length than `cf_dim`.
    """
    dim = cf_vector_length(algorithm, factors)
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
        algorithm, factors, dim: the model (dim = factors, + 1 for BPR; EASE: factors 0, dim the
            number of indices its sparse vectors may hold).
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
        what = f"{self.factors} factors" if self.algorithm != "ease" else f"{self.dim} items"
        vector = EASE_VECTOR if self.algorithm == "ease" else CF_VECTOR
        return (
            f"{self.algorithm} ({what}) trained on {self.n_interactions} interactions of "
            f"{self.n_users} users with {self.n_items} items in {self.seconds:.2f} s; {vector} vectors written for "
            f"{self.items_written} of {self.catalog_items} catalog items, {self.items_cleared} without "
            f"interactions (cold, content only); not in the catalog: {self.unknown_items} items"
            f"{examples}, {self.rows_dropped} interactions dropped, {self.unknown_users} users left with "
            f"none; model saved in {self.folder}"
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["folder"] = str(self.folder)
        return data


def catalog_ids(store: Store) -> list[str]:
    """The ids of the collection's items (the catalog CF is restricted to), in the store's order."""
    return [it.id for it in store.iter_items(page_size=1024, with_payload=False)]


def fit_collection_cf(
    store: Store,
    interactions: Interactions,
    config: AnyCFConfig,
    folder: str | Path | None = None,
) -> tuple[CFModel | EASEModel, CFFitSummary]:
    """Train CF on `interactions` restricted to the collection's items and attach it to the collection.

    Args:
        store: the open store; its items are the catalog.
        interactions: the interaction log.
        config: ALS or BPR settings (their factor count must fill the store's `cf` vector), or
            EASE settings (its `side` sources read from the collection, see the module docstring).
        folder: the CF folder; None for the store's own (see `cf_folder`). EASE goes in its `ease/`.

    Returns:
        The model and a summary of what was written, cleared and dropped.

    Raises:
        SchemaMismatchError: the factor count does not fit the store's `cf` vector.
        InputError: no interaction concerns a catalog item; a side source no item has.
        ConfigError: no `folder`, and the store has none of its own (a server or in-memory store).
    """
    target = _folder_to_save(store, folder)  # before training, not after
    catalog = catalog_ids(store)
    if isinstance(config, EASEConfig):
        return _fit_ease(store, interactions, config, catalog, target / EASE_FOLDER)
    existing = store.schema.vectors.get(CF_VECTOR)
    if existing is not None:  # refused before training; a missing `cf` is added after it
        check_cf_dim(config.algorithm, config.factors, existing.dim)
    model, report = fit(interactions, config, catalog_item_ids=catalog)
    cf_dim = fit_cf_vector(store, config.algorithm, config.factors)
    model = dataclasses.replace(model, info={**model.info, "collection": store.settings.collection, "cf_dim": cf_dim})
    vectors = {item: model.item_factors[r] for r, item in enumerate(model.item_ids)}
    cleared = _write(store, CF_VECTOR, vectors, catalog)
    saved = save_model(model, target)
    return model, _summary(model, report, config.factors, catalog, len(vectors), cleared, saved)


def _fit_ease(
    store: Store, interactions: Interactions, config: EASEConfig, catalog: list[str], target: Path
) -> tuple[EASEModel, CFFitSummary]:
    features = collection_features(store, list(config.side), catalog) if config.side else None
    store.add_sparse_vectors([EASE_VECTOR])
    model, report = fit(interactions, config, catalog_item_ids=catalog, features=features)
    model = dataclasses.replace(model, info={**model.info, "collection": store.settings.collection})
    vectors = {item: model.item_vector(item) for item in model.item_ids if model.has_vector(item)}
    cleared = _write(store, EASE_VECTOR, vectors, catalog)
    saved = save_model(model, target)
    return model, _summary(model, report, 0, catalog, len(vectors), cleared, saved)


def _write(store: Store, name: str, vectors: Mapping[str, Any], catalog: Sequence[str]) -> int:
    """Write one vector per item, remove it from the other catalog items, optimize; returns how many were cleared."""
    items = list(vectors)
    for start in range(0, len(items), _WRITE_CHUNK):
        store.update_vectors([VectorUpdate(i, {name: vectors[i]}) for i in items[start : start + _WRITE_CHUNK]])
    cold = [i for i in catalog if i not in vectors]
    if cold:
        store.delete_vectors(cold, [name])
    store.optimize()
    return len(cold)


def collection_features(store: Store, sources: Sequence[str], item_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """EASE side information from the collection: one (len(item_ids), d) block per source.

    A source named after a stored pooled vector gives the items' vectors; any other name is a
    payload field whose values (a string, a number or a list of them) become one-hot features.
    Items lacking the source get a zero row.

    Raises:
        InputError: a source that no item of the collection has.
    """
    row = {item: r for r, item in enumerate(item_ids)}
    vectors = [s for s in sources if s in store.schema.vectors and store.schema.vectors[s].kind == "pooled"]
    fields = [s for s in sources if s not in vectors]
    dims = {s: store.schema.vectors[s].dim for s in vectors}
    out = {s: np.zeros((len(item_ids), dims[s]), dtype=np.float32) for s in vectors}
    values: dict[str, dict[int, list[str]]] = {f: {} for f in fields}
    for it in store.iter_items(page_size=1024, with_vectors=vectors or False, with_payload=bool(fields)):
        r = row.get(it.id)
        if r is None:
            continue
        for s in vectors:
            if s in it.vectors:
                out[s][r] = it.vectors[s]
        for f in fields:
            found = _categories(it.payload.get(f))
            if found:
                values[f][r] = found
    for f in fields:
        out[f] = _one_hot(f, values[f], len(item_ids), store)
    for s in vectors:
        if not out[s].any():
            raise InputError(f"no item of collection {store.settings.collection!r} has a {s!r} vector")
    return out


def _categories(value: object) -> list[str]:
    if value is None or isinstance(value, dict):
        return []
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if isinstance(v, (str, int, float, bool)) and str(v)]


def _one_hot(name: str, values: Mapping[int, list[str]], n: int, store: Store) -> np.ndarray:
    if not values:
        known = sorted(n for n, s in store.schema.vectors.items() if s.kind == "pooled")
        raise InputError(
            f"side information {name!r}: no item of collection {store.settings.collection!r} has a payload field "
            f"{name!r}, and it is no stored item vector (those are: {listed(known)})"
        )
    return one_hot([values.get(r, []) for r in range(n)])


def _summary(
    model: CFModel | EASEModel,
    report: FitReport,
    factors: int,
    catalog: list[str],
    written: int,
    cleared: int,
    folder: Path,
) -> CFFitSummary:
    align = report.catalog
    unknown_items = align.unknown_items if align is not None else ()
    return CFFitSummary(
        algorithm=model.algorithm,
        factors=factors,
        dim=model.dim,
        n_users=report.n_users,
        n_items=report.n_items,
        n_interactions=report.n_interactions,
        seconds=round(report.seconds, 4),
        catalog_items=len(catalog),
        items_written=written,
        items_cleared=cleared,
        unknown_users=report.users_dropped,
        unknown_items=len(unknown_items),
        rows_dropped=align.rows_dropped if align is not None else 0,
        folder=folder,
        examples={"items": list(unknown_items[:5])},
    )


def load_collection_cf(store: Store, path: str | Path | None = None) -> CFModel | None:
    """The collection's CF model (ALS or BPR), from `path` or the store's own CF folder.

    Returns:
        The model, or None when this store keeps none: none was fitted (no model in the folder),
        or a server or in-memory store was given no `path`.

    Raises:
        ModelError, ModelIntegrityError: a model folder that cannot be read, or that holds EASE.
    """
    folder = cf_folder(store, path)
    if folder is None or not (folder / SIDECAR).is_file():
        return None
    model = load_model(folder)
    if not isinstance(model, CFModel):
        raise ModelError(f"{folder} holds an {model.algorithm} model where the ALS or BPR model goes")
    return model


def load_collection_ease(store: Store, path: str | Path | None = None) -> EASEModel | None:
    """The collection's EASE model, from `<CF folder>/ease/` (see `load_collection_cf`), or None."""
    folder = ease_folder(store, path)
    if folder is None or not (folder / SIDECAR).is_file():
        return None
    model = load_model(folder)
    if not isinstance(model, EASEModel):
        raise ModelError(f"{folder} holds an {model.algorithm} model where the EASE model goes")
    return model


class CollectionModels(NamedTuple):
    """The models fitted for a collection: factors (`cf`) and EASE (`ease`), each None when absent."""

    cf: CFModel | None
    ease: EASEModel | None


def load_collection_models(store: Store, path: str | Path | None = None) -> CollectionModels:
    """Both models of a collection (see `load_collection_cf`, `load_collection_ease`)."""
    return CollectionModels(load_collection_cf(store, path), load_collection_ease(store, path))


__all__ = [
    "CFFitSummary",
    "CollectionModels",
    "catalog_ids",
    "cf_folder",
    "cf_vector_length",
    "check_cf_dim",
    "collection_features",
    "default_factors",
    "fit_cf_vector",
    "ease_folder",
    "fit_collection_cf",
    "load_collection_cf",
    "load_collection_ease",
    "load_collection_models",
]
