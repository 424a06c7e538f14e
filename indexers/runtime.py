"""Load a model folder into encoders that run on onnxruntime. Never imports torch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from indexers.images import DEFAULT_MAX_PIXELS, ImageSource, load_image
from indexers.manifest import Manifest, Precision
from indexers.onnx_session import Device, OnnxSession
from indexers.preprocess import ImagePreprocessor
from indexers.protocol import Encoder, EncoderSpec
from indexers.text import DEFAULT_MAX_CHARS, TextTokenizer, validate_text
from mmsearch.errors import ConfigError, ImageDecodeError, ModelError

DEFAULT_BATCH_SIZE = 32


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def encoder_specs(manifest: Manifest, precision: Precision = "auto") -> dict[str, EncoderSpec]:
    """Each tower's EncoderSpec as `load_model(..., precision=precision)` gives it, without loading it.

    The fingerprint is the sha256 of the graph loaded at that precision.
    """
    return {
        key: EncoderSpec(
            model=manifest.name,
            family=manifest.family,
            modality=manifest.towers[key].modality,
            dim=manifest.towers[key].dim,
            distance=manifest.towers[key].distance,
            fingerprint=graph.sha256,
        )
        for key, graph in manifest.graphs(precision).items()
    }


@dataclass(eq=False)
class _TowerEncoder:
    """What every encoder holds: its tower's spec, the onnxruntime session, rows per run."""

    spec: EncoderSpec
    session: OnnxSession
    _: KW_ONLY
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size!r}: expected a positive integer")


@dataclass(eq=False)
class ImageEncoder(_TowerEncoder):
    """Embeds images (paths, bytes or PIL images) with an image tower."""

    preprocessor: ImagePreprocessor
    _: KW_ONLY
    max_pixels: int = DEFAULT_MAX_PIXELS

    def preprocess(self, image: ImageSource) -> np.ndarray:
        """Load and preprocess one image into a (3, H, W) float32 array.

        Raises:
            ImageDecodeError: the image is missing, corrupt, truncated or too large.
        """
        return self.preprocessor(load_image(image, max_pixels=self.max_pixels))

    def embed_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        """Embed an already preprocessed (N, 3, H, W) batch, split into `batch_size` runs."""
        out = np.empty((len(pixel_values), self.spec.dim), dtype=np.float32)
        for part in _batches(len(pixel_values), self.batch_size):
            out[part] = self.session.run({"pixel_values": np.ascontiguousarray(pixel_values[part])})
        return out

    def embed(self, batch: Sequence[ImageSource]) -> np.ndarray:
        """Embed images; returns (len(batch), dim) float32, L2-normalised.

        Raises:
            ImageDecodeError: for the first image that cannot be read (its index is named).
        """
        if len(batch) == 0:
            return np.empty((0, self.spec.dim), dtype=np.float32)
        out = np.empty((len(batch), self.spec.dim), dtype=np.float32)
        for part in _batches(len(batch), self.batch_size):
            pixels = np.stack([self._preprocess_at(i, batch[i]) for i in range(part.start, part.stop)])
            out[part] = self.session.run({"pixel_values": pixels})
        return out

    def _preprocess_at(self, index: int, image: ImageSource) -> np.ndarray:
        try:
            return self.preprocess(image)
        except ImageDecodeError as e:
            raise ImageDecodeError(f"image #{index}: {e}") from e


@dataclass(eq=False)
class TextEncoder(_TowerEncoder):
    """Embeds texts with a text tower and the tokenizer saved beside it."""

    tokenizer: TextTokenizer
    _: KW_ONLY
    max_chars: int = DEFAULT_MAX_CHARS

    def embed(self, batch: Sequence[str]) -> np.ndarray:
        """Embed texts; returns (len(batch), dim) float32, L2-normalised.

        Texts are grouped by token length so each run pads only to its own longest text.

        Raises:
            TextInputError: an empty text, a non-string, or one over `max_chars` (index named).
        """
        if isinstance(batch, str):
            raise ConfigError("embed() takes a list of texts, not a single str")
        texts = [validate_text(t, max_chars=self.max_chars, index=i) for i, t in enumerate(batch)]
        out = np.empty((len(texts), self.spec.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer.ids(texts)
        order = np.argsort([len(i) for i in ids], kind="stable")
        for part in _batches(len(order), self.batch_size):
            rows = order[part]
            out[rows] = self.session.run(self.tokenizer.pad([ids[r] for r in rows]))
        return out


@dataclass
class Model:
    """A loaded model folder: its manifest, the precision of the graphs loaded, one encoder per tower."""

    path: Path
    manifest: Manifest
    image: ImageEncoder | None = None
    text: TextEncoder | None = None
    encoders: dict[str, Encoder] = field(default_factory=dict)
    precision: Literal["fp32", "int8"] = "fp32"

    @property
    def name(self) -> str:
        return self.manifest.name

    def embed_images(self, images: Sequence[ImageSource]) -> np.ndarray:
        if self.image is None:
            raise ConfigError(f"model {self.name!r} ({self.manifest.family}) has no image tower")
        return self.image.embed(images)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self.text is None:
            raise ConfigError(f"model {self.name!r} ({self.manifest.family}) has no text tower")
        return self.text.embed(texts)


def load_model(
    path: str | Path,
    *,
    device: Device = "auto",
    precision: Precision = "auto",
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    verify: bool = True,
) -> Model:
    """Load a model folder written by `mmsearch export`.

    Args:
        path: the model folder (manifest.json, .onnx graphs, tokenizer.json).
        device: `auto` (CUDA when available), `cpu` or `cuda`.
        precision: `auto` loads the int8 graphs of a model exported with `--quantize int8` and the
            fp32 ones otherwise; `fp32` or `int8` choose. The specs' fingerprints are the loaded graphs'.
        threads: onnxruntime intra-op threads per session; None lets it choose.
        batch_size: rows per onnxruntime run.
        verify: check the sha256 of the files loaded against the manifest first; a file unchanged
            since its last check is not hashed again (see `indexers.integrity`).

    Raises:
        ModelError: not a model folder, or onnxruntime cannot load a graph.
        ModelIntegrityError: a file is missing or its hash differs from the manifest.
        ConfigError: an unknown device or precision, or `int8` for a model without int8 graphs.
    """
    folder = Path(path)
    manifest = Manifest.load(folder, verify=False)
    resolved = manifest.precision(precision)
    if verify:
        manifest.verify(folder, resolved)
    model = Model(path=folder, manifest=manifest, precision=resolved)
    specs = encoder_specs(manifest, resolved)
    for key, graph in manifest.graphs(resolved).items():
        tower = manifest.towers[key]
        session = OnnxSession(folder / graph.file, device=device, threads=threads)
        if tower.modality == "image":
            if tower.preprocess is None:
                raise ModelError(f"{folder}: image tower {key!r} has no preprocessing config")
            model.image = ImageEncoder(specs[key], session, ImagePreprocessor(tower.preprocess), batch_size=batch_size)
            model.encoders[key] = model.image
        else:
            if tower.tokenizer is None:
                raise ModelError(f"{folder}: text tower {key!r} has no tokenizer config")
            tokenizer = TextTokenizer(folder / tower.tokenizer.file, tower.tokenizer)
            model.text = TextEncoder(specs[key], session, tokenizer, batch_size=batch_size)
            model.encoders[key] = model.text
    return model
