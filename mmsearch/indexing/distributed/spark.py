"""Spark: the embed step as a `mapInArrow` function with its exact output schema, and a partition writer.

    indexer = SparkIndexer("mmsearch.toml", base_dir="/data/catalog", errors="spark-errors.jsonl")
    rows = spark.read.json("/data/catalog/catalog.jsonl")
    embedded = rows.mapInArrow(indexer.embed, indexer.embed_schema(rows.schema))
    summary = indexer.write(embedded)

`embed_schema` is the input schema plus the `mm_*` columns (see `rows`), built as a new
`StructType` (`StructType.add` changes the schema object it is called on, which is the
DataFrame's own). The columns need no backticks. `mapInArrow` keeps Arrow's types end to end, so
a row reaches `parse_record` as a Parquet row would (`mapInPandas` would turn an integer column
with nulls into floats, changing payloads and hashes). `write` runs `write_partition` on every
partition (one `WriteReport` row each) and sums them on the driver. For a single-writer store
(Qdrant Edge) it first gathers the rows into one partition (the embedding before it stays
parallel) and refuses a cluster master: an Edge folder lives on one machine.

Nothing here imports pyspark until a method is called.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmsearch.errors import ConfigError
from mmsearch.indexing.config import IndexConfig
from mmsearch.indexing.distributed.embed import EmbedBatch
from mmsearch.indexing.distributed.job import IndexJob, JobSpec
from mmsearch.indexing.distributed.report import JobSummary, WriteReport
from mmsearch.indexing.distributed.rows import arrow_fields, check_no_clash, import_arrow
from mmsearch.indexing.distributed.stores import WriteSettings
from mmsearch.indexing.distributed.writer import write_tables
from mmsearch.storage import StoreSettings

REPORT_SCHEMA = "report string"


class SparkIndexer:
    """Embeds and writes a Spark DataFrame of catalog rows; the arguments are `IndexJob`'s.

    Args:
        config: an `IndexConfig` or a TOML config file (as for `mmsearch index -c`), or None.
        models: model folders replacing the config's encoders.
        store: store settings (or fields) overriding the config's `[store]`.
        base_dir: what relative image paths in the rows are relative to.
        errors: a JSONL error log written when the job ends.
        concurrency: concurrent writers (partitions of the write); None keeps the DataFrame's
            partitions for a server; a single-writer store takes 1.
        write: writer settings (batch size, retries, backoff, lock timeout).

    Build one indexer per job: the content hashes already stored are read when it is built.

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
            engine="spark",
        )
        self.spec: JobSpec = self._job.spec
        self._started = time.perf_counter()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_job": None}  # executors need the spec; the job stays on the driver

    @property
    def job(self) -> IndexJob:
        if self._job is None:
            raise ConfigError("this SparkIndexer is an executor's copy; the job lives on the driver")
        return self._job

    def embed_schema(self, schema: Any) -> Any:
        """The exact output `StructType` of `embed` for input rows of `schema`.

        Raises:
            ConfigError: the input already has one of the columns the embed step adds.
        """
        from pyspark.sql.pandas.types import from_arrow_schema
        from pyspark.sql.types import StructType

        check_no_clash(schema.fieldNames(), self.spec.columns)
        added = from_arrow_schema(import_arrow().schema(arrow_fields(self.spec.columns)))
        return StructType([*schema.fields, *added.fields])

    def embed(self, batches: Iterator[Any]) -> Iterator[Any]:
        """Embed a partition's Arrow batches: the function for `DataFrame.mapInArrow`."""
        embed = EmbedBatch(self.spec)
        try:
            for batch in batches:
                yield embed(batch)
        finally:
            embed.close()

    def write_partition(self, batches: Iterator[Any]) -> Iterator[Any]:
        """Write a partition's embedded batches; yields one Arrow batch with the partition's report (JSON)."""
        report = write_tables(self.spec, batches)
        yield import_arrow().RecordBatch.from_pydict({"report": [report.to_json()]})

    def write(self, embedded: Any) -> JobSummary:
        """Write an embedded DataFrame (the output of `mapInArrow(self.embed, ...)`); returns the job's summary.

        Raises:
            ConfigError: a single-writer store and a master that is not local.
        """
        frame = embedded
        if self.job.single_writer:
            master = embedded.sparkSession.conf.get("spark.master", "local")
            if not str(master).startswith("local"):
                raise ConfigError(
                    f"the {self.spec.store.backend} store at {self.spec.store.data_path} is a folder on one "
                    f"machine, but Spark's master is {master!r}; on a cluster write to a Qdrant server "
                    f"(backend 'server')"
                )
            frame = embedded.repartition(1)
        elif self.job.concurrency is not None:
            frame = embedded.repartition(self.job.concurrency)
        rows = frame.mapInArrow(self.write_partition, REPORT_SCHEMA).collect()
        reports = [WriteReport.from_json(r["report"]) for r in rows]
        return self.job.finish(reports, time.perf_counter() - self._started)
