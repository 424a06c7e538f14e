"""A Ray Data `Datasink` for mmsearch collections: `ds.write_datasink(MmsearchSink(...))`.

    sink = MmsearchSink("mmsearch.toml", base_dir="/data/catalog", errors="ray-errors.jsonl")
    ds = ray.data.read_json("/data/catalog/catalog.jsonl")
    ds = ds.map_batches(EmbedBatch, fn_constructor_kwargs=sink.embed_kwargs, batch_size=64,
                        batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=4), num_gpus=1)
    ds.write_datasink(sink, concurrency=sink.concurrency)
    print(sink.summary)

Building the sink plans the job on the driver (`IndexJob`): config, concurrency rule, models,
the collection created or checked, the stored content hashes read. `on_write_start` checks the
store again on the driver just before the first write task (it is not locked, it still exists);
each write task upserts its blocks with retries (`writer.RowWriter`) and returns a `WriteReport`;
`on_write_complete` sums them into `sink.summary` (a `JobSummary`), writes the error log and
builds the store's indexes. For a single-writer store (Qdrant Edge) the write tasks run on the
driver's node (`supports_distributed_writes` is False) and take the folder one at a time.

This module imports ray; `mmsearch.indexing.distributed` loads it only when `MmsearchSink` is used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ray.data import Datasink
from ray.data.block import Block, BlockAccessor

from mmsearch.errors import ConfigError
from mmsearch.indexing.config import IndexConfig
from mmsearch.indexing.distributed.job import IndexJob, JobSpec
from mmsearch.indexing.distributed.report import JobSummary, WriteReport
from mmsearch.indexing.distributed.rows import STATUS_COLUMN
from mmsearch.indexing.distributed.stores import WriteSettings
from mmsearch.indexing.distributed.writer import write_tables
from mmsearch.storage import StoreSettings

log = logging.getLogger(__name__)


class MmsearchSink(Datasink[WriteReport]):
    """Writes embedded rows into an mmsearch collection; the arguments are `IndexJob`'s.

    Args:
        config: an `IndexConfig` or a TOML config file (as for `mmsearch index -c`), or None.
        models: model folders replacing the config's encoders.
        store: store settings (or fields) overriding the config's `[store]`.
        base_dir: what relative image paths in the rows are relative to.
        errors: a JSONL error log written when the job ends.
        concurrency: the write concurrency you will pass to `write_datasink` (`sink.concurrency`
            gives it back): any for a server, at most 1 for Qdrant Edge.
        write: writer settings (batch size, retries, backoff, lock timeout, rows per write task).

    Attributes:
        summary: the `JobSummary`, once `write_datasink` has returned.

    Build one sink per job: the content hashes already stored are read when it is built.

    Raises:
        ConfigError: a concurrency the store cannot honour, an in-memory store, a bad setting.
        ModelError, StorageError: as `IndexJob`.
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
    ) -> None:
        self._job: IndexJob | None = IndexJob(
            config,
            models=models,
            store=store,
            base_dir=base_dir,
            errors=errors,
            concurrency=concurrency,
            write=write,
            engine="ray",
        )
        self._spec: JobSpec = self._job.spec
        self._single = self._job.single_writer
        self._rows_per_write = self._job.rows_per_write
        self._started = time.perf_counter()
        self.summary: JobSummary | None = None

    # Write tasks get a pickled copy: the job's spec without the driver's state (the stored hashes
    # snapshot is for the embed actors, not for writers).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_job"] = None
        state["_spec"] = JobSpec(
            config=self._spec.config,
            base_dir=self._spec.base_dir,
            columns=self._spec.columns,
            dims=self._spec.dims,
            write=self._spec.write,
        )
        return state

    @property
    def job(self) -> IndexJob:
        if self._job is None:
            raise ConfigError("this MmsearchSink is a write task's copy; the job lives on the driver")
        return self._job

    @property
    def embed_kwargs(self) -> dict[str, Any]:
        """`fn_constructor_kwargs` for `map_batches(EmbedBatch, ...)`: the same job, stored hashes included."""
        return {"job": self.job.spec}

    @property
    def concurrency(self) -> int | None:
        """The write concurrency to pass to `write_datasink`: 1 for a single-writer store."""
        return self.job.concurrency

    @property
    def supports_distributed_writes(self) -> bool:
        return not self._single  # an Edge folder is on the driver's node

    @property
    def min_rows_per_write(self) -> int | None:
        return self._rows_per_write

    def get_name(self) -> str:
        return "Mmsearch"

    def on_write_start(self, schema: Any = None) -> None:
        """Check, on the driver, that the rows were embedded and that the store can be opened now."""
        if schema is not None and STATUS_COLUMN not in schema.names:
            raise ConfigError(
                f"the rows reaching MmsearchSink have no {STATUS_COLUMN!r} column: embed them first with "
                f"ds.map_batches(EmbedBatch, fn_constructor_kwargs=sink.embed_kwargs, ...); their columns "
                f"are {schema.names[:20]}"
            )
        self.job.check_store()

    def write(self, blocks: Iterable[Block], ctx: Any) -> WriteReport:
        """Upsert one write task's blocks; returns what happened to each row."""
        return write_tables(self._spec, (BlockAccessor.for_block(b).to_arrow() for b in blocks))

    def on_write_complete(self, write_result: Any) -> None:
        self.summary = self.job.finish(write_result.write_returns, time.perf_counter() - self._started)

    def on_write_failed(self, error: Exception) -> None:
        log.error("the Ray write into %r failed: %s", self._spec.store.collection, error)
