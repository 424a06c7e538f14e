"""The indexing pipeline: records -> unchanged check -> fetch/decode/preprocess (threads) -> encode -> upsert.

The main thread reads records, looks their content hashes up in the store, submits the new and
changed ones to a thread pool that fetches, decodes and preprocesses their images, and encodes
and writes whatever the pool has finished, one batch at a time. onnxruntime and Pillow's decoders
release the GIL, so the pool prepares the next batches while the encoder runs; the number of items
in flight is bounded (`IndexSettings.in_flight`), which bounds memory.

Every item is written whole (vectors, payload and its content hash) in one upsert, so a run killed
at any point leaves each item either fully written (and skipped as unchanged next time) or not
written at all (and encoded next time); deterministic point ids mean nothing is ever duplicated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from indexers.images import load_image
from indexers.runtime import ImageEncoder, Model, TextEncoder
from indexers.text import validate_text
from mmsearch.errors import (
    BatchError,
    ConfigError,
    FetchError,
    ImageDecodeError,
    InputError,
    InvalidRecordError,
    TextInputError,
)
from mmsearch.fetch import FetchSettings, fetch
from mmsearch.indexing.catalog import HASH_KEY, CatalogItem, CatalogRecord, image_source
from mmsearch.indexing.config import EncoderConfig, IndexSettings
from mmsearch.indexing.errorlog import ErrorLog, ItemError
from mmsearch.storage import CF_VECTOR, Item, Store, pooled_name

log = logging.getLogger(__name__)
HASH_FORMAT = 1

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Embedder:
    """One tower in use: what it embeds and under which vector key.

    Attributes:
        key: the store's input key, `<model>.<modality>`.
        encoder: the run-time encoder.
        text_fields: catalog fields a text tower embeds (empty for an image tower).
        text_join: join the fields' texts into one row with this separator (None: one row per text).
    """

    key: str
    encoder: ImageEncoder | TextEncoder
    text_fields: tuple[str, ...] = ()
    text_join: str | None = None

    @property
    def modality(self) -> str:
        return self.encoder.spec.modality

    def signature(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "fingerprint": self.encoder.spec.fingerprint,
            "text_fields": list(self.text_fields),
            "text_join": self.text_join,
        }


def plan_embedders(configs: Sequence[EncoderConfig], models: Sequence[Model]) -> list[Embedder]:
    """The towers each configured model contributes.

    An image tower is used when `images` is on; a text tower when `text_fields` is not empty.

    Raises:
        ConfigError: a model contributes no tower, or two models share a name (hence vector keys).
    """
    out: list[Embedder] = []
    owners: dict[str, Path] = {}
    for cfg, model in zip(configs, models, strict=True):
        if model.name in owners:
            raise ConfigError(
                f"model folders {str(owners[model.name])!r} and {str(cfg.model)!r} are both named "
                f"{model.name!r}, so their vectors would share a name; export one under another name"
            )
        owners[model.name] = cfg.model
        used = []
        if cfg.images and model.image is not None:
            used.append(Embedder(pooled_name(model.name, "image"), model.image))
        if cfg.text_fields and model.text is not None:
            used.append(Embedder(pooled_name(model.name, "text"), model.text, cfg.text_fields, cfg.text_join))
        if not used:
            towers = ", ".join(sorted(model.manifest.towers)) or "none"
            raise ConfigError(
                f"model {str(cfg.model)!r} (towers: {towers}) embeds nothing with images={cfg.images} and "
                f"text_fields={list(cfg.text_fields)}"
            )
        out.extend(used)
    return out


def _file_signature(src: str | Path) -> list[int] | None:
    if not isinstance(src, Path):
        return None  # a URL: its text is in the item already
    try:
        st = os.stat(src)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def content_hash(item: CatalogItem, embedders: Sequence[Embedder], base_dir: Path) -> str:
    """The sha256 of everything that decides an item's stored vectors and payload.

    Covers the item's fields, each local image file's size and modification time (URLs by their
    text), and each embedder's model fingerprint, fields and join; a change in any of them makes
    the item count as changed and re-embedded.
    """
    files = []
    for ref in item.images:
        try:
            files.append(_file_signature(image_source(ref, base_dir)))
        except (OSError, ValueError):
            files.append(None)
    doc = {
        "format": HASH_FORMAT,
        "item": item.model_dump(mode="json"),
        "files": files,
        "embedders": sorted((e.signature() for e in embedders), key=lambda s: s["key"]),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def item_payload(item: CatalogItem, item_hash: str) -> dict[str, Any]:
    """What an item is stored with: its fields and the content hash that lets a rerun skip it."""
    return {**item.stored_payload(), HASH_KEY: item_hash}


def stored_hashes(store: Store, ids: Sequence[str]) -> dict[str, str | None]:
    """The content hash each stored item among `ids` was written with (None: written without one)."""
    return {s.id: s.payload.get(HASH_KEY) for s in store.retrieve(ids, with_payload=True)}


def carried_cf(store: Store, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The `cf` vectors of stored items among `ids`: a re-embedded item is rewritten whole, keeping its `cf`."""
    if not ids or CF_VECTOR not in store.vector_names:
        return {}
    found = store.retrieve(ids, with_vectors=[CF_VECTOR], with_payload=False)
    return {s.id: s.vectors[CF_VECTOR] for s in found if CF_VECTOR in s.vectors and s.vectors[CF_VECTOR].size}


