"""`mmsearch index` and the `Index` API on a catalog holding every kind of bad item.

Checks the error log line by line, the exit code, and that every good item is stored, holds the
vectors the encoder gives for its own images, and is found first by a nearest-neighbour query
with its own vector.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import image_bytes, make_image, spy_on_encode
from http_support import Route, serve

import mmsearch.indexing.pipeline as pipeline_mod
from indexers.runtime import load_model
from mmsearch.cli import cli
from mmsearch.cli.index_cmd import EXIT_ITEMS_SKIPPED
from mmsearch.errors import ConfigError
from mmsearch.indexing.catalog import HASH_KEY, CatalogItem
from mmsearch.indexing.errorlog import ErrorLog, read_error_log
from mmsearch.indexing.index import Index
from mmsearch.storage import open_store


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid 1x1 PNG whose header claims `width` x `height` pixels: a decompression bomb's header."""
    buf = io.BytesIO()
    make_image(1, 1).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    ihdr = png.index(b"IHDR")
    png[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    png[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(png[ihdr : ihdr + 17])))
    return bytes(png)


GOOD = ["g1", "g2", "g3", "g4", "g5"]


@pytest.fixture(scope="module")
def server():
    routes = {
        "/good.png": Route(body=image_bytes("PNG", seed=4), content_type="image/png"),
        "/slow.png": Route(body=image_bytes("PNG", seed=5), delay_s=3.0),
    }
    with serve(routes) as srv:
        yield srv


def make_catalog(folder: Path, url: str) -> tuple[Path, list[tuple[int, str | None, str]]]:
    """A catalog of good and bad lines; returns it and the expected (line, id, kind) error rows."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "imgs").mkdir(exist_ok=True)
    make_image(seed=1).save(folder / "g1.png")
    make_image(seed=2).save(folder / "g2a.jpg", quality=95)
    make_image(seed=3, width=80).save(folder / "g2b.jpg", quality=95)
    make_image(seed=6, height=70).save(folder / "imgs" / "g5.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    jpeg = image_bytes("JPEG", seed=7, width=200, height=200)
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "bomb.png").write_bytes(bomb_png())
    lines: list[bytes] = []
    expected: list[tuple[int, str | None, str]] = []

    def add(obj: dict | bytes, error: tuple[str | None, str] | None = None) -> None:
        lines.append(obj if isinstance(obj, bytes) else json.dumps(obj).encode())
        if error:
            expected.append((len(lines), *error))

    add(
        {
            "id": "g1",
            "title": "red noise",
            "description": "first",
            "reviews": ["nice", "meh"],
            "images": ["g1.png"],
            "price": 3.5,
        }
    )
    add({"id": "b-missing", "title": "x", "images": ["nope.png"]}, ("b-missing", "image"))
    add({"id": "g2", "title": "two photos", "images": ["g2a.jpg", "g2b.jpg"], "category": "two"})
    add({"id": "b-corrupt", "title": "x", "images": ["corrupt.png"]}, ("b-corrupt", "image"))
    add({"id": "b-truncated", "title": "x", "images": ["truncated.jpg"]}, ("b-truncated", "image"))
    add({"id": "g3", "title": "from a URL", "images": [url + "/good.png"]})
    add({"id": "b-404", "title": "x", "images": [url + "/gone.png"]}, ("b-404", "fetch"))
    add({"id": "b-timeout", "title": "x", "images": [url + "/slow.png"]}, ("b-timeout", "fetch"))
    add({"id": "b-bomb", "title": "x", "images": ["bomb.png"]}, ("b-bomb", "image"))
    add(b'{"id": "b-json", "title": ', (None, "json"))
    add({"title": "no id at all"}, (None, "id"))
    add({"id": "g4", "title": "text only", "description": "no photos here"})
    add({"id": "g1", "title": "the same id again"}, ("g1", "duplicate"))
    add(b'{"id": "b-utf8", "title": "caf\xe9"}', ("b-utf8", "utf8"))
    add({"id": "b-empty", "price": 1}, ("b-empty", "empty"))
    add({"id": "b-long", "title": "x" * 600}, ("b-long", "text"))
    add({"id": "g5", "title": "in a sub-folder", "images": ["imgs/g5.png"], "tags": ["a", "b"]})
    path = folder / "catalog.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, expected


def write_config(folder: Path, model: Path, store: Path) -> Path:
    path = folder / "index.toml"
    path.write_text(
        f"""
[store]
path = "{store}"
collection = "shop"

[index]
batch_size = 2
workers = 4
max_text_chars = 500

[fetch]
timeout_s = 0.5
retries = 0

