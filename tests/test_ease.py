"""EASE (`mmsearch.cf`): both solvers against the dense numpy closed form, pruning, side information, histories.

Known answers: Steck's closed form computed here with numpy on small random logs; a checkerboard
where a user of group g must get the items of group g.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsearch.cf import EASEConfig, EASEModel, cf_config, fit, load_model, save_model
from mmsearch.cf.interactions import Interactions
from mmsearch.errors import ConfigError, InputError, NotFoundError


def _log(n_users: int = 60, n_items: int = 25, density: float = 0.25, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    weights = rng.integers(1, 6, size=len(u)).astype(float)
    return Interactions.from_arrays([f"u{x:03d}" for x in u], [f"i{x:03d}" for x in i], weights)


def _dense_ease(x: np.ndarray, lam: float, features: np.ndarray | None = None) -> np.ndarray:
    g = x.T @ x + lam * np.eye(x.shape[1])
    if features is not None:
        g += features @ features.T
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def _binary(table: Interactions) -> np.ndarray:
    x = table.to_csr().toarray().astype(np.float64)
    return (x > 0).astype(np.float64)


@pytest.mark.parametrize("solver", ["exact", "sparse"])
def test_unpruned_weights_equal_the_closed_form(solver: str) -> None:
    table = _log()
    model, report = fit(table, cf_config("ease", regularization=5.0, neighbors=table.n_items, solver=solver))
    reference = _dense_ease(_binary(table), 5.0)
    np.testing.assert_allclose(model.weights.toarray(), reference, atol=1e-5)
    assert report.n_items == table.n_items and model.nnz == np.count_nonzero(reference)


@pytest.mark.parametrize("solver", ["exact", "sparse"])
def test_scores_of_a_history_are_the_sum_of_its_rows(solver: str) -> None:
    """Item j's sparse vector is column j of B (indexed by source items), so history . column = sum_i B[i, j]."""
    table = _log(seed=1)
    model, _ = fit(table, cf_config("ease", regularization=3.0, neighbors=table.n_items, solver=solver))
    b = _dense_ease(_binary(table), 3.0)
    user = table.user_ids[7]
    history = [table.item_ids[j] for j in np.flatnonzero(_binary(table)[7])]
    expected = b[[table.item_index[i] for i in history]].sum(axis=0)
    np.testing.assert_allclose(model.scores(model.user_history(user)), expected, atol=1e-5)
    np.testing.assert_allclose(model.scores(model.history(history)), expected, atol=1e-5)
    column = model.item_vector(table.item_ids[4])
    assert column.dot(model.history(history).vector) == pytest.approx(expected[4], abs=1e-5)


def test_exact_keeps_each_columns_largest_weights_by_magnitude() -> None:
    table = _log(seed=2)
    k = 6
    model, _ = fit(table, cf_config("ease", regularization=4.0, neighbors=k, solver="exact"))
    b = _dense_ease(_binary(table), 4.0)
    for j in range(table.n_items):
        col = model.item_vector(table.item_ids[j])
        assert len(col) == k and j not in set(col.indices.tolist())
        kept = np.sort(np.abs(b[col.indices, j]))
        dropped = np.delete(np.abs(b[:, j]), np.r_[col.indices, j])
        assert kept.min() >= dropped.max() - 1e-6
        np.testing.assert_allclose(col.values, b[col.indices, j], atol=1e-5)


def test_sparse_solver_solves_each_column_on_its_nearest_items() -> None:
    table = _log(n_users=80, n_items=30, seed=3)
    k = 5
    model, _ = fit(table, cf_config("ease", regularization=4.0, neighbors=k, solver="sparse"))
    x = _binary(table)
    g = x.T @ x
    cosine = g / np.sqrt(np.outer(np.diag(g), np.diag(g)))
    for j in (0, 11, 29):
        col = model.item_vector(table.item_ids[j])
        support = np.sort(np.argsort(-np.where(np.arange(30) == j, -1, cosine[j]), kind="stable")[:k])
        assert sorted(col.indices.tolist()) == support.tolist()
        expected = np.linalg.solve(g[np.ix_(support, support)] + 4.0 * np.eye(k), g[support, j])
        np.testing.assert_allclose(col.values, expected, atol=1e-5)


def test_checkerboard_users_get_their_groups_items() -> None:
    groups, per = 4, 5
    users, items = [], []
    for g in range(groups):
        for u in range(6):
            for j in range(per):
                if (u + j) % per:  # each user misses one item of their group
                    users.append(f"u{g}-{u}")
                    items.append(f"i{g}-{j}")
    table = Interactions.from_arrays(users, items)
    for solver in ("exact", "sparse"):
        model, _ = fit(table, cf_config("ease", regularization=1.0, neighbors=8, solver=solver))
        for g in range(groups):
            rec = model.recommend(f"u{g}-0", k=1)
            assert rec.item_ids == [f"i{g}-0"]  # the one item of their group they have not seen


def test_history_maps_ids_counts_repeats_once_and_lists_unknown_ones() -> None:
    table = _log()
    model, _ = fit(table, cf_config("ease", regularization=5.0, neighbors=8))
    h = model.history([table.item_ids[3], "ghost", table.item_ids[1], table.item_ids[3]])
    assert h.vector.indices.tolist() == [1, 3] and h.vector.values.tolist() == [1.0, 1.0]
    assert h.unknown == ("ghost",)
    with pytest.raises(NotFoundError, match="unknown to the ease model"):
        model.user_history("nobody")


