"""mmsearch's own query, filter and formula types, walked once into any Qdrant engine's request objects.

Qdrant Edge and qdrant-client take the same requests in different spellings (`Expression.Constant(x)`
or a bare float, `Fusion.Rrf` or `RrfQuery`, `using=` inside the query or beside it). `Translator`
decides what to build: which conditions a filter holds, which prefetches nest, when searches
rescore with quantization, which payload comes back. A `Dialect` (one per backend) only spells
each piece in its engine's constructors, so the backends keep their engine's quirks and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mmsearch.storage.base import NearestQuery, RawHit, RawRecord, SparseVector, VectorInput, WithVectors
from mmsearch.storage.filters import (
    Condition,
    Filter,
    HasItemId,
    HoldsVector,
    IsEmpty,
    Match,
    MatchAny,
    MatchValue,
    Range,
)
from mmsearch.storage.hybrid import (
    Const,
    Dbsf,
    Div,
    Expression,
    Formula,
    Fusion,
    HasVector,
    HybridQuery,
    Mult,
    Prefetch,
    Rescore,
    Rrf,
    Score,
    Sum,
)
from mmsearch.storage.ids import ITEM_ID_KEY, point_id
from mmsearch.storage.schema import VectorSpec
from mmsearch.storage.settings import StoreSettings

SCALAR_QUANTILE = 0.99


@dataclass(frozen=True)
class Search:
    """One search (a request, or a prefetch stage inside one), its parts already in the engine's terms.

    Attributes:
        query: from `Dialect.nearest` or a fusion constructor.
        prefetches: nested stages (from `Dialect.prefetch`), or None.
        filter, params: from `Dialect.filter` and `Dialect.search_params`, or None.
        limit, score_threshold: as asked.
        with_payload: True, False, or a selector from `Dialect.payload_only` (requests only).
    """

    query: Any
    limit: int
    prefetches: list[Any] | None = None
    filter: Any = None
    params: Any = None
    score_threshold: float | None = None
    with_payload: Any = False


class Dialect(Protocol):
    """One engine's constructors for the parts of a request. Arguments arrive already decided.

    Values returned are the engine's own objects, opaque to the translator: a `nearest(...)` or a
    fusion goes back into `prefetch` / `request` as their `query`.
    """

    # -- filters
    def match(self, key: str, value: str | int | bool) -> Any:
        """An exact match; a bool must stay a bool (not become the integer 0 or 1)."""
        ...

    def match_any(self, key: str, values: list[str] | list[int]) -> Any: ...
    def is_empty(self, key: str) -> Any: ...
    def range(self, key: str, gt: float | None, gte: float | None, lt: float | None, lte: float | None) -> Any: ...
    def has_id(self, point_ids: list[str]) -> Any: ...
    def has_vector_condition(self, vector: str) -> Any:
        """The filter condition: the point holds the named vector."""
        ...

    def filter(self, must: list[Any] | None, should: list[Any] | None, must_not: list[Any] | None) -> Any: ...

    # -- formula expressions
    def constant(self, value: float) -> Any: ...
    def variable(self, name: str) -> Any: ...
    def has_vector(self, vector: str) -> Any: ...
    def sum(self, terms: list[Any]) -> Any: ...
    def mult(self, terms: list[Any]) -> Any: ...
    def div(self, left: Any, right: Any, by_zero: float) -> Any: ...

    # -- queries and fusions
    def nearest(self, vector: str, query: np.ndarray | SparseVector) -> Any: ...
    def formula(self, expression: Any, defaults: dict[str, float]) -> Any: ...
    def rrf(self, k: int, weights: list[float] | None) -> Any: ...
    def dbsf(self) -> Any: ...

    # -- request parts
    def quantized(self, rescore: bool, oversampling: float | None) -> Any:
        """Search the quantized copy: rescore the (oversampled) hits with the originals, or keep its scores."""
        ...

    def search_params(self, hnsw_ef: int | None, exact: bool, quantization: Any) -> Any:
        """Search parameters; `quantization` from `quantized`, or None for the engine's default."""
        ...

    def payload_only(self, keys: list[str]) -> Any:
        """The payload selector returning only `keys`."""
        ...

    def prefetch(self, search: Search) -> Any:
        """A prefetch stage (its `score_threshold` and `with_payload` are unused)."""
        ...

    def request(self, search: Search) -> Any: ...

    # -- collection config
    def scalar_quantization(self, quantile: float) -> Any: ...
    def binary_quantization(self) -> Any: ...
    def vector_params(self, spec: VectorSpec, quantization: Any) -> Any:
        """One named vector's config: its distance, MaxSim when a multivector, m=0 when not indexed."""
        ...

    def sparse_params(self, spec: VectorSpec) -> Any:
        """One sparse vector's config."""
        ...


def _query_value(query: VectorInput) -> np.ndarray | SparseVector:
    """A checked query vector as the dialects take it: a float32 array, or the `SparseVector` itself."""
    return query if isinstance(query, SparseVector) else np.asarray(query)


