"""The exception tree. Every error mmsearch raises on purpose derives from `MmsearchError`.

Each subclass also inherits the builtin it refines, so callers that catch `ValueError` or
`FileNotFoundError` keep working.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def listed(values: Iterable[object], limit: int = 10, *, quote: bool = True, empty: str = "none") -> str:
    """The first `limit` values joined by commas, `" ..."` when there are more: for messages.

    Args:
        values: what to show.
        limit: how many at most.
        quote: show each value's repr (ids), not its str (names).
        empty: what to say when there are none.
    """
    shown: Sequence[object] = values if isinstance(values, Sequence) else list(values)
    if not shown:
        return empty
    head = ", ".join(repr(v) if quote else str(v) for v in shown[:limit])
    return head + (" ..." if len(shown) > limit else "")


def validation_message(error: ValidationError) -> str:
    """A pydantic `ValidationError` in one line: each fault's field, what is wrong, and the value given.

    e.g. `chunk_users: Input should be greater than or equal to 1 (got 0)`. A validator's own
    message is shown as it is: it names its value already.
    """
    parts = []
    for fault in error.errors(include_url=False):
        loc = ".".join(str(p) for p in fault["loc"])
        msg = str(fault["msg"]).removeprefix("Value error, ")
        shown = "" if fault["type"] == "value_error" else f" (got {fault['input']!r:.80})"
        parts.append(f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}")
    return "; ".join(parts)


def config_error(error: ValidationError, what: str) -> ConfigError:
    """The `ConfigError` to raise for a pydantic `ValidationError` of `what` (e.g. "eval settings").

    A lone fault that a validator raised as a `ConfigError` (say an `UnknownNameError`, which lists
    the known names) comes back as that very error, so callers can still catch its class; anything
    else becomes `ConfigError("invalid <what>: <validation_message>")`.
    """
    faults = error.errors(include_url=False)
    if len(faults) == 1:
        original = faults[0].get("ctx", {}).get("error")
        if isinstance(original, ConfigError):
            return original
    return ConfigError(f"invalid {what}: {validation_message(error)}")


class MmsearchError(Exception):
    """Root of all errors raised by mmsearch and its indexers."""


class ConfigError(MmsearchError, ValueError):
    """A setting, option or argument has a value mmsearch cannot use."""


class UnknownNameError(ConfigError, KeyError):
    """A name (architecture, family, vector, strategy...) is not one of the known ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known: {listed(self.known, 40, quote=False)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.args[0]


class DependencyError(MmsearchError, ImportError):
    """An optional dependency is missing; the message says which `pip install` fixes it."""


class InputError(MmsearchError, ValueError):
    """A user-supplied item (image, text, id...) cannot be used."""


class ImageDecodeError(InputError):
    """An image cannot be read: missing, empty, corrupt, truncated, not an image, or too large."""


class TextInputError(InputError):
    """A text cannot be embedded: empty, or longer than the configured limit."""


class ModelError(MmsearchError):
    """A model folder cannot be loaded."""


class ModelIntegrityError(ModelError):
    """A model folder is incomplete or a file's sha256 differs from its manifest."""


class ExportError(MmsearchError, RuntimeError):
    """Exporting a PyTorch model to ONNX failed."""


class WeightsError(ExportError, ValueError):
    """A weights file or tag does not fit the requested architecture."""


class ParityError(ExportError):
    """The exported ONNX model disagrees with PyTorch beyond the tolerance."""

    def __init__(self, model: str, diffs: dict[str, float], tolerance: float) -> None:
        self.diffs, self.tolerance = diffs, tolerance
        listed = ", ".join(f"{k}: {v:.3g}" for k, v in diffs.items())
        super().__init__(
            f"ONNX export of {model} disagrees with PyTorch: max abs diff per output {{{listed}}} "
            f"exceeds tolerance {tolerance:g}"
        )


class NotFoundError(MmsearchError, KeyError):
    """A user or item id is unknown to the model or data it was looked up in."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.args[0]


class StorageError(MmsearchError):
    """The vector store refused an operation."""


class StoreLockedError(StorageError):
    """Another process (or another open store in this one) holds the store's folder."""


class StoreNotFoundError(StorageError, FileNotFoundError):
    """The store or collection does not exist and nothing was given to create it."""


class BackendError(StorageError, RuntimeError):
    """The Qdrant engine failed or could not be reached; the message carries its own words."""


class FingerprintMismatchError(StorageError, ValueError):
    """A named vector in the store was written by a different model than the one given."""

    def __init__(self, vector: str, stored: str, given: str) -> None:
        self.vector, self.stored, self.given = vector, stored, given
        super().__init__(
            f"vector {vector!r} in this store was written by the model with fingerprint {stored}, "
            f"but the encoder given has fingerprint {given}; re-index into a new collection, or open "
            f"the store with the model that wrote it"
        )


class SchemaMismatchError(StorageError, ValueError):
    """The store's recorded schema (dims, distances, payload index types) differs from the one asked for."""


class InvalidFilterError(StorageError, ValueError):
    """A filter condition cannot be expressed (wrong value type, no bounds...)."""


class ItemNotFoundError(StorageError, NotFoundError):
    """An operation on existing items named items that are not in the store."""


class UnknownVectorError(StorageError, UnknownNameError):
    """A vector name that is not in the store's schema."""


class BatchError(StorageError, ValueError):
    """A batch was refused before anything in it was written."""


class EmptyBatchError(BatchError):
    """A write was given no items."""


class DuplicateIdError(BatchError):
    """One batch holds the same item id twice."""


class InvalidItemError(BatchError):
    """An item's id, payload or vector shape cannot be stored."""


class VectorDimensionError(InvalidItemError):
    """A vector's length differs from its named vector's dimension."""


class NonFiniteVectorError(InvalidItemError):
    """A vector holds NaN or infinity."""


class CatalogError(InputError):
    """A catalog file cannot be read at all: missing, unknown format, unreadable header."""


class InvalidRecordError(InputError):
    """One catalog record (a JSONL line, a CSV row) does not fit the catalog schema.

    Attributes:
        kind: what is wrong, as the error log groups it (`id`, `utf8`, `record`, `image`, `text`...).
    """

    def __init__(self, message: str, *, kind: str = "record") -> None:
        super().__init__(message)
        self.kind = kind


class FetchError(InputError):
    """An image URL could not be fetched: HTTP error, timeout, too large, or not http(s).

    Attributes:
        url: the URL asked for.
        status: the HTTP status when the server answered with an error, else None.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url, self.status = url, status
