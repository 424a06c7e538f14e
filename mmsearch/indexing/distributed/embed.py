"""The embed step: catalog rows in, the same rows out with `mm_*` columns (see `rows`), per batch.

Each row is a catalog record, read exactly as `mmsearch index` reads a Parquet catalog's row (the
config's column mapping and `exclude`, nulls as absent): `id`, `title`, `description`,
`reviews`, `images` (paths relative to `base_dir`, or URLs) and any other column as payload. Then,
as in the pipeline and with the pipeline's own functions: the content hash; rows whose hash is
already stored come out `unchanged` without being fetched, decoded or embedded; the others are
fetched, decoded and preprocessed in a thread pool and embedded by every configured tower in one
run per batch; a row that fails comes out `skipped` or `failed` with the error log's kind and
reason, and the rest of the batch goes on.

Ray: `ds.map_batches(EmbedBatch, fn_constructor_kwargs=sink.embed_kwargs, batch_format="pyarrow",
compute=ray.data.ActorPoolStrategy(size=N))`. Spark: `SparkIndexer.embed` calls it per partition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mmsearch.errors import InputError, InvalidRecordError
from mmsearch.indexing.catalog import CatalogItem, arrow_record, parse_record
from mmsearch.indexing.distributed.job import JobSpec, load_embedders
from mmsearch.indexing.distributed.placement import placement
from mmsearch.indexing.distributed.rows import (
    CHANGED,
    FAILED,
    NEW,
    SKIPPED,
    UNCHANGED,
    EmbeddedRow,
    append_columns,
    check_no_clash,
    like,
    to_arrow,
)
from mmsearch.indexing.pipeline import (
    Prepared,
    Work,
    content_hash,
    encode_isolated,
    error_kind,
    item_payload,
    prepare,
)

_ABSENT = object()


class EmbedBatch:
    """Embed one batch of catalog rows: a Ray Data `map_batches` class, also called per Spark partition.

    Args:
        job: the job's `JobSpec` (`MmsearchSink.embed_kwargs` or `SparkIndexer.spec` hands it over).

    Calling it with a batch (a pyarrow Table or RecordBatch, a pandas DataFrame or a dict of
    columns) returns the batch in the same form with the `mm_*` columns appended.

    Attributes:
        device, threads: where its encoders run (`placement`: Ray's or Spark's grant, or the config).
        embedders: the towers in use, as `mmsearch index` plans them.

    Raises (when called):
        ConfigError: the rows already have an `mm_*` column, or the batch is of another type.
    """

    def __init__(self, job: JobSpec) -> None:
        self.job = job
        self.device, self.threads = placement(job.config.index)
        self.embedders = load_embedders(job.config, self.device, self.threads)
        self._pool = ThreadPoolExecutor(job.config.index.workers, thread_name_prefix="mmsearch-decode")

    def close(self) -> None:
        """Stop the decode threads (the models stay loaded for the process's next batches)."""
        self._pool.shutdown(wait=True)

    def __call__(self, batch: Any) -> Any:
        table = to_arrow(batch)
        check_no_clash(table.schema.names, self.job.columns)
        rows = self.embed_rows(table.to_pylist())
        return like(batch, append_columns(table, rows, self.job.columns, self.job.dims))

    def embed_rows(self, raws: Sequence[Mapping[str, Any]]) -> list[EmbeddedRow]:
        """One `EmbeddedRow` per raw row (a column -> value mapping), in order."""
        out: list[EmbeddedRow | None] = [None] * len(raws)
        items = self._parse(raws, out)
        stored = self.job.stored_hashes([item.id for item in items.values()])
        work: dict[int, Work] = {}
        for i, item in items.items():
            h = content_hash(item, self.embedders, self.job.base_dir)
            known = stored.get(item.id, _ABSENT)
            if known == h:
                out[i] = EmbeddedRow(id=item.id, status=UNCHANGED, hash=h)
            else:  # rows of a dataset have no catalog line: 0
                work[i] = Work(line=0, item=item, hash=h, existed=known is not _ABSENT)
        self._embed(work, out)
        missing = [i for i, r in enumerate(out) if r is None]
        if missing:  # every branch above decides each row: a gap is a bug, never a silently lost row
            raise RuntimeError(f"the embed step decided nothing for row(s) {missing[:10]} of the batch")
        return [r for r in out if r is not None]

    def _parse(self, raws: Sequence[Mapping[str, Any]], out: list[EmbeddedRow | None]) -> dict[int, CatalogItem]:
        catalog = self.job.config.catalog
        items: dict[int, CatalogItem] = {}
        first: dict[str, int] = {}
        for i, raw in enumerate(raws):
            record = arrow_record(raw)
            try:
                item = parse_record(record, catalog.columns, exclude=catalog.exclude)
            except InvalidRecordError as e:
                out[i] = EmbeddedRow(
                    id=_shown_id(record.get(catalog.columns.id), e.kind),
                    status=SKIPPED,
                    error_kind=e.kind,
                    error=str(e),
                )
                continue
            if item.id in first:
                out[i] = EmbeddedRow(
                    id=item.id,
                    status=SKIPPED,
                    error_kind="duplicate",
                    error=f"id {item.id!r} appears twice in one batch; the first row is kept",
                )
                continue
            first[item.id] = i
            items[i] = item
        return items

    def _embed(self, work: dict[int, Work], out: list[EmbeddedRow | None]) -> None:
        cfg = self.job.config
        at = {id(w): i for i, w in work.items()}

        def ready(w: Work) -> Prepared | None:
            try:
                return prepare(w, self.embedders, self.job.base_dir, cfg.index, cfg.fetch)
            except InputError as e:
                out[at[id(w)]] = EmbeddedRow(id=w.item.id, status=SKIPPED, error_kind=error_kind(e), error=str(e))
                return None

        prepared = [p for p in self._pool.map(ready, work.values()) if p is not None]

        def failed(p: Prepared, e: Exception) -> None:
            out[at[id(p.work)]] = EmbeddedRow(
                id=p.work.item.id, status=FAILED, error_kind="encode", error=f"encoding failed: {e}"
            )

        for p, vectors in encode_isolated(prepared, self.embedders, failed):
            w = p.work
            out[at[id(w)]] = EmbeddedRow(
                id=w.item.id,
                status=CHANGED if w.existed else NEW,
                hash=w.hash,
                payload=item_payload(w.item, w.hash),
                vectors=vectors,
            )


def _shown_id(value: Any, kind: str) -> str | None:
    """The id to report for a bad record: none when the id itself is what is wrong."""
    if kind == "id" or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) else None
