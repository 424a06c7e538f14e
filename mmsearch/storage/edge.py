"""Qdrant Edge backend: the Qdrant engine in-process, one shard in a local folder, no server.

Layout of a store: `<path>/<collection>/shard/` (the Edge shard: WAL, segments, edge_config.json)
and `<path>/<collection>/mmsearch.json` (the schema record: which model fingerprint wrote each
named vector). The record is written atomically, only while this process holds the shard's WAL
lock, and always after the shard change it describes.

Edge facts this module works around:
- HNSW graphs are built only by `optimize()` (blocking); until then search scans the new points
  exactly. `Store.upsert` optimizes after large batches (`optimize_after`); call `optimize()` after
  many small ones.
- Opening is exclusive: the backend holds an `flock` on `<path>/<collection>/.lock` while open
  (taken before the shard is inspected or created), so of two processes opening one new folder at
  once exactly one creates it and the other gets `StoreLockedError`; Edge's own WAL lock (also
  mapped to `StoreLockedError`) stays as a second guard.
- `create_dense_vector` (and `create_sparse_vector`) add a named vector in place but take no HNSW
  or quantization settings; the backend then reopens the shard with the full config, which Edge
  persists, so a rescoring multivector keeps m=0.
- With quantization on, queries ask for rescoring with the original vectors.
- Hybrid queries (`mmsearch.storage.hybrid`) map onto Edge's own call shapes: `prefetches=` and
  `filter=` on the request, `using=` inside `Query.Nearest`, formula terms wrapped in
  `Expression.Constant` / `Expression.Variable("$score[i]")`, `Fusion.Rrf(k, weights)` and
  `Fusion.Dbsf()`. The request's filter reaches every prefetch. Edge has no recommend-by-id:
  callers read an item's vectors (`retrieve`) and query with them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.errors import (
    BackendError,
    DependencyError,
    SchemaMismatchError,
    StorageError,
    StoreLockedError,
)
from mmsearch.files import write_json_atomic
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
from mmsearch.storage.folder_lock import FolderLock
from mmsearch.storage.hybrid import HybridQuery
from mmsearch.storage.schema import FieldType, StoreSchema, VectorSpec, with_created
from mmsearch.storage.settings import BackendKind, StoreSettings
from mmsearch.storage.translate import Search, Translator, raw_hit, raw_record, vector_selection

log = logging.getLogger(__name__)
RECORD_FILE = "mmsearch.json"
SHARD_DIR = "shard"
LOCK_FILE = ".lock"
_FLUSH_BYTES = 64 << 20


def import_edge() -> Any:
    """The `qdrant_edge` module.

    Raises:
        DependencyError: it is not installed; the message says how to install it.
    """
    try:
        import qdrant_edge
    except ImportError as e:
        raise DependencyError(
            "the embedded store needs Qdrant Edge: pip install qdrant-edge-py==0.9.0 "
            "(or use backend 'memory' or 'server')"
        ) from e
    return qdrant_edge


def _is_lock_error(e: Exception) -> bool:
    text = str(e)
    return "WouldBlock" in text or "failed to open WAL" in text


def _engine(op: str) -> contextlib.AbstractContextManager[None]:
    """Turn the engine's untyped exceptions into `BackendError` naming the operation."""
    return engine_errors("Qdrant Edge", op)


