"""Training ALS and BPR with the `implicit` library (CPU), deterministically for a given seed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmsearch.cf.config import ALSConfig, BPRConfig
from mmsearch.cf.interactions import AlignReport, Interactions
from mmsearch.cf.model import CFModel
from mmsearch.errors import DependencyError, InputError


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


def _confidence(matrix: object, config: ALSConfig | BPRConfig) -> object:
    """The matrix `implicit` trains on; ALS's `alpha` scaling is applied by implicit itself."""
    matrix = matrix.copy()  # type: ignore[attr-defined]
    if isinstance(config, BPRConfig) or config.weighting == "binary":
        matrix.data[:] = 1.0
    elif config.weighting == "log1p":
        matrix.data = np.log1p(matrix.data).astype(np.float32)
    return matrix


def _estimator(config: ALSConfig | BPRConfig) -> object:
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


def _build_estimator(config: ALSConfig | BPRConfig, als: type, bpr: type) -> object:
    # The CPU classes directly: implicit's factories would switch to CUDA where it exists, whose
    # results differ from run to run and whose factors live on the GPU.
    if isinstance(config, ALSConfig):
        return als(
            factors=config.factors,
            regularization=config.regularization,
            alpha=config.alpha,
            iterations=config.iterations,
            num_threads=config.num_threads,
            random_state=config.seed,
            dtype=np.float32,
        )
    return bpr(
        factors=config.factors,
        learning_rate=config.learning_rate,
        regularization=config.regularization,
        iterations=config.iterations,
        num_threads=config.num_threads,
        verify_negative_samples=config.verify_negative_samples,
        random_state=config.seed,
        dtype=np.float32,
    )


def _implicit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("implicit")
    except PackageNotFoundError:
        return "unknown"


def fit(
    interactions: Interactions,
    config: ALSConfig | BPRConfig | None = None,
    *,
    catalog_item_ids: Sequence[str] | None = None,
    show_progress: bool = False,
) -> tuple[CFModel, FitReport]:
    """Train a CF model on `interactions`.

    Only users and items with at least one (kept) interaction get factors; everything else stays
    cold (see `CFModel.is_cold`). Items outside `catalog_item_ids` are dropped and counted first.

    Args:
        interactions: the training interactions (e.g. a split's `train`).
        config: `ALSConfig` or `BPRConfig`; None means `ALSConfig()`.
        catalog_item_ids: the items that exist (e.g. the ids in the store); None trusts the log.
        show_progress: show implicit's progress bar.

    Returns:
        The model and a `FitReport` with what was dropped.

    Raises:
        InputError: no interaction left to train on.
        DependencyError: `implicit` is not installed.
    """
    config = config if config is not None else ALSConfig()
    catalog_report = None
    catalog_ids: list[str] = []
    users_dropped = 0
    table = interactions
    if catalog_item_ids is not None:
        catalog_ids = list(dict.fromkeys(str(i) for i in catalog_item_ids))
        table, catalog_report = interactions.align(item_ids=catalog_ids)
        users_dropped = int(((interactions.user_counts() > 0) & (table.user_counts() == 0)).sum())
    if len(table) == 0:
        where = " once items unknown to the catalog were dropped" if catalog_report is not None else ""
        raise InputError(f"no interactions to train the {config.algorithm} model on{where}")
    table = table.compact()
    matrix = table.to_csr()
    model_impl = _estimator(config)
    start = time.perf_counter()
    with _single_threaded_blas():
        model_impl.fit(_confidence(matrix, config), show_progress=show_progress)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    model = CFModel(
        config=config,
        user_ids=table.user_ids,
        item_ids=table.item_ids,
        user_factors=np.asarray(model_impl.user_factors, dtype=np.float32),  # type: ignore[attr-defined]
        item_factors=np.asarray(model_impl.item_factors, dtype=np.float32),  # type: ignore[attr-defined]
        seen_indptr=matrix.indptr,
        seen_indices=matrix.indices,
        info={
            "implicit_version": _implicit_version(),
            "fit_seconds": round(seconds, 4),
            "n_interactions": len(table),
        },
    )
    report = FitReport(
        n_users=table.n_users,
        n_items=table.n_items,
        n_interactions=len(table),
        seconds=seconds,
        catalog=catalog_report,
        users_dropped=users_dropped,
        catalog_items_without_interactions=len(catalog_ids) - table.n_items if catalog_report is not None else 0,
    )
    return model, report


def _single_threaded_blas() -> object:
    # implicit parallelises over users itself; a multi-threaded BLAS underneath oversubscribes
    # the cores and is up to 10x slower (implicit warns about it), so BLAS gets one thread.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        raise DependencyError(f"collaborative filtering needs `implicit`: pip install implicit ({e})") from e
    return threadpool_limits(1, "blas")


__all__ = ["FitReport", "fit"]
