"""Plain data the store takes and returns, and the small contract every backend meets.

`Store` (in `store.py`) is what callers use: it validates, pools, maps item ids to point ids and
batches. A backend only moves already-checked points in and out of one Qdrant engine, in the
engine-neutral types below, and keeps that engine's API quirks to itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from mmsearch.errors import BackendError, ConfigError, StorageError
from mmsearch.storage.filters import Filter
from mmsearch.storage.ids import point_id
from mmsearch.storage.schema import FieldType, StoreSchema, VectorSpec
from mmsearch.storage.settings import BackendKind

if TYPE_CHECKING:
    from mmsearch.storage.hybrid import HybridQuery

WithVectors = bool | Sequence[str]


def check_folder(folder: Path, what: str) -> None:
    """Refuse a folder path that runs through a file (it can never be created).

    Raises:
        ConfigError: `folder`, or a folder above it, is a file.
    """
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                raise ConfigError(
                    f"the {what} folder {str(folder)!r} cannot be made: {str(part)!r} is a file; give a folder "
                    f"path (--store DIR, or [store] path)"
                )
            return


@dataclass(frozen=True, eq=False)
class SparseVector:
    """A sparse vector: values at a few integer indices, every other value 0 (Qdrant sparse vectors).

    Sparse vectors are scored by dot product over the indices both sides hold. The store checks
    them on the way in (`mmsearch.storage.validate.as_sparse`): indices unique in [0, 2**32),
    values finite; it keeps them sorted by index, as uint32 and float32 arrays.

    Attributes:
        indices: the indices of the non-zero values.
        values: one value per index.
    """

    indices: np.ndarray | Sequence[int]
    values: np.ndarray | Sequence[float]

    @classmethod
    def from_dict(cls, values: Mapping[int, float]) -> SparseVector:
        """From `{index: value}`."""
        return cls(list(values), list(values.values()))

    def to_dict(self) -> dict[int, float]:
        """`{index: value}`."""
        return {int(i): float(v) for i, v in zip(np.asarray(self.indices), np.asarray(self.values), strict=True)}

    def dot(self, other: SparseVector) -> float:
        """The dot product with another sparse vector, as the engine scores them."""
        mine = self.to_dict()
        return float(sum(v * mine[i] for i, v in other.to_dict().items() if i in mine))

    def __len__(self) -> int:
        return len(self.indices)


VectorInput = np.ndarray | Sequence[float] | Sequence[Sequence[float]] | SparseVector


@dataclass(frozen=True)
class Item:
    """One catalogue item to store.

    Attributes:
        id: the item id (a string; mapped to a deterministic point id).
        vectors: encoder key (`<model>.<modality>`) -> its rows, shape (n, dim) with one row per photo
            or text (a single (dim,) vector counts as one row); optionally `cf` -> (cf_dim,); and
            a `SparseVector` for each sparse vector of the collection (e.g. `ease`). The store
            derives the pooled vector and the MaxSim multivector from the rows.
        payload: JSON-able fields kept with the item; `item_id` is reserved.
    """

    id: str
    vectors: Mapping[str, VectorInput] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VectorUpdate:
    """New values for some vectors of an existing item; its other vectors and payload stay."""

    id: str
    vectors: Mapping[str, VectorInput]


@dataclass(frozen=True)
class StoredItem:
    """An item read back from the store.

    Attributes:
        id: the item id.
        payload: the stored payload without the reserved `item_id` key ({} when not asked for).
        vectors: stored vector name -> float32 array ((dim,) dense, (n, dim) multivector); only the
            names asked for. Cosine vectors come back unit-normalised, as the engine stores them.
        sparse: sparse vector name -> its `SparseVector` (only the names asked for that the item has).
    """

    id: str
    payload: dict[str, Any]
    vectors: dict[str, np.ndarray]
    sparse: dict[str, SparseVector] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result: the item id, its score (higher is better) and payload if asked for."""

    id: str
    score: float
    payload: dict[str, Any] | None = None


@dataclass(frozen=True)
class ScrollPage:
    """One page of a scroll. `next_offset` is an opaque cursor for the next page, None at the end."""

    items: list[StoredItem]
    next_offset: str | None


@dataclass(frozen=True)
class NearestQuery:
    """A nearest-neighbour query by one named vector.

    Attributes:
        vector: the stored vector name to search (`<model>.<modality>`, `....multi`, `cf`, or a
            sparse vector such as `ease`).
        query: (dim,) for dense vectors; (n, dim) for a MaxSim multivector ((dim,) counts as one
            row); a `SparseVector` for a sparse vector (only items sharing an index with it are found).
        limit: results wanted.
        filter: payload filter, or None.
        exact: exact search, bypassing HNSW (and quantization).
        hnsw_ef: search-time ef; None uses the store settings.
        score_threshold: drop results scoring below this.
        with_payload: return payloads with the hits.
        rescore: in a quantized store, rescore the hits with the original vectors (oversampled);
            False keeps the quantized scores and reads no original, e.g. to gather candidates that
            are scored exactly later.
    """

    vector: str
    query: VectorInput
    limit: int = 10
    filter: Filter | None = None
    exact: bool = False
    hnsw_ef: int | None = None
    score_threshold: float | None = None
    with_payload: bool = False
    rescore: bool = True


