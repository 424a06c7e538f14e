"""Interaction logs: which user interacted with which item, how strongly, and when.

`read_interactions` turns a CSV/TSV log into `Interactions`, a columnar table of dense user and
item indices with the raw-id maps beside them. Conventions every consumer relies on:

- Raw ids are strings. The index of an id is its position in `user_ids` / `item_ids`, which are
  sorted, so the same log gives the same indices whatever its row order.
- One row per (user, item) pair. Repeated pairs are merged when the table is built: weights are
  summed by default (implicit feedback: plays, clicks and purchases add up; `duplicates="max"` or
  `"last"` suit explicit ratings) and the merged row keeps the latest timestamp. Merging before
  any split is what keeps a pair from landing in both train and test.
- Weights are positive and finite; a log without a weight column gets weight 1 per row.
- Bad rows (wrong field count, empty id, non-numeric / negative / zero / non-finite weight,
  unparseable timestamp) are skipped and counted per reason in the `ReadReport`, never fatal. Only
  a log with no usable row at all, or whose header lacks a user or item column, is an error.
- `select`, `align` and `compact` derive new tables; `select` keeps the id maps, so the splits of
  one log share one index space (train, validation and test matrices line up column for column).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from mmsearch.cf.ids import IdMaps, positions, read_only
from mmsearch.errors import InputError, UnknownNameError, listed

if TYPE_CHECKING:
    import scipy.sparse

Duplicates = Literal["sum", "max", "last"]
DUPLICATE_POLICIES: tuple[str, ...] = ("sum", "max", "last")
ROLES: tuple[str, ...] = ("user", "item", "weight", "timestamp")

# Header names recognised for each role, after lower-casing and dropping a RecBole-style type
# suffix (`user_id:token` -> `user_id`), so RecBole atomic files read without a column map.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "uid", "customer", "customer_id"),
    "item": ("item", "item_id", "itemid", "iid", "product", "product_id"),
    "weight": ("weight", "rating", "score", "count", "value"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date"),
}
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ReadReport:
    """What `read_interactions` did with a file.

    Attributes:
        path: the file read.
        columns: role (`user`, `item`, `weight`, `timestamp`) -> header name used.
        ignored_columns: header names not used.
        rows_read: data rows seen (blank lines excluded).
        rows_kept: rows that became interactions, before duplicate pairs were merged.
        skipped: reason -> number of rows skipped for it.
        examples: reason -> up to `MAX_EXAMPLES` (line number, offending value) pairs.
        duplicates_merged: rows folded into an earlier row of the same (user, item) pair.
    """

    path: str
    columns: dict[str, str]
    ignored_columns: tuple[str, ...]
    rows_read: int
    rows_kept: int
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    duplicates_merged: int = 0

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One human-readable paragraph: counts, then each skip reason with example lines."""
        text = f"{self.path}: {self.rows_read} rows read, {self.rows_kept} kept"
        if self.duplicates_merged:
            text += f", {self.duplicates_merged} duplicate (user, item) rows merged"
        for reason, count in sorted(self.skipped.items(), key=lambda kv: -kv[1]):
            shown = ", ".join(f"line {line}: {value!r}" for line, value in self.examples.get(reason, []))
            text += f"; skipped {count} ({reason}: {shown})"
        return text


@dataclass(frozen=True)
class AlignReport:
    """What `Interactions.align` dropped: ids absent from the target id space, and their rows."""

    unknown_users: tuple[str, ...]
    unknown_items: tuple[str, ...]
    rows_dropped: int

    def summary(self) -> str:
        return (
            f"{len(self.unknown_users)} unknown users ({listed(self.unknown_users, MAX_EXAMPLES)}), "
            f"{len(self.unknown_items)} unknown items ({listed(self.unknown_items, MAX_EXAMPLES)}), "
            f"{self.rows_dropped} interactions dropped"
        )


