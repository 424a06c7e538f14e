"""Catalog reading: the schema, column mapping, every kind of bad record, CSV/TSV cells, formats."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from mmsearch.errors import CatalogError, DependencyError, InvalidRecordError
from mmsearch.examples import example_catalog
from mmsearch.indexing.catalog import (
    CatalogConfig,
    CatalogItem,
    ColumnMapping,
    catalog_format,
    count_records,
    image_source,
    parse_record,
    read_catalog,
)
from mmsearch.indexing.errorlog import KINDS


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def test_a_valid_line_becomes_an_item_and_other_fields_become_payload(tmp_path):
    line = {
        "id": 17,
        "title": "Red mug",
        "description": "  ",
        "reviews": ["ok", "", "great"],
        "images": "a.png",
        "price": 9.5,
        "tags": ["x"],
        "meta": {"a": None},
    }
    [rec] = read_catalog(write_lines(tmp_path / "c.jsonl", [json.dumps(line)]))
    assert rec.error is None and rec.line == 1
    item = rec.item
    assert item.id == "17" and item.title == "Red mug" and item.description is None
    assert item.reviews == ("ok", "great") and item.images == ("a.png",)
    assert item.payload == {"price": 9.5, "tags": ["x"], "meta": {"a": None}}
    assert item.stored_payload() == {
        "title": "Red mug",
        "reviews": ["ok", "great"],
        "images": ["a.png"],
        "price": 9.5,
        "tags": ["x"],
        "meta": {"a": None},
    }


def test_line_numbers_count_blank_lines_and_a_bom_is_ignored(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [b'\xef\xbb\xbf{"id": "a"}', b"", b"   ", b'{"id": "b"}'])
    recs = list(read_catalog(path))
    assert [(r.line, r.item.id) for r in recs] == [(1, "a"), (4, "b")]
    assert count_records(path) == 2


@pytest.mark.parametrize(
    ("line", "kind", "item_id", "message"),
    [
        (b"{not json", "json", None, "line 1 is not valid JSON"),
        (b"[1, 2]", "json", None, "is a JSON list, expected an object"),
        (b'{"id": "a", "price": NaN}', "json", None, "NaN is not a JSON number"),
        (b'{"title": "no id"}', "id", None, "missing id: the record has no 'id' field"),
        (b'{"id": "  "}', "id", None, "the id '  ' is empty"),
        (b'{"id": true}', "id", None, "the id is a boolean"),
        (b'{"id": 1.5}', "id", None, "field 'id'"),
        (b'{"id": "' + b"x" * 1025 + b'"}', "id", None, "has 1,025 characters; ids have at most 1024"),
        (b'{"id": "a", "title": 12}', "record", "a", "field 'title': Input should be a valid string (got 12)"),
        (b'{"id": "a", "reviews": {"x": 1}}', "record", "a", "field 'reviews'"),
        (b'{"id": "a", "images": ["ftp://h/x.jpg"]}', "image", "a", "uses the scheme 'ftp'"),
        (b'{"id": "a", "item_id": "x"}', "record", "a", "payload field 'item_id' is reserved"),
        (b'{"id": "a", "_mmsearch_hash": "x"}', "record", "a", "payload field '_mmsearch_hash' is reserved"),
        (b'{"id": "a", "title": "caf\xe9"}', "utf8", "a", "not valid UTF-8: bytes e9 at byte 25"),
        (b'{"id": "a", "title": "\\udcff"}', "utf8", "a", "field 'title' is not valid UTF-8"),
        (b'{"id": "\xff"}', "utf8", None, "not valid UTF-8"),
    ],
)
def test_bad_lines_become_error_records(tmp_path, line, kind, item_id, message):
    [rec] = read_catalog(write_lines(tmp_path / "c.jsonl", [line]))
    assert rec.item is None
    assert (rec.error.line, rec.error.kind, rec.error.id) == (1, kind, item_id)
    assert message in rec.error.reason


def test_reading_goes_on_after_bad_lines(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [b'{"id": "a"}', b"oops", b'{"id": "b", "title": 1}', b'{"id": "c"}'])
    recs = list(read_catalog(path))
    assert [r.item.id if r.item else r.error.kind for r in recs] == ["a", "json", "record", "c"]
    assert [r.line for r in recs] == [1, 2, 3, 4]


def test_column_mapping_reads_a_file_without_rewriting_it(tmp_path):
    line = {
        "sku": "S1",
        "name": "Lamp",
        "blurb": "Warm light",
        "pics": ["l.jpg"],
        "opinions": ["nice"],
        "title": "kept?",
    }
    cfg = CatalogConfig(
        columns=ColumnMapping(id="sku", title="name", description="blurb", images="pics", reviews="opinions"),
        exclude=("title",),
    )
    [rec] = read_catalog(write_lines(tmp_path / "c.jsonl", [json.dumps(line)]), cfg)
    item = rec.item
    assert (item.id, item.title, item.description, item.images, item.reviews) == (
        "S1",
        "Lamp",
        "Warm light",
        ("l.jpg",),
        ("nice",),
    )
    assert item.payload == {}  # `title` was excluded, the mapped columns are not payload


def test_an_unmapped_column_with_a_schema_name_is_refused(tmp_path):
    cfg = CatalogConfig(columns=ColumnMapping(title="name"))
    [rec] = read_catalog(write_lines(tmp_path / "c.jsonl", ['{"id": "a", "name": "x", "title": "y"}']), cfg)
    assert rec.error.kind == "record" and "payload field 'title' is reserved" in rec.error.reason


def test_a_column_mapped_twice_is_refused():
    with pytest.raises(ValidationError, match="mapped to more than one field"):
        ColumnMapping(title="name", description="name")


def test_csv_cells_lists_numbers_and_empty_cells(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        "sku,name,images,reviews,price,qty,zip,note\n"
        'A1,Red ball,a.png|b.png,"[""good"", ""a|b""]",12.50,3,00123,\n'
        'A2,"Two\nlines",,,1e3,-4,x1,plain\n',
        encoding="utf-8",
    )
    cfg = CatalogConfig(columns=ColumnMapping(id="sku", title="name"))
    a, b = read_catalog(path, cfg)
    assert (a.line, b.line) == (2, 3)
    assert a.item.images == ("a.png", "b.png") and a.item.reviews == ("good", "a|b")
    assert a.item.payload == {"price": 12.5, "qty": 3, "zip": "00123"}  # leading zero: stays text
    assert b.item.title == "Two\nlines" and b.item.images == ()
    assert b.item.payload == {"price": 1000.0, "qty": -4, "zip": "x1", "note": "plain"}
    assert count_records(path, cfg) == 2


def test_csv_bad_rows_are_reported_and_reading_goes_on(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_bytes(b"id\ttitle\na\tok\nb\tcaf\xe9\nc\nd\tx\textra\n\t\ne\tfine\n")
    recs = list(read_catalog(path))
    assert [(r.line, r.item.id if r.item else r.error.kind) for r in recs] == [
        (2, "a"),
        (3, "utf8"),
        (4, "row"),
        (5, "row"),
        (7, "e"),
    ]
    assert recs[1].error.id == "b" and "bytes e9" in recs[1].error.reason
    assert "has 1 field(s), the header has 2" in recs[2].error.reason
    assert recs[3].error.id == "d"


def test_a_csv_row_the_csv_module_cannot_parse_is_a_row_error(tmp_path):
    path = tmp_path / "c.csv"
    huge = "x" * (csv.field_size_limit() + 1)  # over the csv module's field limit: csv.Error
    path.write_text(f"id,title\na,ok\nb,{huge}\nc,fine\n", encoding="utf-8")
    recs = list(read_catalog(path))
    assert [(r.line, r.item.id if r.item else r.error.kind) for r in recs] == [(2, "a"), (3, "row"), (4, "c")]
    assert "malformed CSV" in recs[1].error.reason


def test_the_readme_error_kind_table_lists_every_kind_once():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("| kind | the item was skipped because |\n| --- | --- |\n", 1)[1].split("\n\n", 1)[0]
    kinds = [re.match(r"\| `([a-z0-9]+)` \|", row).group(1) for row in table.splitlines()]
    assert sorted(kinds) == sorted(KINDS)


def test_csv_without_the_id_column_cannot_be_read(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("sku,title\nA,x\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"no id column 'id'; its columns are \['sku', 'title'\]"):
        list(read_catalog(path))


def test_csv_with_a_duplicate_header_cannot_be_read(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,title,title\nA,x,y\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"names columns \['title'\] more than once"):
        list(read_catalog(path))


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(CatalogError, match=r"suffix '\.xml'") as info:
        read_catalog(tmp_path / "c.xml")
    assert ".jsonl" in str(info.value)
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog(tmp_path / "nope.jsonl")
    assert catalog_format(tmp_path / "c.xml", CatalogConfig(format="csv")) == "csv"
    assert catalog_format(Path("x.NDJSON")) == "jsonl" and catalog_format(Path("x.pq")) == "parquet"


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed")
def test_parquet_without_pyarrow_says_what_to_install(tmp_path):
    path = tmp_path / "c.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DependencyError, match="pip install pyarrow"):
        list(read_catalog(path))


def test_parquet_rows_become_items(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "id": ["a", None, "c"],
            "title": ["x", "y", None],
            "price": [1.0, float("nan"), 3.0],
            "images": [["i.png"], [], None],
        }
    )
    pq.write_table(table, tmp_path / "c.parquet")
    recs = list(read_catalog(tmp_path / "c.parquet"))
    assert recs[0].item.images == ("i.png",) and recs[0].item.payload == {"price": 1.0}
    assert recs[1].error.kind == "id" and recs[1].line == 2
    assert recs[2].item.payload == {"price": 3.0}


def test_text_values_from_schema_and_payload_fields():
    item = CatalogItem(
        id="a", title="T", reviews=("r1", "r2"), payload={"brand": "Acme", "tags": ["x", " "], "price": 3}
    )
    assert item.text_values("title") == ["T"] and item.text_values("description") == []
    assert item.text_values("reviews") == ["r1", "r2"]
    assert item.text_values("brand") == ["Acme"] and item.text_values("tags") == ["x"]
    assert item.text_values("missing") == []
    with pytest.raises(InvalidRecordError, match="text field 'price' holds int 3") as info:
        item.text_values("price")
    assert info.value.kind == "text"


def test_parse_record_reports_the_mapped_column_name():
    with pytest.raises(InvalidRecordError, match="field 'name': Input should be a valid string") as info:
        parse_record({"sku": "a", "name": 5}, ColumnMapping(id="sku", title="name"))
    assert info.value.kind == "record"


def test_image_source_resolves_paths_against_the_catalog_folder(tmp_path):
    assert image_source("https://h/a.jpg", tmp_path) == "https://h/a.jpg"
    assert image_source("img/a.jpg", tmp_path) == tmp_path / "img/a.jpg"
    assert image_source("/abs/a.jpg", tmp_path) == Path("/abs/a.jpg")
    assert image_source("file:///abs/b.jpg", tmp_path) == Path("/abs/b.jpg")


def test_the_example_catalog_is_valid_and_its_images_exist():
    recs = list(read_catalog(example_catalog()))
    assert all(r.error is None for r in recs) and 36 <= len(recs) <= 48
    items = [r.item for r in recs]
    assert len({i.id for i in items}) == len(items)
    counts = [len(i.images) for i in items]
    assert counts.count(0) >= 2 and max(counts) == 3 and sum(c == 2 for c in counts) >= 1
    for item in items:
        assert item.title and item.description and "price" in item.payload and "category" in item.payload
        for ref in item.images:
            assert image_source(ref, example_catalog().parent).is_file()
    total = sum(p.stat().st_size for p in (example_catalog().parent / "images").iterdir())
    assert total < 1_000_000


def test_make_catalog_rewrites_the_shipped_example_exactly(tmp_path):
    from click.testing import CliRunner

    from mmsearch.examples.make_catalog import main

    result = CliRunner().invoke(main, ["--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "wrote 40 items" in result.output
    shipped = example_catalog()
    assert (tmp_path / "catalog.jsonl").read_text(encoding="utf-8") == shipped.read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(
        p.name for p in (shipped.parent / "images").iterdir()
    )
