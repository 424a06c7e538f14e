"""Score fusion over plain arrays: the numpy reference of every fusion the query engine runs.

Input is a score matrix, one row per candidate and one column per signal ("leg"): the candidate's
true score on that leg, or NaN where the candidate has no value for it (the item lacks that
modality, e.g. no photo, or no CF factors). Every function returns new arrays; inputs are never
modified.

Normalisations (per column, over the finite values of that column):

- `minmax`: `(s - min) / (max - min)`, so the leg's best candidate reads 1 and its worst 0; a
  column whose values are all equal reads 1.
- `dbsf`: distribution-based (Qdrant's DBSF): `(s - (mean - 3 sd)) / (6 sd)` with the sample
  standard deviation; a column with one value or sd = 0 reads 0.5.
- `none`: the raw scores (only meaningful when every leg is a cosine).

Methods:

- weighted sum (`wsum`): `sum_i w_i n_i / sum_i w_i` over the legs the candidate has
  (`missing="renormalize"`, the default: a candidate lacking a modality is scored on the signals it
  has, not punished with a 0), or `sum_i w_i n_i` over the legs it has with the others reading 0
  (`missing="zero"`, what an engine does when it has no value). Weights are used as given (the
  engine passes them summing to 1, so fused scores stay in the normalised range).
- weighted RRF (`rrf`): Qdrant's definition. A candidate at 0-based position p of leg i (legs ranked
  by score, ties broken by row order) gains `1 / ((p + 1) / w_i + k - 1)`, i.e. `1 / (k + p)` for
  w_i = 1, and nothing for w_i = 0. With `missing="renormalize"` the sum is scaled by
  `sum(w) / sum(w over the legs the candidate has)`.
- `dbsf`: the weighted sum of `dbsf`-normalised scores.

A leg that is missing altogether (a column of NaN, or a signal dropped from the query) simply
takes no part: with renormalisation the other legs' weights are rescaled over what is left.

The engine's rules, which the evaluation calls too (one copy, no drift):

- `candidate_depth`: each leg's nearest neighbours fetched, `max(candidates, limit)`, with
  `DEFAULT_CANDIDATES` (`SearchSettings.candidates`' default);
- `pool`: the candidate set, the union of each leg's `depth` best items (a sparse leg's search
  returns only the items sharing an index with the query: `retrievable`);
- `engine_weights`: the weights as the engine sends them (summing to 1; for RRF averaging 1,
  Qdrant's convention, so equal weights give plain RRF);
- `fuse_candidates`: the fusion of the candidates' true scores with those weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mmsearch.errors import ConfigError, UnknownNameError
from mmsearch.ranking import top_k

Normalization = Literal["minmax", "dbsf", "none"]
Method = Literal["wsum", "rrf", "dbsf"]
Missing = Literal["renormalize", "zero"]
NORMALIZATIONS: tuple[str, ...] = ("minmax", "dbsf", "none")
METHODS: tuple[str, ...] = ("wsum", "rrf", "dbsf")
MISSING: tuple[str, ...] = ("renormalize", "zero")
DEFAULT_RRF_K = 60
DEFAULT_CANDIDATES = 50


@dataclass(frozen=True)
class Affine:
    """A normalisation `(s - shift) * scale`, as the engine's formula applies it."""

    shift: float
    scale: float

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return (np.asarray(scores, dtype=np.float64) - self.shift) * self.scale


@dataclass(frozen=True)
class Fused:
    """The result of fusing a score matrix.

    Attributes:
        scores: fused score per candidate (float64); NaN for a candidate with no leg at all.
        normalized: per-leg normalised scores (NaN where missing); for RRF, each leg's
            reciprocal-rank term.
        contributions: what each leg added to the fused score (0 where missing), after
            renormalisation, so each row sums to `scores`.
        weights: per-candidate effective weight of each leg (0 where missing), after renormalisation.
    """

    scores: np.ndarray
    normalized: np.ndarray
    contributions: np.ndarray
    weights: np.ndarray

    def ranking(self, limit: int) -> np.ndarray:
        """Row indexes of the `limit` best candidates, best first (ties: lower row first)."""
        return top_k(self.scores, limit)


def _check_choice(value: str, known: tuple[str, ...], kind: str) -> None:
    if value not in known:
        raise UnknownNameError(kind, str(value), known)


