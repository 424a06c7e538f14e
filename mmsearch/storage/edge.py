"""Qdrant Edge backend: the Qdrant engine in-process, one shard in a local folder, no server.

Layout of a store: `<path>/<collection>/shard/` (the Edge shard: WAL, segments, edge_config.json)
and `<path>/<collection>/mmsearch.json` (the schema record: which model fingerprint wrote each
named vector). The record is written atomically, only while this process holds the shard's WAL
lock, and always after the shard change it describes.

Edge facts this module works around:
- HNSW graphs are built only by `optimize()` (blocking); until then search scans the new points
  exactly. `Store.upsert` optimizes after large batches (`optimize_after`); call `optimize()` after
  many small ones.
- A second opener of the same folder fails on the WAL lock: mapped to `StoreLockedError`.
- `create_dense_vector` adds a named vector in place but takes no HNSW or quantization settings;
  the backend then reopens the shard with the full config, which Edge persists, so a rescoring
  multivector keeps m=0.
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
from collections.abc import Iterator, Mapping, Sequence
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

log = logging.getLogger(__name__)
RECORD_FILE = "mmsearch.json"
SHARD_DIR = "shard"


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


@contextlib.contextmanager
def _engine(op: str) -> Iterator[None]:
    """Turn the engine's untyped exceptions into `BackendError` naming the operation."""
    try:
        yield
    except StorageError:
        raise
    except Exception as e:
        raise BackendError(f"Qdrant Edge {op} failed: {e}") from e


