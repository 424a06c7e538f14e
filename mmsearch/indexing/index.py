"""`Index`: the library API for indexing a catalog into a store, the same one `mmsearch index` uses.

Example:
    from mmsearch.indexing.index import Index

    with Index.open("index.toml") as index:              # or Index.open(models=["models/clip"])
        summary = index.sync("catalog.jsonl", prune=True, errors="errors.jsonl")
        print(summary.indexed, summary.unchanged, summary.skipped)
        index.add([{"id": "sku-9", "title": "A red bicycle", "images": ["/data/sku-9.jpg"]}])
        hits = index.store.query("clip.image", query_vector, limit=5)
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.errors import ConfigError, InvalidRecordError
from mmsearch.indexing.catalog import (
    CatalogItem,
    CatalogRecord,
    count_records,
    parse_record,
    read_catalog,
)
from mmsearch.indexing.config import EncoderConfig, IndexConfig, load_config, with_overrides
from mmsearch.indexing.errorlog import ErrorLog, ItemError
from mmsearch.indexing.pipeline import Embedder, Pipeline, RunCounts, plan_embedders
from mmsearch.storage import ModelRecord, Store, open_store

if TYPE_CHECKING:
    from indexers.runtime import Model
    from mmsearch.query.engine import Searcher, SearchSettings
    from mmsearch.query.results import SearchResponse


SUMMARY_ERRORS = 100


@dataclass(frozen=True)
class IndexSummary:
    """What one `sync` or `add` did.

    Attributes:
        collection: the collection written to.
        catalog: the catalog file (None for `add`).
        records: records read, valid or not.
        indexed: items encoded and written in this run (`new` + `changed`).
        new: items that were not in the store.
        changed: items whose content hash differed from the stored one (re-embedded).
        unchanged: items already stored with the same content hash (not re-encoded).
        skipped: items left out for bad input (see `skipped_by_kind` and the error log).
        failed: items the encoder or the store refused.
        skipped_by_kind: error kind -> count, over skipped and failed items.
        errors: the first `SUMMARY_ERRORS` skipped or failed items of the run, each with its line,
            id, kind and reason (the error log, when one is written, has them all).
        truncated: texts longer than their model's context, embedded truncated to it (as
            sentence-transformers does), not refused.
        pruned: items deleted from the store because they are no longer in the catalog.
        prune_note: why pruning was not done, when asked for and refused.
        stored: items in the collection after the run.
        seconds: wall time of the run.
        items_per_s: records finished per second (indexed, unchanged and skipped alike).
        indexed_per_s: items encoded and written per second.
        encoder_busy: the share of the run's wall time spent inside the encoders (near 1 when
            fetching and decoding keep up with them).
        error_log: the error log file, if one was written.
    """

    collection: str
    catalog: str | None
    records: int
    indexed: int
    new: int
    changed: int
    unchanged: int
    skipped: int
    failed: int
    skipped_by_kind: dict[str, int] = field(default_factory=dict)
    errors: tuple[ItemError, ...] = ()
    truncated: int = 0
    pruned: int = 0
    prune_note: str | None = None
    stored: int = 0
    seconds: float = 0.0
    items_per_s: float = 0.0
    indexed_per_s: float = 0.0
    encoder_busy: float = 0.0
    error_log: str | None = None

    @property
    def ok(self) -> bool:
        """True when no item was skipped or failed."""
        return self.skipped == 0 and self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def model_records(
    configs: Sequence[EncoderConfig], models: Sequence[Model], embedders: Sequence[Embedder]
) -> list[ModelRecord]:
    """What the collection records of each model folder: its absolute path and the used towers' fingerprints."""
    out = []
    for cfg, model in zip(configs, models, strict=True):
        used = {e.modality: e.encoder.spec.fingerprint for e in embedders if e.encoder.spec.model == model.name}
        out.append(
            ModelRecord(
                name=model.name,
                folder=os.path.abspath(cfg.model),
                fingerprints=used,
                random_weights=model.random_weights,
            )
        )
    return out


