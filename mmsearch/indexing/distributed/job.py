"""One Ray or Spark indexing job, planned on the driver before any work starts.

`IndexJob` reads the same configuration as `mmsearch index` (a config file or `IndexConfig`, model
folders, store settings), makes every path absolute (Ray and Spark workers resolve relative paths
against their own folders), applies the concurrency rule, loads the models once to learn their
vector keys and fingerprints, creates or checks the collection (a fingerprint mismatch fails here,
not in a worker), and, for a single-writer store, reads the content hashes already stored so the
workers can skip unchanged rows before embedding them. What the workers need travels in a
`JobSpec`; at the end `finish` turns the write tasks' reports into a `JobSummary`, writes the
error log and builds the store's indexes.

Concurrency rules:
- a Qdrant server (`backend = "server"`) takes many writers: any `concurrency`;
- Qdrant Edge, and qdrant-client's local mode with a `path`, take one writer at a time: the job
  refuses `concurrency > 1`, and its writers wait for the folder's lock rather than fail;
- local mode in memory (`memory` without a `path`) is refused: its items would live and die in
  whichever worker process wrote them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexers.onnx_session import Device
from indexers.runtime import Model, load_model
from mmsearch.errors import ConfigError
from mmsearch.indexing.catalog import HASH_KEY
from mmsearch.indexing.config import IndexConfig, load_config, with_overrides
from mmsearch.indexing.distributed.report import JobSummary, WriteReport
from mmsearch.indexing.distributed.rows import vector_columns
from mmsearch.indexing.distributed.stores import WriteSettings, shared_store, single_writer
from mmsearch.indexing.errorlog import ErrorLog
from mmsearch.indexing.pipeline import Embedder, plan_embedders, stored_hashes
from mmsearch.storage import Store, StoreSettings, load_settings, open_store

log = logging.getLogger(__name__)
SINGLE_WRITER_ROWS_PER_WRITE = 4096
_MODELS: dict[tuple[str, str, int | None, int], Model] = {}
_MODELS_LOCK = threading.Lock()


def cached_model(folder: str | Path, *, device: Device, threads: int | None, batch_size: int) -> Model:
    """Load a model folder once per process (Spark calls the embed function once per partition)."""
    key = (str(Path(folder).resolve()), device, threads, batch_size)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(folder, device=device, threads=threads, batch_size=batch_size)
        return _MODELS[key]


def load_embedders(config: IndexConfig, device: Device, threads: int | None) -> list[Embedder]:
    """The towers the config's encoders contribute, loaded (once per process) for embedding."""
    models = [
        cached_model(e.model, device=device, threads=threads, batch_size=config.index.batch_size)
        for e in config.encoders
    ]
    return plan_embedders(config.encoders, models)


def job_config(
    config: IndexConfig | str | Path | None,
    models: Sequence[str | Path] = (),
    store: StoreSettings | Mapping[str, Any] | None = None,
) -> IndexConfig:
    """The job's `IndexConfig` with every path absolute, as the workers will read it.

    Args:
        config: an `IndexConfig`, a TOML file (relative paths in it are relative to it), or None.
        models: model folders replacing the config's encoders (default fields).
        store: `StoreSettings` replacing the config's `[store]`, or a mapping of fields overriding some.

    Raises:
        ConfigError: no encoders, or a setting does not validate.
    """
    if isinstance(config, IndexConfig):
        cfg = config
    else:
        cfg = load_config(Path(config).resolve() if config is not None else None)
    cfg = with_overrides(cfg, models=[Path(m).resolve() for m in models])
    if not cfg.encoders:
        raise ConfigError("no encoders: pass model folders (models=[...]) or list them under [[encoders]]")
    settings = cfg.store
    if isinstance(store, StoreSettings):
        settings = store
    elif store is not None:
        settings = load_settings(settings, **dict(store))
    if settings.data_path is not None:
        settings = load_settings(settings, path=settings.data_path.resolve())
    encoders = tuple(e.model_copy(update={"model": e.model.resolve()}) for e in cfg.encoders)
    return cfg.model_copy(update={"store": settings, "encoders": encoders})


def writer_concurrency(settings: StoreSettings, concurrency: int | None) -> int | None:
    """How many writers may run at once for this store (None: as many as the engine likes).

    Raises:
        ConfigError: a concurrency the store cannot honour, or an in-memory store.
    """
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)):
        raise ConfigError(f"concurrency={concurrency!r}: expected a positive integer or None")
    if concurrency is not None and concurrency < 1:
        raise ConfigError(f"concurrency={concurrency}: expected a positive integer or None")
    if settings.backend == "memory" and settings.path is None:
        raise ConfigError(
            "backend 'memory' without a path keeps its items in the memory of the process that writes "
            "them, so rows written by Ray or Spark workers would vanish with the workers; write to "
            "backend 'edge' (one writer) or 'server' (many writers)"
        )
    if not single_writer(settings):
        return concurrency
    if concurrency not in (None, 1):
        raise ConfigError(
            f"concurrency={concurrency}: the {settings.backend} store at {settings.data_path} takes one "
            f"writer at a time (the process that has the folder open holds its lock); write with "
            f"concurrency=1, or to a Qdrant server (backend 'server') for several writers"
        )
    return 1


