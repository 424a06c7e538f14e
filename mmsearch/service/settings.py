"""What `mmsearch serve` serves and how: the collection, the address, keys and limits (pydantic)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mmsearch.query.engine import SearchSettings
from mmsearch.service import defaults as D


def default_concurrency() -> int:
    """Searches run at once: four per core, at least 8.

    onnxruntime and Qdrant Edge release the GIL, so several searches per core overlap their encodes
    and store calls: at 16 clients on 2 shared cores, 16 slots served 1.3-1.7x the text requests/s of
    4 (`mmsearch bench serve --concurrency`, two runs each, load average 10-16). The cap still bounds
    the memory and threads a burst takes.
    """
    return max(8, 4 * (os.cpu_count() or 1))


class Limits(BaseModel):
    """What one request may ask for; beyond it, the request gets a 4xx naming the field (5xx for load).

    Attributes:
        max_body_bytes: request bodies above this get 413, before they are read whole.
        max_image_pixels: query photos with more pixels are refused (decompression-bomb guard);
            None: the indexing config's `[index] max_pixels` (64 MP unless set).
        max_batch: queries in one `POST /search` batch.
        max_limit: the largest `limit` (results per query) a request may ask for.
        max_items: catalog records in one `POST /items`.
        timeout_s: a search, recommendation or batch answers 504 when it takes longer (the time
            waiting for a free slot included).
        concurrency: searches running at once; None: `default_concurrency()`.
        queue: searches waiting for a slot beyond those; more get 503 at once.
        allow_urls: let queries and `POST /items` records name http(s) image URLs, which the
            server then fetches (with the config's `[fetch]` caps). Off by default: a URL makes
            the server open a connection where the client says.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(D.DEFAULT_MAX_BODY_BYTES, ge=1024)
    max_image_pixels: int | None = Field(None, ge=1)
    max_batch: int = Field(D.DEFAULT_MAX_BATCH, ge=1, le=10_000)
    max_limit: int = Field(D.DEFAULT_MAX_LIMIT, ge=1, le=10_000)
    max_items: int = Field(D.DEFAULT_MAX_ITEMS, ge=1, le=100_000)
    timeout_s: float = Field(D.DEFAULT_TIMEOUT_S, gt=0, le=3600)
    concurrency: int | None = Field(None, ge=1, le=1024)
    queue: int = Field(D.DEFAULT_QUEUE, ge=0, le=100_000)
    allow_urls: bool = False

    @property
    def slots(self) -> int:
        """Searches running at once."""
        return self.concurrency or default_concurrency()


class ServiceSettings(BaseModel):
    """Everything `mmsearch serve` needs; JSON-able, so worker processes get the same settings.

    Attributes:
        config: the indexing config (TOML): store, collection, encoders, `[fetch]` and `[index]`.
        store_path, collection, models: override the config's store folder, collection and
            encoders (model folders with the default fields), as for `mmsearch query`.
        cf_path: the CF model folder, when not the store's own (a server store needs one).
        host, port: where to listen.
        workers: server processes. Qdrant Edge and local mode are one process (many threads);
            several workers need the `server` backend.
        insecure: allow a non-loopback `host` without API keys.
        keys_file: a file of API keys (`read:KEY` or `write:KEY` per line), besides the
            `MMSEARCH_API_KEYS` environment variable.
        image_root: the folder that relative image paths are resolved against: the photos of
            results the page shows, and the local images `POST /items` records may name (never
            outside it).
        device, threads: onnxruntime placement and threads per session for the encoders.
        search: the engine's settings (candidates, MaxSim, profile, cold start...).
        limits: what one request may ask for.
        log_level: uvicorn's log level.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: Path | None = None
    store_path: Path | None = None
    collection: str | None = None
    models: tuple[Path, ...] = ()
    cf_path: Path | None = None
    host: str = D.DEFAULT_HOST
    port: int = Field(D.DEFAULT_PORT, ge=0, le=65_535)
    workers: int = Field(D.DEFAULT_WORKERS, ge=1, le=256)
    insecure: bool = False
    keys_file: Path | None = None
    image_root: Path = Path(".")
    device: Literal["auto", "cpu", "cuda"] | None = None
    threads: int | None = Field(D.DEFAULT_THREADS, ge=1)
    search: SearchSettings = SearchSettings()
    limits: Limits = Limits()
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @property
    def loopback(self) -> bool:
        """True when `host` only accepts connections from this machine."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


__all__ = ["Limits", "ServiceSettings", "default_concurrency", "is_loopback"]
