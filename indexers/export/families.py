"""The registry of exportable model families (`clip`, `resnet`, `bert`), filled by `@family`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from indexers.export.common import ExportOptions
from indexers.manifest import Manifest
from indexers.registry import Registry

C = TypeVar("C", bound=ExportOptions)
Exporter = Callable[[C, Path], Manifest]


@dataclass(frozen=True)
class Family(Generic[C]):
    """One exportable family: its options model and the function that exports with them."""

    name: str
    description: str
    modalities: tuple[str, ...]
    config: type[C]
    export: Exporter[C]


FAMILIES: Registry[Family[Any]] = Registry("model family")


def family(
    name: str, *, description: str, modalities: tuple[str, ...], config: type[C]
) -> Callable[[Exporter[C]], Exporter[C]]:
    """Register the decorated export function as the family `name`, taking `config` options.

    Raises:
        ConfigError: `name` is already registered.
    """

    def register(export: Exporter[C]) -> Exporter[C]:
        FAMILIES.add(name, Family(name, description, modalities, config, export))
        return export

    return register
