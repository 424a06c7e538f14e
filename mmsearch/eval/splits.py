"""Train / validation / test splits of an interaction table.

Every split keeps the table's id maps, so train, validation and test index users and items the
same way and their `to_csr()` matrices line up. Interactions are never duplicated across parts:
each row of the input lands in exactly one part (pairs were already merged by `Interactions`).
Rows keep their input order inside each part.

- `random_split`: rows shuffled with a seed and cut by fractions (80/10/10 by default, as in
  the CLIP-for-recommendation study this project follows up).
- `temporal_split`: per user, the latest interactions go to test, the ones before to validation,
  the rest to train; "leave last out".
- `cold_item_split`: items (not rows) are cut by fractions, and every interaction goes where its
  item went, so validation and test items never appear in train: CF cannot score them and only
  content can rank them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mmsearch.cf.interactions import Interactions
from mmsearch.errors import ConfigError, InputError

DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)


@dataclass(frozen=True, eq=False)
class Split:
    """Three disjoint parts of one interaction table, over the same id maps.

    Attributes:
        kind: `random`, `temporal` or `cold-items`.
        train, validation, test: the parts.
        seed: the seed used (None for the temporal split, which draws nothing).
        users_train_only: users the temporal split kept whole in train for having too few
            interactions (0 for the other kinds).
    """

    kind: str
    train: Interactions
    validation: Interactions
    test: Interactions
    seed: int | None = None
    users_train_only: int = 0

    @cached_property
    def cold_items(self) -> np.ndarray:
        """Item indices that occur in validation or test but never in train (sorted, int64)."""
        held = np.union1d(self.validation.items, self.test.items)
        return np.setdiff1d(held, self.train.items).astype(np.int64)

    @cached_property
    def cold_users(self) -> np.ndarray:
        """User indices that occur in validation or test but never in train (sorted, int64)."""
        held = np.union1d(self.validation.users, self.test.users)
        return np.setdiff1d(held, self.train.users).astype(np.int64)

    def summary(self) -> str:
        return (
            f"{self.kind} split: train {len(self.train)}, validation {len(self.validation)}, "
            f"test {len(self.test)} interactions; {len(self.cold_items)} items and "
            f"{len(self.cold_users)} users outside train"
        )


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """(train, validation, test) fractions as floats, checked.

    Raises:
        ConfigError: not three non-negative numbers summing to 1, with train above 0.
    """
    values = tuple(float(f) for f in fractions)
    if (
        len(values) != 3
        or not all(np.isfinite(values))
        or min(values) < 0
        or values[0] <= 0
        or abs(sum(values) - 1.0) > 1e-6
    ):
        raise ConfigError(
            f"fractions {tuple(fractions)!r} must be three non-negative numbers (train, validation, "
            f"test) summing to 1, with train above 0"
        )
    return values[0], values[1], values[2]


def _cut(n: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    """Validation and test sizes for n things (rounded; train takes the rest)."""
    n_val = round(n * fractions[1])
    n_test = round(n * fractions[2])
    return n_val, min(n_test, n - n_val)


def _parts(table: Interactions, labels: np.ndarray) -> tuple[Interactions, Interactions, Interactions]:
    # labels: 0 train, 1 validation, 2 test, per row.
    return table.select(labels == 0), table.select(labels == 1), table.select(labels == 2)


def random_split(interactions: Interactions, fractions: Sequence[float] = DEFAULT_FRACTIONS, *, seed: int = 0) -> Split:
    """Shuffle the rows with `seed` and cut them into train, validation and test.

    Sizes: validation round(n * f_val), test round(n * f_test), train the rest.

    Raises:
        ConfigError: fractions that are not three non-negative numbers summing to 1.
        InputError: an empty table.
    """
    fr = check_fractions(fractions)
    n = len(interactions)
    if n == 0:
        raise InputError("cannot split an empty interaction table")
    n_val, n_test = _cut(n, fr)
    order = np.random.default_rng(seed).permutation(n)
    labels = np.zeros(n, dtype=np.int8)
    labels[order[:n_test]] = 2
    labels[order[n_test : n_test + n_val]] = 1
    train, validation, test = _parts(interactions, labels)
    return Split("random", train, validation, test, seed=seed)


def temporal_split(interactions: Interactions, *, n_test: int = 1, n_validation: int = 1, min_train: int = 1) -> Split:
    """Per user, the latest `n_test` interactions to test, the `n_validation` before them to
    validation, the rest to train.

    Equal timestamps are ordered by row position (a later row counts as later). A user with fewer
    than `n_test + n_validation + min_train` interactions stays whole in train (counted in
    `Split.users_train_only`), since a test case needs a history to predict from.

    Raises:
        InputError: the table has no timestamps, or is empty.
        ConfigError: `n_test` or `min_train` below 1, or `n_validation` below 0.
    """
    timestamps = interactions.timestamps
    if timestamps is None:
        raise InputError("a temporal split needs timestamps; the interaction log has no timestamp column")
    if n_test < 1 or min_train < 1 or n_validation < 0:
        raise ConfigError(
            f"temporal split needs n_test >= 1, n_validation >= 0, min_train >= 1; got "
            f"n_test={n_test}, n_validation={n_validation}, min_train={min_train}"
        )
    n = len(interactions)
    if n == 0:
        raise InputError("cannot split an empty interaction table")
    users = interactions.users.astype(np.int64)
    order = np.lexsort((np.arange(n), timestamps, users))
    counts = np.bincount(users, minlength=interactions.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sorted_users = users[order]
    from_end = np.empty(n, dtype=np.int64)
    # Position of each row counted from its user's latest interaction (0 = latest).
    from_end[order] = counts[sorted_users] - 1 - (np.arange(n) - starts[sorted_users])
    eligible = counts[users] >= n_test + n_validation + min_train
    labels = np.zeros(n, dtype=np.int8)
    labels[eligible & (from_end < n_test)] = 2
    labels[eligible & (from_end >= n_test) & (from_end < n_test + n_validation)] = 1
    train, validation, test = _parts(interactions, labels)
    train_only = int(((counts > 0) & (counts < n_test + n_validation + min_train)).sum())
    return Split("temporal", train, validation, test, seed=None, users_train_only=train_only)


def cold_item_split(
    interactions: Interactions, fractions: Sequence[float] = DEFAULT_FRACTIONS, *, seed: int = 0
) -> Split:
    """Cut the items (those with interactions) by `fractions` with `seed`; each interaction
    follows its item, so validation and test items never occur in train.

    Raises:
        ConfigError: fractions that are not three non-negative numbers summing to 1.
        InputError: an empty table.
    """
    fr = check_fractions(fractions)
    if len(interactions) == 0:
        raise InputError("cannot split an empty interaction table")
    items = np.unique(interactions.items)
    n_val, n_test = _cut(len(items), fr)
    shuffled = np.random.default_rng(seed).permutation(items)
    item_label = np.zeros(interactions.n_items, dtype=np.int8)
    item_label[shuffled[:n_test]] = 2
    item_label[shuffled[n_test : n_test + n_val]] = 1
    train, validation, test = _parts(interactions, item_label[interactions.items])
    return Split("cold-items", train, validation, test, seed=seed)


__all__ = ["DEFAULT_FRACTIONS", "Split", "check_fractions", "cold_item_split", "random_split", "temporal_split"]