class EdgeDialect:
    """Qdrant Edge's constructors for each part of a request (see `mmsearch.storage.translate`)."""

    def __init__(self, qe: Any, settings: StoreSettings) -> None:
        self._qe = qe
        self._settings = settings

    def match(self, key: str, value: str | int | bool) -> Any:
        # qdrant-edge-py reads a Python bool as the integer 0 or 1 (bool is an int subclass), which
        # matches no stored boolean; numpy's bool is not an int, so it arrives as a boolean.
        exact = np.bool_(value) if isinstance(value, bool) else value
        return self._qe.FieldCondition(key, match=self._qe.MatchValue(exact))

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        return self._qe.FieldCondition(key, match=self._qe.MatchAny(values))

    def is_empty(self, key: str) -> Any:
        return self._qe.IsEmptyCondition(key)

    def range(self, key: str, gt: float | None, gte: float | None, lt: float | None, lte: float | None) -> Any:
        return self._qe.FieldCondition(key, range=self._qe.RangeFloat(gte=gte, gt=gt, lte=lte, lt=lt))

    def has_id(self, point_ids: list[str]) -> Any:
        return self._qe.HasIdCondition(set(point_ids))

    def has_vector_condition(self, vector: str) -> Any:
        return self._qe.HasVectorCondition(vector)

    def filter(self, must: list[Any] | None, should: list[Any] | None, must_not: list[Any] | None) -> Any:
        return self._qe.Filter(must=must, should=should, must_not=must_not)

    def constant(self, value: float) -> Any:
        return self._qe.Expression.Constant(value)

    def variable(self, name: str) -> Any:
        return self._qe.Expression.Variable(name)

    def has_vector(self, vector: str) -> Any:
        return self._qe.Expression.Condition(self._qe.HasVectorCondition(vector))

    def sum(self, terms: list[Any]) -> Any:
        return self._qe.Expression.Sum(terms)

    def mult(self, terms: list[Any]) -> Any:
        return self._qe.Expression.Mult(terms)

    def div(self, left: Any, right: Any, by_zero: float) -> Any:
        return self._qe.Expression.Div(left, right, by_zero_default=by_zero)

    def nearest(self, vector: str, query: np.ndarray | SparseVector) -> Any:
        return self._qe.Query.Nearest(self.value(query), using=vector)  # Edge names the vector inside the query

    def value(self, vector: np.ndarray | SparseVector) -> Any:
        """A vector as Edge takes it: a (nested) list of floats, or Edge's own `SparseVector`."""
        if isinstance(vector, SparseVector):
            indices, values = np.asarray(vector.indices).tolist(), np.asarray(vector.values).tolist()
            return self._qe.SparseVector(indices=indices, values=values)
        return vector.tolist()  # Edge reads a list 2.5x faster than the array (9 against 23 us at 512-d)

    def formula(self, expression: Any, defaults: dict[str, float]) -> Any:
        return self._qe.Formula(expression, defaults=defaults)

    def rrf(self, k: int, weights: list[float] | None) -> Any:
        return self._qe.Fusion.Rrf(k=k, weights=weights)

    def dbsf(self) -> Any:
        return self._qe.Fusion.Dbsf()

    def quantized(self, rescore: bool, oversampling: float | None) -> Any:
        return self._qe.QuantizationSearchParams(rescore=rescore, oversampling=oversampling)

    def search_params(self, hnsw_ef: int | None, exact: bool, quantization: Any) -> Any:
        return self._qe.SearchParams(hnsw_ef=hnsw_ef, exact=exact, quantization=quantization)

    def payload_only(self, keys: list[str]) -> Any:
        return self._qe.PayloadSelector.Include(keys)

    def prefetch(self, search: Search) -> Any:
        s = search
        return self._qe.Prefetch(
            limit=s.limit, query=s.query, prefetches=s.prefetches, params=s.params, filter=s.filter
        )

    def request(self, search: Search) -> Any:
        s = search
        return self._qe.QueryRequest(
            limit=s.limit,
            query=s.query,
            prefetches=s.prefetches,
            filter=s.filter,
            score_threshold=s.score_threshold,
            params=s.params,
            with_payload=s.with_payload,
        )

    def scalar_quantization(self, quantile: float) -> Any:
        qe = self._qe
        return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=quantile, memory=qe.Memory.Pinned)

    def binary_quantization(self) -> Any:
        return self._qe.BinaryQuantizationConfig(memory=self._qe.Memory.Pinned)

    def distance(self, name: str) -> Any:
        return getattr(self._qe.Distance, _DISTANCES[name])

    def multivector(self, spec: VectorSpec) -> Any:
        qe = self._qe
        return qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if spec.multivector else None

    def vector_params(self, spec: VectorSpec, quantization: Any) -> Any:
        qe, s = self._qe, self._settings
        return qe.EdgeVectorParams(
            size=spec.dim,
            distance=self.distance(spec.distance),
            multivector_config=self.multivector(spec),
            hnsw_config=(
                None
                if spec.indexed
                else qe.HnswIndexConfig(
                    m=0, ef_construct=s.hnsw.ef_construct, full_scan_threshold=s.hnsw.full_scan_threshold_kb
                )
            ),
            quantization_config=quantization,
            memory=qe.Memory.Cold if s.on_disk else None,
        )

    def sparse_params(self, spec: VectorSpec) -> Any:
        return self._qe.EdgeSparseVectorParams(memory=self._qe.Memory.Cold if self._settings.on_disk else None)


