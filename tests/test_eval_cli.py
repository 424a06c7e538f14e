"""`mmsearch eval` on a user's catalog and interactions, and `mmsearch eval movielens`."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from mmsearch.cli import cli
from tests.helpers import make_image

needs_movielens = pytest.mark.skipif(
    importlib.util.find_spec("recbole") is None, reason="MovieLens-100k is read from the recbole wheel"
)
CLIP_TECHNIQUES = [
    "clip-tiny.image",
    "clip-tiny.text",
    "clip-tiny.text-image",
    "clip-tiny.image-text",
    "clip-tiny.mixed",
]


def write_data(folder: Path) -> tuple[Path, Path]:
    """A catalog of 16 items with a title and a photo (one with neither photo nor a readable one),
    and a log where each of 12 users interacted with the 8 items of one of two topics."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(16):
        topic = "ramen" if i < 8 else "bicycle"
        image = folder / f"{i}.png"
        make_image(seed=i).save(image)
        lines.append({"id": f"item{i}", "title": f"{topic} number {i}", "images": [image.name]})
    lines.append({"id": "item16", "title": "a broken photo", "images": ["missing.png"]})  # cold, no image
    catalog = folder / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    rows = ["user,item,rating"]
    for u in range(12):
        topic = range(8) if u < 6 else range(8, 16)
        rows += [f"u{u},item{i},{1 + (u + i) % 5}" for i in topic]
    rows.append("u0,not-in-catalog,5")
    log = folder / "ratings.csv"
    log.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return log, catalog


def test_eval_on_a_catalog_with_images_and_texts(tiny_clip_dir: Path, tmp_path: Path) -> None:
    log, catalog = write_data(tmp_path / "data")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--interactions",
            str(log),
            "--catalog",
            str(catalog),
            "--model",
            str(tiny_clip_dir),
            "--tune",
            "--weight-grid",
            "0,0.5,1",
            "--tune-fusion",
            "wsum-minmax",
            "--tune-depth",
            "50",
            "--tune-depth",
            "0",
            "--tune-budget",
            "2",
            "--at",
            "5",
            "--at",
            "10",
            "--tune-metric",
            "ndcg@5",
            "--als-factors",
            "4",
            "--bpr-factors",
            "4",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["data"]["items"] == 17  # the catalog's items, the one without interactions included
    assert data["data"]["content"] == ["clip-tiny.image", "clip-tiny.text"]
    (split,) = data["splits"]
    names = [r["name"] for r in split["strategies"]]
    assert names[:2] == ["random", "popular"] and names[2:7] == CLIP_TECHNIQUES
    assert names[7:11] == ["als", "bpr", "ease", "ease-side"]
    assert [n.split("+")[0] for n in names[11:]] == ["hybrid:als", "hybrid:bpr", "hybrid:ease", "hybrid:ease-side"]
    assert all(
        set(r["test"]) == {f"{m}@{k}" for m in ("map", "ndcg", "recall", "precision", "coverage") for k in (5, 10)}
        for r in split["strategies"]
    )
    hybrid = split["strategies"][11]
    assert hybrid["fusion"]["tuned"] is True and hybrid["fusion"]["tune_metric"] == "ndcg@5"
    labels = [t["label"] for t in split["tuning"][hybrid["name"]]]
    assert len(labels) == 6 and labels[0].startswith("wsum-minmax pool=50 als=0 ")
    assert labels[3].startswith("wsum-minmax pool=all als=0 ")  # each leg's top 50, then all candidates
    tuned = split["model_tuning"]
    assert set(tuned) == {"als", "bpr", "ease", "ease-side"} and tuned["als"]["trials"]
    assert set(tuned["ease-side"]["searched"]) >= {"side:clip-tiny.image", "side:clip-tiny.text", "regularization"}
    assert "1 unknown items ('not-in-catalog')" in result.stderr
    assert "clip-tiny.image (16 items, 1 failed)" in result.stderr
    assert json.loads((out / "eval.json").read_text()) == data
    assert "| clip-tiny.mixed |" in (out / "eval.md").read_text()
    with Image.open(out / "eval-random.png") as image:
        assert image.format == "PNG"


