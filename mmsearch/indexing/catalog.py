"""Catalog files (JSONL, CSV/TSV, Parquet) read one record at a time into validated `CatalogItem`s.

The schema (field names as stored; `ColumnMapping` maps an existing file's columns onto them):

| field | type | meaning |
| --- | --- | --- |
| `id` | string or integer, required | the item id, unique in the catalog (1-1024 characters) |
| `title` | string | short text, embedded by default |
| `description` | string | longer text, embedded by default |
| `reviews` | list of strings | one embedded text each (when an encoder lists `reviews`) |
| `images` | list of strings (or one string) | local paths (relative to the catalog file) or http(s) URLs |
| anything else | any JSON value | kept as payload, for filters and display |

A bad record never stops the reading: it comes back as a `CatalogRecord` holding an `ItemError`
(line, id if readable, kind, reason). Only a catalog that cannot be read at all (missing file,
unknown format, a CSV header without the id column) raises `CatalogError`.

CSV and TSV cells are text: empty cells are absent; `images` and `reviews` cells hold a JSON array
(`["a.jpg", "b.jpg"]`) or values split on `list_separator` (`a.jpg|b.jpg`); other cells that are
plain decimal numbers (`12`, `-3.5`, no leading zeros) become numbers in the payload.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import json
import math
import re
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from mmsearch.errors import CatalogError, DependencyError, InvalidRecordError
from mmsearch.fetch import is_url
from mmsearch.indexing.errorlog import ItemError
from mmsearch.storage.ids import ITEM_ID_KEY, MAX_ITEM_ID_LENGTH

# Kept with every indexed item: the content hash that lets a re-run skip unchanged items.
HASH_KEY = "_mmsearch_hash"
CANONICAL_FIELDS = ("id", "title", "description", "reviews", "images")
FORMATS = ("jsonl", "csv", "tsv", "parquet")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_INT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_FLOAT = re.compile(r"^-?(0|[1-9][0-9]*)?\.[0-9]+([eE][-+]?[0-9]+)?$|^-?(0|[1-9][0-9]*)[eE][-+]?[0-9]+$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


class ColumnMapping(BaseModel):
    """Which column of the file holds each schema field, to read a catalog without rewriting it.

    Example (TOML): `[catalog.columns]` with `id = "sku"`, `title = "name"`, `images = "image_url"`.
    Columns not named here are kept as payload under their own names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field("id", min_length=1)
    title: str = Field("title", min_length=1)
    description: str = Field("description", min_length=1)
    reviews: str = Field("reviews", min_length=1)
    images: str = Field("images", min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> ColumnMapping:
        used = [getattr(self, f) for f in CANONICAL_FIELDS]
        dups = sorted({c for c in used if used.count(c) > 1})
        if dups:
            raise ValueError(f"columns {dups} are mapped to more than one field; map each column once")
        return self

    def source(self, field: str) -> str:
        """The file's column for a schema field."""
        return str(getattr(self, field))


class CatalogConfig(BaseModel):
    """How to read a catalog file.

    Attributes:
        format: `auto` (from the file suffix: .jsonl/.ndjson/.json, .csv, .tsv/.tab, .parquet/.pq),
            or one of `jsonl`, `csv`, `tsv`, `parquet`.
        columns: which columns hold the schema fields.
        list_separator: splits `images` and `reviews` cells in CSV/TSV (JSON arrays also work).
        exclude: columns to drop instead of keeping as payload.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["auto", "jsonl", "csv", "tsv", "parquet"] = "auto"
    columns: ColumnMapping = ColumnMapping()
    list_separator: str = Field("|", min_length=1)
    exclude: tuple[str, ...] = ()


def _to_id(value: Any) -> Any:
    if isinstance(value, bool):  # bool is an int subclass: refuse it rather than store "True"
        raise ValueError(f"the id is a boolean ({value!r}); ids are strings or integers")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"the id {value!r} is empty")
    if isinstance(value, str) and len(value) > MAX_ITEM_ID_LENGTH:
        raise ValueError(
            f"the id {value[:40]!r}... has {len(value):,} characters; ids have at most {MAX_ITEM_ID_LENGTH}"
        )
    return value


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _to_list(value: Any) -> Any:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)):
        return tuple(v for v in value if not (isinstance(v, str) and not v.strip()))
    return value  # pydantic names the wrong type


ItemId = Annotated[StrictStr, BeforeValidator(_to_id)]
OptionalText = Annotated[StrictStr | None, BeforeValidator(_blank_to_none)]
TextList = Annotated[tuple[StrictStr, ...], BeforeValidator(_to_list)]


class CatalogItem(BaseModel):
    """One catalog item, validated.

    Attributes:
        id: the item id.
        title, description: texts (None when absent or blank).
        reviews: texts, one embedded row each.
        images: image references as written in the catalog: http(s) URLs, `file:` URLs, or paths
            (relative ones are resolved against the catalog's folder when loading).
        payload: every other field, kept with the item.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ItemId
    title: OptionalText = None
    description: OptionalText = None
    reviews: TextList = ()
    images: TextList = ()
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("images")
    @classmethod
    def _check_images(cls, images: tuple[str, ...]) -> tuple[str, ...]:
        for ref in images:
            m = _SCHEME.match(ref)
            if m and m.group(1).lower() not in ("http", "https", "file"):
                raise ValueError(
                    f"image {ref!r:.200} uses the scheme {m.group(1)!r}; use http(s) URLs, file: URLs or paths"
                )
        return images

    @field_validator("payload")
    @classmethod
    def _check_payload(cls, payload: dict[str, Any]) -> dict[str, Any]:
        for key in (ITEM_ID_KEY, HASH_KEY, *CANONICAL_FIELDS):
            if key in payload:
                raise ValueError(
                    f"payload field {key!r} is reserved; map that column with [catalog.columns] or rename it"
                )
        try:
            json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"payload is not JSON-able (plain text, numbers, booleans, lists, objects): {e}") from e
        return payload

    def text_values(self, field: str) -> list[str]:
        """The texts of one field: title/description (0 or 1), reviews, or a payload text field.

        Raises:
            InvalidRecordError: (kind `text`) the payload field holds something other than text.
        """
        if field in ("title", "description"):
            value = getattr(self, field)
            return [value] if value else []
        if field == "reviews":
            return list(self.reviews)
        value = self.payload.get(field)
        if value is None:
            return []
        if isinstance(value, str):
            return [value] if value.strip() else []
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [v for v in value if v.strip()]
        raise InvalidRecordError(
            f"item {self.id!r}: text field {field!r} holds {type(value).__name__} {value!r:.80}, expected text",
            kind="text",
        )

    def stored_payload(self) -> dict[str, Any]:
        """The payload kept in the store: the texts, the image references, and the other fields."""
        out: dict[str, Any] = {}
        if self.title:
            out["title"] = self.title
        if self.description:
            out["description"] = self.description
        if self.reviews:
            out["reviews"] = list(self.reviews)
        if self.images:
            out["images"] = list(self.images)
        out.update(self.payload)
        return out


@dataclass(frozen=True)
class CatalogRecord:
    """One record of a catalog: a valid item, or the error that kept it out."""

    line: int
    item: CatalogItem | None = None
    error: ItemError | None = None


def _utf8_problem(value: Any, where: str = "") -> str | None:
    """The first string inside `value` that cannot be written as UTF-8 (lone surrogates)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            bad = value[e.start : e.end].encode("utf-8", "surrogateescape").hex(" ")
            return f"{where or 'a value'} is not valid UTF-8 (bytes {bad} at character {e.start})"
        return None
    if isinstance(value, Mapping):
        for k, v in value.items():
            problem = _utf8_problem(k, f"a field name in {where or 'the record'}") or _utf8_problem(
                v, f"field {k!r}" if not where else f"{where}.{k}"
            )
            if problem:
                return problem
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            problem = _utf8_problem(v, f"{where}[{i}]")
            if problem:
                return problem
    return None


def _cell_list(value: Any, sep: str) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass  # not JSON after all: split it like any other cell
    return [part.strip() for part in text.split(sep)]


def _cell_scalar(value: Any) -> Any:
    if isinstance(value, str):
        if _INT.match(value):
            return int(value)
        if _FLOAT.match(value):
            number = float(value)
            return number if math.isfinite(number) else value
    return value


def _describe_validation(e: ValidationError, columns: ColumnMapping) -> tuple[str, str]:
    parts, kind = [], "record"
    for err in e.errors(include_url=False):
        field = str(err["loc"][0]) if err["loc"] else ""
        if field in CANONICAL_FIELDS and kind == "record":
            kind = {"id": "id", "images": "image"}.get(field, "record")
        name = columns.source(field) if field in CANONICAL_FIELDS else field
        loc = ".".join(str(p) for p in err["loc"][1:])
        where = "" if field == "payload" else f"field {name!r}" + (f" [{loc}]" if loc else "") + ": "
        msg = str(err["msg"]).removeprefix("Value error, ")
        shown = "" if err["type"] in ("value_error", "missing") else f" (got {err['input']!r:.80})"
        parts.append(f"{where}{msg}{shown}")
    return "; ".join(parts), kind


def parse_record(
    raw: Mapping[str, Any],
    columns: ColumnMapping | None = None,
    *,
    exclude: tuple[str, ...] = (),
    list_separator: str | None = None,
) -> CatalogItem:
    """Validate one record (a parsed JSON object or CSV row) into a `CatalogItem`.

    Args:
        raw: field name -> value, as read from the file.
        columns: which fields hold the schema fields; None for the default names.
        exclude: fields to drop rather than keep as payload.
        list_separator: for text cells (CSV/TSV): split `images` and `reviews` on it, and turn
            decimal-number cells into numbers. None for typed records (JSON, Parquet).

    Raises:
        InvalidRecordError: with `kind` `id` (missing or bad id), `utf8` (a string that is not
            UTF-8), `image` (an unsupported image reference) or `record` (a field of the wrong type).
    """
    columns = columns or ColumnMapping()
    problem = _utf8_problem(dict(raw))
    id_value = raw.get(columns.id)
    if problem:
        raise InvalidRecordError(problem, kind="utf8")
    if id_value is None:
        raise InvalidRecordError(f"missing id: the record has no {columns.id!r} field", kind="id")
    mapped = {columns.source(f): f for f in CANONICAL_FIELDS}
    data: dict[str, Any] = {}
    payload: dict[str, Any] = {}
    for key, value in raw.items():
        field = mapped.get(key)
        if field is not None:
            if list_separator is not None and field in ("images", "reviews"):
                value = _cell_list(value, list_separator)
            data[field] = value
        elif key not in exclude and value is not None:
            payload[key] = _cell_scalar(value) if list_separator is not None else value
    try:
        return CatalogItem.model_validate({**data, "payload": payload})
    except ValidationError as e:
        reason, kind = _describe_validation(e, columns)
        raise InvalidRecordError(reason, kind=kind) from e


def image_source(ref: str, base_dir: Path) -> str | Path:
    """Where to load an image reference from: the URL itself, or a local path.

    Relative paths (and relative `file:` URLs) are resolved against `base_dir`, the catalog's folder.
    """
    if is_url(ref):
        return ref
    if ref[:5].lower() == "file:":
        path = Path(urllib.request.url2pathname(urlsplit(ref).path))
    else:
        path = Path(ref).expanduser()
    return path if path.is_absolute() else base_dir / path


def catalog_format(path: Path, config: CatalogConfig | None = None) -> str:
    """The catalog's format: the configured one, or guessed from the suffix.

    Raises:
        CatalogError: `auto` and an unknown suffix.
    """
    fmt = (config or CatalogConfig()).format
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise CatalogError(
            f"cannot tell the format of {str(path)!r} from its suffix {suffix!r}; known suffixes: "
            f"{', '.join(sorted(_SUFFIXES))}; or set [catalog] format to one of {', '.join(FORMATS)}"
        )
    return _SUFFIXES[suffix]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CatalogError(f"catalog {str(path)!r} does not exist")
    if not path.is_file():
        raise CatalogError(f"catalog {str(path)!r} is not a file")


def read_catalog(path: str | Path, config: CatalogConfig | None = None) -> Iterator[CatalogRecord]:
    """Read a catalog file record by record.

    Args:
        path: a JSONL, CSV, TSV or Parquet file.
        config: format, column mapping, list separator; None for the defaults.

    Yields:
        One `CatalogRecord` per non-blank line (row), valid or not, in file order.

    Raises:
        CatalogError: the file is missing, its format is unknown, or a CSV header is unusable.
        DependencyError: a Parquet file and no pyarrow.
    """
    path = Path(path)
    config = config or CatalogConfig()
    fmt = catalog_format(path, config)
    _check_file(path)
    if fmt == "jsonl":
        return _read_jsonl(path, config)
    if fmt == "parquet":
        return _read_parquet(path, config)
    return _read_csv(path, config, "\t" if fmt == "tsv" else ",")


def count_records(path: str | Path, config: CatalogConfig | None = None) -> int:
    """How many records `read_catalog` will yield (for a progress bar); one quick pass, no validation."""
    path = Path(path)
    config = config or CatalogConfig()
    fmt = catalog_format(path, config)
    _check_file(path)
    if fmt == "jsonl":
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    if fmt == "parquet":
        return int(_parquet_file(path).metadata.num_rows)
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        rows = csv.reader(f, delimiter="\t" if fmt == "tsv" else ",")
        return max(0, sum(1 for row in rows if any(c.strip() for c in row)) - 1)


def _error(line: int, kind: str, reason: str, item_id: Any = None) -> CatalogRecord:
    shown = item_id if isinstance(item_id, str) and not _utf8_problem(item_id) else None
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        shown = str(item_id)
    if kind == "id":
        shown = None  # the id itself is what is wrong; the reason quotes it
    return CatalogRecord(line=line, error=ItemError(line=line, id=shown, kind=kind, reason=reason))


def _record(line: int, raw: Mapping[str, Any], config: CatalogConfig, sep: str | None) -> CatalogRecord:
    try:
        item = parse_record(raw, config.columns, exclude=config.exclude, list_separator=sep)
    except InvalidRecordError as e:
        return _error(line, e.kind, f"line {line}: {e}", raw.get(config.columns.id))
    return CatalogRecord(line=line, item=item)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (only finite numbers are)")


def _id_from_bad_line(raw: bytes, id_field: str) -> Any:
    try:
        obj = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return None
    found = obj.get(id_field) if isinstance(obj, dict) else None
    # An id holding the bad bytes would show as U+FFFD: a different id, so better none at all.
    return None if isinstance(found, str) and "\ufffd" in found else found


def _read_jsonl(path: Path, config: CatalogConfig) -> Iterator[CatalogRecord]:
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = raw[e.start : e.end].hex(" ")
                yield _error(
                    n,
                    "utf8",
                    f"line {n} is not valid UTF-8: bytes {bad} at byte {e.start}",
                    _id_from_bad_line(raw, config.columns.id),
                )
                continue
            try:
                obj = json.loads(text, parse_constant=_reject_constant)
            except ValueError as e:
                yield _error(n, "json", f"line {n} is not valid JSON: {e}")
                continue
            if not isinstance(obj, dict):
                yield _error(n, "json", f"line {n} is a JSON {type(obj).__name__}, expected an object {{...}}")
                continue
            yield _record(n, obj, config, None)


def _csv_header(path: Path, reader: Any, config: CatalogConfig) -> list[str] | None:
    try:
        header = next(reader)
    except StopIteration:
        return None
    except csv.Error as e:
        raise CatalogError(f"{str(path)!r}: cannot read the header row: {e}") from e
    header = [h.strip() for h in header]
    problem = _utf8_problem(header, "the header row")
    if problem:
        raise CatalogError(f"{str(path)!r}: {problem}")
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise CatalogError(f"{str(path)!r}: the header names columns {dups} more than once")
    if config.columns.id not in header:
        raise CatalogError(
            f"{str(path)!r} has no id column {config.columns.id!r}; its columns are {header}; "
            f'set [catalog.columns] id = "..."'
        )
    return header


def _read_csv(path: Path, config: CatalogConfig, delimiter: str) -> Iterator[CatalogRecord]:
    # surrogateescape keeps undecodable bytes as lone surrogates, so one bad row is reported as a
    # bad row instead of aborting the whole file.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = _csv_header(path, reader, config)
        if header is None:
            return
        id_at = header.index(config.columns.id)
        previous = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                line, previous = previous + 1, reader.line_num
                yield _error(line, "row", f"line {line}: malformed CSV: {e}")
                continue
            line, previous = previous + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                item_id = row[id_at] if len(row) > id_at else None
                yield _error(line, "row", f"line {line} has {len(row)} field(s), the header has {len(header)}", item_id)
                continue
            raw = {h: cell for h, cell in zip(header, row, strict=True) if cell.strip() != ""}
            yield _record(line, raw, config, config.list_separator)


def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise DependencyError(f"reading the Parquet catalog {str(path)!r} needs pyarrow: pip install pyarrow") from e
    try:
        return pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid for non-Parquet files
        raise CatalogError(f"{str(path)!r} is not a readable Parquet file: {e}") from e


def _plain(value: Any) -> Any:
    """Arrow's Python values as JSON-able ones (NaN as missing, dates as ISO text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def arrow_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An Arrow row (`to_pylist()`: Parquet, Ray, Spark) as a raw record: nulls and NaN absent, values JSON-able."""
    return {str(k): v for k, v in ((k, _plain(v)) for k, v in row.items()) if v is not None}


def _read_parquet(path: Path, config: CatalogConfig) -> Iterator[CatalogRecord]:
    pf = _parquet_file(path)
    n = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield _record(n, arrow_record(row), config, None)
