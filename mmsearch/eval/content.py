"""Content vectors for evaluation: one pooled unit vector per catalogue item and tower.

An item's rows (its texts, its images) are embedded by a model's tower and pooled the way the
store pools them (`mmsearch.storage.validate.pool`: the mean, re-normalised), so the content
strategies evaluated here score items with the same vectors a query searches. Items without a
modality (no photo, no text) keep a zero row and `present=False`: strategies give them NaN for
that signal (missing, not "similarity 0").

Rows of `ItemVectors` follow an interaction table's item indices (`Interactions.item_ids`), which
is what the strategies and the runner index by.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from mmsearch.errors import ConfigError, InputError, InvalidRecordError, MmsearchError

if TYPE_CHECKING:
    from indexers.runtime import ImageEncoder, Model, TextEncoder
    from mmsearch.indexing.catalog import CatalogConfig, CatalogItem

Modality = Literal["image", "text"]
MODALITIES: tuple[str, ...] = ("image", "text")
Skipped = tuple[int, str | None, str]  # a record left out: its line, its id if it has one, why


def pool(rows: np.ndarray) -> np.ndarray | None:
    """An item's rows pooled as the store pools them: the mean, re-normalised (None if it is zero)."""
    from mmsearch.storage.validate import pool as store_pool

    return store_pool(np.asarray(rows, dtype=np.float32).reshape(-1, np.shape(rows)[-1]))


def vector_model_name(name: str) -> str:
    """A model name usable in `ItemVectors` (and strategy names): '.' and ':' become '-'."""
    return name.replace(".", "-").replace(":", "-")


