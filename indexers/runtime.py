"""Load a model folder into encoders that run on onnxruntime. Never imports torch.

Loading reads the manifest and checks the files' stamps (`indexers.integrity`); a tower's
onnxruntime session and tokenizer are made on its first `embed` (or `warm()`), so a process pays
only for the towers it uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from indexers.images import DEFAULT_MAX_PIXELS, ImageSource, load_image
from indexers.manifest import Manifest, Precision, TowerPrecision
from indexers.onnx_session import Device, Lane, OnnxSession
from indexers.preprocess import ImagePreprocessor
from indexers.protocol import Encoder, EncoderSpec
from indexers.text import DEFAULT_MAX_CHARS, TextTokenizer, validate_text
from mmsearch.errors import ConfigError, ImageDecodeError, ModelError

DEFAULT_BATCH_SIZE = 32
# One text of at most this many tokens runs on one thread (the serial lane, see OnnxSession):
# a query. A longer single text is split across the cores.
SHORT_TEXT_TOKENS = 64


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
    precision: TowerPrecision = field(default_factory=lambda: TowerPrecision(precision="fp32", reason="fp32 graph"))

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size!r}: expected a positive integer")

    # The lane `warm` loads: the one an encoder's typical call runs on (see OnnxSession).
    _WARM_LANE: ClassVar[Lane] = "parallel"

    def warm(self) -> None:
        """Load the tower's session now rather than on the first `embed`.

        Raises:
            ModelError: onnxruntime cannot load the graph.
        """
        self.session.warm(self._WARM_LANE)


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
    _WARM_LANE: ClassVar[Lane] = "serial"  # a query's one short text

    def warm(self) -> None:
        """Load the tower's session and tokenizer now rather than on the first `embed`.

        Raises:
            ModelError: onnxruntime cannot load the graph, or the tokenizer file cannot be read.
        """
        self.tokenizer.ids(["warm"])
        super().warm()

    def embed(self, batch: Sequence[str]) -> np.ndarray:
        """Embed texts; returns (len(batch), dim) float32, L2-normalised.

        Texts are grouped by token length so each run pads only to its own longest text; the
        groups run side by side, one per thread. One short text runs on one thread.

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
        if len(ids) == 1:
            lane: Lane = "serial" if len(ids[0]) <= SHORT_TEXT_TOKENS else "parallel"
            out[:] = self.session.run(self.tokenizer.pad(ids), lane=lane)
            return out
        order = np.argsort([len(i) for i in ids], kind="stable")
        groups = [order[part] for part in _groups(len(order), self.batch_size, self.session.threads)]
        feeds = (self.tokenizer.pad([ids[r] for r in rows]) for rows in groups)
        for rows, vectors in zip(groups, self.session.run_many(feeds), strict=True):
            out[rows] = vectors
        return out


def _groups(n: int, size: int, workers: int) -> Iterator[slice]:
    """Runs of at most `size` rows, at least `workers` of them when there are as many rows, evenly sized."""
    count = max(-(-n // size), min(workers, n))
    step = -(-n // count)
    return _batches(n, step)


@dataclass
class Model:
    """A loaded model folder: its manifest, one encoder per tower, and the precision each tower runs."""

    path: Path
    manifest: Manifest
    image: ImageEncoder | None = None
    text: TextEncoder | None = None
    encoders: dict[str, Encoder] = field(default_factory=dict)
    precisions: dict[str, TowerPrecision] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def precision(self) -> Literal["fp32", "int8", "mixed"]:
        """`fp32` or `int8` when every tower runs it, else `mixed` (see `precisions` for each tower and why)."""
        chosen = {p.precision for p in self.precisions.values()}
        return chosen.pop() if len(chosen) == 1 else "mixed"

    def warm(self) -> Model:
        """Load every tower's session now (a server does it before its first request); returns self.

        Raises:
            ModelError: onnxruntime cannot load a graph.
        """
        for encoder in (self.image, self.text):
            if encoder is not None:
                encoder.warm()
        return self

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
    """Load a model folder written by `mmsearch export`; the graphs load on first use.

    Args:
        path: the model folder (manifest.json, .onnx graphs, tokenizer.json).
        device: `auto` (CUDA when available), `cpu` or `cuda`.
        precision: `auto` loads a tower's int8 graph when its lowest cosine to fp32 on the
            calibration set stored with the model is at least `indexers.manifest.INT8_MIN_COSINE`
            (0.99), its fp32 graph otherwise; `fp32` or `int8` choose. `Model.precisions` says
            which each tower runs, and why. The specs' fingerprints are the loaded graphs'.
        threads: threads per call (see `OnnxSession`); None: `MMSEARCH_THREADS`, else all usable CPUs.
        batch_size: rows per onnxruntime run.
        verify: check the sha256 of the files loaded against the manifest first; a file unchanged
            since its last check is not hashed again (see `indexers.integrity`).

    Raises:
        ModelError: not a model folder (or, on first use, onnxruntime cannot load a graph).
        ModelIntegrityError: a file is missing or its hash differs from the manifest.
        ConfigError: an unknown device or precision, or `int8` for a model without int8 graphs.
    """
    folder = Path(path)
    manifest = Manifest.load(folder, verify=False)
    chosen = manifest.choose(precision)
    if verify:
        manifest.verify(folder, precision)
    model = Model(path=folder, manifest=manifest, precisions=chosen)
    specs = encoder_specs(manifest, precision)
    for key, graph in manifest.graphs(precision).items():
        tower = manifest.towers[key]
        session = OnnxSession(folder / graph.file, device=device, threads=threads)
        if tower.modality == "image":
            if tower.preprocess is None:
                raise ModelError(f"{folder}: image tower {key!r} has no preprocessing config")
            preprocessor = ImagePreprocessor(tower.preprocess)
            model.image = ImageEncoder(specs[key], session, preprocessor, batch_size=batch_size, precision=chosen[key])
            model.encoders[key] = model.image
        else:
            if tower.tokenizer is None:
                raise ModelError(f"{folder}: text tower {key!r} has no tokenizer config")
            tokenizer = TextTokenizer(folder / tower.tokenizer.file, tower.tokenizer)
            model.text = TextEncoder(specs[key], session, tokenizer, batch_size=batch_size, precision=chosen[key])
            model.encoders[key] = model.text
    return model
