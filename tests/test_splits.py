"""Splits: sizes, no leakage, determinism, temporal order, cold items absent from train."""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.cf.interactions import Interactions
from mmsearch.errors import ConfigError, InputError
from mmsearch.eval.splits import Split, cold_item_split, random_split, temporal_split


def random_table(n_users: int = 60, n_items: int = 50, n: int = 1000, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)  # distinct (user, item) pairs
    return Interactions.from_arrays(
        [f"u{p // n_items}" for p in pairs],
        [f"i{p % n_items}" for p in pairs],
        rng.integers(1, 6, size=n).astype(float),
        rng.integers(0, 10_000, size=n).astype(float),
    )


def pairs(table: Interactions) -> set[tuple[int, int]]:
    return set(zip(table.users.tolist(), table.items.tolist(), strict=True))


def assert_partition(table: Interactions, split: Split) -> None:
    parts = (split.train, split.validation, split.test)
    for part in parts:
        assert part.user_ids == table.user_ids and part.item_ids == table.item_ids  # one index space
    sets = [pairs(p) for p in parts]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sets[0] | sets[1] | sets[2] == pairs(table)
    assert sum(len(p) for p in parts) == len(table)


def test_random_split_sizes_and_partition() -> None:
    table = random_table()
    split = random_split(table, seed=1)
    assert (len(split.train), len(split.validation), len(split.test)) == (800, 100, 100)
    assert_partition(table, split)
    # Rows keep their input order inside each part.
    position = {p: r for r, p in enumerate(zip(table.users.tolist(), table.items.tolist(), strict=True))}
    rows = [position[p] for p in zip(split.test.users.tolist(), split.test.items.tolist(), strict=True)]
    assert rows == sorted(rows)


def test_random_split_is_deterministic_for_a_seed() -> None:
    table = random_table()
    a, b, c = random_split(table, seed=3), random_split(table, seed=3), random_split(table, seed=4)
    assert pairs(a.test) == pairs(b.test) and pairs(a.validation) == pairs(b.validation)
    assert pairs(a.test) != pairs(c.test)


def test_random_split_other_fractions() -> None:
    split = random_split(random_table(), (0.7, 0.0, 0.3), seed=0)
    assert (len(split.train), len(split.validation), len(split.test)) == (700, 0, 300)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.3, 0.1), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match="must be three non-negative numbers"):
        random_split(random_table(), fractions)
    with pytest.raises(ConfigError, match=r"fractions \("):
        cold_item_split(random_table(), fractions)


def test_temporal_split_hand_made() -> None:
    table = Interactions.from_arrays(
        ["a"] * 5 + ["b"] * 2 + ["c"] * 3,
        ["a1", "a2", "a3", "a4", "a5", "b1", "b2", "c1", "c2", "c3"],
        timestamps=[50, 10, 40, 20, 30, 1, 2, 7, 7, 7],
    )
    split = temporal_split(table)
    named = lambda part: sorted(table.item_ids[i] for i in part.items)  # noqa: E731
    assert named(split.test) == ["a1", "c3"]  # a's latest (50); c's tie at 7 -> the last row
    assert named(split.validation) == ["a3", "c2"]  # a's second latest (40)
    assert named(split.train) == ["a2", "a4", "a5", "b1", "b2", "c1"]  # b has 2 < 3: train only
    assert split.users_train_only == 1
    assert_partition(table, split)


def test_temporal_split_respects_time_per_user() -> None:
    table = random_table(n_users=30, n_items=80, n=1500)
    split = temporal_split(table, n_test=2, n_validation=1)
    ts = {
        p: float(t)
        for p, t in zip(zip(table.users.tolist(), table.items.tolist(), strict=True), table.timestamps, strict=True)
    }
    for user in range(table.n_users):
        times = [
            [ts[(u, i)] for u, i in zip(part.users.tolist(), part.items.tolist(), strict=True) if u == user]
            for part in (split.train, split.validation, split.test)
        ]
        if times[2]:
            assert len(times[2]) == 2 and len(times[1]) == 1
            assert max(times[0]) <= min(times[1]) <= max(times[1]) <= min(times[2])
    assert_partition(table, split)


def test_temporal_split_needs_timestamps() -> None:
    with pytest.raises(InputError, match="needs timestamps"):
        temporal_split(Interactions.from_arrays(["a"], ["x"]))
    with pytest.raises(ConfigError, match="n_test=0"):
        temporal_split(random_table(), n_test=0)


def test_cold_item_split_keeps_held_out_items_out_of_train() -> None:
    table = random_table()
    split = cold_item_split(table, seed=2)
    train_items = set(split.train.items.tolist())
    val_items, test_items = set(split.validation.items.tolist()), set(split.test.items.tolist())
    assert not train_items & val_items and not train_items & test_items and not val_items & test_items
    assert len(val_items) == 5 and len(test_items) == 5  # 10 % of 50 items each
    assert split.cold_items.tolist() == sorted(val_items | test_items)
    assert_partition(table, split)
    again = cold_item_split(table, seed=2)
    assert pairs(again.test) == pairs(split.test)
    assert pairs(cold_item_split(table, seed=9).test) != pairs(split.test)


def test_cold_items_of_a_random_split_are_those_missing_from_train() -> None:
    table = Interactions.from_arrays(["a", "a", "b", "c"], ["x", "y", "x", "z"])
    split = Split("random", table.select([0, 2]), table.select([1]), table.select([3]))
    assert [table.item_ids[i] for i in split.cold_items] == ["y", "z"]
    assert [table.user_ids[u] for u in split.cold_users] == ["c"]


def test_empty_table_is_refused() -> None:
    empty = Interactions.from_arrays([], [])
    with pytest.raises(InputError, match="empty"):
        random_split(empty)
