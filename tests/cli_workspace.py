"""A workspace as a user has it after the README's quickstart: models, the example catalog, logs, a config.

- `models/clip`: the session's tiny CLIP (random weights), named `clip` as an export to
  `models/clip` names it; `models/minilm`: all-MiniLM-L6-v2 exported by the session.
- the example catalog at `mmsearch/examples/catalog.jsonl` (as in the repository) and as
  `catalog.jsonl`, each with its `images/`; `photo.jpg`, one of its photos.
- an interaction log for the catalog's ids: `interactions.csv` (user, item, rating, timestamp),
  `ratings.tsv` (user_id, movie_id, rating) and `clicks.tsv` (user, item, timestamp).
- `mmsearch.toml`: a store `data/products` and both models as encoders.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from indexers.manifest import Manifest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "mmsearch" / "examples"

MMSEARCH_TOML = """\
[store]
backend = "edge"
path = "data"
collection = "products"
payload_indexes = { category = "keyword", price = "float" }

[[encoders]]
model = "models/clip"
text_fields = ["title"]

[[encoders]]
model = "models/minilm"
text_fields = ["title", "description", "reviews"]
"""

# Items nobody interacted with: found through content only.
COLD = {"sku-011", "sku-037", "sku-038", "sku-039", "sku-040"}


def catalog_items() -> list[dict]:
    return [json.loads(line) for line in (EXAMPLES / "catalog.jsonl").read_text(encoding="utf-8").splitlines()]


def interaction_rows() -> list[tuple[str, str, int, int]]:
    """(user, item, rating, timestamp) for users u1..u50, each mostly within one category, seeded."""
    warm = [i for i in catalog_items() if i["id"] not in COLD]
    categories = sorted({i["category"] for i in warm})
    rng, t, rows = random.Random(0), 1_700_000_000, []
    for u in range(1, 51):
        home = categories[u % len(categories)]
        mine = [i["id"] for i in warm if i["category"] == home]
        other = [i["id"] for i in warm if i["category"] != home]
        for item in rng.sample(mine, min(len(mine), rng.randint(3, 5))) + rng.sample(other, 2):
            t += rng.randint(60, 86_400)
            rows.append((f"u{u}", item, rng.randint(1, 5), t))
    return rows


def write_logs(workspace: Path) -> None:
    rows = interaction_rows()
    logs = {
        "interactions.csv": (",", ("user", "item", "rating", "timestamp"), lambda r: r),
        "ratings.tsv": ("\t", ("user_id", "movie_id", "rating"), lambda r: r[:3]),
        "clicks.tsv": ("\t", ("user", "item", "timestamp"), lambda r: (r[0], r[1], r[3])),
    }
    for name, (sep, header, pick) in logs.items():
        lines = [sep.join(header), *(sep.join(map(str, pick(r))) for r in rows)]
        (workspace / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_workspace(root: Path, tiny_clip_dir: Path, minilm_dir: Path) -> Path:
    """The files of the module docstring under `root` (models copied: commands may overwrite them)."""
    clip = shutil.copytree(tiny_clip_dir, root / "models" / "clip")
    # An export to models/clip names the model `clip`; the manifest itself is not hashed.
    Manifest.load(clip).model_copy(update={"name": "clip"}).write(clip)
    shutil.copytree(minilm_dir, root / "models" / "minilm")
    for target in (root / "mmsearch" / "examples", root):
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "catalog.jsonl", target)
        shutil.copytree(EXAMPLES / "images", target / "images")
    shutil.copy(EXAMPLES / "images" / "ball-blue.jpg", root / "photo.jpg")
    write_logs(root)
    (root / "mmsearch.toml").write_text(MMSEARCH_TOML, encoding="utf-8")
    return root
