"""The columns the embed step adds to each row, and the Arrow encoding both engines carry them in.

Ray Data blocks and Spark's `mapInArrow` batches are Arrow tables, so one encoding serves both:

| column | Arrow type | holds |
| --- | --- | --- |
| `mm_id` | string | the item id as validated (null when the row has no readable id) |
| `mm_status` | string | `new`, `changed`, `unchanged`, `skipped` (bad input) or `failed` (the encoder failed) |
| `mm_hash` | string | the content hash, the same one `mmsearch index` stores (null for bad rows) |
| `mm_payload` | string | the payload to store, as JSON (`new` and `changed` rows only) |
| `mm_error_kind`, `mm_error` | string | the error log's kind and reason (`skipped` and `failed` rows) |
| `mm_<model>_<modality>` | list<list<float32>> | one vector per image or text of the item, e.g. `mm_clip_image` |

Vector columns are named by `vector_column`: letters, digits and `_` only, so Spark SQL, `select`
and a later `mapInArrow` take them without backticks (a dotted `clip.image` column would be read
as a struct field). Nothing here imports pyarrow until a function is called.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmsearch.errors import ConfigError, DependencyError

ID_COLUMN = "mm_id"
STATUS_COLUMN = "mm_status"
HASH_COLUMN = "mm_hash"
PAYLOAD_COLUMN = "mm_payload"
ERROR_KIND_COLUMN = "mm_error_kind"
ERROR_COLUMN = "mm_error"
TEXT_COLUMNS = (ID_COLUMN, STATUS_COLUMN, HASH_COLUMN, PAYLOAD_COLUMN, ERROR_KIND_COLUMN, ERROR_COLUMN)

NEW, CHANGED, UNCHANGED, SKIPPED, FAILED = "new", "changed", "unchanged", "skipped", "failed"
STATUSES = (NEW, CHANGED, UNCHANGED, SKIPPED, FAILED)
EMBEDDED = (NEW, CHANGED)


def import_arrow() -> Any:
    """The `pyarrow` module.

    Raises:
        DependencyError: it is not installed; the message says how to install it.
    """
    try:
        import pyarrow
    except ImportError as e:
        raise DependencyError("Ray and Spark indexing need pyarrow: pip install 'mmsearch[distributed]'") from e
    return pyarrow


def vector_column(key: str) -> str:
    """The column holding a vector key's rows: `clip-tiny.image` -> `mm_clip_tiny_image`."""
    return "mm_" + re.sub(r"[^0-9A-Za-z_]", "_", key)


def vector_columns(keys: Iterable[str]) -> dict[str, str]:
    """Vector key -> its column, for the keys of one job.

    Raises:
        ConfigError: two keys would share a column (e.g. models named `clip-a` and `clip_a`).
    """
    out: dict[str, str] = {}
    owners: dict[str, str] = {}
    for key in keys:
        col = vector_column(key)
        if col in owners or col in TEXT_COLUMNS:
            other = owners.get(col, "mmsearch's own column")
            raise ConfigError(
                f"vectors {other!r} and {key!r} would both be column {col!r}; export one of the models "
                f"under another name"
            )
        owners[col] = key
        out[key] = col
    return out


@dataclass(frozen=True)
class EmbeddedRow:
    """What the embed step decided for one input row.

    Attributes:
        id: the item id (None when the row has no readable id).
        status: one of `STATUSES`.
        hash: the content hash (None for a bad row).
        payload: what to store with the item (`new` and `changed` rows only).
        vectors: vector key -> (rows, dim) float32 (`new` and `changed` rows only).
        error_kind, error: the error log's kind and reason (`skipped` and `failed` rows).
    """

    id: str | None
    status: str
    hash: str | None = None
    payload: Mapping[str, Any] | None = None
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    error_kind: str | None = None
    error: str | None = None


def arrow_fields(columns: Mapping[str, str]) -> list[Any]:
    """The Arrow fields the embed step appends, in order (`columns`: vector key -> column)."""
    pa = import_arrow()
    vector_type = pa.list_(pa.list_(pa.float32()))
    return [pa.field(c, pa.string()) for c in TEXT_COLUMNS] + [pa.field(c, vector_type) for c in columns.values()]


def check_no_clash(names: Iterable[str], columns: Mapping[str, str]) -> None:
    """Refuse input rows that already have a column the embed step would add.

    Raises:
        ConfigError: naming the column.
    """
    ours = set(TEXT_COLUMNS) | set(columns.values())
    clash = sorted(ours.intersection(names))
    if clash:
        raise ConfigError(
            f"the rows already have column(s) {clash}, which the embed step adds; drop or rename them "
            f"(were these rows embedded already?)"
        )


def _vector_array(rows: Sequence[EmbeddedRow], key: str, dim: int) -> Any:
    pa = import_arrow()
    parts = [r.vectors[key] for r in rows if key in r.vectors]
    flat = np.concatenate([p.reshape(-1) for p in parts]).astype(np.float32, copy=False) if parts else np.empty(0)
    counts = [len(r.vectors[key]) if key in r.vectors else 0 for r in rows]
    outer = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    inner = np.arange(0, int(outer[-1]) * dim + 1, dim, dtype=np.int32)
    vectors = pa.ListArray.from_arrays(pa.array(inner), pa.array(flat, pa.float32()))
    missing = pa.array([key not in r.vectors for r in rows])
    return pa.ListArray.from_arrays(pa.array(outer), vectors, mask=missing)