def _score_variable(index: int) -> str:
    # Both engines name a prefetch's score in formulas and in their defaults this way.
    return f"$score[{index}]"


@dataclass(frozen=True)
class Translator:
    """Builds one engine's request objects from mmsearch's engine-neutral types.

    Inputs are already checked (`Store` validates them, `prepare_hybrid` rules out unknown types),
    so an unknown type here is a bug and raises `TypeError`.
    """

    dialect: Dialect
    settings: StoreSettings

    # -- filters ---------------------------------------------------------------------------
    def filter(self, flt: Filter | None) -> Any:
        """The engine's filter, or None for no filter."""
        if flt is None:
            return None
        return self.dialect.filter(
            must=[self._condition(c) for c in flt.must] or None,
            should=[self._condition(c) for c in flt.should] or None,
            must_not=[self._condition(c) for c in flt.must_not] or None,
        )

    def _condition(self, c: Condition) -> Any:
        d = self.dialect
        if isinstance(c, Filter):
            return self.filter(c)
        if isinstance(c, Match):
            return self._match(c.key, c.value)
        if isinstance(c, MatchAny):
            return self._match_any(c.key, c.values)
        if isinstance(c, Range):
            return d.range(c.key, gt=c.gt, gte=c.gte, lt=c.lt, lte=c.lte)
        if isinstance(c, HasItemId):
            return d.has_id([point_id(i) for i in c.item_ids])
        if isinstance(c, IsEmpty):
            return d.is_empty(c.key)
        if isinstance(c, HoldsVector):
            return d.has_vector_condition(c.vector)
        raise TypeError(f"unknown filter condition {c!r}")  # Filter.__post_init__ rules this out

    def _match(self, key: str, value: MatchValue) -> Any:
        if isinstance(value, float):
            # Qdrant matches strings, integers and booleans only: a float equals itself as a closed range.
            return self.dialect.range(key, gt=None, gte=value, lt=None, lte=value)
        return self.dialect.match(key, value)

    def _match_any(self, key: str, values: Sequence[MatchValue]) -> Any:
        if all(isinstance(v, str) for v in values) or all(type(v) is int for v in values):
            return self.dialect.match_any(key, list(values))  # type: ignore[arg-type]
        # Booleans and floats have no any-of match in Qdrant: one exact match each, any of which holds.
        return self.dialect.filter(must=None, should=[self._match(key, v) for v in values], must_not=None)

    def only_ids(self, point_ids: Sequence[Any]) -> Any:
        """A filter keeping just these points (point id strings or the engine's own ids)."""
        return self.dialect.filter(must=[self.dialect.has_id(list(point_ids))], should=None, must_not=None)

    def _within(self, own: Any, within: Any) -> Any:
        """A query's own filter and a shared `only_ids` filter, both applying."""
        if within is None or own is None:
            return own if within is None else within
        return self.dialect.filter(must=[within, own], should=None, must_not=None)

    # -- formulas and fusions --------------------------------------------------------------
    def expression(self, e: Expression) -> Any:
        """A formula expression in the engine's terms."""
        d = self.dialect
        if isinstance(e, Const):
            return d.constant(float(e.value))
        if isinstance(e, Score):
            return d.variable(_score_variable(e.index))
        if isinstance(e, HasVector):
            return d.has_vector(e.vector)
        if isinstance(e, Sum):
            return d.sum([self.expression(t) for t in e.terms])
        if isinstance(e, Mult):
            return d.mult([self.expression(t) for t in e.terms])
        if isinstance(e, Div):
            return d.div(self.expression(e.left), self.expression(e.right), by_zero=e.by_zero)
        raise TypeError(f"unknown expression {e!r}")  # prepare_hybrid rules this out

    def fusion(self, f: Fusion) -> Any:
        """The query that scores a hybrid query's candidates."""
        d = self.dialect
        if isinstance(f, Formula):
            defaults = {_score_variable(i): v for i, v in f.defaults.items()}
            return d.formula(self.expression(f.expression), defaults)
        if isinstance(f, Rrf):
            return d.rrf(f.k, list(f.weights) if f.weights is not None else None)
        if isinstance(f, Dbsf):
            return d.dbsf()
        if isinstance(f, Rescore):
            return d.nearest(f.vector, _query_value(f.query))
        raise TypeError(f"unknown fusion {f!r}")  # prepare_hybrid rules this out

    # -- requests --------------------------------------------------------------------------
    def search_params(self, q: NearestQuery | Prefetch) -> Any:
        """HNSW ef (the settings' unless the query names one), exactness, and quantized search."""
        s = self.settings
        # Quantized searches rescore with the original vectors; an exact search reads only those,
        # and sparse vectors are never quantized.
        quantization = None
        if s.quantization != "none" and not q.exact and not isinstance(q.query, SparseVector):
            rescore = not isinstance(q, NearestQuery) or q.rescore
            quantization = self.dialect.quantized(rescore, s.oversampling if rescore else None)
        return self.dialect.search_params(q.hnsw_ef or s.hnsw.ef, q.exact, quantization)

    def payload(self, with_payload: bool) -> Any:
        """The whole payload, or only the item id (which every record and hit carries)."""
        return True if with_payload else self.dialect.payload_only([ITEM_ID_KEY])

    def prefetch(self, p: Prefetch) -> Any:
        """One prefetch stage, its nested stages included."""
        scored = self.fusion(p.formula) if p.formula is not None else None
        return self.dialect.prefetch(
            Search(
                query=scored if scored is not None else self.dialect.nearest(p.vector, _query_value(p.query)),
                limit=p.limit,
                prefetches=[self.prefetch(n) for n in p.prefetch] or None,
                filter=self.filter(p.filter),
                params=None if scored is not None else self.search_params(p),
            )
        )

    def request(self, q: NearestQuery | HybridQuery, within: Any = None, *, ids_only: bool = False) -> Any:
        """The request for one nearest-neighbour or hybrid query; `within` (from `only_ids`) applies too.

        The engine hands a hybrid query's filter down to its prefetches, so `within` is built once
        however many legs it has. `ids_only` reads no payload, not even the item id: the hits'
        point ids come from the index alone.
        """
        with_payload = False if ids_only else self.payload(q.with_payload)
        if isinstance(q, HybridQuery):
            search = Search(
                query=self.fusion(q.fusion),
                limit=q.limit,
                prefetches=[self.prefetch(p) for p in q.prefetch],
                filter=self._within(self.filter(q.filter), within),
                score_threshold=q.score_threshold,
                with_payload=with_payload,
            )
        else:
            search = Search(
                query=self.dialect.nearest(q.vector, _query_value(q.query)),
                limit=q.limit,
                filter=self._within(self.filter(q.filter), within),
                params=self.search_params(q),
                score_threshold=q.score_threshold,
                with_payload=with_payload,
            )
        return self.dialect.request(search)

    def score_requests(self, queries: Sequence[NearestQuery], within: Any, limit: int) -> list[Any]:
        """Exact searches restricted by `within` (an `only_ids` filter of `limit` points): each one scored."""
        d = self.dialect
        exact = d.search_params(None, True, None)
        return [
            d.request(
                Search(
                    query=d.nearest(q.vector, _query_value(q.query)),
                    limit=limit,
                    filter=within,
                    params=exact,
                    with_payload=False,
                )
            )
            for q in queries
        ]

    def having_filter(self, within: Any, vector: str) -> Any:
        """A filter keeping the points `within` (from `only_ids`) keeps that hold the named vector."""
        d = self.dialect
        return d.filter(must=[within, d.has_vector_condition(vector)], should=None, must_not=None)

    # -- collection config -----------------------------------------------------------------
    def quantization(self) -> Any:
        """The quantization config of the pooled vectors, or None."""
        q = self.settings.quantization
        if q == "scalar":
            return self.dialect.scalar_quantization(SCALAR_QUANTILE)
        if q == "binary":
            return self.dialect.binary_quantization()
        return None

    def vector_params(self, spec: VectorSpec) -> Any:
        """One named vector's config; only the pooled vectors are quantized (the others rescore or are cf)."""
        if spec.sparse:
            return self.dialect.sparse_params(spec)
        return self.dialect.vector_params(spec, self.quantization() if spec.kind == "pooled" else None)