@dataclass(frozen=True, eq=False)
class Interactions(IdMaps):
    """A de-duplicated interaction table over dense indices.

    Attributes:
        user_ids: raw user id of each user index, sorted.
        item_ids: raw item id of each item index, sorted.
        users: user index per interaction (int32, read-only).
        items: item index per interaction (int32, read-only).
        weights: positive weight per interaction (float32, read-only).
        timestamps: seconds since the epoch per interaction (float64, read-only), or None.
    """

    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_ids", tuple(self.user_ids))
        object.__setattr__(self, "item_ids", tuple(self.item_ids))
        object.__setattr__(self, "users", read_only(self.users, np.int32))
        object.__setattr__(self, "items", read_only(self.items, np.int32))
        object.__setattr__(self, "weights", read_only(self.weights, np.float32))
        if self.timestamps is not None:
            object.__setattr__(self, "timestamps", read_only(self.timestamps, np.float64))
        n = len(self.users)
        lengths = [len(self.items), len(self.weights)] + ([len(self.timestamps)] if self.timestamps is not None else [])
        if any(length != n for length in lengths) or self.users.ndim != 1:
            raise InputError(f"interaction columns have different lengths: users {n}, others {lengths}")
        if n and (self.users.min() < 0 or self.users.max() >= len(self.user_ids)):
            raise InputError(f"user indices must lie in [0, {len(self.user_ids)})")
        if n and (self.items.min() < 0 or self.items.max() >= len(self.item_ids)):
            raise InputError(f"item indices must lie in [0, {len(self.item_ids)})")

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_arrays(
        cls,
        users: Sequence[object] | np.ndarray,
        items: Sequence[object] | np.ndarray,
        weights: Sequence[float] | np.ndarray | None = None,
        timestamps: Sequence[float] | np.ndarray | None = None,
        *,
        duplicates: Duplicates = "sum",
    ) -> Interactions:
        """Build a table from raw ids (converted with `str`), merging repeated (user, item) pairs.

        Args:
            users, items: raw ids, one per interaction.
            weights: positive finite weights; None means 1 each.
            timestamps: finite seconds since the epoch; None for a log without time.
            duplicates: how repeated pairs merge their weights: `sum`, `max`, or `last` (latest
                timestamp, then latest row). The merged pair keeps its latest timestamp.

        Raises:
            InputError: lengths differ, an empty id, a non-positive or non-finite weight, a
                non-finite timestamp.
            UnknownNameError: unknown `duplicates` policy.
        """
        user_arr = np.asarray([str(u).strip() for u in users], dtype=str)
        item_arr = np.asarray([str(i).strip() for i in items], dtype=str)
        n = len(user_arr)
        if len(item_arr) != n:
            raise InputError(f"{n} users but {len(item_arr)} items given")
        w = np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
        ts = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        if len(w) != n or (ts is not None and len(ts) != n):
            raise InputError(f"{n} users but {len(w)} weights / {None if ts is None else len(ts)} timestamps")
        for name, arr in (("user", user_arr), ("item", item_arr)):
            empty = np.flatnonzero(np.char.str_len(arr) == 0) if n else np.array([], dtype=int)
            if len(empty):
                raise InputError(f"empty {name} id at interaction {int(empty[0])}")
        bad = np.flatnonzero(~np.isfinite(w) | (w <= 0))
        if len(bad):
            value, at = float(w[bad[0]]), int(bad[0])
            raise InputError(f"weight {value!r} at interaction {at} is not a positive finite number")
        if ts is not None and not np.isfinite(ts).all():
            bad_ts = int(np.flatnonzero(~np.isfinite(ts))[0])
            raise InputError(f"timestamp {float(ts[bad_ts])!r} at interaction {bad_ts} is not finite")
        table, _ = _build(user_arr, item_arr, w, ts, duplicates)
        return table

    # ----------------------------------------------------------------- shape and lookup

    def __len__(self) -> int:
        return len(self.users)

    @property
    def has_timestamps(self) -> bool:
        return self.timestamps is not None

    def row(self, i: int) -> tuple[str, str, float, float | None]:
        """Interaction `i` as (user id, item id, weight, timestamp or None)."""
        ts = None if self.timestamps is None else float(self.timestamps[i])
        return self.user_ids[self.users[i]], self.item_ids[self.items[i]], float(self.weights[i]), ts

    def user_counts(self) -> np.ndarray:
        """Interactions per user index (int64, length `n_users`)."""
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Interactions per item index (int64, length `n_items`)."""
        return np.bincount(self.items, minlength=self.n_items)

    def to_csr(self) -> scipy.sparse.csr_matrix:
        """The users x items weight matrix (float32 CSR, shape `(n_users, n_items)`)."""
        import scipy.sparse

        matrix = scipy.sparse.csr_matrix(
            (self.weights.astype(np.float32), (self.users, self.items)),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        matrix.sort_indices()
        return matrix

    # ----------------------------------------------------------------- derived tables

    def select(self, rows: np.ndarray | Sequence[int]) -> Interactions:
        """The interactions at `rows` (a boolean mask or indices), with the same id maps.

        Raises:
            InputError: a boolean mask of the wrong length.
        """
        rows = np.asarray(rows)
        if rows.dtype == bool and len(rows) != len(self):
            raise InputError(f"row mask has {len(rows)} entries for {len(self)} interactions")
        return Interactions(
            self.user_ids,
            self.item_ids,
            self.users[rows],
            self.items[rows],
            self.weights[rows],
            None if self.timestamps is None else self.timestamps[rows],
        )

    def align(
        self, user_ids: Sequence[str] | None = None, item_ids: Sequence[str] | None = None
    ) -> tuple[Interactions, AlignReport]:
        """Re-express this table over other id spaces (e.g. a catalog's items), dropping the rest.

        Args:
            user_ids: the target user ids in index order; None keeps this table's users.
            item_ids: the target item ids in index order (e.g. the items in the store); None
                keeps this table's items.

        Returns:
            The aligned table (its id maps are exactly the ones given) and what was dropped:
            distinct unknown ids (sorted) and the number of interactions they carried.

        Raises:
            InputError: a target id list with a repeated id.
        """
        new_users, user_map, unknown_users = self._remap(self.user_ids, user_ids, "user")
        new_items, item_map, unknown_items = self._remap(self.item_ids, item_ids, "item")
        u = user_map[self.users]
        i = item_map[self.items]
        keep = (u >= 0) & (i >= 0)
        aligned = Interactions(
            new_users,
            new_items,
            u[keep],
            i[keep],
            self.weights[keep],
            None if self.timestamps is None else self.timestamps[keep],
        )
        # Only ids that actually carried rows count as unknown.
        used_users = np.zeros(self.n_users, bool)
        used_users[self.users] = True
        used_items = np.zeros(self.n_items, bool)
        used_items[self.items] = True
        report = AlignReport(
            unknown_users=tuple(self.user_ids[j] for j in unknown_users if used_users[j]),
            unknown_items=tuple(self.item_ids[j] for j in unknown_items if used_items[j]),
            rows_dropped=int((~keep).sum()),
        )
        return aligned, report

    @staticmethod
    def _remap(
        old: tuple[str, ...], new: Sequence[str] | None, kind: str
    ) -> tuple[tuple[str, ...], np.ndarray, list[int]]:
        if new is None:
            return old, np.arange(len(old), dtype=np.int64), []
        new = tuple(str(x) for x in new)
        position = {x: j for j, x in enumerate(new)}
        if len(position) != len(new):
            repeated = next(x for j, x in enumerate(new) if position[x] != j)
            raise InputError(f"target {kind} ids repeat {repeated!r}")
        mapping = positions(position, old)
        return new, mapping, [int(j) for j in np.flatnonzero(mapping < 0)]

    def compact(self) -> Interactions:
        """The same interactions with users and items that have none removed from the id maps."""
        used_u = np.unique(self.users)
        used_i = np.unique(self.items)
        return Interactions(
            tuple(self.user_ids[j] for j in used_u),
            tuple(self.item_ids[j] for j in used_i),
            np.searchsorted(used_u, self.users),
            np.searchsorted(used_i, self.items),
            self.weights,
            self.timestamps,
        )


# --------------------------------------------------------------------- building


def _build(
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    timestamps: np.ndarray | None,
    duplicates: str,
) -> tuple[Interactions, int]:
    """Index raw ids and merge repeated pairs; returns the table and the number of rows merged."""
    if duplicates not in DUPLICATE_POLICIES:
        raise UnknownNameError("duplicate policy", duplicates, DUPLICATE_POLICIES)
    user_ids, u = np.unique(users, return_inverse=True)
    item_ids, i = np.unique(items, return_inverse=True)
    u = u.astype(np.int64)
    i = i.astype(np.int64)
    key = u * max(len(item_ids), 1) + i
    _, first, group = np.unique(key, return_index=True, return_inverse=True)
    merged = len(key) - len(first)
    if merged:
        n_groups = len(first)
        if duplicates == "sum":
            w = np.bincount(group, weights=weights, minlength=n_groups)
        elif duplicates == "max":
            w = np.full(n_groups, -np.inf)
            np.maximum.at(w, group, weights)
        else:  # last: latest timestamp, then latest row in the file
            t = timestamps if timestamps is not None else np.zeros(len(key))
            order = np.lexsort((np.arange(len(key)), t, group))
            last = order[np.cumsum(np.bincount(group, minlength=n_groups)) - 1]
            w = weights[last]
        ts = None
        if timestamps is not None:
            ts = np.full(n_groups, -np.inf)
            np.maximum.at(ts, group, timestamps)
        # Keep the file order of each pair's first occurrence: readers expect row 0 to be line 1.
        order = np.argsort(first, kind="stable")
        rows = first[order]
        u, i, w = u[rows], i[rows], w[order]
        ts = None if ts is None else ts[order]
    else:
        w, ts = weights, timestamps
    table = Interactions(tuple(user_ids.tolist()), tuple(item_ids.tolist()), u, i, w, ts)
    return table, merged


# --------------------------------------------------------------------- reading


def _normalise_header(name: str) -> str:
    return name.strip().lower().split(":", 1)[0].strip()


def _resolve_columns(header: list[str], columns: Mapping[str, str] | None, path: str) -> dict[str, int]:
    """Role -> column position. Explicit mappings win; other roles are found through aliases."""
    normalised = [_normalise_header(h) for h in header]
    seen: dict[str, int] = {}
    for pos, name in enumerate(normalised):
        if not name:  # unnamed columns (e.g. from a trailing delimiter) are never used
            continue
        if name in seen:
            raise InputError(f"{path}: header names column {header[pos]!r} twice; header: {header}")
        seen[name] = pos
    resolved: dict[str, int] = {}
    for role, name in (columns or {}).items():
        if role not in ROLES:
            raise UnknownNameError("interaction column role", role, ROLES)
        if name in header:
            resolved[role] = header.index(name)
        elif _normalise_header(name) in seen:
            resolved[role] = seen[_normalise_header(name)]
        else:
            raise InputError(f"{path}: no column {name!r} (asked for as the {role} column); header: {header}")
    for role in ROLES:
        if role in resolved:
            continue
        for alias in HEADER_ALIASES[role]:
            if alias in seen and seen[alias] not in resolved.values():
                resolved[role] = seen[alias]
                break
    for role in ("user", "item"):
        if role not in resolved:
            raise InputError(
                f"{path}: no {role} column; header: {header}; recognised names: "
                f"{', '.join(HEADER_ALIASES[role])}; or map one with columns={{{role!r}: 'NAME'}}"
            )
    return resolved


def _sniff_delimiter(path: Path, first_line: str) -> str:
    if path.suffix.lower() in (".tsv", ".tab", ".inter"):
        return "\t"
    counts = {d: first_line.count(d) for d in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch from a number or an ISO 8601 date/time (naive means UTC).

    Raises:
        ValueError: neither a finite number nor an ISO 8601 date/time.
    """
    try:
        value = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"timestamp {text!r} is not finite")
    return value


