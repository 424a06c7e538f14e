"""Reading interaction logs: column detection, mapping, bad rows, duplicates, id maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsearch.cf.interactions import Interactions, read_interactions
from mmsearch.errors import InputError, UnknownNameError


def write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_all_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "user,item,rating,timestamp\nbob,b1,4,100\nann,a1,5,50\nann,b1,2.5,70\n")
    table, report = read_interactions(path)
    # Ids are sorted, so indices do not depend on row order: ann=0, bob=1; a1=0, b1=1.
    assert table.user_ids == ("ann", "bob")
    assert table.item_ids == ("a1", "b1")
    # Rows keep file order.
    assert [table.row(i) for i in range(3)] == [
        ("bob", "b1", 4.0, 100.0),
        ("ann", "a1", 5.0, 50.0),
        ("ann", "b1", 2.5, 70.0),
    ]
    assert report.columns == {"user": "user", "item": "item", "weight": "rating", "timestamp": "timestamp"}
    assert (report.rows_read, report.rows_kept, report.rows_skipped) == (3, 3, 0)
    assert table.to_csr().toarray().tolist() == [[5.0, 2.5], [0.0, 4.0]]


def test_tsv_without_weight_or_time_gets_unit_weights(tmp_path: Path) -> None:
    path = write(tmp_path, "user_id\titem_id\textra\nu1\ti1\tx\nu2\ti1\ty\n", name="log.tsv")
    table, report = read_interactions(path)
    assert table.weights.tolist() == [1.0, 1.0]
    assert table.timestamps is None and not table.has_timestamps
    assert report.ignored_columns == ("extra",)


def test_recbole_typed_header_and_iso_timestamps(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t3\t2024-01-02T00:00:00Z\n"
        "2\t10\t1\t1970-01-01T00:01:40\n",
        name="x.inter",
    )
    table, _ = read_interactions(path)
    assert table.timestamps.tolist() == [1704153600.0, 100.0]  # 2024-01-02 UTC; 100 s after the epoch


def test_column_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "customer;sku;qty\nc1;s1;3\nc2;s1;1\n")
    table, report = read_interactions(path, columns={"user": "customer", "item": "sku", "weight": "qty"})
    assert report.columns == {"user": "customer", "item": "sku", "weight": "qty"}
    assert table.row(0) == ("c1", "s1", 3.0, None)


def test_mapping_to_a_column_the_file_lacks(tmp_path: Path) -> None:
    path = write(tmp_path, "user,item\nu,i\n")
    with pytest.raises(InputError, match="'sku'"):
        read_interactions(path, columns={"item": "sku"})


def test_unknown_role_in_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "user,item\nu,i\n")
    with pytest.raises(UnknownNameError, match="'price'.*known: item, timestamp, user, weight"):
        read_interactions(path, columns={"price": "user"})


def test_unknown_columns_name_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "who,what\nu,i\n")
    with pytest.raises(InputError, match=r"no user column; header: \['who', 'what'\]"):
        read_interactions(path)


def test_repeated_header_name(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="names column 'Item' twice"):
        read_interactions(write(tmp_path, "user,item,Item\nu,i,j\n"))


def test_trailing_delimiter_columns_are_ignored(tmp_path: Path) -> None:
    table, report = read_interactions(write(tmp_path, "user,item,,\nu,i,,\n"))
    assert table.row(0) == ("u", "i", 1.0, None) and report.ignored_columns == ("", "")


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(InputError, match="is empty"):
        read_interactions(path)


def test_header_only(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="header but no rows"):
        read_interactions(write(tmp_path, "user,item\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.csv does not exist"):
        read_interactions(tmp_path / "nope.csv")


def test_bad_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "user,item,weight,timestamp\n"
        "u1,i1,1,10\n"  # line 2: fine
        "u1,i2,abc,10\n"  # line 3: non-numeric weight
        "u2,i1,-2,10\n"  # line 4: negative weight
        "u2,i2,0,10\n"  # line 5: zero weight
        "u3,i1,nan,10\n"  # line 6: non-finite weight
        ",i1,1,10\n"  # line 7: empty user
        "u3,,1,10\n"  # line 8: empty item
        "u3,i3,1\n"  # line 9: three fields
        "u3,i3,1,yesterday\n"  # line 10: unparseable timestamp
        "u3,i4,1,\n"  # line 11: missing timestamp
        "\n"  # blank lines are not rows
        "u4,i4,2,20\n",  # line 13: fine
    )
    table, report = read_interactions(path)
    assert len(table) == 2 and table.user_ids == ("u1", "u4")
    assert report.rows_read == 11 and report.rows_kept == 2 and report.rows_skipped == 9
    assert report.skipped == {
        "non-numeric weight": 1,
        "negative weight": 1,
        "zero weight": 1,
        "non-finite weight": 1,
        "empty user id": 1,
        "empty item id": 1,
        "wrong number of fields": 1,
        "unparseable timestamp": 1,
        "missing timestamp": 1,
    }
    assert report.examples["non-numeric weight"] == [(3, "abc")]
    assert report.examples["negative weight"] == [(4, "-2")]
    assert report.examples["unparseable timestamp"] == [(10, "yesterday")]
    assert "line 4: '-2'" in report.summary()


def test_all_rows_bad_is_an_error_naming_the_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "user,item,rating\nu,i,five\nu,j,-1\n")
    expected = r"no usable row: 1 non-numeric weight \(e.g. line 2: 'five'\); 1 negative weight"
    with pytest.raises(InputError, match=expected):
        read_interactions(path)


@pytest.mark.parametrize(
    ("policy", "expected_weight"),
    [("sum", 3.0 + 1.0 + 2.0), ("max", 3.0), ("last", 2.0)],  # "last": the latest timestamp (30) wins
)
def test_duplicate_pairs_merge(tmp_path: Path, policy: str, expected_weight: float) -> None:
    path = write(tmp_path, "user,item,weight,timestamp\nu,i,3,10\nv,i,1,5\nu,i,1,20\nu,i,2,30\n")
    table, report = read_interactions(path, duplicates=policy)  # type: ignore[arg-type]
    assert len(table) == 2 and report.duplicates_merged == 2
    assert table.row(0) == ("u", "i", expected_weight, 30.0)  # merged pair keeps the latest time
    assert table.row(1) == ("v", "i", 1.0, 5.0)


def test_last_without_timestamps_takes_the_last_row(tmp_path: Path) -> None:
    table, _ = read_interactions(write(tmp_path, "user,item,weight\nu,i,3\nu,i,1\n"), duplicates="last")
    assert table.weights.tolist() == [1.0]


def test_unknown_duplicate_policy(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="'mean'"):
        read_interactions(write(tmp_path, "user,item\nu,i\n"), duplicates="mean")  # type: ignore[arg-type]


def test_from_arrays_rejects_negative_weights() -> None:
    with pytest.raises(InputError, match="weight -1.0 at interaction 1"):
        Interactions.from_arrays(["a", "b"], ["x", "y"], [1.0, -1.0])


def test_arrays_are_read_only_and_inputs_untouched() -> None:
    weights = np.array([1.0, 2.0])
    table = Interactions.from_arrays(["a", "b"], ["x", "y"], weights)
    with pytest.raises(ValueError):
        table.weights[0] = 5
    assert weights.flags.writeable


def test_select_keeps_id_maps_and_compact_drops_unused() -> None:
    table = Interactions.from_arrays(["a", "b", "c"], ["x", "y", "z"])
    part = table.select(np.array([False, True, True]))
    assert part.user_ids == ("a", "b", "c") and len(part) == 2
    small = part.compact()
    assert small.user_ids == ("b", "c") and small.item_ids == ("y", "z")
    assert [small.row(i) for i in range(2)] == [("b", "y", 1.0, None), ("c", "z", 1.0, None)]


def test_align_to_a_catalog_counts_unknowns() -> None:
    table = Interactions.from_arrays(["a", "a", "b", "c"], ["x", "gone", "gone", "y"])
    aligned, report = table.align(item_ids=["y", "x", "never-seen"])
    assert aligned.item_ids == ("y", "x", "never-seen")
    assert [aligned.row(i)[:2] for i in range(len(aligned))] == [("a", "x"), ("c", "y")]
    assert report.unknown_items == ("gone",) and report.unknown_users == ()
    assert report.rows_dropped == 2
    assert "1 unknown items ('gone')" in report.summary()
