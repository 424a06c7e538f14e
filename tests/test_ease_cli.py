"""`mmsearch cf fit --algorithm ease`, `recommend --history` and `query --history` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexers.runtime import load_model
from mmsearch.cf import load_model as load_cf_model
from mmsearch.cli import cli
from mmsearch.storage import open_store
from mmsearch.storage.base import Item

N = 24
USERS = 8


@pytest.fixture(scope="module")
def shop(tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of N items (CLIP text vectors, a colour), its config and a log leaving sku20-23 without interactions."""
    root = tmp_path_factory.mktemp("ease-shop")
    clip = load_model(tiny_clip_dir, threads=1)
    rng = np.random.default_rng(0)
    items = [
        Item(
            f"sku{i}",
            {f"{clip.name}.text": rng.standard_normal((1, 32)).astype(np.float32)},
            {"title": f"product {i}", "color": ["red", "blue", "green"][i % 3]},
        )
        for i in range(N)
    ]
    settings = {"backend": "edge", "path": str(root / "data"), "collection": "shop", "optimize_after": None}
    with open_store(settings, encoders=[clip.image.spec, clip.text.spec]) as store:
        store.upsert(items)
    (root / "mmsearch.toml").write_text(
        f'[store]\nbackend = "edge"\npath = "data"\ncollection = "shop"\n\n'
        f'[[encoders]]\nmodel = "{tiny_clip_dir.as_posix()}"\n',
        encoding="utf-8",
    )
    lines = ["user,item"]
    for u in range(USERS):
        lines += [f"u{u},sku{j}" for j in range(20) if j % 4 == u % 4 or (j + u) % 7 == 0]
    (root / "interactions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def run(shop: Path, *args: str):
    return CliRunner().invoke(cli, [*args[:1], "-c", str(shop / "mmsearch.toml"), *args[1:]])


def fit(shop: Path, *extra: str):
    return CliRunner().invoke(
        cli, ["cf", "fit", str(shop / "interactions.csv"), "-c", str(shop / "mmsearch.toml"), "--json", *extra]
    )


@pytest.fixture(scope="module")
def fitted(shop: Path) -> dict:
    result = fit(shop, "--algorithm", "ease", "--regularization", "2", "--neighbors", "6")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cf_fit_ease_writes_sparse_columns(shop: Path, fitted: dict) -> None:
    assert fitted["algorithm"] == "ease" and fitted["catalog_items"] == N
    assert fitted["items_written"] == 20 and fitted["items_cleared"] == 4  # sku20-23: no interactions
    assert Path(fitted["folder"]) == shop / "data" / "shop" / "cf" / "ease"
    with open_store({"backend": "edge", "path": str(shop / "data"), "collection": "shop"}) as store:
        got = store.retrieve(["sku3", "sku21"], with_vectors=["ease"])
    assert 0 < len(got[0].sparse["ease"]) <= 6 and "ease" not in got[1].sparse


def test_recommend_for_an_anonymous_history(shop: Path, fitted: dict) -> None:
    result = run(shop, "recommend", "--history", "sku0,sku4, sku8", "--limit", "4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    ids = [r["id"] for r in data["results"]]
    assert len(ids) == 4 and not {"sku0", "sku4", "sku8"} & set(ids)
    signals = {s["name"]: s for s in data["signals"]}
    assert signals["ease"]["inputs"] == ["history"] and data["query"]["history"] == ["sku0", "sku4", "sku8"]
    # the tiny CLIP has random weights, so its profile is left out of the default weights, and said so
    assert "profile:clip-tiny.text" not in signals
    assert any("random weights" in note for note in data["notes"]), data["notes"]
    weighted = run(
        shop, "recommend", "--history", "sku0,sku4", "-w", "ease=1", "-w", "profile:clip-tiny.text=1", "--json"
    )
    assert weighted.exit_code == 0, weighted.output
    used = {s["name"]: s for s in json.loads(weighted.stdout)["signals"]}
    assert used["profile:clip-tiny.text"]["inputs"] == ["user"] and used["ease"]["inputs"] == ["history"]


def test_a_history_the_models_do_not_know_is_an_error_saying_why(shop: Path, fitted: dict) -> None:
    result = run(shop, "recommend", "--history", "nope-1,nope-2", "-w", "ease=1")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "ease: no item of the user's history is known to the EASE model" in result.output, result.output


def test_recommend_for_a_known_user_uses_their_history(shop: Path, fitted: dict) -> None:
    result = run(shop, "recommend", "--user", "u1", "-w", "ease=1", "--explain")
    assert result.exit_code == 0, result.output
    assert "ease" in result.stdout and "raw" in result.stdout


def test_query_text_with_a_history(shop: Path, fitted: dict) -> None:
    result = run(
        shop, "query", "--text", "a lamp", "--history", "sku2", "-w", "ease=0.5", "-w", "clip_text=0.5", "--json"
    )
    assert result.exit_code == 0, result.output
    names = {s["name"] for s in json.loads(result.stdout)["signals"]}
    assert names == {"ease", "clip-tiny.text"}


def test_side_information_from_payload_and_vectors_reaches_cold_items(shop: Path, fitted: dict) -> None:
    result = fit(shop, "--algorithm", "ease", "--neighbors", "6", "--side", "color=3", "--side", "clip-tiny.text")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["items_written"] == N and data["items_cleared"] == 0
    model = load_cf_model(data["folder"])
    sources = [model.item_ids[j] for j in model.item_vector("sku21").indices]  # whose history scores sku21
    rec = run(shop, "recommend", "--history", ",".join(sources), "-w", "ease=1", "--limit", str(N), "--json")
    got = {r["id"]: r for r in json.loads(rec.stdout)["results"]}
    assert "sku21" in got and got["sku21"]["signals"]["ease"]["raw"] is not None  # a cold item, scored by EASE


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("recommend",), 2, "give --user ID, --history"),
        (("recommend", "--history", " , "), 2, "names no item"),
        (("cf", "fit", "INTERACTIONS", "--algorithm", "ease", "--factors", "3"), 2, "--factors do not apply"),
        (("cf", "fit", "INTERACTIONS", "--algorithm", "als", "--neighbors", "3"), 2, "--neighbors do not apply"),
        (
            ("cf", "fit", "INTERACTIONS", "--algorithm", "ease", "--side", "size"),
            1,
            "'size', and it is no stored item vector (those are: 'clip-tiny.image', 'clip-tiny.text')",
        ),
        (("cf", "fit", "INTERACTIONS", "--algorithm", "ease", "--side", "color=x"), 1, "is not a number"),
    ],
)
def test_bad_ease_input(shop: Path, fitted: dict, args: tuple[str, ...], code: int, needle: str) -> None:
    args = tuple(str(shop / "interactions.csv") if a == "INTERACTIONS" else a for a in args)
    result = CliRunner().invoke(cli, [*args, "-c", str(shop / "mmsearch.toml")])
    assert result.exit_code == code, result.output
    assert needle in result.output
    if code == 1:
        assert result.output.startswith("error: ") and result.output.count("\n") == 1
