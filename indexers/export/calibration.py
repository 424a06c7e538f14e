"""The calibration set stored with an int8 export, and the feeds it gives each tower.

A text tower's set is `TEXT_COUNT` varied sentences (`indexers.export.sentences`, 5 to 60 words);
an image tower's is `IMAGE_COUNT` generated pictures (gradients, shapes, lines and noise at
320 x 256, so the tower's resize and crop run as on photos). Both are written into the model
folder (`calibration/texts.json`, `calibration/images.npz`) and listed in the manifest with their
sha256, so anyone can rerun the comparison that decided the folder's default precision: the
int8 graph's lowest and mean cosine to the fp32 graph on them (`indexers.manifest.INT8_MIN_COSINE`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from indexers.export.sentences import varied_sentences
from indexers.manifest import CalibrationSet, TowerInfo
from mmsearch.errors import ExportError
from mmsearch.files import sha256_file

FOLDER = "calibration"
TEXT_COUNT = 256
IMAGE_COUNT = 16
IMAGE_SIZE = (256, 320)  # height, width
SEED = 20240513
Feeds = dict[str, np.ndarray]


def calibration_images(count: int = IMAGE_COUNT, *, seed: int = SEED) -> np.ndarray:
    """`count` generated RGB pictures, (count, height, width, 3) uint8; the same for a seed."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    height, width = IMAGE_SIZE
    out = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0.0, 1.0, height)[:, None, None]
        base = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1))
        picture = Image.fromarray(base.astype(np.uint8))
        draw = ImageDraw.Draw(picture)
        for _ in range(int(rng.integers(2, 7))):
            x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            box = (x0, y0, x0 + int(rng.integers(20, width // 2)), y0 + int(rng.integers(20, height // 2)))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        for _ in range(int(rng.integers(1, 5))):
            points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(2)]
            draw.line(points, fill=tuple(int(c) for c in rng.integers(0, 256, 3)), width=int(rng.integers(1, 8)))
        noisy = np.asarray(picture, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3))
        out[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def write_set(stage: Path, info: TowerInfo) -> CalibrationSet:
    """Write the calibration set of a tower of `info`'s modality into `stage` (once per modality)."""
    folder = stage / FOLDER
    folder.mkdir(exist_ok=True)
    if info.modality == "text":
        path = folder / "texts.json"
        if not path.exists():
            path.write_text(json.dumps(varied_sentences(TEXT_COUNT, seed=SEED), ensure_ascii=False, indent=0) + "\n")
        return CalibrationSet(file=f"{FOLDER}/{path.name}", sha256=sha256_file(path), kind="texts", count=TEXT_COUNT)
    path = folder / "images.npz"
    if not path.exists():
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=calibration_images())
        path.write_bytes(buffer.getvalue())
    return CalibrationSet(file=f"{FOLDER}/{path.name}", sha256=sha256_file(path), kind="images", count=IMAGE_COUNT)


def read_texts(path: Path) -> list[str]:
    texts = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ExportError(f"{str(path)!r} is not a JSON list of texts")
    return texts


def read_images(path: Path) -> np.ndarray:
    with np.load(path) as data:
        return np.asarray(data["images"])


def feeds(stage: Path, info: TowerInfo, calibration: CalibrationSet, *, batch: int = 32) -> list[Feeds]:
    """The tower's inputs for its calibration set, as the run-time path makes them, in batches.

    Texts go through the saved tokenizer, length-sorted; images through the tower's preprocessing.

    Raises:
        ExportError: the tower has neither a tokenizer nor preprocessing config.
    """
    path = stage / calibration.file
    if info.tokenizer is not None:
        from indexers.text import TextTokenizer

        tokenizer = TextTokenizer(stage / info.tokenizer.file, info.tokenizer)
        ids = tokenizer.ids(read_texts(path))
        ids.sort(key=len)
        return [tokenizer.pad(ids[i : i + batch]) for i in range(0, len(ids), batch)]
    if info.preprocess is not None:
        from PIL import Image

        from indexers.preprocess import ImagePreprocessor

        preprocess = ImagePreprocessor(info.preprocess)
        pixels = np.stack([preprocess(Image.fromarray(p)) for p in read_images(path)])
        return [{"pixel_values": pixels[i : i + batch // 4]} for i in range(0, len(pixels), batch // 4)]
    raise ExportError(f"a {info.modality} tower without tokenizer or preprocessing config cannot be calibrated")
