"""The small contract every encoder meets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Modality = Literal["image", "text"]
Distance = Literal["cosine", "dot", "euclid"]

# A model's name is the `<model>` of its vector names (`<model>.<modality>`), so it is kept to
# characters every Qdrant engine takes in a vector name.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
MODEL_NAME_RULE = "1-128 letters, digits, '_', '-' or '.', starting with a letter or digit"


def is_model_name(name: object) -> bool:
    """Whether `name` can be a model's name (see `MODEL_NAME_RULE`)."""
    return isinstance(name, str) and MODEL_NAME.match(name) is not None


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder produces.

    Attributes:
        model: the model folder's name; towers of one model share an embedding space.
        family: `clip`, `resnet` or `bert`.
        modality: what the encoder takes, `image` or `text`.
        dim: embedding size.
        distance: the metric its vectors are meant for.
        fingerprint: sha256 of the ONNX graph; identifies the model in a collection.
    """

    model: str
    family: str
    modality: Modality
    dim: int
    distance: Distance
    fingerprint: str


@runtime_checkable
class Encoder(Protocol):
    spec: EncoderSpec

    def embed(self, batch: Sequence[Any]) -> np.ndarray:
        """Embed a batch; returns a float32 array of shape (len(batch), spec.dim)."""
        ...
