"""Load a model folder into encoders that run on onnxruntime. Never imports torch.

Loading reads the manifest and checks the files' stamps (`indexers.integrity`); a tower's
onnxruntime session and tokenizer are made on its first `embed` (or `warm()`), so a process pays
only for the towers it uses.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from PIL import Image as PILImage

from indexers.images import DEFAULT_MAX_PIXELS, ImageSource, load_image
from indexers.manifest import Manifest, Precision, Tower, TowerPrecision
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
    """Embeds texts with a text tower and the tokenizer saved beside it.

    A text longer than the model's context (`tokenizer.config.context_length` tokens) is truncated
    to it, as sentence-transformers does; `embed_counted` says which were. `max_chars` only guards
    against absurd inputs.
    """

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
            ConfigError: `batch` is a single str (use `Model.embed_texts`, which takes one).
        """
        return self.embed_counted(batch)[0]

    def embed_counted(self, batch: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`embed`, and a bool per text: True for a text truncated to the model's context.

        Raises:
            the errors of `embed`.
        """
        if isinstance(batch, str):
            raise ConfigError("embed() takes a list of texts, not a single str")
        texts = [validate_text(t, max_chars=self.max_chars, index=i) for i, t in enumerate(batch)]
        out = np.empty((len(texts), self.spec.dim), dtype=np.float32)
        if not texts:
            return out, np.zeros(0, dtype=bool)
        ids, truncated = self.tokenizer.ids_and_truncation(texts)
        if len(ids) == 1:
            lane: Lane = "serial" if len(ids[0]) <= SHORT_TEXT_TOKENS else "parallel"
            out[:] = self.session.run(self.tokenizer.pad(ids), lane=lane)
        else:
            order = np.argsort([len(i) for i in ids], kind="stable")
            groups = [order[part] for part in _groups(len(order), self.batch_size, self.session.threads)]
            feeds = (self.tokenizer.pad([ids[r] for r in rows]) for rows in groups)
            for rows, vectors in zip(groups, self.session.run_many(feeds), strict=True):
                out[rows] = vectors
        return out, np.asarray(truncated, dtype=bool)


def _groups(n: int, size: int, workers: int) -> Iterator[slice]:
    """Runs of at most `size` rows, at least `workers` of them when there are as many rows, evenly sized."""
    count = max(-(-n // size), min(workers, n))
    step = -(-n // count)
    return _batches(n, step)


@dataclass
class Model:
    """A loaded model folder: its manifest, one encoder per tower, and the precision each tower runs.

    A context manager: leaving the `with` block (or `close()`) releases its onnxruntime sessions.

    Example:
        with load_model("models/clip") as clip:
            one = clip.embed_texts("a red bicycle")  # (dim,)
            rows = clip.embed_texts(["a red bicycle", "ramen"])  # (2, dim)
    """

    path: Path
    manifest: Manifest
    image: ImageEncoder | None = None
    text: TextEncoder | None = None
    encoders: dict[str, Encoder] = field(default_factory=dict)
    precisions: dict[str, TowerPrecision] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The model's name: the `<model>` of its vector names (see `indexers.manifest.Manifest.name`)."""
        return self.manifest.name

    @property
    def random_weights(self) -> bool:
        """Exported without trained weights (`--weights none`): its vectors carry no meaning."""
        return self.manifest.weights.kind == "none"

    @property
    def precision(self) -> Literal["fp32", "int8", "mixed"]:
        """`fp32` or `int8` when every tower runs it, else `mixed` (see `precisions` for each tower and why)."""
        chosen = {p.precision for p in self.precisions.values()}
        return chosen.pop() if len(chosen) == 1 else "mixed"

    def warm(self) -> Model:
        """Load every tower's session now (a server does it before its first request); returns self.

        Raises:
            ModelError: onnxruntime cannot load a graph, or a graph disagrees with the manifest.
        """
        for encoder in (self.image, self.text):
            if encoder is not None:
                encoder.warm()
        return self

    def embed_images(self, images: ImageSource | Sequence[ImageSource]) -> np.ndarray:
        """Embed images: (len(images), dim) float32 unit rows; one image (a path, bytes, a PIL image) gives (dim,).

        Raises:
            ConfigError: the model has no image tower.
            ImageDecodeError: an image cannot be read (its index is named).
        """
        if self.image is None:
            raise ConfigError(f"model {self.name!r} ({self.manifest.family}) has no image tower")
        if isinstance(images, (str, Path, bytes, bytearray, memoryview, PILImage.Image)):
            return self.image.embed([images])[0]
        return self.image.embed(images)

    def embed_texts(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed texts: (len(texts), dim) float32 unit rows; one str gives (dim,), as in sentence-transformers.

        Raises:
            ConfigError: the model has no text tower.
            TextInputError: an empty text, a non-string, or one over the character limit.
        """
        if self.text is None:
            raise ConfigError(f"model {self.name!r} ({self.manifest.family}) has no text tower")
        if isinstance(texts, str):
            return self.text.embed([texts])[0]
        return self.text.embed(texts)

    def close(self) -> None:
        """Release the onnxruntime sessions; embedding afterwards raises `ModelError`. Closing twice is fine."""
        for encoder in self.encoders.values():
            session = getattr(encoder, "session", None)
            if isinstance(session, OnnxSession):
                session.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_model(
    path: str | Path,
    *,
    device: Device = "auto",
    precision: Precision = "auto",
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    verify: bool = True,
    max_text_chars: int = DEFAULT_MAX_CHARS,
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
        max_text_chars: the text encoder refuses longer texts (a guard against absurd inputs;
            texts over the model's context are truncated, not refused).

    Returns:
        The model; use it as a context manager (or `close()` it) to release its sessions.

    Raises:
        ModelError: not a model folder; on a tower's first use (or `warm()`), onnxruntime cannot
            load its graph, or the graph's inputs or output disagree with the manifest (dim, image
            size, tokenizer inputs).
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
    try:
        for key, graph in manifest.graphs(precision).items():
            tower = manifest.towers[key]
            session = OnnxSession(
                folder / graph.file, device=device, threads=threads, on_load=functools.partial(check_graph, tower=tower)
            )
            encoder = _encoder(folder, key, tower, specs[key], session, batch_size, max_text_chars, chosen[key])
            if isinstance(encoder, ImageEncoder):
                model.image = encoder
            else:
                model.text = encoder
            model.encoders[key] = encoder
    except BaseException:
        model.close()
        raise
    return model


def _encoder(
    folder: Path,
    key: str,
    tower: Tower,
    spec: EncoderSpec,
    session: OnnxSession,
    batch_size: int,
    max_chars: int,
    precision: TowerPrecision,
) -> ImageEncoder | TextEncoder:
    if tower.modality == "image":
        if tower.preprocess is None:
            raise ModelError(f"{folder}: image tower {key!r} has no preprocessing config")
        preprocessor = ImagePreprocessor(tower.preprocess)
        return ImageEncoder(spec, session, preprocessor, batch_size=batch_size, precision=precision)
    if tower.tokenizer is None:
        raise ModelError(f"{folder}: text tower {key!r} has no tokenizer config")
    tokenizer = TextTokenizer(folder / tower.tokenizer.file, tower.tokenizer)
    return TextEncoder(spec, session, tokenizer, batch_size=batch_size, max_chars=max_chars, precision=precision)


def check_graph(session: OnnxSession, tower: Tower) -> None:
    """The graph's declared inputs and output agree with the manifest's tower, where their sizes are fixed.

    Raises:
        ModelError: the output is missing or not `dim` wide, an image input of another size, or a
            graph input the run-time feeds do not provide; the message names each disagreement.
    """
    problems = []
    shape = session.output_shapes.get(tower.output)
    if shape is None:
        problems.append(f"it has no output {tower.output!r} (outputs: {', '.join(session.output_names)})")
    elif shape and isinstance(shape[-1], int) and shape[-1] != tower.dim:
        problems.append(f"output {tower.output!r} has {shape[-1]} values per row, the manifest says dim {tower.dim}")
    if tower.modality == "image":
        fed: tuple[str, ...] = ("pixel_values",)
        size = tower.preprocess.size if tower.preprocess is not None else None
        pixels = session.input_shapes.get("pixel_values", ())
        fixed = tuple(d if isinstance(d, int) else None for d in pixels[1:])
        if size is not None and len(fixed) == 3 and fixed != (None, None, None) and fixed != (3, *size):
            problems.append(f"input 'pixel_values' is {pixels}, but the manifest preprocesses images to 3 x {size}")
    else:
        fed = tower.tokenizer.input_names if tower.tokenizer is not None else ("input_ids",)
    unfed = [n for n in session.input_names if n not in fed]
    if unfed:
        problems.append(f"graph input(s) {', '.join(unfed)} are not among the manifest's inputs ({', '.join(fed)})")
    if problems:
        raise ModelError(f"{str(session.path)!r} does not match its manifest: {'; '.join(problems)}; re-export it")
