"""Store settings: which backend, where, and how its collection is built."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from mmsearch.errors import config_error
from mmsearch.storage.schema import FieldType

BackendKind = Literal["edge", "server", "memory"]
DEFAULT_PATH = Path("mmsearch-data")
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$")


class HnswSettings(BaseModel):
    """HNSW graph parameters for indexed vectors (pooled and `cf`).

    Attributes:
        m: edges per node; more gives better recall and a slower, bigger build.
        ef_construct: candidates kept while building.
        ef: candidates kept while searching; None lets the engine pick (it uses ef_construct).
        full_scan_threshold_kb: segments smaller than this (in KB of vectors) are scanned exactly.
        max_indexing_threads: build threads, 0 for the engine's choice.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    m: int = Field(16, ge=4, le=128)
    ef_construct: int = Field(100, ge=4, le=4096)
    ef: int | None = Field(128, ge=1, le=4096)
    full_scan_threshold_kb: int = Field(10_000, ge=0)
    max_indexing_threads: int = Field(0, ge=0)


class StoreSettings(BaseModel):
    """Where the store lives and how its collection is built.

    Attributes:
        backend: `edge` (embedded Qdrant Edge in a local folder, the default), `server` (a Qdrant
            server or cluster at `url`) or `memory` (qdrant-client's pure-Python local mode, in RAM,
            or persisted under `path`; exact search only: for tests and toy setups, not production).
        path: the data folder for `edge` (default `./mmsearch-data`) and optionally for `memory`.
        url, api_key, timeout_s, prefer_grpc: how to reach a `server`.
        collection: the collection name (a sub-folder of `path` for `edge`).
        shard_number, replication_factor, write_consistency_factor: cluster layout (`server` only).
        on_disk: keep original vectors memory-mapped on disk instead of in RAM.
        on_disk_payload: keep payloads on disk.
        quantization: `none`, `scalar` (int8) or `binary`, on the pooled vectors; queries then
            search the quantized copy and rescore with the originals (`oversampling` x limit).
        hnsw: graph parameters.
        index_multivectors: build HNSW on the MaxSim multivectors too (default: m=0, exact scan,
            as they are meant for rescoring).
        cf_dim: the `cf` vector's dimension; None keeps a stored collection's, and a new one gets its `cf`
            vector from its first CF fit, at that model's length (one without encoders gets it at
            64 right away).
        payload_indexes: payload fields to index for filtering, with their types.
        batch_size: points per write call.
        optimize_after: Edge builds its HNSW graphs only when optimized; an `upsert` call writing at
            least this many items optimizes at its end (None: only an explicit `optimize()`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendKind = "edge"
    path: Path | None = None
    url: str | None = None
    api_key: SecretStr | None = None
    timeout_s: int | None = Field(None, ge=1)
    prefer_grpc: bool = False
    collection: str = "mmsearch"
    shard_number: int | None = Field(None, ge=1)
    replication_factor: int | None = Field(None, ge=1)
    write_consistency_factor: int | None = Field(None, ge=1)
    on_disk: bool = False
    on_disk_payload: bool = True
    quantization: Literal["none", "scalar", "binary"] = "none"
    oversampling: float = Field(2.0, ge=1.0, le=16.0)
    hnsw: HnswSettings = HnswSettings()
    index_multivectors: bool = False
    cf_dim: int | None = Field(None, ge=1, le=4096)
    payload_indexes: dict[str, FieldType] = Field(default_factory=dict)
    batch_size: int = Field(256, ge=1, le=65_536)
    optimize_after: int | None = Field(10_000, ge=1)

    @model_validator(mode="after")
    def _check_backend_fields(self) -> StoreSettings:
        if not _COLLECTION_NAME.match(self.collection):
            raise ValueError(
                f"collection {self.collection!r}: use 1-128 letters, digits, '_' or '-', "
                f"starting with a letter or digit"
            )
        if self.backend == "server":
            if not self.url:
                raise ValueError("backend 'server' needs a url, e.g. http://localhost:6333")
            if self.path is not None:
                raise ValueError("backend 'server' takes a url, not a path")
        else:
            server_only = {
                "url": self.url,
                "api_key": self.api_key,
                "shard_number": self.shard_number,
                "replication_factor": self.replication_factor,
                "write_consistency_factor": self.write_consistency_factor,
            }
            given = sorted(k for k, v in server_only.items() if v is not None)
            if given:
                raise ValueError(f"{', '.join(given)} only apply to backend 'server', not {self.backend!r}")
        return self

    @property
    def data_path(self) -> Path | None:
        """The local folder in use: `path`, `./mmsearch-data` for edge, None for in-RAM or server."""
        if self.backend == "edge":
            return self.path if self.path is not None else DEFAULT_PATH
        return self.path


def load_settings(settings: StoreSettings | Mapping[str, Any] | None = None, **overrides: Any) -> StoreSettings:
    """Validate store settings from a mapping (e.g. a parsed config file) plus keyword overrides.

    Args:
        settings: a `StoreSettings`, a mapping of its fields, or None for the defaults.
        **overrides: fields that replace those in `settings`.

    Returns:
        The validated settings.

    Raises:
        ConfigError: an unknown field or a value that does not validate; the message names it.
    """
    base = settings.model_dump() if isinstance(settings, StoreSettings) else dict(settings or {})
    if isinstance(settings, StoreSettings) and settings.api_key is not None:
        base["api_key"] = settings.api_key.get_secret_value()
    try:
        return StoreSettings(**{**base, **overrides})
    except ValidationError as e:
        raise config_error(e, "store settings") from e
