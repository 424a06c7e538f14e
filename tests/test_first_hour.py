"""Issue 11, "the first hour": one test per thing a new user tripped over, through the command line.

Each runs in a workspace like the README's (`tests/cli_workspace.py`: the tiny random-weight CLIP as
`models/clip`, all-MiniLM-L6-v2 as `models/minilm`, the example catalog, interaction logs), indexed
into the default Qdrant Edge store, as the quickstart leaves it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexers.manifest import Manifest
from mmsearch.cli import cli
from tests.cli_workspace import REPO, catalog_items, make_workspace

IN_STOCK = {i["id"] for i in catalog_items() if i["in_stock"]}
OUT_OF_STOCK = {i["id"] for i in catalog_items() if not i["in_stock"]}
CLIP_AND_MINILM = ["--model", "models/clip", "--model", "models/minilm"]


def run(ws: Path, *args: str, monkeypatch: pytest.MonkeyPatch | None = None):
    patch = monkeypatch or pytest.MonkeyPatch()
    try:
        patch.chdir(ws)
        patch.delenv("MMSEARCH_CONFIG", raising=False)
        return CliRunner().invoke(cli, list(args))
    finally:
        if monkeypatch is None:
            patch.undo()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path, minilm_dir: Path) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("first-hour"), tiny_clip_dir, minilm_dir)
    result = run(root, "index", "mmsearch/examples/catalog.jsonl", *CLIP_AND_MINILM, "--no-progress")
    assert result.exit_code == 0, result.output
    return root


def _ids(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [r["id"] for r in json.loads(result.stdout)["results"]]


# -- "Boolean filters return nothing on the default store" ------------------------------------------


def test_boolean_filters_work_on_the_default_store(ws: Path) -> None:
    assert len(IN_STOCK) == 35 and len(OUT_OF_STOCK) == 5
    for value, expected in (("true", IN_STOCK), ("false", OUT_OF_STOCK)):
        got = _ids(run(ws, "query", "--text", "a ball", "--filter", f"in_stock={value}", "-k", "40", "--json"))
        assert set(got) == expected


# -- "Inputs ignored without a word" ----------------------------------------------------------------


def test_a_model_that_matches_no_vector_is_an_error_naming_both(ws: Path, tiny_clip_int8_dir: Path) -> None:
    folder = shutil.copytree(tiny_clip_int8_dir, ws / "models" / "clip-int8", dirs_exist_ok=True)
    Manifest.load(folder).model_copy(update={"name": "clip-int8"}).write(folder)  # as --out models/clip-int8 names it
    got = run(ws, "query", "--model", "models/clip-int8", "--model", "models/minilm", "--text", "a red ball")
    assert got.exit_code == 1
    lines = got.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model 'clip-int8' has no vectors in collection")
    assert "clip-int8.image, clip-int8.text" in lines[0] and "clip.image, clip.text, minilm.text" in lines[0]


def test_a_filter_on_a_field_no_item_has_says_so(ws: Path) -> None:
    got = run(ws, "query", "--text", "a red ball", "--filter", "pricee<3")
    assert got.exit_code == 0
    assert "no results" in got.stdout
    assert "note: filter: no stored item has a field 'pricee'" in got.stderr
    assert "fields seen: category, color, description, images, in_stock, price, reviews, title" in got.stderr
    assert "did you mean 'price'?" in got.stderr
    plain = run(ws, "query", "--text", "a red ball", "--filter", "price<3")
    assert "no stored item" not in plain.stderr


# -- "Random-weight models get equal default weight" -----------------------------------------------


def test_random_weight_models_are_left_out_of_the_default_weights(ws: Path) -> None:
    got = run(ws, "query", "--text", "red ball", "--json")
    data = json.loads(got.stdout)
    assert [s["name"] for s in data["signals"]] == ["minilm.text"]
    assert data["results"][0]["payload"]["title"] == "Red ball"
    assert any("left out of the default weights" in n and "'clip'" in n for n in data["notes"])
    # An image query: only CLIP has an image tower; its same-modality signal finds the photo's own item.
    image = run(ws, "query", "--image", "images/ball-red.png", "--json")
    data = json.loads(image.stdout)
    assert data["results"][0]["id"] == "sku-001" and [s["name"] for s in data["signals"]] == ["clip.image"]
    assert any("same-modality similarity only" in n for n in data["notes"])


def test_weighting_a_random_weight_model_explicitly_warns(ws: Path) -> None:
    got = run(ws, "query", "--text", "red ball", "-w", "clip_image=1", "-w", "bert=1")
    assert got.exit_code == 0
    assert "warning: signal 'clip.image' comes from model 'clip', exported with random weights" in got.stderr


# -- "A 100,000-character description skips the whole item" ----------------------------------------


def _catalog(ws: Path, name: str, description: str) -> str:
    row = {"id": "long-1", "title": "A long story", "description": description, "in_stock": True}
    (ws / name).write_text(json.dumps(row) + "\n", encoding="utf-8")
    return name


def test_a_long_description_is_truncated_and_counted_not_refused(ws: Path) -> None:
    catalog = _catalog(ws, "long.jsonl", " ".join(f"word{i % 97}" for i in range(20_000)))
    got = run(ws, "index", catalog, "--model", "models/minilm", "--store", "long-store", "--json", "-q")
    assert got.exit_code == 0, got.output
    summary = json.loads(got.stdout)
    assert (summary["indexed"], summary["skipped"], summary["truncated"]) == (1, 0, 1)
    text = run(ws, "index", catalog, "--model", "models/minilm", "--store", "long-store-2", "-q")
    assert "1 text(s) were longer than their model's context and embedded truncated to it" in text.stdout


def test_max_text_chars_reaches_the_encoder(ws: Path) -> None:
    catalog = _catalog(ws, "huge.jsonl", "word " * 240_000)  # 1,200,000 characters
    (ws / "big.toml").write_text(
        '[index]\nmax_text_chars = 2000000\n\n[[encoders]]\nmodel = "models/minilm"\n', encoding="utf-8"
    )
    got = run(ws, "index", catalog, "-c", "big.toml", "--store", "huge-store", "--json", "-q")
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["indexed"] == 1
    (ws / "small.toml").write_text(
        '[index]\nmax_text_chars = 100\n\n[[encoders]]\nmodel = "models/minilm"\n', encoding="utf-8"
    )
    small = run(ws, "index", catalog, "-c", "small.toml", "--store", "small-store", "--json", "-q")
    assert small.exit_code == 3 and json.loads(small.stdout)["skipped_by_kind"] == {"text": 1}


# -- "--store at a file, [store] path = 5, a bad collection, a manifest that disagrees" --------------


def _bad_manifest(ws: Path) -> str:
    folder = ws / "models" / "clip-bad-dim"
    if not folder.exists():
        shutil.copytree(ws / "models" / "clip", folder)
        manifest = Manifest.load(folder)
        text = manifest.towers["text"].model_copy(update={"dim": 64})
        manifest.model_copy(update={"towers": {**manifest.towers, "text": text}}).write(folder)
    return "models/clip-bad-dim"


BAD = {
    "store is a file": (
        ["index", "catalog.jsonl", "--model", "models/minilm", "--store", "catalog.jsonl"],
        "is a file",
    ),
    "store under a file": (
        ["index", "catalog.jsonl", "--model", "models/minilm", "--store", "photo.jpg/x"],
        "is a file",
    ),
    "store cannot be made": (["index", "catalog.jsonl", "--model", "models/minilm", "--store", "/proc/no"], "cannot"),
    "store path = 5": (["index", "catalog.jsonl", "-c", "{path5}"], "path: Input is not a valid path"),
    "bad collection": (["query", "--text", "hi", "--collection", "bad name!"], "collection 'bad name!'"),
    "bad collection in config": (["index", "catalog.jsonl", "-c", "{badcoll}"], "collection 'bad name!'"),
    "unknown config key": (["index", "catalog.jsonl", "-c", "{badkey}"], "stor: Extra inputs"),
    "missing config": (["query", "--text", "hi", "-c", "nope.toml"], "does not exist"),
    "missing collection": (["query", "--text", "hi", "--store", "nowhere"], "index a catalog into it first"),
    "manifest dim": (["embed", "--model", "{baddim}", "--text", "hi"], "the manifest says dim 64"),
    "model folder is a file": (["index", "catalog.jsonl", "--model", "catalog.jsonl"], "is a file, not a model"),
    "missing catalog": (["index", "nope.jsonl", "--model", "models/minilm"], "does not exist"),
    "unwritable html": (["query", "--text", "hi", "--html", "/proc/x/h.html"], "cannot write the HTML report"),
    "unwritable cf path": (["cf", "fit", "interactions.csv", "--cf-path", "/proc/x"], "cannot write the CF model"),
    "unwritable eval out": (["eval", "--interactions", "interactions.csv", "--out", "/proc/x"], "cannot write"),
    "export over a file": (["export", "clip", "--out", "catalog.jsonl"], "is a file"),
    "bad model name": (["export", "clip", "--out", "models/bad name"], "cannot name vectors"),
    "bad threads": (["query", "--text", "hi", "--threads", "0"], "0 is not in the range"),
    "bad env threads": (["query", "--text", "hi"], "MMSEARCH_THREADS='many'"),
    "bad filter": (["query", "--text", "hi", "--filter", "price"], "is not field=value"),
    "bad weight": (["query", "--text", "hi", "-w", "clip_image=lots"], "is not a number"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_paths_options_and_config_values_give_one_clean_line(
    ws: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = {
        "path5": ("[store]\npath = 5\n"),
        "badcoll": ('[store]\ncollection = "bad name!"\n\n[[encoders]]\nmodel = "models/minilm"\n'),
        "badkey": ('[stor]\npath = "x"\n'),
    }
    for name, text in configs.items():
        (ws / f"{name}.toml").write_text(text, encoding="utf-8")
    fill = {**{k: f"{k}.toml" for k in configs}, "baddim": _bad_manifest(ws)}
    args, needle = BAD[case]
    if case == "bad env threads":
        monkeypatch.setenv("MMSEARCH_THREADS", "many")
    quiet = ["-q"] if args[0] in ("index", "export") else []  # no progress lines around the error
    got = run(ws, *(a.format(**fill) for a in args), *quiet, monkeypatch=monkeypatch)
    assert got.exit_code in (1, 2), got.output
    assert "Traceback" not in got.output and "pydantic" not in got.output and "validation error" not in got.output
    errors = [line for line in got.output.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], got.output
    if got.exit_code == 1:
        assert got.output.strip().splitlines()[-1].startswith("error: ")


# -- "The collection does not remember which model folders made it" ---------------------------------


def test_the_collection_remembers_its_model_folders(ws: Path, tmp_path: Path) -> None:
    got = run(ws, "query", "--text", "a red ball", "--json")
    assert got.exit_code == 0, got.output
    assert {s["name"] for s in json.loads(got.stdout)["signals"]} == {"minilm.text"}
    record = json.loads((ws / "mmsearch-data" / "mmsearch" / "mmsearch.json").read_text())
    assert record["models"]["clip"]["folder"] == str(ws / "models" / "clip")
    assert record["models"]["clip"]["random_weights"] is True
    assert set(record["models"]["minilm"]["fingerprints"]) == {"text"}
    from mmsearch.query.engine import Searcher

    with Searcher.open(ws / "mmsearch-data") as searcher:  # the library: no models named either
        assert searcher.models == {}  # loaded on first use, and only those the query's weights need
        assert searcher.search(text="a red ball", weights={"bert": 1}, limit=3).ids[0] == "sku-001"
        assert set(searcher.models) == {"minilm"}
        assert searcher.search(text="a red ball", limit=3).ids[0] == "sku-001"
        assert set(searcher.models) == {"minilm"}  # the default weights leave CLIP's random signals out
        searcher.search(text="a red ball", weights={"clip_image": 1}, limit=3)
        assert set(searcher.models) == {"clip", "minilm"}


def test_a_moved_model_folder_says_exactly_what_to_pass(ws: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(ws / "models" / "minilm", tmp_path / "minilm")
    assert (
        run(ws, "index", "catalog.jsonl", "--model", str(tmp_path / "minilm"), "--store", str(store), "-q").exit_code
        == 0
    )
    (tmp_path / "minilm").rename(tmp_path / "elsewhere")
    got = run(ws, "query", "--text", "a red ball", "--store", str(store))
    assert got.exit_code == 1
    assert f"model 'minilm' indexed this collection from {tmp_path / 'minilm'}, which is gone" in got.output
    assert "pass --model DIR with the folder that holds it now (fingerprints text " in got.output
    assert run(ws, "query", "--item", "sku-001", "--store", str(store)).exit_code == 0  # stored vectors only
    again = run(ws, "query", "--text", "a red ball", "--store", str(store), "--model", str(tmp_path / "elsewhere"))
    assert again.exit_code == 0, again.output


def test_an_old_record_without_model_folders_still_opens(ws: Path, tmp_path: Path) -> None:
    store = tmp_path / "old"
    assert run(ws, "index", "catalog.jsonl", "--model", "models/minilm", "--store", str(store), "-q").exit_code == 0
    path = store / "mmsearch" / "mmsearch.json"
    record = json.loads(path.read_text())
    del record["models"]
    path.write_text(json.dumps(record))
    assert run(ws, "query", "--item", "sku-001", "--store", str(store)).exit_code == 0
    got = run(ws, "query", "--text", "a red ball", "--store", str(store))
    assert got.exit_code == 1 and "--model DIR" in got.output and "records its folders" in got.output
    assert run(ws, "query", "--text", "a red ball", "--store", str(store), "--model", "models/minilm").exit_code == 0


# -- "CLI inconsistencies" ---------------------------------------------------------------------------


def test_index_reads_the_config_from_c_and_mmsearch_config(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = run(ws, "index", "catalog.jsonl", "-c", "mmsearch.toml", "--json", "-q")
    assert short.exit_code == 0 and json.loads(short.stdout)["collection"] == "products"
    monkeypatch.chdir(ws)
    monkeypatch.setenv("MMSEARCH_CONFIG", "mmsearch.toml")
    by_env = CliRunner().invoke(cli, ["index", "catalog.jsonl", "--json", "-q"])
    assert by_env.exit_code == 0 and json.loads(by_env.stdout)["collection"] == "products"


@pytest.mark.parametrize("command", [["query"], ["recommend"], ["index"], ["embed"], ["eval"], ["cf", "fit"]])
def test_threads_means_one_thing_everywhere(command: list[str]) -> None:
    text = CliRunner().invoke(cli, [*command, "--help"]).output
    assert "--threads INTEGER RANGE" in text and "[x>=1]" in text
    engine = "implicit's training threads" if command == ["cf", "fit"] else "onnxruntime threads per session"
    assert engine in text.lower()


@pytest.mark.parametrize(
    "command", [["index"], ["eval"], ["eval", "movielens"], ["export", "clip"], ["bench", "index"], ["bench", "store"]]
)
def test_quiet_and_no_progress_are_one_option_everywhere(command: list[str]) -> None:
    text = CliRunner().invoke(cli, [*command, "--help"]).output
    assert "-q, --quiet, --no-progress" in text and "--progress" in text


@pytest.mark.parametrize("command", [["query"], ["recommend"], ["bench", "query"]])
def test_k_is_the_result_count_everywhere(command: list[str]) -> None:
    assert "-k, --limit" in CliRunner().invoke(cli, [*command, "--help"]).output


def test_eval_takes_its_cut_offs_with_at() -> None:
    text = CliRunner().invoke(cli, ["eval", "--help"]).output
    assert "--at INTEGER RANGE" in text and "--k " not in text and "-k," not in text


# -- "Long silent steps" -----------------------------------------------------------------------------


def test_index_says_it_loads_models_and_an_idle_run_reports_no_rate(ws: Path) -> None:
    got = run(ws, "index", "mmsearch/examples/catalog.jsonl", *CLIP_AND_MINILM)
    assert got.exit_code == 0
    assert got.stderr.splitlines()[0] == "loading models: models/clip, models/minilm"
    assert "indexed 0 items (0 new, 0 changed), 40 unchanged" in got.stdout
    assert "items/s" not in got.stdout


def test_eval_shows_its_ranking_steps_as_bars_when_asked(ws: Path) -> None:
    args = [
        "eval",
        "--interactions",
        "interactions.csv",
        "--out",
        "eval-out",
        "--als-factors",
        "4",
        "--bpr-factors",
        "4",
    ]
    bars = run(ws, *args, "--progress")
    assert bars.exit_code == 0, bars.output
    assert "random: validation users" in bars.stderr and "random: test users" in bars.stderr
    assert "user/s" in bars.stderr or "it/s" in bars.stderr or "100%" in bars.stderr
    quiet = run(ws, *args, "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""


# -- "The library refuses Qdrant's own filters; Index.add hides why; _mmsearch_hash; vector names" ---


def test_the_engine_takes_qdrant_filters_and_dicts(ws: Path) -> None:
    from qdrant_client import models as m

    from mmsearch.query.engine import Searcher

    with Searcher.open(ws / "mmsearch-data") as searcher:
        qdrant = m.Filter(must=[m.FieldCondition(key="in_stock", match=m.MatchValue(value=False))])
        as_dict = {"must": [{"key": "in_stock", "match": {"value": False}}]}
        for flt in (qdrant, as_dict):
            assert set(searcher.search(text="a ball", filter=flt, limit=40).ids) == OUT_OF_STOCK


def test_index_add_says_why_it_skipped_an_item_without_an_error_file(ws: Path, tmp_path: Path) -> None:
    from mmsearch.indexing.index import Index

    with Index.open(models=[ws / "models" / "minilm"], store_path=tmp_path / "s") as index:
        summary = index.add([{"id": "ok", "title": "A red ball"}, {"id": "bad", "images": ["nope.png"]}])
    assert (summary.indexed, summary.skipped) == (1, 1)
    [error] = summary.errors
    assert (error.id, error.kind) == ("bad", "empty") and "nothing to embed" in error.reason
    assert summary.to_dict()["errors"][0]["id"] == "bad"


def test_results_hide_mmsearch_internal_payload_fields(ws: Path) -> None:
    got = run(ws, "query", "--text", "a red ball", "--json", "--explain")
    payloads = [r["payload"] for r in json.loads(got.stdout)["results"]]
    assert payloads and all(not any(k.startswith("_mmsearch") or k == "item_id" for k in p) for p in payloads)
    from mmsearch.storage import open_store

    with open_store({"path": ws / "mmsearch-data"}) as store:
        [item] = store.retrieve(["sku-001"])
        assert "_mmsearch_hash" not in item.payload
        assert "_mmsearch_hash" in store.retrieve(["sku-001"], internal=True)[0].payload


def test_every_family_names_its_vectors_after_the_out_folder(ws: Path) -> None:
    signals = run(ws, "query", "--signals").stdout.split()
    assert "minilm.text" in signals and "clip.image" in signals and "all-MiniLM-L6-v2.text" not in signals
    assert Manifest.load(ws / "models" / "minilm").name == "minilm"


def test_search_response_to_dict_is_what_json_prints(ws: Path) -> None:
    from mmsearch.query.engine import Searcher

    with Searcher.open(ws / "mmsearch-data") as searcher:
        response = searcher.search(text="a red ball", limit=3, explain=True)
    data = response.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert [r["rank"] for r in data["results"]] == [1, 2, 3] and "signals" in data["results"][0]
    printed = json.loads(run(ws, "query", "--text", "a red ball", "-k", "3", "--json").stdout)
    assert set(printed) == {"query", *data}


def test_one_text_gives_one_vector_and_models_close(ws: Path) -> None:
    from indexers.runtime import load_model

    with load_model(ws / "models" / "minilm") as minilm:
        one = minilm.embed_texts("a red ball")
        assert one.shape == (384,) and np.isclose(np.linalg.norm(one), 1.0, atol=1e-5)
    assert minilm.text is not None and minilm.text.session.closed


# -- "Packaging: no py.typed, no LICENSE file" -------------------------------------------------------


def test_the_wheel_ships_py_typed_and_the_license(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "tests", "docker", "__pycache__", "mmsearch-data", "models"
        ),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = tmp_path.glob("mmsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mmsearch/py.typed" in names and "indexers/py.typed" in names
    license_file = next(n for n in names if n.endswith("licenses/LICENSE"))
    text = zipfile.ZipFile(wheel).read(license_file).decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
