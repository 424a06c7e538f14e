"""Storage: items with named vectors in Qdrant, behind one interface (`Store`) on three backends.

- `edge` (default): Qdrant Edge, the Qdrant engine in-process, in a local folder; no server.
- `server`: a Qdrant server or cluster through qdrant-client.
- `memory`: qdrant-client's pure-Python local mode (exact search; tests and toy setups only).

Example:
    from mmsearch.storage import Item, StoreSettings, open_store

    with open_store(StoreSettings(path="data"), encoders=[clip_image.spec, clip_text.spec]) as store:
        store.upsert([Item("sku-1", {"clip.image": photos, "clip.text": texts}, {"color": "red"})])
        store.optimize()
        hits = store.query("clip.image", clip_text.embed(["a red bicycle"])[0], limit=5)

Multi-stage queries (prefetches fused by a formula, RRF or DBSF, or a MaxSim rescoring) are
`HybridQuery` objects, run by `store.hybrid_query(...)`; see `mmsearch.storage.hybrid`.

Importing this package loads neither qdrant_client nor qdrant_edge; `open_store` loads the one
its backend needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from indexers.protocol import EncoderSpec
from mmsearch.errors import StoreNotFoundError
from mmsearch.storage.base import (
    Backend,
    Candidates,
    Hit,
    Item,
    NearestQuery,
    ScrollPage,
    SparseVector,
    StoredItem,
    VectorUpdate,
)
from mmsearch.storage.filters import Filter, HasItemId, IsEmpty, Match, MatchAny, Range, check_filter, where
from mmsearch.storage.hybrid import (
    Const,
    Dbsf,
    Div,
    Formula,
    HasVector,
    HybridQuery,
    Mult,
    Prefetch,
    Rescore,
    Rrf,
    Score,
    Sum,
    weighted_sum_formula,
)
from mmsearch.storage.ids import ITEM_ID_KEY, ITEM_NAMESPACE, point_id
from mmsearch.storage.schema import (
    CF_VECTOR,
    EASE_VECTOR,
    ModelRecord,
    StoreSchema,
    VectorSpec,
    encoder_vectors,
    multi_name,
    plan_schema,
    pooled_name,
)
from mmsearch.storage.settings import HnswSettings, StoreSettings, load_settings
from mmsearch.storage.store import Store


def make_backend(settings: StoreSettings) -> Backend:
    """The backend for `settings.backend`, opened (for Edge: its folder locked) but not yet set up.

    Raises:
        DependencyError: the backend's package is not installed.
        StoreLockedError: the Edge folder (or local-mode path) is open elsewhere.
    """
    if settings.backend == "edge":
        from mmsearch.storage.edge import EdgeBackend

        return EdgeBackend(settings)
    from mmsearch.storage.client import ClientBackend

    return ClientBackend(settings)


def open_store(
    settings: StoreSettings | Mapping[str, Any] | None = None,
    encoders: Sequence[EncoderSpec] | None = None,
    **overrides: Any,
) -> Store:
    """Open a store, creating its collection or adding new encoders' vectors as needed.

    Args:
        settings: store settings (or a mapping of them); None for the defaults (Edge in ./mmsearch-data).
        encoders: specs of the encoders whose vectors the collection must hold. A new collection is
            created with them (an empty list gives a `cf`-only collection); an existing one gets the
            vectors of encoders it lacks, and the others are checked against its record. None opens an
            existing collection as it is.
        **overrides: settings fields that replace those in `settings` (e.g. `path=...`).

    Returns:
        The open store; close it (or use it as a context manager) to release it.

    Raises:
        ConfigError: invalid settings.
        StoreNotFoundError: `encoders` is None and the collection does not exist.
        FingerprintMismatchError: an encoder's fingerprint differs from the one recorded for its vector.
        SchemaMismatchError: a dim, distance, cf_dim or payload index type differs from the record.
        StoreLockedError: the Edge folder is open in another process or store.
        DependencyError: the backend's package is not installed.
        BackendError: the engine failed or the server could not be reached.
    """
    s = load_settings(settings, **overrides)
    backend = make_backend(s)
    try:
        existing = backend.read_schema()
        if existing is None and encoders is None:
            where = s.url if s.backend == "server" else (s.data_path or "memory")
            raise StoreNotFoundError(
                f"no collection {s.collection!r} at {where}: index a catalog into it first (mmsearch index "
                f"CATALOG --model DIR, or Index.open), check the store path and collection name, or pass "
                f"encoders=[...] to create an empty one"
            )
        plan = plan_schema(
            existing,
            encoders or (),
            cf_dim=s.cf_dim,
            payload_indexes=s.payload_indexes,
            index_multivector=s.index_multivectors,
        )
        if existing is None:
            backend.create(plan.schema)
        elif plan.new_vectors or plan.new_indexes:
            backend.extend(plan.schema, plan.new_vectors, plan.new_indexes)
    except BaseException:
        backend.close()
        raise
    # Creating may adopt a shard left by a create that died, with what it already holds.
    return Store(backend, (backend.read_schema() or plan.schema) if existing is None else plan.schema, s)


__all__ = [
    "CF_VECTOR",
    "Candidates",
    "EASE_VECTOR",
    "ITEM_ID_KEY",
    "ITEM_NAMESPACE",
    "Const",
    "Dbsf",
    "Div",
    "Filter",
    "Formula",
    "HasItemId",
    "HasVector",
    "Hit",
    "HnswSettings",
    "HybridQuery",
    "IsEmpty",
    "Item",
    "Match",
    "MatchAny",
    "ModelRecord",
    "Mult",
    "NearestQuery",
    "Prefetch",
    "Range",
    "Rescore",
    "Rrf",
    "Score",
    "ScrollPage",
    "SparseVector",
    "Store",
    "StoreSchema",
    "StoreSettings",
    "StoredItem",
    "Sum",
    "VectorSpec",
    "VectorUpdate",
    "check_filter",
    "encoder_vectors",
    "load_settings",
    "make_backend",
    "multi_name",
    "open_store",
    "plan_schema",
    "point_id",
    "pooled_name",
    "weighted_sum_formula",
    "where",
]
