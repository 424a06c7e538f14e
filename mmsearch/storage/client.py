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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mmsearch.errors import BackendError, DependencyError, SchemaMismatchError, StorageError, StoreLockedError
from mmsearch.storage.base import (
    NearestQuery,
    Point,
    RawHit,
    RawRecord,
    SparseVector,
    WithVectors,
    check_folder,
    engine_errors,
)
from mmsearch.storage.filters import Filter
from mmsearch.storage.hybrid import HybridQuery
from mmsearch.storage.schema import FieldType, StoreSchema, VectorSpec, with_created
from mmsearch.storage.settings import BackendKind, StoreSettings
from mmsearch.storage.translate import Search, Translator, raw_hit, raw_record, vector_selection

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


def _vec(v: np.ndarray | SparseVector, models: Any) -> Any:
    """A vector as qdrant-client takes it: a list, or its own `SparseVector`."""
    if isinstance(v, SparseVector):
        return models.SparseVector(indices=np.asarray(v.indices).tolist(), values=np.asarray(v.values).tolist())
    return v.tolist()


class _Using(NamedTuple):
    """A nearest-neighbour query and the vector it searches: qdrant-client takes the name beside the query."""

    query: Any
    using: str | None


class ClientDialect:
    """qdrant-client's models for each part of a request (see `mmsearch.storage.translate`)."""

    def __init__(self, models: Any, settings: StoreSettings) -> None:
        self._m = models
        self._settings = settings
        self._local = settings.backend == "memory"

    def match(self, key: str, value: str | int | bool) -> Any:
        return self._m.FieldCondition(key=key, match=self._m.MatchValue(value=value))

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        return self._m.FieldCondition(key=key, match=self._m.MatchAny(any=values))

    def is_empty(self, key: str) -> Any:
        return self._m.IsEmptyCondition(is_empty=self._m.PayloadField(key=key))

    def range(self, key: str, gt: float | None, gte: float | None, lt: float | None, lte: float | None) -> Any:
        return self._m.FieldCondition(key=key, range=self._m.Range(gte=gte, gt=gt, lte=lte, lt=lt))

    def has_id(self, point_ids: list[str]) -> Any:
        return self._m.HasIdCondition(has_id=point_ids)

    def has_vector_condition(self, vector: str) -> Any:
        return self._m.HasVectorCondition(has_vector=vector)

    def filter(self, must: list[Any] | None, should: list[Any] | None, must_not: list[Any] | None) -> Any:
        return self._m.Filter(must=must, should=should, must_not=must_not)

    def constant(self, value: float) -> Any:
        return value

    def variable(self, name: str) -> Any:
        return name

    def has_vector(self, vector: str) -> Any:
        return self._m.HasVectorCondition(has_vector=vector)

    def sum(self, terms: list[Any]) -> Any:
        return self._m.SumExpression(sum=terms)

    def mult(self, terms: list[Any]) -> Any:
        return self._m.MultExpression(mult=terms)

    def div(self, left: Any, right: Any, by_zero: float) -> Any:
        return self._m.DivExpression(div=self._m.DivParams(left=left, right=right, by_zero_default=by_zero))

    def nearest(self, vector: str, query: np.ndarray | SparseVector) -> Any:
        return _Using(self._m.NearestQuery(nearest=_vec(query, self._m)), vector)

    def formula(self, expression: Any, defaults: dict[str, float]) -> Any:
        return _Using(self._m.FormulaQuery(formula=expression, defaults=defaults), None)

    def rrf(self, k: int, weights: list[float] | None) -> Any:
        return _Using(self._m.RrfQuery(rrf=self._m.Rrf(k=k, weights=weights)), None)

    def dbsf(self) -> Any:
        return _Using(self._m.FusionQuery(fusion=self._m.Fusion.DBSF), None)

    def quantized(self, rescore: bool, oversampling: float | None) -> Any:
        return self._m.QuantizationSearchParams(rescore=rescore, oversampling=oversampling)

    def search_params(self, hnsw_ef: int | None, exact: bool, quantization: Any) -> Any:
        if self._local:
            return None  # local mode is always exact and warns about any search params
        return self._m.SearchParams(hnsw_ef=hnsw_ef, exact=exact, quantization=quantization)

    def payload_only(self, keys: list[str]) -> Any:
        return keys

    def prefetch(self, search: Search) -> Any:
        s, q = search, search.query
        return self._m.Prefetch(
            prefetch=s.prefetches, query=q.query, using=q.using, filter=s.filter, params=s.params, limit=s.limit
        )

    def request(self, search: Search) -> Any:
        s, q = search, search.query
        return self._m.QueryRequest(
            prefetch=s.prefetches,
            query=q.query,
            using=q.using,
            filter=s.filter,
            params=s.params,
            limit=s.limit,
            score_threshold=s.score_threshold,
            with_payload=s.with_payload,
        )

    def scalar_quantization(self, quantile: float) -> Any:
        m = self._m
        return m.ScalarQuantization(
            scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=quantile, always_ram=True)
        )

    def binary_quantization(self) -> Any:
        return self._m.BinaryQuantization(binary=self._m.BinaryQuantizationConfig(always_ram=True))

    def vector_params(self, spec: VectorSpec, quantization: Any) -> Any:
        m = self._m
        return m.VectorParams(
            size=spec.dim,
            distance=getattr(m.Distance, spec.distance.upper()),
            multivector_config=(
                m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM) if spec.multivector else None
            ),
            hnsw_config=None if spec.indexed else m.HnswConfigDiff(m=0),
            quantization_config=quantization,
            on_disk=True if self._settings.on_disk else None,
        )

    def sparse_params(self, spec: VectorSpec) -> Any:
        on_disk = True if self._settings.on_disk else None
        return self._m.SparseVectorParams(index=self._m.SparseIndexParams(on_disk=on_disk) if on_disk else None)


