"""`Store`: the one storage interface, the same on every backend."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from indexers.protocol import EncoderSpec
from mmsearch.errors import InputError, InvalidFilterError, ItemNotFoundError, StorageError, UnknownVectorError, listed
from mmsearch.storage import maxsim
from mmsearch.storage.base import (
    Backend,
    Candidates,
    Hit,
    Item,
    NearestQuery,
    Point,
    RawRecord,
    ScrollPage,
    StoredItem,
    VectorInput,
    VectorUpdate,
    WithVectors,
)
from mmsearch.storage.filters import Filter, IsEmpty, check_filter, payload_keys
from mmsearch.storage.hybrid import HybridQuery, prepare_hybrid
from mmsearch.storage.ids import ITEM_ID_KEY, id_order, is_internal_key, point_id
from mmsearch.storage.schema import (
    MULTI_SUFFIX,
    ModelRecord,
    StoreSchema,
    plan_cf,
    plan_multi,
    plan_schema,
    plan_sparse,
    pooled_name,
)
from mmsearch.storage.settings import BackendKind, StoreSettings
from mmsearch.storage.validate import prepare_items, prepare_query, prepare_updates

log = logging.getLogger(__name__)

_SCORE_CHUNK = 4096
_LOOKUP_CHUNK = 1024


def _public(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload without mmsearch's own fields."""
    return {k: v for k, v in payload.items() if not is_internal_key(k)}


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