def read_interactions(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    duplicates: Duplicates = "sum",
    encoding: str = "utf-8-sig",
) -> tuple[Interactions, ReadReport]:
    """Read an interaction log (CSV or TSV with a header row).

    Columns are found by header name: user (`user`, `user_id`, ...), item (`item`, `item_id`,
    ...), optional weight (`weight`, `rating`, `score`, `count`, `value`) and optional timestamp
    (`timestamp`, `time`, `ts`, ...; numbers of seconds or ISO 8601 dates). Names are matched
    case-insensitively, ignoring a `:type` suffix (RecBole atomic files). Other columns are ignored.

    Args:
        path: the log file.
        columns: role -> header name, for logs with other names, e.g.
            `{"user": "customer", "item": "sku", "weight": "qty"}`.
        delimiter: the field separator; None picks tab for .tsv/.tab/.inter files, otherwise the
            most frequent of tab, comma, semicolon or pipe in the header line.
        duplicates: how repeated (user, item) rows merge their weights (`sum`, `max`, `last`).
        encoding: the text encoding (the default also drops a UTF-8 byte-order mark).

    Returns:
        The interactions and a `ReadReport` (skipped rows counted per reason, with examples).

    Raises:
        InputError: missing, unreadable or empty file; no user or item column; a mapped column
            absent from the header; a repeated header name; no usable row at all.
        UnknownNameError: an unknown role in `columns` or an unknown `duplicates` policy.
    """
    path = Path(path)
    if duplicates not in DUPLICATE_POLICIES:
        raise UnknownNameError("duplicate policy", duplicates, DUPLICATE_POLICIES)
    header, resolved, parsed = _read_file(path, columns, delimiter, encoding)
    if not parsed.users:
        raise _unusable(str(path), parsed)
    table, merged = _build(
        np.asarray(parsed.users, dtype=str),
        np.asarray(parsed.items, dtype=str),
        np.asarray(parsed.weights, dtype=np.float64),
        None if parsed.timestamps is None else np.asarray(parsed.timestamps, dtype=np.float64),
        duplicates,
    )
    report = ReadReport(
        path=str(path),
        columns={role: header[pos] for role, pos in resolved.items()},
        ignored_columns=tuple(h for pos, h in enumerate(header) if pos not in resolved.values()),
        rows_read=parsed.rows_read,
        rows_kept=len(parsed.users),
        skipped=parsed.skipped,
        examples=parsed.examples,
        duplicates_merged=merged,
    )
    return table, report