def vector_selection(with_vectors: WithVectors) -> bool | list[str]:
    """`with_vectors` as both engines take it: a bool, or a list of vector names."""
    return with_vectors if isinstance(with_vectors, bool) else list(with_vectors)


def raw_record(r: Any) -> RawRecord:
    """A record (point id, payload, named vectors) as either engine returns it.

    Both engines return a sparse vector as an object with `indices` and `values`.
    """
    vectors = r.vector if isinstance(r.vector, dict) else {}
    dense = {n: v for n, v in vectors.items() if not hasattr(v, "indices")}
    sparse = {n: v for n, v in vectors.items() if hasattr(v, "indices")}
    return RawRecord(
        id=str(r.id),
        payload=dict(r.payload or {}),
        vectors={name: np.asarray(v, dtype=np.float32) for name, v in dense.items()},
        sparse={name: _sparse(v.indices, v.values) for name, v in sparse.items()},
    )


def _sparse(indices: Any, values: Any) -> SparseVector:
    idx = np.asarray(indices, dtype=np.uint32)
    order = np.argsort(idx, kind="stable")
    return SparseVector(idx[order], np.asarray(values, dtype=np.float32)[order])


def raw_hit(h: Any) -> RawHit:
    """A scored point as either engine returns it."""
    return RawHit(score=float(h.score), payload=dict(h.payload or {}))


__all__ = ["SCALAR_QUANTILE", "Dialect", "Search", "Translator", "raw_hit", "raw_record", "vector_selection"]
