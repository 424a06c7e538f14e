"""A catalog of good and deliberately broken rows for the Ray/Spark tests, and what each row must become."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from helpers import make_image

from indexers.runtime import load_model
from mmsearch.storage import Store, multi_name

CONFIG = """\
[store]
backend = "edge"
path = "data"
collection = "products"
payload_indexes = {{ category = "keyword", price = "float" }}

[[encoders]]
model = "{clip}"
text_fields = ["title"]

[[encoders]]
model = "{minilm}"
text_fields = ["title", "description", "reviews"]
"""
CATEGORIES = ("toys", "kitchen", "garden", "office")


@dataclass
class Catalog:
    """A catalog file and its expected outcome: the good ids and, per bad row, its id and error kind."""

    path: Path
    rows: list[dict]
    good: list[str]
    bad: list[tuple[str | None, str]] = field(default_factory=list)

    @property
    def by_id(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.rows if isinstance(r.get("id"), str)}


def good_row(i: int, with_images: bool = True) -> dict:
    photos = [f"images/p{i:04d}.png"] + ([f"images/p{i:04d}-b.png"] if i % 3 == 0 else [])
    return {
        "id": f"g{i:04d}",
        "title": f"Item {i} in {CATEGORIES[i % 4]}",
        "description": f"A {('red', 'green', 'blue')[i % 3]} thing, number {i}.",
        "reviews": [f"Review {j} of item {i}." for j in range(i % 3)],
        "images": photos if with_images else [],
        "category": CATEGORIES[i % 4],
        "price": round(1.25 + i * 0.37, 2),
        "in_stock": i % 2 == 0,
    }


def write_catalog(folder: Path, good: int = 200, broken: int = 5) -> Catalog:
    """`good` items (every 10th without photos) and `broken` rows of each kind of failure, shuffled together.

    Broken rows: an image file holding garbage (`image`), a photo that does not exist (`image`),
    blank texts and no photos (`empty`), a title over the character limit (`text`), no id (`id`),
    a reserved payload field (`record`).
    """
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for i in range(good):
        row = good_row(i, with_images=i % 10 != 9)
        for ref in row["images"]:
            make_image(40, 32, seed=int(ref[8:12]) * 2 + ref.endswith("-b.png")).save(folder / ref)
        rows.append(row)
    bad: list[tuple[str | None, str]] = []
    for k in range(broken):
        (images / f"garbage-{k}.png").write_bytes(b"not an image at all " * k)
        rows.append({"id": f"b-garbage-{k}", "title": "Garbage photo", "images": [f"images/garbage-{k}.png"]})
        rows.append({"id": f"b-missing-{k}", "title": "Lost photo", "images": [f"images/nope-{k}.png"]})
        rows.append({"id": f"b-empty-{k}", "title": "  ", "description": "", "images": []})
        rows.append({"id": f"b-long-{k}", "title": "x" * 20_001, "images": []})
        rows.append({"id": None, "title": "No id", "images": []})
        rows.append({"id": f"b-reserved-{k}", "title": "Reserved", "item_id": "x", "images": []})
        bad += [(f"b-garbage-{k}", "image"), (f"b-missing-{k}", "image"), (f"b-empty-{k}", "empty")]
        bad += [(f"b-long-{k}", "text"), (None, "id"), (f"b-reserved-{k}", "record")]
    order = np.random.default_rng(0).permutation(len(rows))
    rows = [rows[i] for i in order]
    path = folder / "catalog.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return Catalog(path, rows, [r["id"] for r in rows if str(r.get("id", "")).startswith("g")], bad)


def make_workspace(folder: Path, clip: Path, minilm: Path, good: int = 200, broken: int = 5) -> Catalog:
    """What the README's examples expect in their folder: `mmsearch.toml` and `catalog.jsonl` with photos."""
    folder.mkdir(parents=True, exist_ok=True)
    models = folder / "models"
    shutil.copytree(clip, models / "clip", dirs_exist_ok=True)
    shutil.copytree(minilm, models / "minilm", dirs_exist_ok=True)
    (folder / "mmsearch.toml").write_text(CONFIG.format(clip="models/clip", minilm="models/minilm"), encoding="utf-8")
    return write_catalog(folder, good, broken)


def assert_vectors_are_the_models(store: Store, catalog: Catalog, clip_dir: Path, minilm_dir: Path) -> None:
    """Every good item's stored rows equal `load_model(...)`'s embeddings of its photos and texts."""
    clip, minilm = load_model(clip_dir), load_model(minilm_dir)
    good = [catalog.by_id[i] for i in catalog.good]
    stored = {s.id: s for s in store.retrieve(catalog.good, with_vectors=True)}
    assert sorted(stored) == sorted(catalog.good)
    folder = catalog.path.parent
    for row in good:
        got = stored[row["id"]].vectors
        texts = [row["title"], row["description"], *row["reviews"]]
        want = {
            multi_name(clip.text.spec.model, "text"): clip.embed_texts([row["title"]]),
            multi_name(minilm.text.spec.model, "text"): minilm.embed_texts(texts),
        }
        if row["images"]:
            want[multi_name(clip.image.spec.model, "image")] = clip.embed_images([folder / p for p in row["images"]])
        else:
            assert (
                multi_name(clip.image.spec.model, "image") not in got
                or not got[multi_name(clip.image.spec.model, "image")].size
            )
        for name, rows in want.items():
            np.testing.assert_allclose(got[name], rows, atol=1e-5, err_msg=f"{row['id']} {name}")
