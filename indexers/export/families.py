"""The registry of exportable model families (`clip`, `resnet`, `bert`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from indexers.manifest import Manifest
from indexers.registry import Registry


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    modalities: tuple[str, ...]
    config: type[BaseModel]
    export: Callable[[BaseModel, Path], Manifest]


FAMILIES: Registry[Family] = Registry("model family")
