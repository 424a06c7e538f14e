"""The manifest written beside every exported model: what it is, how to feed it, its fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmsearch.errors import ModelError, ModelIntegrityError
from mmsearch.files import sha256_file

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImagePreprocess(_Frozen):
    """How images become the model's input tensor, replayed with PIL + numpy at run time.

    `resize_mode`: `shortest` scales the short side to `resize_size` keeping the aspect ratio,
    then centre-crops to `size`; `squash` scales straight to `size`; `longest` scales the long
    side to fit `size` and pads with `fill_color` (open_clip's ResizeKeepRatio + CenterCrop).
    """

    size: tuple[int, int]
    resize_size: int
    resize_mode: Literal["shortest", "squash", "longest"] = "shortest"
    interpolation: Literal["bicubic", "bilinear", "nearest", "lanczos"] = "bicubic"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fill_color: int = 0
    # Where the image becomes RGB. open_clip resizes and crops in the stored mode, then converts
    # (`after_crop`); torchvision classifiers were trained on ImageFolder's loader, which converts
    # on load (`first`). They differ on palette, alpha, 1-bit, CMYK and 16-bit images.
    convert_rgb: Literal["after_crop", "first"] = "after_crop"


class TokenizerConfig(_Frozen):
    """A `tokenizers` tokenizer saved beside the model, and how to feed its output."""

    file: str = "tokenizer.json"
    sha256: str
    context_length: int
    pad_id: int = 0
    # `clip` replays open_clip's text cleaning (ftfy, html unescape, whitespace, lower case).
    clean: Literal["none", "clip"] = "none"
    # A causal text tower reads only the tokens up to EOT, so padding can stop at the longest text.
    trim_to_longest: bool = True
    input_names: tuple[str, ...] = ("input_ids",)


class Tower(_Frozen):
    modality: Literal["image", "text"]
    file: str
    sha256: str
    dim: int
    distance: Literal["cosine", "dot", "euclid"] = "cosine"
    normalized: bool = True
    output: str
    preprocess: ImagePreprocess | None = None
    tokenizer: TokenizerConfig | None = None


class WeightsSource(_Frozen):
    kind: Literal["none", "pretrained", "file", "hub", "folder"]
    name: str | None = None
    sha256: str | None = None


class Quantization(_Frozen):
    method: Literal["dynamic-int8", "static-qdq-int8"]
    # Mean and minimum cosine between int8 and fp32 embeddings on the check inputs.
    cosine_to_fp32_mean: float
    cosine_to_fp32_min: float


class Manifest(_Frozen):
    format_version: int = FORMAT_VERSION
    name: str
    family: Literal["clip", "resnet", "bert"]
    architecture: str
    weights: WeightsSource
    opset: int
    towers: dict[str, Tower]
    parity_max_abs_diff: dict[str, float] = Field(default_factory=dict)
    parity_tolerance: float
    quantization: Quantization | None = None
    toolchain: dict[str, str] = Field(default_factory=dict)

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path, *, verify: bool = True) -> Manifest:
        """Read `manifest.json` from a model folder.

        Args:
            folder: the model folder written by `mmsearch export`.
            verify: check that every file exists and has the sha256 the manifest records.

        Raises:
            ModelError: no folder or no readable manifest.
            ModelIntegrityError: a file is missing or was changed after export.
        """
        folder = Path(folder)
        path = folder / MANIFEST_FILE
        if not folder.is_dir():
            raise ModelError(f"model folder {str(folder)!r} does not exist")
        if not path.is_file():
            raise ModelIntegrityError(
                f"{str(path)!r} is missing: is {str(folder)!r} a folder made by `mmsearch export`?"
            )
        try:
            manifest = cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, ValidationError) as e:
            raise ModelIntegrityError(f"manifest {str(path)!r} is not valid: {e}") from e
        if manifest.format_version != FORMAT_VERSION:
            raise ModelError(
                f"manifest {str(path)!r} has format_version {manifest.format_version}; "
                f"this mmsearch reads {FORMAT_VERSION}: re-export the model"
            )
        if verify:
            manifest.verify(folder)
        return manifest

    def files(self) -> dict[str, str]:
        """Every file the model needs, mapped to its expected sha256."""
        out: dict[str, str] = {}
        for tower in self.towers.values():
            out[tower.file] = tower.sha256
            if tower.tokenizer is not None:
                out[tower.tokenizer.file] = tower.tokenizer.sha256
        return out

    def verify(self, folder: Path) -> None:
        for name, expected in self.files().items():
            path = Path(folder) / name
            if not path.is_file():
                raise ModelIntegrityError(f"model file {str(path)!r} is missing")
            actual = sha256_file(path)
            if actual != expected:
                raise ModelIntegrityError(
                    f"model file {str(path)!r} has sha256 {actual[:16]}..., the manifest says "
                    f"{expected[:16]}...: the file was changed after export; re-export the model"
                )