def _matrix(scores: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    m = np.array(scores, dtype=np.float64)  # a copy: callers' arrays are never written
    if m.ndim != 2:
        raise ConfigError(f"a score matrix is 2-D (candidates x legs), got shape {m.shape}")
    if np.isinf(m).any():
        raise ConfigError("a score matrix holds an infinity; use NaN for a missing score")
    return m


def _weights(weights: Sequence[float] | np.ndarray, n_legs: int) -> np.ndarray:
    w = np.array(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n_legs:
        raise ConfigError(f"{w.shape[0]} weights for {n_legs} legs; give one weight per leg")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ConfigError(f"weights {w.tolist()} must be finite and >= 0")
    return w


def affine(scores: np.ndarray | Sequence[float], method: Normalization = "minmax") -> Affine:
    """The normalisation of one leg, fitted on its finite scores (NaN = missing).

    Raises:
        UnknownNameError: unknown method.
    """
    _check_choice(method, NORMALIZATIONS, "normalization")
    values = np.asarray(scores, dtype=np.float64)
    values = values[np.isfinite(values)]
    if method == "none" or values.size == 0:
        return Affine(0.0, 1.0)
    if method == "minmax":
        return minmax_affine(float(values.min()), float(values.max()))
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    if sd > 0 and math.isfinite(sd):
        return Affine(mean - 3.0 * sd, 1.0 / (6.0 * sd))
    return Affine(mean - 0.5, 1.0)  # one value or no spread: reads 0.5, the mean's place


def minmax_affine(lo: float, hi: float) -> Affine:
    """The min-max normalisation of a leg whose scores span [lo, hi] (all equal: every value reads 1)."""
    if hi > lo:
        return Affine(lo, 1.0 / (hi - lo))
    return Affine(lo - 1.0, 1.0)  # as the best value would


def normalize(scores: np.ndarray | Sequence[float], method: Normalization = "minmax") -> np.ndarray:
    """One leg's scores normalised (a new float64 array; NaN stays NaN).

    Raises:
        UnknownNameError: unknown method.
    """
    return affine(scores, method).apply(np.asarray(scores, dtype=np.float64))


def normalize_columns(
    matrix: np.ndarray | Sequence[Sequence[float]], method: Normalization = "minmax"
) -> tuple[np.ndarray, list[Affine]]:
    """Each column normalised over its own finite values; returns the new matrix and each column's `Affine`."""
    m = _matrix(matrix)
    params = [affine(m[:, j], method) for j in range(m.shape[1])]
    out = np.column_stack([p.apply(m[:, j]) for j, p in enumerate(params)]) if params else m.copy()
    return out, params


def _weighted_mean(normalized: np.ndarray, present: np.ndarray, w: np.ndarray, missing: Missing) -> Fused:
    """Weighted combination of normalised legs over the legs each candidate has."""
    _check_choice(missing, MISSING, "missing-score policy")
    eff = np.where(present, w[None, :], 0.0)
    have = eff.sum(axis=1, keepdims=True)
    if missing == "renormalize":
        eff = np.divide(eff, have, out=np.zeros_like(eff), where=have > 0)
    contributions = np.where(present, normalized, 0.0) * eff
    scores = np.where(have[:, 0] > 0, contributions.sum(axis=1), np.nan)
    return Fused(
        scores=scores, normalized=np.where(present, normalized, np.nan), contributions=contributions, weights=eff
    )


def weighted_sum(
    matrix: np.ndarray | Sequence[Sequence[float]],
    weights: Sequence[float] | np.ndarray,
    *,
    normalization: Normalization = "minmax",
    missing: Missing = "renormalize",
    params: Sequence[Affine] | None = None,
) -> Fused:
    """Weighted sum of normalised scores.

    Args:
        matrix: candidates x legs, NaN where a candidate has no score on a leg.
        weights: one per leg (>= 0). With `renormalize`, each candidate's weights are rescaled to
            sum to 1 over the legs it has (a weighted mean); with `zero`, they are used as given
            and missing legs add 0.
        normalization: `minmax`, `dbsf` or `none`, fitted per leg over the candidates.
        missing: `renormalize` or `zero`.
        params: each leg's normalisation, when it was fitted on more candidates than `matrix`
            holds (e.g. the engine's candidate set, of which `matrix` is the hits); replaces
            `normalization`.

    Returns:
        The fused scores with the per-leg breakdown. A candidate with no leg of positive weight
        scores NaN (never ranked).

    Raises:
        ConfigError: bad shapes, an infinite score, negative or non-finite weights.
        UnknownNameError: unknown normalization or missing policy.
    """
    m = _matrix(matrix)
    w = _weights(weights, m.shape[1])
    if params is None:
        normalized, _ = normalize_columns(m, normalization)
    else:
        if len(params) != m.shape[1]:
            raise ConfigError(f"{len(params)} normalisations for {m.shape[1]} legs; give one per leg")
        normalized = np.column_stack([p.apply(m[:, j]) for j, p in enumerate(params)]) if len(params) else m.copy()
    return _weighted_mean(normalized, np.isfinite(m), w, missing)


def ranks(matrix: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """0-based position of each candidate in each leg's ranking (best first; ties: lower row first); -1 if missing."""
    m = _matrix(matrix)
    out = np.full(m.shape, -1, dtype=np.int64)
    for j in range(m.shape[1]):
        rows = np.flatnonzero(np.isfinite(m[:, j]))
        order = rows[np.lexsort((rows, -m[rows, j]))]
        out[order, j] = np.arange(order.size)
    return out


def rrf_term(position: np.ndarray | int, weight: float, k: int = DEFAULT_RRF_K) -> np.ndarray:
    """Qdrant's weighted reciprocal-rank term for 0-based `position`: `1 / ((p + 1) / w + k - 1)`, 0 if w = 0."""
    p = np.asarray(position, dtype=np.float64)
    if weight <= 0:
        return np.zeros_like(p)
    return 1.0 / ((p + 1.0) / weight + k - 1.0)


def weighted_rrf(
    matrix: np.ndarray | Sequence[Sequence[float]],
    weights: Sequence[float] | np.ndarray | None = None,
    *,
    k: int = DEFAULT_RRF_K,
    missing: Missing = "renormalize",
) -> Fused:
    """(Weighted) reciprocal rank fusion of the legs' rankings.

    Args:
        matrix: candidates x legs, NaN where a candidate has no score on a leg.
        weights: one per leg (>= 0); None weighs all legs 1 (plain RRF).
        k: the RRF constant (>= 1).
        missing: `renormalize` scales a candidate's sum by total weight / weight of its legs;
            `zero` leaves it (missing legs add nothing, Qdrant's behaviour).

    Raises:
        ConfigError: bad shapes, k < 1, negative or non-finite weights.
    """
    m = _matrix(matrix)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"RRF k={k!r} must be a positive integer")
    _check_choice(missing, MISSING, "missing-score policy")
    w = _weights(np.ones(m.shape[1]) if weights is None else weights, m.shape[1])
    present = np.isfinite(m)
    pos = ranks(m)
    terms = np.zeros(m.shape, dtype=np.float64)
    for j in range(m.shape[1]):
        terms[:, j] = np.where(present[:, j], rrf_term(pos[:, j], float(w[j]), int(k)), 0.0)
    weight_present = np.where(present, w[None, :], 0.0)
    have = weight_present.sum(axis=1)
    if missing == "renormalize":
        factor = np.divide(w.sum(), have, out=np.zeros_like(have), where=have > 0)
    else:
        factor = np.ones_like(have)
    contributions = terms * factor[:, None]
    scores = np.where(have > 0, contributions.sum(axis=1), np.nan)
    return Fused(
        scores=scores,
        normalized=np.where(present, terms, np.nan),
        contributions=contributions,
        weights=weight_present * factor[:, None],
    )


def dbsf(
    matrix: np.ndarray | Sequence[Sequence[float]],
    weights: Sequence[float] | np.ndarray | None = None,
    *,
    missing: Missing = "renormalize",
) -> Fused:
    """Distribution-based score fusion: the weighted sum of `dbsf`-normalised scores.

    With all weights 1 and `missing="zero"` this is Qdrant's DBSF over the same candidate lists.
    """
    m = _matrix(matrix)
    w = np.ones(m.shape[1]) if weights is None else weights
    return weighted_sum(m, w, normalization="dbsf", missing=missing)


def fuse(
    matrix: np.ndarray | Sequence[Sequence[float]],
    weights: Sequence[float] | np.ndarray,
    method: Method = "wsum",
    *,
    normalization: Normalization = "minmax",
    k: int = DEFAULT_RRF_K,
    missing: Missing = "renormalize",
) -> Fused:
    """Fuse a score matrix with `wsum` (using `normalization`), `rrf` or `dbsf`.

    Raises:
        UnknownNameError: unknown method, normalization or missing policy.
        ConfigError: see the method's function.
    """
    _check_choice(method, METHODS, "fusion method")
    if method == "rrf":
        return weighted_rrf(matrix, weights, k=k, missing=missing)
    if method == "dbsf":
        return dbsf(matrix, weights, missing=missing)
    return weighted_sum(matrix, weights, normalization=normalization, missing=missing)


def candidate_depth(candidates: int, limit: int) -> int:
    """How many nearest neighbours each leg contributes to the candidate set: enough for `limit` results."""
    return max(int(candidates), int(limit))


def pool(
    matrix: np.ndarray | Sequence[Sequence[float]], depth: int, *, retrievable: np.ndarray | None = None
) -> np.ndarray:
    """The candidate set of a query: the union of each leg's `depth` best rows (ascending row indices).

    A leg ranks its finite scores (ties: lower row first), as a nearest-neighbour search does;
    with `retrievable` (bool, the matrix's shape) only the rows its search can return, e.g. the
    items sharing an index with a sparse leg's query (the others score 0 but are never found).

    Raises:
        ConfigError: a depth below 1, or a `retrievable` mask of another shape.
    """
    m = _matrix(matrix)
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ConfigError(f"candidate depth {depth!r} must be a positive integer")
    if retrievable is not None:
        if np.shape(retrievable) != m.shape:
            raise ConfigError(f"retrievable mask {np.shape(retrievable)} does not match the scores {m.shape}")
        m = np.where(retrievable, m, np.nan)
    best = [top_k(m[:, j], int(depth)) for j in range(m.shape[1])]
    return np.unique(np.concatenate(best)) if best else np.zeros(0, dtype=np.int64)


def engine_weights(weights: Sequence[float] | np.ndarray, method: str) -> np.ndarray:
    """Relative weights as the engine fuses with them: summing to 1, or for `rrf` averaging 1.

    Raises:
        ConfigError: a negative or non-finite weight, or all weights 0.
        UnknownNameError: unknown method.
    """
    _check_choice(method, METHODS, "fusion method")
    w = np.array(weights, dtype=np.float64).reshape(-1)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ConfigError(f"weights {w.tolist()} must be finite, >= 0 and not all 0")
    shares = w / w.sum()
    return shares * len(shares) if method == "rrf" else shares


def fuse_candidates(
    matrix: np.ndarray | Sequence[Sequence[float]],
    weights: Sequence[float] | np.ndarray,
    method: Method = "wsum",
    *,
    normalization: Normalization = "minmax",
    k: int = DEFAULT_RRF_K,
    params: Sequence[Affine] | None = None,
) -> Fused:
    """The engine's fusion of a candidate set's true scores (NaN: the item lacks the leg's vector).

    Weights are relative (`engine_weights` scales them); legs are normalised over the candidates
    (or by `params`, fitted on more rows than `matrix` holds); missing legs are renormalised.

    Raises:
        UnknownNameError: unknown method or normalization.
        ConfigError: see `weighted_sum` and `weighted_rrf`.
    """
    w = engine_weights(weights, method)
    if method == "rrf":
        return weighted_rrf(matrix, w, k=k)
    m = _matrix(matrix)
    fitted = list(params) if params is not None else leg_params(m, method, normalization)
    return weighted_sum(m, w, params=fitted)


def leg_params(matrix: np.ndarray | Sequence[Sequence[float]], method: str, normalization: str) -> list[Affine]:
    """Each leg's normalisation over the candidates for a weighted-sum method (`wsum` or `dbsf`).

    Raises:
        UnknownNameError: unknown method or normalization.
    """
    _check_choice(method, METHODS, "fusion method")
    _check_choice(normalization, NORMALIZATIONS, "normalization")
    m = _matrix(matrix)
    norm: Normalization = "dbsf" if method == "dbsf" else normalization  # type: ignore[assignment]
    return [affine(m[:, j], norm) for j in range(m.shape[1])]


__all__ = [
    "Affine",
    "DEFAULT_CANDIDATES",
    "DEFAULT_RRF_K",
    "Fused",
    "METHODS",
    "MISSING",
    "NORMALIZATIONS",
    "affine",
    "candidate_depth",
    "dbsf",
    "engine_weights",
    "fuse",
    "fuse_candidates",
    "leg_params",
    "minmax_affine",
    "normalize",
    "normalize_columns",
    "pool",
    "ranks",
    "rrf_term",
    "weighted_rrf",
    "weighted_sum",
]