@dataclass(frozen=True, eq=False)
class ItemVectors:
    """One tower's pooled vector per item.

    Attributes:
        model: the model's name (items of one model with both modalities share its space, as
            CLIP's towers do, so their image and text vectors can be crossed and mixed).
        modality: `image` or `text`.
        vectors: float32 (n_items, dim): unit rows, zero rows where the item lacks the modality.
        present: bool (n_items,): which items have the modality.
        family: the model's family (`clip`, `bert`, `resnet`), which decides whether its two
            towers share one space (`mmsearch.query.signals.shares_space`); None when unknown.
    """

    model: str
    modality: Modality
    vectors: np.ndarray
    present: np.ndarray
    family: str | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"modality {self.modality!r} is not one of {', '.join(MODALITIES)}")
        if not self.model or "." in self.model or ":" in self.model:
            raise ConfigError(f"model name {self.model!r} must be non-empty, without '.' or ':'")
        vectors = np.array(self.vectors, dtype=np.float32)
        present = np.array(self.present, dtype=bool).reshape(-1)
        if vectors.ndim != 2 or vectors.shape[0] != present.shape[0]:
            raise InputError(
                f"{self.model}.{self.modality}: vectors {vectors.shape} and presence mask {present.shape} "
                f"must have one row per item"
            )
        if not np.isfinite(vectors[present]).all():
            raise InputError(f"{self.model}.{self.modality}: a present item's vector is not finite")
        norms = np.linalg.norm(vectors, axis=1)
        if present.any() and norms[present].min() == 0:
            row = int(np.flatnonzero(present & (norms == 0))[0])
            raise InputError(f"{self.model}.{self.modality}: item row {row} is marked present but its vector is 0")
        vectors[present] /= norms[present, None]  # cosine scores need unit rows
        vectors[~present] = 0.0
        for array in (vectors, present):
            array.setflags(write=False)
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "present", present)

    @property
    def name(self) -> str:
        """`<model>.<modality>`, the stored vector's name."""
        return f"{self.model}.{self.modality}"

    @property
    def n_items(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @classmethod
    def from_rows(
        cls,
        model: str,
        modality: Modality,
        rows: Sequence[np.ndarray | None],
        dim: int | None = None,
        family: str | None = None,
    ) -> ItemVectors:
        """Pool each item's rows ((r, dim) or (dim,); None or 0 rows for an item without them).

        Raises:
            InputError: rows of different widths, or no item with rows and no `dim` given.
        """
        pooled: list[np.ndarray | None] = [None if r is None or np.size(r) == 0 else pool(r) for r in rows]
        widths = {len(p) for p in pooled if p is not None}
        if dim is not None:
            widths.add(dim)
        if len(widths) != 1:
            raise InputError(f"{model}.{modality}: item rows have widths {sorted(widths)}; expected one width")
        width = widths.pop()
        out = np.zeros((len(rows), width), dtype=np.float32)
        present = np.zeros(len(rows), dtype=bool)
        for i, p in enumerate(pooled):
            if p is not None:
                out[i], present[i] = p, True
        return cls(model, modality, out, present, family)


def embed_item_texts(encoder: TextEncoder, model: str, texts: Sequence[Sequence[str]]) -> ItemVectors:
    """Embed each item's texts (one row per text, pooled) with a text tower.

    Args:
        encoder: a run-time text encoder (`load_model(dir).text`).
        model: the name the vectors go under.
        texts: per item, its texts (an empty list for an item without text).

    Raises:
        TextInputError: an empty or over-long text (the encoder names it).
    """
    flat = [t for item in texts for t in item]
    vectors = encoder.embed(flat) if flat else np.zeros((0, encoder.spec.dim), dtype=np.float32)
    rows: list[np.ndarray | None] = []
    start = 0
    for item in texts:
        rows.append(vectors[start : start + len(item)] if item else None)
        start += len(item)
    return ItemVectors.from_rows(model, "text", rows, dim=encoder.spec.dim, family=encoder.spec.family)


def embed_item_pixels(encoder: ImageEncoder, model: str, pixels: Sequence[np.ndarray | None]) -> ItemVectors:
    """Embed each item's preprocessed images ((r, 3, H, W); None for an item without images), pooled."""
    rows: list[np.ndarray | None] = []
    for p in pixels:
        rows.append(None if p is None or len(p) == 0 else encoder.embed_pixels(p))
    return ItemVectors.from_rows(model, "image", rows, dim=encoder.spec.dim, family=encoder.spec.family)


@dataclass(frozen=True)
class CatalogVectors:
    """A catalog's item ids and the content vectors of every tower, in id order.

    Attributes:
        item_ids: the valid items' ids, in catalog order (the item index space).
        vectors: one `ItemVectors` per tower used.
        skipped: (line, id or None, reason) for records left out (invalid, duplicate id).
        missing: tower name -> number of items it could not embed (no text, image errors).
    """

    item_ids: tuple[str, ...]
    vectors: tuple[ItemVectors, ...]
    skipped: tuple[Skipped, ...] = ()
    missing: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        def tower(v: ItemVectors) -> str:
            failed = self.missing.get(v.name)
            return f"{v.name} ({int(v.present.sum())} items" + (f", {failed} failed)" if failed else ")")

        towers = ", ".join(tower(v) for v in self.vectors)
        text = f"{len(self.item_ids)} catalog items; vectors: {towers or 'none'}"
        if self.skipped:
            line, _, reason = self.skipped[0]
            text += f"; {len(self.skipped)} records skipped (e.g. line {line}: {reason})"
        return text


def catalog_vectors(
    path: str | Path,
    models: Sequence[Model],
    *,
    text_fields: Sequence[str] = ("title", "description"),
    text_join: str | None = None,
    images: bool = True,
    config: CatalogConfig | None = None,
    max_pixels: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> CatalogVectors:
    """Read a catalog and embed its items with every tower of `models`, as `mmsearch index` would.

    Args:
        path: a JSONL, CSV/TSV or Parquet catalog (see `mmsearch.indexing.catalog`).
        models: loaded model folders; a text tower embeds `text_fields`, an image tower the images.
        text_fields: catalog fields each text tower embeds, one row per text.
        text_join: join an item's texts into a single row with this separator instead.
        images: embed images with image towers.
        config: catalog format and column mapping.
        max_pixels: refuse images larger than this (default: the indexer's limit).
        progress: called with a short message per tower.

    Returns:
        The ids and vectors. Invalid records and repeated ids are skipped (listed); an item whose
        image fails to load lacks the image modality (counted in `missing`), it is not dropped.

    Raises:
        CatalogError: the catalog cannot be read.
        ConfigError: no model has a tower to use, or two models share a name.
        InputError: no valid item.
    """
    _check_models(models, text_fields, images)
    path = Path(path)
    items, skipped = _valid_items(path, config)
    say = progress or (lambda _message: None)
    missing: dict[str, int] = {}
    out: list[ItemVectors] = []
    for model in models:  # per model, its image tower first, then its text tower
        name = vector_model_name(model.name)
        if model.image is not None and images:
            say(f"embedding {len(items)} items with {model.name}.image")
            limit = max_pixels if max_pixels is not None else model.image.max_pixels
            vectors, failed = _image_vectors(model.image, name, items, path.parent, limit)
            if failed:
                missing[vectors.name] = failed
            out.append(vectors)
        if model.text is not None and text_fields:
            say(f"embedding {len(items)} items with {model.name}.text")
            out.append(embed_item_texts(model.text, name, [_texts(item, text_fields, text_join) for item in items]))
    return CatalogVectors(tuple(i.id for i in items), tuple(out), tuple(skipped), missing)


def _check_models(models: Sequence[Model], text_fields: Sequence[str], images: bool) -> None:
    if not any((m.image is not None and images) or (m.text is not None and text_fields) for m in models):
        raise ConfigError(
            f"no tower to embed with: models {[m.name for m in models]} with text_fields={list(text_fields)} "
            f"and images={images}"
        )
    names = [vector_model_name(m.name) for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"two model folders share the name {min(n for n in names if names.count(n) > 1)!r}")


def _valid_items(path: Path, config: CatalogConfig | None) -> tuple[list[CatalogItem], list[Skipped]]:
    """The catalog's valid items, first occurrence of each id, and the records skipped."""
    from mmsearch.indexing.catalog import read_catalog

    items: list[CatalogItem] = []
    seen: set[str] = set()
    skipped: list[Skipped] = []
    for record in read_catalog(path, config):
        if record.item is None:
            err = record.error
            skipped.append((record.line, err.id if err else None, err.reason if err else "invalid record"))
        elif record.item.id in seen:
            skipped.append((record.line, record.item.id, f"repeated id {record.item.id!r}"))
        else:
            seen.add(record.item.id)
            items.append(record.item)
    if not items:
        raise InputError(f"catalog {str(path)!r} has no valid item")
    return items, skipped


def _texts(item: CatalogItem, text_fields: Sequence[str], text_join: str | None) -> list[str]:
    """The item's texts, one row each (or joined into one); none when a field is not text."""
    try:
        rows = [t for f in text_fields for t in item.text_values(f)]
    except InvalidRecordError:
        return []
    return [text_join.join(rows)] if rows and text_join is not None else rows


def _image_vectors(
    encoder: ImageEncoder, model: str, items: Sequence[CatalogItem], base_dir: Path, max_pixels: int
) -> tuple[ItemVectors, int]:
    """The items' pooled image vectors, and how many items had images that failed to load."""
    from mmsearch.fetch import FetchSettings
    from mmsearch.indexing.pipeline import load_item_images

    fetch_settings = FetchSettings()
    pixels: list[np.ndarray | None] = []
    failed = 0
    for item in items:
        if not item.images:
            pixels.append(None)
            continue
        try:
            loaded = load_item_images(item, base_dir, max_pixels=max_pixels, fetch_settings=fetch_settings)
            pixels.append(np.stack([encoder.preprocessor(img) for img in loaded]))
        except MmsearchError:
            failed += 1
            pixels.append(None)
    return embed_item_pixels(encoder, model, pixels), failed


__all__ = [
    "MODALITIES",
    "CatalogVectors",
    "ItemVectors",
    "Modality",
    "catalog_vectors",
    "embed_item_pixels",
    "embed_item_texts",
    "pool",
    "vector_model_name",
]