@dataclass(frozen=True)
class Point:
    """A checked point ready for the engine: point id, vectors by stored name, full payload."""

    id: str
    vectors: Mapping[str, np.ndarray | SparseVector]
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RawRecord:
    """A point as a backend returns it: point id, payload (with `item_id`), vectors asked for (dense, sparse)."""

    id: str
    payload: dict[str, Any]
    vectors: dict[str, np.ndarray]
    sparse: dict[str, SparseVector] = field(default_factory=dict)


class RawHit(NamedTuple):
    """A scored point as a backend returns it: its item id is in the payload.

    No point id: the store never needs one, and reading it costs a UUID object per hit on Edge. A
    named tuple, built in C: a search makes one per hit, and a frozen dataclass costs 3x more.
    """

    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, eq=False)
class Candidates:
    """Points several searches found, by the engine's own point ids, in a fixed order.

    From `Store.candidates`; `Store.score_items` and `Store.hybrid_query(..., within=...)` take it
    in place of item ids, so a fused query names its candidates once: no payload read to learn
    their item ids, no id hashing, and one engine filter (`restrict`) shared by every later call.

    Attributes:
        ids: the engine's point ids (`uuid.UUID` on Edge, strings on qdrant-client).
        restrict: the engine's filter keeping just these points (None when there are none).
        native: maps a point id string to the engine's id type.
    """

    ids: tuple[Any, ...]
    restrict: Any
    native: Callable[[str], Any]
    rows: dict[Any, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", {p: r for r, p in enumerate(self.ids)})

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, item_id: str) -> int:
        """The row of an item among the candidates.

        Raises:
            KeyError: the item is not one of them.
        """
        return self.rows[self.native(point_id(item_id))]


class Backend(Protocol):
    """One Qdrant engine behind the store. Inputs are already validated by `Store`.

    Records and hits always carry `item_id` in their payload; `with_payload=False` means only it.
    """

    @property
    def kind(self) -> BackendKind:
        """`edge`, `server` or `memory`."""
        ...

    @property
    def explicit_optimize(self) -> bool:
        """True when HNSW graphs are built only by `optimize()` (Edge)."""
        ...

    def sidecar_folder(self, name: str) -> Path | None:
        """The local folder for files kept with the collection under `name`, or None when there is none."""
        ...

    def read_schema(self) -> StoreSchema | None:
        """The schema recorded with the collection, or None if the collection does not exist."""
        ...

    def create(self, schema: StoreSchema) -> None:
        """Create the collection with all of `schema`'s vectors and payload indexes, and record it."""
        ...

    def extend(
        self, schema: StoreSchema, new_vectors: Sequence[VectorSpec], new_indexes: Mapping[str, FieldType]
    ) -> None:
        """Add vectors and payload indexes to an existing collection (others untouched), then record `schema`."""
        ...

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace whole points."""
        ...

    def update_vectors(self, points: Sequence[Point]) -> None:
        """Replace some named vectors of existing points, leaving their other vectors and payload."""
        ...

    def delete_ids(self, point_ids: Sequence[str]) -> None: ...

    def delete_filter(self, flt: Filter) -> None: ...

    def count(self, flt: Filter | None) -> int: ...

    def retrieve(self, point_ids: Sequence[str], with_vectors: WithVectors, with_payload: bool) -> list[RawRecord]:
        """The points that exist among `point_ids`, in any order."""
        ...

    def scroll(
        self, flt: Filter | None, limit: int, offset: str | None, with_vectors: WithVectors, with_payload: bool
    ) -> tuple[list[RawRecord], str | None]:
        """Points in point-id order from `offset`, and the next page's offset."""
        ...

    def query(self, queries: Sequence[NearestQuery | HybridQuery], within: Any = None) -> list[list[RawHit]]:
        """Run nearest-neighbour and hybrid queries (already validated, vectors as float32 arrays) as one batch.

        `within`: a filter from `restrict`, applied to every query besides its own filter.
        """
        ...

    def nearest_ids(self, queries: Sequence[NearestQuery]) -> list[list[Any]]:
        """Each query's hits as the engine's point ids, best first, reading no payload."""
        ...

    def native_id(self, point_id: str) -> Any:
        """A point id string in the engine's own id type (the type `nearest_ids` returns)."""
        ...

    def restrict(self, point_ids: Sequence[Any]) -> Any:
        """The engine's filter keeping just these points (engine ids), to pass to later calls."""
        ...

    def score_points(self, queries: Sequence[NearestQuery], within: Any, limit: int) -> list[dict[Any, float]]:
        """Exact scores of the `limit` points a `restrict` filter keeps, for each query (engine id -> score).

        Points lacking the vector are left out; a sparse query finds only the points sharing an
        index with it.
        """
        ...

    def having(self, within: Any, vector: str, limit: int) -> set[Any]:
        """The engine ids of the points a `restrict` filter keeps (at most `limit`) that hold the named vector."""
        ...

    def delete_vectors(self, point_ids: Sequence[str], names: Sequence[str]) -> None:
        """Remove some named vectors from existing points, leaving their other vectors and payload."""
        ...

    def optimize(self) -> bool:
        """Build pending indexes; True if anything was done."""
        ...

    def close(self) -> None: ...


@contextlib.contextmanager
def engine_errors(engine: str, op: str) -> Iterator[None]:
    """Turn an engine's untyped exceptions into `BackendError` naming the engine and the operation.

    mmsearch's own `StorageError`s (a closed store, a locked folder) pass through unchanged.
    """
    try:
        yield
    except StorageError:
        raise
    except Exception as e:
        raise BackendError(f"{engine} {op} failed: {e}") from e