def test_eval_without_a_catalog_prints_the_table(tmp_path: Path) -> None:
    log, _ = write_data(tmp_path / "data")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--interactions",
            str(log),
            "--als-factors",
            "4",
            "--bpr-factors",
            "4",
            "--split",
            "cold-items",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "### cold-items split" in result.stdout
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["Strategy", "random", "popular", "als", "bpr", "ease"]  # no content: no ease-side
    assert result.stderr == ""
    assert (out / "eval-cold-items.png").is_file()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["eval"], 2, "give --interactions FILE"),
        (
            ["eval", "--interactions", "{log}", "--catalog", "{catalog}"],
            1,
            "error: --catalog needs at least one --model",
        ),
        (["eval", "--interactions", "{log}", "--tune-metric", "ndcg@11"], 1, "unknown tune metric 'ndcg@11'"),
        (["eval", "--interactions", "{log}", "--weight-grid", "0,x"], 1, "--weight-grid '0,x'"),
        (["eval", "--interactions", "{missing}"], 1, "does not exist"),
        (["eval", "--tune", "movielens"], 2, "options --tune go after 'movielens'"),
    ],
)
def test_bad_usage_is_one_clean_line(args: list[str], code: int, message: str, tmp_path: Path) -> None:
    log, catalog = write_data(tmp_path / "data")
    args = [a.format(log=log, catalog=catalog, missing=tmp_path / "nope.csv") for a in args]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")] if args[-1] != "movielens" else args)
    assert result.exit_code == code, result.output
    assert message in result.output


@needs_movielens
def test_movielens_on_a_user_sample_with_a_small_text_model(tiny_clip_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "movielens",
            "--model",
            str(tiny_clip_dir),
            "--max-users",
            "40",
            "--split",
            "random",
            "--weight-grid",
            "0,0.8,1",
            "--tune-fusion",
            "wsum-minmax",
            "--tune-budget",
            "1",
            "--out",
            str(tmp_path),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval.json").read_text())
    assert data["data"]["dataset"] == "MovieLens-100k" and data["data"]["items"] == 1682
    (split,) = data["splits"]
    assert split["users"] == {"validation": 40, "test": 40}
    assert [r["name"] for r in split["strategies"]] == [
        "random",
        "popular",
        "clip-tiny.text",
        "als",
        "bpr",
        "ease",
        "ease-side",
        "hybrid:als+clip-tiny.text",
        "hybrid:bpr+clip-tiny.text",
        "hybrid:ease+clip-tiny.text",
        "hybrid:ease-side+clip-tiny.text",
    ]
    rows = {r["name"]: r["test"] for r in split["strategies"]}
    assert rows["als"]["ndcg@10"] > rows["random"]["ndcg@10"] and rows["ease"]["ndcg@10"] > rows["random"]["ndcg@10"]
    assert data["data"]["side_information"] == ["clip-tiny.text", "genres"]
    assert "## MovieLens-100k: 943 users, 1682 items, 100000 interactions" in result.stdout


@needs_movielens
@pytest.mark.slow
def test_movielens_full_run_reproduces_the_readme_table(tmp_path: Path) -> None:
    began = time.perf_counter()
    result = CliRunner().invoke(
        cli, ["eval", "movielens", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    )
    seconds = time.perf_counter() - began
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    splits = {s["split"]: s for s in data["splits"]}
    assert list(splits) == ["random", "cold-items", "temporal"]
    rows = {r["name"]: r for r in splits["random"]["strategies"]}
    assert list(rows) == [
        "random",
        "popular",
        "minilm.text",
        "als",
        "bpr",
        "ease",
        "ease-side",
        "hybrid:als+minilm.text",
        "hybrid:bpr+minilm.text",
        "hybrid:ease+minilm.text",
        "hybrid:ease-side+minilm.text",
    ]
    ndcg = {name: r["test"]["ndcg@10"] for name, r in rows.items()}
    # The bar: a served strategy >= 0.34, the tuned hybrid >= the best single one, ALS tuned >= 0.32.
    assert max(v for n, v in ndcg.items() if n.startswith(("ease", "hybrid:"))) >= 0.34
    assert max(v for n, v in ndcg.items() if n.startswith("hybrid:")) >= max(
        v for n, v in ndcg.items() if not n.startswith("hybrid:")
    )
    assert ndcg["als"] >= 0.32
    assert ndcg["random"] < ndcg["minilm.text"] < ndcg["popular"] < ndcg["bpr"] < ndcg["als"]
    cold_rows = {r["name"]: r["test"]["ndcg@10"] for r in splits["cold-items"]["strategies"]}
    assert cold_rows["als"] == cold_rows["bpr"] == cold_rows["ease"] == cold_rows["popular"] == 0.0
    assert max(cold_rows.values()) >= 0.105
    assert all((tmp_path / "out" / f"eval-{s}.png").is_file() for s in splits)
    assert seconds < 900  # the bound: 15 minutes on 2 cores