class ClientBackend:
    """One collection reached through `qdrant_client.QdrantClient`."""

    explicit_optimize = False

    def __init__(self, settings: StoreSettings) -> None:
        qc = import_client()
        from qdrant_client import models

        self._m = models
        self._settings = settings
        self._t = Translator(ClientDialect(models, settings), settings)
        self.kind: BackendKind = settings.backend
        self._name = settings.collection
        self._local = settings.backend == "memory"
        if settings.backend == "server":
            self._where = str(settings.url)
            api_key = settings.api_key.get_secret_value() if settings.api_key else None
            with self._engine("connect"):
                self._client = qc.QdrantClient(
                    url=settings.url, api_key=api_key, timeout=settings.timeout_s, prefer_grpc=settings.prefer_grpc
                )
        else:
            path = settings.data_path
            self._where = f"local mode, {path}" if path else "local mode, in memory"
            if path is not None:
                check_folder(Path(path), "store")
            try:
                self._client = qc.QdrantClient(path=str(path)) if path else qc.QdrantClient(":memory:")
            except OSError as e:
                raise StorageError(f"cannot create the store folder {str(path)!r}: {e.strerror or e}") from e
            except RuntimeError as e:
                if "already accessed" in str(e):
                    raise StoreLockedError(
                        f"the store at {path} is already open by another qdrant-client; close that one "
                        f"first, or use a Qdrant server for concurrent access"
                    ) from e
                raise BackendError(f"qdrant-client could not open {path}: {e}") from e
        self._open = True

    def _engine(self, op: str) -> contextlib.AbstractContextManager[None]:
        return engine_errors(f"Qdrant ({self._where})", op)

    def _e(self, op: str) -> contextlib.AbstractContextManager[None]:
        if not self._open:
            raise StorageError(f"the store ({self._where}) is closed")
        return self._engine(op)

    def sidecar_folder(self, name: str) -> Path | None:
        # Local mode on disk keeps `path` to itself (its own collection/ folder and lock): files
        # kept with a collection go beside it. A server or an in-memory store has no folder.
        path = self._settings.data_path if self._local else None
        return None if path is None else Path(path) / f"{self._name}.{name}"

    # -- schema ------------------------------------------------------------------------------
    def read_schema(self) -> StoreSchema | None:
        with self._e("reading the collection"):
            if not self._client.collection_exists(self._name):
                return None
            config = self._client.get_collection(self._name).config
        record = (config.metadata or {}).get(METADATA_KEY)
        if record is None:
            raise SchemaMismatchError(
                f"collection {self._name!r} ({self._where}) exists but has no mmsearch schema record in its "
                f"metadata; it was not made by mmsearch: pick another collection name"
            )
        # A writer can die between creating a multivector and recording it: the collection is the truth.
        return with_created(StoreSchema.from_record(record), _vector_names(config))

    def _stored_vectors(self) -> set[str]:
        with self._e("reading the collection"):
            return _vector_names(self._client.get_collection(self._name).config)

    def create(self, schema: StoreSchema) -> None:
        m, s = self._m, self._settings
        hnsw = s.hnsw
        with self._e("create_collection"):
            self._client.create_collection(
                self._name,
                vectors_config={n: self._t.vector_params(v) for n, v in schema.vectors.items() if not v.sparse},
                sparse_vectors_config={n: self._t.vector_params(v) for n, v in schema.vectors.items() if v.sparse}
                or None,
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
        # Another writer may have added some since this one read the schema.
        stored = self._stored_vectors() if new_vectors else set()
        with self._e("adding vectors"):
            for spec in new_vectors:
                if spec.name in stored:
                    continue
                if spec.sparse:
                    config = m.SparseVectorNameConfig(sparse=m.SparseVectorConfig())
                    self._client.create_vector_name(self._name, spec.name, config)
                    continue
                params = self._t.vector_params(spec)
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
    def upsert(self, points: Sequence[Point]) -> None:
        m = self._m
        batch = [
            m.PointStruct(id=p.id, vector={n: _vec(v, m) for n, v in p.vectors.items()}, payload=dict(p.payload))
            for p in points
        ]
        with self._e("upsert"), warnings.catch_warnings():
            # local mode warns past 20,000 points; the docs already say it is for tests only
            warnings.simplefilter("ignore", UserWarning)
            self._client.upsert(self._name, points=batch, wait=True)

    def update_vectors(self, points: Sequence[Point]) -> None:
        m = self._m
        batch = [m.PointVectors(id=p.id, vector={n: _vec(v, m) for n, v in p.vectors.items()}) for p in points]
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
            self._client.delete(
                self._name, points_selector=self._m.FilterSelector(filter=self._t.filter(flt)), wait=True
            )

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
            with self._engine("close"):
                self._client.close()

    # -- reads -------------------------------------------------------------------------------
    def count(self, flt: Filter | None) -> int:
        with self._e("count"):
            return int(self._client.count(self._name, count_filter=self._t.filter(flt), exact=True).count)

    def retrieve(self, point_ids: Sequence[str], with_vectors: WithVectors, with_payload: bool) -> list[RawRecord]:
        with self._e("retrieve"):
            recs = self._client.retrieve(
                self._name,
                ids=list(point_ids),
                with_payload=self._t.payload(with_payload),
                with_vectors=vector_selection(with_vectors),
            )
        return [raw_record(r) for r in recs]

    def scroll(
        self, flt: Filter | None, limit: int, offset: str | None, with_vectors: WithVectors, with_payload: bool
    ) -> tuple[list[RawRecord], str | None]:
        with self._e("scroll"):
            recs, nxt = self._client.scroll(
                self._name,
                scroll_filter=self._t.filter(flt),
                limit=limit,
                offset=offset,
                with_payload=self._t.payload(with_payload),
                with_vectors=vector_selection(with_vectors),
            )
        return [raw_record(r) for r in recs], (None if nxt is None else str(nxt))

    def query(self, queries: Sequence[NearestQuery | HybridQuery], within: Any = None) -> list[list[RawHit]]:
        return [[raw_hit(p) for p in points] for points in self._query([self._t.request(q, within) for q in queries])]

    def _query(self, requests: list[Any]) -> list[list[Any]]:
        with self._e("query"):
            responses = self._client.query_batch_points(self._name, requests=requests)
        return [r.points for r in responses]

    def nearest_ids(self, queries: Sequence[NearestQuery]) -> list[list[Any]]:
        requests = [self._t.request(q, ids_only=True) for q in queries]
        return [[str(p.id) for p in points] for points in self._query(requests)]

    def native_id(self, point_id: str) -> Any:
        return point_id

    def restrict(self, point_ids: Sequence[Any]) -> Any:
        return self._t.only_ids(point_ids)

    def having(self, within: Any, vector: str, limit: int) -> set[Any]:
        with self._e("scroll"):
            recs, _ = self._client.scroll(
                self._name,
                scroll_filter=self._t.having_filter(within, vector),
                limit=limit,
                with_payload=False,
                with_vectors=False,
            )
        return {str(r.id) for r in recs}

    def score_points(self, queries: Sequence[NearestQuery], within: Any, limit: int) -> list[dict[Any, float]]:
        requests = self._t.score_requests(queries, within, limit)
        with self._e("score"):
            responses = self._client.query_batch_points(self._name, requests=requests)
        return [{str(p.id): float(p.score) for p in r.points} for r in responses]


def _vector_names(config: Any) -> set[str]:
    """The named dense and sparse vectors of a collection's config."""
    dense = config.params.vectors
    return {*(dense if isinstance(dense, dict) else {}), *(config.params.sparse_vectors or {})}