class EdgeBackend:
    """One Edge shard in `<path>/<collection>/`. Opening it takes the folder's lock."""

    kind = "edge"
    explicit_optimize = True

    def __init__(self, settings: StoreSettings) -> None:
        self._qe = import_edge()
        self._settings = settings
        self.folder = Path(settings.data_path or "mmsearch-data") / settings.collection
        self._shard_dir = self.folder / SHARD_DIR
        self._record_path = self.folder / RECORD_FILE
        self._shard: Any = None
        self._schema: StoreSchema | None = None
        if self._has_segments():
            recorded = self._read_record()
            self._shard = self._load(recorded)
            self._schema = recorded

    # -- opening -----------------------------------------------------------------------------
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
            f"the store at {self.folder} is already open (its write-ahead log is locked by another "
            f"process or another open store in this one); close that one first, or use a Qdrant "
            f"server (backend 'server') for concurrent access"
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

    def _config(self, schema: StoreSchema) -> Any:
        qe, s = self._qe, self._settings
        hnsw = s.hnsw
        vectors = {}
        for name, spec in schema.vectors.items():
            vectors[name] = qe.EdgeVectorParams(
                size=spec.dim,
                distance=_DISTANCES[spec.distance](qe),
                multivector_config=(
                    qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if spec.multivector else None
                ),
                hnsw_config=(
                    None
                    if spec.indexed
                    else qe.HnswIndexConfig(
                        m=0, ef_construct=hnsw.ef_construct, full_scan_threshold=hnsw.full_scan_threshold_kb
                    )
                ),
                quantization_config=self._quantization() if spec.kind == "pooled" else None,
                memory=qe.Memory.Cold if s.on_disk else None,
            )
        return qe.EdgeConfig(
            vectors=vectors,
            hnsw_config=qe.HnswIndexConfig(
                m=hnsw.m,
                ef_construct=hnsw.ef_construct,
                full_scan_threshold=hnsw.full_scan_threshold_kb,
                max_indexing_threads=hnsw.max_indexing_threads,
            ),
            payload_memory=qe.Memory.Cold if s.on_disk_payload else qe.Memory.Cached,
        )

    def _quantization(self) -> Any:
        qe = self._qe
        if self._settings.quantization == "scalar":
            return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
        if self._settings.quantization == "binary":
            return qe.BinaryQuantizationConfig(memory=qe.Memory.Pinned)
        return None

    def _shard_or_fail(self) -> Any:
        if self._shard is None:
            raise StorageError(f"the store at {self.folder} is closed or was never created")
        return self._shard

    # -- schema ------------------------------------------------------------------------------
    def read_schema(self) -> StoreSchema | None:
        return self._schema

    def create(self, schema: StoreSchema) -> None:
        qe = self._qe
        self._shard_dir.mkdir(parents=True, exist_ok=True)
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
            self._reload(schema)
        self._create_indexes(schema.payload_indexes)
        self._record(schema)

    def extend(
        self, schema: StoreSchema, new_vectors: Sequence[VectorSpec], new_indexes: Mapping[str, FieldType]
    ) -> None:
        qe = self._qe
        shard = self._shard_or_fail()
        with _engine("adding vectors"):
            for spec in new_vectors:
                shard.update(
                    qe.UpdateOperation.create_dense_vector(
                        spec.name,
                        spec.dim,
                        _DISTANCES[spec.distance](qe),
                        qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if spec.multivector else None,
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
        batch = [qe.Point(p.id, dict(p.vectors), dict(p.payload)) for p in points]
        with _engine("upsert"):
            shard.update(qe.UpdateOperation.upsert_points(batch))

    def update_vectors(self, points: Sequence[Point]) -> None:
        qe = self._qe
        shard = self._shard_or_fail()
        batch = [qe.PointVectors(p.id, dict(p.vectors)) for p in points]
        with _engine("update_vectors"):
            shard.update(qe.UpdateOperation.update_vectors(batch))

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
            shard.update(self._qe.UpdateOperation.delete_points_by_filter(self._filter(flt)))

    def optimize(self) -> bool:
        shard = self._shard_or_fail()
        with _engine("optimize"):
            return bool(shard.optimize())

    def close(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            with _engine("close"):
                shard.flush()
                shard.close()

    # -- reads -------------------------------------------------------------------------------
    def _payload_selector(self, with_payload: bool) -> Any:
        return True if with_payload else self._qe.PayloadSelector.Include([ITEM_ID_KEY])

    @staticmethod
    def _with_vector(with_vectors: WithVectors) -> bool | list[str]:
        return with_vectors if isinstance(with_vectors, bool) else list(with_vectors)

    def count(self, flt: Filter | None) -> int:
        shard = self._shard_or_fail()
        with _engine("count"):
            return int(shard.count(self._qe.CountRequest(exact=True, filter=self._filter(flt))))

    def retrieve(self, point_ids: Sequence[str], with_vectors: WithVectors, with_payload: bool) -> list[RawRecord]:
        shard = self._shard_or_fail()
        with _engine("retrieve"):
            recs = shard.retrieve(
                list(point_ids), self._payload_selector(with_payload), self._with_vector(with_vectors)
            )
        return [_record(r) for r in recs]

    def scroll(
        self, flt: Filter | None, limit: int, offset: str | None, with_vectors: WithVectors, with_payload: bool
    ) -> tuple[list[RawRecord], str | None]:
        shard = self._shard_or_fail()
        req = self._qe.ScrollRequest(
            offset=offset,
            limit=limit,
            filter=self._filter(flt),
            with_payload=self._payload_selector(with_payload),
            with_vector=self._with_vector(with_vectors),
        )
        with _engine("scroll"):
            recs, nxt = shard.scroll(req)
        return [_record(r) for r in recs], (None if nxt is None else str(nxt))

    def query(self, queries: Sequence[NearestQuery | HybridQuery]) -> list[list[RawHit]]:
        shard = self._shard_or_fail()
        requests = [self._request(q) for q in queries]
        with _engine("query"):
            if len(requests) == 1:
                results = [shard.query(requests[0])]
            else:
                results = shard.query_batch(self._qe.QueryBatchRequest(requests))
        return [
            [RawHit(id=str(h.id), score=float(h.score), payload=dict(h.payload or {})) for h in res] for res in results
        ]

    def score_points(
        self, queries: Sequence[NearestQuery], point_ids: Sequence[str], limit: int | None = None
    ) -> list[dict[str, float]]:
        qe = self._qe
        shard = self._shard_or_fail()
        only = qe.Filter(must=[qe.HasIdCondition(set(point_ids))])
        requests = [
            qe.QueryRequest(
                limit=limit or len(point_ids),
                query=qe.Query.Nearest(q.query, using=q.vector),
                filter=only,
                params=qe.SearchParams(exact=True),
                with_payload=False,
            )
            for q in queries
        ]
        with _engine("score"):
            results = (
                shard.query_batch(qe.QueryBatchRequest(requests)) if len(requests) > 1 else [shard.query(requests[0])]
            )
        if limit is not None:
            return [{str(h.id): float(h.score) for h in res} for res in results]
        # Edge returns uuid.UUID ids: with every point scored by every query, one dict from UUID back to
        # the id string costs less than str() on each hit.
        back = {uuid.UUID(p): p for p in point_ids}
        return [{back.get(h.id, str(h.id)): float(h.score) for h in res} for res in results]

    def _request(self, q: NearestQuery | HybridQuery) -> Any:
        qe = self._qe
        if isinstance(q, HybridQuery):
            return qe.QueryRequest(
                limit=q.limit,
                query=self._fusion(q.fusion),
                prefetches=[self._prefetch(p) for p in q.prefetch],
                filter=self._filter(q.filter),
                score_threshold=q.score_threshold,
                with_payload=self._payload_selector(q.with_payload),
            )
        return qe.QueryRequest(
            limit=q.limit,
            query=qe.Query.Nearest(q.query, using=q.vector),
            filter=self._filter(q.filter),
            score_threshold=q.score_threshold,
            params=self._search_params(q),
            with_payload=self._payload_selector(q.with_payload),
        )

    def _prefetch(self, p: Prefetch) -> Any:
        qe = self._qe
        return qe.Prefetch(
            limit=p.limit,
            query=qe.Query.Nearest(p.query, using=p.vector),
            prefetches=[self._prefetch(n) for n in p.prefetch] or None,
            params=self._search_params(p),
            filter=self._filter(p.filter),
        )

    def _fusion(self, f: Fusion) -> Any:
        qe = self._qe
        if isinstance(f, Formula):
            return qe.Formula(
                self._expression(f.expression), defaults={f"$score[{i}]": v for i, v in f.defaults.items()}
            )
        if isinstance(f, Rrf):
            return qe.Fusion.Rrf(k=f.k, weights=list(f.weights) if f.weights is not None else None)
        if isinstance(f, Dbsf):
            return qe.Fusion.Dbsf()
        if isinstance(f, Rescore):
            return qe.Query.Nearest(f.query, using=f.vector)
        raise TypeError(f"unknown fusion {f!r}")  # prepare_hybrid rules this out

    def _expression(self, e: Expression) -> Any:
        ex = self._qe.Expression
        if isinstance(e, Const):
            return ex.Constant(float(e.value))
        if isinstance(e, Score):
            return ex.Variable(f"$score[{e.index}]")
        if isinstance(e, HasVector):
            return ex.Condition(self._qe.HasVectorCondition(e.vector))
        if isinstance(e, Sum):
            return ex.Sum([self._expression(t) for t in e.terms])
        if isinstance(e, Mult):
            return ex.Mult([self._expression(t) for t in e.terms])
        if isinstance(e, Div):
            return ex.Div(self._expression(e.left), self._expression(e.right), by_zero_default=e.by_zero)
        raise TypeError(f"unknown expression {e!r}")  # prepare_hybrid rules this out

    def _search_params(self, q: NearestQuery | Prefetch) -> Any:
        qe, s = self._qe, self._settings
        quant = None
        if s.quantization != "none" and not q.exact:
            quant = qe.QuantizationSearchParams(rescore=True, oversampling=s.oversampling)
        return qe.SearchParams(hnsw_ef=q.hnsw_ef or s.hnsw.ef, exact=q.exact, quantization=quant)

    # -- filters -----------------------------------------------------------------------------
    def _filter(self, flt: Filter | None) -> Any:
        if flt is None:
            return None
        qe = self._qe

        def cond(c: Any) -> Any:
            if isinstance(c, Filter):
                return self._filter(c)
            if isinstance(c, Match):
                return qe.FieldCondition(c.key, match=qe.MatchValue(c.value))
            if isinstance(c, MatchAny):
                return qe.FieldCondition(c.key, match=qe.MatchAny(list(c.values)))
            if isinstance(c, Range):
                return qe.FieldCondition(c.key, range=qe.RangeFloat(gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt))
            if isinstance(c, HasItemId):
                return qe.HasIdCondition({point_id(i) for i in c.item_ids})
            raise TypeError(f"unknown filter condition {c!r}")  # Filter.__post_init__ rules this out

        return qe.Filter(
            must=[cond(c) for c in flt.must] or None,
            should=[cond(c) for c in flt.should] or None,
            must_not=[cond(c) for c in flt.must_not] or None,
        )


def _record(r: Any) -> RawRecord:
    vectors = {name: np.asarray(v, dtype=np.float32) for name, v in (r.vector or {}).items()}
    return RawRecord(id=str(r.id), payload=dict(r.payload or {}), vectors=vectors)


_DISTANCES = {
    "cosine": lambda qe: qe.Distance.Cosine,
    "dot": lambda qe: qe.Distance.Dot,
    "euclid": lambda qe: qe.Distance.Euclid,
}
_FIELD_TYPES: dict[str, str] = {
    "keyword": "Keyword",
    "integer": "Integer",
    "float": "Float",
    "bool": "Bool",
    "datetime": "Datetime",
    "text": "Text",
    "uuid": "Uuid",
}