@dataclass(frozen=True)
class Work:
    """An item that needs encoding: new, or changed since it was stored."""

    line: int
    item: CatalogItem
    hash: str
    existed: bool
    cf: np.ndarray | None = None


@dataclass(frozen=True)
class Prepared:
    """An item with its images preprocessed and texts checked, ready for the encoders."""

    work: Work
    pixels: dict[str, np.ndarray]
    texts: dict[str, list[str]]


def error_kind(e: Exception) -> str:
    """The error log's kind for an item's input error (`fetch`, `image`, `text`, a record's own kind)."""
    if isinstance(e, FetchError):
        return "fetch"
    if isinstance(e, ImageDecodeError):
        return "image"
    if isinstance(e, TextInputError):
        return "text"
    if isinstance(e, InvalidRecordError):
        return e.kind
    return "record"


def load_item_images(
    item: CatalogItem, base_dir: Path, *, max_pixels: int, fetch_settings: FetchSettings
) -> list[Image.Image]:
    """Fetch (URLs) and decode every image of an item.

    Raises:
        FetchError: a URL failed.
        ImageDecodeError: an image is missing, corrupt, truncated or over `max_pixels`.
    """
    images = []
    for n, ref in enumerate(item.images, 1):
        src = image_source(ref, base_dir)
        where = f"image {n} of {len(item.images)}"
        try:
            data = fetch(src, fetch_settings) if isinstance(src, str) else src
            images.append(load_image(data, max_pixels=max_pixels))
        except FetchError as e:
            raise FetchError(f"{where}: {e}", url=e.url, status=e.status) from e
        except ImageDecodeError as e:
            if isinstance(src, str):
                raise ImageDecodeError(f"{where} ({ref!r:.200}): {e}") from e
            raise ImageDecodeError(f"{where}: {e}") from e
    return images


def prepare(
    work: Work, embedders: Sequence[Embedder], base_dir: Path, settings: IndexSettings, fetch_settings: FetchSettings
) -> Prepared:
    """Everything an item needs before encoding; runs in a worker thread.

    Raises:
        InputError: (FetchError, ImageDecodeError, TextInputError, InvalidRecordError) the item
            cannot be embedded; nothing is written for it.
    """
    item = work.item
    pixels: dict[str, np.ndarray] = {}
    texts: dict[str, list[str]] = {}
    image_embedders = [e for e in embedders if e.modality == "image"]
    for emb in embedders:
        if emb.modality != "text":
            continue
        rows = [t for f in emb.text_fields for t in item.text_values(f)]
        if rows and emb.text_join is not None:
            rows = [emb.text_join.join(rows)]
        for i, text in enumerate(rows):
            try:
                validate_text(text, max_chars=settings.max_text_chars)
            except TextInputError as e:
                raise TextInputError(f"text {i + 1} of {len(rows)} for {emb.key!r}: {e}") from e
        if rows:
            texts[emb.key] = rows
    if image_embedders and item.images:
        images = load_item_images(item, base_dir, max_pixels=settings.max_pixels, fetch_settings=fetch_settings)
        for emb in image_embedders:
            pre = emb.encoder.preprocessor  # type: ignore[union-attr]
            try:
                pixels[emb.key] = np.stack([pre(img) for img in images])
            except ImageDecodeError as e:
                raise ImageDecodeError(f"preprocessing for {emb.key!r}: {e}") from e
    if not pixels and not texts:
        fields = sorted({f for e in embedders for f in e.text_fields})
        has_images = any(e.modality == "image" for e in embedders)
        what = ("no images and " if has_images else "") + f"no text in {', '.join(fields) or 'any field'}"
        raise InvalidRecordError(f"nothing to embed: {what}", kind="empty")
    return Prepared(work=work, pixels=pixels, texts=texts)