class Store:
    """Items with named vectors in one Qdrant collection, on any backend.

    Use `open_store(...)` to get one. Every write validates its whole batch first, so a refused
    batch leaves the store as it was. Item ids map to deterministic point ids, so writing an item
    again replaces it.
    """

    def __init__(self, backend: Backend, schema: StoreSchema, settings: StoreSettings) -> None:
        self._backend: Backend | None = backend
        self._schema = schema
        self._settings = settings
        self._present: set[str] = set()  # payload fields known to have a value in some item

    # -- description ---------------------------------------------------------------------------
    @property
    def schema(self) -> StoreSchema:
        """The collection's named vectors and payload indexes."""
        return self._schema

    @property
    def settings(self) -> StoreSettings:
        return self._settings

    @property
    def backend_kind(self) -> BackendKind:
        """`edge`, `server` or `memory`."""
        return self._open().kind

    @property
    def engine(self) -> str:
        """The engine that runs this store's searches and fusions: `qdrant` on every backend."""
        return "qdrant"

    def sidecar_folder(self, name: str) -> Path | None:
        """The local folder for files kept with the collection under `name` (e.g. `cf`, its CF model).

        Edge: `<path>/<collection>/<name>/`; local mode on disk: `<path>/<collection>.<name>/`, beside
        the folder qdrant-client keeps for itself. None for a server or an in-memory store, which
        have no local folder (pass one explicitly). The folder need not exist yet.
        """
        return self._open().sidecar_folder(name)

    @property
    def input_names(self) -> list[str]:
        """Keys accepted in `Item.vectors` and `VectorUpdate.vectors`."""
        return self._schema.input_names

    @property
    def vector_names(self) -> list[str]:
        """Queryable vector names: the stored ones, and pending multivectors (read from the pooled vectors)."""
        return sorted([*self._schema.vectors, *self._schema.pending])

    def _open(self) -> Backend:
        if self._backend is None:
            raise StorageError("this store is closed; open it again with open_store(...)")
        return self._backend

    def _existing(self, point_ids: Sequence[str]) -> list[str]:
        """The point ids among `point_ids` that are in the store."""
        backend = self._open()
        return [r.id for chunk in _chunks(point_ids, _LOOKUP_CHUNK) for r in backend.retrieve(chunk, False, False)]

    # -- schema ----------------------------------------------------------------------------------
    def add_encoders(self, encoders: Iterable[EncoderSpec]) -> list[str]:
        """Make sure the collection holds these encoders' vectors, adding any that are missing.

        Vectors already there are left untouched (their data included).

        Returns:
            The names of the vectors added (empty when there was nothing to do).

        Raises:
            FingerprintMismatchError: an encoder's fingerprint differs from the stored one.
            SchemaMismatchError: an encoder's dim or distance differs from the stored vector's.
        """
        backend = self._open()
        plan = plan_schema(
            self._schema,
            encoders,
            payload_indexes=self._settings.payload_indexes,
            index_multivector=self._settings.index_multivectors,
        )
        if plan.new_vectors or plan.new_indexes:
            backend.extend(plan.schema, plan.new_vectors, plan.new_indexes)
            self._schema = plan.schema
        return [v.name for v in plan.new_vectors]

    def record_models(self, records: Iterable[ModelRecord]) -> bool:
        """Record the model folders behind the collection's vectors (see `ModelRecord`).

        `Searcher.open` loads them when no models are given. Records of other models are kept.

        Returns:
            True when the record changed (and was written).

        Raises:
            UnknownVectorError: a record names a modality the collection has no vector for.
        """
        backend = self._open()
        records = list(records)
        for r in records:
            for modality in r.fingerprints:
                self._schema.get(pooled_name(r.name, modality))
        schema = self._schema.with_models(records)
        if schema == self._schema:
            return False
        backend.extend(schema, (), {})
        self._schema = schema
        return True

    def add_cf_vector(self, dim: int) -> bool:
        """Make sure the collection holds the `cf` vector with `dim` values, adding it when missing.

        A collection created without `cf_dim` has no `cf` vector until its first CF fit adds one
        at the model's length.

        Returns:
            True when the vector was added.

        Raises:
            ConfigError: a dim that is not a positive integer.
            SchemaMismatchError: the collection's `cf` vector has another length.
        """
        backend = self._open()
        schema, new = plan_cf(self._schema, dim)
        if new:
            backend.extend(schema, new, {})
            self._schema = schema
        return bool(new)

    def add_sparse_vectors(self, names: Iterable[str]) -> list[str]:
        """Make sure the collection holds these sparse vectors (e.g. `ease`), adding any that are missing.

        Returns:
            The names of the vectors added (empty when there was nothing to do).

        Raises:
            ConfigError: a name a sparse vector cannot have.
            SchemaMismatchError: a name the collection uses for a dense vector.
        """
        backend = self._open()
        schema, new = plan_sparse(self._schema, names)
        if new:
            backend.extend(schema, new, {})
            self._schema = schema
        return [v.name for v in new]

    # -- writes ----------------------------------------------------------------------------------
    def upsert(self, items: Iterable[Item], *, optimize: bool | None = None) -> int:
        """Insert items, or replace them whole (vectors and payload) when their ids exist.

        Args:
            items: the batch; every item is checked before any is written.
            optimize: build pending indexes afterwards (Edge: blocking; server: wait for green);
                None does so on Edge when the batch holds at least `settings.optimize_after` items.

        Returns:
            The number of items written.

        Raises:
            EmptyBatchError, DuplicateIdError, UnknownVectorError, VectorDimensionError,
            NonFiniteVectorError, InvalidItemError: the batch was refused; nothing was written.
            BackendError: the engine failed.
        """
        backend = self._open()
        points = prepare_items(list(items), self._schema)
        self._create_multivectors(points)
        for chunk in _chunks(points, self._settings.batch_size):
            backend.upsert(chunk)
        after = self._settings.optimize_after
        auto = backend.explicit_optimize and after is not None and len(points) >= after
        if optimize or (optimize is None and auto):
            self.optimize()
        return len(points)

    def update_vectors(self, updates: Iterable[VectorUpdate]) -> int:
        """Replace some vectors of existing items (e.g. refresh `cf` only); the rest stays.

        An encoder key replaces both its pooled vector and its multivector.

        Returns:
            The number of items updated.

        Raises:
            ItemNotFoundError: some ids are not in the store; nothing was written.
            the batch errors listed under `upsert`.
        """
        backend = self._open()
        updates = list(updates)
        points = prepare_updates(updates, self._schema)
        found = set(self._existing([p.id for p in points]))
        missing = [up.id for up, p in zip(updates, points, strict=True) if p.id not in found]
        if missing:
            raise ItemNotFoundError(f"{len(missing)} item(s) to update are not in the store: {listed(missing)}")
        self._create_multivectors(points)
        for chunk in _chunks(points, self._settings.batch_size):
            backend.update_vectors(chunk)
        for multi in (n for n in self._schema.vectors if maxsim.partial(self._schema, n)):
            # An item updated to one row reads MaxSim from its pooled vector: its old rows must go.
            pooled = maxsim.pooled_of(multi)
            one_row = [p.id for p in points if pooled in p.vectors and multi not in p.vectors]
            for chunk in _chunks(one_row, self._settings.batch_size):
                backend.delete_vectors(chunk, [multi])
        return len(points)

    def _create_multivectors(self, points: Sequence[Point]) -> None:
        """Create the pending multivectors these points carry rows for (the first items with several rows)."""
        wanted = {n for p in points for n in p.vectors if n not in self._schema.vectors}
        if not wanted:
            return
        backend = self._open()
        # Another writer (a server's) may have created them since this store opened: start from the record.
        schema, new = plan_multi(backend.read_schema() or self._schema, wanted)
        if new:
            backend.extend(schema, new, {})
            log.info("created %s: the first item with several rows of it came", ", ".join(v.name for v in new))
        self._schema = schema

    def delete(self, item_ids: Iterable[str]) -> int:
        """Delete items by id; ids not in the store are ignored.

        Returns:
            The number of items that existed and were deleted.
        """
        backend = self._open()
        ids = [point_id(i) for i in item_ids]
        if not ids:
            return 0
        existing = self._existing(ids)
        for chunk in _chunks(existing, self._settings.batch_size):
            backend.delete_ids(chunk)
        return len(existing)

    def delete_where(self, filter: Filter) -> int:
        """Delete every item matching `filter`.

        Returns:
            The number of items deleted.
        """
        backend = self._open()
        flt = check_filter(filter)
        if flt is None:
            raise InvalidFilterError("delete_where needs a Filter; use delete(ids) to delete by id")
        n = backend.count(flt)
        if n:
            backend.delete_filter(flt)
        return n

    def optimize(self) -> bool:
        """Build pending HNSW graphs now (Edge; blocking). Server: waits until the collection is green.

        Returns:
            True if anything was optimized.
        """
        return self._open().optimize()

    # -- reads -----------------------------------------------------------------------------------
    def count(self, filter: Filter | None = None) -> int:
        """The number of items (matching `filter`, if given); exact."""
        return self._open().count(check_filter(filter))

    def _check_with_vectors(self, with_vectors: WithVectors) -> tuple[WithVectors, list[str]]:
        """What the engine reads for `with_vectors`, and the vector names the items come back with."""
        if isinstance(with_vectors, bool):
            return with_vectors, self.vector_names if with_vectors else []
        names = [with_vectors] if isinstance(with_vectors, str) else list(with_vectors)
        for n in names:
            self._schema.get(n)
        return maxsim.engine_vectors(self._schema, names), names

    def _item(self, rec: RawRecord, internal: bool = False, wanted: Sequence[str] = ()) -> StoredItem:
        payload = dict(rec.payload)
        item_id = payload.pop(ITEM_ID_KEY, None)
        if item_id is None:
            raise StorageError(f"point {rec.id} has no {ITEM_ID_KEY!r} in its payload; it was not written by mmsearch")
        vectors = rec.vectors
        if wanted:  # an item's one row of a multivector is its pooled vector (`maxsim`)
            vectors = dict(vectors)
            maxsim.fill_rows(self._schema, vectors, wanted)
            vectors = {n: v for n, v in vectors.items() if n in wanted}
        return StoredItem(
            id=item_id, payload=payload if internal else _public(payload), vectors=vectors, sparse=rec.sparse
        )

    def retrieve(
        self,
        item_ids: Iterable[str],
        *,
        with_vectors: WithVectors = False,
        with_payload: bool = True,
        internal: bool = False,
    ) -> list[StoredItem]:
        """Read items by id, in the order asked; ids not in the store are left out.

        Args:
            item_ids: the ids.
            with_vectors: True for all vectors, a list of stored vector names, or False.
            with_payload: return payloads (otherwise `payload` is {}).
            internal: keep mmsearch's own payload fields (`_mmsearch_*`, e.g. the indexer's content hash).

        Raises:
            UnknownVectorError: a vector name in `with_vectors` is not in the store.
        """
        backend = self._open()
        read, wanted = self._check_with_vectors(with_vectors)
        order = [point_id(i) for i in item_ids]
        found: dict[str, StoredItem] = {}
        for chunk in _chunks(list(dict.fromkeys(order)), _LOOKUP_CHUNK):
            for rec in backend.retrieve(chunk, read, with_payload):
                found[rec.id] = self._item(rec, internal, wanted)
        return [found[p] for p in order if p in found]

    def scroll(
        self,
        *,
        filter: Filter | None = None,
        limit: int = 100,
        offset: str | None = None,
        with_vectors: WithVectors = False,
        with_payload: bool = True,
        internal: bool = False,
    ) -> ScrollPage:
        """One page of items in a stable order (by point id), optionally filtered.

        Args:
            filter: payload filter, or None for all items.
            limit: items per page.
            offset: the `next_offset` of the previous page, or None to start.
            with_vectors, with_payload, internal: as in `retrieve`.
        """
        backend = self._open()
        if not isinstance(limit, int) or limit < 1:
            raise InputError(f"scroll limit {limit!r} must be a positive integer")
        flt = check_filter(filter)
        read, wanted = self._check_with_vectors(with_vectors)
        records, nxt = backend.scroll(flt, limit, offset, read, with_payload)
        return ScrollPage(items=[self._item(r, internal, wanted) for r in records], next_offset=nxt)

    def iter_items(
        self,
        *,
        filter: Filter | None = None,
        page_size: int = 256,
        with_vectors: WithVectors = False,
        with_payload: bool = True,
        internal: bool = False,
    ) -> Iterator[StoredItem]:
        """Every item (matching `filter`), page by page; the arguments are those of `scroll`."""
        offset: str | None = None
        while True:
            page = self.scroll(
                filter=filter,
                limit=page_size,
                offset=offset,
                with_vectors=with_vectors,
                with_payload=with_payload,
                internal=internal,
            )
            yield from page.items
            if page.next_offset is None:
                return
            offset = page.next_offset

    def query(
        self,
        vector: str,
        query: VectorInput,
        *,
        limit: int = 10,
        filter: Filter | None = None,
        exact: bool = False,
        hnsw_ef: int | None = None,
        score_threshold: float | None = None,
        with_payload: bool = False,
    ) -> list[Hit]:
        """Nearest neighbours by one named vector, best first.

        Args:
            vector: a stored vector name: `<model>.<modality>` (pooled, dense), `<model>.<modality>.multi`
                (MaxSim: `query` is (n, dim), the sum over query rows of the best match per row), `cf`,
                or a sparse vector (`query` a `SparseVector`; only items sharing an index with it are found).
            query: the query vector(s).
            limit: results wanted.
            filter: payload filter, or None.
            exact: exact search instead of HNSW.
            hnsw_ef: search-time ef (default from the settings).
            score_threshold: drop hits scoring below it.
            with_payload: return payloads.

        Returns:
            Hits (item id, score, payload) best first.

        Raises:
            UnknownVectorError: `vector` is not in the store; the message lists the known names.
            VectorDimensionError, NonFiniteVectorError, InvalidItemError: a bad query vector.
        """
        q = NearestQuery(
            vector=vector,
            query=query,
            limit=limit,
            filter=filter,
            exact=exact,
            hnsw_ef=hnsw_ef,
            score_threshold=score_threshold,
            with_payload=with_payload,
        )
        return self.query_batch([q])[0]

    def query_batch(
        self, queries: Sequence[NearestQuery | HybridQuery], *, within: Candidates | None = None
    ) -> list[list[Hit]]:
        """Several queries as one batch (cheaper than one call each on Edge).

        Args:
            queries: `NearestQuery` (one named vector) and `HybridQuery` (prefetches, then a
                formula, RRF, DBSF or a rescoring) in any mix.
            within: candidates from `Store.candidates`: every query (and every prefetch of a
                hybrid one) only sees them, besides its own filter.

        Returns:
            One list of hits per query, in order.

        Raises:
            the errors of `query` and `hybrid_query`.
        """
        backend = self._open()
        checked = self._checked(queries)
        if not checked:
            return []
        if within is not None and not within.ids:
            return [[] for _ in checked]
        results = backend.query(self._engine_queries(checked), None if within is None else within.restrict)
        out = []
        for q, hits in zip(checked, results, strict=True):
            row = []
            for h in hits:
                payload = h.payload  # the backend's own copy
                item_id = payload.pop(ITEM_ID_KEY)
                row.append(Hit(id=item_id, score=h.score, payload=_public(payload) if q.with_payload else None))
            out.append(row)
        return out

    def _checked(self, queries: Sequence[NearestQuery | HybridQuery]) -> list[NearestQuery | HybridQuery]:
        checked: list[NearestQuery | HybridQuery] = []
        for q in queries:
            if isinstance(q, HybridQuery):
                checked.append(prepare_hybrid(q, self._schema))
            else:
                if not isinstance(q, NearestQuery):
                    raise InputError(f"expected NearestQuery or HybridQuery objects, got {type(q).__name__}")
                flt = check_filter(q.filter)
                checked.append(prepare_query(q if flt is q.filter else replace(q, filter=flt), self._schema))
        return checked

    def _engine_queries(self, checked: Sequence[NearestQuery | HybridQuery]) -> list[NearestQuery | HybridQuery]:
        """Checked queries as the engine runs them: partial multivectors read in two parts (`maxsim`)."""
        return [
            maxsim.hybrid(q, self._schema) if isinstance(q, HybridQuery) else maxsim.nearest(q, self._schema)
            for q in checked
        ]

    def candidates(self, queries: Sequence[NearestQuery]) -> Candidates:
        """The union of several nearest-neighbour searches' hits, as one batch: a fused query's candidates.

        Reads no payload (the hits' point ids come from the index alone), so it costs less than
        `query_batch`; give the result to `score_items` and `hybrid_query(..., within=...)`, which
        reuse one filter for it. The candidates are in point-id order, whatever the hits' order.

        Raises:
            the errors of `query`.
        """
        backend = self._open()
        checked = self._checked(queries)
        if not all(isinstance(q, NearestQuery) for q in checked):
            raise InputError("candidates takes NearestQuery objects; fuse them with hybrid_query(..., within=...)")
        searches = [part for q in checked for part in maxsim.candidate_queries(q, self._schema)]  # type: ignore[arg-type]
        found = {p for hits in (backend.nearest_ids(searches) if searches else []) for p in hits}
        return self._candidate_set(sorted(found, key=id_order))

    def _candidate_set(self, native_ids: Sequence[Any]) -> Candidates:
        backend = self._open()
        ids = tuple(native_ids)
        return Candidates(ids=ids, restrict=backend.restrict(ids) if ids else None, native=backend.native_id)

    def score_items(self, items: Sequence[str] | Candidates, queries: Sequence[tuple[str, VectorInput]]) -> np.ndarray:
        """The exact score of each item on each query: a (number of items, len(queries)) float64 matrix.

        This is how a candidate set gets its true score on every leg of a fused query, including
        the legs whose own top-k it was not in. NaN marks an item that lacks the vector (or is not
        in the store). On a sparse vector, an item that holds it but shares no index with the
        query scores 0, its true dot product (the engine's search does not return it).

        Args:
            items: the items to score: item ids (repeats allowed), or `Candidates` (rows in their order).
            queries: (stored vector name, query vector) pairs, as in `query`.

        Raises:
            UnknownVectorError, VectorDimensionError, NonFiniteVectorError, InvalidItemError: a bad
                vector name or query vector.
        """
        self._open()
        checked = [prepare_query(NearestQuery(vector=v, query=q), self._schema) for v, q in queries]
        if isinstance(items, Candidates):
            return self._score(items, checked)
        pids = [point_id(i) for i in items]
        unique = list(dict.fromkeys(pids))
        scored = np.full((len(unique), len(checked)), np.nan, dtype=np.float64)
        for start, cands in self._id_chunks(unique):
            scored[start : start + len(cands)] = self._score(cands, checked)
        index = {p: r for r, p in enumerate(unique)}
        return scored[[index[p] for p in pids]]

    def _id_chunks(self, point_ids: Sequence[str]) -> Iterator[tuple[int, Candidates]]:
        """Distinct point ids as candidate sets of at most `_SCORE_CHUNK` (the engine's limit per request)."""
        backend = self._open()
        for start in range(0, len(point_ids), _SCORE_CHUNK):
            chunk = point_ids[start : start + _SCORE_CHUNK]
            yield start, self._candidate_set([backend.native_id(p) for p in chunk])

    def _score(self, cands: Candidates, checked: Sequence[NearestQuery]) -> np.ndarray:
        """Every candidate's exact score on every (checked) query, in one engine call (plus one per sparse vector)."""
        backend = self._open()
        out = np.full((len(cands), len(checked)), np.nan, dtype=np.float64)
        if not len(cands) or not checked:
            return out
        rows = cands.rows
        n = len(cands)
        sparse = sorted({q.vector for q in checked if self._schema.get(q.vector).sparse})
        having = {name: backend.having(cands.restrict, name, n) for name in sparse}
        # A partial multivector (`maxsim`) is scored on its rows where a point has them, else on
        # its pooled vector: two columns for the engine (one while it is pending).
        columns: list[list[tuple[NearestQuery, float]]] = []
        engine: list[NearestQuery] = []
        for q in checked:
            sp = maxsim.split(self._schema, q.vector, q.query)
            parts = [] if sp is None else [(NearestQuery(sp.pooled, sp.query), sp.scale)]
            parts += [(q, 1.0)] if sp is None or sp.stored else []  # the rows last: where a point has them, they win
            columns.append(parts)
            engine += [part for part, _ in parts]
        found = iter(backend.score_points(engine, cands.restrict, n))
        for col, parts in enumerate(columns):
            for p in having.get(checked[col].vector, ()):
                out[rows[p], col] = 0.0
            for _, scale in parts:
                for p, score in next(found).items():
                    out[rows[p], col] = scale * score
        return out

    def can_score_range(self, vector: str) -> bool:
        """Whether `score_range` takes queries on this stored vector: dense cosine or dot ones.

        Raises:
            UnknownVectorError: `vector` is not in the store.
        """
        spec = self._schema.get(vector)
        # The lowest score is found as minus the highest score of the negated query, which holds
        # for a dense cosine or dot product only (not MaxSim, not euclid; not a sparse vector,
        # whose search misses the items that share no index with the query and score 0).
        return spec.kind not in ("multi", "sparse") and spec.distance in ("cosine", "dot")

    def score_range(self, items: Sequence[str] | Candidates, queries: Sequence[tuple[str, VectorInput]]) -> np.ndarray:
        """The lowest and highest exact score among the items, per query: a (len(queries), 2) array.

        Cheaper than `score_items` when only the range is needed (e.g. min-max normalisation):
        the engine scores the items and returns two per query, where `score_items` returns (and
        Python reads) one score per item per query. The lowest score of a cosine or dot query q
        is minus the highest of -q, so dense cosine and dot vectors only. NaN when no item has
        the vector.

        Args:
            items: item ids, or `Candidates` from `Store.candidates`.
            queries: (stored vector name, query vector) pairs, as in `query`.

        Raises:
            InputError: a multivector or euclid vector (their lowest score is not a negated search).
            the errors of `score_items`.
        """
        backend = self._open()
        checked = [prepare_query(NearestQuery(vector=v, query=q), self._schema) for v, q in queries]
        for q in checked:
            if not self.can_score_range(q.vector):
                spec = self._schema.get(q.vector)
                raise InputError(
                    f"score_range needs dense cosine or dot vectors; {q.vector!r} is {spec.kind}, {spec.distance}: "
                    f"use score_items"
                )
        out = np.full((len(checked), 2), np.nan, dtype=np.float64)
        chunks = (
            [(0, items)]
            if isinstance(items, Candidates)
            else self._id_chunks(list(dict.fromkeys(point_id(i) for i in items)))
        )
        negated = [NearestQuery(vector=q.vector, query=-np.asarray(q.query), limit=1) for q in checked]
        for _, cands in chunks:
            if not len(cands) or not checked:
                continue
            found = backend.score_points([*checked, *negated], cands.restrict, 1)
            for j in range(len(checked)):
                hi, lo = found[j].values(), [-v for v in found[len(checked) + j].values()]
                out[j, 0] = np.nanmin([out[j, 0], *lo]) if lo else out[j, 0]
                out[j, 1] = np.nanmax([out[j, 1], *hi]) if hi else out[j, 1]
        return out

    def hybrid_query(self, query: HybridQuery, *, within: Candidates | None = None) -> list[Hit]:
        """A multi-stage query: prefetches fused by a formula, RRF or DBSF, or rescored (e.g. MaxSim).

        See `mmsearch.storage.hybrid` for the fusion definitions and the missing-score trap.

        Args:
            query: the query.
            within: candidates from `Store.candidates`: the query and its prefetches see only them
                (cheaper than a `HasItemId` filter naming them, which is built anew each call).

        Returns:
            Hits best first, scored by the fusion.

        Raises:
            UnknownVectorError: a prefetch, rescoring or `HasVector` names an unknown vector.
            VectorDimensionError, NonFiniteVectorError, InvalidItemError: a bad query vector.
            InputError: no prefetch or a limit below 1.
            InvalidFilterError: a filter that is not a `Filter`.
            ConfigError: a malformed formula, RRF weights or fusion.
        """
        return self.query_batch([query], within=within)[0]

    def candidate_items(self, cands: Candidates, rows: Sequence[int]) -> list[StoredItem]:
        """The candidates at `rows` (their payloads, no vectors), in that order; rows not stored are left out."""
        backend = self._open()
        wanted = [str(cands.ids[r]) for r in rows]
        found = {rec.id: self._item(rec) for rec in backend.retrieve(wanted, False, True)}
        return [found[p] for p in wanted if p in found]

    def delete_vectors(self, item_ids: Iterable[str], names: Iterable[str]) -> int:
        """Remove named vectors from items (e.g. a stale `cf`), keeping their other vectors and payload.

        An encoder key removes both its pooled vector and its multivector. Ids not in the store are
        ignored; removing a vector an item does not have is a no-op.

        Returns:
            The number of items that exist among `item_ids`.

        Raises:
            UnknownVectorError: a name that is not an encoder key, `cf` or a sparse vector.
        """
        backend = self._open()
        stored: list[str] = []
        for name in names:
            spec = self._schema.get(name)
            if spec.kind == "multi":
                raise UnknownVectorError("vector", name, self._schema.input_names)
            multi = [name + MULTI_SUFFIX] if name + MULTI_SUFFIX in self._schema.vectors else []
            stored += [name] if spec.kind in ("cf", "sparse") else [name, *multi]
        ids = [point_id(i) for i in item_ids]
        if not ids or not stored:
            return 0
        existing = self._existing(ids)
        for chunk in _chunks(existing, self._settings.batch_size):
            backend.delete_vectors(chunk, stored)
        return len(existing)

    # -- payload fields --------------------------------------------------------------------------
    def absent_fields(self, filter: Filter | None) -> list[str]:
        """The payload fields a filter tests by value that no stored item has a value for.

        A filter on such a field (most often a typo) matches nothing, or everything when negated.
        Each field costs one lookup (the first item that has it), remembered for the store's
        lifetime once found: about 0.1 ms for a common field; for a field without a payload index
        that few items have (or none), a scan of the payloads (~150 ms per 100,000 items on a
        2-core machine, ~1 ms with a payload index).

        Raises:
            InvalidFilterError: `filter` is not a filter.
        """
        backend = self._open()
        absent = []
        for key in payload_keys(check_filter(filter)):
            if key in self._present:
                continue
            records, _ = backend.scroll(Filter(must_not=(IsEmpty(key),)), 1, None, False, False)
            if records:
                self._present.add(key)
            else:
                absent.append(key)
        return absent

    def payload_fields(self, sample: int = 256) -> list[str]:
        """The catalog payload fields of the first `sample` items (sorted; mmsearch's own left out)."""
        records, _ = self._open().scroll(None, sample, None, False, True)
        return sorted({k for r in records for k in r.payload if not is_internal_key(k)})

    # -- lifetime --------------------------------------------------------------------------------
    def observe(self, callback: Callable[[str, float], None]) -> None:
        """Call `callback(operation, seconds)` after every engine call of this store, e.g. for metrics.

        Operations are the backend's (`query`, `score_points`, `retrieve`, `upsert`, `count`...);
        see `mmsearch.storage.observe`. Observing again replaces the callback.
        """
        from mmsearch.storage.observe import ObservedBackend

        backend = self._open()
        inner = backend._inner if isinstance(backend, ObservedBackend) else backend
        self._backend = ObservedBackend(inner, callback)

    def close(self) -> None:
        """Flush and release the store (and, for Edge, its folder lock). Closing twice is fine."""
        if self._backend is not None:
            backend, self._backend = self._backend, None
            backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._backend.kind if self._backend is not None else "closed"
        return f"Store({state}, collection={self._settings.collection!r}, vectors={self.vector_names})"
