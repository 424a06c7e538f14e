"""`mmsearch query`, `mmsearch recommend` and `mmsearch cf fit` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from indexers.runtime import load_model
from mmsearch.cli import cli
from mmsearch.errors import InvalidFilterError
from mmsearch.query.filters import parse_filters
from mmsearch.storage import Filter, Match, MatchAny, Range, open_store
from mmsearch.storage.base import Item

N = 30
USERS = 6


@pytest.fixture(scope="module")
def shop(trained_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of N items (CLIP vectors, photos on disk), its config file and an interaction log."""
    root = tmp_path_factory.mktemp("shop")
    clip = load_model(trained_clip_dir, threads=1)
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    items = []
    for i in range(N):
        photo = f"img/p{i}.png"
        Image.new("RGB", (24, 24), tuple(int(c) for c in rng.integers(0, 255, 3))).save(root / photo)
        v = {f"{clip.name}.text": rng.standard_normal((1, 32)).astype(np.float32)}
        if i % 4:  # every fourth item has no photo vector
            v[f"{clip.name}.image"] = clip.image.embed([str(root / photo)])
        items.append(
            Item(
                f"sku{i}",
                v,
                {"title": f"product {i}", "price": float(i), "color": "red" if i % 2 else "blue", "images": [photo]},
            )
        )
    settings = {
        "backend": "edge",
        "path": str(root / "data"),
        "collection": "shop",
        "cf_dim": 4,
        "optimize_after": None,
    }
    with open_store(settings, encoders=[clip.image.spec, clip.text.spec]) as store:
        store.upsert(items)
    (root / "mmsearch.toml").write_text(
        f'[store]\nbackend = "edge"\npath = "data"\ncollection = "shop"\n\n'
        f'[[encoders]]\nmodel = "{trained_clip_dir.as_posix()}"\n',
        encoding="utf-8",
    )
    lines = ["user,item,rating"]
    for u in range(USERS):
        for j in range(N):
            if j % USERS == u or (j + 1) % USERS == u:
                lines.append(f"u{u},sku{j},{1 + j % 3}")
    lines += ["u0,ghost-item,5", "ghost-user,ghost-item,1", "u5,sku1,not-a-number"]
    (root / "interactions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def run(shop: Path, *args: str):
    return CliRunner().invoke(cli, [*args[:1], "-c", str(shop / "mmsearch.toml"), *args[1:]])


@pytest.fixture(scope="module")
def fitted(shop: Path) -> dict:
    result = CliRunner().invoke(
        cli,
        # A toy log: the defaults' penalty (50, for logs the size of MovieLens) would flatten it.
        [
            "cf",
            "fit",
            str(shop / "interactions.csv"),
            "-c",
            str(shop / "mmsearch.toml"),
            "--iterations",
            "5",
            "--regularization",
            "0.01",
            "--alpha",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cf_fit_writes_item_factors_and_reports_unknown_ids(shop, fitted):
    assert fitted["algorithm"] == "als" and fitted["factors"] == 4 and fitted["dim"] == 4
    assert fitted["n_users"] == USERS and fitted["catalog_items"] == N
    assert fitted["unknown_items"] == 1 and fitted["rows_dropped"] == 2 and fitted["unknown_users"] == 1
    assert fitted["examples"]["items"] == ["ghost-item"]
    assert fitted["read"]["skipped"]  # the row with a bad rating
    assert fitted["items_written"] == N and fitted["items_cleared"] == 0
    assert (Path(fitted["folder"]) / "cf_model.json").is_file()
    with open_store({"backend": "edge", "path": str(shop / "data"), "collection": "shop"}) as store:
        got = store.retrieve(["sku3"], with_vectors=["cf"])[0].vectors["cf"]
    assert got.shape == (4,) and np.abs(got).sum() > 0


def test_cf_fit_refuses_factors_that_do_not_fit_the_store(shop):
    result = CliRunner().invoke(
        cli,
        [
            "cf",
            "fit",
            str(shop / "interactions.csv"),
            "-c",
            str(shop / "mmsearch.toml"),
            "--algorithm",
            "bpr",
            "--factors",
            "4",
        ],
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "error:" in result.output and "--factors 3" in result.output


def test_query_text_json(shop):
    result = run(shop, "query", "--text", "a red bag", "--limit", "5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["query"]["text"] == "a red bag" and data["fusion"] == "wsum" and data["engine"] == "qdrant"
    assert [r["rank"] for r in data["results"]] == [1, 2, 3, 4, 5]
    assert {s["name"] for s in data["signals"]} == {"clip-tiny.image", "clip-tiny.text"}
    first = data["results"][0]
    assert first["id"].startswith("sku") and set(first["signals"]) == {"clip-tiny.image", "clip-tiny.text"}
    assert sum(s["contribution"] for s in first["signals"].values()) == pytest.approx(first["score"], rel=1e-4)
    assert [(e["vector"], e["input"], e["precision"]) for e in data["encoders"]] == [("clip-tiny.text", "text", "fp32")]


def test_query_says_which_tower_embedded_the_text_and_at_which_precision(shop):
    result = run(shop, "query", "--text", "a red bag", "--limit", "3")
    assert result.exit_code == 0, result.output
    assert "text embedded by clip-tiny.text: fp32 (no int8 graph: exported without --quantize int8)" in result.stderr


def test_query_explain_table_filter_and_weights(shop):
    result = run(
        shop,
        "query",
        "--text",
        "a red bag",
        "-w",
        "clip_image=1",
        "--filter",
        "price<10",
        "--filter",
        "color=red",
        "--explain",
    )
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.split()[0].isdigit()]
    assert rows and all(int(r[2][3:]) < 10 and int(r[2][3:]) % 2 == 1 for r in rows)
    assert "clip-tiny.image" in result.stdout and "raw" in result.stdout and "norm" in result.stdout
    assert "clip-tiny.text" not in result.stdout.replace("clip-tiny.image", "")


def test_query_json_filter_or_and_expressions(shop):
    # `should` (either condition) is what the short expressions cannot say
    either = '{"should": [{"key": "price", "range": {"lt": 3}}, {"key": "price", "range": {"gte": 20}}]}'
    args = ("--filter", either, "--filter", "color=red", "--limit", "50", "--json")
    result = run(shop, "query", "--text", "a bag", *args)
    assert result.exit_code == 0, result.output
    ids = {int(r["id"][3:]) for r in json.loads(result.stdout)["results"]}
    assert ids == {i for i in range(N) if (i < 3 or i >= 20) and i % 2}


def test_query_image_and_html_report(shop, tmp_path):
    out = tmp_path / "hits.html"
    result = run(
        shop,
        "query",
        "--image",
        str(shop / "img" / "p1.png"),
        "--limit",
        "3",
        "--html",
        str(out),
        "--image-root",
        str(shop),
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.count("data:image/jpeg;base64,") >= 3 and "clip-tiny.image" in page
    assert result.stdout.splitlines()[1].split()[2] == "sku1"  # the photo itself comes first


def test_query_item_and_signals_listing(shop, fitted):
    result = run(shop, "query", "--item", "sku5", "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and "sku5" not in [r["id"] for r in data["results"]]
    assert {s["name"] for s in data["signals"]} == {"clip-tiny.image", "clip-tiny.text", "cf"}
    listing = run(shop, "query", "--signals")
    assert listing.exit_code == 0
    assert "profile:clip-tiny.image" in listing.stdout and "clip_image" in listing.stdout and "cf" in listing.stdout


def test_recommend_fuses_cf_and_excludes_seen(shop, fitted):
    result = run(shop, "recommend", "--user", "u2", "--limit", "8", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    seen = {f"sku{j}" for j in range(N) if j % USERS == 2 or (j + 1) % USERS == 2}
    assert data["results"] and not {r["id"] for r in data["results"]} & seen
    names = {s["name"] for s in data["signals"]}
    assert "cf" in names and "profile:clip-tiny.image" in names
    both = run(shop, "recommend", "--user", "u2", "--include-seen", "-w", "cf=1", "--limit", "3", "--json")
    assert {r["id"] for r in json.loads(both.stdout)["results"]} & seen


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("query",), "empty query"),
        (("query", "--text", "bag", "-w", "colour=1"), "unknown signal 'colour'; known: cf, clip-tiny.image"),
        (("query", "--text", "bag", "-w", "clip_image=-2"), "negative"),
        (("query", "--text", "bag", "-w", "clip_image=0"), "all weights are 0"),
        (("query", "--text", "bag", "-w", "clip_image"), "name=value"),
        (("query", "--text", "bag", "--filter", "price<cheap"), "not a number"),
        (("query", "--text", "bag", "--filter", '{"must": [}'), "is not valid JSON"),
        (("query", "--text", "bag", "--filter", '{"must": [{"key": "p", "geo_radius": {}}]}'), "geo_radius"),
        (("query", "--item", "sku999"), "item 'sku999' is not in collection 'shop'"),
        (("query", "--image", "missing.jpg"), "missing.jpg"),
        (("recommend", "--user", "nobody"), "user 'nobody' is unknown"),
    ],
)
def test_bad_input_exits_1_with_one_line(shop, fitted, args, needle):
    result = run(shop, *args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert needle in result.output


def test_filter_expressions():
    f = parse_filters(
        ["color=red", "size=M,L", "rank=3", "in_stock=true", "brand!=acme", "price<20", "w>=1.5", 'sku="0042"']
    )
    assert f == Filter(
        must=(
            Match("color", "red"),
            MatchAny("size", ("M", "L")),
            Match("rank", 3),
            Match("in_stock", True),
            Range("price", lt=20.0),
            Range("w", gte=1.5),
            Match("sku", "0042"),
        ),
        must_not=(Match("brand", "acme"),),
    )
    assert parse_filters(["price=5.4", "in_stock=true,false", "v=1.50"]) == Filter(
        must=(Match("price", 5.4), MatchAny("in_stock", (True, False)), Match("v", 1.5))
    )
    assert parse_filters([]) is None
    assert parse_filters(['{"must_not": [{"key": "color", "match": {"value": "red"}}]}', "price<20"]) == Filter(
        must=(Filter(must_not=(Match("color", "red"),)), Range("price", lt=20.0))
    )
    for bad in ("color", "=red", "price<", "price>=x", "n=1,two", "[1]", "{nope}"):
        with pytest.raises(InvalidFilterError, match="filter"):
            parse_filters([bad])
