"""Export PyTorch encoders to checked ONNX model folders. Imports torch: never on the query path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from indexers.export.families import FAMILIES, Family
from indexers.manifest import Manifest

_LOADED = False


def _load_families() -> None:
    global _LOADED
    if not _LOADED:
        from indexers.export import bert, clip, resnet  # noqa: F401 - registers the families

        _LOADED = True


def get_family(name: str) -> Family[Any]:
    _load_families()
    return FAMILIES.get(name)


def export_model(
    family: str, out_dir: Path, *, progress: Callable[[str], None] | None = None, **options: Any
) -> Manifest:
    """Export one model family into `out_dir`.

    Args:
        family: `clip`, `resnet` or `bert`.
        out_dir: the model folder to write (manifest, .onnx graphs, tokenizer or preprocessing).
        progress: called with a line as each step starts (building, exporting each tower, parity
            check, quantizing, manifest), e.g. `print`.
        **options: fields of that family's export config (e.g. `architecture`, `weights`, `name`).

    Raises:
        UnknownNameError: unknown family or architecture.
        ConfigError: options that don't validate.
        WeightsError: weights that don't fit the architecture.
        ParityError: the ONNX graph disagrees with PyTorch.
    """
    from pydantic import ValidationError

    from mmsearch.errors import config_error

    fam = get_family(family)
    try:
        config = fam.config(**options)
    except ValidationError as e:
        raise config_error(e, f"{family} export options") from e
    from indexers.export.common import reporting

    with reporting(progress):
        return fam.export(config, Path(out_dir))


__all__ = ["FAMILIES", "Family", "export_model", "get_family"]