def _read_file(
    path: Path, columns: Mapping[str, str] | None, delimiter: str | None, encoding: str
) -> tuple[list[str], dict[str, int], _Rows]:
    """The header, each role's column, and the usable rows of a log file."""
    shown = str(path)
    try:
        handle = path.open(newline="", encoding=encoding)
    except FileNotFoundError as e:
        raise InputError(f"interaction file {shown} does not exist") from e
    except OSError as e:
        raise InputError(f"cannot open interaction file {shown}: {e}") from e
    try:
        with handle:
            first_line = handle.readline()
            if not first_line.strip():
                raise InputError(
                    f"interaction file {shown} is empty (it needs a header row, then one row per interaction)"
                )
            sep = delimiter or _sniff_delimiter(path, first_line)
            header = next(csv.reader([first_line], delimiter=sep))
            resolved = _resolve_columns(header, columns, shown)
            return header, resolved, _read_rows(handle, _Layout.of(header, resolved, sep))
    except UnicodeDecodeError as e:
        raise InputError(f"interaction file {shown} is not {encoding} text: {e}") from e


def _unusable(shown: str, parsed: _Rows) -> InputError:
    """The error for a log without a single usable row: why the rows were skipped, with an example each."""
    if not parsed.rows_read:
        return InputError(f"interaction file {shown} has a header but no rows")
    reasons = "; ".join(
        f"{count} {reason} (e.g. line {parsed.examples[reason][0][0]}: {parsed.examples[reason][0][1]!r})"
        for reason, count in parsed.skipped.items()
    )
    return InputError(f"interaction file {shown} has no usable row: {reasons}")


