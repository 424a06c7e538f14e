"""Multi-stage queries, engine-neutral: prefetches fused by a formula, RRF or DBSF, or rescored.

A `HybridQuery` runs its prefetches (each a nearest-neighbour search on one named vector, itself
possibly rescoring nested prefetches), takes the union of their results as candidates, and scores
the candidates with its `fusion`:

- `Formula`: an expression over each prefetch's score (`Score(i)`), constants and `HasVector`
  conditions, e.g. a weighted sum of normalised scores. A candidate absent from prefetch i reads
  `Score(i)` as `defaults[i]`: pass the defaults explicitly (the engines otherwise read 0, which
  is not the candidate's true score), or make every prefetch score the whole candidate set
  (restrict each one to the candidates with `HasItemId` and a limit of their number).
- `Rrf`: (weighted) reciprocal rank fusion, Qdrant's definition: a candidate at 0-based position
  p of prefetch i gains `1 / ((p + 1) / w_i + k - 1)` (`1 / (k + p)` when w_i = 1), nothing from
  prefetches that lack it. `Rrf.weighted` takes relative weights and scales them to that convention.
- `Dbsf`: distribution-based score fusion: each prefetch's scores are mapped by
  `(s - (mean - 3 sd)) / (6 sd)` over that prefetch's own results (0.5 when it has one result or
  sd = 0), then summed; a prefetch that lacks a candidate adds nothing.
- `Rescore`: a nearest-neighbour score on another named vector for the candidates, e.g. MaxSim
  on a `<model>.<modality>.multi` vector after a kNN on the pooled vector.

`mmsearch.query.fusion` holds the numpy reference of each method; the contract tests check both
backends against it.

Example:
    q = HybridQuery(
        prefetch=(Prefetch("clip.image", v_img, limit=100), Prefetch("minilm.text", v_txt, limit=100)),
        fusion=Rrf(k=60, weights=(2.0, 1.0)),
        limit=10,
    )
    hits = store.hybrid_query(q)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from mmsearch.errors import ConfigError, InputError
from mmsearch.storage.base import NearestQuery, VectorInput
from mmsearch.storage.filters import Filter, check_filter
from mmsearch.storage.schema import StoreSchema
from mmsearch.storage.validate import prepare_query


@dataclass(frozen=True)
class Prefetch:
    """One candidate-generating stage: nearest neighbours by one named vector.

    Attributes:
        vector: the stored vector name searched.
        query: (dim,) for a dense vector, (n, dim) for a MaxSim multivector.
        limit: candidates kept.
        filter: payload filter for this stage (the query's own filter applies too).
        exact: exact search instead of HNSW.
        hnsw_ef: search-time ef; None uses the store settings.
        prefetch: nested stages; when given, this stage only rescores their candidates (e.g. a
            MaxSim multivector over the kNN results of the pooled vector).
        formula: score the nested stages' candidates by this formula over their scores instead
            of by `vector` (which is still checked); the store builds such stages to read a
            multivector in parts (`mmsearch.storage.maxsim`).
    """

    vector: str
    query: VectorInput
    limit: int = 100
    filter: Filter | None = None
    exact: bool = False
    hnsw_ef: int | None = None
    prefetch: tuple[Prefetch, ...] = ()
    formula: Formula | None = None


# ------------------------------------------------------------------ formula expressions


@dataclass(frozen=True)
class Const:
    """A constant."""

    value: float


@dataclass(frozen=True)
class Score:
    """The candidate's score in prefetch `index` (or the formula's default for it)."""

    index: int


@dataclass(frozen=True)
class HasVector:
    """1 when the candidate has the named vector, else 0."""

    vector: str


@dataclass(frozen=True)
class Sum:
    terms: tuple[Expression, ...]


@dataclass(frozen=True)
class Mult:
    terms: tuple[Expression, ...]


@dataclass(frozen=True)
class Div:
    """`left / right`, or `by_zero` when `right` is 0."""

    left: Expression
    right: Expression
    by_zero: float = 0.0


Expression = Const | Score | HasVector | Sum | Mult | Div


@dataclass(frozen=True)
class Formula:
    """Score candidates with an expression.

    Attributes:
        expression: the formula.
        defaults: prefetch index -> the score a candidate absent from that prefetch reads.
            Indexes not given read 0 on every engine; give them explicitly.
    """

    expression: Expression
    defaults: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rrf:
    """Reciprocal rank fusion; `weights` (one per prefetch, >= 0) make it weighted RRF."""

    k: int = 60
    weights: tuple[float, ...] | None = None

    @classmethod
    def weighted(cls, weights: Sequence[float] | np.ndarray, k: int = 60) -> Rrf:
        """Weighted RRF from relative weights (only their ratios count), in the engine's convention.

        Qdrant's weighted RRF term 1 / ((p + 1) / w + k - 1) is plain RRF at w = 1, so the weights
        are scaled to average 1: equal weights give plain RRF, whatever they sum to.

        Raises:
            ConfigError: a weight that is not a finite number >= 0, or weights summing to 0.
        """
        values = [float(w) for w in weights]
        if not all(math.isfinite(w) and w >= 0 for w in values) or not math.fsum(values) > 0:
            raise ConfigError(f"RRF weights {values!r} must be finite numbers >= 0, not all 0")
        total = math.fsum(values)
        return cls(k=k, weights=tuple(w * len(values) / total for w in values))


@dataclass(frozen=True)
class Dbsf:
    """Distribution-based score fusion (unweighted, per-prefetch 3-sigma normalisation)."""


@dataclass(frozen=True)
class Rescore:
    """Score the candidates by nearest-neighbour similarity on `vector` (e.g. a MaxSim multivector)."""

    vector: str
    query: VectorInput


Fusion = Formula | Rrf | Dbsf | Rescore


@dataclass(frozen=True)
class HybridQuery:
    """Prefetches, then one fusion or rescoring over their candidates.

    Attributes:
        prefetch: the candidate stages (at least one).
        fusion: how candidates are scored.
        limit: results wanted.
        filter: payload filter; applies to every prefetch.
        with_payload: return payloads.
        score_threshold: drop results scoring below it.
    """

    prefetch: tuple[Prefetch, ...]
    fusion: Fusion
    limit: int = 10
    filter: Filter | None = None
    with_payload: bool = False
    score_threshold: float | None = None


# ------------------------------------------------------------------ builders


def weighted_sum_formula(
    weights: Sequence[float] | np.ndarray,
    shifts: Sequence[float] | np.ndarray,
    scales: Sequence[float] | np.ndarray,
    *,
    renormalize_by: Sequence[str | None] | None = None,
    absent: Sequence[float | None] | None = None,
) -> Formula:
    """The formula `sum_i w_i * (Score(i) - shift_i) * scale_i`, optionally renormalised per candidate.

    With `renormalize_by` (a vector name per prefetch, or None for "always present"), each term is
    multiplied by `HasVector(name)` and the sum is divided by the sum of the weights of the
    vectors the candidate has: a candidate lacking a modality is scored on the signals it has
    instead of receiving a 0 for the one it lacks. A candidate that lacks every named vector
    scores 0. Absent scores default to `shift_i`, so such terms read exactly 0, unless `absent`
    names the raw score an absent candidate really has: a sparse vector's search leaves out the
    items sharing no index with the query, whose true score is 0.

    Args:
        weights: one weight per prefetch (>= 0).
        shifts, scales: the affine normalisation `(s - shift) * scale` of each prefetch's score.
        renormalize_by: vector name per prefetch whose presence gates its term, or None.
        absent: per prefetch, the raw score a candidate missing from it reads (None: `shift_i`).

    Raises:
        ConfigError: lengths differ, or a value is not finite.
    """
    n = len(weights)
    if (
        len(shifts) != n
        or len(scales) != n
        or (renormalize_by is not None and len(renormalize_by) != n)
        or (absent is not None and len(absent) != n)
    ):
        raise ConfigError(
            f"weighted_sum_formula needs one weight, shift, scale (and vector, absent score) per prefetch; got "
            f"{n} weights, {len(shifts)} shifts, {len(scales)} scales"
        )
    given = list(absent) if absent is not None else [None] * n
    defaults = [float(shifts[i]) if a is None else float(a) for i, a in enumerate(given)]
    for label, values in (("weight", weights), ("shift", shifts), ("scale", scales), ("absent score", defaults)):
        for v in values:
            if not math.isfinite(v):
                raise ConfigError(f"weighted_sum_formula: {label} {v!r} is not finite")
    terms: list[Expression] = []
    present: list[Expression] = []
    for i in range(n):
        gate = renormalize_by[i] if renormalize_by is not None else None
        normalised = Mult((Sum((Score(i), Const(-float(shifts[i])))), Const(float(scales[i]))))
        factors: tuple[Expression, ...] = (Const(float(weights[i])), normalised)
        if gate is not None:
            factors += (HasVector(gate),)
            present.append(Mult((Const(float(weights[i])), HasVector(gate))))
        else:
            present.append(Const(float(weights[i])))
        terms.append(Mult(factors))
    expression: Expression = Sum(tuple(terms))
    if renormalize_by is not None:
        expression = Div(expression, Sum(tuple(present)), by_zero=0.0)
    return Formula(expression, defaults=dict(enumerate(defaults)))


# ------------------------------------------------------------------ validation


def _check_limit(limit: object, what: str) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"{what} limit {limit!r} must be a positive integer")


def _prepare_prefetch(p: Prefetch, schema: StoreSchema) -> Prefetch:
    if not isinstance(p, Prefetch):
        raise InputError(f"prefetch stages are Prefetch objects, got {type(p).__name__}: {p!r:.200}")
    _check_limit(p.limit, f"prefetch on {p.vector!r}:")
    flt = check_filter(p.filter, f"prefetch on {p.vector!r}:")
    checked = prepare_query(NearestQuery(vector=p.vector, query=p.query, limit=p.limit), schema)
    nested = tuple(_prepare_prefetch(n, schema) for n in p.prefetch)
    formula = p.formula
    if formula is not None:
        if not nested:
            raise ConfigError(f"prefetch on {p.vector!r} has a formula but no nested stages for it to score")
        if not isinstance(formula, Formula):
            raise ConfigError(f"prefetch on {p.vector!r}: formula {formula!r:.200} is not a Formula")
        prepared = _prepare_fusion(formula, len(nested), schema)
        formula = prepared if isinstance(prepared, Formula) else formula
    return replace(p, query=checked.query, prefetch=nested, filter=flt, formula=formula)


def _check_expression(e: object, n_prefetch: int, schema: StoreSchema) -> None:
    if isinstance(e, Const):
        if isinstance(e.value, bool) or not isinstance(e.value, (int, float)) or not math.isfinite(e.value):
            raise ConfigError(f"formula constant {e.value!r} must be a finite number")
    elif isinstance(e, Score):
        if isinstance(e.index, bool) or not isinstance(e.index, int) or not 0 <= e.index < n_prefetch:
            raise ConfigError(f"formula reads Score({e.index!r}), but the query has {n_prefetch} prefetches")
    elif isinstance(e, HasVector):
        schema.get(e.vector)
    elif isinstance(e, (Sum, Mult)):
        if not e.terms:
            raise ConfigError(f"formula {type(e).__name__} needs at least one term")
        for t in e.terms:
            _check_expression(t, n_prefetch, schema)
    elif isinstance(e, Div):
        if not math.isfinite(e.by_zero):
            raise ConfigError(f"formula Div by_zero {e.by_zero!r} must be finite")
        _check_expression(e.left, n_prefetch, schema)
        _check_expression(e.right, n_prefetch, schema)
    else:
        raise ConfigError(f"unknown formula expression {e!r:.200}; use Const, Score, HasVector, Sum, Mult or Div")


def _prepare_fusion(f: object, n_prefetch: int, schema: StoreSchema) -> Fusion:
    if isinstance(f, Formula):
        _check_expression(f.expression, n_prefetch, schema)
        for i, v in dict(f.defaults).items():
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_prefetch:
                raise ConfigError(f"formula default for prefetch {i!r}: the query has {n_prefetch} prefetches")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"formula default {v!r} for prefetch {i} must be a finite number")
        return replace(f, defaults={int(i): float(v) for i, v in dict(f.defaults).items()})
    if isinstance(f, Rrf):
        if isinstance(f.k, bool) or not isinstance(f.k, int) or f.k < 1:
            raise ConfigError(f"RRF k={f.k!r} must be a positive integer")
        if f.weights is not None:
            weights = tuple(f.weights)
            if len(weights) != n_prefetch:
                raise ConfigError(f"RRF has {len(weights)} weights for {n_prefetch} prefetches; give one each")
            for w in weights:
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                    raise ConfigError(f"RRF weight {w!r} must be a finite number >= 0")
            return replace(f, weights=tuple(float(w) for w in weights))
        return f
    if isinstance(f, Dbsf):
        return f
    if isinstance(f, Rescore):
        checked = prepare_query(NearestQuery(vector=f.vector, query=f.query), schema)
        return replace(f, query=checked.query)
    raise ConfigError(f"unknown fusion {f!r:.200}; use Formula, Rrf, Dbsf or Rescore")


def prepare_hybrid(query: HybridQuery, schema: StoreSchema) -> HybridQuery:
    """A copy of `query` with every vector checked and converted to float32.

    Raises:
        UnknownVectorError: a prefetch, rescoring or HasVector names a vector not in the store.
        VectorDimensionError, NonFiniteVectorError, InvalidItemError: a bad query vector.
        InputError: no prefetch, or a limit below 1.
        InvalidFilterError: a filter that is not a `Filter`.
        ConfigError: a malformed formula, RRF weights or fusion.
    """
    if not isinstance(query, HybridQuery):
        raise InputError(f"expected a HybridQuery, got {type(query).__name__}")
    prefetch = tuple(query.prefetch)
    if not prefetch:
        raise InputError("a hybrid query needs at least one prefetch")
    _check_limit(query.limit, "query")
    flt = check_filter(query.filter, "query")
    checked = tuple(_prepare_prefetch(p, schema) for p in prefetch)
    return replace(query, prefetch=checked, filter=flt, fusion=_prepare_fusion(query.fusion, len(checked), schema))


__all__ = [
    "Const",
    "Dbsf",
    "Div",
    "Expression",
    "Formula",
    "Fusion",
    "HasVector",
    "HybridQuery",
    "Mult",
    "Prefetch",
    "Rescore",
    "Rrf",
    "Score",
    "Sum",
    "prepare_hybrid",
    "weighted_sum_formula",
]
