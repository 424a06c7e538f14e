"""Deterministic top-k selection over score arrays, shared by CF, fusion and evaluation.

Conventions: higher scores rank first; equal scores rank by lower index (so results never depend
on sort internals); non-finite scores (-inf for excluded items, NaN for unknown ones) are never
returned. Matrices of rankings pad short rows with -1, which the metrics read as "no item".
"""

from __future__ import annotations

import numpy as np

from mmsearch.errors import ConfigError

PAD = -1


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` best finite scores of a 1-D array, best first (ties: lower index first).

    Returns fewer than `k` indices when fewer scores are finite.

    Raises:
        ConfigError: `k` is not a positive integer, or `scores` is not 1-D.
    """
    _check_k(k)
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ConfigError(f"top_k takes a 1-D score array, got shape {scores.shape}")
    candidates = np.flatnonzero(np.isfinite(scores))
    values = scores[candidates]
    if k < len(candidates):
        # Partition finds the k-th best value; keeping every score >= it keeps all ties at the
        # boundary, so the final lexsort, not argpartition's arbitrary choice, breaks them.
        kth = np.partition(values, len(values) - k)[len(values) - k]
        keep = values >= kth
        candidates, values = candidates[keep], values[keep]
    order = np.lexsort((candidates, -values))[:k]
    return candidates[order]


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Row-wise `top_k` of a 2-D array: an int64 matrix (rows, k), short rows padded with -1.

    Raises:
        ConfigError: `k` is not a positive integer, or `scores` is not 2-D.
    """
    _check_k(k)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ConfigError(f"top_k_rows takes a 2-D score array, got shape {scores.shape}")
    negated = np.where(np.isfinite(scores), -scores, np.inf)
    # A stable sort of the negated scores puts equal scores in index order.
    order = np.argsort(negated, axis=1, kind="stable")[:, :k]
    valid = np.isfinite(np.take_along_axis(negated, order, axis=1))
    ranked = np.where(valid, order, PAD).astype(np.int64)
    if ranked.shape[1] < k:
        ranked = np.pad(ranked, ((0, 0), (0, k - ranked.shape[1])), constant_values=PAD)
    return ranked


__all__ = ["PAD", "top_k", "top_k_rows"]
