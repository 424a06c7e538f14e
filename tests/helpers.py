"""Small image and model-folder builders shared by tests."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def make_image(width: int = 64, height: int = 48, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


def image_bytes(fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    make_image(**kwargs).save(buf, format=fmt)
    return buf.getvalue()


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def spy_on_encode(monkeypatch) -> list[str]:
    """Record the ids of the items the indexing pipeline encodes, in order."""
    import mmsearch.indexing.pipeline as pipeline_mod

    encoded: list[str] = []
    real = pipeline_mod.encode

    def spy(batch, embedders):
        encoded.extend(p.work.item.id for p in batch)
        return real(batch, embedders)

    monkeypatch.setattr(pipeline_mod, "encode", spy)
    return encoded