def encode(batch: Sequence[Prepared], embedders: Sequence[Embedder]) -> list[dict[str, np.ndarray]]:
    """Run every embedder once over the batch; one {key: (rows, dim)} mapping per item."""
    out: list[dict[str, np.ndarray]] = [{} for _ in batch]
    for emb in embedders:
        owners = [i for i, p in enumerate(batch) if emb.key in (p.pixels if emb.modality == "image" else p.texts)]
        if not owners:
            continue
        encoder = emb.encoder
        if isinstance(encoder, ImageEncoder):
            parts = [batch[i].pixels[emb.key] for i in owners]
            vectors = encoder.embed_pixels(np.concatenate(parts))
            sizes = [len(p) for p in parts]
        else:
            lists = [batch[i].texts[emb.key] for i in owners]
            vectors = encoder.embed([t for texts in lists for t in texts])
            sizes = [len(t) for t in lists]
        start = 0
        for i, n in zip(owners, sizes, strict=True):
            out[i][emb.key] = vectors[start : start + n]
            start += n
    return out


def encode_isolated(
    batch: Sequence[Prepared], embedders: Sequence[Embedder], failed: Callable[[Prepared, Exception], None]
) -> list[tuple[Prepared, dict[str, np.ndarray]]]:
    """`encode`, and when a batch fails, item by item, so that only the items at fault are lost.

    Args:
        failed: called with each item the encoder fails on (and the error); the others come back.
    """
    try:
        return list(zip(batch, encode(batch, embedders), strict=True))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises untyped errors; isolate the item(s) at fault
        if len(batch) == 1:
            failed(batch[0], e)
            return []
        log.warning("encoding a batch of %d failed (%s); retrying item by item", len(batch), e)
        return [pair for p in batch for pair in encode_isolated([p], embedders, failed)]


def upsert_isolated(store: Store, items: Sequence[Item], refused: Callable[[Item, BatchError], None]) -> list[Item]:
    """Upsert `items`, and when the store refuses the batch, item by item; returns the items written.

    Args:
        refused: called with each item the store refuses (and why); the others are written.

    Raises:
        BackendError: the engine failed (not the items' fault).
    """
    try:
        store.upsert(items, optimize=False)
        return list(items)
    except BatchError as e:
        if len(items) == 1:
            refused(items[0], e)
            return []
        log.warning("the store refused a batch of %d (%s); retrying item by item", len(items), e)
        return [done for it in items for done in upsert_isolated(store, [it], refused)]


@dataclass
class RunCounts:
    """What one pipeline run did."""

    records: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    unreadable: int = 0  # records whose id could not be read (invalid line): they block pruning
    encode_seconds: float = 0.0  # wall time spent inside the encoders
    seen: set[str] = field(default_factory=set)

    @property
    def written(self) -> int:
        return self.new + self.changed


