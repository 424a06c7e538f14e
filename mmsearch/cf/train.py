"""Training: ALS and BPR with the `implicit` library (CPU, deterministic for a seed), EASE with numpy/scipy."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, overload

import numpy as np

from mmsearch.cf.config import ALSConfig, BPRConfig, EASEConfig
from mmsearch.cf.ease import ease_weights, side_block
from mmsearch.cf.interactions import AlignReport, Interactions
from mmsearch.cf.model import CFModel, EASEModel
from mmsearch.errors import ConfigError, DependencyError, InputError

if TYPE_CHECKING:
    import scipy.sparse


@dataclass(frozen=True)
class FitReport:
    """What training used and left out.

    Attributes:
        n_users, n_items, n_interactions: the training matrix the model was fitted on.
        seconds: wall time of the factorisation.
        catalog: when a catalog was given, the interactions' users and items it does not know
            (their interactions were dropped); None otherwise.
        users_dropped: users left with no interaction once unknown items were dropped.
        catalog_items_without_interactions: catalog items the model has no factors for (cold
            items, reachable through content only); 0 without a catalog.
    """

    n_users: int
    n_items: int
    n_interactions: int
    seconds: float
    catalog: AlignReport | None = None
    users_dropped: int = 0
    catalog_items_without_interactions: int = 0

    def summary(self) -> str:
        text = (
            f"trained on {self.n_interactions} interactions of {self.n_users} users with "
            f"{self.n_items} items in {self.seconds:.2f} s"
        )
        if self.catalog is not None:
            text += (
                f"; not in the catalog: {self.catalog.summary()}; {self.users_dropped} users left "
                f"without interactions; {self.catalog_items_without_interactions} catalog items "
                f"without interactions (cold)"
            )
        return text


class _Estimator(Protocol):
    """What training uses of an `implicit` CPU model."""

    user_factors: np.ndarray
    item_factors: np.ndarray

    def fit(self, user_items: scipy.sparse.csr_matrix, show_progress: bool = ...) -> None: ...


def _confidence(matrix: scipy.sparse.csr_matrix, config: ALSConfig | BPRConfig | EASEConfig) -> scipy.sparse.csr_matrix:
    """The matrix a model trains on: the weighting applied (ALS's `alpha` scaling is applied by implicit itself)."""
    matrix = matrix.copy()
    if isinstance(config, BPRConfig) or config.weighting == "binary":
        matrix.data[:] = 1.0
    elif config.weighting == "log1p":
        matrix.data = np.log1p(matrix.data).astype(np.float32)
    return matrix


def _estimator(config: ALSConfig | BPRConfig) -> _Estimator:
    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking
    except ImportError as e:
        raise DependencyError(f"collaborative filtering needs `implicit`: pip install implicit ({e})") from e
    # implicit checks the BLAS thread count when a model is built and warns unless it is 1. The
    # limit must be entered after the import: threadpoolctl only limits libraries already loaded,
    # and importing implicit is what loads scipy's OpenBLAS.
    with _single_threaded_blas():
        return _build_estimator(config, AlternatingLeastSquares, BayesianPersonalizedRanking)


def _build_estimator(
    config: ALSConfig | BPRConfig, als: Callable[..., _Estimator], bpr: Callable[..., _Estimator]
) -> _Estimator:
    # The CPU classes directly: implicit's factories would switch to CUDA where it exists, whose
    # results differ from run to run and whose factors live on the GPU.
    common: dict[str, Any] = {
        "factors": config.factors,
        "regularization": config.regularization,
        "iterations": config.iterations,
        "num_threads": config.num_threads,
        "random_state": config.seed,
        "dtype": np.float32,
    }
    if isinstance(config, ALSConfig):
        return als(alpha=config.alpha, **common)
    return bpr(learning_rate=config.learning_rate, verify_negative_samples=config.verify_negative_samples, **common)


def _implicit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("implicit")
    except PackageNotFoundError:
        return "unknown"


class _Catalog(NamedTuple):
    """How a log was restricted to a catalog: what was unknown, the catalog's ids, the users left with nothing."""

    report: AlignReport
    item_ids: list[str]
    users_dropped: int


def _restrict(
    interactions: Interactions, catalog_item_ids: Sequence[str] | None
) -> tuple[Interactions, _Catalog | None]:
    if catalog_item_ids is None:
        return interactions, None
    ids = list(dict.fromkeys(str(i) for i in catalog_item_ids))
    table, report = interactions.align(item_ids=ids)
    users_dropped = int(((interactions.user_counts() > 0) & (table.user_counts() == 0)).sum())
    return table, _Catalog(report, ids, users_dropped)


@overload
def fit(
    interactions: Interactions,
    config: EASEConfig,
    *,
    catalog_item_ids: Sequence[str] | None = None,
    features: Mapping[str, np.ndarray] | None = None,
    show_progress: bool = False,
) -> tuple[EASEModel, FitReport]: ...


@overload
def fit(
    interactions: Interactions,
    config: ALSConfig | BPRConfig | None = None,
    *,
    catalog_item_ids: Sequence[str] | None = None,
    features: Mapping[str, np.ndarray] | None = None,
    show_progress: bool = False,
) -> tuple[CFModel, FitReport]: ...


def fit(
    interactions: Interactions,
    config: ALSConfig | BPRConfig | EASEConfig | None = None,
    *,
    catalog_item_ids: Sequence[str] | None = None,
    features: Mapping[str, np.ndarray] | None = None,
    show_progress: bool = False,
) -> tuple[CFModel | EASEModel, FitReport]:
    """Train a CF model on `interactions`.

    Only users with at least one (kept) interaction are known to the model, and, without side
    information, only items with one get factors or weights; everything else stays cold (see
    `CFModel.is_cold`). Items outside `catalog_item_ids` are dropped and counted first.

    Args:
        interactions: the training interactions (e.g. a split's `train`).
        config: `ALSConfig`, `BPRConfig` or `EASEConfig`; None means `ALSConfig()`.
        catalog_item_ids: the items that exist (e.g. the ids in the store); None trusts the log.
        features: EASE only: side information, source name -> (n, d) item features, one row per
            item of `catalog_item_ids` (or of `interactions.item_ids` without a catalog); the
            config's `side` weighs each source. With features, every item gets weights.
        show_progress: show implicit's progress bar.

    Returns:
        The model (`EASEModel` for EASE, `CFModel` otherwise) and a `FitReport` with what was dropped.

    Raises:
        InputError: no interaction left to train on, or features of the wrong shape.
        ConfigError: features for ALS or BPR, or features that do not match the config's `side`.
        DependencyError: `implicit` is not installed (ALS, BPR).
    """
    config = config if config is not None else ALSConfig()
    table, catalog = _restrict(interactions, catalog_item_ids)
    if len(table) == 0:
        where = " once items unknown to the catalog were dropped" if catalog is not None else ""
        raise InputError(f"no interactions to train the {config.algorithm} model on{where}")
    keep_items = isinstance(config, EASEConfig) and bool(config.side)
    compact = table.compact()
    # Side information gives items without interactions weights too: keep them all.
    table = compact.align(item_ids=table.item_ids)[0] if keep_items else compact
    if isinstance(config, EASEConfig):
        model: CFModel | EASEModel = _fit_ease(table, config, features)
    else:
        if features:
            raise ConfigError(f"side information is for EASE; {config.algorithm} takes none")
        model = _fit_factors(table, config, show_progress)
    seconds = float(model.info["fit_seconds"])
    report = FitReport(
        n_users=table.n_users,
        n_items=int(np.count_nonzero(table.item_counts())),
        n_interactions=len(table),
        seconds=seconds,
        catalog=catalog.report if catalog is not None else None,
        users_dropped=catalog.users_dropped if catalog is not None else 0,
        catalog_items_without_interactions=(
            len(catalog.item_ids) - int(np.count_nonzero(table.item_counts())) if catalog is not None else 0
        ),
    )
    return model, report


def _fit_factors(table: Interactions, config: ALSConfig | BPRConfig, show_progress: bool) -> CFModel:
    matrix = table.to_csr()
    estimator = _estimator(config)
    start = time.perf_counter()
    with _single_threaded_blas():
        estimator.fit(_confidence(matrix, config), show_progress=show_progress)
    seconds = time.perf_counter() - start
    return CFModel(
        config=config,
        user_ids=table.user_ids,
        item_ids=table.item_ids,
        user_factors=np.asarray(estimator.user_factors, dtype=np.float32),
        item_factors=np.asarray(estimator.item_factors, dtype=np.float32),
        seen_indptr=matrix.indptr,
        seen_indices=matrix.indices,
        info={"implicit_version": _implicit_version(), "fit_seconds": round(seconds, 4), "n_interactions": len(table)},
    )


def _fit_ease(table: Interactions, config: EASEConfig, features: Mapping[str, np.ndarray] | None) -> EASEModel:
    matrix = _confidence(table.to_csr(), config)
    block = side_block(config, features, table.n_items)
    start = time.perf_counter()
    weights = ease_weights(matrix, config, block)
    seconds = time.perf_counter() - start
    return EASEModel(
        config=config,
        user_ids=table.user_ids,
        item_ids=table.item_ids,
        weight_indptr=weights.indptr,
        weight_indices=weights.indices,
        weight_values=weights.data,
        seen_indptr=matrix.indptr,
        seen_indices=matrix.indices,
        seen_values=matrix.data,
        info={
            "fit_seconds": round(seconds, 4),
            "n_interactions": len(table),
            "weights": int(weights.nnz),
            "items_with_weights": int(np.count_nonzero(np.diff(weights.indptr))),
        },
    )


def _single_threaded_blas() -> AbstractContextManager[object]:
    # implicit parallelises over users itself; a multi-threaded BLAS underneath oversubscribes
    # the cores and is up to 10x slower (implicit warns about it), so BLAS gets one thread.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        raise DependencyError(f"collaborative filtering needs `implicit`: pip install implicit ({e})") from e
    return threadpool_limits(1, "blas")


__all__ = ["FitReport", "fit"]
