"""Check whole batches before anything is written, and turn items into engine-ready points.

A batch is refused as a whole: every item is checked (and pooled) first, so a bad item leaves
the store exactly as it was.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from mmsearch.errors import (
    DuplicateIdError,
    EmptyBatchError,
    InputError,
    InvalidItemError,
    NonFiniteVectorError,
    UnknownVectorError,
    VectorDimensionError,
    listed,
)
from mmsearch.storage.base import Item, NearestQuery, Point, SparseVector, VectorInput, VectorUpdate
from mmsearch.storage.ids import ITEM_ID_KEY, check_item_id, point_id
from mmsearch.storage.schema import MULTI_SUFFIX, StoreSchema, VectorSpec, is_lazy_multi

_MAX_ROWS = 4096
_MAX_SPARSE_INDEX = 2**32 - 1  # Qdrant sparse indices are u32


def _where(item_id: str | None) -> str:
    return f"item {item_id!r}: " if item_id is not None else ""


def as_rows(name: str, value: VectorInput, spec: VectorSpec, item_id: str | None = None) -> np.ndarray:
    """`value` as a float32 (n, dim) array of finite rows (a (dim,) vector is one row).

    Raises:
        InvalidItemError: not numeric, not 1-D or 2-D, no rows, too many rows, or a zero row where
            the distance is cosine.
        VectorDimensionError: rows of the wrong length.
        NonFiniteVectorError: a NaN or infinity (also a float64 too large for float32).
    """
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        arr = value  # the common case, without the cost of an error-state context per query
    else:
        try:
            with np.errstate(over="ignore"):
                arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise InvalidItemError(f"{_where(item_id)}vector {name!r} is not a numeric array: {e}") from e
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidItemError(
            f"{_where(item_id)}vector {name!r} has shape {arr.shape}; expected ({spec.dim},) or (rows, {spec.dim})"
        )
    if arr.shape[1] != spec.dim:
        raise VectorDimensionError(
            f"{_where(item_id)}vector {name!r} has {arr.shape[1]} values per row, expected {spec.dim}"
        )
    if arr.shape[0] == 0 or arr.shape[0] > _MAX_ROWS:
        raise InvalidItemError(
            f"{_where(item_id)}vector {name!r} has {arr.shape[0]} rows; give 1 to {_MAX_ROWS} "
            f"(leave the key out when an item has none)"
        )
    if arr.shape[0] == 1 and math.isfinite(square := float(arr[0] @ arr[0])) and square > 0:
        return arr  # one dot product proves a single row finite and non-zero; the checks below name what is wrong
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteVectorError(
            f"{_where(item_id)}vector {name!r} holds {arr[row, col]} at row {row}, column {col}; vectors must be finite"
        )
    if spec.distance == "cosine":
        zero = np.flatnonzero(~np.any(arr, axis=1))
        if zero.size:
            raise InvalidItemError(
                f"{_where(item_id)}vector {name!r} row {int(zero[0])} is all zeros; cosine needs a non-zero vector"
            )
    return arr


def as_sparse(name: str, value: object, item_id: str | None = None) -> SparseVector:
    """`value` as a checked `SparseVector`: uint32 indices, unique and ascending, finite float32 values.

    Raises:
        InvalidItemError: not a `SparseVector`, no index, indices and values of different lengths,
            an index that is not an integer in [0, 2**32), or an index given twice.
        NonFiniteVectorError: a NaN or infinite value.
    """
    where = f"{_where(item_id)}sparse vector {name!r}"
    if not isinstance(value, SparseVector):
        raise InvalidItemError(f"{where} must be a SparseVector(indices, values), got {type(value).__name__}")
    try:
        raw = np.asarray(value.indices)
        with np.errstate(over="ignore"):
            values = np.asarray(value.values, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as e:
        raise InvalidItemError(f"{where} is not numeric: {e}") from e
    if raw.ndim != 1 or raw.shape != values.shape or raw.size == 0:
        raise InvalidItemError(
            f"{where} has {raw.size} indices and {values.size} values; give one value per index, at least one "
            f"(leave the key out when an item has none)"
        )
    if raw.dtype.kind not in "iu" or raw.min() < 0 or raw.max() > _MAX_SPARSE_INDEX:
        raise InvalidItemError(f"{where}: indices must be integers in [0, 2**32), got {raw[:5].tolist()}...")
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise NonFiniteVectorError(f"{where} holds {values[bad]} at index {int(raw[bad])}; vectors must be finite")
    order = np.argsort(raw, kind="stable")
    indices = raw[order].astype(np.uint32)
    if np.any(indices[1:] == indices[:-1]):
        repeated = int(indices[1:][indices[1:] == indices[:-1]][0])
        raise InvalidItemError(f"{where} gives index {repeated} twice; give each index once")
    return SparseVector(indices, values[order])


def pool(rows: np.ndarray) -> np.ndarray | None:
    """The mean of `rows`, re-normalised to unit length; None when the mean is the zero vector."""
    mean = rows.astype(np.float64).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm == 0.0 or not np.isfinite(norm):
        return None
    return (mean / norm).astype(np.float32)


def _input_spec(schema: StoreSchema, name: object, item_id: str | None) -> VectorSpec:
    spec = schema.vectors.get(name) if isinstance(name, str) else None
    if spec is None or spec.kind == "multi":
        err = UnknownVectorError("vector", str(name), schema.input_names)
        if isinstance(name, str) and name.endswith(MULTI_SUFFIX) and (spec is not None or name in schema.pending):
            hint = f" (pass the rows under {name[: -len(MULTI_SUFFIX)]!r}; the store fills the multivector)"
        else:
            hint = ""
        err.args = (f"{_where(item_id)}{err.args[0]}{hint}",)
        raise err
    return spec


def named_vectors(
    vectors: Mapping[str, VectorInput], schema: StoreSchema, item_id: str | None = None
) -> dict[str, np.ndarray | SparseVector]:
    """Stored vectors (by stored name) from an item's input vectors.

    An encoder key's rows become its pooled vector and its `.multi` multivector (for a cosine
    encoder only when there are several rows: the pooled vector is the one row); `cf` and sparse
    vectors are kept as they are (checked). A `.multi` may be one the schema has pending.

    Raises:
        UnknownVectorError: a key that is not an encoder key, `cf` or a sparse vector.
        InvalidItemError, VectorDimensionError, NonFiniteVectorError: see `as_rows` and `as_sparse`.
    """
    if not isinstance(vectors, Mapping):
        raise InvalidItemError(
            f"{_where(item_id)}vectors must be a mapping of name -> array, got {type(vectors).__name__}"
        )
    out: dict[str, np.ndarray | SparseVector] = {}
    for name, value in vectors.items():
        spec = _input_spec(schema, name, item_id)
        if spec.sparse:
            out[name] = as_sparse(name, value, item_id)
            continue
        if isinstance(value, SparseVector):
            raise InvalidItemError(f"{_where(item_id)}vector {name!r} is dense: give an array, not a SparseVector")
        rows = as_rows(name, value, spec, item_id)
        if spec.kind == "cf":
            if rows.shape[0] != 1:
                raise InvalidItemError(f"{_where(item_id)}vector 'cf' has {rows.shape[0]} rows; cf is one vector")
            out[name] = rows[0]
            continue
        pooled = pool(rows)
        if pooled is None:
            raise InvalidItemError(
                f"{_where(item_id)}vector {name!r}: its {rows.shape[0]} rows average to the zero vector, "
                f"which has no direction to store"
            )
        out[name] = pooled
        multi = schema.vectors.get(name + MULTI_SUFFIX) or schema.pending.get(name + MULTI_SUFFIX)
        # One row is its pooled vector, which serves MaxSim for it (`mmsearch.storage.maxsim`).
        if multi is not None and (rows.shape[0] > 1 or not is_lazy_multi(multi)):
            out[multi.name] = rows
    return out


def _check_payload(payload: object, item_id: str) -> dict[str, Any]:
    if not isinstance(payload, Mapping) or not all(isinstance(k, str) for k in payload):
        raise InvalidItemError(f"{_where(item_id)}payload must be a mapping with string keys, got {payload!r:.200}")
    if ITEM_ID_KEY in payload:
        raise InvalidItemError(f"{_where(item_id)}payload key {ITEM_ID_KEY!r} is reserved for the item id")
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidItemError(
            f"{_where(item_id)}payload is not JSON-able (plain str/int/float/bool/list/dict): {e}"
        ) from e
    return dict(payload)


_Entry = TypeVar("_Entry", Item, VectorUpdate)


def _check_batch(batch: Sequence[object], kind: type[_Entry], what: str) -> list[_Entry]:
    """The batch, each entry a `kind` with a usable id, at least one, no id twice."""
    checked: list[_Entry] = []
    for entry in batch:
        if not isinstance(entry, kind):
            raise InvalidItemError(f"expected {kind.__name__} objects, got {type(entry).__name__}: {entry!r:.200}")
        check_item_id(entry.id)
        checked.append(entry)
    if not checked:
        raise EmptyBatchError(f"no {what} given; a write needs at least one")
    dups = [i for i, n in Counter(e.id for e in checked).items() if n > 1]
    if dups:
        raise DuplicateIdError(f"{len(dups)} item id(s) appear more than once in one batch: {listed(dups)}")
    return checked


def prepare_items(items: Sequence[Item], schema: StoreSchema) -> list[Point]:
    """Check a batch of items and build their points (pooled vectors computed).

    Raises:
        EmptyBatchError, DuplicateIdError, InvalidItemError, VectorDimensionError,
        NonFiniteVectorError, UnknownVectorError: the whole batch is refused.
    """
    points = []
    for it in _check_batch(items, Item, "items"):
        payload = _check_payload(it.payload, it.id)
        vectors = named_vectors(it.vectors, schema, it.id)
        points.append(Point(id=point_id(it.id), vectors=vectors, payload={**payload, ITEM_ID_KEY: it.id}))
    return points


def prepare_updates(updates: Sequence[VectorUpdate], schema: StoreSchema) -> list[Point]:
    """Check a batch of vector updates and build their (payload-less) points.

    Raises:
        the same errors as `prepare_items`, and InvalidItemError for an update without vectors.
    """
    points = []
    for up in _check_batch(updates, VectorUpdate, "updates"):
        if not up.vectors:
            raise InvalidItemError(f"{_where(up.id)}update has no vectors; known: {', '.join(schema.input_names)}")
        points.append(Point(id=point_id(up.id), vectors=named_vectors(up.vectors, schema, up.id)))
    return points


def prepare_query(query: NearestQuery, schema: StoreSchema) -> NearestQuery:
    """A copy of `query` with its vector as a float32 array of the right shape, or a checked `SparseVector`.

    Raises:
        UnknownVectorError: the vector name is not in the store.
        InvalidItemError, VectorDimensionError, NonFiniteVectorError: a bad query vector.
        InputError: a limit below 1.
    """
    spec = schema.get(query.vector)
    if not isinstance(query.limit, int) or query.limit < 1:
        raise InputError(f"query limit {query.limit!r} must be a positive integer")
    if spec.sparse:
        return replace(query, query=as_sparse(query.vector, query.query))
    if isinstance(query.query, SparseVector):
        raise InvalidItemError(f"vector {query.vector!r} is dense: query it with an array, not a SparseVector")
    rows = as_rows(query.vector, query.query, spec)
    if spec.kind == "multi":
        return replace(query, query=rows)
    if rows.shape[0] != 1:
        raise InvalidItemError(
            f"vector {query.vector!r} is dense: query it with one ({spec.dim},) vector, got {rows.shape[0]} rows"
        )
    if rows.base is query.query and rows.dtype == query.query.dtype:  # given as a float32 (dim,) array already
        return query
    return replace(query, query=rows[0])
