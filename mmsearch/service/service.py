"""`Service`: one collection opened for serving, its models loaded once; what the routes call.

It owns an `Index` (the store and the encoders, for `POST /items` exactly as `mmsearch index`
writes) and a `Searcher` over the same store and encoders (for queries), so a model is loaded
once and the Edge folder opened once. Its methods are blocking and thread-safe: the app runs
searches in `runner`'s pool, and writes one at a time in its write thread (Qdrant Edge takes
concurrent reads during a write, but the unchanged-item check of one upsert must not interleave
with another's writes).

Every rule is the library's: filters (`mmsearch.query.filter_json`), weights
(`mmsearch.query.signals.resolve_weights`), image decoding and its pixel cap
(`indexers.images.load_image`), URL fetching and its caps (`mmsearch.fetch`), indexing
(`Index.add`). The service adds only what a remote client changes: image references in records
must stay under `image_root`, and URLs are fetched only when `allow_urls` is on.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from indexers.images import load_image
from mmsearch.cf.collection import load_collection_cf
from mmsearch.errors import ConfigError, ImageDecodeError, MmsearchError
from mmsearch.fetch import fetch, is_url
from mmsearch.indexing.catalog import CatalogRecord, image_source
from mmsearch.indexing.config import IndexConfig, load_config, with_overrides
from mmsearch.indexing.errorlog import ErrorLog, ItemError
from mmsearch.indexing.index import Index, item_records
from mmsearch.query.engine import Searcher
from mmsearch.query.filter_json import filter_from_input
from mmsearch.query.report import THUMB_PX, thumbnail_jpeg
from mmsearch.query.results import SearchResponse
from mmsearch.query.signals import resolve_weights
from mmsearch.service.errors import BlamedError, RequestError, blame, describe
from mmsearch.service.limits import QueryRunner, check_at_most
from mmsearch.service.metrics import Metrics
from mmsearch.service.models import BatchSearch, QueryOptions, RecommendRequest, SearchQuery
from mmsearch.service.settings import ServiceSettings
from mmsearch.storage import Filter

log = logging.getLogger(__name__)
_LINE_PREFIX = re.compile(r"^(line|item) \d+: ")


def service_config(settings: ServiceSettings) -> IndexConfig:
    """The indexing config the service runs on: the file's, with the settings' overrides.

    Raises:
        ConfigError: a missing or invalid config file, an invalid override, no encoders, or
            several workers on a one-process backend (Edge, local mode).
    """
    config = with_overrides(
        load_config(settings.config),
        collection=settings.collection,
        store_path=settings.store_path,
        models=settings.models,
        device=settings.device,
    )
    if not config.encoders:
        raise ConfigError("no encoders to embed queries: give --model DIR, or [[encoders]] in the config (-c)")
    if settings.workers > 1 and config.store.backend != "server":
        raise ConfigError(
            f"--workers {settings.workers}: the {config.store.backend} backend is one process (its folder is "
            f"locked), which serves requests on many threads; use --workers 1, or a Qdrant server "
            f"(backend = 'server') for several workers"
        )
    index = config.index.model_copy(update={"threads": settings.threads})
    return config.model_copy(update={"index": index})


class Service:
    """An open collection served over HTTP. Use `Service.open(settings)`; close it when done.

    Args:
        settings: what is served and the limits.
        config: the indexing config in use.
        index: the open index (store and encoders).
        searcher: the searcher over the same store.
        metrics: where the timings go.
    """

    def __init__(
        self, settings: ServiceSettings, config: IndexConfig, index: Index, searcher: Searcher, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.config = config
        self.index = index
        self.searcher = searcher
        self.metrics = metrics
        limits = settings.limits
        self.runner = QueryRunner(limits.slots, limits.queue, limits.timeout_s)
        self.image_root = settings.image_root.resolve()
        self.max_pixels = limits.max_image_pixels or config.index.max_pixels
        metrics.gauges.pending = lambda: self.runner.pending
        metrics.gauges.items = self._count_or_none

    @classmethod
    def open(cls, settings: ServiceSettings, metrics: Metrics | None = None) -> Service:
        """Load the models and open the store (creating the collection when it does not exist).

        Raises:
            ConfigError: see `service_config`.
            ModelError: a model folder cannot be loaded.
            StorageError: the store cannot be opened (locked by another process, unreachable...).
        """
        config = service_config(settings)
        metrics = metrics or Metrics()
        index = Index.open(config)
        try:
            store = index.store
            store.observe(metrics.observe_store)
            encoders = {id(e.encoder): e.encoder for e in index.embedders}
            cf_model = load_collection_cf(store, settings.cf_path)
            searcher = Searcher(store, [metrics.timed(e) for e in encoders.values()], cf_model, settings.search)
            service = cls(settings, config, index, searcher, metrics)
        except BaseException:
            index.close()
            raise
        log.info("serving %s", service.describe())
        if store.count() == 0:
            log.warning("collection %r is empty: POST /items or `mmsearch index` fills it", store.settings.collection)
        return service

    def describe(self) -> str:
        """One line on what is served: the collection, its backend and size, the models, CF."""
        store = self.index.store
        return (
            f"collection {store.settings.collection!r} ({store.backend_kind} backend, {store.count()} items), "
            f"models {', '.join(self.searcher.models) or 'none'}, "
            f"{'a CF model' if self.searcher.cf_model is not None else 'no CF model'}"
        )

    def close(self) -> None:
        """Stop the query threads and release the store."""
        self.runner.close()
        self.index.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count_or_none(self) -> int | None:
        try:
            return self.index.store.count()
        except MmsearchError:
            return None

    # ------------------------------------------------------------------ queries

    def search(self, query: SearchQuery, upload: bytes | None = None) -> dict[str, Any]:
        """One search, as the JSON of `SearchOut`; `upload` is a photo sent as a multipart part.

        Raises:
            RequestError, BlamedError, MmsearchError: a value the service or the library refuses.
        """
        start = time.perf_counter()
        arguments = self.search_arguments(query, upload)
        with self._engine_errors(query):
            response = self.searcher.search(**arguments)
        return _out(response, start)

    def search_arguments(self, query: SearchQuery, upload: bytes | None = None) -> dict[str, Any]:
        """`Searcher.search`'s arguments for a query, each input checked with its field named."""
        image = self._image(query, upload)
        return {
            "text": query.text,
            "image": image,
            "item": query.item,
            "user": query.user,
            "history": query.history,
            "exclude_seen": query.exclude_seen,
            **self._options(query),
        }

    def batch(self, batch: BatchSearch) -> dict[str, Any]:
        """Each query of a batch answered on its own: its results, or its error (`BatchOut`)."""
        check_at_most(len(batch.queries), self.settings.limits.max_batch, "queries", "--max-batch")
        responses: list[dict[str, Any]] = []
        for n, query in enumerate(batch.queries):
            try:
                responses.append(self.search(query))
            except (MmsearchError, BlamedError, RequestError) as e:
                responses.append({"error": describe(e, f"queries.{n}.").model_dump(mode="json")})
        return {"responses": responses}

    def recommend(self, request: RecommendRequest) -> dict[str, Any]:
        """Items for a user or a history (`SearchOut`)."""
        start = time.perf_counter()
        options = self._options(request)
        with self._engine_errors(request):
            response = self.searcher.recommend(
                request.user, history=request.history, exclude_seen=request.exclude_seen, **options
            )
        return _out(response, start)

    @contextlib.contextmanager
    def _engine_errors(self, query: QueryOptions) -> Iterator[None]:
        """Name the field of a plain `ConfigError` the engine raises once the service's checks passed.

        What is left to the engine then: a user without a CF or EASE model, `normalization='none'`
        with a CF or EASE signal, or a weighted signal this query gives no input to (other errors name their field
        by their class, see `mmsearch.service.errors.field_of`).
        """
        try:
            yield
        except ConfigError as e:
            if type(e) is not ConfigError:
                raise
            has_models = self.searcher.cf_model is not None or self.searcher.ease_model is not None
            if getattr(query, "user", None) is not None and not has_models:
                raise BlamedError(e, "user") from e
            if query.normalization == "none":
                raise BlamedError(e, "normalization") from e
            if query.weights is not None:
                raise BlamedError(e, "weights") from e
            raise

    def _options(self, query: QueryOptions) -> dict[str, Any]:
        check_at_most(query.limit, self.settings.limits.max_limit, "limit", "--max-limit")
        flt: Filter | None
        with blame("filter"):
            flt = filter_from_input(query.filter)
        if query.weights is not None:
            with blame("weights"):
                resolve_weights(query.weights, self.searcher.signals)  # the engine's check, with the field named
        return {
            "weights": query.weights,
            "fusion": query.fusion,
            "normalization": query.normalization,
            "filter": flt,
            "limit": query.limit,
            "explain": query.explain,
        }

    def _image(self, query: SearchQuery, upload: bytes | None) -> Any:
        """The query photo, decoded under the pixel cap: from the upload, base64 or a URL."""
        if upload is not None:
            with blame("image"):
                return load_image(upload, max_pixels=self.max_pixels)
        if query.image_base64 is not None:
            try:
                data = base64.b64decode(query.image_base64, validate=True)
            except (binascii.Error, ValueError) as e:
                raise RequestError(422, f"image_base64 is not valid base64: {e}", field="image_base64") from e
            with blame("image_base64"):
                return load_image(data, max_pixels=self.max_pixels)
        if query.image_url is not None:
            if not self.settings.limits.allow_urls:
                raise RequestError(
                    422,
                    "image URLs are off on this server (start it with --allow-urls); send the photo as a "
                    "multipart upload or as image_base64",
                    field="image_url",
                )
            with blame("image_url"):
                return load_image(fetch(query.image_url, self.config.fetch), max_pixels=self.max_pixels)
        return None

    # ------------------------------------------------------------------ items

    def get_item(self, item_id: str) -> dict[str, Any]:
        """An item's payload and the names of the vectors it has (`ItemOut`)."""
        store = self.index.store
        found = store.retrieve([item_id], with_vectors=store.vector_names, with_payload=True)
        if not found:
            raise _no_item(item_id, store.count())
        item = found[0]
        vectors = sorted(n for n, v in item.vectors.items() if getattr(v, "size", 0))
        return {"id": item.id, "payload": item.payload, "vectors": vectors}

    def upsert(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Index catalog records as `mmsearch index` does; the refused ones come back with why (`UpsertOut`)."""
        check_at_most(len(records), self.settings.limits.max_items, "items", "--max-items")
        checked = [self._allowed(rec) for rec in item_records(records, self.config)]
        errors = ErrorLog(keep=len(checked))
        summary = self.index.add(checked, base_dir=self.image_root, errors=errors)
        self.metrics.written.inc(summary.indexed)
        for e in errors.errors:
            self.metrics.item_errors.labels(e.kind).inc()
        return {
            "received": len(records),
            **{k: getattr(summary, k) for k in ("indexed", "new", "changed", "unchanged", "skipped", "failed")},
            "errors": [
                {**e.to_json(), "reason": _LINE_PREFIX.sub("", e.reason)}
                for e in sorted(errors.errors, key=lambda e: e.line or 0)
            ],
            "stored": summary.stored,
            "seconds": summary.seconds,
        }

    def _allowed(self, record: CatalogRecord) -> CatalogRecord:
        """The record, or an error record when it names an image the client may not make the server read."""
        item = record.item
        if item is None:
            return record
        for ref in item.images:
            if is_url(ref):
                if self.settings.limits.allow_urls:
                    continue
                reason = f"image {ref!r:.200} is a URL, and image URLs are off on this server (--allow-urls)"
                return CatalogRecord(record.line, error=ItemError(record.line, item.id, "fetch", reason))
            if not self._inside_root(image_source(ref, self.image_root)):
                reason = f"image {ref!r:.200} is outside the server's image root; give a path relative to it"
                return CatalogRecord(record.line, error=ItemError(record.line, item.id, "image", reason))
        return record

    def _inside_root(self, path: str | Path) -> bool:
        return isinstance(path, Path) and path.resolve().is_relative_to(self.image_root)

    def delete(self, item_id: str) -> dict[str, Any]:
        """Delete one item (`DeleteOut`); 404 when it is not there."""
        store = self.index.store
        if not self.index.delete([item_id]):
            raise _no_item(item_id, store.count())
        return {"id": item_id, "deleted": True}

    def thumbnail(self, item_id: str, n: int, px: int = THUMB_PX) -> bytes | str:
        """The JPEG thumbnail of an item's `n`-th image (from 0), or its URL when it is a remote one.

        Raises:
            RequestError: 404 for no such item or image, or an image that cannot be read.
        """
        found = self.index.store.retrieve([item_id], with_payload=True)
        if not found:
            raise _no_item(item_id, self.index.store.count())
        images = found[0].payload.get("images") or []
        images = [images] if isinstance(images, str) else list(images)
        if not 0 <= n < len(images):
            raise RequestError(404, f"item {item_id!r} has {len(images)} image(s); there is no image {n}", field="n")
        ref = str(images[n])
        if is_url(ref):
            return ref
        path = image_source(ref, self.image_root)
        if not self._inside_root(path):
            raise RequestError(404, f"image {n} of {item_id!r} is outside the server's image root", field="n")
        try:
            return thumbnail_jpeg(path, px)
        except (ImageDecodeError, OSError) as e:
            raise RequestError(404, f"image {n} of {item_id!r} cannot be read: {e}", field="n") from e

    # ------------------------------------------------------------------ state

    def signals(self) -> dict[str, Any]:
        """The collection's signals (`SignalsOut`)."""
        return {
            "signals": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "vector": s.vector,
                    "model": s.model,
                    "family": s.family,
                    "modality": s.modality,
                    "distance": s.distance,
                    "aliases": list(s.aliases),
                }
                for s in self.searcher.signals
            ]
        }

    def ready(self) -> dict[str, Any]:
        """Models loaded and the store answering (`ReadyOut`); `status` says which."""
        store = self.index.store
        base = {
            "collection": store.settings.collection,
            "backend": store.settings.backend,
            "models": sorted(self.searcher.models),
            "cf": self.searcher.cf_model is not None,
        }
        try:
            return {"status": "ready", "items": store.count(), **base}
        except MmsearchError as e:
            return {"status": "unavailable", "items": None, "reason": str(e), **base}


def _out(response: SearchResponse, start: float) -> dict[str, Any]:
    return {**response.to_json(), "took_ms": round((time.perf_counter() - start) * 1e3, 3)}


def _no_item(item_id: str, count: int) -> RequestError:
    return RequestError(
        404, f"item {item_id!r} is not in the collection ({count} items)", field="item_id", type="NotFoundError"
    )


def dumps(data: Any) -> bytes:
    """JSON bytes of a response (no NaN: the library reports missing scores as null)."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


__all__ = ["Service", "dumps", "service_config"]
