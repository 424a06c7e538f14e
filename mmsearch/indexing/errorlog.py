"""The indexing error log: one JSON object per skipped item, written as it happens.

Each line is `{"line": 12, "id": "sku-3", "kind": "image", "reason": "..."}`:

- `line`: the record's line in a JSONL or CSV catalog (the row number in Parquet, the position in
  the iterable given to `Index.add`), counting from 1; null when unknown.
- `id`: the item id when it could be read, else null.
- `kind`: one of `KINDS` (what went wrong, for grouping).
- `reason`: a sentence naming the bad value.

Lines are flushed one by one, so a crashed run keeps the log of what it got through.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from mmsearch.errors import ConfigError

KINDS: dict[str, str] = {
    "json": "the line is not a JSON object",
    "row": "the CSV/TSV row is malformed or has the wrong number of fields",
    "utf8": "the line holds bytes that are not UTF-8, or a string that cannot be UTF-8",
    "id": "the id is missing, empty, too long, or not a string or integer",
    "duplicate": "an earlier record in the catalog has the same id (the first one is kept)",
    "record": "a field has the wrong type (e.g. a title that is a number)",
    "image": "an image file is missing, corrupt, truncated, not an image, or over the pixel limit",
    "fetch": "an image URL answered 4xx, timed out, failed to connect, or was over the size cap",
    "text": "a text is over the character limit, or a text field holds a non-text value",
    "empty": "the item has no images and no text for any encoder: nothing to embed",
    "encode": "the encoder failed on the item",
    "store": "the store refused the item",
}


@dataclass(frozen=True)
class ItemError:
    """One skipped item."""

    line: int | None
    id: str | None
    kind: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ErrorLog:
    """Collects skipped items, counts them by kind, and writes them to a JSONL file if given one.

    Thread-safe. Use as a context manager (or call `close()`) to close the file.

    Args:
        path: the JSONL file, truncated on open (so it always describes the last run); None keeps
            errors in memory only.
        keep: how many errors to keep in memory (`errors`) for summaries; counts cover all.
    """

    def __init__(self, path: str | Path | None = None, *, keep: int = 1000) -> None:
        self.path = Path(path) if path is not None else None
        self.counts: Counter[str] = Counter()
        self.errors: list[ItemError] = []
        self._keep = keep
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - open for the run, closed by close()
            except OSError as e:
                raise ConfigError(f"cannot write the error log {str(self.path)!r}: {e}") from e

    def add(self, error: ItemError) -> None:
        """Record one skipped item (and write its line)."""
        if error.kind not in KINDS:
            raise ConfigError(f"unknown error kind {error.kind!r}; known: {', '.join(KINDS)}")
        with self._lock:
            self.counts[error.kind] += 1
            if len(self.errors) < self._keep:
                self.errors.append(error)
            if self._file is not None:
                self._file.write(json.dumps(error.to_json()) + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> ErrorLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_error_log(path: str | Path) -> Iterator[ItemError]:
    """The errors in a log written by `ErrorLog`, in order.

    Raises:
        ConfigError: a line is not an error record.
    """
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
                yield ItemError(line=data["line"], id=data["id"], kind=data["kind"], reason=data["reason"])
            except (ValueError, KeyError, TypeError) as e:
                raise ConfigError(f"{path}:{n} is not an error-log line: {text[:200]!r}") from e
