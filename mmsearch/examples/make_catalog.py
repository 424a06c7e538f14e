"""Generate the example catalog: simple objects and scenes drawn with Pillow, with texts and prices.

Run `python -m mmsearch.examples.make_catalog` to rewrite `catalog.jsonl` and `images/` beside this
file (deterministic: the same files every time). The catalog has 40 items in 6 categories; most
have one photo, a few have two or three (other angles), and four have none (text only).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import click
from PIL import Image, ImageDraw

SIZE = 96
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40),
    "green": (40, 160, 70),
    "blue": (40, 80, 200),
    "yellow": (235, 200, 40),
    "orange": (240, 130, 30),
    "purple": (130, 60, 170),
    "black": (30, 30, 30),
    "white": (245, 245, 245),
}
BACKGROUNDS = [(236, 236, 230), (220, 230, 240), (240, 228, 214)]
Draw = Callable[[ImageDraw.ImageDraw, tuple[int, int, int], int], None]


def _shade(color: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(c * f))) for c in color)  # type: ignore[return-value]


def ball(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    r = 30 - 6 * v
    d.ellipse((48 - r, 52 - r, 48 + r, 52 + r), fill=c, outline=_shade(c, 0.6), width=2)
    d.ellipse((40 - r // 3, 44 - r // 3, 40, 44), fill=_shade(c, 1.4))
    d.ellipse((22, 84, 74, 90), fill=(190, 190, 185))


def mug(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    x = 24 + 6 * v
    d.rectangle((x, 30, x + 40, 80), fill=c, outline=_shade(c, 0.6), width=2)
    if v == 0:
        d.arc((x + 30, 40, x + 56, 68), -90, 90, fill=_shade(c, 0.8), width=6)
    d.ellipse((x, 24, x + 40, 36), fill=_shade(c, 0.7))


def tshirt(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    body = [
        (30, 22),
        (40, 16),
        (56, 16),
        (66, 22),
        (84, 36),
        (74, 46),
        (66, 40),
        (66, 84),
        (30, 84),
        (30, 40),
        (22, 46),
        (12, 36),
    ]
    d.polygon(body, fill=c, outline=_shade(c, 0.6))
    if v == 0:
        d.arc((40, 8, 56, 24), 0, 180, fill=_shade(c, 0.6), width=2)
    elif v == 1:
        d.line((48, 20, 48, 84), fill=_shade(c, 0.7), width=1)
    else:
        d.rectangle((30, 50, 66, 58), fill=(250, 250, 250))


def lamp(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    d.polygon([(30, 20), (66, 20), (76, 50), (20, 50)], fill=c, outline=_shade(c, 0.6))
    d.line((48, 50, 48, 80), fill=(90, 90, 90), width=4)
    d.rectangle((32, 80, 64, 86), fill=(90, 90, 90))
    d.ellipse((40, 50, 56, 58), fill=(255, 240, 160))


def hat(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    d.ellipse((14, 56, 82, 74), fill=_shade(c, 0.8))
    d.chord((26, 20, 70, 90), 180, 360, fill=c, outline=_shade(c, 0.6))
    d.rectangle((27, 50, 69, 56), fill=_shade(c, 0.5))


def notebook(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    d.rectangle((26, 14, 72, 84), fill=c, outline=_shade(c, 0.6), width=2)
    for y in range(20, 82, 8):
        d.ellipse((22, y, 30, y + 4), fill=(160, 160, 160))
    d.rectangle((38, 30, 64, 40), fill=(250, 250, 250))


def sunset(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    for y in range(60):
        d.line((0, y, SIZE, y), fill=(250, 120 + y, 60 + y))
    d.ellipse((34, 34, 62, 62), fill=(255, 220, 90))
    d.polygon([(0, 96), (0, 62), (30, 52), (60, 64), (96, 54), (96, 96)], fill=(40, 110, 50))


def night(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    d.rectangle((0, 0, SIZE, SIZE), fill=(15, 20, 60))
    d.ellipse((58, 12, 80, 34), fill=(240, 240, 210))
    d.ellipse((64, 10, 86, 32), fill=(15, 20, 60))
    rng = random.Random(7)
    for _ in range(25):
        x, y = rng.randrange(SIZE), rng.randrange(70)
        d.point((x, y), fill=(255, 255, 255))
    d.polygon([(0, 96), (0, 78), (40, 70), (96, 80), (96, 96)], fill=(10, 40, 20))


def seaside(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    d.rectangle((0, 0, SIZE, 50), fill=(150, 200, 250))
    d.rectangle((0, 50, SIZE, SIZE), fill=(20, 90, 170))
    for y in range(58, 96, 10):
        d.arc((0, y, 24, y + 8), 180, 360, fill=(200, 230, 255))
        d.arc((40, y + 3, 64, y + 11), 180, 360, fill=(200, 230, 255))
    d.polygon([(46, 20), (46, 46), (66, 46)], fill=(250, 250, 250))
    d.rectangle((36, 46, 70, 52), fill=(120, 70, 30))


def forest(d: ImageDraw.ImageDraw, c: tuple[int, int, int], v: int) -> None:
    d.rectangle((0, 0, SIZE, SIZE), fill=(200, 230, 200))
    for x in (14, 38, 62, 84):
        d.polygon([(x, 20), (x - 14, 70), (x + 14, 70)], fill=(30, 110, 50))
        d.rectangle((x - 3, 70, x + 3, 82), fill=(100, 60, 30))


PRODUCTS: dict[str, tuple[Draw, str, tuple[str, ...], float]] = {
    # kind: (drawing, category, description phrases, base price)
    "ball": (ball, "toys", ("A bouncy rubber ball for kids and dogs.", "Soft play ball, easy to grip."), 6.0),
    "mug": (mug, "kitchen", ("Ceramic coffee mug, 350 ml, dishwasher safe.", "Stoneware mug for tea and coffee."), 9.5),
    "t-shirt": (tshirt, "apparel", ("Cotton crew-neck t-shirt, regular fit.", "Soft organic cotton tee."), 15.0),
    "lamp": (lamp, "home", ("Table lamp with a fabric shade and a warm LED bulb.", "Bedside lamp, 40 cm tall."), 29.0),
    "hat": (hat, "apparel", ("Wool felt hat with a wide brim.", "Classic fedora hat with a ribbon band."), 22.0),
    "notebook": (
        notebook,
        "stationery",
        ("A5 spiral notebook, 80 lined pages.", "Hardcover notebook with dotted pages."),
        4.5,
    ),
}
PRODUCT_COLORS = {
    "ball": ("red", "green", "blue", "yellow", "orange"),
    "mug": ("red", "white", "black", "blue", "green", "yellow"),
    "t-shirt": ("blue", "black", "white", "red", "purple", "yellow"),
    "lamp": ("yellow", "white", "green", "orange", "blue"),
    "hat": ("black", "purple", "orange", "red", "green"),
    "notebook": ("red", "blue", "green", "black", "yellow"),
}
POSTERS: list[tuple[str, Draw, str]] = [
    ("Sunset over green hills", sunset, "Poster of an orange sunset sky over rolling green hills."),
    ("Night sky with crescent moon", night, "Poster of a starry night with a crescent moon above a dark forest."),
    ("Sailing boat at sea", seaside, "Poster of a small sailing boat on a blue sea under a clear sky."),
    ("Pine forest", forest, "Poster of a row of pine trees on a pale green background."),
]
TEXT_ONLY = [
    ("Gift card, 25 euros", "A digital gift card worth 25 euros, sent by email.", "gift cards", 25.0),
    ("Gift card, 50 euros", "A digital gift card worth 50 euros, sent by email.", "gift cards", 50.0),
    ("Two-year extended warranty", "Extends the warranty of one lamp or mug to two years.", "services", 7.0),
    ("Gift wrapping", "We wrap your order in recycled paper with a ribbon.", "services", 3.0),
]
REVIEWS = [
    "Exactly as pictured, great colour.",
    "Arrived quickly and well packed.",
    "Good value for the price.",
    "A bit smaller than I expected.",
    "My kids love it.",
    "Nice quality, would buy again.",
    "The colour is brighter in real life.",
    "Perfect gift.",
    "Does the job.",
]
# Items with more than one photo: (kind, colour) -> number of photos (other angles).
MULTI_PHOTO = {("mug", "red"): 2, ("t-shirt", "blue"): 3, ("ball", "green"): 2}


def draw(fn: Draw, color: tuple[int, int, int], variant: int) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUNDS[variant % len(BACKGROUNDS)])
    fn(ImageDraw.Draw(image), color, variant)
    return image


class _Writer:
    """Saves the drawn photos under `images/` and numbers the items (`sku-001`, ...) in order."""

    def __init__(self, out: Path) -> None:
        self.images_dir = out / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def next_id(self) -> str:
        self.count += 1
        return f"sku-{self.count:03d}"

    def save(self, image: Image.Image, name: str, jpeg: bool) -> str:
        path = self.images_dir / (name + (".jpg" if jpeg else ".png"))
        if jpeg:
            image.save(path, "JPEG", quality=85, optimize=True)
        else:
            image.save(path, "PNG", optimize=True)
        return f"images/{path.name}"


def _products(w: _Writer, rng: random.Random) -> list[dict]:
    records = []
    for kind, (fn, category, phrases, price) in PRODUCTS.items():
        for color in PRODUCT_COLORS[kind]:
            item_id = w.next_id()
            jpeg = w.count % 3 == 0
            photos = [
                w.save(draw(fn, COLORS[color], v), f"{kind}-{color}" + (f"-{v + 1}" if v else ""), jpeg)
                for v in range(MULTI_PHOTO.get((kind, color), 1))
            ]
            records.append(
                {
                    "id": item_id,
                    "title": f"{color.capitalize()} {kind}",
                    "description": f"{rng.choice(phrases)} Colour: {color}.",
                    "reviews": rng.sample(REVIEWS, rng.randrange(0, 4)),
                    "images": photos,
                    "category": category,
                    "color": color,
                    "price": round(price * rng.uniform(0.8, 1.3), 2),
                    "in_stock": rng.random() > 0.15,
                }
            )
    return records


def _posters(w: _Writer, rng: random.Random) -> list[dict]:
    records = []
    for title, fn, description in POSTERS:
        item_id = w.next_id()
        slug = title.lower().replace(" ", "-").replace(",", "")
        records.append(
            {
                "id": item_id,
                "title": f"{title} poster",
                "description": description,
                "reviews": rng.sample(REVIEWS, rng.randrange(0, 3)),
                "images": [w.save(draw(fn, (0, 0, 0), 0), slug, True)],
                "category": "posters",
                "price": round(rng.uniform(12, 30), 2),
                "in_stock": True,
            }
        )
    return records


def _text_only(w: _Writer) -> list[dict]:
    return [
        {
            "id": w.next_id(),
            "title": title,
            "description": description,
            "reviews": [],
            "images": [],
            "category": category,
            "price": price,
            "in_stock": True,
        }
        for title, description, category, price in TEXT_ONLY
    ]


def build(out: Path) -> list[dict]:
    """Write images under `out/images` and return the catalog records."""
    rng = random.Random(2024)  # one stream, drawn in this order: the same catalog every time
    writer = _Writer(out)
    products = _products(writer, rng)
    posters = _posters(writer, rng)
    return [*products, *posters, *_text_only(writer)]


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(__file__).parent,
    show_default="this package's folder",
    help="The folder to write catalog.jsonl and images/ into.",
)
def main(out: Path) -> None:
    """Rewrite the example catalog (40 items, their drawn photos) into a folder, deterministically.

    \b
    Example:
      python -m mmsearch.examples.make_catalog --out /tmp/example-catalog
    """
    records = build(out)
    with open(out / "catalog.jsonl", "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    images = list((out / "images").iterdir())
    size = sum(p.stat().st_size for p in images)
    click.echo(f"wrote {len(records)} items and {len(images)} images ({size / 1024:.0f} KB) to {out}")


if __name__ == "__main__":
    main()
