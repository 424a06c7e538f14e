"""Indexing beyond one machine: a Ray Data `Datasink` and a Spark writer for mmsearch collections.

Both run the same job as `mmsearch index` (same config file, same encoders and fields, same
catalog schema and column mapping, same content hash, same payload), split in two steps:

- embed: `EmbedBatch` (a Ray `map_batches` class; `SparkIndexer.embed` for `mapInArrow`) reads
  each row as a catalog record, skips rows whose content hash is already stored before embedding
  them, embeds the rest and appends the `mm_*` columns (`rows`);
- write: `MmsearchSink` (`ds.write_datasink(sink)`) or `SparkIndexer.write(df)` upserts the rows
  with retries and reports every row that could not be stored (`JobSummary`, the error log).

Rows written this way are the items `mmsearch index` would write, so a rerun, or `mmsearch index`
over the same catalog, re-embeds nothing. Many writers need a Qdrant server; Qdrant Edge is
single-writer, and the job refuses a concurrency above 1 for it before any work starts.

Modules: `job` (the driver's plan, `IndexJob`, `JobSpec`, the concurrency rule), `embed`, `rows`
(the columns and their Arrow encoding), `writer`, `stores` (retries, clients, the folder lock),
`placement` (device and threads from Ray's or Spark's grant), `report`, `ray_sink`, `spark`.
Importing this package imports neither ray, pyspark, pandas nor pyarrow; `MmsearchSink` loads ray
when first named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmsearch.indexing.distributed.embed import EmbedBatch
from mmsearch.indexing.distributed.job import IndexJob, JobSpec, job_config, writer_concurrency
from mmsearch.indexing.distributed.report import JobSummary, WriteReport
from mmsearch.indexing.distributed.rows import (
    ERROR_COLUMN,
    ERROR_KIND_COLUMN,
    HASH_COLUMN,
    ID_COLUMN,
    PAYLOAD_COLUMN,
    STATUS_COLUMN,
    STATUSES,
    vector_column,
)
from mmsearch.indexing.distributed.spark import SparkIndexer
from mmsearch.indexing.distributed.stores import WriteSettings

if TYPE_CHECKING:
    from mmsearch.indexing.distributed.ray_sink import MmsearchSink


def __getattr__(name: str) -> Any:
    if name == "MmsearchSink":  # the sink subclasses ray.data.Datasink: importing it imports ray
        from mmsearch.indexing.distributed.ray_sink import MmsearchSink

        return MmsearchSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ERROR_COLUMN",
    "ERROR_KIND_COLUMN",
    "HASH_COLUMN",
    "ID_COLUMN",
    "PAYLOAD_COLUMN",
    "STATUSES",
    "STATUS_COLUMN",
    "EmbedBatch",
    "IndexJob",
    "JobSpec",
    "JobSummary",
    "MmsearchSink",
    "SparkIndexer",
    "WriteReport",
    "WriteSettings",
    "job_config",
    "vector_column",
    "writer_concurrency",
]