@dataclass
class _Rows:
    """The usable rows of a log, column by column, and what was skipped."""

    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    timestamps: list[float] | None = None
    rows_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def skip(self, reason: str, line: int, value: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append((line, value))


class _RowError(Exception):  # never leaves this module: the row is counted as skipped instead
    """A row that cannot become an interaction: why, and the offending text."""

    def __init__(self, reason: str, value: str) -> None:
        super().__init__(reason)
        self.reason, self.value = reason, value


def _number(text: str, parse: Callable[[str], float], what: str, malformed: str) -> float:
    """`parse(text)`, or a `_RowError` naming a missing or `malformed` `what` (`weight`, `timestamp`)."""
    try:
        return parse(text)
    except ValueError:
        raise _RowError(f"missing {what}" if not text else f"{malformed} {what}", text) from None


def _weight(text: str) -> float:
    weight = _number(text, float, "weight", "non-numeric")
    if not math.isfinite(weight):
        raise _RowError("non-finite weight", text)
    if weight < 0:
        raise _RowError("negative weight", text)
    if weight == 0:
        raise _RowError("zero weight", text)
    return weight


@dataclass(frozen=True)
class _Layout:
    """Where a log's fields are: the field count, the separator, and each role's column."""

    n_fields: int
    sep: str
    user: int
    item: int
    weight: int | None
    timestamp: int | None

    @classmethod
    def of(cls, header: list[str], resolved: Mapping[str, int], sep: str) -> _Layout:
        return cls(
            len(header), sep, resolved["user"], resolved["item"], resolved.get("weight"), resolved.get("timestamp")
        )

    def parse(self, row: list[str]) -> tuple[str, str, float, float | None]:
        """(user, item, weight, timestamp or None) from a row, or a `_RowError` saying why not."""
        if len(row) != self.n_fields:
            raise _RowError("wrong number of fields", self.sep.join(row)[:80])
        user, item = row[self.user].strip(), row[self.item].strip()
        if not user:
            raise _RowError("empty user id", row[self.user])
        if not item:
            raise _RowError("empty item id", row[self.item])
        weight = 1.0 if self.weight is None else _weight(row[self.weight].strip())
        stamp = None
        if self.timestamp is not None:
            stamp = _number(row[self.timestamp].strip(), parse_timestamp, "timestamp", "unparseable")
        return user, item, weight, stamp


def _read_rows(lines: Iterable[str], layout: _Layout) -> _Rows:
    out = _Rows(timestamps=[] if layout.timestamp is not None else None)
    reader = csv.reader(lines, delimiter=layout.sep)
    for row in reader:
        line = reader.line_num + 1  # the header line was consumed before the reader started
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        out.rows_read += 1
        try:
            user, item, weight, stamp = layout.parse(row)
        except _RowError as e:
            out.skip(e.reason, line, e.value)
            continue
        if out.timestamps is not None and stamp is not None:
            out.timestamps.append(stamp)
        out.users.append(user)
        out.items.append(item)
        out.weights.append(weight)
    return out


__all__ = [
    "DUPLICATE_POLICIES",
    "HEADER_ALIASES",
    "ROLES",
    "AlignReport",
    "Duplicates",
    "Interactions",
    "ReadReport",
    "parse_timestamp",
    "read_interactions",
]