@dataclass(frozen=True)
class JobSpec:
    """What every embed and write worker of one job needs: picklable, every path absolute.

    Attributes:
        config: the job's configuration (store, catalog column mapping, limits, encoders).
        base_dir: what relative image paths in the rows are relative to (the catalog's folder).
        columns: vector key -> its column.
        dims: vector key -> its dimension.
        write: how workers write.
        stored: for a single-writer store, item id -> the content hash it is stored with, read on
            the driver before the job; None for a server, which the workers ask themselves.
    """

    config: IndexConfig
    base_dir: Path
    columns: dict[str, str]
    dims: dict[str, int]
    write: WriteSettings = field(default_factory=WriteSettings)
    stored: Mapping[str, str | None] | None = field(default=None, repr=False)

    @property
    def store(self) -> StoreSettings:
        return self.config.store

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str | None]:
        """The content hashes stored for `ids` (absent ids are not stored)."""
        if self.stored is not None:
            return {i: self.stored[i] for i in ids if i in self.stored}
        store = shared_store(self.store, self.write)
        return stored_hashes(store, ids)


def _snapshot(store: Store) -> dict[str, str | None]:
    return {s.id: s.payload.get(HASH_KEY) for s in store.iter_items(page_size=1024)}


class IndexJob:
    """The driver's side of a Ray or Spark indexing job (see the module docstring).

    Args:
        config: an `IndexConfig`, a TOML config file (as for `mmsearch index -c`), or None.
        models: model folders replacing the config's encoders, each with the default fields.
        store: store settings (or fields) overriding the config's `[store]`.
        base_dir: what relative image paths in the rows are relative to (default: this folder).
        errors: a JSONL error log written when the job ends (one line per skipped or failed row).
        concurrency: how many writers will run at once (pass the same to the engine); None: the
            engine's choice for a server, 1 for a single-writer store.
        write: writer settings (batch size, retries, backoff, lock timeout).
        engine: `ray` or `spark`, for the summary.

    Raises:
        ConfigError: no encoders, a bad setting, a concurrency the store cannot honour.
        ModelError: a model folder cannot be loaded.
        StorageError: the store cannot be opened, or holds vectors of other models.
    """

    def __init__(
        self,
        config: IndexConfig | str | Path | None = None,
        *,
        models: Sequence[str | Path] = (),
        store: StoreSettings | Mapping[str, Any] | None = None,
        base_dir: str | Path = ".",
        errors: str | Path | None = None,
        concurrency: int | None = None,
        write: WriteSettings | Mapping[str, Any] | None = None,
        engine: str = "ray",
    ) -> None:
        cfg = job_config(config, models, store)
        self.concurrency = writer_concurrency(cfg.store, concurrency)
        self.engine = engine
        self.errors = Path(errors).resolve() if errors is not None else None
        write_settings = write if isinstance(write, WriteSettings) else WriteSettings(**(write or {}))
        embedders = load_embedders(cfg, "cpu", 1)
        specs = [e.encoder.spec for e in embedders]
        with open_store(cfg.store, encoders=specs) as opened:  # create or check the collection now
            stored = _snapshot(opened) if single_writer(cfg.store) else None
        self._specs = specs
        self.spec = JobSpec(
            config=cfg,
            base_dir=Path(base_dir).resolve(),
            columns=vector_columns(e.key for e in embedders),
            dims={e.key: e.encoder.spec.dim for e in embedders},
            write=write_settings,
            stored=stored,
        )
        log.info(
            "%s job into %r (%s): vectors %s, %s stored item(s) known",
            engine,
            cfg.store.collection,
            cfg.store.backend,
            sorted(self.spec.columns),
            "server-side" if stored is None else len(stored),
        )

    @property
    def single_writer(self) -> bool:
        return single_writer(self.spec.store)

    @property
    def rows_per_write(self) -> int | None:
        """Rows per write task: fewer open/close cycles of a single-writer folder."""
        if self.spec.write.rows_per_write is not None:
            return self.spec.write.rows_per_write
        return SINGLE_WRITER_ROWS_PER_WRITE if self.single_writer else None

    def check_store(self) -> None:
        """Open and close the store on the driver: it still exists (or is created again) and is not locked.

        Raises:
            StoreLockedError: a single-writer folder is open elsewhere.
        """
        open_store(self.spec.store, encoders=self._specs).close()

    def finish(self, reports: Iterable[WriteReport | None], seconds: float) -> JobSummary:
        """Sum the write tasks' reports, write the error log, build the store's indexes, summarise."""
        total = WriteReport.merged(reports)
        with ErrorLog(self.errors) as errors:
            for e in total.errors:
                errors.add(e)
        with open_store(self.spec.store) as store:
            if self.spec.config.index.optimize and total.written:
                store.optimize()
            stored = store.count()
        summary = JobSummary.of(
            self.engine, self.spec.store.collection, total, stored, seconds, str(self.errors) if self.errors else None
        )
        log.info("%s", summary)
        return summary
