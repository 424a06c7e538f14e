"""EASE's item-item weights: the exact closed form, and a sparse approximation that scales.

Both solve EASE (Steck 2019): B minimises ||X - XB||^2 + lambda ||B||^2 with diag(B) = 0, whose
closed form is B = I - P diag(1 / diag(P)) with P = (G + lambda I)^-1 and G = X^T X; column j of
B is the ridge regression of item j's column of X on the other items' columns. Side information
joins G as `a^2 F F^T` (F: an item feature block with unit rows, a its weight), which is the same
as appending F^T to X as extra rows: an item without interactions is then fitted from its
content and gets weights (cold items get scores).

- `exact`: G dense, inverted in place through its Cholesky factor (LAPACK potrf/potri, float32),
  then each column cut to its `neighbors` largest weights by magnitude. n^3 / 3 multiply-adds
  and one n x n float32 matrix (4 n^2 bytes): about 0.4 GB at 10,000 items, 10 GB at 50,000;
  a 24 GiB machine stops at about 75,000 items.
- `sparse`: each column is solved on its own support, the item's `neighbors` nearest items by
  cosine of the co-occurrence counts (and, with side information, by cosine of the features):
  the same ridge regression restricted to them, (G_SS + lambda I) b = G_Sj, a k x k system per
  item, solved in batches. n k^3 / 3 multiply-adds, and memory that grows with the non-zeros of
  X^T X; with the support being every other item it is exact EASE. Its columns have at most
  `neighbors` weights by construction, so nothing is cut after solving.

Sources (the indices of a column) are always items with training interactions: only they can
occur in a history the model was fitted from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.cf.config import EASEConfig
from mmsearch.errors import ConfigError, InputError, listed

if TYPE_CHECKING:
    import scipy.sparse

# Below this many items the sparse solver gathers each support's Gram block from a dense copy of
# X^T X (4 n^2 bytes: 0.6 GB at 12,000 items); above it, from the sparse matrix, item by item.
DENSE_GATHER_MAX = 12_000
_BATCH = 256  # columns solved together
_SIDE_BLOCK = 256  # items whose content neighbours are found together


def side_block(config: EASEConfig, side: Mapping[str, np.ndarray] | None, n_items: int) -> np.ndarray | None:
    """The weighted feature block `[a_1 F_1, a_2 F_2, ...]` (rows of each F scaled to unit length), or None.

    Args:
        config: names each source and its weight.
        side: source name -> (n_items, d) features; zero or NaN rows where an item lacks them.
        n_items: the model's item count.

    Raises:
        ConfigError: a source the config weighs but `side` lacks, or one given but not weighed.
        InputError: a block without one row per item.
    """
    given = dict(side or {})
    if set(given) != set(config.side):
        missing, extra = sorted(set(config.side) - set(given)), sorted(set(given) - set(config.side))
        raise ConfigError(
            f"EASE side information: weights name {listed(sorted(config.side))}, features given for "
            f"{listed(sorted(given))} (missing: {listed(missing)}; not weighed: {listed(extra)})"
        )
    blocks = []
    for name in sorted(config.side):
        weight = config.side[name]
        rows = np.nan_to_num(np.asarray(given[name], dtype=np.float64), nan=0.0)
        if rows.ndim != 2 or rows.shape[0] != n_items:
            raise InputError(f"side information {name!r} has shape {rows.shape}; expected ({n_items}, d)")
        if weight == 0:
            continue
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        blocks.append(weight * np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0))
    return np.hstack(blocks) if blocks else None


def ease_weights(
    matrix: scipy.sparse.csr_matrix, config: EASEConfig, features: np.ndarray | None = None
) -> scipy.sparse.csc_matrix:
    """EASE's weights for a users x items matrix (its weighting already applied).

    Args:
        matrix: users x items, float, the values X holds.
        config: lambda, neighbours kept, solver.
        features: the weighted feature block from `side_block`, or None.

    Returns:
        items x items CSC float32: column j holds item j's weights (at most `neighbors`, none
        on the diagonal, none from items without interactions); empty for an item that has
        neither interactions nor features.
    """
    import scipy.sparse

    x = scipy.sparse.csr_matrix(matrix, dtype=np.float32)  # float32 holds co-occurrence counts exactly to 2^24
    warm = np.diff(x.tocsc().indptr) > 0
    gram = (x.T @ x).tocsr()
    gram.sort_indices()
    if config.solver == "exact":
        return _exact(gram, config, features, warm)
    return _sparse(gram, config, features, warm)


# ------------------------------------------------------------------ exact


def _exact(
    gram: scipy.sparse.csr_matrix, config: EASEConfig, features: np.ndarray | None, warm: np.ndarray
) -> scipy.sparse.csc_matrix:
    """Invert the warm items' Gram block; a warm column is EASE's closed form, a cold one (side information) P G_Wc."""
    from scipy.linalg import blas, lapack

    n = gram.shape[0]
    sources = np.flatnonzero(warm)
    g = gram[sources][:, sources].toarray()  # float32: 4 n^2 bytes, the only n x n matrix held
    feats = features[sources] if features is not None else None
    if feats is not None:
        for start in range(0, len(sources), _SIDE_BLOCK * 4):  # += F F^T without a second n x n matrix
            stop = min(start + _SIDE_BLOCK * 4, len(sources))
            g[start:stop] += (feats[start:stop] @ feats.T).astype(np.float32)
    g[np.diag_indices(len(sources))] += np.float32(config.regularization)
    # G is symmetric, so its transpose is the same matrix in Fortran order: LAPACK works in place.
    factor, info = lapack.spotrf(g.T, lower=1, overwrite_a=1, clean=0)
    if info != 0:
        raise InputError(f"EASE: the Gram matrix is not positive definite (LAPACK potrf info {info})")
    inverse, info = lapack.spotri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise InputError(f"EASE: inverting the Gram matrix failed (LAPACK potri info {info})")
    columns = dict(zip(sources.tolist(), _pruned_columns(inverse, config.neighbors, sources), strict=True))
    cold = np.flatnonzero(~warm)
    if features is not None and feats is not None and len(cold):
        # A cold item's column: the ridge regression of its features on the warm items, P (F_W f_c).
        pf = blas.ssymm(1.0, inverse, feats.astype(np.float32), side=0, lower=1)
        for start in range(0, len(cold), _SIDE_BLOCK):
            block = cold[start : start + _SIDE_BLOCK]
            values = pf.astype(np.float64) @ features[block].T
            for c, j in enumerate(block):
                rows, vals = _top(values[:, c], config.neighbors)
                columns[int(j)] = (sources[rows], vals)
    empty = (np.zeros(0, np.int64), np.zeros(0))
    ordered = [columns.get(j, empty) for j in range(n)]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r, _ in ordered])]).tolist()
    return _csc(indptr, [r for r, _ in ordered], [v for _, v in ordered], n)


def _pruned_columns(lower: np.ndarray, k: int, sources: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """B = -P / diag(P) column by column from P's lower triangle, each cut to its k largest |weights| (global rows)."""
    n = lower.shape[0]
    diag = np.diag(lower).astype(np.float64)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    step = 512
    for c0 in range(0, n, step):
        c1 = min(c0 + step, n)
        cols = np.empty((n, c1 - c0), dtype=np.float64)
        cols[c1:] = lower[c1:, c0:c1]
        cols[:c0] = lower[c0:c1, :c0].T
        block = lower[c0:c1, c0:c1].astype(np.float64)
        cols[c0:c1] = np.tril(block) + np.tril(block, -1).T
        cols /= -diag[c0:c1]
        cols[np.arange(c0, c1), np.arange(c1 - c0)] = 0.0
        for j in range(c1 - c0):
            rows, vals = _top(cols[:, j], k)
            out.append((sources[rows], vals))
    return out