def test_weighting_sets_the_values_of_a_stored_history() -> None:
    table = _log()
    binary, _ = fit(table, cf_config("ease", neighbors=8))
    linear, _ = fit(table, cf_config("ease", neighbors=8, weighting="linear"))
    user = table.user_ids[0]
    assert set(binary.user_history(user).vector.values.tolist()) == {1.0}
    row = table.to_csr()[0]
    assert sorted(linear.user_history(user).vector.values.tolist()) == sorted(row.data.tolist())


def test_side_information_gives_items_without_interactions_weights() -> None:
    table = _log(n_items=20, seed=4)
    catalog = [*table.item_ids, "new-a", "new-b"]
    rng = np.random.default_rng(0)
    features = rng.standard_normal((len(catalog), 6))
    plain, _ = fit(table, cf_config("ease", neighbors=30, solver="exact"), catalog_item_ids=catalog)
    assert "new-a" not in plain.item_ids  # without side information a cold item has no weights
    config = cf_config("ease", regularization=5.0, neighbors=len(catalog), solver="exact", side={"f": 2.0})
    model, _ = fit(table, config, catalog_item_ids=catalog, features={"f": features})
    assert model.item_ids == tuple(catalog) and model.has_vector("new-b")
    x = np.zeros((table.n_users, len(catalog)))
    x[:, : table.n_items] = _binary(table)
    f = 2.0 * features / np.linalg.norm(features, axis=1, keepdims=True)
    # Sources are the items with interactions (W): warm columns are EASE on them, a cold column
    # c is the ridge regression of its features on theirs: (G_WW + lambda I)^-1 G_Wc.
    w = np.arange(table.n_items)
    g = x.T @ x + f @ f.T
    reference = np.zeros((len(catalog), len(catalog)))
    reference[np.ix_(w, w)] = _dense_ease(x[:, w], 5.0, f[w])
    p = np.linalg.inv(g[np.ix_(w, w)] + 5.0 * np.eye(len(w)))
    reference[np.ix_(w, [20, 21])] = p @ g[np.ix_(w, [20, 21])]
    np.testing.assert_allclose(model.weights.toarray(), reference, atol=1e-4)
    sparse, _ = fit(
        table, config.model_copy(update={"solver": "sparse"}), catalog_item_ids=catalog, features={"f": features}
    )
    np.testing.assert_allclose(sparse.weights.toarray(), reference, atol=1e-4)


def test_side_information_must_match_the_config() -> None:
    table = _log()
    with pytest.raises(ConfigError, match="missing: 'genres'"):
        fit(table, cf_config("ease", side={"genres": 1.0}))
    with pytest.raises(ConfigError, match="not weighed: 'f'"):
        fit(table, cf_config("ease"), features={"f": np.ones((table.n_items, 2))})
    with pytest.raises(InputError, match="shape"):
        fit(table, cf_config("ease", side={"f": 1.0}), features={"f": np.ones((3, 2))})
    with pytest.raises(ConfigError, match="side information is for EASE"):
        fit(table, cf_config("als", factors=2, iterations=1), features={"f": np.ones((table.n_items, 2))})


def test_config_is_validated() -> None:
    assert cf_config("ease") == EASEConfig()
    with pytest.raises(ConfigError, match="regularization"):
        cf_config("ease", regularization=0)
    with pytest.raises(ConfigError, match="solver"):
        cf_config("ease", solver="cholesky")
    with pytest.raises(ConfigError, match=">= 0"):
        cf_config("ease", side={"genres": -1.0})
    with pytest.raises(ConfigError, match="factors"):
        cf_config("ease", factors=10)  # extra="forbid": EASE has no factors


def test_saved_ease_model_loads_identical(tmp_path: Path) -> None:
    table = _log()
    model, _ = fit(table, cf_config("ease", neighbors=7, weighting="log1p"))
    save_model(model, tmp_path / "ease")
    loaded = load_model(tmp_path / "ease")
    assert isinstance(loaded, EASEModel) and loaded.config == model.config
    assert loaded.item_ids == model.item_ids and loaded.user_ids == model.user_ids
    np.testing.assert_array_equal(loaded.weights.toarray(), model.weights.toarray())
    user = table.user_ids[2]
    np.testing.assert_array_equal(loaded.scores(loaded.user_history(user)), model.scores(model.user_history(user)))


def test_large_catalogue_path_reads_the_sparse_gram_and_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above DENSE_GATHER_MAX items the solver gathers from the sparse X^T X item by item: same weights."""
    import mmsearch.cf.ease as ease

    table = _log(n_users=90, n_items=40, seed=6)
    catalog = [*table.item_ids, "cold"]
    features = np.random.default_rng(1).standard_normal((len(catalog), 5))
    config = cf_config("ease", regularization=3.0, neighbors=7, side={"f": 1.5})
    dense, _ = fit(table, config, catalog_item_ids=catalog, features={"f": features})
    monkeypatch.setattr(ease, "DENSE_GATHER_MAX", 0)
    sparse, _ = fit(table, config, catalog_item_ids=catalog, features={"f": features})
    np.testing.assert_allclose(sparse.weights.toarray(), dense.weights.toarray(), atol=1e-5)
    assert dense.has_vector("cold") and max(np.diff(dense.weight_indptr)) == 7
