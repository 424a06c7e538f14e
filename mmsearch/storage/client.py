"""qdrant-client backend: a Qdrant server or cluster (`server`), or qdrant-client's local mode (`memory`).

Server: the collection is created with the settings' shard_number, replication_factor, on-disk
vectors and payload, HNSW and quantization options; the schema record lives in the collection's
metadata under `mmsearch`; the server builds HNSW graphs itself in the background.

Local mode (`QdrantClient(":memory:")`, or `path=` to persist): pure Python and exact search. It
ignores payload indexes, HNSW and quantization and slows down past ~20,000 points: for tests and
toy setups, not production.

Hybrid queries (`mmsearch.storage.hybrid`) become `query_batch_points` requests with `prefetch`,
`FormulaQuery` (variables `$score[i]`, explicit `defaults`), `RrfQuery` or `FusionQuery(DBSF)`;
local mode evaluates them in Python with the server's semantics.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from mmsearch.errors import (
    BackendError,
    DependencyError,
    SchemaMismatchError,
    StorageError,
    StoreLockedError,
)
from mmsearch.storage.base import NearestQuery, Point, RawHit, RawRecord, WithVectors
from mmsearch.storage.filters import Filter, HasItemId, Match, MatchAny, Range
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
from mmsearch.storage.schema import FieldType, StoreSchema, VectorSpec
from mmsearch.storage.settings import StoreSettings

METADATA_KEY = "mmsearch"
_GREEN_TIMEOUT_S = 600


def import_client() -> Any:
    """The `qdrant_client` package.

    Raises:
        DependencyError: it is not installed; the message says how to install it.
    """
    try:
        import qdrant_client
    except ImportError as e:
        raise DependencyError("this backend needs qdrant-client: pip install 'qdrant-client>=1.20'") from e
    return qdrant_client


@contextlib.contextmanager
def _engine(where: str, op: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except Exception as e:
        raise BackendError(f"Qdrant ({where}) {op} failed: {e}") from e


class ClientBackend:
    """One collection reached through `qdrant_client.QdrantClient`."""

    explicit_optimize = False

    def __init__(self, settings: StoreSettings) -> None:
        qc = import_client()
        from qdrant_client import models

        self._m = models
        self._settings = settings
        self.kind = settings.backend
        self._name = settings.collection
        self._local = settings.backend == "memory"
        if settings.backend == "server":
            self._where = str(settings.url)
            api_key = settings.api_key.get_secret_value() if settings.api_key else None
            with _engine(self._where, "connect"):
                self._client = qc.QdrantClient(
                    url=settings.url, api_key=api_key, timeout=settings.timeout_s, prefer_grpc=settings.prefer_grpc
                )
        else:
            path = settings.data_path
            self._where = f"local mode, {path}" if path else "local mode, in memory"
            try:
                self._client = qc.QdrantClient(path=str(path)) if path else qc.QdrantClient(":memory:")
            except RuntimeError as e:
                if "already accessed" in str(e):
                    raise StoreLockedError(
                        f"the store at {path} is already open by another qdrant-client; close that one "
                        f"first, or use a Qdrant server for concurrent access"
                    ) from e
                raise BackendError(f"qdrant-client could not open {path}: {e}") from e
        self._open = True

    def _e(self, op: str) -> contextlib.AbstractContextManager[None]:
        if not self._open:
            raise StorageError(f"the store ({self._where}) is closed")
        return _engine(self._where, op)

    # -- schema ------------------------------------------------------------------------------
    def read_schema(self) -> StoreSchema | None:
        with self._e("reading the collection"):
            if not self._client.collection_exists(self._name):
                return None
            metadata = self._client.get_collection(self._name).config.metadata or {}
        record = metadata.get(METADATA_KEY)
        if record is None:
            raise SchemaMismatchError(
                f"collection {self._name!r} ({self._where}) exists but has no mmsearch schema record in its "
                f"metadata; it was not made by mmsearch: pick another collection name"
            )
        return StoreSchema.from_record(record)

    def _vector_params(self, spec: VectorSpec) -> Any:
        m, s = self._m, self._settings
        return m.VectorParams(
            size=spec.dim,
            distance=_DISTANCES[spec.distance](m),
            multivector_config=(
                m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM) if spec.multivector else None
            ),
            hnsw_config=None if spec.indexed else m.HnswConfigDiff(m=0),
            quantization_config=self._quantization() if spec.kind == "pooled" else None,
            on_disk=True if s.on_disk else None,
        )

    def _quantization(self) -> Any:
        m, q = self._m, self._settings.quantization
        if q == "scalar":
            return m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99, always_ram=True)
            )
        if q == "binary":
            return m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True))
        return None

    def create(self, schema: StoreSchema) -> None:
        m, s = self._m, self._settings
        hnsw = s.hnsw
        with self._e("create_collection"):
            self._client.create_collection(
                self._name,
                vectors_config={n: self._vector_params(v) for n, v in schema.vectors.items()},
                shard_number=s.shard_number,
                replication_factor=s.replication_factor,
                write_consistency_factor=s.write_consistency_factor,
                on_disk_payload=s.on_disk_payload,
                hnsw_config=m.HnswConfigDiff(
                    m=hnsw.m,
                    ef_construct=hnsw.ef_construct,
                    full_scan_threshold=hnsw.full_scan_threshold_kb,
                    max_indexing_threads=hnsw.max_indexing_threads,
                ),
                metadata={METADATA_KEY: schema.to_record()},
            )
        self._create_indexes(schema.payload_indexes)

    def extend(
        self, schema: StoreSchema, new_vectors: Sequence[VectorSpec], new_indexes: Mapping[str, FieldType]
    ) -> None:
        m = self._m
        with self._e("adding vectors"):
            for spec in new_vectors:
                params = self._vector_params(spec)
                self._client.create_vector_name(
                    self._name,
                    spec.name,
                    m.DenseVectorNameConfig(
                        dense=m.DenseVectorConfig(
                            size=params.size,
                            distance=params.distance,
                            multivector_config=params.multivector_config,
                        )
                    ),
                )
                # create_vector_name takes no index settings; apply them as a diff (local mode has none).
                if not self._local and (params.hnsw_config or params.quantization_config or params.on_disk):
                    self._client.update_collection(
                        self._name,
                        vectors_config={
                            spec.name: m.VectorParamsDiff(
                                hnsw_config=params.hnsw_config,
                                quantization_config=params.quantization_config,
                                on_disk=params.on_disk,
                            )
                        },
                    )
        self._create_indexes(new_indexes)
        with self._e("recording the schema"):
            self._client.update_collection(self._name, metadata={METADATA_KEY: schema.to_record()})

    def _create_indexes(self, indexes: Mapping[str, FieldType]) -> None:
        if self._local:
            return  # local mode has no payload indexes (it warns and ignores them); filters still work
        m = self._m
        with self._e("create_payload_index"):
            for key, kind in indexes.items():
                self._client.create_payload_index(
                    self._name, key, getattr(m.PayloadSchemaType, kind.upper()), wait=True
                )

    # -- writes ------------------------------------------------------------------------------
    @staticmethod
    def _vec(v: np.ndarray) -> list[Any]:
        return v.tolist()

    def upsert(self, points: Sequence[Point]) -> None:
        m = self._m
        batch = [
            m.PointStruct(id=p.id, vector={n: self._vec(v) for n, v in p.vectors.items()}, payload=dict(p.payload))
            for p in points
        ]
        with self._e("upsert"), warnings.catch_warnings():
            # local mode warns past 20,000 points; the docs already say it is for tests only
            warnings.simplefilter("ignore", UserWarning)
            self._client.upsert(self._name, points=batch, wait=True)

    def update_vectors(self, points: Sequence[Point]) -> None:
        m = self._m
        batch = [m.PointVectors(id=p.id, vector={n: self._vec(v) for n, v in p.vectors.items()}) for p in points]
        with self._e("update_vectors"):
            self._client.update_vectors(self._name, points=batch, wait=True)

    def delete_vectors(self, point_ids: Sequence[str], names: Sequence[str]) -> None:
        with self._e("delete_vectors"):
            self._client.delete_vectors(
                self._name, vectors=list(names), points=self._m.PointIdsList(points=list(point_ids)), wait=True
            )

    def delete_ids(self, point_ids: Sequence[str]) -> None:
        with self._e("delete"):
            self._client.delete(self._name, points_selector=self._m.PointIdsList(points=list(point_ids)), wait=True)

    def delete_filter(self, flt: Filter) -> None:
        with self._e("delete by filter"):
            self._client.delete(self._name, points_selector=self._m.FilterSelector(filter=self._filter(flt)), wait=True)

    def optimize(self) -> bool:
        if self._local:
            return False
        green = self._m.CollectionStatus.GREEN
        deadline = time.monotonic() + _GREEN_TIMEOUT_S
        waited = False
        with self._e("waiting for indexing"):
            while self._client.get_collection(self._name).status != green:
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"collection {self._name!r} ({self._where}) not green after {_GREEN_TIMEOUT_S} s"
                    )
                waited = True
                time.sleep(0.5)
        return waited

    def close(self) -> None:
        if self._open:
            self._open = False
            with _engine(self._where, "close"):
                self._client.close()

    # -- reads -------------------------------------------------------------------------------
    @staticmethod
    def _payload(with_payload: bool) -> bool | list[str]:
        return True if with_payload else [ITEM_ID_KEY]

    @staticmethod
    def _with_vectors(with_vectors: WithVectors) -> bool | list[str]:
        return with_vectors if isinstance(with_vectors, bool) else list(with_vectors)

    def count(self, flt: Filter | None) -> int:
        with self._e("count"):
            return int(self._client.count(self._name, count_filter=self._filter(flt), exact=True).count)

    def retrieve(self, point_ids: Sequence[str], with_vectors: WithVectors, with_payload: bool) -> list[RawRecord]:
        with self._e("retrieve"):
            recs = self._client.retrieve(
                self._name,
                ids=list(point_ids),
                with_payload=self._payload(with_payload),
                with_vectors=self._with_vectors(with_vectors),
            )
        return [_record(r) for r in recs]

    def scroll(
        self, flt: Filter | None, limit: int, offset: str | None, with_vectors: WithVectors, with_payload: bool
    ) -> tuple[list[RawRecord], str | None]:
        with self._e("scroll"):
            recs, nxt = self._client.scroll(
                self._name,
                scroll_filter=self._filter(flt),
                limit=limit,
                offset=offset,
                with_payload=self._payload(with_payload),
                with_vectors=self._with_vectors(with_vectors),
            )
        return [_record(r) for r in recs], (None if nxt is None else str(nxt))

    def query(self, queries: Sequence[NearestQuery | HybridQuery]) -> list[list[RawHit]]:
        requests = [self._request(q) for q in queries]
        with self._e("query"):
            responses = self._client.query_batch_points(self._name, requests=requests)
        return [
            [RawHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in r.points]
            for r in responses
        ]

    def score_points(
        self, queries: Sequence[NearestQuery], point_ids: Sequence[str], limit: int | None = None
    ) -> list[dict[str, float]]:
        m = self._m
        only = m.Filter(must=[m.HasIdCondition(has_id=list(point_ids))])
        exact = None if self._local else m.SearchParams(exact=True)
        requests = [
            m.QueryRequest(
                query=m.NearestQuery(nearest=self._vec(q.query)),
                using=q.vector,
                filter=only,
                params=exact,
                limit=limit or len(point_ids),
                with_payload=False,
            )
            for q in queries
        ]
        with self._e("score"):
            responses = self._client.query_batch_points(self._name, requests=requests)
        return [{str(p.id): float(p.score) for p in r.points} for r in responses]

    def _request(self, q: NearestQuery | HybridQuery) -> Any:
        m = self._m
        if isinstance(q, HybridQuery):
            query, using = self._fusion(q.fusion)
            return m.QueryRequest(
                prefetch=[self._prefetch(p) for p in q.prefetch],
                query=query,
                using=using,
                filter=self._filter(q.filter),
                limit=q.limit,
                score_threshold=q.score_threshold,
                with_payload=self._payload(q.with_payload),
            )
        return m.QueryRequest(
            query=m.NearestQuery(nearest=self._vec(q.query)),
            using=q.vector,
            filter=self._filter(q.filter),
            params=self._search_params(q),
            limit=q.limit,
            score_threshold=q.score_threshold,
            with_payload=self._payload(q.with_payload),
        )

    def _prefetch(self, p: Prefetch) -> Any:
        m = self._m
        return m.Prefetch(
            prefetch=[self._prefetch(n) for n in p.prefetch] or None,
            query=m.NearestQuery(nearest=self._vec(p.query)),
            using=p.vector,
            filter=self._filter(p.filter),
            params=self._search_params(p),
            limit=p.limit,
        )

    def _fusion(self, f: Fusion) -> tuple[Any, str | None]:
        """The query object and the `using` vector name for a fusion."""
        m = self._m
        if isinstance(f, Formula):
            defaults = {f"$score[{i}]": v for i, v in f.defaults.items()}
            return m.FormulaQuery(formula=self._expression(f.expression), defaults=defaults), None
        if isinstance(f, Rrf):
            return m.RrfQuery(rrf=m.Rrf(k=f.k, weights=list(f.weights) if f.weights is not None else None)), None
        if isinstance(f, Dbsf):
            return m.FusionQuery(fusion=m.Fusion.DBSF), None
        if isinstance(f, Rescore):
            return m.NearestQuery(nearest=self._vec(f.query)), f.vector
        raise TypeError(f"unknown fusion {f!r}")  # prepare_hybrid rules this out

    def _expression(self, e: Expression) -> Any:
        m = self._m
        if isinstance(e, Const):
            return float(e.value)
        if isinstance(e, Score):
            return f"$score[{e.index}]"
        if isinstance(e, HasVector):
            return m.HasVectorCondition(has_vector=e.vector)
        if isinstance(e, Sum):
            return m.SumExpression(sum=[self._expression(t) for t in e.terms])
        if isinstance(e, Mult):
            return m.MultExpression(mult=[self._expression(t) for t in e.terms])
        if isinstance(e, Div):
            return m.DivExpression(
                div=m.DivParams(
                    left=self._expression(e.left), right=self._expression(e.right), by_zero_default=e.by_zero
                )
            )
        raise TypeError(f"unknown expression {e!r}")  # prepare_hybrid rules this out

    def _search_params(self, q: NearestQuery | Prefetch) -> Any:
        m, s = self._m, self._settings
        if self._local:
            return None  # local mode is always exact and warns about any search params
        quant = None
        if s.quantization != "none" and not q.exact:
            quant = m.QuantizationSearchParams(rescore=True, oversampling=s.oversampling)
        return m.SearchParams(hnsw_ef=q.hnsw_ef or s.hnsw.ef, exact=q.exact, quantization=quant)

    # -- filters -----------------------------------------------------------------------------
    def _filter(self, flt: Filter | None) -> Any:
        if flt is None:
            return None
        m = self._m

        def cond(c: Any) -> Any:
            if isinstance(c, Filter):
                return self._filter(c)
            if isinstance(c, Match):
                return m.FieldCondition(key=c.key, match=m.MatchValue(value=c.value))
            if isinstance(c, MatchAny):
                return m.FieldCondition(key=c.key, match=m.MatchAny(any=list(c.values)))
            if isinstance(c, Range):
                return m.FieldCondition(key=c.key, range=m.Range(gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt))
            if isinstance(c, HasItemId):
                return m.HasIdCondition(has_id=[point_id(i) for i in c.item_ids])
            raise TypeError(f"unknown filter condition {c!r}")  # Filter.__post_init__ rules this out

        return m.Filter(
            must=[cond(c) for c in flt.must] or None,
            should=[cond(c) for c in flt.should] or None,
            must_not=[cond(c) for c in flt.must_not] or None,
        )


def _record(r: Any) -> RawRecord:
    vectors = r.vector if isinstance(r.vector, dict) else {}
    return RawRecord(
        id=str(r.id),
        payload=dict(r.payload or {}),
        vectors={n: np.asarray(v, dtype=np.float32) for n, v in vectors.items()},
    )


_DISTANCES = {
    "cosine": lambda m: m.Distance.COSINE,
    "dot": lambda m: m.Distance.DOT,
    "euclid": lambda m: m.Distance.EUCLID,
}
