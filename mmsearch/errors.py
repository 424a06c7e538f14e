"""The exception tree. Every error mmsearch raises on purpose derives from `MmsearchError`.

Each subclass also inherits the builtin it refines, so callers that catch `ValueError` or
`FileNotFoundError` keep working.
"""

from __future__ import annotations

from collections.abc import Iterable


class MmsearchError(Exception):
    """Root of all errors raised by mmsearch and its indexers."""


class ConfigError(MmsearchError, ValueError):
    """A setting, option or argument has a value mmsearch cannot use."""


class UnknownNameError(ConfigError, KeyError):
    """A name (architecture, family, vector, strategy...) is not one of the known ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        shown = ", ".join(self.known[:40]) + (" ..." if len(self.known) > 40 else "")
        super().__init__(f"unknown {kind} {name!r}; known: {shown}")

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


class StorageError(MmsearchError):
    """The vector store refused an operation."""
