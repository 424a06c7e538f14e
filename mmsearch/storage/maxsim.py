"""MaxSim on a multivector that holds only the items with several rows: the pooled vector stands in for the rest.

A cosine encoder's `.multi` vector skips the items with one row (`schema.is_lazy_multi`): their
pooled vector is that row. MaxSim of query rows q_1..q_n against one row d is

    sum_i cos(q_i, d) = |s| cos(s, d),   s = sum_i q_i / |q_i|

the pooled vector's cosine for the query s, times |s| (1 for a one-row query). So the store reads
such a vector in two parts, everywhere it is read (in one, the pooled vector, while the
multivector is still pending: no item has had a second row):

- a nearest-neighbour search: the multivector's, and the pooled vector's over the points without
  rows (`HoldsVector`), summed by a formula (a point is in exactly one of them);
- candidates: the same two searches, their hits united;
- exact scores: both, the multivector's where the point holds rows;
- a hybrid query: each stage on the multivector becomes a formula stage over its two parts, so
  any fusion above it sees one ranking, and `HasVector(<multi>)` reads as `HasVector(<pooled>)`;
  a rescoring by the multivector becomes that formula over two rescoring stages (a rescoring
  stage's nested candidates are then searched per part: a few more candidates, scored exactly);
- a read of an item's vectors: the pooled vector as the one row an item without rows has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from mmsearch.storage.base import NearestQuery
from mmsearch.storage.filters import Filter, HoldsVector
from mmsearch.storage.hybrid import (
    Const,
    Div,
    Expression,
    Formula,
    HasVector,
    HybridQuery,
    Mult,
    Prefetch,
    Rescore,
    Score,
    Sum,
)
from mmsearch.storage.schema import MULTI_SUFFIX, StoreSchema, is_lazy_multi


@dataclass(frozen=True)
class Split:
    """How to read a MaxSim query on a partial multivector: its pooled vector, query and scale."""

    multi: str
    pooled: str
    stored: bool  # False while the multivector is pending: the pooled vector is the whole reading
    query: np.ndarray  # s / |s|, float32
    scale: float  # |s|

    def lacking(self, own: Filter | None) -> Filter | None:
        """`own`, and the point holds no rows (so its pooled vector stands in)."""
        if not self.stored:
            return own
        without = Filter(must_not=(HoldsVector(self.multi),))
        return without if own is None else Filter(must=(own, without))

    def times_scale(self, e: Expression) -> Expression:
        return e if self.scale == 1.0 else Mult((Const(self.scale), e))

    def summed(self) -> Formula:
        """The score over the parts (the rows first when stored, then the pooled vector's).

        The parts hold disjoint points, so each point reads the other part's score as 0.
        """
        pooled = self.times_scale(Score(1 if self.stored else 0))
        both = Sum((Score(0), pooled)) if self.stored else pooled
        return Formula(both, defaults=dict.fromkeys(range(2 if self.stored else 1), 0.0))


def partial(schema: StoreSchema, vector: str) -> bool:
    """Whether `vector` is a multivector that the items with one row do not hold (pending ones included)."""
    spec = schema.vectors.get(vector) or schema.pending.get(vector)
    return spec is not None and is_lazy_multi(spec)


def pooled_of(vector: str) -> str:
    return vector[: -len(MULTI_SUFFIX)]


def split(schema: StoreSchema, vector: str, rows: object) -> Split | None:
    """The pooled reading of a (checked) MaxSim query, or None when `vector` holds every item's rows."""
    if not partial(schema, vector):
        return None
    q = np.asarray(rows, dtype=np.float64).reshape(-1, schema.get(vector).dim)
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    s = (q / np.where(norms > 0, norms, 1.0)).sum(axis=0)  # a zero row matches nothing (cosine 0)
    scale = 1.0 if q.shape[0] == 1 else float(np.linalg.norm(s))  # one row: exactly the pooled cosine
    # Rows that cancel out: every one-row item scores 0, whatever unit vector is searched.
    unit = s / scale if scale > 0 else np.eye(1, q.shape[1])[0]
    return Split(vector, pooled_of(vector), vector in schema.vectors, unit.astype(np.float32), scale)


def candidate_queries(q: NearestQuery, schema: StoreSchema) -> list[NearestQuery]:
    """The searches whose hits, united, are the candidates `q` finds."""
    sp = split(schema, q.vector, q.query)
    if sp is None:
        return [q]
    pooled = replace(q, vector=sp.pooled, query=sp.query, filter=sp.lacking(q.filter))
    return [q, pooled] if sp.stored else [pooled]


def nearest(q: NearestQuery, schema: StoreSchema) -> NearestQuery | HybridQuery:
    """`q` as one engine query: itself, or for a partial multivector a formula over its parts."""
    sp = split(schema, q.vector, q.query)
    if sp is None:
        return q
    if not sp.stored and sp.scale == 1.0:
        return replace(q, vector=sp.pooled, query=sp.query)  # a pending multivector, one row: the pooled search
    pooled = Prefetch(sp.pooled, sp.query, limit=q.limit, filter=sp.lacking(None), exact=q.exact, hnsw_ef=q.hnsw_ef)
    rows = Prefetch(q.vector, q.query, limit=q.limit, exact=q.exact, hnsw_ef=q.hnsw_ef)
    return HybridQuery(
        (rows, pooled) if sp.stored else (pooled,),
        sp.summed(),
        limit=q.limit,
        filter=q.filter,
        with_payload=q.with_payload,
        score_threshold=q.score_threshold,
    )


def hybrid(q: HybridQuery, schema: StoreSchema) -> HybridQuery:
    """A (checked) hybrid query reading its partial multivectors in their parts.

    Each stage on such a vector becomes a formula stage over its two parts (the rows; the pooled
    vector where a point has none), so the fusion above it, RRF and DBSF included, sees one
    ranking; `HasVector(<multi>)` reads as `HasVector(<pooled>)`.
    """
    if isinstance(q.fusion, Rescore):
        sp = split(schema, q.fusion.vector, q.fusion.query)
        if sp is not None:
            return _rescored(q, q.fusion, sp)
    prefetch = tuple(_stage(p, schema) for p in q.prefetch)
    fusion = q.fusion
    if isinstance(fusion, Formula):
        fusion = replace(fusion, expression=_has_pooled(fusion.expression, schema))
    return replace(q, prefetch=prefetch, fusion=fusion)


def _stage(p: Prefetch, schema: StoreSchema) -> Prefetch:
    nested = tuple(_stage(n, schema) for n in p.prefetch)
    if nested != p.prefetch:
        p = replace(p, prefetch=nested)
    sp = split(schema, p.vector, p.query) if p.formula is None else None
    if sp is None:
        return p
    pooled = replace(p, vector=sp.pooled, query=sp.query, filter=sp.lacking(None))
    if not sp.stored and sp.scale == 1.0:
        return replace(pooled, filter=p.filter)  # a one-row query: the pooled vector's own search
    parts = (replace(p, filter=None), pooled) if sp.stored else (pooled,)
    return replace(p, prefetch=parts, formula=sp.summed())


def _has_pooled(e: Expression, schema: StoreSchema) -> Expression:
    """`HasVector(<multi>)` as `HasVector(<pooled>)`: every item with the modality has a MaxSim score."""
    if isinstance(e, HasVector) and partial(schema, e.vector):
        return HasVector(pooled_of(e.vector))
    if isinstance(e, Sum):
        return Sum(tuple(_has_pooled(t, schema) for t in e.terms))
    if isinstance(e, Mult):
        return Mult(tuple(_has_pooled(t, schema) for t in e.terms))
    if isinstance(e, Div):
        return replace(e, left=_has_pooled(e.left, schema), right=_has_pooled(e.right, schema))
    return e


def _rescored(q: HybridQuery, rescore: Rescore, sp: Split) -> HybridQuery:
    """A rescoring by a partial multivector: rescoring stages (rows; pooled where none), summed."""
    pooled = Prefetch(sp.pooled, sp.query, limit=q.limit, prefetch=q.prefetch, filter=sp.lacking(None), exact=True)
    rows = Prefetch(sp.multi, rescore.query, limit=q.limit, prefetch=q.prefetch, exact=True)
    return replace(q, prefetch=(rows, pooled) if sp.stored else (pooled,), fusion=sp.summed())


def fill_rows(schema: StoreSchema, vectors: dict[str, np.ndarray], wanted: Iterable[str]) -> None:
    """Give an item read back the one row it has of each wanted partial multivector: its pooled vector."""
    for name in wanted:
        if name not in vectors and partial(schema, name) and pooled_of(name) in vectors:
            vectors[name] = vectors[pooled_of(name)][None, :]


def engine_vectors(schema: StoreSchema, wanted: Sequence[str]) -> list[str]:
    """The stored vectors to read for `wanted`: a partial multivector needs its pooled vector (pending: only it)."""
    out: list[str] = []
    for name in wanted:
        if partial(schema, name):
            out.append(pooled_of(name))
        if name in schema.vectors:
            out.append(name)
    return list(dict.fromkeys(out))
