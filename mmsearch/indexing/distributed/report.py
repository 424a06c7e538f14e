"""What a write task reports (`WriteReport`) and what a whole job did (`JobSummary`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from mmsearch.indexing.errorlog import ItemError


@dataclass
class WriteReport:
    """One write task's counts and the rows it could not store (picklable, JSON-able).

    Attributes:
        rows: rows the task received (every row gets exactly one of the outcomes below).
        new, changed: items written (not in the store before / re-embedded).
        unchanged: rows whose content hash matched the stored one (not embedded, not written).
        skipped: bad rows (unreadable record, image, text, a repeated id).
        failed: rows the encoder failed on or the store refused.
        errors: one `ItemError` per skipped or failed row.
    """

    rows: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[ItemError] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.new + self.changed

    def add(self, other: WriteReport) -> None:
        """Add another report's counts and errors to this one."""
        for name in ("rows", "new", "changed", "unchanged", "skipped", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WriteReport:
        data = json.loads(text)
        errors = [ItemError(**e) for e in data.pop("errors")]
        return cls(**data, errors=errors)

    @classmethod
    def merged(cls, reports: Iterable[WriteReport | None]) -> WriteReport:
        """The sum of several reports (None entries, from tasks that wrote nothing, count as empty)."""
        total = cls()
        for r in reports:
            if r is not None:
                total.add(r)
        return total


@dataclass(frozen=True)
class JobSummary:
    """What one Ray or Spark indexing job did; the fields mean what `IndexSummary`'s do.

    Attributes:
        engine: `ray` or `spark`.
        collection: the collection written to.
        records: rows seen.
        indexed: items embedded and written (`new` + `changed`).
        new, changed, unchanged, skipped, failed: each row's outcome (they add up to `records`).
        skipped_by_kind: error kind -> count, over skipped and failed rows.
        stored: items in the collection after the job.
        seconds: wall time from planning the job (building the sink or indexer) to the end.
        items_per_s: records finished per second; indexed_per_s: items written per second.
        error_log: the JSONL error log, when one was asked for.
    """

    engine: str
    collection: str
    records: int
    indexed: int
    new: int
    changed: int
    unchanged: int
    skipped: int
    failed: int
    skipped_by_kind: dict[str, int]
    stored: int
    seconds: float
    items_per_s: float
    indexed_per_s: float
    error_log: str | None = None

    @classmethod
    def of(
        cls, engine: str, collection: str, report: WriteReport, stored: int, seconds: float, error_log: str | None
    ) -> JobSummary:
        kinds = Counter(e.kind for e in report.errors)
        return cls(
            engine=engine,
            collection=collection,
            records=report.rows,
            indexed=report.written,
            new=report.new,
            changed=report.changed,
            unchanged=report.unchanged,
            skipped=report.skipped,
            failed=report.failed,
            skipped_by_kind=dict(sorted(kinds.items())),
            stored=stored,
            seconds=round(seconds, 3),
            items_per_s=round(report.rows / seconds, 2) if seconds > 0 else 0.0,
            indexed_per_s=round(report.written / seconds, 2) if seconds > 0 else 0.0,
            error_log=error_log,
        )

    @property
    def ok(self) -> bool:
        """True when no row was skipped or failed."""
        return self.skipped == 0 and self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in self.skipped_by_kind.items())
        return (
            f"{self.engine}: indexed {self.indexed} items ({self.new} new, {self.changed} changed), "
            f"{self.unchanged} unchanged, {self.skipped} skipped, {self.failed} failed"
            + (f" ({kinds})" if kinds else "")
            + f" in {self.seconds:.1f} s ({self.items_per_s:.1f} rows/s); collection {self.collection!r} holds "
            f"{self.stored} items"
        )