def append_columns(table: Any, rows: Sequence[EmbeddedRow], columns: Mapping[str, str], dims: Mapping[str, int]) -> Any:
    """`table` (pyarrow Table or RecordBatch) with the embed step's columns appended, one row per row."""
    pa = import_arrow()
    text = {
        ID_COLUMN: [r.id for r in rows],
        STATUS_COLUMN: [r.status for r in rows],
        HASH_COLUMN: [r.hash for r in rows],
        PAYLOAD_COLUMN: [None if r.payload is None else json.dumps(r.payload, allow_nan=False) for r in rows],
        ERROR_KIND_COLUMN: [r.error_kind for r in rows],
        ERROR_COLUMN: [r.error for r in rows],
    }
    arrays = [pa.array(text[c], pa.string()) for c in TEXT_COLUMNS]
    arrays += [_vector_array(rows, key, dims[key]) for key in columns]
    fields = arrow_fields(columns)
    if isinstance(table, pa.RecordBatch):
        return pa.RecordBatch.from_arrays([*table.columns, *arrays], schema=pa.schema([*table.schema, *fields]))
    for f, array in zip(fields, arrays, strict=True):
        table = table.append_column(f, array)
    return table


def _vectors_of(column: Any, dim: int, key: str) -> list[np.ndarray | None]:
    """Each row's (rows, dim) matrix from a list<list<float>> column (None where null)."""
    pa = import_arrow()
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_null(array.type):  # no row has vectors (all unchanged or bad), typed by pandas as null
        return [None] * len(array)
    if not pa.types.is_list(array.type) and not pa.types.is_large_list(array.type):
        return [_matrix(v, dim, key) for v in array.to_pylist()]  # e.g. Ray's tensor columns, from numpy batches
    inner = array.flatten()
    flat = inner.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    lengths = inner.value_lengths().to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != dim).any():
        raise ConfigError(f"column {vector_column(key)!r} holds vectors of length {sorted(set(lengths))}, not {dim}")
    offsets = array.offsets.to_numpy() - array.offsets[0].as_py()
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return [
        flat[offsets[i] * dim : offsets[i + 1] * dim].reshape(-1, dim) if valid[i] else None for i in range(len(array))
    ]


def _matrix(value: Any, dim: int, key: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        return np.asarray(value, dtype=np.float32).reshape(-1, dim)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"column {vector_column(key)!r} holds {str(value)[:60]!r}, not rows of {dim} floats") from e


def read_rows(table: Any, columns: Mapping[str, str], dims: Mapping[str, int]) -> list[EmbeddedRow]:
    """The `EmbeddedRow`s of an embedded table (Ray block or Spark batch); other columns are ignored.

    Raises:
        ConfigError: the table lacks the embed step's columns (it was not embedded by this job's models).
    """
    names = set(table.schema.names)
    missing = [c for c in (*TEXT_COLUMNS, *columns.values()) if c not in names]
    if missing:
        raise ConfigError(
            f"the rows to write lack column(s) {missing}: embed them first with this job's EmbedBatch "
            f"(Ray) or embed function (Spark); their columns are {sorted(names)[:20]}"
        )
    text = {c: table.column(c).to_pylist() for c in TEXT_COLUMNS}
    vectors = {key: _vectors_of(table.column(col), dims[key], key) for key, col in columns.items()}
    out = []
    for i in range(table.num_rows):
        payload = text[PAYLOAD_COLUMN][i]
        out.append(
            EmbeddedRow(
                id=text[ID_COLUMN][i],
                status=text[STATUS_COLUMN][i],
                hash=text[HASH_COLUMN][i],
                payload=None if payload is None else json.loads(payload),
                vectors={k: v[i] for k, v in vectors.items() if v[i] is not None},  # type: ignore[misc]
                error_kind=text[ERROR_KIND_COLUMN][i],
                error=text[ERROR_COLUMN][i],
            )
        )
    return out


def to_arrow(batch: Any) -> Any:
    """A batch as a pyarrow Table or RecordBatch: Arrow as it is; pandas and dict-of-columns converted.

    Raises:
        ConfigError: any other type.
    """
    pa = import_arrow()
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        return batch
    if isinstance(batch, Mapping):
        return pa.table({str(k): _column(v) for k, v in batch.items()})
    if hasattr(batch, "columns") and hasattr(batch, "iloc"):  # a pandas DataFrame; NaN becomes null
        return pa.Table.from_pandas(batch, preserve_index=False)
    raise ConfigError(
        f"a batch must be a pyarrow Table or RecordBatch, a pandas DataFrame or a dict of columns, "
        f"got {type(batch).__name__}"
    )


def _column(values: Any) -> Any:
    """One column of a dict batch (Ray's "numpy" format) as Arrow; NaN is null, as pandas means it."""
    pa = import_arrow()
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 1:
        return pa.array(values, from_pandas=True)
    return pa.array([v.tolist() if isinstance(v, np.ndarray) else v for v in values], from_pandas=True)


def like(batch: Any, table: Any) -> Any:
    """`table` in the form `batch` came in: Arrow for Arrow, pandas for pandas, a dict of lists otherwise."""
    pa = import_arrow()
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        return table
    if isinstance(batch, Mapping):
        return table.to_pydict()
    return table.to_pandas()