def item_records(
    items: Iterable[CatalogItem | CatalogRecord | Mapping[str, Any]], config: IndexConfig
) -> Iterator[CatalogRecord]:
    """Items given in code as catalog records, each at its position (from 1): what `Index.add` indexes.

    Mappings are parsed with the config's column mapping; one that does not parse, or an object
    that is no item, becomes a record holding its `ItemError`. `CatalogRecord`s pass unchanged.
    """
    for n, obj in enumerate(items, 1):
        if isinstance(obj, CatalogRecord):
            yield obj
            continue
        if isinstance(obj, CatalogItem):
            yield CatalogRecord(line=n, item=obj)
            continue
        if not isinstance(obj, Mapping):
            yield CatalogRecord(
                line=n,
                error=ItemError(
                    n, None, "json", f"item {n} is a {type(obj).__name__}, expected a CatalogItem or a mapping"
                ),
            )
            continue
        try:
            item = parse_record(obj, config.catalog.columns, exclude=config.catalog.exclude)
        except InvalidRecordError as e:
            raw_id = obj.get(config.catalog.columns.id)
            shown = raw_id if isinstance(raw_id, str) else None
            yield CatalogRecord(line=n, error=ItemError(n, shown, e.kind, f"item {n}: {e}"))
            continue
        yield CatalogRecord(line=n, item=item)


