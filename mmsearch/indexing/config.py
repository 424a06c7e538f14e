"""The indexing config file (TOML, read with the standard library's `tomllib`).

Every section is optional; with no file at all, `mmsearch index catalog.jsonl --model DIR` indexes
into an embedded Qdrant Edge store in `./mmsearch-data`, collection `mmsearch`.

    [store]                      # mmsearch.storage.StoreSettings: backend, path, url, collection...
    backend = "edge"
    path = "data"                # relative paths are relative to this file
    collection = "products"

    [catalog]                    # mmsearch.indexing.catalog.CatalogConfig
    format = "auto"
    list_separator = "|"
    [catalog.columns]            # which column holds each schema field
    id = "sku"
    title = "name"
    images = "image_urls"

    [index]                      # IndexSettings: batch size, decode workers, device...
    batch_size = 32
    workers = 4

    [fetch]                      # mmsearch.fetch.FetchSettings: URL timeout, size cap, retries
    timeout_s = 10

    [[encoders]]                 # one table per model folder made by `mmsearch export`
    model = "models/clip"
    text_fields = ["title"]      # texts its text tower embeds, one row each
    images = true                # whether its image tower embeds the item's images

    [[encoders]]
    model = "models/minilm"
    text_fields = ["title", "description", "reviews"]
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from indexers.images import DEFAULT_MAX_PIXELS
from indexers.text import DEFAULT_MAX_CHARS
from mmsearch.errors import ConfigError, validation_message
from mmsearch.fetch import FetchSettings
from mmsearch.indexing.catalog import CatalogConfig
from mmsearch.storage.settings import StoreSettings, load_settings

DEFAULT_TEXT_FIELDS = ("title", "description")


def default_workers() -> int:
    """Image fetch-and-decode threads: enough to hide URL latency, a few per core for decoding."""
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


class EncoderConfig(BaseModel):
    """One model folder and what it embeds.

    Attributes:
        model: the folder written by `mmsearch export` (relative to the config file).
        text_fields: catalog fields its text tower embeds: `title`, `description`, `reviews`, or
            any payload field holding text (or a list of texts). Each value is one row; the store
            pools the rows into one vector and keeps them as a MaxSim multivector.
        text_join: join the fields' texts into a single row with this separator instead.
        images: whether its image tower embeds the item's images (one row per image).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path
    text_fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS
    text_join: str | None = None
    images: bool = True

    @field_validator("text_fields")
    @classmethod
    def _check_fields(cls, fields: tuple[str, ...]) -> tuple[str, ...]:
        for f in fields:
            if f in ("id", "images") or not f:
                raise ValueError(
                    f"text field {f!r} cannot be embedded as text; use title, description, "
                    f"reviews or a payload field holding text"
                )
        if len(set(fields)) != len(fields):
            raise ValueError(f"text_fields {list(fields)} names a field twice")
        return fields


class IndexSettings(BaseModel):
    """How the pipeline runs.

    Attributes:
        batch_size: items per encode-and-write step (and rows per onnxruntime run).
        workers: threads fetching, decoding and preprocessing images while the encoder runs.
        prefetch: items decoded ahead of the encoder; None for 4 x batch_size.
        device: `auto` (CUDA when onnxruntime can use it), `cpu` or `cuda`.
        threads: onnxruntime threads per session; None lets it choose.
        max_pixels: images with more pixels are refused (decompression-bomb guard).
        max_text_chars: longer texts are refused.
        lookup_batch: ids per store lookup when checking which items are unchanged.
        optimize: build the store's indexes when the run ends (Edge builds HNSW graphs only then).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(32, ge=1, le=4096)
    workers: int = Field(default_factory=default_workers, ge=1, le=256)
    prefetch: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    max_text_chars: int = Field(DEFAULT_MAX_CHARS, ge=1)
    lookup_batch: int = Field(256, ge=1, le=10_000)
    optimize: bool = True

    @property
    def in_flight(self) -> int:
        """Items submitted to the decode workers and not yet encoded."""
        return self.prefetch or max(4 * self.batch_size, 2 * self.workers)


class IndexConfig(BaseModel):
    """The whole indexing setup; see the module docstring for the file format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: StoreSettings = StoreSettings()
    catalog: CatalogConfig = CatalogConfig()
    index: IndexSettings = Field(default_factory=IndexSettings)
    fetch: FetchSettings = FetchSettings()
    encoders: tuple[EncoderConfig, ...] = ()

    @property
    def model_folders(self) -> tuple[Path, ...]:
        """The encoders' model folders, in order (what `Searcher.open` loads to embed queries)."""
        return tuple(e.model for e in self.encoders)