def _top(column: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The row indices (ascending) and values of a column's k largest non-zero |values|."""
    nonzero = np.flatnonzero(column)
    if nonzero.size > k:
        nonzero = nonzero[np.argpartition(-np.abs(column[nonzero]), k - 1)[:k]]
    nonzero.sort()
    return nonzero, column[nonzero]


def _csc(indptr: list[int], indices: list[np.ndarray], values: list[np.ndarray], n: int) -> scipy.sparse.csc_matrix:
    import scipy.sparse

    data = np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32)
    rows = np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32)
    return scipy.sparse.csc_matrix((data, rows, np.asarray(indptr, dtype=np.int64)), shape=(n, n))


# ------------------------------------------------------------------ sparse


def _sparse(
    gram: scipy.sparse.csr_matrix, config: EASEConfig, features: np.ndarray | None, warm: np.ndarray
) -> scipy.sparse.csc_matrix:
    from threadpoolctl import threadpool_limits

    n = gram.shape[0]
    lookup = _Gram(gram, features)
    support = supports(lookup, config.neighbors, warm)
    indptr, indices, values = [0], [], []
    # Many small solves: one BLAS thread each is fastest (a second thread only waits on a busy machine).
    with threadpool_limits(1, "blas"):
        for start in range(0, n, _BATCH):
            block = support[start : min(start + _BATCH, n)]
            for rows, vals in _solve(lookup, block, start, config.regularization):
                indices.append(rows)
                values.append(vals)
                indptr.append(indptr[-1] + len(rows))
    return _csc(indptr, indices, values, n)


