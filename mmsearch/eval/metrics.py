"""Top-k ranking metrics, vectorised over users: MAP, nDCG, Recall, Precision and coverage.

Inputs:
    ranked: an int matrix (n_users, K) of item indices, best first, one row per user; -1 pads
        rows that hold fewer than K items (`mmsearch.ranking.top_k_rows` writes this form). An
        item may appear once per row.
    relevant: per user, the relevant item indices: a scipy sparse matrix or a dense 2-D numpy
        array (n_users, n_items) whose positive entries are relevance grades (e.g. a test split's
        `to_csr()`), a sequence of item-index collections (binary relevance), or a sequence of
        {item index: grade} mappings.

Conventions (the ones ranx and trec_eval use, spelled out since papers differ):
    - Users with no relevant item have no defined recall, AP or nDCG. Per-user functions give
      NaN for them; `evaluate` leaves them out of every mean (precision included, so all metrics
      average over the same users) and reports how many it left out.
    - k larger than the ranking: missing positions are misses. Precision@k still divides by k.
    - Recall@k = hits in the top k / number of relevant items (not min(k, |relevant|)).
    - AP@k = sum over relevant positions i <= k of Precision@i, divided by min(k, |relevant|),
      so a ranking that fills the top k with relevant items scores 1.
    - nDCG@k = DCG@k / IDCG@k with DCG = sum of gain_i / log2(i + 1), positions i from 1, and
      linear gains: 1 per relevant item by default, the grade itself with `graded=True`. IDCG
      sorts all of the user's relevant grades (not only the retrieved ones).
    - Coverage@k = distinct items in any user's top k / catalogue size, over every row of
      `ranked` (it describes the recommender, not the test users).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

import numpy as np

from mmsearch.errors import ConfigError, InputError

if TYPE_CHECKING:
    import scipy.sparse

Relevance = Union[
    "scipy.sparse.spmatrix", "scipy.sparse.sparray", Sequence[Collection[int]], Sequence[Mapping[int, float]]
]
DEFAULT_KS: tuple[int, ...] = (10, 20, 30)
METRICS: tuple[str, ...] = ("map", "ndcg", "recall", "precision", "coverage")


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    return int(k)


def check_ranked(ranked: np.ndarray, n_items: int | None = None) -> np.ndarray:
    """`ranked` as an int64 matrix, checked: 2-D, indices >= -1 (and < n_items), no repeats in a row.

    Raises:
        InputError: the matrix breaks one of those rules (the message names the row).
    """
    array = np.asarray(ranked)
    if array.ndim != 2:
        raise InputError(f"ranked must be a 2-D matrix (users x positions), got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"ranked must hold integer item indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size:
        if array.min() < -1:
            row = int(np.argwhere(array < -1)[0, 0])
            raise InputError(f"ranked row {row} holds item index {int(array[row].min())}; indices are >= 0, -1 pads")
        if n_items is not None and array.max() >= n_items:
            row = int(np.argwhere(array >= n_items)[0, 0])
            raise InputError(f"ranked row {row} holds item index {int(array[row].max())} >= n_items {n_items}")
        ordered = np.sort(array, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        if repeated.any():
            row = int(np.argwhere(repeated)[0, 0])
            item = int(ordered[row, 1:][repeated[row]][0])
            raise InputError(f"ranked row {row} lists item {item} more than once")
    return array


def relevance_matrix(
    relevant: Relevance, n_users: int | None = None, n_items: int | None = None
) -> scipy.sparse.csr_matrix:
    """Relevance as a float64 CSR matrix (n_users, n_items) holding positive grades only.

    Args:
        relevant: see the module docstring.
        n_users: expected number of rows (checked when given).
        n_items: number of columns; None takes 1 + the largest index seen.

    Raises:
        InputError: a negative item index, an index >= n_items, a non-finite or negative grade,
            or a row count different from `n_users`.
    """
    import scipy.sparse

    if isinstance(relevant, np.ndarray) and relevant.ndim != 2:
        raise InputError(f"a relevance array must be 2-D (users x items), got shape {relevant.shape}")
    if scipy.sparse.issparse(relevant) or isinstance(relevant, np.ndarray):
        matrix = scipy.sparse.csr_matrix(relevant, dtype=np.float64)
        if n_items is not None and matrix.shape[1] != n_items:
            raise InputError(f"relevance matrix has {matrix.shape[1]} item columns, expected {n_items}")
    else:
        rows: list[int] = []
        cols: list[int] = []
        grades: list[float] = []
        for u, entry in enumerate(relevant):
            pairs: Iterable[tuple[int, float]]
            pairs = entry.items() if isinstance(entry, Mapping) else ((i, 1.0) for i in entry)
            for item, grade in pairs:
                rows.append(u)
                cols.append(int(item))
                grades.append(float(grade))
        n_rows = len(relevant)
        if cols and min(cols) < 0:
            raise InputError(f"relevant item index {min(cols)} is negative")
        width = n_items if n_items is not None else (max(cols) + 1 if cols else 0)
        if cols and max(cols) >= width:
            raise InputError(f"relevant item index {max(cols)} >= n_items {width}")
        matrix = scipy.sparse.csr_matrix((grades, (rows, cols)), shape=(n_rows, width), dtype=np.float64)
        matrix.sum_duplicates()
    if n_users is not None and matrix.shape[0] != n_users:
        raise InputError(f"relevance has {matrix.shape[0]} users but ranked has {n_users} rows")
    if matrix.nnz and (not np.isfinite(matrix.data).all() or matrix.data.min() < 0):
        raise InputError("relevance grades must be finite and non-negative")
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def _prepare(ranked: np.ndarray, relevant: Relevance, k: int) -> tuple[np.ndarray, scipy.sparse.csr_matrix]:
    """The top-k columns of `ranked` (padded with -1 to width k) and the relevance matrix."""
    k = _check_k(k)
    array = check_ranked(ranked)
    rel = relevance_matrix(relevant, n_users=array.shape[0])
    top = array[:, :k]
    if top.shape[1] < k:
        top = np.pad(top, ((0, 0), (0, k - top.shape[1])), constant_values=-1)
    return top, rel


def _grades_at(top: np.ndarray, rel: scipy.sparse.csr_matrix) -> np.ndarray:
    """Relevance grade of each ranked item (0 for padding and for items beyond the matrix)."""
    out = np.zeros(top.shape, dtype=np.float64)
    users, positions = np.nonzero((top >= 0) & (top < rel.shape[1]))
    if len(users):
        out[users, positions] = np.asarray(rel[users, top[users, positions]]).ravel()
    return out


def _n_relevant(rel: scipy.sparse.csr_matrix) -> np.ndarray:
    return np.diff(rel.indptr).astype(np.float64)


def _undefined_as_nan(values: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return np.where(n_relevant > 0, values, np.nan)


def precision_at_k(ranked: np.ndarray, relevant: Relevance, k: int) -> np.ndarray:
    """Per user: relevant items among the top k, divided by k (NaN for users with none relevant)."""
    top, rel = _prepare(ranked, relevant, k)
    hits = (_grades_at(top, rel) > 0).sum(axis=1)
    return _undefined_as_nan(hits / k, _n_relevant(rel))


def recall_at_k(ranked: np.ndarray, relevant: Relevance, k: int) -> np.ndarray:
    """Per user: relevant items among the top k, divided by all relevant items (NaN if none)."""
    top, rel = _prepare(ranked, relevant, k)
    hits = (_grades_at(top, rel) > 0).sum(axis=1)
    n_rel = _n_relevant(rel)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _undefined_as_nan(hits / n_rel, n_rel)


def average_precision_at_k(ranked: np.ndarray, relevant: Relevance, k: int) -> np.ndarray:
    """Per user: AP@k, the sum of Precision@i at relevant positions i <= k over min(k, |relevant|)."""
    top, rel = _prepare(ranked, relevant, k)
    hits = (_grades_at(top, rel) > 0).astype(np.float64)
    precision_at_i = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    n_rel = _n_relevant(rel)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _undefined_as_nan((precision_at_i * hits).sum(axis=1) / np.minimum(k, n_rel), n_rel)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _ideal_gains(rel: scipy.sparse.csr_matrix, k: int, graded: bool) -> np.ndarray:
    """(n_users, k): each user's k largest gains, sorted, zero-padded."""
    n_users = rel.shape[0]
    row_of = np.repeat(np.arange(n_users), np.diff(rel.indptr))
    gains = rel.data if graded else np.ones_like(rel.data)
    order = np.lexsort((-gains, row_of))
    rank_in_row = np.arange(len(order)) - rel.indptr[row_of[order]]
    keep = rank_in_row < k
    ideal = np.zeros((n_users, k), dtype=np.float64)
    ideal[row_of[order][keep], rank_in_row[keep]] = gains[order][keep]
    return ideal


