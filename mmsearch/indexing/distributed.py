"""Encoders and a store writer for distributed engines: Ray Data `map_batches`, Spark `mapInPandas`.

Nothing here imports ray, pyspark or pandas; a batch is either a dict of columns (numpy arrays or
lists: Ray's "numpy" batch format) or a pandas DataFrame (Ray's "pandas" format, Spark), and comes
back in the same form with columns added. Each worker loads a model folder once (the folder must be
readable on every worker: a shared file system, or copied beside the job).

Ray Data, writing into a Qdrant server or cluster:

    import ray
    from mmsearch.indexing.distributed import EmbedBatch, UpsertBatch

    ds = ray.data.read_json("catalog.jsonl")                 # columns id, title, image, ...
    ds = ds.map_batches(EmbedBatch, fn_constructor_kwargs={"model_dir": "/models/clip"},
                        batch_size=64, concurrency=4, batch_format="numpy")
    ds = ds.map_batches(UpsertBatch, fn_constructor_kwargs={
                            "store": {"backend": "server", "url": "http://qdrant:6333", "collection": "shop"},
                            "models": ["/models/clip"], "payload_columns": ["title", "price"]},
                        batch_size=256, concurrency=2, batch_format="numpy")
    print(ds.sum("written"))

Spark (`mapInPandas`; the output schema adds one array<float> column per tower and the error):

    from mmsearch.indexing.distributed import embed_partitions
    schema = df.schema.add("clip.image", "array<float>").add("clip.text", "array<float>") \\
                      .add("embed_error", "string")
    out = df.mapInPandas(embed_partitions("/models/clip", text_column="title"), schema=schema)

One row is one item with at most one image and one text; rows that fail (an unreadable image, a
URL that 404s) get NaN (numpy) or None (pandas) vectors and a reason in `error_column`, and
`UpsertBatch` skips them. For several photos per item, use `mmsearch index` or group the rows'
vectors per item before writing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from indexers.images import DEFAULT_MAX_PIXELS, load_image
from indexers.manifest import Manifest
from indexers.onnx_session import Device
from indexers.protocol import EncoderSpec
from indexers.runtime import ImageEncoder, Model, TextEncoder, load_model
from indexers.runtime import encoder_specs as tower_specs
from indexers.text import DEFAULT_MAX_CHARS, validate_text
from mmsearch.errors import ConfigError, InputError
from mmsearch.fetch import FetchSettings, fetch, is_url

ERROR_COLUMN = "embed_error"
_MODELS: dict[tuple[str, str, int | None, int, int], Model] = {}
_MODELS_LOCK = threading.Lock()


def cached_model(
    model_dir: str | Path,
    *,
    device: Device = "cpu",
    threads: int | None = None,
    batch_size: int = 32,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Model:
    """Load a model folder once per process (a Spark executor calls the function once per partition)."""
    key = (str(Path(model_dir).resolve()), device, threads, batch_size, max_chars)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(
                model_dir, device=device, threads=threads, batch_size=batch_size, max_text_chars=max_chars
            )
        return _MODELS[key]


def encoder_specs(model_dir: str | Path) -> list[EncoderSpec]:
    """The specs of a model folder's towers, as `cached_model` loads them (no onnxruntime session)."""
    return list(tower_specs(Manifest.load(Path(model_dir), verify=False)).values())


def _columns(batch: Any) -> tuple[dict[str, list[Any]], int]:
    if isinstance(batch, Mapping):
        cols = {str(k): list(v) for k, v in batch.items()}
    elif hasattr(batch, "columns") and hasattr(batch, "assign"):  # a pandas DataFrame
        cols = {str(c): batch[c].tolist() for c in batch.columns}
    else:
        raise ConfigError(f"a batch must be a dict of columns or a pandas DataFrame, got {type(batch).__name__}")
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ConfigError(f"the batch's columns have different lengths: {sorted(lengths)}")
    return cols, lengths.pop() if lengths else 0


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