class _Gram:
    """G = X^T X + F F^T, read in blocks: dense in memory when the catalogue is small, else from the sparse X^T X.

    Attributes:
        cooc: X^T X (CSR, sorted indices): which items co-occur.
        features: the weighted feature block F, or None.
        dense: G as a dense float32 matrix (catalogues up to `DENSE_GATHER_MAX` items), or None.
        diag: G's diagonal.
    """

    def __init__(self, gram: scipy.sparse.csr_matrix, features: np.ndarray | None) -> None:
        self.cooc = gram
        self.features = features
        n = gram.shape[0]
        self.dense: np.ndarray | None = None
        if n <= DENSE_GATHER_MAX:
            self.dense = gram.toarray()
            if features is not None:
                self.dense += (features @ features.T).astype(np.float32)
        extra = np.zeros(n) if features is None else np.einsum("ij,ij->i", features, features)
        self.diag = gram.diagonal().astype(np.float64) + extra

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """G[rows][:, cols] as float64."""
        if self.dense is not None:
            return self.dense[np.ix_(rows, cols)].astype(np.float64)
        out = self.cooc[rows][:, cols].toarray().astype(np.float64)
        if self.features is not None:
            out += self.features[rows] @ self.features[cols].T
        return out


def _solve(lookup: _Gram, block: list[np.ndarray], start: int, lam: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Solve each column of a batch on its support: (G_SS + lambda I) b = G_Sj."""
    k = max((len(s) for s in block), default=0)
    out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros(0))] * len(block)
    if k == 0:
        return out
    a = np.zeros((len(block), k, k))
    rhs = np.zeros((len(block), k))
    for b, rows in enumerate(block):
        m = len(rows)
        if m:
            j = np.array([start + b])
            full = lookup.block(rows, np.concatenate([rows, j]))
            a[b, :m, :m] = full[:, :m]
            rhs[b, :m] = full[:, m]
        a[b, np.arange(k), np.arange(k)] += lam  # padding rows solve to 0
    solved = np.linalg.solve(a, rhs[..., None])[..., 0]
    for b, rows in enumerate(block):
        vals = solved[b, : len(rows)]
        keep = vals != 0
        out[b] = (rows[keep], vals[keep])
    return out


def supports(lookup: _Gram, k: int, warm: np.ndarray) -> list[np.ndarray]:
    """Each item's k nearest warm items (ascending indices): by cosine of G = X^T X + F F^T.

    The candidates are the items co-occurring with it and, with features, its k nearest warm
    items by feature cosine; they are ranked by their cosine in G (positive ones only). When k
    reaches the number of other warm items, the support is all of them (and the solution exact EASE).
    """
    n = lookup.cooc.shape[0]
    sources = np.flatnonzero(warm)
    if k >= len(sources) - 1:  # every other warm item: the closed form itself
        return [sources[sources != j] for j in range(n)]
    scale = 1.0 / np.sqrt(np.where(lookup.diag > 0, lookup.diag, 1.0))
    content = _content_neighbours(lookup.features, k, warm) if lookup.features is not None else None
    if lookup.dense is not None:
        return _dense_supports(lookup.dense, lookup.cooc, k, warm, scale, content)
    out: list[np.ndarray] = []
    cooc, features = lookup.cooc, lookup.features
    for j in range(n):
        part = slice(cooc.indptr[j], cooc.indptr[j + 1])
        cand, sims = cooc.indices[part].astype(np.int64), cooc.data[part].astype(np.float64)
        if content is not None and features is not None:
            cand = np.union1d(cand, content[j])
            sims = _gram_row(cooc, j, cand) + features[cand] @ features[j]
        keep = (cand != j) & warm[cand] & (sims > 0)
        cand, sims = cand[keep], sims[keep] * scale[cand[keep]]
        if cand.size > k:
            cand = cand[np.argpartition(-sims, k - 1)[:k]]
        out.append(np.sort(cand))
    return out


def _dense_supports(
    dense: np.ndarray,
    cooc: scipy.sparse.csr_matrix,
    k: int,
    warm: np.ndarray,
    scale: np.ndarray,
    content: list[np.ndarray] | None,
) -> list[np.ndarray]:
    """`supports` on the dense G, a block of items at a time (the same candidates and order)."""
    n = dense.shape[0]
    out: list[np.ndarray] = []
    for start in range(0, n, _SIDE_BLOCK):
        stop = min(start + _SIDE_BLOCK, n)
        rows = np.arange(start, stop)
        allowed = cooc[start:stop].toarray() > 0
        if content is not None:
            for r in rows:
                allowed[r - start, content[r]] = True
        allowed &= warm[None, :]
        allowed[rows - start, rows] = False
        g = dense[start:stop].astype(np.float64)
        sims = np.where(allowed & (g > 0), g * scale[None, :], -np.inf)
        for r in range(stop - start):
            row = sims[r]
            cand = np.flatnonzero(np.isfinite(row))
            if cand.size > k:
                cand = cand[np.argpartition(-row[cand], k - 1)[:k]]
            out.append(np.sort(cand))
    return out


def _gram_row(gram: scipy.sparse.csr_matrix, j: int, cols: np.ndarray) -> np.ndarray:
    """G[j, cols] of a CSR matrix with sorted indices."""
    part = slice(gram.indptr[j], gram.indptr[j + 1])
    idx, data = gram.indices[part], gram.data[part]
    pos = np.minimum(np.searchsorted(idx, cols), max(len(idx) - 1, 0))
    hit = (idx[pos] == cols) if len(idx) else np.zeros(len(cols), bool)
    return np.where(hit, data[pos] if len(idx) else 0.0, 0.0).astype(np.float64)


def _content_neighbours(features: np.ndarray, k: int, warm: np.ndarray) -> list[np.ndarray]:
    """Each item's k nearest warm items by feature cosine (blocks of items at a time)."""
    norms = np.linalg.norm(features, axis=1)
    unit = np.divide(features, norms[:, None], out=np.zeros_like(features), where=norms[:, None] > 0)
    sources = np.flatnonzero(warm)
    out: list[np.ndarray] = []
    for start in range(0, len(unit), _SIDE_BLOCK):
        sims = unit[start : start + _SIDE_BLOCK] @ unit[sources].T
        take = min(k + 1, sims.shape[1])  # + 1: the item itself, dropped later
        top = np.argpartition(-sims, take - 1, axis=1)[:, :take] if take else np.zeros((len(sims), 0), int)
        out.extend(sources[row] for row in top)
    return out


def one_hot(values: Sequence[Sequence[str]]) -> np.ndarray:
    """Categorical side information as features: one column per distinct value, 1 where an item has it.

    Args:
        values: per item, its categories (e.g. genres; empty for an item without any).

    Returns:
        float32 (len(values), number of distinct values), columns in sorted value order.
    """
    columns = {c: j for j, c in enumerate(sorted({c for cats in values for c in cats}))}
    out = np.zeros((len(values), len(columns)), dtype=np.float32)
    for r, cats in enumerate(values):
        if cats:
            out[r, [columns[c] for c in cats]] = 1.0
    return out


__all__ = ["DENSE_GATHER_MAX", "ease_weights", "one_hot", "side_block"]