class EdgeBackend:
    """One Edge shard in `<path>/<collection>/`. Opening it takes the folder's lock."""

    kind: BackendKind = "edge"
    explicit_optimize = True

    def __init__(self, settings: StoreSettings) -> None:
        self._qe = import_edge()
        self._settings = settings
        self._dialect = EdgeDialect(self._qe, settings)
        self._t = Translator(self._dialect, settings)
        self.folder = Path(settings.data_path or "mmsearch-data") / settings.collection
        check_folder(self.folder, "store")
        self._shard_dir = self.folder / SHARD_DIR
        self._record_path = self.folder / RECORD_FILE
        self._shard: Any = None
        self._unflushed = 0  # bytes of vectors written since the last flush
        self._schema: StoreSchema | None = None
        self._lock = FolderLock(self.folder / LOCK_FILE)
        if self.folder.is_dir():
            self._take_lock()
        try:
            if self._has_segments():
                recorded = self._read_record()
                if recorded is not None:
                    recorded = with_created(recorded, self._stored_vectors())
                self._shard = self._load(recorded)
                self._schema = recorded
        except BaseException:
            self._lock.release()
            raise

    # -- opening -----------------------------------------------------------------------------
    def _take_lock(self) -> None:
        if not self._lock.acquire():
            raise self._locked()

    def _has_segments(self) -> bool:
        return (self._shard_dir / "segments").is_dir() or (self._shard_dir / "edge_config.json").is_file()

    def _read_record(self) -> StoreSchema | None:
        try:
            text = self._record_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return StoreSchema.from_record(json.loads(text))
        except json.JSONDecodeError as e:
            raise SchemaMismatchError(f"the schema record {self._record_path} is not valid JSON: {e}") from e

    def _locked(self) -> StoreLockedError:
        return StoreLockedError(
            f"the store at {self.folder} is already open (locked by another process or another open "
            f"store in this one); close that one first, or use a Qdrant server (backend 'server') for "
            f"concurrent access"
        )

    def _load(self, schema: StoreSchema | None, *, strict: bool = False) -> Any:
        """Load the shard, with the config derived from `schema` when there is one.

        Unless `strict`, a shard whose vectors differ from `schema` is opened as it is (see below).
        """
        qe = self._qe
        config = self._config(schema) if schema is not None else None
        try:
            return qe.EdgeShard.load(str(self._shard_dir), config)
        except Exception as e:
            if _is_lock_error(e):
                raise self._locked() from e
            if config is not None and "incompatible" in str(e) and strict:
                raise SchemaMismatchError(
                    f"the Edge shard in {self._shard_dir} does not match the schema asked for: {e}"
                ) from e
            if config is not None and "incompatible" in str(e):
                # A process died between changing the shard and recording the change: the shard
                # holds vectors the record lacks. Open it as it is; extend() settles the rest.
                log.warning(
                    "Edge shard %s differs from its schema record (%s); opening it as stored", self._shard_dir, e
                )
                try:
                    return qe.EdgeShard.load(str(self._shard_dir))
                except Exception as e2:
                    if _is_lock_error(e2):
                        raise self._locked() from e2
                    raise BackendError(f"Qdrant Edge could not load {self._shard_dir}: {e2}") from e2
            raise BackendError(f"Qdrant Edge could not load {self._shard_dir}: {e}") from e

    def _stored_vectors(self) -> set[str]:
        """The vector names the shard on disk holds (its saved config), dense and sparse."""
        try:
            config = json.loads((self._shard_dir / "edge_config.json").read_text())
        except (OSError, ValueError):
            return set()
        return {*config.get("vectors", {}), *(config.get("sparse_vectors") or {})}

    def _config(self, schema: StoreSchema) -> Any:
        qe, hnsw = self._qe, self._settings.hnsw
        return qe.EdgeConfig(
            vectors={name: self._t.vector_params(spec) for name, spec in schema.vectors.items() if not spec.sparse},
            sparse_vectors={name: self._t.vector_params(spec) for name, spec in schema.vectors.items() if spec.sparse}
            or None,
            hnsw_config=qe.HnswIndexConfig(
                m=hnsw.m,
                ef_construct=hnsw.ef_construct,
                full_scan_threshold=hnsw.full_scan_threshold_kb,
                max_indexing_threads=hnsw.max_indexing_threads,
            ),
            payload_memory=qe.Memory.Cold if self._settings.on_disk_payload else qe.Memory.Cached,
        )

    def _shard_or_fail(self) -> Any:
        if self._shard is None:
            raise StorageError(f"the store at {self.folder} is closed or was never created")
        return self._shard

    # -- schema ------------------------------------------------------------------------------
    def read_schema(self) -> StoreSchema | None:
        return self._schema

    def create(self, schema: StoreSchema) -> None:
        qe = self._qe
        try:
            self._shard_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the store folder {str(self.folder)!r}: {e.strerror or e}") from e
        if not self._lock.held:
            self._take_lock()
            if self._has_segments():
                self._lock.release()
                raise StoreLockedError(
                    f"the store at {self.folder} was created by another process while this one was "
                    f"opening it; open it again"
                )
        if self._shard is None:
            with _engine("create"):
                try:
                    self._shard = qe.EdgeShard.create(str(self._shard_dir), self._config(schema))
                except Exception as e:
                    if _is_lock_error(e):
                        raise self._locked() from e
                    raise
        else:
            # A shard without a record: a create that died before recording. Reopen it with the
            # full config; Edge refuses it if its vectors differ.
            schema = with_created(schema, self._stored_vectors())
            self._reload(schema)
        self._create_indexes(schema.payload_indexes)
        self._record(schema)

    def extend(
        self, schema: StoreSchema, new_vectors: Sequence[VectorSpec], new_indexes: Mapping[str, FieldType]
    ) -> None:
        qe, d = self._qe, self._dialect
        shard = self._shard_or_fail()
        stored = self._stored_vectors() if new_vectors else set()  # a crash may have left some unrecorded
        with _engine("adding vectors"):
            for spec in new_vectors:
                if spec.name in stored:
                    continue
                if spec.sparse:
                    shard.update(qe.UpdateOperation.create_sparse_vector(spec.name))
                    continue
                shard.update(
                    qe.UpdateOperation.create_dense_vector(
                        spec.name, spec.dim, d.distance(spec.distance), d.multivector(spec)
                    )
                )
        if new_vectors:
            self._reload(schema)  # persists the per-vector HNSW (m=0) and quantization settings
        self._create_indexes(new_indexes)
        self._record(schema)

    def _reload(self, schema: StoreSchema) -> None:
        with _engine("flush"):
            self._shard.flush()
            self._shard.close()
        self._shard = None
        self._shard = self._load(schema, strict=True)

    def _create_indexes(self, indexes: Mapping[str, FieldType]) -> None:
        qe = self._qe
        shard = self._shard_or_fail()
        with _engine("creating payload indexes"):
            for key, kind in indexes.items():
                schema_type = getattr(qe.PayloadSchemaType, _FIELD_TYPES[kind])
                shard.update(qe.UpdateOperation.create_field_index(key, schema_type))

    def _record(self, schema: StoreSchema) -> None:
        with _engine("flush"):
            self._shard.flush()
        write_json_atomic(self._record_path, schema.to_record())
        self._schema = schema

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, points: Sequence[Point]) -> None:
        qe = self._qe
        shard = self._shard_or_fail()
        value = self._dialect.value
        batch = [qe.Point(p.id, {n: value(v) for n, v in p.vectors.items()}, dict(p.payload)) for p in points]
        with _engine("upsert"):
            shard.update(qe.UpdateOperation.upsert_points(batch))
        self._wrote(points)

    def _wrote(self, points: Sequence[Point]) -> None:
        """Flush once `_FLUSH_BYTES` of vectors were written since the last flush.

        Edge has no background flusher: its write-ahead log keeps every write until a flush, and
        a million-item build left 14 GB of it beside a 12 GB segment. A flush truncates the log
        to its last two 32 MB files.
        """
        self._unflushed += sum(_nbytes(v) for p in points for v in p.vectors.values())
        if self._unflushed >= _FLUSH_BYTES:
            with _engine("flush"):
                self._shard_or_fail().flush()
            self._unflushed = 0

    def update_vectors(self, points: Sequence[Point]) -> None:
        qe = self._qe
        shard = self._shard_or_fail()
        value = self._dialect.value
        batch = [qe.PointVectors(p.id, {n: value(v) for n, v in p.vectors.items()}) for p in points]
        with _engine("update_vectors"):
            shard.update(qe.UpdateOperation.update_vectors(batch))
        self._wrote(points)

    def delete_vectors(self, point_ids: Sequence[str], names: Sequence[str]) -> None:
        shard = self._shard_or_fail()
        with _engine("delete_vectors"):
            shard.update(self._qe.UpdateOperation.delete_vectors(list(point_ids), list(names)))

    def delete_ids(self, point_ids: Sequence[str]) -> None:
        shard = self._shard_or_fail()
        with _engine("delete"):
            shard.update(self._qe.UpdateOperation.delete_points(list(point_ids)))

    def delete_filter(self, flt: Filter) -> None:
        shard = self._shard_or_fail()
        with _engine("delete by filter"):
            shard.update(self._qe.UpdateOperation.delete_points_by_filter(self._t.filter(flt)))

    def optimize(self) -> bool:
        shard = self._shard_or_fail()
        with _engine("optimize"):
            return bool(shard.optimize())

    def close(self) -> None:
        try:
            if self._shard is not None:
                shard, self._shard = self._shard, None
                with _engine("close"):
                    shard.flush()
                    shard.close()
        finally:
            self._lock.release()

    def sidecar_folder(self, name: str) -> Path:
        return self.folder / name

    # -- reads -------------------------------------------------------------------------------
    def count(self, flt: Filter | None) -> int:
        shard = self._shard_or_fail()
        with _engine("count"):
            return int(shard.count(self._qe.CountRequest(exact=True, filter=self._t.filter(flt))))

    def retrieve(self, point_ids: Sequence[str], with_vectors: WithVectors, with_payload: bool) -> list[RawRecord]:
        shard = self._shard_or_fail()
        with _engine("retrieve"):
            recs = shard.retrieve(list(point_ids), self._t.payload(with_payload), vector_selection(with_vectors))
        return [raw_record(r) for r in recs]

    def scroll(
        self, flt: Filter | None, limit: int, offset: str | None, with_vectors: WithVectors, with_payload: bool
    ) -> tuple[list[RawRecord], str | None]:
        shard = self._shard_or_fail()
        req = self._qe.ScrollRequest(
            offset=offset,
            limit=limit,
            filter=self._t.filter(flt),
            with_payload=self._t.payload(with_payload),
            with_vector=vector_selection(with_vectors),
        )
        with _engine("scroll"):
            recs, nxt = shard.scroll(req)
        return [raw_record(r) for r in recs], (None if nxt is None else str(nxt))

    def query(self, queries: Sequence[NearestQuery | HybridQuery], within: Any = None) -> list[list[RawHit]]:
        requests = [self._t.request(q, within) for q in queries]
        with _engine("query"):
            results = self._run(requests)
        return [[raw_hit(h) for h in res] for res in results]

    def nearest_ids(self, queries: Sequence[NearestQuery]) -> list[list[Any]]:
        requests = [self._t.request(q, ids_only=True) for q in queries]
        with _engine("query"):
            results = self._run(requests)
        return [[h.id for h in res] for res in results]

    def native_id(self, point_id: str) -> Any:
        return uuid.UUID(point_id)

    def restrict(self, point_ids: Sequence[Any]) -> Any:
        return self._t.only_ids(point_ids)

    def _run(self, requests: list[Any]) -> list[Any]:
        shard = self._shard_or_fail()
        if len(requests) == 1:
            return [shard.query(requests[0])]
        return list(shard.query_batch(self._qe.QueryBatchRequest(requests)))

    def having(self, within: Any, vector: str, limit: int) -> set[Any]:
        shard = self._shard_or_fail()
        req = self._qe.ScrollRequest(
            limit=limit, filter=self._t.having_filter(within, vector), with_payload=False, with_vector=False
        )
        with _engine("scroll"):
            recs, _ = shard.scroll(req)
        return {r.id for r in recs}

    def score_points(self, queries: Sequence[NearestQuery], within: Any, limit: int) -> list[dict[Any, float]]:
        requests = self._t.score_requests(queries, within, limit)
        with _engine("score"):
            results = self._run(requests)
        return [{h.id: h.score for h in res} for res in results]


def _nbytes(vector: np.ndarray | SparseVector) -> int:
    if isinstance(vector, SparseVector):
        return int(np.asarray(vector.indices).nbytes + np.asarray(vector.values).nbytes)
    return int(vector.nbytes)


# The engine's spellings of mmsearch's distance and payload index names.
_DISTANCES = {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid"}
_FIELD_TYPES: dict[str, str] = {
    "keyword": "Keyword",
    "integer": "Integer",
    "float": "Float",
    "bool": "Bool",
    "datetime": "Datetime",
    "text": "Text",
    "uuid": "Uuid",
}