class EmbedBatch:
    """Embed one batch of catalog rows: a Ray Data callable class, also usable as a plain function.

    Args:
        model_dir: a model folder from `mmsearch export`, readable on the worker.
        text_column: the column its text tower embeds (skipped when absent or the model has none).
        image_column: the column its image tower embeds: a path, an http(s) URL or the encoded bytes.
        base_dir: what relative image paths are relative to (default: the worker's current folder).
        device, threads, batch_size: as in `indexers.runtime.load_model`.
        decode_workers: threads fetching and decoding the batch's images.
        max_pixels, max_chars: refuse larger images and longer texts (the row gets an error).
        fetch: URL timeout, size cap and retries.
        error_column: the column that gets None or the reason a row failed.

    Returns (when called): the batch with `<model>.image` / `<model>.text` columns added.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        text_column: str | None = "title",
        image_column: str | None = "image",
        base_dir: str | Path | None = None,
        device: Device = "cpu",
        threads: int | None = None,
        batch_size: int = 32,
        decode_workers: int = 4,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_chars: int = DEFAULT_MAX_CHARS,
        fetch: FetchSettings | Mapping[str, Any] | None = None,
        error_column: str = ERROR_COLUMN,
    ) -> None:
        self.model = cached_model(model_dir, device=device, threads=threads, batch_size=batch_size, max_chars=max_chars)
        self.text_column = text_column
        self.image_column = image_column
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.decode_workers = decode_workers
        self.max_pixels = max_pixels
        self.max_chars = max_chars
        self.fetch = fetch if isinstance(fetch, FetchSettings) else FetchSettings(**(fetch or {}))
        self.error_column = error_column

    def __call__(self, batch: Any) -> Any:
        cols, n = _columns(batch)
        errors: list[str | None] = [None] * n
        out: dict[str, np.ndarray] = {}
        text, image = self.model.text, self.model.image
        if text is not None and self.text_column and self.text_column in cols:
            out[f"{self.model.name}.text"] = self._texts(text, cols[self.text_column], errors)
        if image is not None and self.image_column and self.image_column in cols:
            out[f"{self.model.name}.image"] = self._images(image, cols[self.image_column], errors)
        return _with_columns(batch, out, self.error_column, errors)

    def _texts(self, encoder: TextEncoder, values: list[Any], errors: list[str | None]) -> np.ndarray:
        vectors = np.full((len(values), encoder.spec.dim), np.nan, dtype=np.float32)
        rows, texts = [], []
        for i, value in enumerate(values):
            if _missing(value):
                continue
            try:
                texts.append(validate_text(value, max_chars=self.max_chars))
                rows.append(i)
            except InputError as e:
                errors[i] = errors[i] or f"text: {e}"
        if texts:
            vectors[rows] = encoder.embed(texts)
        return vectors

    def _pixels(self, encoder: ImageEncoder, value: Any) -> np.ndarray:
        src: Any = value
        if isinstance(value, str):
            if is_url(value):
                src = fetch(value, self.fetch)
            elif self.base_dir is not None and not Path(value).is_absolute():
                src = self.base_dir / value
        return encoder.preprocessor(load_image(src, max_pixels=self.max_pixels))

    def _images(self, encoder: ImageEncoder, values: list[Any], errors: list[str | None]) -> np.ndarray:
        vectors = np.full((len(values), encoder.spec.dim), np.nan, dtype=np.float32)
        todo = [i for i, v in enumerate(values) if not _missing(v)]

        def prepare(i: int) -> np.ndarray | None:
            try:
                return self._pixels(encoder, values[i])
            except InputError as e:
                errors[i] = errors[i] or f"image: {e}"
                return None

        with ThreadPoolExecutor(max(1, self.decode_workers)) as pool:
            prepared = list(pool.map(prepare, todo))
        rows = [i for i, p in zip(todo, prepared, strict=True) if p is not None]
        if rows:
            vectors[rows] = encoder.embed_pixels(np.stack([p for p in prepared if p is not None]))
        return vectors


def _with_columns(batch: Any, out: Mapping[str, np.ndarray], error_column: str, errors: list[str | None]) -> Any:
    if isinstance(batch, Mapping):
        result = dict(batch)
        result.update(out)
        result[error_column] = np.array(errors, dtype=object)
        return result
    # pandas: one array (or None, for a row without a vector) per cell; Arrow/Spark read array<float>.
    cells = {name: [None if np.isnan(v[0]) else v for v in vectors] for name, vectors in out.items()}
    return batch.assign(**cells, **{error_column: errors})


def embed_partitions(model_dir: str | Path, **options: Any) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A function for Spark's `DataFrame.mapInPandas`: embeds each pandas frame of a partition.

    Args:
        model_dir, **options: as for `EmbedBatch`; the model loads once per executor process.
    """

    def run(frames: Iterator[Any]) -> Iterator[Any]:
        embed = EmbedBatch(model_dir, **options)
        for frame in frames:
            yield embed(frame)

    return run


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON-able Python values for a payload."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class UpsertBatch:
    """Write embedded rows into a store (a Qdrant server or cluster in a distributed job).

    Args:
        store: store settings (`backend = "server"`, `url`, `collection`...); each worker opens its
            own client.
        models: the model folders whose vectors the rows carry (their specs create or check the
            collection's named vectors).
        id_column: the item id column.
        payload_columns: columns kept as payload (default: none).
        error_column: rows with a value here are skipped.

    Returns (when called): `{"written": array([n])}`, the number of items written.
    """

    def __init__(
        self,
        store: Mapping[str, Any] | Any,
        models: Sequence[str | Path],
        *,
        id_column: str = "id",
        payload_columns: Sequence[str] = (),
        error_column: str = ERROR_COLUMN,
    ) -> None:
        from mmsearch.storage import open_store

        specs = [spec for m in models for spec in encoder_specs(m)]
        self.store = open_store(store, encoders=specs)
        self.keys = [f"{s.model}.{s.modality}" for s in specs]
        self.id_column = id_column
        self.payload_columns = tuple(payload_columns)
        self.error_column = error_column

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        from mmsearch.storage import Item

        cols, n = _columns(batch)
        if self.id_column not in cols:
            raise ConfigError(f"the batch has no id column {self.id_column!r}; its columns are {sorted(cols)}")
        items = []
        for i in range(n):
            if self.error_column in cols and cols[self.error_column][i]:
                continue
            vectors = {}
            for key in self.keys:
                value = cols.get(key, [None] * n)[i]
                if value is not None and not np.isnan(np.asarray(value, dtype=np.float32)).any():
                    vectors[key] = np.asarray(value, dtype=np.float32)
            if not vectors:
                continue
            payload = {c: _plain(cols[c][i]) for c in self.payload_columns if c in cols}
            items.append(Item(id=str(_plain(cols[self.id_column][i])), vectors=vectors, payload=payload))
        if items:
            self.store.upsert(items, optimize=False)
        return {"written": np.array([len(items)])}

    def close(self) -> None:
        self.store.close()