[[encoders]]
model = "{model}"
text_fields = ["title", "description", "reviews"]
""",
        encoding="utf-8",
    )
    return path


def test_cli_skips_every_bad_item_logs_it_and_stores_every_good_one(tmp_path, tiny_clip_dir, server):
    catalog, expected = make_catalog(tmp_path / "cat", server.url)
    config = write_config(tmp_path, tiny_clip_dir, tmp_path / "store")
    log_path = tmp_path / "errors.jsonl"
    result = CliRunner().invoke(
        cli, ["index", str(catalog), "--config", str(config), "--errors", str(log_path), "--json"]
    )
    assert result.exit_code == EXIT_ITEMS_SKIPPED == 3, result.output
    summary = json.loads(result.stdout)
    assert (summary["records"], summary["indexed"], summary["new"], summary["unchanged"]) == (17, 5, 5, 0)
    assert summary["skipped"] == len(expected) == 12 and summary["failed"] == 0 and not summary["ok"]
    assert summary["skipped_by_kind"] == {
        "duplicate": 1,
        "empty": 1,
        "fetch": 2,
        "id": 1,
        "image": 4,
        "json": 1,
        "text": 1,
        "utf8": 1,
    }
    assert summary["stored"] == 5 and summary["collection"] == "shop"

    errors = list(read_error_log(log_path))
    # Worker threads finish in any order, so the log is compared as a set of rows.
    assert sorted(((e.line, e.id, e.kind) for e in errors), key=lambda r: r[0]) == expected
    reasons = {e.id: e.reason for e in errors}
    assert "does not exist" in reasons["b-missing"] and "nope.png" in reasons["b-missing"]
    assert "corrupt or truncated" in reasons["b-truncated"]
    assert "decompression bomb" in reasons["b-bomb"]
    assert "HTTP 404" in reasons["b-404"] and "timed out" in reasons["b-timeout"]
    assert "not valid UTF-8" in reasons["b-utf8"]
    assert "already appeared on line 1" in reasons["g1"]
    assert "nothing to embed" in reasons["b-empty"] and "over the limit of 500" in reasons["b-long"]
    assert all(e.reason.startswith(f"line {e.line}") for e in errors)

    model = load_model(tiny_clip_dir)
    key_img, key_txt = f"{model.name}.image", f"{model.name}.text"
    with open_store({"path": tmp_path / "store", "collection": "shop"}) as store:
        assert store.count() == 5
        items = {s.id: s for s in store.retrieve(GOOD, with_vectors=True)}
        assert sorted(items) == GOOD
        g1 = items["g1"]
        assert g1.payload["title"] == "red noise" and g1.payload["price"] == 3.5 and g1.payload["images"] == ["g1.png"]
        assert HASH_KEY not in g1.payload  # mmsearch's own field, hidden unless asked for
        assert len(store.retrieve(["g1"], internal=True)[0].payload[HASH_KEY]) == 64
        assert items["g5"].payload["tags"] == ["a", "b"] and items["g2"].payload["category"] == "two"
        # The stored rows are the encoder's own output for the item's photos and texts.
        own = model.embed_images([tmp_path / "cat" / "g2a.jpg", tmp_path / "cat" / "g2b.jpg"])
        np.testing.assert_allclose(items["g2"].vectors[key_img + ".multi"], own, atol=1e-5)
        texts = model.embed_texts(["red noise", "first", "nice", "meh"])
        np.testing.assert_allclose(items["g1"].vectors[key_txt + ".multi"], texts, atol=1e-5)
        assert key_img not in items["g4"].vectors  # text only
        # Every good item is its own nearest neighbour.
        for item_id, item in items.items():
            for key in (key_img, key_txt):
                if key in item.vectors:
                    hits = store.query(key, item.vectors[key], limit=3, exact=True)
                    assert hits[0].id == item_id and hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_cli_exit_code_is_0_when_nothing_fails_and_the_text_summary(tmp_path, tiny_clip_dir):
    catalog = tmp_path / "c.jsonl"
    make_image(seed=9).save(tmp_path / "a.png")
    catalog.write_text('{"id": "a", "title": "A", "images": ["a.png"]}\n{"id": "b", "title": "B"}\n')
    args = [
        "index",
        str(catalog),
        "--model",
        str(tiny_clip_dir),
        "--store",
        str(tmp_path / "s"),
        "--collection",
        "c1",
        "--errors",
        str(tmp_path / "e.jsonl"),
        "--batch-size",
        "8",
        "--workers",
        "2",
    ]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "indexed 2 items (2 new, 0 changed), 0 unchanged, 0 skipped" in first.stdout
    assert "collection 'c1' holds 2 items" in first.stdout
    assert (tmp_path / "e.jsonl").read_text() == ""
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "indexed 0 items (0 new, 0 changed), 2 unchanged" in again.stdout


def test_cli_fatal_errors_exit_1_with_one_line(tmp_path, tiny_clip_dir):
    runner = CliRunner()
    no_model = runner.invoke(cli, ["index", str(tmp_path / "c.jsonl"), "--store", str(tmp_path / "s")])
    assert no_model.exit_code == 1 and "no encoders" in no_model.output
    missing = runner.invoke(
        cli, ["index", str(tmp_path / "c.jsonl"), "--model", str(tiny_clip_dir), "--store", str(tmp_path / "s")]
    )
    assert missing.exit_code == 1 and "c.jsonl' does not exist" in missing.output


@pytest.fixture()
def index(tmp_path, tiny_clip_dir):
    with Index.open(models=[tiny_clip_dir], store_path=tmp_path / "store", batch_size=4, workers=2) as idx:
        yield idx


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_rerun_skips_unchanged_reembeds_changed_and_keeps_cf(tmp_path, index, monkeypatch):
    for i in range(3):
        make_image(seed=20 + i).save(tmp_path / f"{i}.png")
    rows = [{"id": f"i{i}", "title": f"item {i}", "images": [f"{i}.png"]} for i in range(3)]
    catalog = write_jsonl(tmp_path / "c.jsonl", rows)
    first = index.sync(catalog)
    assert (first.new, first.changed, first.unchanged, first.stored) == (3, 0, 0, 3) and first.ok
    index.store.add_cf_vector(64)  # as a CF fit does first
    index.store.update_vectors([_cf_update("i1", index.store)])

    rows[1]["title"] = "item one, renamed"
    write_jsonl(catalog, rows)
    make_image(seed=99).save(tmp_path / "2.png")  # a new photo under the same name: size or mtime changes
    encoded = spy_on_encode(monkeypatch)
    second = index.sync(catalog)
    assert (second.new, second.changed, second.unchanged, second.indexed) == (0, 2, 1, 2)
    assert sorted(encoded) == ["i1", "i2"]
    [stored] = index.store.retrieve(["i1"], with_vectors=["cf"])
    assert stored.payload["title"] == "item one, renamed"
    np.testing.assert_allclose(stored.vectors["cf"], np.arange(64, dtype=np.float32) / 64)


def _cf_update(item_id: str, store):
    from mmsearch.storage import VectorUpdate

    return VectorUpdate(item_id, {"cf": np.arange(64, dtype=np.float32) / 64})


def test_prune_removes_items_no_longer_in_the_catalog(tmp_path, index):
    rows = [{"id": f"t{i}", "title": f"text {i}"} for i in range(4)]
    catalog = write_jsonl(tmp_path / "c.jsonl", rows)
    index.sync(catalog)
    write_jsonl(catalog, rows[:2])
    kept = index.sync(catalog)  # no prune: the others stay
    assert (kept.unchanged, kept.pruned, kept.stored) == (2, 0, 4)
    pruned = index.sync(catalog, prune=True)
    assert (pruned.unchanged, pruned.pruned, pruned.stored) == (2, 2, 2)
    assert sorted(s.id for s in index.store.iter_items()) == ["t0", "t1"]


def test_prune_is_refused_while_a_line_has_no_readable_id(tmp_path, index):
    catalog = write_jsonl(tmp_path / "c.jsonl", [{"id": "x", "title": "x"}, {"id": "y", "title": "y"}])
    index.sync(catalog)
    catalog.write_text('{"id": "x", "title": "x"}\n{"id": "y", "title": \n', encoding="utf-8")
    summary = index.sync(catalog, prune=True)
    assert summary.pruned == 0 and summary.stored == 2 and "not pruned" in summary.prune_note


def test_add_takes_items_and_mappings_and_logs_bad_ones(tmp_path, index):
    make_image(seed=3).save(tmp_path / "p.png")
    log = ErrorLog()
    summary = index.add(
        [
            CatalogItem(id="a", title="alpha"),
            {"id": "b", "title": "beta", "images": ["p.png"]},
            {"title": "no id"},
            "not a mapping",
        ],
        base_dir=tmp_path,
        errors=log,
    )
    assert (summary.new, summary.skipped, summary.catalog) == (2, 2, None)
    assert [(e.line, e.kind) for e in log.errors] == [(3, "id"), (4, "json")]
    assert index.store.count() == 2


def test_an_encoder_failure_skips_only_the_item_at_fault(tmp_path, index, monkeypatch):
    real = pipeline_mod.encode

    def flaky(batch, embedders):
        if any(p.work.item.title == "poison" for p in batch):
            raise RuntimeError("onnxruntime exploded")
        return real(batch, embedders)

    monkeypatch.setattr(pipeline_mod, "encode", flaky)
    rows = [{"id": f"e{i}", "title": "poison" if i == 2 else f"fine {i}"} for i in range(4)]
    log = ErrorLog()
    summary = index.sync(write_jsonl(tmp_path / "c.jsonl", rows), errors=log)
    assert (summary.new, summary.failed, summary.skipped, summary.ok) == (3, 1, 0, False)
    [err] = log.errors
    assert (err.line, err.id, err.kind) == (3, "e2", "encode") and "onnxruntime exploded" in err.reason


def test_open_refuses_a_model_that_embeds_nothing(tmp_path, tiny_clip_dir):
    from mmsearch.indexing.config import EncoderConfig, IndexConfig

    cfg = IndexConfig(encoders=(EncoderConfig(model=tiny_clip_dir, text_fields=(), images=False),))
    with pytest.raises(ConfigError, match="embeds nothing with images=False and text_fields=\\[\\]"):
        Index.open(cfg, store_path=tmp_path / "s")
