"""The write step: embedded rows in, items upserted into the store, one `WriteReport` per write task.

Used by the Ray sink (`MmsearchSink.write`, per write task) and the Spark writer (per partition).
Rows come out of the embed step with a status: `new` and `changed` ones are written whole (their
vectors, the payload and content hash the embed step decided, and a changed item's stored `cf`
vector carried over, as `mmsearch index` does); `unchanged`, `skipped` and `failed` ones are
counted, and the bad ones reported with their reason. Store calls are retried with exponential
backoff on `BackendError` (a server down, a timeout); an item the store refuses (`BatchError`) is
isolated and reported `failed` (kind `store`) while the rest of its batch is written; rows that
still cannot be written after the retries are reported `failed` too, never dropped: a rerun of
the job writes exactly those (every other row is then `unchanged`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from mmsearch.errors import BackendError, ConfigError, StorageError
from mmsearch.indexing.distributed.job import JobSpec
from mmsearch.indexing.distributed.report import WriteReport
from mmsearch.indexing.distributed.rows import (
    CHANGED,
    EMBEDDED,
    FAILED,
    SKIPPED,
    STATUSES,
    UNCHANGED,
    EmbeddedRow,
    read_rows,
)
from mmsearch.indexing.distributed.stores import retrying, store_for_writing
from mmsearch.indexing.errorlog import ItemError
from mmsearch.indexing.pipeline import carried_cf, upsert_isolated
from mmsearch.storage import CF_VECTOR, Item, Store

log = logging.getLogger(__name__)


class RowWriter:
    """Writes one task's embedded rows in batches; opens the store at the first write, closes it at the end.

    Args:
        job: the job's `JobSpec`.
    """

    def __init__(self, job: JobSpec) -> None:
        self.job = job
        self.report = WriteReport()
        self._pending: list[EmbeddedRow] = []
        self._written: set[str] = set()
        self._stack = contextlib.ExitStack()
        self._store: Store | None = None
        self._broken: str | None = None

    def add_table(self, table: Any) -> None:
        """Take the rows of one embedded table (a Ray block or a Spark batch)."""
        for row in read_rows(table, self.job.columns, self.job.dims):
            self.add(row)

    def add(self, row: EmbeddedRow) -> None:
        """Take one embedded row; writes a batch once `write.batch_size` rows are waiting."""
        if row.status not in STATUSES:
            raise ConfigError(f"row {row.id!r} has status {row.status!r}; the embed step writes one of {STATUSES}")
        self.report.rows += 1
        if row.status == UNCHANGED:
            self.report.unchanged += 1
        elif row.status in EMBEDDED:
            self._pending.append(row)
            if len(self._pending) >= self.job.write.batch_size:
                self.flush()
        else:
            self._bad(row.id, row.status, row.error_kind or "record", row.error or "no reason given")

    def flush(self) -> None:
        """Write the rows waiting."""
        rows, self._pending = self._pending, []
        rows = [r for r in rows if self._first(r)]
        if not rows:
            return
        store = self._open()
        if store is None:
            for r in rows:
                self._bad(r.id, FAILED, "store", f"not written: {self._broken}")
            return
        try:
            self._upsert(store, rows)
        except BackendError as e:
            for r in rows:
                self._bad(r.id, FAILED, "store", f"not written: {e}")

    def close(self) -> WriteReport:
        """Write what is left, release the store; returns the task's report."""
        try:
            self.flush()
        finally:
            self._stack.close()
            self._store = None
        return self.report

    def _first(self, row: EmbeddedRow) -> bool:
        if row.id in self._written:
            self._bad(
                row.id, SKIPPED, "duplicate", f"id {row.id!r} was already written by this task; this row is left out"
            )
            return False
        self._written.add(str(row.id))
        return True

    def _bad(self, item_id: str | None, status: str, kind: str, reason: str) -> None:
        if status == FAILED:
            self.report.failed += 1
        else:
            self.report.skipped += 1
        self.report.errors.append(ItemError(line=None, id=item_id, kind=kind, reason=reason))

    def _open(self) -> Store | None:
        if self._store is None and self._broken is None:
            try:
                self._store = self._stack.enter_context(store_for_writing(self.job.store, self.job.write))
            except StorageError as e:
                log.error("cannot open the store to write: %s", e)
                self._broken = str(e)
        return self._store

    def _upsert(self, store: Store, rows: list[EmbeddedRow]) -> None:
        write = self.job.write
        changed = [str(r.id) for r in rows if r.status == CHANGED]
        cf = retrying(lambda: carried_cf(store, changed), write, "reading the cf vectors of changed items")
        items = [_item(r, cf) for r in rows]
        refused: dict[str, str] = {}

        def attempt() -> list[Item]:
            refused.clear()
            return upsert_isolated(store, items, lambda it, e: refused.__setitem__(it.id, str(e)))

        written = {it.id for it in retrying(attempt, write, f"writing {len(items)} items")}
        for r in rows:
            if r.id in written:
                if r.status == CHANGED:
                    self.report.changed += 1
                else:
                    self.report.new += 1
            else:
                self._bad(r.id, FAILED, "store", f"the store refused the item: {refused.get(str(r.id), 'no reason')}")


def _item(row: EmbeddedRow, cf: dict[str, Any]) -> Item:
    vectors: dict[str, Any] = dict(row.vectors)
    if row.id in cf:
        vectors[CF_VECTOR] = cf[str(row.id)]
    return Item(id=str(row.id), vectors=vectors, payload=dict(row.payload or {}))


def write_tables(job: JobSpec, tables: Iterable[Any]) -> WriteReport:
    """Write embedded tables into the job's store: one write task's work; returns its report."""
    writer = RowWriter(job)
    try:
        for table in tables:
            writer.add_table(table)
    finally:
        report = writer.close()
    return report