class Index:
    """Encoders and a store, opened once, for indexing catalogs and items.

    Use `Index.open(...)`; close it (or use it as a context manager) to release the store.
    """

    def __init__(self, config: IndexConfig, store: Store, embedders: Sequence[Embedder]) -> None:
        self.config = config
        self.store = store
        self.embedders = list(embedders)
        self._searcher: Searcher | None = None

    @classmethod
    def open(
        cls,
        config: IndexConfig | str | Path | None = None,
        *,
        models: Sequence[str | Path] = (),
        collection: str | None = None,
        store_path: str | Path | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        device: str | None = None,
    ) -> Index:
        """Load the encoders and open (or create) the store.

        Args:
            config: an `IndexConfig`, a TOML file, or None for the defaults.
            models: model folders replacing the config's encoders (default fields).
            collection, store_path, batch_size, workers, device: override the config.

        Raises:
            ConfigError: no encoders, or invalid settings.
            ModelError: a model folder cannot be loaded.
            StorageError: the store cannot be opened, or holds vectors from other models.
        """
        from indexers.runtime import load_model

        cfg = config if isinstance(config, IndexConfig) else load_config(config)
        cfg = with_overrides(
            cfg,
            collection=collection,
            store_path=store_path,
            models=models,
            batch_size=batch_size,
            workers=workers,
            device=device,
        )
        if not cfg.encoders:
            raise ConfigError("no encoders: pass model folders (--model DIR) or list them under [[encoders]]")
        s = cfg.index
        loaded = [
            load_model(
                e.model,
                device=s.device,
                threads=s.threads,
                batch_size=s.batch_size,
                max_text_chars=s.max_text_chars,
            )
            for e in cfg.encoders
        ]
        embedders = plan_embedders(cfg.encoders, loaded)
        store = open_store(cfg.store, encoders=[e.encoder.spec for e in embedders])
        try:
            store.record_models(model_records(cfg.encoders, loaded, embedders))
        except BaseException:
            store.close()
            raise
        return cls(cfg, store, embedders)

    def count_records(self, catalog: str | Path) -> int:
        """Records in a catalog file (for a progress bar's total)."""
        return count_records(catalog, self.config.catalog)

    def sync(
        self,
        catalog: str | Path,
        *,
        prune: bool = False,
        errors: ErrorLog | str | Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> IndexSummary:
        """Bring the store in line with a catalog file.

        New items are encoded and written; items whose content hash changed are re-embedded (their
        `cf` vector kept); unchanged items are skipped without encoding; bad items are skipped and
        logged. With `prune`, items in the store whose id is not in the catalog are deleted, unless
        some catalog line was unreadable (its id unknown), in which case nothing is pruned.

        Args:
            catalog: a JSONL, CSV/TSV or Parquet file; relative image paths are relative to it.
            prune: delete stored items that are no longer in the catalog.
            errors: an `ErrorLog`, a path for a JSONL error log, or None (in memory only).
            progress: called with the number of records finished, as they finish.

        Raises:
            CatalogError: the catalog cannot be read at all.
            StorageError: the store failed.
        """
        path = Path(catalog)
        records = read_catalog(path, self.config.catalog)
        return self._run(records, path.resolve().parent, str(path), errors, progress, prune)

    def add(
        self,
        items: Iterable[CatalogItem | CatalogRecord | Mapping[str, Any]],
        *,
        base_dir: str | Path = ".",
        errors: ErrorLog | str | Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> IndexSummary:
        """Index items given in code: `CatalogItem`s or mappings in the catalog schema.

        Unchanged items (same content hash as stored) are skipped; bad ones are logged, not raised.

        Args:
            items: the items; mappings go through the config's column mapping; `CatalogRecord`s
                (see `item_records`) are indexed as they are, an error record logged as skipped.
            base_dir: what relative image paths are relative to.
            errors, progress: as in `sync`.
        """
        return self._run(item_records(items, self.config), Path(base_dir).resolve(), None, errors, progress, False)

    def delete(self, item_ids: Iterable[str]) -> int:
        """Delete items by id; returns how many existed."""
        return self.store.delete(item_ids)

    def _run(
        self,
        records: Iterable[CatalogRecord],
        base_dir: Path,
        catalog: str | None,
        errors: ErrorLog | str | Path | None,
        progress: Callable[[int], None] | None,
        prune: bool,
    ) -> IndexSummary:
        self._searcher = None  # the run may add vectors (a new encoder): signals are re-read
        log = errors if isinstance(errors, ErrorLog) else ErrorLog(errors)
        before = Counter(log.counts)
        kept_before = len(log.errors)
        start = time.perf_counter()
        try:
            pipeline = Pipeline(
                self.store, self.embedders, self.config.index, self.config.fetch, base_dir, log, progress
            )
            counts = pipeline.run(records)
            pruned, note = self._prune(counts) if prune else (0, None)
            if self.config.index.optimize and (counts.written or pruned):
                self.store.optimize()
        finally:
            if not isinstance(errors, ErrorLog):
                log.close()
        kinds = dict(sorted((log.counts - before).items()))
        run_errors = tuple(log.errors[kept_before : kept_before + SUMMARY_ERRORS])
        return self._summary(counts, kinds, run_errors, log, catalog, pruned, note, time.perf_counter() - start)

    def _prune(self, counts: RunCounts) -> tuple[int, str | None]:
        if counts.unreadable:
            return 0, (
                f"not pruned: {counts.unreadable} catalog record(s) had no readable id, so items "
                f"missing from the catalog cannot be told apart from them; fix them and run again"
            )
        gone = [s.id for s in self.store.iter_items(with_payload=False) if s.id not in counts.seen]
        return (self.store.delete(gone) if gone else 0), None

    def _summary(
        self,
        counts: RunCounts,
        kinds: dict[str, int],
        run_errors: tuple[ItemError, ...],
        log: ErrorLog,
        catalog: str | None,
        pruned: int,
        note: str | None,
        seconds: float,
    ) -> IndexSummary:
        done = counts.written + counts.unchanged + counts.skipped + counts.failed
        return IndexSummary(
            collection=self.store.settings.collection,
            catalog=catalog,
            records=counts.records,
            indexed=counts.written,
            new=counts.new,
            changed=counts.changed,
            unchanged=counts.unchanged,
            skipped=counts.skipped,
            failed=counts.failed,
            skipped_by_kind=kinds,
            errors=run_errors,
            truncated=counts.truncated,
            pruned=pruned,
            prune_note=note,
            stored=self.store.count(),
            seconds=round(seconds, 3),
            items_per_s=round(done / seconds, 2) if seconds > 0 else 0.0,
            indexed_per_s=round(counts.written / seconds, 2) if seconds > 0 else 0.0,
            encoder_busy=round(min(1.0, counts.encode_seconds / seconds), 3) if seconds > 0 else 0.0,
            error_log=str(log.path) if log.path is not None else None,
        )

    def searcher(self, settings: SearchSettings | None = None) -> Searcher:
        """A `Searcher` over this index's store and loaded encoders, with the collection's CF and EASE models.

        Reused between calls; a new one is made when `settings` are given or after `sync`/`add`,
        which may have changed the collection's vectors.
        """
        from mmsearch.cf.collection import load_collection_models
        from mmsearch.query.engine import Searcher

        if self._searcher is None or settings is not None:
            fitted = load_collection_models(self.store)
            encoders = [e.encoder for e in self.embedders]
            self._searcher = Searcher(self.store, encoders, fitted.cf, settings, ease_model=fitted.ease)
        return self._searcher

    def search(self, **query: Any) -> SearchResponse:
        """Hybrid search over this index: `Searcher.search(text=, image=, item=, user=, weights=, ...)`."""
        return self.searcher().search(**query)

    def recommend(self, user: str | None = None, **options: Any) -> SearchResponse:
        """Items for a user or a history: `Searcher.recommend(user, history=..., ...)`."""
        return self.searcher().recommend(user, **options)

    def close(self) -> None:
        """Release the store (and its folder lock)."""
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