def _resolve(path: Path | None, base: Path) -> Path | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    return path if path.is_absolute() else base / path


def parse_config(data: Mapping[str, Any], base_dir: str | Path = ".") -> IndexConfig:
    """Validate a parsed config (e.g. from TOML), resolving relative paths against `base_dir`.

    Raises:
        ConfigError: an unknown section or key, or a value that does not validate (named).
    """
    data = dict(data)
    base = Path(base_dir)
    try:
        store = load_settings(data.pop("store", None))
        if store.path is not None:
            store = load_settings(store, path=_resolve(store.path, base))
        config = IndexConfig.model_validate({**data, "store": store})
    except ValidationError as e:
        raise ConfigError(f"invalid config: {validation_message(e)}") from e
    encoders = tuple(e.model_copy(update={"model": _resolve(e.model, base)}) for e in config.encoders)
    _check_encoders(encoders)
    return config.model_copy(update={"encoders": encoders})


def _check_encoders(encoders: Sequence[EncoderConfig]) -> None:
    seen: set[Path] = set()
    for enc in encoders:
        key = Path(os.path.abspath(enc.model))
        if key in seen:
            raise ConfigError(f"model folder {str(enc.model)!r} is listed twice under [[encoders]]; list it once")
        seen.add(key)


def load_config(path: str | Path | None = None) -> IndexConfig:
    """Read a TOML config file; None gives the defaults (no encoders: name them with `with_overrides`).

    Raises:
        ConfigError: the file is missing or not valid TOML, or a setting is invalid.
    """
    if path is None:
        return IndexConfig()
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"config file {str(path)!r} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(path)!r}: {e}") from e
    return parse_config(data, path.parent)


def with_overrides(
    config: IndexConfig,
    *,
    collection: str | None = None,
    store_path: str | Path | None = None,
    models: Sequence[str | Path] = (),
    batch_size: int | None = None,
    workers: int | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> IndexConfig:
    """A copy of `config` with command-line choices applied.

    Args:
        collection: the collection name.
        store_path: the store folder (Edge, or a persisted `memory` store).
        models: model folders that replace the config's `[[encoders]]`, each with the default
            fields (text towers embed title and description, image towers the images).
        batch_size, workers, device, threads: replace the `[index]` settings.

    Raises:
        ConfigError: an override does not validate.
    """
    store_over: dict[str, Any] = {}
    if collection is not None:
        store_over["collection"] = collection
    if store_path is not None:
        store_over["path"] = Path(store_path)
    given = {"batch_size": batch_size, "workers": workers, "device": device, "threads": threads}
    index_over = {k: v for k, v in given.items() if v is not None}
    try:
        store = load_settings(config.store, **store_over) if store_over else config.store
        index = IndexSettings.model_validate({**config.index.model_dump(), **index_over})
        encoders = tuple(EncoderConfig(model=Path(m)) for m in models) if models else config.encoders
    except ValidationError as e:
        raise ConfigError(f"invalid option: {validation_message(e)}") from e
    _check_encoders(encoders)
    return config.model_copy(update={"store": store, "index": index, "encoders": encoders})