def ndcg_at_k(ranked: np.ndarray, relevant: Relevance, k: int, *, graded: bool = False) -> np.ndarray:
    """Per user: nDCG@k with linear gains (1 per relevant item, or the grade if `graded`); NaN if none relevant."""
    top, rel = _prepare(ranked, relevant, k)
    grades = _grades_at(top, rel)
    gains = grades if graded else (grades > 0).astype(np.float64)
    discounts = _discounts(k)
    dcg = gains @ discounts
    idcg = _ideal_gains(rel, k, graded) @ discounts
    with np.errstate(divide="ignore", invalid="ignore"):
        return _undefined_as_nan(dcg / idcg, _n_relevant(rel))


def coverage_at_k(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Distinct items in the top k of any row, divided by the catalogue size `n_items`.

    Raises:
        ConfigError: `n_items` or `k` below 1.
        InputError: `ranked` malformed or holding an index >= n_items.
    """
    k = _check_k(k)
    if n_items < 1:
        raise ConfigError(f"n_items must be at least 1, got {n_items}")
    top = check_ranked(ranked, n_items)[:, :k]
    return float(len(np.unique(top[top >= 0])) / n_items)


@dataclass(frozen=True)
class MetricReport:
    """Mean metrics over the users that have at least one relevant item.

    Attributes:
        values: e.g. {"map@10": ..., "ndcg@10": ..., "recall@10": ..., "precision@10": ...,
            "coverage@10": ...} for every k.
        n_users: users averaged over.
        n_skipped: users left out for having no relevant item.
    """

    values: dict[str, float]
    n_users: int
    n_skipped: int


def evaluate(
    ranked: np.ndarray,
    relevant: Relevance,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    n_items: int | None = None,
    graded: bool = False,
) -> MetricReport:
    """MAP@k, nDCG@k, Recall@k and Precision@k averaged over users, plus coverage@k.

    Args:
        ranked: (n_users, K) item indices, -1 padded.
        relevant: one entry per row of `ranked` (see the module docstring).
        ks: cut-offs.
        n_items: catalogue size for coverage; None leaves coverage out.
        graded: nDCG with the relevance grades as gains instead of 1 per relevant item.

    Raises:
        ConfigError: an empty `ks` or a k that is not a positive integer.
        InputError: malformed `ranked` or `relevant`.
    """
    if not ks:
        raise ConfigError("ks must list at least one cut-off")
    ks = [_check_k(k) for k in ks]
    array = check_ranked(ranked, n_items)
    rel = relevance_matrix(relevant, n_users=array.shape[0])
    defined = _n_relevant(rel) > 0
    values: dict[str, float] = {}

    def mean(per_user: np.ndarray) -> float:
        return float(per_user[defined].mean()) if defined.any() else float("nan")

    for k in ks:
        values[f"map@{k}"] = mean(average_precision_at_k(array, rel, k))
        values[f"ndcg@{k}"] = mean(ndcg_at_k(array, rel, k, graded=graded))
        values[f"recall@{k}"] = mean(recall_at_k(array, rel, k))
        values[f"precision@{k}"] = mean(precision_at_k(array, rel, k))
        if n_items is not None:
            values[f"coverage@{k}"] = coverage_at_k(array, n_items, k)
    return MetricReport(values=values, n_users=int(defined.sum()), n_skipped=int((~defined).sum()))


__all__ = [
    "DEFAULT_KS",
    "METRICS",
    "MetricReport",
    "Relevance",
    "average_precision_at_k",
    "check_ranked",
    "coverage_at_k",
    "evaluate",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "relevance_matrix",
]
