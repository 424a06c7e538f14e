"""MovieLens-100k (GroupLens; 100,000 ratings of 1,682 movies by 943 users), read from local files.

The copy used is the one shipped inside the `recbole` wheel (`recbole/dataset_example/ml-100k/`,
RecBole's tab-separated "atomic" files with typed headers such as `user_id:token`), so anyone can
get it with `pip install recbole --no-deps` and nothing is downloaded at run time. The folder is
found through `importlib.util.find_spec("recbole")`, which locates the package without importing
it: importing recbole would pull in torch and its other heavy dependencies.

Item texts are "title (year). Genres: a, b." with a trailing article moved to the front
("Usual Suspects, The" reads "The Usual Suspects"), which suits sentence encoders better.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mmsearch.cf.interactions import Interactions, ReadReport, read_interactions
from mmsearch.errors import DependencyError, InputError, NotFoundError

INTER_FILE = "ml-100k.inter"
ITEM_FILE = "ml-100k.item"
USER_FILE = "ml-100k.user"
RECBOLE_SUBFOLDER = ("dataset_example", "ml-100k")
N_RATINGS, N_USERS, N_ITEMS = 100_000, 943, 1_682
UNKNOWN_GENRE = "unknown"

_ARTICLE = re.compile(r"^(?P<main>.+?), (?P<article>The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)(?P<rest> \(.*\))?$")


@dataclass(frozen=True)
class Movie:
    """One movie: raw id, title as in the file, release year (None where unknown), genres."""

    item_id: str
    title: str
    year: int | None
    genres: tuple[str, ...]

    @property
    def display_title(self) -> str:
        """The title with a trailing article moved to the front ("The Usual Suspects")."""
        match = _ARTICLE.match(self.title)
        if not match:
            return self.title
        article = match["article"]
        joiner = "" if article.endswith("'") else " "
        return f"{article}{joiner}{match['main']}{match['rest'] or ''}"

    @property
    def text(self) -> str:
        """The movie as one text for a text encoder: "Title (year). Genres: a, b."."""
        text = self.display_title + (f" ({self.year})" if self.year is not None else "") + "."
        if self.genres:
            text += f" Genres: {', '.join(self.genres)}."
        return text


@dataclass(frozen=True)
class MovieUser:
    """One rater's demographic features as MovieLens records them."""

    user_id: str
    age: int
    gender: str
    occupation: str
    zip_code: str


@dataclass(frozen=True, eq=False)
class MovieLens100k:
    """The data set: ratings as interactions (weight = rating 1-5, timestamps in seconds),
    movies and users.

    Attributes:
        folder: where the files were read.
        interactions: one row per rating, in file order.
        read_report: what reading the ratings skipped (nothing, for an intact copy).
        movies: every movie, in file order.
        users: every user, in file order.
    """

    folder: Path
    interactions: Interactions
    read_report: ReadReport
    movies: tuple[Movie, ...]
    users: tuple[MovieUser, ...]

    @cached_property
    def _movie_index(self) -> dict[str, Movie]:
        return {m.item_id: m for m in self.movies}

    def movie(self, item_id: str) -> Movie:
        """The movie with raw id `item_id`.

        Raises:
            NotFoundError: no such movie.
        """
        try:
            return self._movie_index[item_id]
        except KeyError:
            raise NotFoundError(f"MovieLens-100k has no movie {item_id!r} (ids run 1 to {N_ITEMS})") from None

    def item_texts(self) -> dict[str, str]:
        """Raw item id -> text for a text encoder, for every movie."""
        return {m.item_id: m.text for m in self.movies}


def find_movielens_100k() -> Path:
    """The ml-100k folder inside the installed `recbole` package, located without importing it.

    Raises:
        DependencyError: recbole is not installed, or its copy lacks the ml-100k files.
    """
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            "MovieLens-100k is read from the files in the recbole wheel: pip install recbole --no-deps "
            "(or pass the folder holding ml-100k.inter, ml-100k.item and ml-100k.user)"
        )
    for location in spec.submodule_search_locations:
        folder = Path(location).joinpath(*RECBOLE_SUBFOLDER)
        if all((folder / name).is_file() for name in (INTER_FILE, ITEM_FILE, USER_FILE)):
            return folder
    raise DependencyError(
        f"the installed recbole ({', '.join(spec.submodule_search_locations)}) has no "
        f"{'/'.join(RECBOLE_SUBFOLDER)} folder with {INTER_FILE}, {ITEM_FILE} and {USER_FILE}; "
        f"reinstall it with pip install --force-reinstall recbole --no-deps"
    )


def _read_table(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a RecBole atomic file as {column: text}, for the columns asked for."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = [h.split(":", 1)[0].strip() for h in next(reader, [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise InputError(f"{path}: no column {missing[0]!r}; header: {header}")
            positions = [header.index(c) for c in columns]
            rows = []
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(f"{path}, line {reader.line_num}: {len(row)} fields, header has {len(header)}")
                rows.append({c: row[p].strip() for c, p in zip(columns, positions, strict=True)})
            return rows
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from e


def _year(text: str) -> int | None:
    return int(text) if len(text) == 4 and text.isdigit() else None


def load_movielens_100k(folder: str | Path | None = None) -> MovieLens100k:
    """Read MovieLens-100k.

    Args:
        folder: a folder holding ml-100k.inter, ml-100k.item and ml-100k.user; None uses the
            copy inside the installed recbole package.

    Returns:
        Ratings (as interactions), movies and users.

    Raises:
        DependencyError: no folder given and recbole is not installed.
        InputError: a file is missing, unreadable or malformed.
    """
    folder = Path(folder) if folder is not None else find_movielens_100k()
    for name in (INTER_FILE, ITEM_FILE, USER_FILE):
        if not (folder / name).is_file():
            raise InputError(f"{folder} has no {name}; expected {INTER_FILE}, {ITEM_FILE} and {USER_FILE}")
    interactions, report = read_interactions(
        folder / INTER_FILE,
        columns={"user": "user_id", "item": "item_id", "weight": "rating", "timestamp": "timestamp"},
        delimiter="\t",
        duplicates="last",
    )
    movies = tuple(
        Movie(
            item_id=row["item_id"],
            title=row["movie_title"],
            year=_year(row["release_year"]),
            genres=tuple(g for g in row["class"].split() if g != UNKNOWN_GENRE),
        )
        for row in _read_table(folder / ITEM_FILE, ("item_id", "movie_title", "release_year", "class"))
    )
    user_rows = _read_table(folder / USER_FILE, ("user_id", "age", "gender", "occupation", "zip_code"))
    try:
        users = tuple(
            MovieUser(r["user_id"], int(r["age"]), r["gender"], r["occupation"], r["zip_code"]) for r in user_rows
        )
    except ValueError as e:
        raise InputError(f"{folder / USER_FILE}: an age is not a whole number: {e}") from e
    return MovieLens100k(folder, interactions, report, movies, users)


__all__ = [
    "N_ITEMS",
    "N_RATINGS",
    "N_USERS",
    "Movie",
    "MovieLens100k",
    "MovieUser",
    "find_movielens_100k",
    "load_movielens_100k",
]