class Pipeline:
    """One run over a stream of records into an open store.

    Args:
        store: the open store (its schema already holds the embedders' vectors).
        embedders: the towers in use.
        settings: batch size, workers, limits.
        fetch_settings: how image URLs are fetched.
        base_dir: relative image paths are resolved against it (the catalog's folder).
        errors: where skipped items go.
        progress: called with the number of records just finished (any outcome).
    """

    def __init__(
        self,
        store: Store,
        embedders: Sequence[Embedder],
        settings: IndexSettings,
        fetch_settings: FetchSettings,
        base_dir: Path,
        errors: ErrorLog,
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.embedders = list(embedders)
        self.settings = settings
        self.fetch_settings = fetch_settings
        self.base_dir = base_dir
        self.errors = errors
        self.progress = progress or (lambda n: None)
        self.counts = RunCounts()
        self._first_line: dict[str, int] = {}

    # -- bookkeeping -----------------------------------------------------------------------------
    def _skip(self, error: ItemError, *, failed: bool = False) -> None:
        self.errors.add(error)
        if failed:
            self.counts.failed += 1
        else:
            self.counts.skipped += 1
        self.progress(1)

    # -- stage 1: read, dedupe, skip unchanged ------------------------------------------------------
    def _triage(self, records: Iterable[CatalogRecord]) -> Iterator[Work]:
        chunk: list[tuple[int, CatalogItem]] = []  # (line, item)
        for rec in records:
            self.counts.records += 1
            if rec.error is not None:
                if rec.error.id is not None:
                    self.counts.seen.add(rec.error.id)
                else:
                    self.counts.unreadable += 1
                self._skip(rec.error)
                continue
            item = cast(CatalogItem, rec.item)  # a record holds an item or an error
            item_id = item.id
            first = self._first_line.get(item_id)
            if first is not None:
                self._skip(
                    ItemError(
                        rec.line,
                        item_id,
                        "duplicate",
                        f"line {rec.line}: id {item_id!r} already appeared on line {first}; the first one is kept",
                    )
                )
                continue
            self._first_line[item_id] = rec.line
            self.counts.seen.add(item_id)
            chunk.append((rec.line, item))
            if len(chunk) >= self.settings.lookup_batch:
                yield from self._changed(chunk)
                chunk = []
        if chunk:
            yield from self._changed(chunk)

    def _changed(self, records: list[tuple[int, CatalogItem]]) -> Iterator[Work]:
        hashes = [content_hash(item, self.embedders, self.base_dir) for _, item in records]
        ids = [item.id for _, item in records]
        stored = stored_hashes(self.store, ids)
        cf = carried_cf(self.store, [i for i, h in zip(ids, hashes, strict=True) if i in stored and stored[i] != h])
        for (line, item), item_id, h in zip(records, ids, hashes, strict=True):
            if stored.get(item_id) == h:
                self.counts.unchanged += 1
                self.progress(1)
                continue
            yield Work(line=line, item=item, hash=h, existed=item_id in stored, cf=cf.get(item_id))

    # -- stage 3: encode and write ----------------------------------------------------------------
    def _encode(self, batch: list[Prepared]) -> list[tuple[Prepared, dict[str, np.ndarray]]]:
        start = time.perf_counter()
        try:
            return encode_isolated(batch, self.embedders, self._encode_failed)
        finally:
            self.counts.encode_seconds += time.perf_counter() - start

    def _encode_failed(self, p: Prepared, e: Exception) -> None:
        self._skip(ItemError(p.work.line, p.work.item.id, "encode", f"encoding failed: {e}"), failed=True)

    def _upsert(self, items: list[Item], works: list[Work]) -> list[Work]:
        by_id = {w.item.id: w for w in works}

        def refused(item: Item, e: BatchError) -> None:
            w = by_id[item.id]
            self._skip(ItemError(w.line, w.item.id, "store", f"the store refused the item: {e}"), failed=True)

        return [by_id[it.id] for it in upsert_isolated(self.store, items, refused)]

    def _flush(self, batch: list[Prepared]) -> None:
        encoded = self._encode(batch)
        if not encoded:
            return
        items, works = [], []
        for p, vectors in encoded:
            w = p.work
            vecs: dict[str, Any] = dict(vectors)
            if w.cf is not None:
                vecs[CF_VECTOR] = w.cf
            items.append(Item(id=w.item.id, vectors=vecs, payload=item_payload(w.item, w.hash)))
            works.append(w)
        written = self._upsert(items, works)
        for w in written:
            if w.existed:
                self.counts.changed += 1
            else:
                self.counts.new += 1
        self.progress(len(written))
        log.info("wrote %d items (%d written in this run)", len(written), self.counts.written)

    # -- the run ----------------------------------------------------------------------------------
    def run(self, records: Iterable[CatalogRecord]) -> RunCounts:
        """Index `records`; returns the counts (also kept in `self.counts`).

        Raises:
            CatalogError: the catalog could not be read at all.
            StorageError: the store failed (BackendError) or refused the setup.
        """
        source = self._triage(records)
        cap = self.settings.in_flight
        batch_size = self.settings.batch_size
        pending: list[Prepared] = []
        in_flight: dict[Future[Prepared], Work] = {}
        exhausted = False
        pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="mmsearch-decode")
        try:
            while True:
                while not exhausted and len(in_flight) < cap:
                    work = next(source, None)
                    if work is None:
                        exhausted = True
                        break
                    fut = pool.submit(prepare, work, self.embedders, self.base_dir, self.settings, self.fetch_settings)
                    in_flight[fut] = work
                if in_flight and len(pending) < batch_size:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for fut in done:
                        self._collect(fut, in_flight.pop(fut), pending)
                if len(pending) >= batch_size or (pending and exhausted and not in_flight):
                    batch, pending = pending[:batch_size], pending[batch_size:]
                    self._flush(batch)
                if exhausted and not in_flight and not pending:
                    return self.counts
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _collect(self, fut: Future[Prepared], work: Work, pending: list[Prepared]) -> None:
        try:
            pending.append(fut.result())
        except InputError as e:
            self._skip(ItemError(work.line, work.item.id, error_kind(e), f"line {work.line}: {e}"))
